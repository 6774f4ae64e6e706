import { Virsh } from "../src/adapters/virsh.js";
for (const uri of ["test:///default", "qemu:///system"]) {
const a = new Virsh({ uri });
const r = await Promise.all(Array.from({length: 20}, () => a.run(["list"])));
console.log(r.length, a.spawned);
const b = await a.batch(Array.from({length: 20}, () => ["list"]));
console.log(b.length);
await a.close();
console.log("closed");
}

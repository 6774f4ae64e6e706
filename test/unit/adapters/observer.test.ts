// The observer's bookkeeping, over a fake virsh that answers batches from a table.
import assert from "node:assert/strict";
import test from "node:test";
import { Observer } from "../../../src/adapters/observer.js";
import type { Virsh } from "../../../src/adapters/virsh.js";

const UUID = "6f1d2a4e-0000-4000-8000-000000000001";
const xml = (name: string) => `<domain type='qemu'><name>${name}</name><uuid>${UUID}</uuid><memory unit='KiB'>262144</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os><devices/></domain>`;

function fakeVirsh(state: { running: boolean; transient?: boolean }) {
  const batches: string[][][] = [];
  const virsh = {
    async batch(commands: string[][]) {
      batches.push(commands);
      return commands.map(([cmd, ...args]) => {
        const joined = `${cmd} ${args.join(" ")}`;
        if (joined === "list --all --uuid") return UUID;
        if (joined === "list --uuid") return state.running ? UUID : undefined;
        if (joined === "list --all --uuid --transient") return state.transient ? UUID : undefined;
        if (cmd === "dumpxml") return xml("web");
        if (cmd === "domstate") return state.running ? "running (booted)" : "shut off (destroyed)";
        return undefined;
      });
    },
  };
  return { virsh: virsh as unknown as Virsh, batches };
}

test("a domain's stop is applied to the picture without reading libvirt again", async () => {
  const { virsh, batches } = fakeVirsh({ running: true });
  const observer = new Observer(virsh);
  const first = await observer.get(Date.now());
  assert.equal(first.domains.get("web")?.state, "running");
  assert.ok(first.domains.get("web")?.running, "running XML read for an active domain");
  const reads = batches.length;

  assert.equal(observer.applyDomainStopped("web", "destroyed", first.takenAt - 1), true);
  const after = await observer.get(Date.now() - 5);
  assert.equal(batches.length, reads, "no virsh batch for the stop");
  assert.deepEqual([after.domains.get("web")?.state, after.domains.get("web")?.reason, after.domains.get("web")?.running], ["shut off", "destroyed", undefined]);
  assert.equal(first.domains.get("web")?.state, "running", "the earlier picture is not changed under its readers");
});

test("the stop is not applied when the picture may have missed another change, or the domain is transient", async () => {
  const { virsh } = fakeVirsh({ running: true });
  const observer = new Observer(virsh);
  assert.equal(observer.applyDomainStopped("web", "destroyed", 0), false, "no picture yet");
  const picture = await observer.get(Date.now());
  assert.equal(observer.applyDomainStopped("web", "destroyed", picture.takenAt + 1), false, "a later change is unknown to the picture");
  assert.equal(observer.applyDomainStopped("other", "destroyed", 0), false, "not in the picture");

  const transient = new Observer(fakeVirsh({ running: true, transient: true }).virsh);
  await transient.get(Date.now());
  assert.equal(transient.applyDomainStopped("web", "destroyed", 0), false, "a transient domain vanishes when it stops");
});

test("only active domains cost a live dumpxml; state, autostart and persistence come from filtered lists", async () => {
  const { virsh, batches } = fakeVirsh({ running: false });
  const picture = await new Observer(virsh).get(Date.now());
  const perObject = batches[1]!.map((c) => c.slice(0, 2).join(" "));
  assert.deepEqual(perObject, ["dumpxml --inactive", "domstate --reason"]);
  assert.deepEqual([picture.domains.get("web")?.state, picture.domains.get("web")?.persistent, picture.domains.get("web")?.autostart], ["shut off", true, false]);
});

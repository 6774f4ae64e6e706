// Rules across manifests (src/api/crossobject.ts): each conflict is reported on every object
// involved, at the field that claims the shared thing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { validateObjectSet, type CrossObjectIssue } from "../../../src/api/index.js";
import { net, pool, valid, vm } from "./helpers.js";

const lines = (found: CrossObjectIssue[]) => found.map((i) => `${i.key} ${i.path.join(".")}: ${i.message}`).sort();

const userVm = (name: string, hostPort: number, protocol = "tcp") =>
  valid(vm(name, { interfaces: [{ network: "lan" }, { user: { portForwards: [{ hostPort, guestPort: 22, protocol }] } }] }));

describe("validateObjectSet", () => {
  it("a valid set has no issues", () => {
    const objects = [
      valid(net("a", { ipv4: { address: "10.1.0.1", prefix: 24 } })),
      valid(net("b", { ipv4: { address: "10.2.0.1", prefix: 24 } })),
      userVm("web1", 5001),
      userVm("web2", 5002),
      userVm("web3", 5001, "udp"), // another protocol is another port
    ];
    assert.deepEqual(validateObjectSet(objects), []);
  });

  it("overlapping subnets across two networks: reported on both, at spec.ipv4.address", () => {
    const found = validateObjectSet([
      valid(net("a", { ipv4: { address: "10.1.0.1", prefix: 16 } })),
      valid(net("b", { ipv4: { address: "10.1.2.1", prefix: 24 } })),
    ]);
    assert.deepEqual(lines(found), [
      "Network/a spec.ipv4.address: ipv4 subnet 10.1.0.1/16 overlaps Network/b (10.1.2.1/24)",
      "Network/b spec.ipv4.address: ipv4 subnet 10.1.2.1/24 overlaps Network/a (10.1.0.1/16)",
    ]);
  });

  it("overlapping IPv6 subnets too", () => {
    const found = validateObjectSet([
      valid(net("a", { mode: "isolated", ipv6: { address: "fd00::1", prefix: 64 } })),
      valid(net("b", { mode: "isolated", ipv6: { address: "fd00::2", prefix: 64 } })),
    ]);
    assert.deepEqual(found.map((i) => i.path.join(".")), ["spec.ipv6.address", "spec.ipv6.address"]);
  });

  it("subnet overlaps: the same pairs, in the same order, as checking every pair (300 random networks, nested and equal blocks)", () => {
    // A seeded walk over a small space, so that nesting, equal blocks and neighbours all occur.
    let seed = 7;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const networks = Array.from({ length: 300 }, (_, i) => {
      const prefix = 20 + rand(10);
      const size = 2 ** (32 - prefix);
      const base = 10 * 2 ** 24 + rand(4) * 2 ** 16 + rand(2 ** 16); // any address in 10.0-3.x.x
      const first = base - (base % size) + 1; // the block's first host address
      const address = [24, 16, 8, 0].map((shift) => Math.floor(first / 2 ** shift) % 256).join(".");
      return valid(net(`n${i}`, { mode: "isolated", ipv4: { address, prefix, dhcp: undefined } }));
    });
    const toNumber = (a: string) => a.split(".").reduce((acc, part) => acc * 256 + Number(part), 0);
    const block = (n: (typeof networks)[number]) => {
      const { address, prefix } = (n.spec as { ipv4: { address: string; prefix: number } }).ipv4;
      const size = 2 ** (32 - prefix);
      const start = toNumber(address) - (toNumber(address) % size);
      return { start, end: start + size - 1 };
    };
    const expected: string[] = [];
    for (const a of networks) {
      for (const b of networks) {
        if (a === b) continue;
        const [x, y] = [block(a), block(b)];
        if (x.start <= y.end && y.start <= x.end) expected.push(`Network/${a.metadata.name} overlaps Network/${b.metadata.name}`);
      }
    }
    const found = validateObjectSet(networks).filter((i) => i.message.includes("overlaps"));
    assert.ok(expected.length > 50, `the walk makes overlaps (${expected.length})`);
    assert.deepEqual(found.map((i) => `${i.key} overlaps ${/overlaps (Network\/\S+)/.exec(i.message)![1]}`), expected);
  });

  it("a host port forwarded by two VMs: reported on both, at the hostPort field", () => {
    const found = validateObjectSet([userVm("web1", 5001), userVm("web2", 5001)]);
    assert.deepEqual(lines(found), [
      "VirtualMachine/web1 spec.interfaces.1.user.portForwards.0.hostPort: host port tcp/5001 is also used by VirtualMachine/web2",
      "VirtualMachine/web2 spec.interfaces.1.user.portForwards.0.hostPort: host port tcp/5001 is also used by VirtualMachine/web1",
    ]);
  });

  it("a host port claimed by a VM and a Network port forward", () => {
    const found = validateObjectSet([
      userVm("web1", 8080),
      valid(net("lan", { ipv4: { address: "10.1.0.1", prefix: 24 }, portForwards: [{ hostPort: 8080, guestAddress: "10.1.0.5", guestPort: 80 }] })),
    ]);
    assert.deepEqual(lines(found), [
      "Network/lan spec.portForwards.0.hostPort: host port tcp/8080 is also used by VirtualMachine/web1",
      "VirtualMachine/web1 spec.interfaces.1.user.portForwards.0.hostPort: host port tcp/8080 is also used by Network/lan",
    ]);
  });

  it("a volume claimed by two VMs: the path names the disk that claims it, even after disks without a volume", () => {
    const found = validateObjectSet([
      valid(vm("a", { disks: [{ name: "scratch", size: "1Gi" }, { name: "data", size: "1Gi", volume: "shared" }] })),
      valid(vm("b", { disks: [{ name: "data", size: "1Gi", volume: "shared" }] })),
    ]);
    assert.deepEqual(lines(found), [
      "VirtualMachine/a spec.disks.1.volume: volume default/shared is also used by VirtualMachine/b",
      "VirtualMachine/b spec.disks.0.volume: volume default/shared is also used by VirtualMachine/a",
    ]);
  });

  it("two pools on one target", () => {
    const found = validateObjectSet([
      valid(pool("a", { type: "dir", path: "/srv/images/" })),
      valid(pool("b", { type: "dir", path: "/srv/images" })),
      valid(pool("c", { type: "logical", volumeGroup: "vg0" })),
      valid(pool("vg0", { type: "logical" })), // the volume group defaults to the pool's name
    ]);
    assert.deepEqual(lines(found), [
      "StoragePool/a spec.path: pool target /srv/images is also used by StoragePool/b",
      "StoragePool/b spec.path: pool target /srv/images is also used by StoragePool/a",
      "StoragePool/c spec.volumeGroup: pool target /dev/vg0 is also used by StoragePool/vg0",
      "StoragePool/vg0 spec.volumeGroup: pool target /dev/vg0 is also used by StoragePool/c",
    ]);
  });

  it("two networks creating the same bridge (bridge mode shares an existing one freely)", () => {
    const found = validateObjectSet([
      valid(net("a", { ipv4: { address: "10.1.0.1", prefix: 24 }, bridge: "virbr9" })),
      valid(net("b", { mode: "isolated", bridge: "virbr9" })),
      valid(net("c", { mode: "bridge", bridge: "br0" })),
      valid(net("d", { mode: "bridge", bridge: "br0" })),
    ]);
    assert.deepEqual(found.map((i) => `${i.key} ${i.path.join(".")}`).sort(), ["Network/a spec.bridge", "Network/b spec.bridge"]);
  });
});

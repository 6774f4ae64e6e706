// Ownership by instance (src/controllers/ownership.ts), through the kind controllers over one
// fake libvirt shared by two controller instances, t1 and t2: each changes and prunes only its
// own objects, reports another's when a manifest names it, and adopts what an earlier kvmctl
// (no instance recorded) made for the manifests it has.
import assert from "node:assert/strict";
import { test } from "node:test";
import { specHash } from "../../../src/api/index.js";
import { KIND_CONTROLLERS } from "../../../src/controllers/registry.js";
import { buildDomainXml, buildNetworkXml, buildPoolXml, networkUuid, ownedUuid, poolUuid } from "../../../src/libvirt/index.js";
import { TerminalError } from "../../../src/runtime/index.js";
import { ControllerHarness, fakePorts } from "../helpers/fake-ports.js";

/** Two controller instances over one libvirt (and one manifest view each). */
function twoInstances(): { t1: ControllerHarness; t2: ControllerHarness } {
  const ports = fakePorts();
  const t1 = new ControllerHarness(ports);
  const t2 = new ControllerHarness(ports);
  t2.settings = { ...t2.settings, instance: "t2" };
  return { t1, t2 };
}

const vmSpec = { memory: "256Mi", runStrategy: "Halted" };

test("a VM of another instance: reported when named (OwnedByOtherInstance), never changed, never pruned", async () => {
  const { t1, t2 } = twoInstances();
  t1.apply("VirtualMachine", "web", vmSpec);
  await t1.converge("VirtualMachine/web");
  const before = t1.hv.dump("domain", ownedUuid("VirtualMachine", "web"));
  t1.hv.clearCalls();

  t2.apply("VirtualMachine", "web", { ...vmSpec, cpus: 4 });
  const error = await t2.rejection("VirtualMachine/web");
  assert.ok(error instanceof TerminalError);
  assert.equal(error.reason, "OwnedByOtherInstance");
  assert.match(error.message, /instance "t1" \(this one is "t2"\)/);

  assert.deepEqual(KIND_CONTROLLERS.VirtualMachine.ownedKeys(await t2.hv.observe(0), "t2"), [], "t2 would never list it for pruning");
  t2.remove("VirtualMachine/web");
  await t2.reconcile("VirtualMachine/web"); // as if listed anyway
  assert.deepEqual(t2.hv.calls, [], "t2 touched nothing");
  assert.equal(t2.hv.dump("domain", ownedUuid("VirtualMachine", "web")), before);
  assert.match(t2.recorder("VirtualMachine/web").deleted.at(-1) ?? "", /belongs to the controller instance "t1": left alone/);
  assert.deepEqual(KIND_CONTROLLERS.VirtualMachine.ownedKeys(await t1.hv.observe(0), "t1"), ["VirtualMachine/web"], "t1 still owns it");
});

test("a VM an earlier kvmctl made: adopted by the instance whose manifest names it, pruned by nobody before", async () => {
  const { t1, t2 } = twoInstances();
  t1.apply("VirtualMachine", "web", vmSpec);
  const stored = t1.snapshot.objects.get("VirtualMachine/web")!;
  // What kvmctl wrote before instances existed: owner metadata without an instance.
  await t1.hv.defineDomain(
    buildDomainXml({ name: "web", uuid: ownedUuid("VirtualMachine", "web"), spec: stored.object.spec as never, domainType: "kvm", disks: [], owner: { manifest: "VirtualMachine/web", file: "virtualmachines/web.yaml", specHash: specHash(stored.raw.spec) } }),
  );
  t1.hv.clearCalls();
  assert.deepEqual(KIND_CONTROLLERS.VirtualMachine.ownedKeys(await t1.hv.observe(0), "t1"), [], "nobody lists it for pruning");
  t2.remove("VirtualMachine/web");
  await t2.reconcile("VirtualMachine/web");
  assert.deepEqual(t2.hv.calls, [], "an instance whose manifests do not name it leaves it alone");
  assert.match(t2.recorder("VirtualMachine/web").deleted.at(-1) ?? "", /earlier kvmctl and never adopted/);

  await t1.converge("VirtualMachine/web");
  assert.equal(t1.hv.domain("web")?.config.owner?.instance, "t1", "adopted: its metadata names t1 now");
  assert.deepEqual(t1.hv.calls, [`defineDomain ${ownedUuid("VirtualMachine", "web")}`], "by a redefine only: same UUID, nothing restarted");
  assert.deepEqual(KIND_CONTROLLERS.VirtualMachine.ownedKeys(await t1.hv.observe(0), "t1"), ["VirtualMachine/web"]);
});

test("networks: another instance's is left alone; an earlier kvmctl's keeps its UUID when adopted", async () => {
  const { t1, t2 } = twoInstances();
  const spec = { mode: "isolated", ipv4: { address: "192.0.2.1", prefix: 24 } };
  t1.apply("Network", "lan", spec);
  await t1.converge("Network/lan");
  assert.equal(t1.hv.network("lan")?.uuid, networkUuid("lan", "t1"), "a new network's UUID names its instance");
  t1.hv.clearCalls();
  t2.apply("Network", "lan", spec);
  const error = await t2.rejection("Network/lan");
  assert.equal((error as TerminalError).reason, "OwnedByOtherInstance");
  assert.deepEqual(t2.hv.calls, []);

  // An earlier kvmctl's network: no instance in its metadata, the UUID derived from the name alone.
  const { t1: fresh } = twoInstances();
  fresh.apply("Network", "old", spec);
  const stored = fresh.snapshot.objects.get("Network/old")!;
  await fresh.hv.defineNetwork(buildNetworkXml("old", stored.object.spec as never, { manifest: "Network/old", file: "networks/old.yaml", specHash: specHash(stored.raw.spec) }, { uuid: networkUuid("old") }));
  await fresh.hv.startNetwork(networkUuid("old"));
  fresh.hv.clearCalls();
  await fresh.converge("Network/old");
  assert.equal(fresh.hv.network("old")?.uuid, networkUuid("old"), "adopted with the UUID it had");
  assert.equal(fresh.hv.network("old")?.config.owner?.instance, "t1");
});

test("pools: an earlier kvmctl's is managed by the manifest naming it but never pruned; another instance's is not touched", async () => {
  const { t1, t2 } = twoInstances();
  t1.hv.hostDirs.add("/srv/images");
  await t1.hv.definePool(buildPoolXml("images", { type: "dir", path: "/srv/images", autostart: true } as never, poolUuid("images")));
  t1.hv.clearCalls();
  t1.apply("StoragePool", "images", { path: "/srv/images" });
  await t1.converge("StoragePool/images");
  assert.ok(t1.hv.pool("images")?.active, "an earlier version's pool is started by the manifest naming it");
  t1.remove("StoragePool/images");
  t1.hv.clearCalls();
  await t1.reconcile("StoragePool/images");
  assert.deepEqual(t1.hv.calls, [], "never pruned: its UUID cannot say who adopted it");

  t2.apply("StoragePool", "fast", { path: "/srv/fast" });
  t2.hv.hostDirs.add("/srv/fast");
  await t2.converge("StoragePool/fast");
  t1.apply("StoragePool", "fast", { path: "/srv/fast" });
  t1.hv.clearCalls();
  const error = await t1.rejection("StoragePool/fast");
  assert.equal((error as TerminalError).reason, "NotOwned");
  assert.deepEqual(t1.hv.calls, []);
});

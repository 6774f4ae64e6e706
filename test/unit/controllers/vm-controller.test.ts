// The VirtualMachine reconciler against an in-memory libvirt (test/unit/helpers/fake-hypervisor.ts):
// create, drift repaired, converged objects left alone, foreign domains never touched, every
// call by kvmctl's own UUID, deletion and its disk policy, dependencies, terminal specs, and the
// graceful stop on virtual time.
import assert from "node:assert/strict";
import { test } from "node:test";
import { KIND_CONTROLLERS } from "../../../src/controllers/registry.js";
import { statusFromFailure } from "../../../src/controllers/status.js";
import { ownedUuid, poolUuid } from "../../../src/libvirt/index.js";
import { DependencyNotReadyError, TerminalError } from "../../../src/runtime/index.js";
import { UUID_RE } from "../helpers/fake-hypervisor.js";
import { ControllerHarness, TEST_INSTANCE } from "../helpers/fake-ports.js";

const WEB = ownedUuid("VirtualMachine", "web");
const POOL = poolUuid("default", TEST_INSTANCE);
const GiB = 1024 ** 3;
const LAN = { mode: "nat", ipv4: { address: "10.20.0.1", prefix: 24, dhcp: { start: "10.20.0.100", end: "10.20.0.200" } } };

/** A harness with the default pool (and optionally network "lan") converged; no calls recorded yet. */
async function scene(options: { network?: boolean } = {}): Promise<ControllerHarness> {
  const h = new ControllerHarness();
  h.apply("StoragePool", "default", { path: "/var/lib/kvmctl/default" });
  await h.converge("StoragePool/default");
  if (options.network) {
    h.apply("Network", "lan", LAN);
    await h.converge("Network/lan");
  }
  h.hv.clearCalls();
  return h;
}

/** A running VM "web" with a 1Gi root disk, converged; calls cleared. */
async function runningWeb(spec: Record<string, unknown> = {}): Promise<ControllerHarness> {
  const h = await scene();
  h.apply("VirtualMachine", "web", { memory: "1Gi", disks: [{ name: "root", size: "1Gi" }], ...spec });
  await h.converge("VirtualMachine/web");
  h.hv.clearCalls();
  return h;
}

test("create: the disk is created, the domain defined and started in one reconcile, Ready with kvmctl's UUID", async () => {
  const h = await scene();
  h.apply("VirtualMachine", "web", { memory: "1Gi", cpus: 2, disks: [{ name: "root", size: "10Gi" }] });
  const outcome = await h.reconcile("VirtualMachine/web");

  assert.deepEqual(h.hv.calls, [`createVolume ${POOL} web-root.qcow2`, `defineDomain ${WEB}`, `startDomain ${WEB}`], "autostart stays off as libvirt defines it: no call");
  assert.equal(outcome.ready, true);
  assert.equal(outcome.report?.facts.phase, "Running");
  assert.deepEqual(outcome.report?.facts.domain, { uuid: WEB, state: "running", reason: "booted" });
  const domain = h.hv.domain("web")!;
  assert.equal(domain.config.memoryBytes, GiB);
  assert.equal(domain.config.vcpus, 2);
  assert.equal(domain.config.owner?.manifest, "VirtualMachine/web");
  assert.deepEqual(domain.config.owner?.createdVolumes, ["default/web-root.qcow2"]);
  assert.equal(domain.autostart, false);
  assert.equal(h.hv.pool("default")!.volumes.get("web-root.qcow2")?.capacity, 10 * GiB);
  assert.deepEqual(h.recorder("VirtualMachine/web").events.map((e) => e.reason), ["Started"]);

  const status = h.status("VirtualMachine/web", outcome);
  assert.equal(status.phase, "Running");
  const conditions = status.conditions as { type: string; status: string }[];
  assert.deepEqual(conditions.map((c) => [c.type, c.status]), [["Ready", "True"]], "RestartRequired absent, nothing Reconciling");

  // The next look changes nothing, and now reports the disk it created.
  h.hv.clearCalls();
  const again = await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, []);
  assert.deepEqual(again.report?.facts.disks, [{ name: "root", pool: "default", volume: "web-root.qcow2", path: "/fake/default/web-root.qcow2", capacity: 10 * GiB }]);
});

test("create: autostart true is turned on once, by UUID", async () => {
  const h = await scene();
  h.apply("VirtualMachine", "web", { autostart: true, disks: [{ name: "root", size: "1Gi" }] });
  await h.converge("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [`createVolume ${POOL} web-root.qcow2`, `defineDomain ${WEB}`, `setDomainAutostart ${WEB} on`, `startDomain ${WEB}`]);
  assert.equal(h.hv.domain("web")?.autostart, true);
  h.hv.clearCalls();
  await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, []);
});

test("create: an interface on a Network and status reports the MAC libvirt chose", async () => {
  const h = await scene({ network: true });
  h.apply("VirtualMachine", "web", { interfaces: [{ network: "lan" }] });
  const outcome = await h.converge("VirtualMachine/web");
  const [nic] = outcome.report?.facts.interfaces ?? [];
  assert.equal(nic?.type, "network");
  assert.equal(nic?.source, "lan");
  assert.match(nic?.mac ?? "", /^52:54:00:/);
});

test("create: a disk from an image is imported (same format: uploaded; another: converted) and grown to its size", async () => {
  const h = await scene();
  h.ports.images.images.set("/images/base.qcow2", { format: "qcow2", virtualSize: 2 * GiB });
  h.ports.images.images.set("/images/base.raw", { format: "raw", virtualSize: 2 * GiB });
  h.apply("VirtualMachine", "web", { disks: [{ name: "root", from: { image: "/images/base.qcow2" }, size: "5Gi" }, { name: "data", from: { image: "/images/base.raw" } }] });
  await h.converge("VirtualMachine/web");
  assert.deepEqual(h.hv.calls.slice(0, 4), [`createVolume ${POOL} web-root.qcow2`, `uploadVolume ${POOL} web-root.qcow2`, `resizeVolume ${POOL} web-root.qcow2 ${5 * GiB}`, `createVolume ${POOL} web-data.qcow2`]);
  assert.equal(h.hv.volumeOrigins.get(`${POOL}/web-root.qcow2`), "upload /images/base.qcow2");
  assert.deepEqual(h.ports.images.conversions, [{ source: "/images/base.raw", sourceFormat: "raw", target: "/fake/default/web-data.qcow2", targetFormat: "qcow2" }]);
  assert.equal(h.hv.pool("default")?.volumes.get("web-root.qcow2")?.capacity, 5 * GiB);
});

test("create: a disk cloned from a volume gets the source's capacity, grown to its size", async () => {
  const h = await scene();
  h.hv.addVolume("default", "golden.qcow2", 3 * GiB);
  h.apply("VirtualMachine", "web", { disks: [{ name: "root", from: { volume: "golden.qcow2" }, size: "8Gi" }] });
  await h.converge("VirtualMachine/web");
  assert.deepEqual(h.hv.calls.slice(0, 2), [`createVolumeFrom ${POOL} web-root.qcow2 ${POOL} golden.qcow2`, `resizeVolume ${POOL} web-root.qcow2 ${8 * GiB}`]);
  assert.equal(h.hv.volumeOrigins.get(`${POOL}/web-root.qcow2`), "clone default/golden.qcow2");
  assert.equal(h.hv.pool("default")?.volumes.get("web-root.qcow2")?.capacity, 8 * GiB);
});

test("drift: a domain stopped by hand is started again, and only that", async () => {
  const h = await runningWeb();
  await h.hv.byHand((hv) => hv.destroyDomain(WEB));
  assert.equal(h.hv.domain("web")?.state, "shut off");
  const outcome = await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [`startDomain ${WEB}`]);
  assert.equal(outcome.report?.facts.phase, "Running");
  h.hv.clearCalls();
  await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [], "converged: no call");
});

test("drift: a domain undefined by hand while running is defined again, not restarted", async () => {
  const h = await runningWeb();
  await h.hv.byHand((hv) => hv.undefineDomain(WEB));
  assert.equal(h.hv.domain("web")?.persistent, false);
  const outcome = await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [`defineDomain ${WEB}`]);
  assert.equal(h.hv.domain("web")?.persistent, true);
  assert.equal(h.hv.domain("web")?.reason, "booted", "still the same boot");
  assert.equal(outcome.ready, true);
  h.hv.clearCalls();
  await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, []);
});

test("drift: memory changed in the definition by hand is put back by redefining, the running guest untouched", async () => {
  const h = await runningWeb();
  h.hv.editDomain("web", (config) => (config.memoryBytes = 4 * GiB));
  await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [`defineDomain ${WEB}`]);
  assert.equal(h.hv.domain("web")?.config.memoryBytes, GiB);
  assert.equal(h.hv.domain("web")?.state, "running");
  h.hv.clearCalls();
  await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, []);
});

test("drift: autostart turned off by hand is turned on again", async () => {
  const h = await runningWeb({ autostart: true });
  await h.hv.byHand((hv) => hv.setDomainAutostart(WEB, false));
  await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [`setDomainAutostart ${WEB} on`]);
});

test("a spec change that needs a cold boot: defined for the next boot, RestartRequired, the guest keeps running", async () => {
  const h = await runningWeb();
  h.apply("VirtualMachine", "web", { memory: "2Gi", disks: [{ name: "root", size: "1Gi" }] });
  const outcome = await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [`defineDomain ${WEB}`]);
  assert.equal(h.hv.domain("web")?.running?.memoryBytes, GiB);
  assert.equal(h.hv.domain("web")?.config.memoryBytes, 2 * GiB);
  const status = h.status("VirtualMachine/web", outcome);
  const restart = (status.conditions as { type: string; status: string }[]).find((c) => c.type === "RestartRequired");
  assert.equal(restart?.status, "True");
  assert.ok(h.recorder("VirtualMachine/web").events.some((e) => e.reason === "RestartRequired"));
});

test("a foreign domain with the VM's name: TerminalError NotOwned, and no call touches it", async () => {
  const h = await scene();
  const foreign = await h.hv.addForeignDomain("web", { running: true });
  const before = h.hv.dump("domain", foreign);
  h.apply("VirtualMachine", "web", { disks: [{ name: "root", size: "1Gi" }] });
  const error = await h.rejection("VirtualMachine/web");
  assert.ok(error instanceof TerminalError);
  assert.equal(error.reason, "NotOwned");
  assert.deepEqual(h.hv.calls, [], "not even its disk is created");
  assert.equal(h.hv.dump("domain", foreign), before);
  const status = h.failureStatus("VirtualMachine/web", error);
  assert.equal(status.phase, "Failed");
  assert.deepEqual((status.conditions as { type: string; status: string; reason: string }[]).map((c) => [c.type, c.status, c.reason]), [["Ready", "False", "NotOwned"], ["Stalled", "True", "NotOwned"]]);

  // Deleting the manifest leaves it alone, and says so.
  h.remove("VirtualMachine/web");
  const outcome = await h.reconcile("VirtualMachine/web");
  assert.equal(outcome.ready, true);
  assert.deepEqual(h.hv.calls, []);
  assert.equal(h.hv.dump("domain", foreign), before);
  assert.deepEqual(h.recorder("VirtualMachine/web").deleted, [`domain "web" was not created by kvmctl: left alone`]);
  assert.equal(h.recorder("VirtualMachine/web").events.at(-1)?.reason, "Deleted");
});

for (const [label, name] of [
  ["a number (a foreign domain has that ID)", "7"],
  ["a foreign domain's UUID", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"],
] as const) {
  test(`UUID addressing: a VM named ${label} is created and deleted by its own UUID; the foreign domain is unchanged`, async () => {
    const h = await scene();
    const foreign = await h.hv.addForeignDomain("legacy", { running: true, id: 7, uuid: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", autostart: true });
    const before = h.hv.dump("domain", foreign);
    const own = ownedUuid("VirtualMachine", name);

    h.apply("VirtualMachine", name, { disks: [{ name: "root", size: "1Gi" }] });
    const created = await h.converge(`VirtualMachine/${name}`);
    assert.equal(created.report?.facts.domain?.uuid, own);
    h.remove(`VirtualMachine/${name}`);
    await h.reconcile(`VirtualMachine/${name}`);

    assert.equal(h.hv.domain(name), undefined, "kvmctl's domain is gone");
    assert.equal(h.hv.dump("domain", foreign), before, "the foreign domain is as it was: running, persistent, autostart on");
    for (const call of h.hv.calls) assert.match(call.split(" ")[1] ?? "", UUID_RE, `${call}: addressed by UUID`);
    assert.deepEqual(h.hv.uuidsTouched().sort(), [own, POOL].sort());
    assert.ok(h.hv.calls.includes(`destroyDomain ${own}`) && h.hv.calls.includes(`undefineDomain ${own}`));
  });
}

test("delete with deletionPolicy Retain: the domain is destroyed and undefined, its disk kept", async () => {
  const h = await runningWeb();
  h.remove("VirtualMachine/web");
  const outcome = await h.reconcile("VirtualMachine/web");
  assert.equal(outcome.ready, true);
  assert.equal(outcome.report, undefined, "no status to write: the manifest is gone");
  assert.deepEqual(h.hv.calls, [`destroyDomain ${WEB}`, `undefineDomain ${WEB}`]);
  assert.equal(h.hv.domain("web"), undefined);
  assert.ok(h.hv.pool("default")?.volumes.has("web-root.qcow2"), "Retain keeps the disk");
  assert.match(h.recorder("VirtualMachine/web").deleted[0] ?? "", /power off; undefine/);
  // Looked at again: nothing to do, no second Deleted event.
  h.hv.clearCalls();
  await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, []);
  assert.equal(h.recorder("VirtualMachine/web").events.filter((e) => e.reason === "Deleted").length, 1);
});

test("delete with deletionPolicy Delete: only the volumes kvmctl created are deleted", async () => {
  const h = await scene();
  h.hv.addVolume("default", "shared.img", GiB, "raw");
  h.apply("VirtualMachine", "web", { deletionPolicy: "Delete", disks: [{ name: "root", size: "1Gi" }, { name: "data", volume: "shared.img", size: "1Gi" }] });
  await h.converge("VirtualMachine/web");
  assert.deepEqual(h.hv.domain("web")?.config.owner?.createdVolumes, ["default/web-root.qcow2"]);
  h.hv.clearCalls();
  h.remove("VirtualMachine/web");
  await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [`destroyDomain ${WEB}`, `deleteVolume ${POOL} web-root.qcow2`, `undefineDomain ${WEB}`], "volumes before the definition that records them");
  assert.deepEqual([...h.hv.pool("default")!.volumes.keys()], ["shared.img"]);
});

test("delete: a stopped domain is undefined without a destroy", async () => {
  const h = await runningWeb({ runStrategy: "Manual" });
  await h.hv.byHand((hv) => hv.destroyDomain(WEB));
  h.remove("VirtualMachine/web");
  await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [`undefineDomain ${WEB}`]);
});

test("dependencies: a missing pool or network is waited for (DependencyNotReadyError), nothing is created", async () => {
  const h = new ControllerHarness();
  h.apply("VirtualMachine", "web", { disks: [{ name: "root", pool: "fast", size: "1Gi" }] });
  const error = await h.rejection("VirtualMachine/web");
  assert.ok(error instanceof DependencyNotReadyError, String(error));
  assert.ok(!(error instanceof TerminalError));
  assert.match(error.message, /StoragePool "fast"/);
  assert.deepEqual(h.hv.calls, []);
  const status = h.failureStatus("VirtualMachine/web", error);
  assert.equal(status.phase, "Pending");
  assert.deepEqual((status.conditions as { type: string; reason: string }[]).map((c) => [c.type, c.reason]), [["Ready", "DependencyNotReady"], ["Reconciling", "DependencyNotReady"]]);

  const withPool = await scene();
  withPool.apply("VirtualMachine", "web", { interfaces: [{ network: "lan" }] });
  const waiting = await withPool.rejection("VirtualMachine/web");
  assert.ok(waiting instanceof DependencyNotReadyError);
  assert.match(waiting.message, /Network "lan"/);
  assert.deepEqual(withPool.hv.calls, []);

  // The network appears: the VM goes on.
  withPool.apply("Network", "lan", LAN);
  await withPool.converge("Network/lan");
  const outcome = await withPool.converge("VirtualMachine/web");
  assert.equal(outcome.report?.facts.phase, "Running");
});

test("dependencies: an unreadable VNC password file is waited for, not a failure of the spec", async () => {
  const h = await scene();
  h.apply("VirtualMachine", "web", { consoles: { vnc: { passwordSecretFile: "/etc/kvmctl/vnc-web" } } });
  const error = await h.rejection("VirtualMachine/web");
  assert.ok(error instanceof DependencyNotReadyError);
  assert.deepEqual(h.hv.calls, []);
  h.ports.secrets.files.set("/etc/kvmctl/vnc-web", "s3cret\n");
  const outcome = await h.converge("VirtualMachine/web");
  assert.equal(outcome.report?.facts.vnc?.listen, "127.0.0.1");
  assert.ok((outcome.report?.facts.vnc?.port ?? 0) >= 5900, "the port libvirt allocated");
});

test("a start reads its domain back with it: no second reading, and the status shows what only the running domain has", async () => {
  for (const readBack of ["works", "fails"] as const) {
    const h = await scene();
    h.ports.secrets.files.set("/etc/kvmctl/vnc-web", "s3cret\n");
    h.apply("VirtualMachine", "web", { consoles: { vnc: { passwordSecretFile: "/etc/kvmctl/vnc-web" } } });
    h.hv.startReadBack = readBack;
    const before = h.hv.domainReads;
    const outcome = await h.reconcile("VirtualMachine/web");
    assert.deepEqual(h.hv.calls, [`defineDomain ${WEB}`, `startDomain ${WEB}`]);
    assert.equal(h.hv.domainReads - before, readBack === "works" ? 0 : 1, `start's reading ${readBack}: ${readBack === "works" ? "nothing read again" : "the domain is read again"}`);
    assert.ok((outcome.report?.facts.vnc?.port ?? 0) >= 5900, "the port libvirt allocated at the start");
    assert.deepEqual(outcome.report?.facts.domain, { uuid: WEB, state: "running", reason: "booted" });
  }
});

test("a disk from a URL waits for its download (Downloading), nothing is created meanwhile (see vm-base-images.test.ts)", async () => {
  const h = await scene();
  h.apply("VirtualMachine", "web", { disks: [{ name: "root", from: { url: "https://images.example/debian.qcow2", sha256: "ab".repeat(32) } }] });
  const outcome = await h.reconcile("VirtualMachine/web");
  assert.equal(outcome.ready, false);
  assert.equal(outcome.report?.reason, "Downloading");
  assert.deepEqual(h.hv.calls, []);
});

test("runStrategy Halted with a guest that ignores ACPI: shutdown first, destroy only after the grace period", async () => {
  const h = await runningWeb();
  h.hv.acpiIgnored = true;
  h.apply("VirtualMachine", "web", { runStrategy: "Halted", terminationGracePeriodSeconds: 30, memory: "1Gi", disks: [{ name: "root", size: "1Gi" }] });

  const first = await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [`defineDomain ${WEB}`, `shutdownDomain ${WEB}`], "the new spec recorded, then ACPI");
  assert.equal(first.ready, false);
  assert.equal(first.report?.facts.phase, "Stopping");
  assert.equal(h.hv.domain("web")?.state, "running", "the guest ignored it");

  h.hv.clearCalls();
  await h.clock.advance(29_000);
  const waiting = await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [], "within the grace period: no second shutdown, no destroy");
  assert.equal(waiting.report?.facts.phase, "Stopping");
  assert.ok((waiting.requeueAfterMs ?? Infinity) <= 1_000, "looks again soon");

  await h.clock.advance(1_000);
  const forced = await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [`destroyDomain ${WEB}`]);
  assert.deepEqual(forced.report?.facts.domain, { uuid: WEB, state: "shut off", reason: "destroyed" });
  assert.equal(forced.report?.facts.phase, "Stopped");

  h.hv.clearCalls();
  const settled = await h.reconcile("VirtualMachine/web");
  assert.equal(settled.ready, true);
  assert.equal(settled.report?.message, "domain is stopped");
  assert.deepEqual(h.hv.calls, []);
});

test("runStrategy Halted with a guest that honours ACPI: it stops without a destroy", async () => {
  const h = await runningWeb();
  h.apply("VirtualMachine", "web", { runStrategy: "Halted", memory: "1Gi", disks: [{ name: "root", size: "1Gi" }] });
  await h.reconcile("VirtualMachine/web");
  assert.deepEqual([h.hv.domain("web")?.state, h.hv.domain("web")?.reason], ["shut off", "shutdown"]);
  h.hv.clearCalls();
  const outcome = await h.reconcile("VirtualMachine/web");
  assert.equal(outcome.ready, true);
  assert.deepEqual(h.hv.calls, []);
});

test("allowRestart: a change that needs a cold boot shuts the guest down and starts it again with the new definition", async () => {
  const h = await runningWeb();
  h.apply("VirtualMachine", "web", { memory: "2Gi", allowRestart: true, disks: [{ name: "root", size: "1Gi" }] });
  const stopping = await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [`defineDomain ${WEB}`, `shutdownDomain ${WEB}`]);
  assert.equal(stopping.ready, false);
  h.hv.clearCalls();
  const started = await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [`startDomain ${WEB}`]);
  assert.equal(started.ready, true);
  assert.equal(h.hv.domain("web")?.running?.memoryBytes, 2 * GiB);
});

test("RerunOnFailure: a crashed guest is started again, one that shut itself down is not", async () => {
  const h = await runningWeb({ runStrategy: "RerunOnFailure" });
  h.hv.guestStopped("web", "crashed");
  const crashed = await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, [`startDomain ${WEB}`]);
  assert.equal(crashed.report?.facts.startedOnce, true);
  h.hv.clearCalls();
  h.hv.guestStopped("web", "shutdown");
  const done = await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls, []);
  assert.equal(done.report?.facts.phase, "Stopped");
  assert.equal(done.ready, true);
});

test("delete with deletionPolicy Delete while the pool is stopped: the volume is deleted once the pool is back", async () => {
  const h = await runningWeb({ deletionPolicy: "Delete" });
  await h.hv.byHand((hv) => hv.destroyPool(POOL));
  h.remove("VirtualMachine/web");
  await h.attempt("VirtualMachine/web"); // fails: the pool is not active
  await h.hv.byHand((hv) => hv.startPool(POOL));
  await h.attempt("VirtualMachine/web");
  assert.ok(!h.hv.pool("default")?.volumes.has("web-root.qcow2"), "the disk kvmctl created is deleted");
});

test("delete of a domain undefined by hand while running (transient): powered off, nothing left, no error", async () => {
  const h = await runningWeb({ deletionPolicy: "Delete" });
  await h.hv.byHand((hv) => hv.undefineDomain(WEB));
  h.remove("VirtualMachine/web");
  const attempt = await h.attempt("VirtualMachine/web");
  assert.equal(attempt.error, undefined);
  assert.equal(h.hv.domain("web"), undefined);
  assert.ok(!h.hv.pool("default")?.volumes.has("web-root.qcow2"));
});

test("a libvirt failure propagates (retried by the runtime) and the status keeps the last facts", async () => {
  const h = await runningWeb();
  const converged = await h.reconcile("VirtualMachine/web");
  h.writeStatus("VirtualMachine/web", h.status("VirtualMachine/web", converged));
  await h.hv.byHand((hv) => hv.destroyDomain(WEB));
  h.hv.failNext("startDomain", new Error("internal error: qemu unexpectedly closed the monitor"));
  const error = await h.rejection("VirtualMachine/web");
  assert.ok(!(error instanceof TerminalError) && !(error instanceof DependencyNotReadyError));
  const status = h.failureStatus("VirtualMachine/web", error);
  assert.equal(status.phase, "Running", "the last facts stay");
  assert.equal((status.conditions as { type: string; reason: string }[]).find((c) => c.type === "Ready")?.reason, "ReconcileFailed");
});

test("a disk of a running VM grows live (blockresize), the stopped VM's offline (vol-resize)", async () => {
  const h = await runningWeb();
  const spec = h.snapshot.objects.get("VirtualMachine/web")!.raw.spec as { disks: { name: string; size: string }[] };
  h.apply("VirtualMachine", "web", { ...spec, disks: spec.disks.map((d) => ({ ...d, size: "20Gi" })) });
  const grown = await h.reconcile("VirtualMachine/web");
  assert.deepEqual(h.hv.calls.filter((c) => /resize/i.test(c)), [`resizeDiskLive ${WEB} vda ${20 * 1024 ** 3}`], "vol-resize would fail on the image QEMU holds");
  assert.equal(h.hv.pool("default")?.volumes.get("web-root.qcow2")?.capacity, 20 * 1024 ** 3);
  const disks = h.status("VirtualMachine/web", grown).disks as { volume: string; capacity?: number }[];
  assert.deepEqual(disks.map((d) => [d.volume, d.capacity]), [["web-root.qcow2", 20 * 1024 ** 3]], "status reports the volume as the step left it (read back, no later reconcile needed)");
  await h.hv.byHand((hv) => hv.destroyDomain(WEB));
  h.apply("VirtualMachine", "web", { ...spec, runStrategy: "Halted", disks: spec.disks.map((d) => ({ ...d, size: "30Gi" })) });
  h.hv.clearCalls();
  await h.reconcile("VirtualMachine/web");
  assert.ok(h.hv.calls.includes(`resizeVolume ${POOL} web-root.qcow2 ${30 * 1024 ** 3}`), h.hv.calls.join("\n"));
});

test("a failing reconcile keeps the live facts: a running VM stays Running with its domain and disks, plus ReconcileFailed", async () => {
  const h = await runningWeb();
  const spec = h.snapshot.objects.get("VirtualMachine/web")!.raw.spec as { disks: { name: string; size: string }[] };
  const stored = h.apply("VirtualMachine", "web", { ...spec, disks: spec.disks.map((d) => ({ ...d, size: "20Gi" })) });
  h.hv.failNext("resizeDiskLive", new Error("internal error: unable to execute QEMU command 'block_resize'"));
  const error = await h.rejection("VirtualMachine/web");
  // What the manager writes: the kind's live facts under the failure's conditions (no earlier status to keep).
  const live = await h.hv.observe(0);
  const facts = KIND_CONTROLLERS.VirtualMachine.liveFacts!({ key: stored.key, name: "web", object: stored.object as never, specHash: stored.specHash, file: stored.location.file }, live, TEST_INSTANCE);
  const status = statusFromFailure(stored, error, KIND_CONTROLLERS.VirtualMachine.failurePhase, TEST_INSTANCE, new Date(), facts);
  assert.equal(status.phase, "Running");
  assert.equal((status.domain as { uuid: string; state: string }).uuid, WEB);
  assert.equal((status.domain as { state: string }).state, "running");
  assert.deepEqual((status.disks as { volume: string }[]).map((d) => d.volume), ["web-root.qcow2"]);
  assert.deepEqual((status.conditions as { type: string; reason: string }[]).map((c) => [c.type, c.reason]), [["Ready", "ReconcileFailed"], ["Reconciling", "ReconcileFailed"]]);
  assert.deepEqual(KIND_CONTROLLERS.VirtualMachine.liveFacts!({ key: stored.key, name: "web", object: stored.object as never, specHash: stored.specHash, file: stored.location.file }, live, "another"), {}, "another instance's domain says nothing of this manifest");
});

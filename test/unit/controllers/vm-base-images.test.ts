// Disks from a URL on the fakes: the reconcile starts the download in the background and
// waits (Downloading, with progress in status), two VMs naming the same URL and sha256 share
// one download and one base volume, a cut download is resumed, a checksum mismatch is
// terminal, and the base is imported once per pool and cloned for each VM; another controller
// instance naming the same image in the same pool imports its own base and never touches this
// one's.
import assert from "node:assert/strict";
import { test } from "node:test";
import { poolUuid } from "../../../src/libvirt/index.js";
import { TerminalError } from "../../../src/runtime/index.js";
import { baseVolumeName, planVm } from "../../../src/controllers/virtualmachine/plan.js";
import { KIND_CONTROLLERS } from "../../../src/controllers/registry.js";
import { ControllerHarness, FakeDownloads, TEST_INSTANCE } from "../helpers/fake-ports.js";

const POOL = poolUuid("default", TEST_INSTANCE);
const MiB = 1 << 20;
const SHA = "ab".repeat(32);
const URL_ = "http://127.0.0.1:8080/images/base.qcow2";
const BASE = baseVolumeName(TEST_INSTANCE, SHA, "qcow2");

async function scene(): Promise<ControllerHarness> {
  const h = new ControllerHarness();
  h.apply("StoragePool", "default", { path: "/var/lib/kvmctl/default" });
  await h.converge("StoragePool/default");
  h.hv.clearCalls();
  return h;
}

function vm(h: ControllerHarness, name: string, sha256 = SHA, url = URL_): void {
  h.apply("VirtualMachine", name, { runStrategy: "Halted", disks: [{ name: "root", from: { url, sha256 }, size: "64Mi" }] });
}

test("the schema: url needs sha256 (64 hex digits), sha256 only with url", async () => {
  const h = await scene();
  assert.throws(() => h.apply("VirtualMachine", "a", { disks: [{ name: "root", from: { url: URL_ } }] }), /url needs sha256/);
  assert.throws(() => h.apply("VirtualMachine", "a", { disks: [{ name: "root", from: { url: URL_, sha256: "abc" } }] }), /64 hex digits/);
  assert.throws(() => h.apply("VirtualMachine", "a", { disks: [{ name: "root", from: { image: "/var/lib/kvmctl/x.qcow2", sha256: SHA } }] }), /sha256 only goes with url/);
  assert.throws(() => h.apply("VirtualMachine", "a", { disks: [{ name: "root", from: { url: "file:///etc/shadow", sha256: SHA } }] }), /http\(s\) URL/);
});

test("waiting while downloading: the download starts in the background, the reconcile returns Downloading with progress, nothing else is done", async () => {
  const h = await scene();
  vm(h, "web");
  const first = await h.reconcile("VirtualMachine/web");
  assert.equal(first.ready, false);
  assert.equal(first.report?.reason, "Downloading");
  assert.ok(first.requeueAfterMs !== undefined && first.requeueAfterMs <= 10_000);
  assert.deepEqual(h.ports.downloads.started, [{ url: URL_, sha256: SHA, from: 0 }]);
  assert.deepEqual(h.hv.calls, [], "no volume, no domain while the image is not there");
  assert.deepEqual(h.recorder("VirtualMachine/web").events.map((e) => e.reason), ["DownloadStarted"]);
  assert.equal(first.report?.facts.phase, "Provisioning");

  h.ports.downloads.progress(SHA, 4 * MiB, 16 * MiB);
  const second = await h.reconcile("VirtualMachine/web");
  assert.match(second.report!.message, /downloading http:\/\/127\.0\.0\.1:8080\/images\/base\.qcow2 for disk "root": 25% \(4\.0 MiB of 16\.0 MiB\)/);
  assert.deepEqual(second.report?.facts.disks?.[0]?.download, { bytes: 4 * MiB, total: 16 * MiB });
  assert.equal(second.report?.facts.disks?.[0]?.base, BASE);
  assert.equal(h.ports.downloads.started.length, 1, "a running download is not started again");
  const status = h.status("VirtualMachine/web", second) as { conditions: { type: string; status: string; reason: string; message: string }[] };
  const ready = status.conditions.find((c) => c.type === "Ready")!;
  assert.equal(ready.status, "False");
  assert.match(ready.message, /25%/);

  // Done: imported into the pool once, cloned for the VM, defined; the events say so.
  const file = h.ports.downloads.finish(SHA, 16 * MiB);
  h.ports.images.images.set(file, { format: "qcow2", virtualSize: 32 * MiB });
  const done = await h.reconcile("VirtualMachine/web");
  assert.equal(done.ready, true, JSON.stringify(done.report));
  assert.equal(h.hv.volumeOrigins.get(`${POOL}/${BASE}`), `upload ${file}`);
  assert.equal(h.hv.volumeOrigins.get(`${POOL}/web-root.qcow2`), `clone default/${BASE}`);
  assert.equal(h.hv.pool("default")!.volumes.get("web-root.qcow2")!.capacity, 64 * MiB);
  assert.ok(await h.ports.downloads.imported(SHA, `${POOL}/${BASE}`));
  assert.deepEqual(h.recorder("VirtualMachine/web").events.map((e) => e.reason), ["DownloadStarted", "DownloadCompleted", "Converged"]);
  assert.deepEqual(h.hv.domain("web")!.config.owner?.createdVolumes, ["default/web-root.qcow2"], "the shared base is no VM's volume: deleting a VM never deletes it");
});

test("the base volume's name: the instance and the first 16 hex digits of the sha256", () => {
  assert.equal(BASE, "kvmctl-base-t1-abababababababab.qcow2");
  assert.equal(baseVolumeName("k0a1b2c3d", "CD".repeat(32), "raw"), "kvmctl-base-k0a1b2c3d-cdcdcdcdcdcdcdcd.raw");
});

test("two VMs naming the same URL and sha256 share one download and one base volume", async () => {
  const h = await scene();
  vm(h, "a");
  vm(h, "b");
  await h.reconcile("VirtualMachine/a");
  await h.reconcile("VirtualMachine/b");
  assert.equal(h.ports.downloads.started.length, 1, "one download for both");
  assert.deepEqual(h.recorder("VirtualMachine/b").events, [], "b waits for the download a started");

  const file = h.ports.downloads.finish(SHA, 16 * MiB);
  h.ports.images.images.set(file, { format: "qcow2", virtualSize: 32 * MiB });
  assert.equal((await h.reconcile("VirtualMachine/a")).ready, true);
  assert.equal((await h.reconcile("VirtualMachine/b")).ready, true);
  assert.equal(h.hv.calls.filter((c) => c.startsWith("uploadVolume")).length, 1, "imported once");
  assert.equal(h.hv.volumeOrigins.get(`${POOL}/a-root.qcow2`), `clone default/${BASE}`);
  assert.equal(h.hv.volumeOrigins.get(`${POOL}/b-root.qcow2`), `clone default/${BASE}`);
});

test("a base being imported by another reconcile is waited for; a base left by a cut import is made again", async () => {
  const h = await scene();
  vm(h, "web");
  await h.reconcile("VirtualMachine/web");
  const file = h.ports.downloads.finish(SHA, 16 * MiB);
  h.ports.images.images.set(file, { format: "qcow2", virtualSize: 32 * MiB });

  const release = h.baseImports.claim(`${POOL}/${BASE}`)!;
  const waiting = await h.reconcile("VirtualMachine/web");
  assert.equal(waiting.report?.reason, "Downloading");
  assert.match(waiting.report!.message, /waiting for the import of the base image/);
  release();

  // A base volume in the pool that was never recorded as whole (the controller died mid-upload).
  h.hv.addVolume("default", BASE, 32 * MiB);
  h.hv.clearCalls();
  assert.equal((await h.reconcile("VirtualMachine/web")).ready, true);
  assert.ok(h.hv.calls.includes(`deleteVolume ${POOL} ${BASE}`), h.hv.calls.join("\n"));
  assert.equal(h.hv.volumeOrigins.get(`${POOL}/${BASE}`), `upload ${file}`);
});

test("two controller instances naming the same image in one pool: each imports its own base; neither deletes, overwrites or adopts the other's (nor an earlier kvmctl's)", async () => {
  const a = await scene();
  // A second controller instance (another manifest directory) over the same libvirt, with its
  // own download directory: no record of a's import. Its VM uses a's pool by name.
  const b = new ControllerHarness({ ...a.ports, downloads: new FakeDownloads() });
  b.settings = { ...b.settings, instance: "t2" };
  // A base an earlier kvmctl imported under the name without an instance.
  const legacy = `kvmctl-base-${SHA.slice(0, 16)}.qcow2`;
  a.hv.addVolume("default", legacy, 32 * MiB);

  vm(a, "web");
  await a.reconcile("VirtualMachine/web");
  const file = a.ports.downloads.finish(SHA, 16 * MiB);
  a.ports.images.images.set(file, { format: "qcow2", virtualSize: 32 * MiB });
  assert.equal((await a.reconcile("VirtualMachine/web")).ready, true);
  assert.equal(a.hv.volumeOrigins.get(`${POOL}/${BASE}`), `upload ${file}`);
  const baseOfA = a.hv.pool("default")!.volumes.get(BASE);

  a.hv.clearCalls();
  vm(b, "api");
  await b.reconcile("VirtualMachine/api");
  b.ports.downloads.finish(SHA, 16 * MiB);
  const done = await b.reconcile("VirtualMachine/api");
  assert.equal(done.ready, true, JSON.stringify(done.report));
  const BASE_B = baseVolumeName("t2", SHA, "qcow2");
  assert.equal(done.report?.facts.disks?.[0]?.base, BASE_B);
  assert.equal(a.hv.volumeOrigins.get(`${POOL}/${BASE_B}`), `upload ${file}`);
  assert.equal(a.hv.volumeOrigins.get(`${POOL}/api-root.qcow2`), `clone default/${BASE_B}`);
  assert.ok(!a.hv.calls.some((c) => c.startsWith("deleteVolume")), a.hv.calls.join("\n"));
  assert.deepEqual(a.hv.calls.filter((c) => c.split(" ").some((word) => word === BASE || word === legacy)), [], "no call names a's base or the earlier one");
  assert.deepEqual(a.hv.pool("default")!.volumes.get(BASE), baseOfA, "a's base as a imported it");
  assert.equal(a.hv.volumeOrigins.get(`${POOL}/${BASE}`), `upload ${file}`);
  assert.ok(a.hv.pool("default")!.volumes.has(legacy), "an earlier kvmctl's base is left alone");

  // And the other way: a's next VM clones a's own base as it is; b's is not touched.
  a.hv.clearCalls();
  vm(a, "db");
  assert.equal((await a.reconcile("VirtualMachine/db")).ready, true);
  assert.equal(a.hv.volumeOrigins.get(`${POOL}/db-root.qcow2`), `clone default/${BASE}`);
  assert.ok(!a.hv.calls.some((c) => /^(deleteVolume|uploadVolume|createVolume)\b/.test(c) && c.includes("kvmctl-base-")), a.hv.calls.join("\n"));
});

test("resume after a cut: a Warning, the download started again from where it broke", async () => {
  const h = await scene();
  vm(h, "web");
  await h.reconcile("VirtualMachine/web");
  h.ports.downloads.progress(SHA, 8 * MiB, 16 * MiB);
  h.ports.downloads.cut(SHA, "downloading http://127.0.0.1:8080/images/base.qcow2: the connection closed after 8388608 of 16777216 bytes");
  const outcome = await h.reconcile("VirtualMachine/web");
  assert.equal(outcome.report?.reason, "Downloading");
  assert.deepEqual(h.ports.downloads.started.map((s) => s.from), [0, 8 * MiB]);
  assert.equal(outcome.requeueAfterMs, 10_000, "a broken download is looked at less often");
  const events = h.recorder("VirtualMachine/web").events;
  assert.deepEqual(events.map((e) => e.reason), ["DownloadStarted", "DownloadFailed", "DownloadStarted"]);
  assert.match(events[2]!.message, /resuming at byte 8388608/);
});

test("a checksum mismatch is terminal (ChecksumMismatch naming both sums), nothing is created", async () => {
  const h = await scene();
  vm(h, "web");
  await h.reconcile("VirtualMachine/web");
  const actual = "cd".repeat(32);
  h.ports.downloads.corrupt(SHA, actual);
  const error = await h.rejection("VirtualMachine/web");
  assert.ok(error instanceof TerminalError);
  assert.equal(error.reason, "ChecksumMismatch");
  assert.match(error.message, new RegExp(`sha256 ${actual}, not the expected ${SHA}`));
  assert.deepEqual(h.hv.calls, []);
  assert.equal(h.ports.downloads.started.length, 1, "not downloaded again");
  const status = h.failureStatus("VirtualMachine/web", error) as { phase: string; conditions: { type: string; reason: string }[] };
  assert.equal(status.phase, "Failed");
  assert.ok(status.conditions.some((c) => c.type === "Stalled" && c.reason === "ChecksumMismatch"));
});

test("an image that is neither qcow2 nor raw is refused", async () => {
  const h = await scene();
  vm(h, "web");
  await h.reconcile("VirtualMachine/web");
  const file = h.ports.downloads.finish(SHA, MiB);
  h.ports.images.images.set(file, { format: "vmdk", virtualSize: 32 * MiB });
  const error = await h.rejection("VirtualMachine/web");
  assert.ok(error instanceof TerminalError);
  assert.equal(error.reason, "UnsupportedImageFormat");
});

test("kvmctl diff (no downloads asked): the download in words; with the base in the pool, the clone", async () => {
  const h = await scene();
  vm(h, "web");
  const controller = KIND_CONTROLLERS.VirtualMachine;
  const stored = h.snapshot.objects.get("VirtualMachine/web")!;
  const target = { key: stored.key, name: stored.name, object: stored.object as never, specHash: stored.specHash, file: stored.location.file };
  const ctx = h.context(stored.key);
  const input = await controller.planInput(ctx as never, target, await h.hv.observe(0));
  assert.deepEqual(controller.changes(planVm(input as never) as never), [`download ${URL_} for disk "root" into default/${BASE}, check its sha256 and clone it`]);
  h.hv.addVolume("default", BASE, 32 * MiB);
  const withBase = await controller.planInput(ctx as never, target, await h.hv.observe(h.clock.now() + 1));
  assert.ok(controller.changes(planVm(withBase as never) as never).includes(`clone the base image ${BASE} to default/web-root.qcow2`));
});

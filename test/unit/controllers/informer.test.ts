// The manager and the hypervisor's informer (issue 16): a pass over objects whose last
// reconcile left them settled answers from the kept picture while the informer vouches for it
// (event streams listening, nothing changed), and reads libvirt again after an event, without
// listening streams, past the maximum age, for an object still converging or waiting, for the
// periodic resync and for `kvmctl reconcile`. Over a real manifest directory and the fake
// hypervisor with kept pictures (its `reads` counts full readings of libvirt).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { hostPathPolicy, type HostPathPolicy } from "../../../src/controllers/host-path-policy.js";
import { buildVolumeXml } from "../../../src/libvirt/index.js";
import type { ControllerMetrics } from "../../../src/runtime/index.js";
import { ManifestStore } from "../../../src/store/index.js";
import { fakePorts, testManager } from "../helpers/fake-ports.js";
import { tempDir } from "../store/helpers.js";
import type { ManualClock } from "../helpers/manual-clock.js";

const GiB = 1024 ** 3;
const RESYNC_MS = 60_000;
const VM = (name: string, extra = "") => `apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
spec:
  cpus: 1
  memory: 1Gi
  runStrategy: Halted
${extra}`;

async function scene(names: string[], options: { listening?: boolean; hostPaths?: HostPathPolicy } = {}) {
  const dir = await tempDir("kvmctl-informer-");
  for (const name of names) fs.writeFileSync(path.join(dir, `${name}.yaml`), VM(name));
  const store = new ManifestStore({ dir, diskCache: false });
  const ports = fakePorts();
  const hv = ports.hypervisor;
  hv.cachePictures = true;
  if (options.listening !== false) hv.listeningSince = ports.clock.now() - 1_000;
  const manager = testManager(store, ports, { resyncMs: RESYNC_MS, ...(options.hostPaths ? { hostPaths: options.hostPaths } : {}) });
  /** One full pass later than the last (beyond the 2 s a shared picture may lag a request): the full readings it took and the calls it made. */
  const pass = async () => {
    await ports.clock.advance(5_000);
    const reads = hv.reads;
    hv.clearCalls();
    const reports = await manager.runOnce();
    return { reads: hv.reads - reads, calls: [...hv.calls], notReady: reports.filter((r) => !r.ready).map((r) => r.key) };
  };
  return { dir, store, ports, hv, manager, pass };
}

test("settled objects: no reading while the informer vouches for the picture; an event makes the next pass read once", async () => {
  const { hv, pass } = await scene(["a", "b", "c"]);
  const converge = await pass();
  assert.equal(converge.calls.filter((c) => c.startsWith("defineDomain")).length, 3);
  assert.deepEqual((await pass()).reads, 1, "the defines came after the picture: one shared reading");
  assert.deepEqual(await pass(), { reads: 0, calls: [], notReady: [] }, "nothing changed: no reading at all");
  assert.deepEqual((await pass()).reads, 0);

  // An edit libvirt sends no event for is not seen by such a pass (the resync's job, below)...
  await hv.byHand((h) => h.editDomain("a", (config) => (config.memoryBytes = 4 * GiB)));
  assert.deepEqual(await pass(), { reads: 0, calls: [], notReady: [] });
  // ... one it sends an event for is.
  hv.emit({ kind: "domain", name: "a", detail: "lifecycle: Defined Updated", at: hv.clock.now() });
  const after = await pass();
  assert.equal(after.reads, 1);
  assert.deepEqual(after.calls.map((c) => c.split(" ")[0]), ["defineDomain"], "the drift repaired");
  assert.equal(hv.domain("a")!.config.memoryBytes, GiB);
});

test("without listening event streams every pass reads libvirt, as before", async () => {
  const { pass } = await scene(["a", "b"], { listening: false });
  await pass();
  for (let i = 0; i < 3; i++) assert.equal((await pass()).reads, 1, `pass ${i + 2}`);
});

test("streams reconnected after the reading, or a reading older than the resync period: read again", async () => {
  const { hv, ports, pass } = await scene(["a"]);
  await pass();
  await pass();
  assert.equal((await pass()).reads, 0);
  hv.listeningSince = ports.clock.now(); // re-registered after the kept reading: events before may be lost
  assert.equal((await pass()).reads, 1);
  assert.equal((await pass()).reads, 0, "read after they listen again");

  await hv.byHand((h) => h.editDomain("a", (config) => (config.memoryBytes = 2 * GiB)));
  await ports.clock.advance(RESYNC_MS);
  const aged = await pass();
  assert.equal(aged.reads, 1, "past the maximum age: facts libvirt sends no event for are read again");
  assert.deepEqual(aged.calls.map((c) => c.split(" ")[0]), ["defineDomain"], "and the edit made without an event is repaired");
});

test("an object not settled reads afresh: a kept pool sees a volume deleted by hand (no event) at its next look", async () => {
  const poolDir = await tempDir("kvmctl-informer-pool-");
  const { dir, hv, pass } = await scene(["a"], { hostPaths: hostPathPolicy([`pool=${path.dirname(poolDir)}`]) });
  fs.writeFileSync(path.join(dir, "pool.yaml"), `apiVersion: kvmctl.dev/v1alpha1\nkind: StoragePool\nmetadata:\n  name: data\nspec:\n  type: dir\n  path: ${poolDir}\n`);
  await pass();
  const pool = hv.uuidOf("pool", "data")!;
  await hv.byHand((h) => h.createVolume(pool, buildVolumeXml("by-hand.raw", 1024 ** 2, "raw")));
  fs.rmSync(path.join(dir, "pool.yaml"));
  assert.deepEqual((await pass()).notReady, ["StoragePool/data"], "kept: it holds a volume");
  await pass();
  assert.equal((await pass()).reads, 1, "the kept pool's look reads libvirt; the VM's does not");

  await hv.byHand((h) => h.deleteVolume(pool, "by-hand.raw"));
  const emptied = await pass();
  assert.equal(emptied.reads, 1);
  assert.deepEqual(emptied.calls.map((c) => c.split(" ")[0]), ["destroyPool", "undefinePool"], "seen empty, removed");
  assert.equal((await pass()).reads, 1, "its removal came after the picture");
  assert.equal((await pass()).reads, 0, "nothing left that waits");
});

/** A controller-metrics stand-in: `next(key)` resolves when `key` has finished one more reconcile; `adds` counts queue adds. */
function finishes() {
  const counts = new Map<string, number>();
  const adds: string[] = [];
  const waiters: { key: string; at: number; resolve: () => void }[] = [];
  const metrics: ControllerMetrics = {
    queue: { added: (key) => adds.push(key), taken: () => undefined, finished: () => undefined, retried: () => undefined, dropped: () => undefined },
    concurrency: () => undefined,
    reconcileStarted: () => undefined,
    reconcileFinished: (key) => {
      counts.set(key, (counts.get(key) ?? 0) + 1);
      for (const w of waiters.filter((w) => w.key === key && counts.get(key)! >= w.at)) (waiters.splice(waiters.indexOf(w), 1), w.resolve());
    },
  };
  const next = (key: string) => new Promise<void>((resolve) => waiters.push({ key, at: (counts.get(key) ?? 0) + 1, resolve }));
  return { metrics, next, adds };
}

/** A started manager over one VM, `a`, once its first pass has reconciled it; the caller stops it. */
async function startedOverOneVm() {
  const setting = await scene(["a"]);
  const { metrics, next } = finishes();
  const manager = testManager(setting.store, setting.ports, { resyncMs: RESYNC_MS, metrics: { controller: metrics } });
  const key = "VirtualMachine/a";
  const first = next(key);
  await manager.start();
  try {
    await first;
  } catch (error) {
    await manager.stop();
    throw error;
  }
  return { ...setting, manager, next, key };
}

test("a started manager: the periodic resync and `kvmctl reconcile` read afresh and see what no event reported", async () => {
  const { store, ports, hv, manager, next, key } = await startedOverOneVm(); // the first pass defined it
  let finished: Promise<void>;
  try {
    await ports.clock.advance(5_000);
    finished = next(key);
    manager.controller.enqueue(key);
    await finished; // read once (the define came after the first picture)
    assert.ok(hv.informedSince(RESYNC_MS) !== undefined, "the informer vouches for the picture now");

    await hv.byHand((h) => h.editDomain("a", (config) => (config.memoryBytes = 3 * GiB)));
    await ports.clock.advance(5_000);
    let reads = hv.reads;
    hv.clearCalls();
    finished = next(key);
    manager.controller.enqueue(key); // as a manifest change or a new revision queues it
    await finished;
    assert.deepEqual([hv.reads - reads, hv.calls], [0, []], "answered from the picture: the edit sent no event");

    reads = hv.reads;
    finished = next(key);
    await store.requestReconcile(key);
    await ports.clock.advance(1_000); // the requests are taken every second
    await finished;
    assert.equal(hv.reads - reads, 1, "kvmctl reconcile reads afresh");
    assert.deepEqual(hv.calls.map((c) => c.split(" ")[0]), ["defineDomain"], "and repairs the edit");

    // Up to 1 ms before the resync (due RESYNC_MS after the start): the firewall checks every
    // 5 s meanwhile read once, after the repair; then an edit that sends no event.
    await ports.clock.advance(RESYNC_MS - 11_000 - 1);
    assert.ok(hv.informedSince(RESYNC_MS) !== undefined);
    await hv.byHand((h) => h.editDomain("a", (config) => (config.memoryBytes = 5 * GiB)));
    reads = hv.reads;
    hv.clearCalls();
    finished = next(key);
    await ports.clock.advance(1);
    await finished;
    assert.equal(hv.reads - reads, 1, "the resync reads afresh");
    assert.deepEqual(hv.calls.map((c) => c.split(" ")[0]), ["defineDomain"], "and repairs what no event reported");
    assert.equal(hv.domain("a")!.config.memoryBytes, GiB);
  } finally {
    await manager.stop();
  }
});

test("a started manager: a reconcile with nothing new writes no status; Ready keeps its lastTransitionTime", async () => {
  const { dir, ports, manager, next, key } = await startedOverOneVm();
  const file = path.join(dir, "a.yaml");
  const readyAt = () => /type: Ready\n\s+status: "True"[\s\S]*?lastTransitionTime: (\S+)/.exec(fs.readFileSync(file, "utf8"))?.[1];
  let finished: Promise<void>;
  try {
    const first = readyAt();
    assert.ok(first, fs.readFileSync(file, "utf8"));
    const bytes = fs.readFileSync(file, "utf8");
    for (let i = 0; i < 3; i++) {
      await ports.clock.advance(5_000);
      finished = next(key);
      manager.controller.enqueue(key); // the manager's snapshot is not read again: its status is the one before the first write
      await finished;
    }
    assert.equal(readyAt(), first, "no new transition");
    assert.equal(fs.readFileSync(file, "utf8"), bytes, "the file is not rewritten");
  } finally {
    await manager.stop();
  }
});

test("a started manager: a VM reconciles from the kept picture though other domains changed since (the informer per domain); a change that names it reads", async () => {
  const { ports, hv, manager, next, key } = await startedOverOneVm();
  let finished: Promise<void>;
  try {
    await ports.clock.advance(5_000);
    finished = next(key);
    manager.controller.enqueue(key);
    await finished; // read once: the define came after the first picture
    await ports.clock.advance(1_000);
    // A command of this process on another domain (as another VM's reconcile defines its own).
    await hv.defineDomain("<domain type='kvm'><name>other</name><uuid>6f1d2a4e-0000-4000-8000-0000000000a1</uuid><memory unit='KiB'>262144</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os><devices/></domain>");
    assert.equal(hv.informedSince(RESYNC_MS), undefined, "the picture is stale for libvirt as a whole");
    let reads = hv.reads;
    hv.clearCalls();
    finished = next(key);
    manager.controller.enqueue(key);
    await finished;
    assert.deepEqual([hv.reads - reads, hv.calls], [0, []], "another domain's define: no reading for this one");

    hv.emit({ kind: "domain", name: "a", detail: "lifecycle: Defined Updated", at: hv.clock.now() });
    reads = hv.reads;
    finished = next(key);
    manager.controller.enqueue(key);
    await finished;
    assert.equal(hv.reads - reads, 1, "an event about it: read");
  } finally {
    await manager.stop();
  }
});

/** A started manager over VM "a" (and `files`), its first pass over: `body` emits events and reads what they queued (`adds`). */
async function afterFirstPass(body: (hv: Awaited<ReturnType<typeof scene>>["hv"], adds: string[]) => void | Promise<void>, files: Record<string, string> = {}): Promise<void> {
  const { store, ports, hv, dir } = await scene(["a"]);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  const { metrics, next, adds } = finishes();
  const manager = testManager(store, ports, { resyncMs: RESYNC_MS, metrics: { controller: metrics } });
  const finished = next("VirtualMachine/a");
  await manager.start();
  try {
    await finished;
    while (manager.controller.queue.length + manager.controller.queue.inFlight > 0) await new Promise((resolve) => setImmediate(resolve));
    adds.length = 0;
    await body(hv, adds);
  } finally {
    await manager.stop();
  }
}

test("a started manager: libvirt's Shutdown Finished (a prelude) wakes nothing; the Stopped event after it wakes the VM, and the firewall a moment later", async () => {
  await afterFirstPass(async (hv, adds) => {
    hv.emit({ kind: "domain", name: "a", detail: "lifecycle: Shutdown Finished after host request", at: hv.clock.now(), prelude: true });
    assert.deepEqual(adds, [], "nothing queued");
    hv.emit({ kind: "domain", name: "a", detail: "lifecycle: Stopped Destroyed", at: hv.clock.now() });
    assert.deepEqual(adds, ["VirtualMachine/a"], "the VM first: its restart does not share the thread with the firewall's rendering");
    await (hv.clock as ManualClock).advance(100);
    assert.deepEqual(adds, ["VirtualMachine/a", "Firewall/host"]);
  });
});

test("a started manager: the echo of its own command wakes only the firewall; the same event from elsewhere wakes the VM", async () => {
  await afterFirstPass((hv, adds) => {
    hv.emit({ kind: "domain", name: "a", detail: "lifecycle: Started Booted", at: hv.clock.now(), echo: true });
    assert.deepEqual(adds, ["Firewall/host"], "the VM's reconcile read its domain after its start");
    hv.emit({ kind: "domain", name: "a", detail: "lifecycle: Started Booted", at: hv.clock.now() });
    assert.deepEqual(adds.slice(0, 2), ["Firewall/host", "VirtualMachine/a"], "someone else's start wakes the VM");
  });
});

test("a started manager: the echo of a start still wakes the VM's networks (the guest takes DHCP leases), not the VM", async () => {
  const lan = "apiVersion: kvmctl.dev/v1alpha1\nkind: Network\nmetadata:\n  name: lan\nspec:\n  mode: nat\n  ipv4: {address: 10.20.0.1, prefix: 24, dhcp: {start: 10.20.0.100, end: 10.20.0.200}}\n";
  await afterFirstPass(
    async (hv, adds) => {
      hv.emit({ kind: "domain", name: "a", detail: "lifecycle: Started Booted", at: hv.clock.now(), echo: true });
      assert.deepEqual(adds, ["Network/lan"], "a Network with DHCP reports the new guest's lease");
      await (hv.clock as ManualClock).advance(100);
      assert.deepEqual(adds, ["Network/lan", "Firewall/host"]);
    },
    { "a.yaml": VM("a", "  interfaces:\n    - network: lan\n"), "lan.yaml": lan },
  );
});

test("mend (a stale picture read only for the domains that changed): asked by a diskless VM even while converging, not by one with disks", async () => {
  const looks = async (extra: string) => {
    const { dir, hv, manager } = await scene([]);
    fs.writeFileSync(path.join(dir, "vm.yaml"), VM("vm", extra));
    hv.mendAsked.length = 0;
    await manager.runOnce();
    return [...hv.mendAsked];
  };
  const diskless = await looks("");
  const withDisk = await looks("  disks: [{name: root, size: 1Gi}]\n");
  // Listing the keys reads whole; the VM's look; the firewall's (it always mends).
  assert.deepEqual(diskless, [false, true, true], "the diskless VM mends");
  // The VM with a disk waits for its pool: its look, and the failure's look at its live facts, read whole.
  assert.deepEqual(withDisk, [false, false, false, true], "volumes send no event: the VM with a disk reads whole");
});

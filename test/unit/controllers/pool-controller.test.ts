// The StoragePool reconciler against an in-memory libvirt (test/unit/helpers/fake-hypervisor.ts):
// create (define, build, start, autostart), drift repaired, converged pools left alone, foreign
// pools never touched, every call by kvmctl's name-derived UUID, and deletion that keeps a pool
// while it still holds volumes.
import assert from "node:assert/strict";
import { test } from "node:test";
import { poolUuid } from "../../../src/libvirt/index.js";
import { TerminalError } from "../../../src/runtime/index.js";
import { UUID_RE } from "../helpers/fake-hypervisor.js";
import { ControllerHarness, TEST_INSTANCE } from "../helpers/fake-ports.js";

const FAST = poolUuid("fast", TEST_INSTANCE);
const PATH = "/var/lib/kvmctl/fast";

/** Pool "fast" (dir) converged; calls cleared. */
async function activeFast(spec: Record<string, unknown> = { path: PATH }): Promise<ControllerHarness> {
  const h = new ControllerHarness();
  h.apply("StoragePool", "fast", spec);
  await h.converge("StoragePool/fast");
  h.hv.clearCalls();
  return h;
}

test("create: a dir pool is defined, its directory built, started and set to autostart; Active in one reconcile", async () => {
  const h = new ControllerHarness();
  h.apply("StoragePool", "fast", { path: PATH });
  const outcome = await h.reconcile("StoragePool/fast");
  assert.deepEqual(h.hv.calls, [`definePool ${FAST}`, `buildPool ${FAST}`, `startPool ${FAST}`, `setPoolAutostart ${FAST} on`]);
  assert.ok(h.hv.hostDirs.has(PATH));
  assert.equal(outcome.ready, true);
  const facts = outcome.report?.facts;
  assert.equal(facts?.phase, "Active");
  assert.equal(facts?.uuid, FAST);
  assert.equal(facts?.state, "running");
  assert.equal(facts?.path, PATH);
  assert.equal(facts?.volumes, 0);
  assert.ok((facts?.capacity ?? 0) > 0 && facts?.available === facts?.capacity);
  assert.deepEqual(h.recorder("StoragePool/fast").events.map((e) => e.reason), ["Converged"]);
  assert.equal(h.status("StoragePool/fast", outcome).phase, "Active");

  h.hv.clearCalls();
  const again = await h.reconcile("StoragePool/fast");
  assert.deepEqual(h.hv.calls, []);
  assert.equal(again.ready, true);
});

test("create: a logical pool is built on its devices without overwriting; without devices its volume group must exist", async () => {
  const h = new ControllerHarness();
  h.apply("StoragePool", "vg0", { type: "logical", sourceDevices: ["/dev/sdb"] });
  await h.converge("StoragePool/vg0");
  assert.deepEqual(h.hv.calls.slice(0, 2), [`definePool ${poolUuid("vg0", TEST_INSTANCE)}`, `buildPool ${poolUuid("vg0", TEST_INSTANCE)} --no-overwrite`]);
  assert.equal(h.hv.pool("vg0")?.facts.targetPath, "/dev/vg0");

  const existing = new ControllerHarness();
  existing.hv.hostVolumeGroups.add("data");
  existing.apply("StoragePool", "lvm", { type: "logical", volumeGroup: "data", autostart: false });
  await existing.converge("StoragePool/lvm");
  assert.ok(!existing.hv.calls.some((c) => c.startsWith("buildPool")), "no devices named: nothing built");
});

test("drift: a pool stopped by hand is started, autostart turned off by hand is turned on, and only that", async () => {
  const h = await activeFast();
  await h.hv.byHand(async (hv) => {
    await hv.destroyPool(FAST);
    await hv.setPoolAutostart(FAST, false);
  });
  const outcome = await h.reconcile("StoragePool/fast");
  assert.deepEqual(h.hv.calls, [`buildPool ${FAST}`, `startPool ${FAST}`, `setPoolAutostart ${FAST} on`], "built first: its directory may be gone");
  assert.equal(outcome.report?.facts.phase, "Active");
  h.hv.clearCalls();
  await h.reconcile("StoragePool/fast");
  assert.deepEqual(h.hv.calls, []);
});

test("a pool defined but never built (a controller killed in between) is built and started", async () => {
  const h = new ControllerHarness();
  h.apply("StoragePool", "fast", { path: PATH });
  h.hv.failNext("buildPool", new Error("killed"));
  await assert.rejects(h.reconcile("StoragePool/fast"));
  assert.ok(!h.hv.hostDirs.has(PATH) && h.hv.pool("fast")?.active === false, "defined, no directory, stopped");
  h.hv.clearCalls();
  const outcome = await h.reconcile("StoragePool/fast");
  assert.deepEqual(h.hv.calls, [`buildPool ${FAST}`, `startPool ${FAST}`, `setPoolAutostart ${FAST} on`]);
  assert.equal(outcome.report?.facts.phase, "Active");
});

test("drift: the path of a stopped pool changed by hand is redefined and the pool started at its own path", async () => {
  const h = await activeFast();
  await h.hv.byHand((hv) => hv.destroyPool(FAST));
  h.hv.editPool("fast", (facts) => (facts.targetPath = "/srv/elsewhere"));
  const outcome = await h.reconcile("StoragePool/fast");
  assert.deepEqual(h.hv.calls, [`definePool ${FAST}`, `buildPool ${FAST}`, `startPool ${FAST}`]);
  assert.equal(outcome.report?.facts.path, PATH);
  h.hv.clearCalls();
  await h.reconcile("StoragePool/fast");
  assert.deepEqual(h.hv.calls, []);
});

test("drift: the path of an active pool changed by hand (restarted elsewhere) is repaired and then left alone", async () => {
  const h = await activeFast();
  h.hv.hostDirs.add("/srv/elsewhere");
  await h.hv.byHand(async (hv) => {
    await hv.destroyPool(FAST);
    hv.editPool("fast", (facts) => (facts.targetPath = "/srv/elsewhere"));
    await hv.startPool(FAST);
  });
  assert.equal(h.hv.pool("fast")?.facts.targetPath, "/srv/elsewhere");
  await h.converge("StoragePool/fast");
  assert.equal(h.hv.pool("fast")?.facts.targetPath, PATH, "the pool runs at its manifest's path");
  h.hv.clearCalls();
  const outcome = await h.reconcile("StoragePool/fast");
  assert.deepEqual(h.hv.calls, [], "converged: no call");
  assert.equal(outcome.report?.facts.path, PATH);
});

test("a new path in the spec for an active pool is built and the pool runs there, then left alone", async () => {
  const h = await activeFast();
  h.apply("StoragePool", "fast", { path: "/var/lib/kvmctl/fast2" });
  await h.converge("StoragePool/fast");
  assert.equal(h.hv.pool("fast")?.facts.targetPath, "/var/lib/kvmctl/fast2");
  h.hv.clearCalls();
  const outcome = await h.reconcile("StoragePool/fast");
  assert.deepEqual(h.hv.calls, [], "converged: no call");
  assert.equal(outcome.report?.facts.path, "/var/lib/kvmctl/fast2");
});

test("a foreign pool with the manifest's name: TerminalError NotOwned, no call touches it; deleting the manifest leaves it alone", async () => {
  const h = new ControllerHarness();
  const foreign = await h.hv.addForeignPool("fast");
  h.hv.addVolume("fast", "theirs.qcow2", 1024);
  const before = h.hv.dump("pool", foreign);
  h.apply("StoragePool", "fast", { path: PATH });
  const error = await h.rejection("StoragePool/fast");
  assert.ok(error instanceof TerminalError);
  assert.equal(error.reason, "NotOwned");
  assert.deepEqual(h.hv.calls, []);
  assert.equal(h.hv.dump("pool", foreign), before);
  assert.deepEqual((h.failureStatus("StoragePool/fast", error).conditions as { type: string; reason: string }[]).map((c) => [c.type, c.reason]), [["Ready", "NotOwned"], ["Stalled", "NotOwned"]]);

  h.remove("StoragePool/fast");
  const outcome = await h.reconcile("StoragePool/fast");
  assert.equal(outcome.ready, true);
  assert.deepEqual(h.hv.calls, []);
  assert.equal(h.hv.dump("pool", foreign), before);
  assert.deepEqual(h.recorder("StoragePool/fast").deleted, [`storage pool "fast" was not created by kvmctl: left alone`]);
  assert.equal(h.recorder("StoragePool/fast").keptNow, undefined, "a foreign pool's volumes do not make it kvmctl's to keep");
});

test("UUID addressing: a StoragePool named like a foreign pool's UUID is created and deleted by its own UUID; the foreign one is unchanged", async () => {
  const h = new ControllerHarness();
  const foreign = await h.hv.addForeignPool("images", { uuid: "6fa459ea-ee8a-4ca4-894e-db77e160355e" });
  const before = h.hv.dump("pool", foreign);
  const name = foreign;
  const own = poolUuid(name, TEST_INSTANCE);
  h.apply("StoragePool", name, { path: "/var/lib/kvmctl/by-uuid" });
  const created = await h.converge(`StoragePool/${name}`);
  assert.equal(created.report?.facts.uuid, own);
  h.remove(`StoragePool/${name}`);
  await h.reconcile(`StoragePool/${name}`);
  assert.equal(h.hv.pool(name), undefined, "kvmctl's pool is gone");
  assert.equal(h.hv.dump("pool", foreign), before, "the foreign pool is as it was: active, autostart on");
  for (const call of h.hv.calls) assert.match(call.split(" ")[1] ?? "", UUID_RE, call);
  assert.deepEqual(h.hv.uuidsTouched(), [own]);
});

test("delete: an empty owned pool is stopped and undefined", async () => {
  const h = await activeFast();
  h.remove("StoragePool/fast");
  const outcome = await h.reconcile("StoragePool/fast");
  assert.equal(outcome.ready, true);
  assert.deepEqual(h.hv.calls, [`destroyPool ${FAST}`, `undefinePool ${FAST}`]);
  assert.equal(h.hv.pool("fast"), undefined);
  assert.deepEqual(h.recorder("StoragePool/fast").deleted, ["pool removed from libvirt"]);
});

test("delete: a pool that still holds volumes is kept (PoolNotEmpty, Retained) and removed once empty", async () => {
  const h = await activeFast();
  h.hv.addVolume("fast", "disk.qcow2", 1024 ** 3);
  h.remove("StoragePool/fast");
  for (let i = 0; i < 2; i++) {
    const kept = await h.reconcile("StoragePool/fast");
    assert.equal(kept.ready, false);
    assert.equal(kept.requeueAfterMs, 10_000);
  }
  assert.deepEqual(h.hv.calls, []);
  const record = h.recorder("StoragePool/fast");
  assert.deepEqual(record.keptNow && { phase: record.keptNow.phase, reason: record.keptNow.reason }, { phase: "Retained", reason: "PoolNotEmpty" });
  assert.match(record.keptNow?.message ?? "", /disk\.qcow2/);
  assert.equal(record.events.filter((e) => e.reason === "DeletionBlocked").length, 1);
  assert.ok(h.hv.pool("fast")?.active, "still there, still active");

  await h.hv.byHand((hv) => hv.deleteVolume(FAST, "disk.qcow2"));
  const removed = await h.reconcile("StoragePool/fast");
  assert.equal(removed.ready, true);
  assert.deepEqual(h.hv.calls, [`destroyPool ${FAST}`, `undefinePool ${FAST}`]);
  assert.equal(record.keptNow, undefined);
});

test("delete: a kept pool whose manifest comes back is no longer kept", async () => {
  const h = await activeFast();
  h.hv.addVolume("fast", "disk.qcow2", 1024 ** 3);
  h.remove("StoragePool/fast");
  await h.reconcile("StoragePool/fast");
  assert.ok(h.recorder("StoragePool/fast").keptNow);
  h.apply("StoragePool", "fast", { path: PATH });
  const outcome = await h.reconcile("StoragePool/fast");
  assert.equal(h.recorder("StoragePool/fast").keptNow, undefined);
  assert.equal(outcome.report?.facts.volumes, 1);
  assert.deepEqual(h.hv.calls, []);
});

test("delete: no pool in libvirt, nothing to do", async () => {
  const h = new ControllerHarness();
  const outcome = await h.reconcile("StoragePool/gone");
  assert.equal(outcome.ready, true);
  assert.deepEqual(h.hv.calls, []);
  assert.deepEqual(h.recorder("StoragePool/gone").deleted, ["no pool in libvirt to remove"]);
});

test("a pool whose directory cannot be opened fails (retried), and says so", async () => {
  const h = new ControllerHarness();
  h.hv.failNext("buildPool", new Error("cannot create path '/var/lib/kvmctl/fast': Permission denied"));
  h.apply("StoragePool", "fast", { path: PATH });
  const error = (await h.attempt("StoragePool/fast")).error;
  assert.ok(error instanceof Error && !(error instanceof TerminalError));
  assert.match(String(error), /Permission denied/);
  const status = h.failureStatus("StoragePool/fast", error);
  assert.equal((status.conditions as { type: string; reason: string }[])[0]?.reason, "ReconcileFailed");
});

// Suspend and report-only drift (issue 16), through the manager over a real manifest directory
// and fake ports: a suspended object (kvmctl suspend, or the annotation from git) gets no
// libvirt call at all and says so in status; with drift: report a domain changed by hand is
// reported (Drifted, an event, Ready=False) and not repaired, and once the annotation goes the
// same drift is repaired.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { objectMode } from "../../../src/controllers/modes.js";
import { ManifestStore } from "../../../src/store/index.js";
import { tempDir } from "../store/helpers.js";
import { fakePorts, testManager } from "../helpers/fake-ports.js";

const GiB = 1024 ** 3;
const VM = (name: string, annotations = "") => `apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
${annotations ? `  annotations:\n${annotations}` : ""}spec:
  cpus: 1
  memory: 1Gi
  runStrategy: Halted
`;

test("objectMode: the annotation wins over this host's record and the controller's --drift", () => {
  assert.deepEqual(objectMode(undefined, undefined, "repair"), { drift: "repair" });
  assert.deepEqual(objectMode({ "kvmctl.dev/drift": "report" }, undefined, "repair"), { drift: "report" });
  assert.deepEqual(objectMode({ "kvmctl.dev/drift": "repair" }, undefined, "report"), { drift: "repair" });
  assert.deepEqual(objectMode({ "kvmctl.dev/reconcile": "disabled" }, { since: "t" }, "repair"), { suspended: { by: "annotation" }, drift: "repair" });
  assert.deepEqual(objectMode({ "kvmctl.dev/reconcile": "enabled" }, { since: "t" }, "repair"), { suspended: { by: "kvmctl suspend", since: "t" }, drift: "repair" });
});

test("a suspended object is left alone: no libvirt call, status says suspended; resumed, it converges", async () => {
  const dir = await tempDir("kvmctl-modes-");
  fs.writeFileSync(path.join(dir, "a.yaml"), VM("a"));
  fs.writeFileSync(path.join(dir, "b.yaml"), VM("b", "    kvmctl.dev/reconcile: disabled\n"));
  const store = new ManifestStore({ dir });
  await store.setSuspended("VirtualMachine/a", { since: "2026-12-01T00:00:00Z", by: "root" });
  const ports = fakePorts();
  const manager = testManager(store, ports);
  await manager.runOnce();
  assert.deepEqual(ports.hypervisor.calls, [], "libvirt heard nothing");
  const snapshot = await store.read();
  for (const [key, by] of [["VirtualMachine/a", "kvmctl suspend"], ["VirtualMachine/b", "annotation"]] as const) {
    assert.deepEqual((snapshot.objects.get(key)!.object as { status?: { suspended?: unknown } }).status?.suspended, by === "annotation" ? { by } : { by, since: "2026-12-01T00:00:00Z" });
    assert.equal((await store.readEvents(key)).at(-1)?.reason, "Suspended");
  }

  await store.setSuspended("VirtualMachine/a", undefined);
  await manager.runOnce();
  assert.ok(ports.hypervisor.domain("a"), "resumed: defined");
  assert.equal(ports.hypervisor.domain("b"), undefined, "still suspended by its annotation");
  const a = (await store.read()).objects.get("VirtualMachine/a")!.object as { status?: Record<string, unknown> };
  assert.equal(a.status?.suspended, undefined, "no longer says suspended");
});

test("drift: report — a domain changed by hand is reported (Drifted, an event), never repaired; repair mode puts it back", async () => {
  const dir = await tempDir("kvmctl-drift-");
  fs.writeFileSync(path.join(dir, "a.yaml"), VM("a"));
  const store = new ManifestStore({ dir });
  const ports = fakePorts();
  await testManager(store, ports).runOnce();
  assert.ok(ports.hypervisor.domain("a"));

  await ports.hypervisor.byHand((hv) => hv.editDomain("a", (config) => (config.memoryBytes = 4 * GiB)));
  ports.hypervisor.clearCalls();
  const reports = await testManager(store, ports, { drift: "report" }).runOnce();
  assert.deepEqual(ports.hypervisor.calls, [], "nothing changed in libvirt");
  assert.equal(reports.find((r) => r.key === "VirtualMachine/a")?.ready, false);
  const status = ((await store.read()).objects.get("VirtualMachine/a")!.object as { status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] } }).status;
  const drifted = status?.conditions?.find((c) => c.type === "Drifted");
  assert.equal(drifted?.status, "True");
  assert.match(drifted?.message ?? "", /memory/);
  assert.equal(status?.conditions?.find((c) => c.type === "Ready")?.reason, "Drifted");
  assert.equal((await store.readEvents("VirtualMachine/a")).at(-1)?.reason, "Drifted");
  assert.equal(ports.hypervisor.domain("a")!.config.memoryBytes, 4 * GiB);

  // The default (repair) puts it back and clears Drifted.
  await testManager(store, ports).runOnce();
  assert.equal(ports.hypervisor.domain("a")!.config.memoryBytes, GiB);
  const after = ((await store.read()).objects.get("VirtualMachine/a")!.object as { status?: { conditions?: { type: string }[] } }).status;
  assert.equal(after?.conditions?.some((c) => c.type === "Drifted"), false);
});

test("a misspelt kvmctl annotation is an error naming the field, not silently ignored", async () => {
  const dir = await tempDir("kvmctl-annot-");
  fs.writeFileSync(path.join(dir, "a.yaml"), VM("a", "    kvmctl.dev/reconcile: disable\n"));
  const snapshot = await new ManifestStore({ dir }).read();
  const [problem] = snapshot.invalid.get("VirtualMachine/a") ?? [];
  assert.match(problem?.message ?? "", /must be enabled or disabled/);
  assert.deepEqual(problem?.path, ["metadata", "annotations", "kvmctl.dev/reconcile"]);
});

test("a suspended object whose manifest is deleted is not pruned until resumed", async () => {
  const dir = await tempDir("kvmctl-modes-prune-");
  fs.writeFileSync(path.join(dir, "a.yaml"), VM("a"));
  fs.writeFileSync(path.join(dir, "b.yaml"), VM("b")); // the directory must not become empty (that is never pruned)
  const store = new ManifestStore({ dir });
  const ports = fakePorts();
  const manager = () => testManager(store, ports, { prune: { settleMs: 0 } });
  await manager().runOnce();
  assert.ok(ports.hypervisor.domain("a"));
  await store.setSuspended("VirtualMachine/a", { since: "2026-12-01T00:00:00Z", by: "root" });
  fs.rmSync(path.join(dir, "a.yaml"));
  ports.hypervisor.clearCalls();
  await manager().runOnce();
  assert.ok(ports.hypervisor.domain("a"), "kept while suspended");
  assert.deepEqual(ports.hypervisor.calls, []);
  await store.setSuspended("VirtualMachine/a", undefined);
  await manager().runOnce();
  assert.equal(ports.hypervisor.domain("a"), undefined, "pruned once resumed");
});

test("suspended(): another process's suspend and resume are seen at the next look (the answer is kept only while the directory is unchanged)", async () => {
  const dir = await tempDir("kvmctl-modes-");
  fs.writeFileSync(path.join(dir, "a.yaml"), VM("a"));
  const controller = new ManifestStore({ dir });
  const cli = new ManifestStore({ dir });
  assert.deepEqual([...(await controller.suspended()).keys()], []);
  assert.deepEqual([...(await controller.suspended()).keys()], [], "asked again");
  await cli.setSuspended("VirtualMachine/a", { since: "2026-12-01T00:00:00Z", by: "root" });
  assert.deepEqual(Object.fromEntries(await controller.suspended()), { "VirtualMachine/a": { since: "2026-12-01T00:00:00Z", by: "root" } });
  await cli.setSuspended("VirtualMachine/a", { since: "2026-12-02T00:00:00Z", by: "ops" });
  assert.deepEqual(Object.fromEntries(await controller.suspended()), { "VirtualMachine/a": { since: "2026-12-02T00:00:00Z", by: "ops" } }, "replaced");
  await cli.setSuspended("VirtualMachine/a", undefined);
  assert.deepEqual([...(await controller.suspended()).keys()], [], "resumed");
});

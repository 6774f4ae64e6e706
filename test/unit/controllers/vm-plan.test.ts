// The VirtualMachine plan, without a host: runStrategy, graceful stop, ownership,
// dependencies, disks and deletion.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { LiveDomain, LivePool } from "../../../src/ports/index.js";
import { validateDocument, type VirtualMachine } from "../../../src/api/index.js";
import { parseDomainXml } from "../../../src/libvirt/index.js";
import { planVm, planVmDeletion, type VmPlanInput } from "../../../src/controllers/virtualmachine/plan.js";

function vm(spec: Record<string, unknown>): VirtualMachine {
  const result = validateDocument({ apiVersion: "kvmctl.dev/v1alpha1", kind: "VirtualMachine", metadata: { name: "web" }, spec });
  assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
  return result.object as VirtualMachine;
}

const pool = (volumes: [string, number][] = []): LivePool => ({
  facts: { name: "default", uuid: "u", type: "dir", targetPath: "/p" },
  active: true,
  autostart: true,
  volumes: new Map(volumes.map(([name, capacity]) => [name, { name, capacity }])),
});

function input(v: VirtualMachine, overrides: Partial<VmPlanInput> = {}): VmPlanInput {
  return {
    key: "VirtualMachine/web", name: "web", instance: "t1", file: "vms/web.yaml", spec: v.spec, specHash: "h1", live: undefined,
    pools: new Map([["default", pool()]]), networks: new Map(), defaultDomainType: "qemu", consoleLogDir: "/log",
    restartPending: false, startedOnce: false, now: 1_000_000, ...overrides,
  };
}

/** The live domain as libvirt would report it after the plan's define. */
function liveFrom(plan: ReturnType<typeof planVm>, state: string, reason = ""): LiveDomain {
  const define = plan.steps.find((s) => s.action.type === "define")!.action as { xml: string };
  const facts = parseDomainXml(define.xml);
  return { config: facts, running: state === "running" ? facts : undefined, state, reason, autostart: false, persistent: true };
}

test("a new VM: disk created, defined, started; Always keeps it running", () => {
  const v = vm({ memory: "1Gi", disks: [{ name: "root", size: "10Gi" }] });
  const plan = planVm(input(v));
  assert.deepEqual(plan.steps.map((s) => s.action.type), ["createVolume", "define", "start"], "autostart stays off, as libvirt defines it: no command");
  const live = liveFrom(plan, "shut off", "destroyed");
  const again = planVm(input(v, { live, pools: new Map([["default", pool([["web-root.qcow2", 10 * 1024 ** 3]])]]), startedOnce: true }));
  assert.deepEqual(again.steps.map((s) => s.action.type), ["start"]);
  const withAutostart = planVm(input(vm({ memory: "1Gi", autostart: true, disks: [{ name: "root", size: "10Gi" }] })));
  assert.deepEqual(withAutostart.steps.map((s) => s.action.type), ["createVolume", "define", "autostart", "start"]);
});

test("disks grow, never shrink", () => {
  const v = vm({ disks: [{ name: "root", size: "10Gi" }] });
  const live = liveFrom(planVm(input(v)), "running");
  const bigger = planVm(input(v, { live, pools: new Map([["default", pool([["web-root.qcow2", 1024 ** 3]])]]) }));
  assert.deepEqual(bigger.steps.map((s) => s.action.type), ["resizeDiskLive"], "a running domain's disk grows through QEMU (blockresize)");
  assert.equal((bigger.steps[0]!.action as { target: string }).target, "vda");
  const stopped = liveFrom(planVm(input(v)), "shut off", "shutdown");
  const offline = planVm(input(v, { live: stopped, startedOnce: true, pools: new Map([["default", pool([["web-root.qcow2", 1024 ** 3]])]]) }));
  assert.deepEqual(offline.steps.map((s) => s.action.type).filter((t) => t !== "start"), ["resizeVolume"], "a stopped one's with vol-resize");
  const smaller = planVm(input(v, { live, pools: new Map([["default", pool([["web-root.qcow2", 20 * 1024 ** 3]])]]) }));
  assert.deepEqual(smaller.steps, []);
});

test("Halted: ACPI shutdown first, destroy only after the grace period", () => {
  const v = vm({ runStrategy: "Halted", terminationGracePeriodSeconds: 30 });
  const running = liveFrom(planVm(input(vm({}))), "running");
  const first = planVm(input(v, { live: running }));
  assert.deepEqual(first.steps.map((s) => s.action.type), ["shutdown"]);
  assert.equal(first.phase, "Stopping");
  const waiting = planVm(input(v, { live: running, stopRequestedAt: 1_000_000 - 10_000 }));
  assert.ok(!waiting.steps.some((s) => s.action.type === "destroy"));
  const late = planVm(input(v, { live: running, stopRequestedAt: 1_000_000 - 31_000 }));
  assert.ok(late.steps.some((s) => s.action.type === "destroy"));
});

test("RerunOnFailure: a crash restarts, a clean guest shutdown does not", () => {
  const v = vm({ runStrategy: "RerunOnFailure" });
  const crashed = liveFrom(planVm(input(v)), "shut off", "crashed");
  assert.ok(planVm(input(v, { live: crashed, startedOnce: true })).steps.some((s) => s.action.type === "start"));
  const clean = liveFrom(planVm(input(v)), "shut off", "shutdown");
  assert.ok(!planVm(input(v, { live: clean, startedOnce: true })).steps.some((s) => s.action.type === "start"));
});

test("a change that needs a cold boot: RestartRequired, or a graceful restart with allowRestart", () => {
  const running = liveFrom(planVm(input(vm({ cpus: 1 }))), "running");
  const plan = planVm(input(vm({ cpus: 2 }), { live: running }));
  assert.equal(plan.reason, "RestartRequired");
  assert.deepEqual(plan.steps.map((s) => s.action.type), ["define"]);
  const allowed = planVm(input(vm({ cpus: 2, allowRestart: true }), { live: running }));
  assert.deepEqual(allowed.steps.map((s) => s.action.type), ["define", "shutdown"]);
});

test("a domain with the VM's name that kvmctl does not own is refused", () => {
  const foreign = liveFrom(planVm(input(vm({}))), "running");
  foreign.config.owner = undefined;
  const plan = planVm(input(vm({}), { live: foreign }));
  assert.equal(plan.invalid?.reason, "NotOwned");
  assert.deepEqual(plan.steps, []);
});

test("missing pools and networks are waited for", () => {
  assert.equal(planVm(input(vm({ disks: [{ name: "d", pool: "fast", size: "1Gi" }] }))).waitingFor, "StoragePool/fast");
  assert.equal(planVm(input(vm({ interfaces: [{ network: "lan" }] }))).waitingFor, "Network/lan");
});

test("deletion keeps disks unless deletionPolicy is Delete, and only deletes what kvmctl created", () => {
  const retain = liveFrom(planVm(input(vm({ disks: [{ name: "root", size: "1Gi" }] }))), "running");
  const pools = new Map([["default", pool()]]);
  assert.deepEqual(planVmDeletion("VirtualMachine/web", retain, pools, "t1").map((s) => s.action.type), ["destroy", "undefine"]);
  const del = liveFrom(planVm(input(vm({ deletionPolicy: "Delete", disks: [{ name: "root", size: "1Gi" }, { name: "shared", volume: "base.img", size: "1Gi" }] }), { pools: new Map([["default", pool([["base.img", 1024 ** 3]])]]) })), "shut off");
  const uuid = del.config.uuid;
  assert.match(uuid, /^[0-9a-f-]{36}$/);
  assert.deepEqual(planVmDeletion("VirtualMachine/web", del, pools, "t1").map((s) => s.action), [{ type: "deleteVolume", pool: "default", poolUuid: "u", volume: "web-root.qcow2" }, { type: "undefine", uuid }], "by UUID: the domain's, the pool's; volumes before the definition that records them");
  assert.deepEqual(planVmDeletion("VirtualMachine/other", del, pools, "t1"), [], "never a domain of another manifest");
});


test("spec.cloudInit: the seed is built before the definition that attaches it, only when its hash changed", () => {
  const v = vm({ cloudInit: { sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA test"] } });
  const seed = { root: "/seeds", dir: "/seeds/t1/web", path: "/seeds/t1/web/seed.img", medium: "cdrom" as const, format: "iso" as const, instanceId: "iid-x" };
  const plan = planVm(input(v, { seed: { ...seed, hash: "a".repeat(64) } }));
  assert.deepEqual(plan.steps.map((s) => s.action.type), ["buildSeed", "define", "start"]);
  assert.equal(plan.invalid, undefined);
  const live = liveFrom(plan, "running");
  assert.deepEqual(live.config.seed, { device: "cdrom", target: "sda", bus: "scsi", file: "/seeds/t1/web/seed.img", readOnly: true, instanceId: "iid-x" });
  const again = planVm(input(v, { live, startedOnce: true, seed: { ...seed, hash: "a".repeat(64), builtHash: "a".repeat(64) } }));
  assert.deepEqual(again.steps, [], "built and attached: nothing to do");
  // kvmctl diff renders no seed (no key): the medium is attached, nothing is built.
  assert.deepEqual(planVm(input(v, { seed })).steps.map((s) => s.action.type), ["define", "start"]);
  // A new instance-id on a running guest: defined for the next boot, RestartRequired.
  const bumped = planVm(input(v, { live, startedOnce: true, seed: { ...seed, instanceId: "iid-y", hash: "b".repeat(64), builtHash: "a".repeat(64) } }));
  assert.deepEqual(bumped.steps.map((s) => s.action.type), ["buildSeed", "define"]);
  assert.deepEqual(bumped.restartRequired.map((d) => d.field), ["cloudInit.instanceId"]);
  assert.equal(bumped.reason, "RestartRequired");
  // Other seed content (user-data), same instance-id: rebuilt, nothing to restart, said in the message.
  const edited = planVm(input(v, { live, startedOnce: true, seed: { ...seed, hash: "c".repeat(64), builtHash: "a".repeat(64) } }));
  assert.deepEqual(edited.steps.map((s) => s.action.type), ["buildSeed"]);
  assert.deepEqual(edited.restartRequired, []);
  assert.match(edited.message, /reads it at its next boot, but cloud-init re-runs its per-instance modules .* only for a new instance-id/);
});

test("deletion with deletionPolicy Delete forgets the pinned host key (before the undefine); Retain keeps it", () => {
  const del = vm({ deletionPolicy: "Delete", cloudInit: {} });
  const live = liveFrom(planVm(input(del)), "running");
  assert.deepEqual(planVmDeletion("VirtualMachine/web", live, new Map(), "t1", { hostKey: true }).map((s) => s.action.type), ["destroy", "removeHostKey", "undefine"]);
  assert.deepEqual(planVmDeletion("VirtualMachine/web", live, new Map(), "t1", { hostKey: false }).map((s) => s.action.type), ["destroy", "undefine"]);
  const retained = liveFrom(planVm(input(vm({ cloudInit: {} }))), "running");
  assert.deepEqual(planVmDeletion("VirtualMachine/web", retained, new Map(), "t1", { hostKey: true }).map((s) => s.action.type), ["destroy", "undefine"]);
});

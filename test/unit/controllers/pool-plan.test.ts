// StoragePool plans and lifecycle: pure, no host.
import assert from "node:assert/strict";
import test from "node:test";
import type { LivePool } from "../../../src/ports/index.js";
import { storagePoolSpec } from "../../../src/api/storagepool.js";
import { poolPhaseFor } from "../../../src/controllers/storagepool/lifecycle.js";
import { planPool, planPoolDeletion } from "../../../src/controllers/storagepool/plan.js";
import { parsePoolXml, poolUuid } from "../../../src/libvirt/index.js";

/** The controller instance these plans are for. */
const I = "t1";
const dirSpec = storagePoolSpec.parse({ type: "dir", path: "/var/lib/kvmctl/images" });
const lvmSpec = storagePoolSpec.parse({ type: "logical", volumeGroup: "vg0", sourceDevices: ["/dev/loop7"] });

function live(name: string, opts: Partial<LivePool> & { uuid?: string; path?: string } = {}): LivePool {
  return {
    facts: { name, uuid: opts.uuid ?? poolUuid(name, I), type: "dir", targetPath: opts.path ?? "/var/lib/kvmctl/images" },
    active: opts.active ?? true,
    autostart: opts.autostart ?? true,
    volumes: opts.volumes ?? new Map(),
  };
}
const actions = (plan: ReturnType<typeof planPool>) => (plan.kind === "converge" ? plan.steps.map((s) => s.action.type) : []);

test("a new dir pool is defined, its directory built, started and set to autostart", () => {
  const plan = planPool("images", dirSpec, undefined, I);
  assert.deepEqual(actions(plan), ["define", "build", "start", "autostart"]);
  const define = plan.kind === "converge" ? plan.steps[0]!.action : undefined;
  const facts = parsePoolXml(define?.type === "define" ? define.xml : "");
  assert.equal(facts.uuid, poolUuid("images", I), "the UUID marks which instance made it");
  assert.equal(facts.targetPath, "/var/lib/kvmctl/images");
});

test("a logical pool builds its volume group only with --no-overwrite, and only when devices are named", () => {
  const plan = planPool("vg0", lvmSpec, undefined, I);
  const build = plan.kind === "converge" ? plan.steps.find((s) => s.action.type === "build")?.action : undefined;
  assert.deepEqual(build, { type: "build", uuid: poolUuid("vg0", I), noOverwrite: true }, "by the UUID the definition gives it");
  const existingGroup = planPool("vg0", storagePoolSpec.parse({ type: "logical", volumeGroup: "vg0" }), undefined, I);
  assert.deepEqual(actions(existingGroup), ["define", "start", "autostart"]);
});

test("a converged pool needs nothing; drift is repaired", () => {
  assert.deepEqual(actions(planPool("images", dirSpec, live("images"), I)), []);
  assert.deepEqual(actions(planPool("images", dirSpec, live("images", { active: false }), I)), ["build", "start"], "stopped by hand: its directory made again if gone");
  assert.deepEqual(actions(planPool("images", dirSpec, live("images", { autostart: false }), I)), ["autostart"]);
  const moved = planPool("images", dirSpec, live("images", { path: "/srv/elsewhere" }), I);
  assert.deepEqual(actions(moved), ["define", "destroy", "build", "start"], "a running pool takes a new definition only when restarted");
  assert.deepEqual(actions(planPool("images", dirSpec, live("images", { path: "/srv/elsewhere", active: false }), I)), ["define", "build", "start"], "a stopped one is not stopped again");
  assert.match(moved.kind === "converge" ? moved.steps[0]!.message : "", /target path: \/srv\/elsewhere → \/var\/lib\/kvmctl\/images/);
});

test("a stopped pool: a dir pool defined but never built is built; a logical one never built over", () => {
  assert.deepEqual(actions(planPool("images", dirSpec, live("images", { active: false, autostart: false }), I)), ["build", "start", "autostart"], "a controller killed between define and build");
  const group = { ...live("vg0", { active: false }), facts: { name: "vg0", uuid: poolUuid("vg0", I), type: "logical" as const, targetPath: "/dev/vg0", volumeGroup: "vg0" } };
  assert.deepEqual(actions(planPool("vg0", lvmSpec, group, I)), ["start"], "its volume group may hold data");
});

test("a pool of the same name kvmctl did not create is never touched", () => {
  const plan = planPool("images", dirSpec, live("images", { uuid: "0d6f0e8e-0000-4000-8000-000000000000" }), I);
  assert.equal(plan.kind, "notOwned");
  assert.equal(planPoolDeletion("images", live("images", { uuid: "0d6f0e8e-0000-4000-8000-000000000000" }), I).kind, "prune");
  const deletion = planPoolDeletion("images", live("images", { uuid: "0d6f0e8e-0000-4000-8000-000000000000" }), I);
  assert.deepEqual(deletion.kind === "prune" ? deletion.steps : undefined, [], "deleting the manifest leaves it alone");
});

test("deletion: an empty owned pool is stopped and undefined; one with volumes is kept, naming them", () => {
  const empty = planPoolDeletion("images", live("images"), I);
  assert.deepEqual(empty.kind === "prune" ? empty.steps.map((s) => s.action.type) : [], ["destroy", "undefine"]);
  const stopped = planPoolDeletion("images", live("images", { active: false }), I);
  assert.deepEqual(stopped.kind === "prune" ? stopped.steps.map((s) => s.action.type) : [], ["undefine"]);
  const full = planPoolDeletion("images", live("images", { volumes: new Map([["web-root.qcow2", { name: "web-root.qcow2", capacity: 1 }]]) }), I);
  assert.equal(full.kind, "keep");
  assert.match(full.kind === "keep" ? full.message : "", /1 volume\(s\) \(web-root\.qcow2\)/);
});

test("lifecycle: the phase follows the steps about to run, then what libvirt reports", () => {
  const phase = (o: Partial<Parameters<typeof poolPhaseFor>[0]>) => poolPhaseFor({ defining: false, starting: false, ...o });
  assert.equal(phase({}), "Pending", "nothing in libvirt yet");
  assert.equal(phase({ defining: true, starting: true }), "Building");
  assert.equal(phase({ starting: true, active: false }), "Starting");
  assert.equal(phase({ active: true }), "Active");
  assert.equal(phase({ active: false }), "Inactive");
  assert.equal(phase({ deleting: true, active: true }), "Terminating");
  assert.equal(phase({ deleting: true, holdsVolumes: true, active: true }), "Retained", "kept for its volumes");
});

test("whose a pool is: this instance's, an earlier kvmctl's (managed, never pruned), another's (left alone)", () => {
  const legacy = live("images", { uuid: poolUuid("images") });
  assert.deepEqual(actions(planPool("images", dirSpec, { ...legacy, active: false }, I)), ["build", "start"], "an earlier version's pool named by the manifest is managed");
  assert.deepEqual(planPoolDeletion("images", legacy, I), { kind: "prune", steps: [] }, "but never pruned: nothing records who adopted it");
  const other = live("images", { uuid: poolUuid("images", "t2") });
  const plan = planPool("images", dirSpec, other, I);
  assert.equal(plan.kind, "notOwned", "another instance's pool");
  assert.deepEqual(planPoolDeletion("images", other, I), { kind: "prune", steps: [] });
});


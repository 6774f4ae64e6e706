// When a deleted manifest's objects may be pruned (src/controllers/prune-policy.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { pruneDecision } from "../../../src/controllers/prune-policy.js";
import type { Snapshot } from "../../../src/store/index.js";

const policy = { settleMs: 2_000, allowEmpty: false };
const snapshot = (parts: { objects?: string[]; unreadable?: [string, string[]][] } = {}): Snapshot => ({
  objects: new Map((parts.objects ?? []).map((k) => [k, {} as never])),
  invalid: new Map(),
  unreadableFiles: new Map((parts.unreadable ?? []).map(([file, keys]) => [file, { problems: [{ location: { file, document: 0 }, message: "permission denied" }], lastKnownKeys: keys }])),
  problems: [],
});
const NOW = 1_000_000;

test("a manifest gone from a readable, non-empty, quiet directory is pruned", () => {
  assert.deepEqual(pruneDecision(snapshot({ objects: ["Network/lan"] }), "VirtualMachine/web", NOW, NOW - 5_000, policy, false), { prune: true });
});

test("a file (or the whole directory) that cannot be read keeps what it held", () => {
  const file = pruneDecision(snapshot({ objects: ["Network/lan"], unreadable: [["vms/web.yaml", ["VirtualMachine/web"]]] }), "VirtualMachine/web", NOW, 0, policy, true);
  assert.equal(file.prune ? "" : file.reason, "ManifestUnreadable");
  const dir = pruneDecision(snapshot({ unreadable: [[".", ["VirtualMachine/web"]]] }), "VirtualMachine/web", NOW, 0, { ...policy, allowEmpty: true }, true);
  assert.equal(dir.prune ? "" : dir.reason, "ManifestUnreadable", "not even with --allow-empty");
  assert.match(dir.prune ? "" : dir.message, /manifest directory cannot be read/);
});

test("an emptied directory prunes only what kvmctl delete asked for, or everything with --allow-empty", () => {
  const empty = snapshot();
  const held = pruneDecision(empty, "VirtualMachine/web", NOW, 0, policy, false);
  assert.equal(held.prune ? "" : held.reason, "DirectoryEmpty");
  assert.deepEqual(pruneDecision(empty, "VirtualMachine/web", NOW, 0, policy, true), { prune: true });
  assert.deepEqual(pruneDecision(empty, "VirtualMachine/web", NOW, 0, { ...policy, allowEmpty: true }, false), { prune: true });
});

test("a deletion waits for the directory to settle, and says how long", () => {
  const waiting = pruneDecision(snapshot({ objects: ["Network/lan"] }), "VirtualMachine/web", NOW, NOW - 500, policy, true);
  assert.deepEqual(waiting.prune ? undefined : [waiting.reason, waiting.retryAfterMs], ["Settling", 1_500]);
});

test("an object whose recorded manifest file cannot be read is kept, even when no read of that file ever knew it", () => {
  const broken = snapshot({ objects: ["Network/lan"], unreadable: [["vms/web.yaml", []]] });
  const held = pruneDecision(broken, "VirtualMachine/web", NOW, 0, policy, true, "vms/web.yaml");
  assert.equal(held.prune ? "" : held.reason, "ManifestUnreadable");
  const inDir = pruneDecision(snapshot({ objects: ["Network/lan"], unreadable: [["vms", []]] }), "VirtualMachine/web", NOW, 0, policy, true, "vms/web.yaml");
  assert.equal(inDir.prune ? "" : inDir.reason, "ManifestUnreadable", "a directory that cannot be read holds its files");
  assert.deepEqual(pruneDecision(broken, "VirtualMachine/db", NOW, 0, policy, true, "vms/db.yaml"), { prune: true }, "another file is not protected");
});

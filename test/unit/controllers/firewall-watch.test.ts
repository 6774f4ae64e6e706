// The firewall watch through the manager, over a real manifest directory and fake ports (the
// in-memory table's watch stands for `nft -j monitor`, which also reports kvmctl's own writes):
// a table flushed by hand is repaired at once, on virtual time that never reaches the periodic
// check; the repair's own change costs one comparison that applies nothing; other tables' changes
// wake nothing; a backend without a watch is left to the check; stop() ends the watch.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import pino from "pino";
import { Firewall } from "../../../src/controllers/firewall/controller.js";
import type { ControllerMetrics } from "../../../src/runtime/index.js";
import { ManifestStore } from "../../../src/store/index.js";
import { fakePorts, MemoryTable, testManager } from "../helpers/fake-ports.js";
import { ManualClock } from "../helpers/manual-clock.js";
import { tempDir } from "../store/helpers.js";

const NETWORK = `apiVersion: kvmctl.dev/v1alpha1
kind: Network
metadata:
  name: lan
spec:
  mode: isolated
  ipv4: {address: 192.0.2.1, prefix: 24}
  egress:
    - {action: deny, to: [203.0.113.0/24]}
`;

/** Work-queue depth and reconciles in flight, from the controller's metrics hooks. */
function queueWatch() {
  let depth = 0;
  let active = 0;
  const metrics: ControllerMetrics = {
    queue: { added: () => depth++, taken: () => depth--, finished: () => undefined, retried: () => undefined, dropped: () => depth-- },
    concurrency: () => undefined,
    reconcileStarted: () => active++,
    reconcileFinished: () => active--,
  };
  /** Resolves once nothing is queued or running (nothing else is due: the clock is virtual and never advanced). */
  const idle = async () => {
    for (let i = 0; i < 2000; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (depth === 0 && active === 0) return;
    }
    assert.fail(`the controller never went idle (depth ${depth}, active ${active})`);
  };
  return { metrics, idle };
}

test("flushed by hand: repaired at once on the watch's word; its own write costs one no-op comparison; other tables wake nothing", async () => {
  const dir = await tempDir("kvmctl-fw-watch-");
  fs.writeFileSync(path.join(dir, "lan.yaml"), NETWORK);
  const ports = fakePorts();
  const table = ports.firewall.table;
  const syncs: string[] = [];
  const queue = queueWatch();
  const manager = testManager(new ManifestStore({ dir, diskCache: false }), ports, { metrics: { controller: queue.metrics, firewall: { synced: (_backend, result) => syncs.push(result) } } });
  await manager.start();
  try {
    await manager.controller.firstPass;
    await queue.idle();
    assert.equal(table.rules.length, 2, "the network's rules are in the table");
    assert.ok(table.watcher, "the watch started once the backend was chosen");
    const applies = table.applies;
    syncs.length = 0;

    table.watcher.ignored(new Map([["inet admin", 3]]));
    await queue.idle();
    assert.deepEqual(syncs, [], "another table's change compared nothing");
    table.flushByHand();
    await queue.idle();
    assert.equal(table.rules.length, 2, "repaired without the periodic check (the clock never moved)");
    assert.equal(table.applies, applies + 1);
    assert.deepEqual(syncs, ["applied", "unchanged"], "the repair, then one comparison after its own write");

    // A later change wakes it again: the watch is still on.
    table.flushByHand();
    await queue.idle();
    assert.equal(table.applies, applies + 2);
  } finally {
    await manager.stop();
  }
  assert.equal(table.watcher, undefined, "stop() ended the watch");
  fs.rmSync(dir, { recursive: true, force: true });
});

test("a backend without a watch (iptables) is compared by the periodic check only; watch() wakes nothing and stops cleanly", async () => {
  const table = new MemoryTable();
  const backend = { name: "iptables" as const, observe: () => table.observe(), apply: (rules: Parameters<MemoryTable["apply"]>[0]) => table.apply(rules), placed: table.placed };
  const lines: string[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line).msg) });
  const firewall = new Firewall({ backend: "auto", instance: "t1", logger, host: { detect: async () => backend, qemuUid: () => 64055, listening: async () => [] }, sysctl: { ensureIpv4Forwarding: async () => false } });
  let wakes = 0;
  const watch = firewall.watch(() => wakes++);
  await firewall.sync({ objects: new Map(), invalid: new Map(), unreadableFiles: new Map() } as never, { takenAt: 0, domains: new Map(), pools: new Map(), networks: new Map() });
  assert.ok(lines.some((l) => /iptables reports no changes/.test(l)), lines.join("\n"));
  assert.equal(wakes, 0);
  await watch.stop();
});

test("while the watch listens the table is read only after a reported change, or 60 s on; without it, on every sync", async () => {
  const table = new MemoryTable();
  let reads = 0;
  const observe = table.observe.bind(table);
  table.observe = async () => (reads++, observe());
  const logger = pino({ level: "silent" });
  const clock = new ManualClock();
  const firewall = new Firewall({ backend: "auto", instance: "t1", logger, clock, host: { detect: async () => table, qemuUid: () => 64055, listening: async () => [] }, sysctl: { ensureIpv4Forwarding: async () => false } });
  const watch = firewall.watch(() => undefined);
  const empty = { objects: new Map(), invalid: new Map(), unreadableFiles: new Map() } as never;
  const sync = async () => {
    const before = reads;
    await firewall.sync(empty, { takenAt: 0, domains: new Map(), pools: new Map(), networks: new Map() });
    return reads - before;
  };
  assert.equal(await sync(), 2, "the first sync reads, applies and reads back");
  assert.ok(table.watcher, "watching");
  assert.equal(await sync(), 1, "started, not yet listening: every sync reads");
  table.watcher.started({ pid: 4242, restart: false });
  table.watcher.changed("the watch listens: what changed while it started went unseen");
  assert.equal(await sync(), 1, "the change its start reports: read");
  assert.equal(await sync(), 0, "listening, nothing changed: the last read stands");
  clock.advance(59_000);
  assert.equal(await sync(), 0);
  table.watcher.ignored(new Map([["inet admin", 1]]));
  assert.equal(await sync(), 0, "another table's change reads nothing");
  table.flushByHand();
  assert.equal(await sync(), 1, "a reported change: read (the table is empty, nothing to apply)");
  clock.advance(60_000);
  assert.equal(await sync(), 1, "60 s on: read again whatever the watch says");
  table.watcher.ended("killed by SIGKILL", 250);
  assert.equal(await sync(), 1, "the watch is down: every sync reads");
  assert.equal(await sync(), 1);
  await watch.stop();
});

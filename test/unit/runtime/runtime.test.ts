import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff, Controller, DependencyNotReadyError, markReady, markReconciling, markStalled, TerminalError, WorkQueue } from "../../../src/runtime/index.js";

const quiet = { info() {}, warn() {}, error() {}, debug() {}, child() { return quiet; } };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("a burst of adds for one key collapses into one item", async () => {
  const queue = new WorkQueue();
  for (let i = 0; i < 100; i++) queue.add("VirtualMachine/a");
  queue.add("VirtualMachine/b");
  assert.equal(queue.length, 2);
  assert.equal(await queue.get(), "VirtualMachine/a");
});

test("a key added while processing is handed out again only after done", async () => {
  const queue = new WorkQueue();
  queue.add("k");
  const key = (await queue.get())!;
  queue.add("k");
  assert.equal(queue.length, 0, "not handed out while processing");
  queue.done(key);
  assert.equal(queue.length, 1, "requeued once done");
});

test("the controller never reconciles one key twice at once", async () => {
  let running = 0;
  let maxRunning = 0;
  let calls = 0;
  const controller = new Controller({
    logger: quiet,
    concurrency: 4,
    listKeys: () => [],
    reconcile: async () => {
      running++;
      calls++;
      maxRunning = Math.max(maxRunning, running);
      await sleep(20);
      running--;
      return {};
    },
  });
  await controller.start();
  for (let i = 0; i < 10; i++) {
    controller.enqueue("VirtualMachine/same");
    await sleep(5);
  }
  await sleep(100);
  await controller.stop();
  assert.equal(maxRunning, 1);
  assert.ok(calls >= 2 && calls <= 6, `calls ${calls}`);
});

test("backoff doubles from 500 ms to a 5 minute cap, with jitter, and resets", () => {
  const backoff = new Backoff({ random: () => 1 });
  const delays = Array.from({ length: 12 }, () => backoff.next("k"));
  assert.deepEqual(delays.slice(0, 4), [500, 1000, 2000, 4000]);
  assert.equal(delays.at(-1), 300_000);
  const low = new Backoff({ random: () => 0 });
  assert.equal(low.next("k"), 250, "jitter keeps at least half the ceiling");
  backoff.reset("k");
  assert.equal(backoff.next("k"), 500);
});

test("terminal errors are not retried; dependency waits and errors are", async () => {
  const calls = new Map<string, number>();
  const controller = new Controller({
    logger: quiet,
    concurrency: 2,
    listKeys: () => [],
    backoff: new Backoff({ baseMs: 10, capMs: 20 }),
    reconcile: async (key) => {
      calls.set(key, (calls.get(key) ?? 0) + 1);
      if (key === "terminal") throw new TerminalError("bad spec");
      if (key === "dependency") throw new DependencyNotReadyError("later", 10);
      throw new Error("flaky");
    },
  });
  await controller.start();
  for (const key of ["terminal", "dependency", "flaky"]) controller.enqueue(key);
  await sleep(300);
  await controller.stop();
  assert.equal(calls.get("terminal"), 1);
  assert.ok(calls.get("dependency")! > 2);
  assert.ok(calls.get("flaky")! > 2);
  assert.equal(controller.outcomeOf("terminal")?.outcome, "terminal");
  assert.equal(controller.outcomeOf("dependency")?.outcome, "waiting");
});

test("kstatus conditions: Ready always, Reconciling/Stalled only while true, stable transition times", () => {
  const t1 = new Date("2026-01-01T00:00:00Z");
  const t2 = new Date("2026-01-01T01:00:00Z");
  let conditions = markReconciling(undefined, 1, "Progressing", "starting", t1);
  assert.deepEqual(conditions.map((c) => `${c.type}=${c.status}`), ["Ready=False", "Reconciling=True"]);
  conditions = markReconciling(conditions, 1, "Progressing", "still", t2);
  assert.equal(conditions[0]!.lastTransitionTime, "2026-01-01T00:00:00Z", "unchanged status keeps its time");
  conditions = markReady(conditions, 2, "Succeeded", "", t2);
  assert.deepEqual(conditions.map((c) => `${c.type}=${c.status}`), ["Ready=True"]);
  assert.equal(conditions[0]!.lastTransitionTime, "2026-01-01T01:00:00Z");
  assert.equal(conditions[0]!.observedGeneration, 2);
  conditions = markStalled(conditions, 3, "InvalidSpec", "no", t2);
  assert.deepEqual(conditions.map((c) => `${c.type}=${c.status}`), ["Ready=False", "Stalled=True"]);
});

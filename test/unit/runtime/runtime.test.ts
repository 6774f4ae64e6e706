import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff, Controller, DependencyNotReadyError, markReady, markReconciling, markStalled, TerminalError, WorkQueue } from "../../../src/runtime/index.js";
import { ManualClock, settle } from "../helpers/manual-clock.js";

const quiet = { info() {}, warn() {}, error() {}, debug() {}, child() { return quiet; } };

/** A promise the test resolves by hand: a reconcile that takes as long as the test says. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

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

test("the controller never reconciles one key twice at once; adds meanwhile collapse into one more", async () => {
  const clock = new ManualClock();
  let running = 0;
  let maxRunning = 0;
  let calls = 0;
  const gates: ReturnType<typeof deferred>[] = [];
  const controller = new Controller({
    logger: quiet,
    concurrency: 4,
    clock,
    listKeys: () => [],
    reconcile: async () => {
      running++;
      calls++;
      maxRunning = Math.max(maxRunning, running);
      const gate = deferred();
      gates.push(gate);
      await gate.promise;
      running--;
      return {};
    },
  });
  await controller.start();
  controller.enqueue("VirtualMachine/same");
  await settle();
  for (let i = 0; i < 10; i++) controller.enqueue("VirtualMachine/same"); // while the first runs
  await settle();
  assert.equal(calls, 1, "not handed out while processing");
  gates[0]!.resolve();
  await settle();
  assert.equal(calls, 2, "the ten adds made it dirty once");
  gates[1]!.resolve();
  await settle();
  await controller.stop();
  assert.equal(maxRunning, 1);
  assert.equal(calls, 2);
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

test("terminal errors are not retried; dependency waits and errors are, on their own schedules", async () => {
  const clock = new ManualClock();
  const calls = new Map<string, number[]>();
  const controller = new Controller({
    logger: quiet,
    concurrency: 2,
    clock,
    listKeys: () => [],
    backoff: new Backoff({ baseMs: 500, capMs: 4_000, random: () => 1 }),
    reconcile: async (key) => {
      calls.set(key, [...(calls.get(key) ?? []), clock.now()]);
      if (key === "terminal") throw new TerminalError("bad spec");
      if (key === "dependency") throw new DependencyNotReadyError("later", 3_000);
      throw new Error("flaky");
    },
  });
  const t0 = clock.now();
  await controller.start();
  for (const key of ["terminal", "dependency", "flaky"]) controller.enqueue(key);
  await settle();
  await clock.advance(10_000);
  await controller.stop();
  const offsets = (key: string) => (calls.get(key) ?? []).map((t) => t - t0);
  assert.deepEqual(offsets("terminal"), [0], "a terminal error waits for a spec change");
  assert.deepEqual(offsets("dependency"), [0, 3_000, 6_000, 9_000], "a dependency is looked at again after its retryAfter");
  assert.deepEqual(offsets("flaky"), [0, 500, 1_500, 3_500, 7_500], "errors back off: 500 ms doubling to the 4 s cap");
  assert.equal(controller.outcomeOf("terminal")?.outcome, "terminal");
  assert.equal(controller.outcomeOf("dependency")?.outcome, "waiting");
});

test("success resets the backoff; requeueAfter and the periodic resync bring a key back", async () => {
  const clock = new ManualClock();
  const seen: [string, number][] = [];
  let failures = 2;
  const controller = new Controller({
    logger: quiet,
    clock,
    resyncMs: 60_000,
    listKeys: () => ["resynced"],
    backoff: new Backoff({ baseMs: 1_000, random: () => 1 }),
    reconcile: async (key) => {
      seen.push([key, clock.now()]);
      if (key === "recovering" && failures-- > 0) throw new Error("not yet");
      return key === "polling" ? { requeueAfterMs: 5_000 } : {};
    },
  });
  const t0 = clock.now();
  await controller.start(); // lists "resynced" once at start
  controller.enqueue("recovering");
  controller.enqueue("polling");
  await settle();
  await clock.advance(61_000);
  await controller.stop();
  const at = (key: string) => seen.filter(([k]) => k === key).map(([, t]) => t - t0);
  assert.deepEqual(at("recovering"), [0, 1_000, 3_000], "two failures, then success: no more retries");
  assert.equal(controller.backoff.failuresOf("recovering"), 0, "reset on success");
  assert.deepEqual(at("polling").slice(0, 3), [0, 5_000, 10_000]);
  assert.equal(at("polling").length, 13, "every 5 s for 61 s");
  assert.deepEqual(at("resynced"), [0, 60_000], "listed at start and at the resync");
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

test("a first listing that fails (libvirtd down) is retried with backoff, not thrown; stop() ends the wait", async () => {
  const clock = new ManualClock();
  const errors: string[] = [];
  const logger = { ...quiet, error: (_: unknown, msg: string) => errors.push(msg) };
  let listings = 0;
  const reconciled: string[] = [];
  const controller = new Controller({
    logger,
    clock,
    listKeys: () => {
      listings++;
      if (listings <= 2) throw new Error("Failed to connect socket to '/var/run/libvirt/libvirt-sock'");
      return ["VirtualMachine/a"];
    },
    reconcile: async (key) => {
      reconciled.push(key);
      return {};
    },
  });
  const started = controller.start();
  await settle();
  assert.equal(listings, 1);
  assert.equal(errors.length, 1, "the failure is logged");
  await clock.advance(500);
  await settle();
  assert.equal(listings, 2, "tried again after 0.5 s");
  await clock.advance(999);
  await settle();
  assert.equal(listings, 2, "the second wait is longer");
  await clock.advance(1);
  await settle();
  await started;
  await controller.firstPass;
  assert.deepEqual(reconciled, ["VirtualMachine/a"], "the first pass ran once libvirt answered");
  await controller.stop();

  // Stopped while waiting: start() returns and nothing is reconciled.
  const never = new Controller({ logger: quiet, clock, listKeys: () => { throw new Error("down"); }, reconcile: async () => assert.fail("nothing to reconcile") });
  const waiting = never.start();
  await settle();
  await never.stop();
  await waiting;
});

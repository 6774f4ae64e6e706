// The Prometheus registry (src/metrics/registry.ts) fed by a real Controller and WorkQueue on
// virtual time: controller-runtime's and client-go's names and labels, kvmctl's own, and no
// object names in any label.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ReconciledObject } from "../../../src/controllers/metrics.js";
import { DriftTracker } from "../../../src/metrics/drift.js";
import { controllerName, KvmctlMetrics } from "../../../src/metrics/registry.js";
import { Controller, DependencyNotReadyError, TerminalError, type ControllerMetrics, type WorkQueueMetrics, WorkQueue } from "../../../src/runtime/index.js";
import type { StoredObject } from "../../../src/store/index.js";
import { ManualClock, settle } from "../helpers/manual-clock.js";

const quiet = { info() {}, warn() {}, error() {}, debug() {}, child() { return quiet; } };

/** One sample's value from the registry, by metric (or histogram series) name and labels. */
async function sample(metrics: KvmctlMetrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    for (const value of metric.values as { metricName?: string; labels: Record<string, string | number>; value: number }[]) {
      if ((value.metricName ?? metric.name) !== name) continue;
      if (Object.entries(labels).every(([k, v]) => String(value.labels[k]) === v)) return value.value;
    }
  }
  return undefined;
}

test("controller and work-queue metrics in controller-runtime's vocabulary, one name per kind, singletons by key", async () => {
  const clock = new ManualClock();
  const metrics = new KvmctlMetrics();
  const keys = ["StoragePool/bad", "Network/lan", "VirtualMachine/a", "VirtualMachine/b", "VirtualMachine/later", "Firewall/host"];
  const controller = new Controller({
    logger: quiet,
    concurrency: 3,
    clock,
    metrics: metrics.controller,
    listKeys: () => keys,
    reconcile: async (key) => {
      if (key === "StoragePool/bad") throw new TerminalError("no", "InvalidSpec");
      if (key === "Network/lan") throw new DependencyNotReadyError("waiting", 5_000);
      if (key === "VirtualMachine/b") throw new Error("virsh failed");
      if (key === "VirtualMachine/later") return { requeueAfterMs: 2_000 };
      return {};
    },
  });
  let firstPass = false;
  void controller.firstPass.then(() => (firstPass = true));
  await controller.start();
  await settle(20);
  assert.ok(firstPass, "every key listed at start was reconciled once");

  assert.equal(await sample(metrics, "controller_runtime_reconcile_total", { controller: "VirtualMachine", result: "success" }), 1);
  assert.equal(await sample(metrics, "controller_runtime_reconcile_total", { controller: "VirtualMachine", result: "error" }), 1);
  assert.equal(await sample(metrics, "controller_runtime_reconcile_total", { controller: "VirtualMachine", result: "requeue_after" }), 1);
  assert.equal(await sample(metrics, "controller_runtime_reconcile_total", { controller: "Network", result: "requeue" }), 1);
  assert.equal(await sample(metrics, "controller_runtime_reconcile_total", { controller: "StoragePool", result: "error" }), 1);
  assert.equal(await sample(metrics, "controller_runtime_reconcile_total", { controller: "Firewall/host", result: "success" }), 1);
  assert.equal(await sample(metrics, "controller_runtime_reconcile_errors_total", { controller: "VirtualMachine" }), 1);
  assert.equal(await sample(metrics, "controller_runtime_reconcile_errors_total", { controller: "StoragePool" }), 1);
  assert.equal(await sample(metrics, "controller_runtime_terminal_reconcile_errors_total", { controller: "StoragePool" }), 1);
  assert.equal(await sample(metrics, "controller_runtime_reconcile_time_seconds_count", { controller: "VirtualMachine" }), 3);
  assert.equal(await sample(metrics, "controller_runtime_active_workers", { controller: "VirtualMachine" }), 0);
  assert.equal(await sample(metrics, "controller_runtime_max_concurrent_reconciles", { controller: "VirtualMachine" }), 3);
  assert.equal(await sample(metrics, "workqueue_adds_total", { name: "VirtualMachine" }), 3);
  assert.equal(await sample(metrics, "workqueue_depth", { name: "VirtualMachine" }), 0);
  assert.equal(await sample(metrics, "workqueue_retries_total", { name: "VirtualMachine" }), 1, "the failure went back with backoff");
  assert.equal(await sample(metrics, "workqueue_queue_duration_seconds_count", { name: "VirtualMachine" }), 3);
  assert.equal(await sample(metrics, "workqueue_work_duration_seconds_count", { name: "Firewall/host" }), 1);

  // The failed one comes back after its backoff: another add, another error.
  await clock.advance(60_000);
  await settle(20);
  assert.ok((await sample(metrics, "controller_runtime_reconcile_total", { controller: "VirtualMachine", result: "error" }))! >= 2);
  assert.ok((await sample(metrics, "workqueue_adds_total", { name: "VirtualMachine" }))! >= 4);
  await controller.stop();

  const text = (await metrics.render()).body;
  for (const name of ["bad", "lan", "later"]) assert.doesNotMatch(text, new RegExp(`"[^"]*\\b${name}\\b[^"]*"`), `no object name (${name}) in any label`);
  assert.match(text, /^# TYPE kvmctl_git_pulls_total counter$/m, "the GitOps hook is registered");
});

test("depth counts keys waiting, a key is not counted twice, and shutdown drops the waiting ones", async () => {
  const calls: string[] = [];
  const fake: WorkQueueMetrics = {
    added: (k) => calls.push(`added ${k}`),
    taken: (k, ms) => calls.push(`taken ${k} ${ms}`),
    finished: (k, ms) => calls.push(`finished ${k} ${ms}`),
    retried: (k) => calls.push(`retried ${k}`),
    dropped: (k) => calls.push(`dropped ${k}`),
  };
  const clock = new ManualClock();
  const queue = new WorkQueue(clock, fake);
  queue.add("VirtualMachine/a");
  queue.add("VirtualMachine/a");
  await clock.advance(250);
  const key = (await queue.get())!;
  queue.add(key); // while processing: dirty, queued again when done
  await clock.advance(100);
  queue.done(key);
  queue.addAfter("Network/n", 1_000, true);
  queue.add("StoragePool/p");
  queue.shutdown();
  assert.deepEqual(calls, ["added VirtualMachine/a", "taken VirtualMachine/a 250", "finished VirtualMachine/a 100", "added VirtualMachine/a", "retried Network/n", "added StoragePool/p", "dropped VirtualMachine/a", "dropped StoragePool/p"]);
});

test("a fake ControllerMetrics sees every reconcile start and finish with its result", async () => {
  const seen: string[] = [];
  const fake: ControllerMetrics = {
    concurrency: (n) => seen.push(`concurrency ${n}`),
    reconcileStarted: (k) => seen.push(`start ${k}`),
    reconcileFinished: (k, result, _ms, terminal) => seen.push(`finish ${k} ${result}${terminal ? " terminal" : ""}`),
  };
  const controller = new Controller({ logger: quiet, clock: new ManualClock(), metrics: fake, listKeys: () => [], reconcile: async () => ({}) });
  await controller.runOnce([["VirtualMachine/a"]]);
  assert.deepEqual(seen, ["concurrency 4", "start VirtualMachine/a", "finish VirtualMachine/a success"]);
});

test("virsh commands, firewall syncs, objects by Ready, git pulls", async () => {
  const metrics = new KvmctlMetrics();
  metrics.virsh("start", 120);
  metrics.virsh("batch", 30);
  metrics.virsh("start --paused secret", 1); // never more than a word
  metrics.firewall.synced("nftables", "applied");
  metrics.firewall.synced("nftables", "unchanged");
  metrics.firewall.synced("nftables", "unchanged");
  metrics.firewall.repaired?.("rules");
  metrics.gitPulls.inc({ result: "success" });
  let objects = [{ kind: "VirtualMachine", ready: "True" as const }, { kind: "VirtualMachine", ready: "True" as const }, { kind: "Network", ready: "Unknown" as const }];
  metrics.setObjectSource(() => objects);
  assert.equal(await sample(metrics, "kvmctl_virsh_commands_total", { command: "start" }), 1);
  assert.equal(await sample(metrics, "kvmctl_virsh_commands_total", { command: "other" }), 1);
  assert.equal(await sample(metrics, "kvmctl_virsh_command_duration_seconds_sum", { command: "start" }), 0.12);
  assert.equal(await sample(metrics, "kvmctl_virsh_command_duration_seconds_count", { command: "batch" }), 1);
  assert.equal(await sample(metrics, "kvmctl_firewall_syncs_total", { backend: "nftables", result: "unchanged" }), 2);
  assert.equal(await sample(metrics, "kvmctl_drift_repairs_total", { kind: "Firewall", what: "rules" }), 1);
  assert.equal(await sample(metrics, "kvmctl_git_pulls_total", { result: "success" }), 1);
  assert.equal(await sample(metrics, "kvmctl_objects", { kind: "VirtualMachine", ready: "True" }), 2);
  assert.equal(await sample(metrics, "kvmctl_objects", { kind: "Network", ready: "Unknown" }), 1);
  objects = [{ kind: "Network", ready: "True" }];
  assert.equal(await sample(metrics, "kvmctl_objects", { kind: "VirtualMachine", ready: "True" }), undefined, "read afresh at each scrape");
  assert.equal(await sample(metrics, "kvmctl_objects", { kind: "Network", ready: "True" }), 1);
});

const stored = (specHash: string, status?: unknown) => ({ specHash, object: { status } }) as unknown as StoredObject;
const reconciled = (spec: string, ready: boolean, repairs: string[], status?: unknown): ReconciledObject => ({ key: "VirtualMachine/a", kind: "VirtualMachine", stored: stored(spec, status), ready, repairs });

test("drift repairs: changes to an object already Ready for its spec, not those converging to a new spec", async () => {
  const drift = new DriftTracker();
  assert.deepEqual(drift.drift(reconciled("s1", true, ["define", "start"])), [], "first convergence");
  assert.deepEqual(drift.drift(reconciled("s1", false, ["start"])), ["start"], "destroyed by hand: started again");
  assert.deepEqual(drift.drift(reconciled("s1", true, ["autostart"])), ["autostart"], "still the same spec");
  assert.deepEqual(drift.drift(reconciled("s2", true, ["define"])), [], "a new spec");
  assert.deepEqual(drift.drift({ key: "VirtualMachine/a", kind: "VirtualMachine", stored: undefined, ready: true, repairs: ["undefine"] }), [], "a prune");
  // After a restart: the status on disk says it was Ready for this spec.
  const fresh = new DriftTracker();
  assert.deepEqual(fresh.drift(reconciled("s3", true, ["start"], { observedSpecHash: "s3", conditions: [{ type: "Ready", status: "True" }] })), ["start"]);
  assert.deepEqual(new DriftTracker().drift(reconciled("s3", true, ["start"], { observedSpecHash: "s2", conditions: [{ type: "Ready", status: "True" }] })), []);

  const metrics = new KvmctlMetrics();
  metrics.manager.reconciled!(reconciled("s1", true, []));
  metrics.manager.reconciled!(reconciled("s1", true, ["start", "start"]));
  assert.equal(await sample(metrics, "kvmctl_drift_repairs_total", { kind: "VirtualMachine", what: "start" }), 2);
});

test("metric names: a key's kind, or a singleton's whole key", () => {
  assert.equal(controllerName("VirtualMachine/web1"), "VirtualMachine");
  assert.equal(controllerName("Firewall/host"), "Firewall/host");
});

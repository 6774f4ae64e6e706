// kvmctl's Prometheus metrics: definitions only, on a registry of their own (no global
// registry, no HTTP: ./server.ts serves them). Names follow controller-runtime and client-go
// (controller_runtime_*, workqueue_*), plus kvmctl_*. Labels are kinds, singleton keys, virsh
// subcommands, step types and fixed words — never object names, paths or anything secret,
// which also keeps their number bounded.
import { Counter, Gauge, Histogram, Registry, exponentialBuckets } from "prom-client";
import { isKindName } from "../api/kind-names.js";
import type { ManagerMetrics, ReconciledObject } from "../controllers/metrics.js";
import type { FirewallMetrics } from "../controllers/firewall/controller.js";
import type { ControllerMetrics, WorkQueueMetrics } from "../runtime/metrics.js";
import { DriftTracker } from "./drift.js";

/** A key's metric name: its kind (VirtualMachine), or the whole key for a singleton (Firewall/host). */
export function controllerName(key: string): string {
  const kind = key.slice(0, key.indexOf("/"));
  return isKindName(kind) ? kind : key;
}

/** A label value from code (a virsh subcommand, a step type); anything unexpected becomes "other". */
function word(value: string): string {
  return /^[A-Za-z][A-Za-z0-9_-]{0,40}$/.test(value) ? value : "other";
}

/** Ready as a condition says it. */
export type ReadyLabel = "True" | "False" | "Unknown";
export interface ObjectState {
  kind: string;
  ready: ReadyLabel;
}

/** Observes each virsh process (src/adapters/virsh.ts VirshOptions.observer). */
export type VirshObserver = (command: string, ms: number) => void;
/** Told of every reading of libvirt: whole, or of the domains that changed alone (src/adapters/observer.ts). */
export type ReadingObserver = (scope: "whole" | "changed") => void;

export type GitPullResult = "success" | "error" | "noop";

// controller-runtime's reconcile_time_seconds buckets.
const RECONCILE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60];
// client-go's workqueue buckets: 10 ns to 10 s, by tens... and on to 100 s (a long libvirt command).
const QUEUE_BUCKETS = exponentialBuckets(1e-8, 10, 11);
const VIRSH_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class KvmctlMetrics {
  readonly registry: Registry;
  readonly reconcileTotal: Counter<"controller" | "result">;
  readonly reconcileErrors: Counter<"controller">;
  readonly terminalReconcileErrors: Counter<"controller">;
  readonly reconcileTime: Histogram<"controller">;
  readonly activeWorkers: Gauge<"controller">;
  readonly maxConcurrentReconciles: Gauge<"controller">;
  readonly queueDepth: Gauge<"name">;
  readonly queueAdds: Counter<"name">;
  readonly queueRetries: Counter<"name">;
  readonly queueDuration: Histogram<"name">;
  readonly workDuration: Histogram<"name">;
  readonly objects: Gauge<"kind" | "ready">;
  readonly driftRepairs: Counter<"kind" | "what">;
  readonly virshCommands: Counter<"command">;
  readonly virshDuration: Histogram<"command">;
  readonly libvirtReadings: Counter<"scope">;
  readonly firewallSyncs: Counter<"backend" | "result">;
  /** For GitOps to wire: one increment per `git pull` of the manifest checkout, by result. Nothing counts it yet. */
  readonly gitPulls: Counter<"result">;
  readonly driftReported: Counter<"kind">;
  private objectSource: (() => Iterable<ObjectState>) | undefined;
  /** The controller's worker count: shared by every kind, shown for each one seen. */
  private workers = 0;
  private readonly seen = new Set<string>();
  private readonly drift = new DriftTracker();

  constructor(registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    this.reconcileTotal = new Counter({ name: "controller_runtime_reconcile_total", help: "Total number of reconciliations per controller", labelNames: ["controller", "result"], registers });
    this.reconcileErrors = new Counter({ name: "controller_runtime_reconcile_errors_total", help: "Total number of reconciliation errors per controller", labelNames: ["controller"], registers });
    this.terminalReconcileErrors = new Counter({ name: "controller_runtime_terminal_reconcile_errors_total", help: "Total number of terminal reconciliation errors per controller", labelNames: ["controller"], registers });
    this.reconcileTime = new Histogram({ name: "controller_runtime_reconcile_time_seconds", help: "Length of time per reconciliation per controller", labelNames: ["controller"], buckets: RECONCILE_BUCKETS, registers });
    this.activeWorkers = new Gauge({ name: "controller_runtime_active_workers", help: "Number of currently used workers per controller", labelNames: ["controller"], registers });
    this.maxConcurrentReconciles = new Gauge({ name: "controller_runtime_max_concurrent_reconciles", help: "Maximum number of concurrent reconciles per controller (kvmctl's workers are shared by every kind)", labelNames: ["controller"], registers });
    this.queueDepth = new Gauge({ name: "workqueue_depth", help: "Current depth of workqueue", labelNames: ["name"], registers });
    this.queueAdds = new Counter({ name: "workqueue_adds_total", help: "Total number of adds handled by workqueue", labelNames: ["name"], registers });
    this.queueRetries = new Counter({ name: "workqueue_retries_total", help: "Total number of retries handled by workqueue", labelNames: ["name"], registers });
    this.queueDuration = new Histogram({ name: "workqueue_queue_duration_seconds", help: "How long in seconds an item stays in workqueue before being requested", labelNames: ["name"], buckets: QUEUE_BUCKETS, registers });
    this.workDuration = new Histogram({ name: "workqueue_work_duration_seconds", help: "How long in seconds processing an item from workqueue takes", labelNames: ["name"], buckets: QUEUE_BUCKETS, registers });
    const source = () => this.objectSource;
    this.objects = new Gauge({
      name: "kvmctl_objects",
      help: "Objects in the manifest directory by kind and Ready status (Unknown: not reconciled yet)",
      labelNames: ["kind", "ready"],
      registers,
      collect() {
        const list = source();
        if (!list) return;
        this.reset();
        for (const { kind, ready } of list()) this.inc({ kind, ready });
      },
    });
    this.driftRepairs = new Counter({ name: "kvmctl_drift_repairs_total", help: "Changes made to objects that had been Ready for their current spec, by kind and what was changed (a plan step type)", labelNames: ["kind", "what"], registers });
    this.virshCommands = new Counter({ name: "kvmctl_virsh_commands_total", help: "virsh requests run, in a virsh process or a long-lived virsh shell, by subcommand (batch: several read-only commands in one request)", labelNames: ["command"], registers });
    this.virshDuration = new Histogram({ name: "kvmctl_virsh_command_duration_seconds", help: "How long each virsh request took, by subcommand", labelNames: ["command"], buckets: VIRSH_BUCKETS, registers });
    this.libvirtReadings = new Counter({ name: "kvmctl_libvirt_readings_total", help: "Pictures of libvirt read, by scope (whole: every object; changed: only the domains that changed since the last picture)", labelNames: ["scope"], registers });
    this.firewallSyncs = new Counter({ name: "kvmctl_firewall_syncs_total", help: "Firewall syncs by backend and result (applied: the table was replaced; unchanged: it held what it should)", labelNames: ["backend", "result"], registers });
    this.driftReported = new Counter({ name: "kvmctl_drift_reported_total", help: "Drift found and left as it is (drift: report), by kind: once per new finding", labelNames: ["kind"], registers });
    this.gitPulls = new Counter({ name: "kvmctl_git_pulls_total", help: "Pulls of the manifest checkout from its upstream, by result", labelNames: ["result"], registers });
  }

  /** Where kvmctl_objects is read from at each scrape (the manager's objectStates()). */
  setObjectSource(source: () => Iterable<ObjectState>): void {
    this.objectSource = source;
  }

  /** Text for `/metrics`. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  readonly queue: WorkQueueMetrics = {
    added: (key) => {
      const name = controllerName(key);
      this.queueAdds.inc({ name });
      this.queueDepth.inc({ name });
    },
    taken: (key, waitedMs) => {
      const name = controllerName(key);
      this.queueDepth.dec({ name });
      this.queueDuration.observe({ name }, waitedMs / 1000);
    },
    finished: (key, workedMs) => this.workDuration.observe({ name: controllerName(key) }, workedMs / 1000),
    retried: (key) => this.queueRetries.inc({ name: controllerName(key) }),
    dropped: (key) => this.queueDepth.dec({ name: controllerName(key) }),
  };

  readonly controller: ControllerMetrics = {
    queue: this.queue,
    concurrency: (workers) => {
      this.workers = workers;
      for (const controller of this.seen) this.maxConcurrentReconciles.set({ controller }, workers);
    },
    reconcileStarted: (key) => {
      const controller = controllerName(key);
      if (!this.seen.has(controller)) {
        this.seen.add(controller);
        this.maxConcurrentReconciles.set({ controller }, this.workers);
      }
      this.activeWorkers.inc({ controller });
    },
    reconcileFinished: (key, result, ms, terminal) => {
      const controller = controllerName(key);
      this.activeWorkers.dec({ controller });
      this.reconcileTotal.inc({ controller, result });
      if (result === "error") this.reconcileErrors.inc({ controller });
      if (terminal) this.terminalReconcileErrors.inc({ controller });
      this.reconcileTime.observe({ controller }, ms / 1000);
    },
  };

  readonly virsh: VirshObserver = (command, ms) => {
    const label = word(command);
    this.virshCommands.inc({ command: label });
    this.virshDuration.observe({ command: label }, ms / 1000);
  };

  readonly reading: ReadingObserver = (scope) => this.libvirtReadings.inc({ scope });

  readonly firewall: FirewallMetrics = {
    synced: (backend, result) => this.firewallSyncs.inc({ backend: word(backend), result }),
    repaired: (what) => this.driftRepairs.inc({ kind: "Firewall", what: word(what) }),
    driftReported: () => this.driftReported.inc({ kind: "Firewall" }),
  };

  /** What the manager is handed (ManagerOptions.metrics). */
  readonly manager: ManagerMetrics = {
    controller: this.controller,
    firewall: this.firewall,
    reconciled: (object: ReconciledObject) => {
      for (const what of this.drift.drift(object)) this.driftRepairs.inc({ kind: word(object.kind), what: word(what) });
    },
    gitPulled: (result) => this.gitPulls.inc({ result: word(result) }),
    driftReported: (kind) => this.driftReported.inc({ kind: word(kind) }),
  };
}

// The controller loop: workers take keys from the queue and reconcile them; failures retry
// with per-key backoff, dependencies are waited for, terminal errors wait for a spec change,
// and a periodic resync re-checks every key for drift no event reported.
import { randomBytes } from "node:crypto";
import { Backoff } from "./backoff.js";
import { every, systemClock, type Clock } from "./clock.js";
import { DependencyNotReadyError, TerminalError, type Outcome, type ReconcileResult } from "./result.js";
import type { ControllerMetrics, ReconcileResultLabel } from "./metrics.js";
import { WorkQueue } from "./workqueue.js";

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  child(bindings: object): Logger;
}

export interface ReconcileContext {
  reconcileId: string;
  log: Logger;
  /** When the key was queued: observe the world as of this time or later. */
  queuedAt: number;
  /**
   * The newest picture of the world this reconcile decided on (ms epoch), set by the reconcile:
   * when it was read, or for one known to still hold (the hypervisor's informer), when that was
   * confirmed. Logged with every outcome: a test that checks something did *not* happen waits
   * for a reconcile that saw the world after its change.
   */
  observedAt?: number;
}

export interface ReconcileReport {
  key: string;
  outcome: Outcome;
  error?: unknown;
  ready?: boolean;
}

export interface ControllerOptions {
  reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult & { ready?: boolean }>;
  /** Called after every reconcile; the place to record status for failures. */
  onReport?(report: ReconcileReport, ctx: ReconcileContext): Promise<void> | void;
  /** Every key: for the first pass at start, and for each periodic resync (which should look afresh). */
  listKeys(purpose: "start" | "resync"): string[] | Promise<string[]>;
  logger: Logger;
  concurrency?: number;
  resyncMs?: number;
  backoff?: Backoff;
  clock?: Clock;
  /** Reconcile and work-queue metrics (src/metrics); absent: nothing is counted. */
  metrics?: ControllerMetrics;
}

/** controller-runtime's result label for a report: waiting for a dependency is "requeue", a requested look later "requeue_after". */
export function resultLabel(report: Pick<ReconcileReport, "outcome"> & { requeueAfterMs?: number | undefined }): ReconcileResultLabel {
  if (report.outcome === "error" || report.outcome === "terminal") return "error";
  if (report.outcome === "waiting") return "requeue";
  return report.requeueAfterMs !== undefined ? "requeue_after" : "success";
}

/** start()'s retries when the first listing fails: 0.5 s, doubling, at most every 30 s. */
const FIRST_LIST_DELAY_MS = 500;
const FIRST_LIST_MAX_DELAY_MS = 30_000;

export class Controller {
  readonly queue: WorkQueue;
  readonly backoff: Backoff;
  private readonly clock: Clock;
  private readonly outcomes = new Map<string, ReconcileReport & { requeueAfterMs?: number }>();
  private workers: Promise<void>[] = [];
  private stopResync: (() => void) | undefined;
  private running = false;
  /** Keys of the first full pass (listed by start()) not reconciled yet. */
  private firstPassPending: Set<string> | undefined;
  private firstPassDone: () => void = () => undefined;
  /** Ends start()'s wait before it lists the keys again (set only while it waits). */
  private cancelFirstListWait: (() => void) | undefined;
  /**
   * Resolves once every key start() listed has been reconciled once, whatever the outcome
   * (`/readyz`, systemd's READY=1): the first full pass is done.
   */
  readonly firstPass: Promise<void> = new Promise((resolve) => (this.firstPassDone = resolve));

  constructor(private readonly options: ControllerOptions) {
    this.backoff = options.backoff ?? new Backoff();
    this.clock = options.clock ?? systemClock;
    this.queue = new WorkQueue(this.clock, options.metrics?.queue);
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Queues the key once `ms` have passed (an earlier pending delay for it wins). */
  enqueueAfter(key: string, ms: number): void {
    this.queue.addAfter(key, ms);
  }

  /** A spec change clears a key's backoff so the new spec is tried at once. */
  forget(key: string): void {
    this.backoff.reset(key);
  }

  outcomeOf(key: string): ReconcileReport | undefined {
    return this.outcomes.get(key);
  }

  /** Whether the key's last reconcile succeeded, Ready, with no later look asked for (nothing it waits on). */
  settled(key: string): boolean {
    const last = this.outcomes.get(key);
    return last !== undefined && last.outcome === "ready" && last.ready === true && last.requeueAfterMs === undefined;
  }

  async start(): Promise<void> {
    this.running = true;
    const keys = await this.firstKeys();
    if (!this.running) return; // stopped while libvirt could not be read
    this.firstPassPending = new Set(keys);
    if (keys.length === 0) this.firstPassDone();
    for (const key of keys) this.queue.add(key);
    const concurrency = this.options.concurrency ?? 4;
    this.options.metrics?.concurrency(concurrency);
    this.workers = Array.from({ length: concurrency }, () => this.worker());
    this.stopResync = every(this.clock, this.options.resyncMs ?? 5 * 60_000, () => void this.resync());
  }

  /**
   * The first pass's keys. Listing them reads libvirt: a libvirtd that is down or restarting
   * (a host booting, an upgrade) is waited for with backoff, never a reason to exit.
   */
  private async firstKeys(): Promise<string[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.options.listKeys("start");
      } catch (error) {
        if (!this.running) return [];
        const retryInMs = Math.min(FIRST_LIST_MAX_DELAY_MS, FIRST_LIST_DELAY_MS * 2 ** Math.min(attempt, 10));
        this.options.logger.error({ err: error, retryInMs }, "could not list the objects for the first pass (libvirt unreachable?): trying again");
        await new Promise<void>((resolve) => {
          const timer = this.clock.setTimer(() => resolve(), retryInMs);
          this.cancelFirstListWait = () => {
            this.clock.clearTimer(timer);
            resolve();
          };
        });
        this.cancelFirstListWait = undefined;
        if (!this.running) return [];
      }
    }
  }

  /** Stops taking new work and resolves when in-flight reconciles have finished. */
  async stop(): Promise<void> {
    this.running = false;
    this.cancelFirstListWait?.();
    this.stopResync?.();
    this.queue.shutdown();
    await Promise.all(this.workers);
  }

  private async resync(): Promise<void> {
    try {
      for (const key of await this.options.listKeys("resync")) this.queue.add(key);
    } catch (error) {
      this.options.logger.error({ err: error }, "resync failed to list objects");
    }
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        const report = await this.reconcileOnce(key, this.queue.queuedAt(key));
        if (!this.running) continue;
        this.schedule(report);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private schedule(report: ReconcileReport & { requeueAfterMs?: number }): void {
    const { key } = report;
    if (report.outcome === "error") this.queue.addAfter(key, this.backoff.next(key), true);
    else if (report.outcome === "waiting") this.queue.addAfter(key, report.error instanceof DependencyNotReadyError ? report.error.retryAfterMs : 5_000);
    else if (report.requeueAfterMs !== undefined) this.queue.addAfter(key, report.requeueAfterMs);
  }

  /** Reconciles `key` once, classifies the result, and reports it. */
  async reconcileOnce(key: string, queuedAt = this.clock.now()): Promise<ReconcileReport & { requeueAfterMs?: number }> {
    const reconcileId = randomBytes(4).toString("hex");
    const log = this.options.logger.child({ object: key, reconcileId });
    const ctx: ReconcileContext = { reconcileId, log, queuedAt };
    const started = this.clock.now();
    this.options.metrics?.reconcileStarted(key);
    let report: ReconcileReport & { requeueAfterMs?: number };
    try {
      const result = await this.options.reconcile(key, ctx);
      this.backoff.reset(key);
      report = { key, outcome: "ready", ready: result.ready ?? true, requeueAfterMs: result.requeueAfterMs };
      log.debug({ ms: this.clock.now() - started, ready: report.ready }, "reconciled");
    } catch (error) {
      if (error instanceof TerminalError) {
        this.backoff.reset(key);
        report = { key, outcome: "terminal", error, ready: false };
        log.warn({ ms: this.clock.now() - started, reason: error.reason, message: error.message }, "stalled");
      } else if (error instanceof DependencyNotReadyError) {
        report = { key, outcome: "waiting", error, ready: false };
        log.info({ message: error.message }, "waiting for a dependency");
      } else {
        report = { key, outcome: "error", error, ready: false };
        log.warn({ ms: this.clock.now() - started, err: error, failures: this.backoff.failuresOf(key) + 1 }, "reconcile failed; will retry");
      }
    }
    this.outcomes.set(key, report);
    this.options.metrics?.reconcileFinished(key, resultLabel(report), this.clock.now() - started, report.outcome === "terminal");
    // One line per reconcile whatever its outcome: the signal that the controller looked.
    log.debug({ outcome: report.outcome, startedAt: started, observedAt: ctx.observedAt, ms: this.clock.now() - started }, "reconcile finished");
    try {
      await this.options.onReport?.(report, ctx);
    } catch (error) {
      log.error({ err: error }, "could not record the outcome");
    }
    if (this.firstPassPending?.delete(key) && this.firstPassPending.size === 0) this.firstPassDone();
    return report;
  }

  /**
   * `kvmctl controller --once`: reconciles each group of keys in order (groups run one after
   * the other so pools come before the VMs that use them; keys within a group run in parallel).
   */
  async runOnce(groups: string[][]): Promise<ReconcileReport[]> {
    const reports: ReconcileReport[] = [];
    const concurrency = this.options.concurrency ?? 4;
    this.options.metrics?.concurrency(concurrency);
    for (const group of groups) {
      const pending = [...group];
      const queuedAt = this.clock.now();
      await Promise.all(
        Array.from({ length: Math.min(concurrency, pending.length) }, async () => {
          for (let key = pending.shift(); key !== undefined; key = pending.shift()) reports.push(await this.reconcileOnce(key, queuedAt));
        }),
      );
    }
    return reports;
  }
}

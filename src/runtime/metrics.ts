// What the work queue and the controller loop report, as plain interfaces: src/metrics maps
// them onto Prometheus (controller-runtime's and client-go's metric names); unit tests pass
// fakes. Nothing here is global: a queue or controller without them reports nothing.

/** client-go's workqueue metrics, per key (the implementation names the queue after the key's kind). */
export interface WorkQueueMetrics {
  /** A key entered the queue (workqueue_adds_total; workqueue_depth + 1). A key already waiting is not added twice. */
  added(key: string): void;
  /** A worker took a waiting key, `waitedMs` after it was added (workqueue_depth - 1; workqueue_queue_duration_seconds). */
  taken(key: string, waitedMs: number): void;
  /** A worker finished a key it took `workedMs` before (workqueue_work_duration_seconds). */
  finished(key: string, workedMs: number): void;
  /** A key was put back with backoff after a failure (workqueue_retries_total). */
  retried(key: string): void;
  /** A waiting key was dropped by shutdown (workqueue_depth - 1). */
  dropped(key: string): void;
}

/** controller-runtime's reconcile result label. */
export type ReconcileResultLabel = "success" | "error" | "requeue" | "requeue_after";

/** controller-runtime's controller metrics, per key (named after the key's kind). */
export interface ControllerMetrics {
  /** The queue's metrics, handed to the controller's WorkQueue. */
  queue?: WorkQueueMetrics;
  /** How many reconciles may run at once (controller_runtime_max_concurrent_reconciles). */
  concurrency(workers: number): void;
  /** A reconcile began (controller_runtime_active_workers + 1). */
  reconcileStarted(key: string): void;
  /**
   * A reconcile ended (active workers - 1; controller_runtime_reconcile_total{result};
   * controller_runtime_reconcile_errors_total when result is "error", and the terminal-errors
   * counter when `terminal`; controller_runtime_reconcile_time_seconds).
   */
  reconcileFinished(key: string, result: ReconcileResultLabel, ms: number, terminal: boolean): void;
}

// The reconcile contract (after controller-runtime): a reconcile resolves with an optional
// requeue delay, or throws. TerminalError = the spec cannot work (Stalled, no retry until
// it changes); DependencyNotReadyError = wait and look again, not a failure; anything else
// is retried with per-object backoff.

export interface ReconcileResult {
  /** Look again after this long even if nothing happens (e.g. polling a shutdown). */
  requeueAfterMs?: number;
}

export class TerminalError extends Error {
  constructor(
    message: string,
    readonly reason = "InvalidSpec",
  ) {
    super(message);
    this.name = "TerminalError";
  }
}

export class DependencyNotReadyError extends Error {
  constructor(
    message: string,
    readonly retryAfterMs = 5_000,
  ) {
    super(message);
    this.name = "DependencyNotReadyError";
  }
}

export type Outcome = "ready" | "waiting" | "error" | "terminal";

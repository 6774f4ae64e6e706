// Per-key exponential backoff with full jitter: base doubling to a cap, reset on success.
// Full jitter (a random delay in [0, ceiling]) spreads retries of many failing objects.

export interface BackoffOptions {
  baseMs?: number;
  capMs?: number;
  random?: () => number;
}

export class Backoff {
  private readonly failures = new Map<string, number>();
  private readonly baseMs: number;
  private readonly capMs: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.baseMs = options.baseMs ?? 500;
    this.capMs = options.capMs ?? 5 * 60_000;
    this.random = options.random ?? Math.random;
  }

  /** The ceiling for the n-th consecutive failure (n from 0). */
  ceiling(failures: number): number {
    return Math.min(this.capMs, this.baseMs * 2 ** Math.min(failures, 30));
  }

  /** Records a failure of `key` and returns how long to wait before retrying it. */
  next(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const ceiling = this.ceiling(failures);
    // At least half the ceiling, so a retry storm cannot start from near-zero delays.
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  reset(key: string): void {
    this.failures.delete(key);
  }
}

// Wake-ups from a watch whose own reaction causes events (the firewall: kvmctl's repair of its
// table is itself a change the monitor reports). They pass at once, up to `burst` in a row;
// beyond that one per `spacingMs`, the ones in between collapsed into it. So a fight with
// another writer of the same table (a second controller given the same --instance) becomes a
// slow loop instead of a busy one, while a person's edits are still answered at once.
import type { Clock, TimerHandle } from "./clock.js";

export interface WakeLimiterOptions {
  /** Wake-ups passed at once before the limit applies. */
  burst: number;
  /** Once limited, at most one wake-up per this many ms; also the pace the burst refills at. */
  spacingMs: number;
  /** Called when wake-ups start being held back (once, until the burst has refilled). */
  onLimited?(): void;
}

export class WakeLimiter {
  private tokens: number;
  private refilledAt: number;
  private pending: TimerHandle | undefined;
  private limited = false;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly fn: () => void,
    private readonly options: WakeLimiterOptions,
  ) {
    this.tokens = options.burst;
    this.refilledAt = clock.now();
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.options.burst, this.tokens + (now - this.refilledAt) / this.options.spacingMs);
    this.refilledAt = now;
    if (this.tokens >= this.options.burst) this.limited = false;
  }

  /** Calls `fn` now, or once later when too many came too fast (a wake-up already held back covers this one). */
  wake(): void {
    if (this.stopped || this.pending) return;
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.fn();
      return;
    }
    if (!this.limited) {
      this.limited = true;
      this.options.onLimited?.();
    }
    this.pending = this.clock.setTimer(() => {
      this.pending = undefined;
      this.wake();
    }, Math.ceil((1 - this.tokens) * this.options.spacingMs));
    this.pending.unref?.();
  }

  stop(): void {
    this.stopped = true;
    if (this.pending) this.clock.clearTimer(this.pending);
    this.pending = undefined;
  }
}

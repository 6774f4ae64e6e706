// A Clock (src/runtime/clock.ts) on virtual time: nothing happens until the test advances it.
// `advance(ms)` runs every timer due by then, in time order, letting promises settle between
// them, so a work queue's delays and a controller's backoff run in microseconds of real time.
import type { Clock, TimerHandle } from "../../../src/runtime/clock.js";

interface Timer extends TimerHandle {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** Lets pending promise callbacks (and the I/O they started) run. */
export const settle = async (rounds = 5) => {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
};

export class ManualClock implements Clock {
  private timers: Timer[] = [];
  private seq = 0;

  constructor(private time = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.time;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer: Timer = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false, unref() {} };
    this.timers.push(timer);
    return timer;
  }

  clearTimer(handle: TimerHandle): void {
    (handle as Timer).cancelled = true;
  }

  /** Timers not yet run or cancelled. */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** Moves time forward by `ms`, running each timer due on the way (and settling after each). */
  async advance(ms: number): Promise<void> {
    const until = this.time + ms;
    for (;;) {
      const next = this.timers.filter((t) => !t.cancelled && t.at <= until).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.time = Math.max(this.time, next.at);
      next.cancelled = true;
      next.fn();
      await settle();
    }
    this.time = until;
    this.timers = this.timers.filter((t) => !t.cancelled);
    await settle();
  }
}

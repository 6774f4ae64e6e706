// Time as a port: the work queue, the controller loop and the reconcilers read the time and
// set timers only through a Clock, so their tests run on virtual time (test/unit/helpers/
// manual-clock.ts) instead of sleeping. The system clock is the real one.

export interface TimerHandle {
  /** Lets the process exit while the timer is pending (Node's unref). */
  unref?(): void;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once after `ms`. */
  setTimer(fn: () => void, ms: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Calls `fn` every `ms` on `clock` until the returned function is called. `keepAlive: false`
 * lets the process exit while only this timer is pending.
 */
export function every(clock: Clock, ms: number, fn: () => void, options: { keepAlive?: boolean } = {}): () => void {
  let handle: TimerHandle | undefined;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    handle = clock.setTimer(() => {
      tick();
      fn();
    }, ms);
    if (options.keepAlive === false) handle.unref?.();
  };
  tick();
  return () => {
    stopped = true;
    if (handle) clock.clearTimer(handle);
  };
}

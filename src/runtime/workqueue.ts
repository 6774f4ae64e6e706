// A keyed work queue after client-go's: a key waiting in the queue is not queued twice
// (bursts collapse), a key being processed is never handed out again until it is done,
// and a key added while processing is marked dirty and queued again when done.
import { systemClock, type Clock, type TimerHandle } from "./clock.js";
import type { WorkQueueMetrics } from "./metrics.js";

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Map<string, number>();
  /** When each waiting key was first added: a reconcile must see the world as of then or later. */
  private readonly addedAt = new Map<string, number>();
  private readonly processingSince = new Map<string, number>();
  /** When a worker took each key being processed (work duration). */
  private readonly takenAt = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: TimerHandle }>();
  private waiters: (() => void)[] = [];
  private shuttingDown = false;

  constructor(
    private readonly clock: Clock = systemClock,
    private readonly metrics?: WorkQueueMetrics,
  ) {}

  add(key: string): void {
    if (this.shuttingDown) return;
    if (this.processing.has(key)) {
      if (!this.dirty.has(key)) this.dirty.set(key, this.clock.now());
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    if (!this.addedAt.has(key)) this.addedAt.set(key, this.clock.now());
    this.queue.push(key);
    this.metrics?.added(key);
    this.wake();
  }

  /** Adds `key` after `ms`; an earlier pending delay for the key wins. `retry`: a backoff after a failure (counted). */
  addAfter(key: string, ms: number, retry = false): void {
    if (this.shuttingDown) return;
    if (retry) this.metrics?.retried(key);
    if (ms <= 0) return this.add(key);
    const at = this.clock.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) this.clock.clearTimer(pending.timer);
    const timer = this.clock.setTimer(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref?.();
    this.timers.set(key, { at, timer });
  }

  /** Next key to work on; resolves undefined once shut down and empty. */
  async get(): Promise<string | undefined> {
    for (;;) {
      const key = this.queue.shift();
      if (key !== undefined) {
        this.queued.delete(key);
        this.processing.add(key);
        const now = this.clock.now();
        const added = this.addedAt.get(key) ?? now;
        this.processingSince.set(key, added);
        this.takenAt.set(key, now);
        this.addedAt.delete(key);
        this.metrics?.taken(key, now - added);
        return key;
      }
      if (this.shuttingDown) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  done(key: string): void {
    const taken = this.takenAt.get(key);
    if (taken !== undefined && this.processing.has(key)) this.metrics?.finished(key, this.clock.now() - taken);
    this.takenAt.delete(key);
    this.processing.delete(key);
    this.processingSince.delete(key);
    const dirtyAt = this.dirty.get(key);
    if (dirtyAt !== undefined) {
      this.dirty.delete(key);
      this.addedAt.set(key, dirtyAt);
      this.add(key);
    }
    this.wake();
  }

  /** When the key being processed was added (the earliest add it stands for). */
  queuedAt(key: string): number | undefined {
    return this.processingSince.get(key);
  }

  /** Keys waiting for a delay (addAfter) to pass. */
  get delayed(): number {
    return this.timers.size;
  }

  get length(): number {
    return this.queue.length;
  }

  get inFlight(): number {
    return this.processing.size;
  }

  isProcessing(key: string): boolean {
    return this.processing.has(key);
  }

  /** Stops handing out new keys; queued and delayed keys are dropped. */
  shutdown(): void {
    this.shuttingDown = true;
    for (const key of this.queue) this.metrics?.dropped(key);
    this.queue.length = 0;
    this.queued.clear();
    this.dirty.clear();
    this.addedAt.clear();
    for (const { timer } of this.timers.values()) this.clock.clearTimer(timer);
    this.timers.clear();
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}

// WakeLimiter (src/runtime/wake-limiter.ts) on virtual time: a burst passes at once, then one
// wake-up per spacing (those in between collapsed into it), the warning once per episode.
import assert from "node:assert/strict";
import { test } from "node:test";
import { WakeLimiter } from "../../../src/runtime/index.js";
import { ManualClock } from "../helpers/manual-clock.js";

test("a burst passes at once; beyond it one per spacing, the rest collapsed; limited once per episode", async () => {
  const clock = new ManualClock();
  let calls = 0;
  let limited = 0;
  const limiter = new WakeLimiter(clock, () => calls++, { burst: 3, spacingMs: 100, onLimited: () => limited++ });
  for (let i = 0; i < 3; i++) limiter.wake();
  assert.equal(calls, 3, "the burst, at once");
  for (let i = 0; i < 10; i++) limiter.wake();
  assert.equal(calls, 3, "held back");
  assert.equal(limited, 1);
  await clock.advance(99);
  assert.equal(calls, 3);
  await clock.advance(1);
  assert.equal(calls, 4, "ten wake-ups held back became one");
  // Still limited: a wake-up right after waits for the next token.
  limiter.wake();
  assert.equal(calls, 4);
  await clock.advance(100);
  assert.equal(calls, 5);
  assert.equal(limited, 1, "one warning for the episode");
  // Quiet until the burst has refilled: a new episode.
  await clock.advance(300);
  for (let i = 0; i < 4; i++) limiter.wake();
  assert.equal(calls, 8);
  assert.equal(limited, 2);
  limiter.stop();
  await clock.advance(1_000);
  assert.equal(calls, 8, "a stopped limiter calls nothing");
  limiter.wake();
  assert.equal(calls, 8);
});

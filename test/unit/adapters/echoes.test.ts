import assert from "node:assert/strict";
import { test } from "node:test";
import { ECHO_WINDOW_MS, OwnEchoes } from "../../../src/adapters/echoes.js";

test("an own command's event is its echo, once; another event about the domain is not", () => {
  const echoes = new OwnEchoes();
  let now = 1_000;
  const ended = echoes.expect("vm-a", "start", () => now);
  assert.equal(echoes.isEcho("vm-a", "lifecycle: Started Booted", now), true, "the echo may come before virsh exits");
  ended(true);
  assert.equal(echoes.isEcho("vm-a", "lifecycle: Started Booted", now), false, "one command, one echo");
  assert.equal(echoes.isEcho("vm-a", "lifecycle: Stopped Destroyed", now), false);
  now += 1;
  const defined = echoes.expect("vm-a", "define", () => now);
  defined(true);
  assert.equal(echoes.isEcho("vm-b", "lifecycle: Defined Added", now), false, "another domain's event");
  assert.equal(echoes.isEcho("vm-a", "lifecycle: Stopped Destroyed", now), false, "not what define brings back");
  assert.equal(echoes.isEcho("vm-a", "lifecycle: Defined Updated", now), true);
});

test("a start brings back two echoes, Resumed Unpaused and Started, each once", () => {
  const echoes = new OwnEchoes();
  const now = 1_000;
  echoes.expect("vm-a", "start", () => now)(true);
  assert.equal(echoes.isEcho("vm-a", "lifecycle: Resumed Unpaused", now), true, "QEMU is started paused, then resumed");
  assert.equal(echoes.isEcho("vm-a", "lifecycle: Resumed Unpaused", now), false, "a second resume is someone else's");
  assert.equal(echoes.isEcho("vm-a", "lifecycle: Started Booted", now), true);
  assert.equal(echoes.isEcho("vm-a", "lifecycle: Started Booted", now), false, "both seen: the expectation is gone");
  echoes.expect("vm-b", "destroy", () => now)(true);
  assert.equal(echoes.isEcho("vm-b", "lifecycle: Resumed Unpaused", now), false, "a destroy brings back no resume");
});

test("an echo is expected only a short while after its command, and never after a failed one", () => {
  const echoes = new OwnEchoes();
  let now = 0;
  echoes.expect("vm-a", "destroy", () => now)(true);
  now += ECHO_WINDOW_MS + 1;
  assert.equal(echoes.isEcho("vm-a", "lifecycle: Stopped Destroyed", now), false, "too late: someone else's destroy");
  echoes.expect("vm-a", "undefine", () => now)(false);
  assert.equal(echoes.isEcho("vm-a", "lifecycle: Undefined Removed", now), false, "the command failed: this is someone else's");
  const running = echoes.expect("vm-a", "undefine", () => now);
  now += 10 * ECHO_WINDOW_MS;
  assert.equal(echoes.isEcho("vm-a", "lifecycle: Undefined Removed", now), true, "a command still running expects its echo however long it takes");
  running(true);
});

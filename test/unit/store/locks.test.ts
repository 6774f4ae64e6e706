// The locks kvmctl's processes share (src/store/locks.ts): held by the kernel, exclusive across
// processes, gone with their holder however it dies, and keyed on a directory's real path.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { holdLock, LockHeldError, withLock } from "../../../src/store/locks.js";
import { tempDir } from "./helpers.js";

const CHILD = fileURLToPath(new URL("./lock-child.ts", import.meta.url));

test("one holder at a time; released by release()", async () => {
  const subject = `/unit/${process.pid}/a`;
  const first = await holdLock("test", subject);
  await assert.rejects(holdLock("test", subject), LockHeldError);
  const other = await holdLock("test", `${subject}-other`); // another subject is another lock
  await first.release();
  const again = await holdLock("test", subject);
  await Promise.all([again.release(), other.release()]);
});

test("withLock: critical sections never overlap, and every waiter gets its turn", async () => {
  let inside = 0;
  let most = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      withLock("test", `/unit/${process.pid}/section`, async () => {
        inside++;
        most = Math.max(most, inside);
        await new Promise((resolve) => setTimeout(resolve, 2));
        order.push(i);
        inside--;
      }),
    ),
  );
  assert.equal(most, 1);
  assert.equal(order.length, 12);
});

interface Started {
  child: ChildProcess;
  line: Promise<string>;
}

function startChild(dir: string, dataDir: string): Started {
  const child = spawn(process.execPath, ["--import", "tsx", CHILD, dir, dataDir], { stdio: ["pipe", "pipe", "inherit"] });
  const line = new Promise<string>((resolve) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("\n")) resolve(out.split("\n")[0]!);
    });
    // "close", not "exit": the last of stdout may still be on its way when the process exits.
    child.once("close", () => resolve(out.split("\n")[0] ?? ""));
  });
  return { child, line };
}

async function stop(started: Started[]): Promise<void> {
  await Promise.all(
    started.map(
      ({ child }) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once("exit", () => resolve());
          child.stdin!.end();
        }),
    ),
  );
}

// The controller's lock, from 8 processes started together, as issue 12 found it racing:
// exactly one holds it with no pid file, a stale one, an empty one, and with a status
// directory of its own per process (the lock follows the manifest directory, not --status-dir).
// 5 trials of each: 20 in all.
for (const variant of ["no pid file", "a stale pid file", "an empty pid file", "a different --status-dir each"] as const) {
  test(`8 controllers started together on one directory, ${variant}: exactly one holds the lock`, async () => {
    for (let trial = 0; trial < 5; trial++) {
      const root = await tempDir("kvmctl-lock-");
      const dir = path.join(root, "state");
      fs.mkdirSync(path.join(dir, ".kvmctl"), { recursive: true });
      if (variant === "a stale pid file") fs.writeFileSync(path.join(dir, ".kvmctl", "controller.pid"), "999999\n");
      if (variant === "an empty pid file") fs.writeFileSync(path.join(dir, ".kvmctl", "controller.pid"), "");
      const dataDirOf = (i: number) => (variant === "a different --status-dir each" ? path.join(root, `status-${i}`, ".kvmctl") : path.join(dir, ".kvmctl"));
      for (let i = 0; i < 8; i++) fs.mkdirSync(path.dirname(dataDirOf(i)), { recursive: true });
      // Through a symlink too: the lock is keyed on the real path.
      fs.symlinkSync(dir, path.join(root, "link"));
      const started = Array.from({ length: 8 }, (_, i) => startChild(i % 2 ? path.join(root, "link") : dir, dataDirOf(i)));
      const lines = await Promise.all(started.map((s) => s.line));
      await stop(started);
      assert.equal(lines.filter((l) => l === "held").length, 1, lines.join("\n"));
      assert.equal(lines.filter((l) => l.startsWith("refused: another kvmctl controller")).length, 7, lines.join("\n"));
    }
  });
}

test("the lock goes with its holder, even on SIGKILL: the next controller takes it", async () => {
  const dir = await tempDir("kvmctl-lock-kill-");
  const first = startChild(dir, path.join(dir, ".kvmctl"));
  assert.equal(await first.line, "held");
  const second = startChild(dir, path.join(dir, ".kvmctl"));
  assert.match(await second.line, new RegExp(`^refused: another kvmctl controller \\(pid ${first.child.pid}\\)`), "the refusal names the holder");
  const exited = new Promise((resolve) => first.child.once("exit", resolve));
  first.child.kill("SIGKILL");
  await exited;
  const third = startChild(dir, path.join(dir, ".kvmctl"));
  assert.equal(await third.line, "held");
  await stop([third]);
});

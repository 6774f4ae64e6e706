// Type=notify from what the host has: `systemd-notify --ready` (src/adapters/systemd.ts) sends
// READY=1 and then waits on a barrier until the receiver has read it (so the message is not
// lost when systemd-notify exits first). A stand-in for systemd's notify socket, in Python (Node
// cannot receive unix datagrams), receives both and closes the barrier's descriptor.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { notifySystemd } from "../../../src/adapters/systemd.js";

const RECEIVER = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
print("listening", flush=True)
while True:
    msg, fds, _, _ = socket.recv_fds(s, 4096, 8)
    for fd in fds: os.close(fd)
    print(repr(msg.decode()), flush=True)
    if msg == b"BARRIER=1": break
`;

const missing = ["python3", "systemd-notify"].filter((tool) => spawnSync(tool, ["--version"]).error);

test("notifySystemd: READY=1 with a status line reaches $NOTIFY_SOCKET, after which systemd-notify waits for the barrier", { skip: missing.length ? `missing ${missing.join(", ")}` : false }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-notify-"));
  const socket = path.join(dir, "notify");
  const receiver = spawn("python3", ["-c", RECEIVER, socket], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    let output = "";
    receiver.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    for (let i = 0; i < 200 && !output.includes("listening"); i++) await new Promise((r) => setTimeout(r, 10));
    assert.match(output, /listening/);
    assert.equal(await notifySystemd("ready", "first full pass done;\nreconciling", { ...process.env, NOTIFY_SOCKET: socket }), "sent");
    await new Promise((resolve) => receiver.once("exit", resolve));
    assert.deepEqual(output.trim().split("\n").slice(1), [`'READY=1\\nSTATUS=first full pass done; reconciling'`, `'BARRIER=1'`]);
  } finally {
    if (receiver.exitCode === null) receiver.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("notifySystemd outside a Type=notify service does nothing; a socket nobody listens on is an error", async () => {
  const env = { ...process.env };
  delete env.NOTIFY_SOCKET;
  assert.equal(await notifySystemd("ready", "x", env), "skipped");
  if (!missing.includes("systemd-notify")) await assert.rejects(notifySystemd("ready", "x", { ...env, NOTIFY_SOCKET: path.join(os.tmpdir(), `kvmctl-no-such-socket-${process.pid}`) }), /systemd-notify --ready/);
});

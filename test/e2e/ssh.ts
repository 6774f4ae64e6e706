// SSH to a test guest through a forwarded port on loopback inside the test namespace.
// Each caller gets its own known_hosts file (accept-new), so guests never collide.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";

export interface SshTarget {
  port: number;
  key: string;
  host?: string;
}

export function sshArgs(target: SshTarget, knownHosts: string, command: string[]): string[] {
  return [
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=accept-new",
    "-o", `UserKnownHostsFile=${knownHosts}`,
    "-o", "ConnectTimeout=3",
    "-o", "LogLevel=ERROR",
    "-i", target.key,
    "-p", String(target.port),
    `root@${target.host ?? "127.0.0.1"}`,
    "--",
    ...command,
  ];
}

/** How long one SSH attempt may take. */
const ATTEMPT_MS = 15_000;

/** Runs `command` in the guest, retrying until SSH answers or `timeoutMs` passes. */
export async function sshWhenReady(target: SshTarget, command: string[], timeoutMs = 120_000): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvt-ssh-"));
  const knownHosts = path.join(dir, "known_hosts");
  const deadline = Date.now() + timeoutMs;
  let last = "";
  try {
    while (Date.now() < deadline) {
      const result = await execa("ssh", sshArgs(target, knownHosts, command), { reject: false, timeout: ATTEMPT_MS });
      if (result.exitCode === 0) return result.stdout;
      const printed = `${String(result.stdout).trim()} ${String(result.stderr).trim()}`.trim();
      last = result.timedOut ? `ssh timed out after ${ATTEMPT_MS / 1000} s${printed ? `, having printed: ${printed}` : ", having printed nothing"}` : printed || `ssh exited ${result.exitCode}, printing nothing`;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  throw new Error(`ssh to ${target.host ?? "127.0.0.1"}:${target.port} did not succeed within ${timeoutMs} ms: ${last}`);
}

/** Runs a shell command line in the guest (as `sh -c`), retrying until SSH answers; output trimmed. */
export async function guestShell(target: SshTarget, commandLine: string, timeoutMs?: number): Promise<string> {
  return (await sshWhenReady(target, ["sh", "-c", `'${commandLine}'`], timeoutMs)).trim();
}

/** A free TCP port on loopback, for host-side forwards. */
export async function freePort(): Promise<number> {
  const net = await import("node:net");
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

// virtlogd and libvirtd, started inside the namespace with our own pid files so that
// `down` stops exactly the processes `up` started (by PID, never by name).
import fs from "node:fs";
import path from "node:path";
import { LIBVIRT_URI, NETNS, RUN_DIR } from "./config.js";
import { run, runInNetns } from "./run.js";

interface Daemon {
  name: "virtlogd" | "libvirtd";
  pidFile: string;
}

const DAEMONS: Daemon[] = [
  { name: "virtlogd", pidFile: path.join(RUN_DIR, "virtlogd.pid") },
  { name: "libvirtd", pidFile: path.join(RUN_DIR, "libvirtd.pid") },
];

function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The pid of a live daemon of ours, checked against /proc so a reused pid is not mistaken. */
export function ourDaemonPid(daemon: Daemon): number | undefined {
  const pid = readPid(daemon.pidFile);
  if (pid === undefined || !processAlive(pid)) return undefined;
  const exe = fs.readlinkSync(`/proc/${pid}/exe`, { encoding: "utf8" });
  return path.basename(exe).startsWith(daemon.name) ? pid : undefined;
}

/** Pids of running daemons with this name that we did not start (e.g. a system service). */
async function foreignPids(daemon: Daemon): Promise<number[]> {
  const ours = ourDaemonPid(daemon);
  const result = await run("pidof", [daemon.name], { quiet: true, allowFailure: true });
  return result.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((pid) => pid !== ours);
}

async function libvirtAnswers(): Promise<boolean> {
  const result = await runInNetns("virsh", ["-c", LIBVIRT_URI, "version"], { quiet: true, allowFailure: true, timeoutMs: 10_000 });
  return result.exitCode === 0;
}

export async function startDaemons(): Promise<void> {
  fs.mkdirSync(RUN_DIR, { recursive: true });
  for (const daemon of DAEMONS) {
    if (ourDaemonPid(daemon) !== undefined) continue;
    const foreign = await foreignPids(daemon);
    if (foreign.length) {
      throw new Error(
        `${daemon.name} is already running (pid ${foreign.join(", ")}) but was not started by the test environment; ` +
          `stop it first (e.g. systemctl stop ${daemon.name}) — testenv will not kill processes it did not start`,
      );
    }
    fs.rmSync(daemon.pidFile, { force: true });
    await runInNetns(daemon.name, ["--daemon", "--pid-file", daemon.pidFile]);
    await waitFor(() => ourDaemonPid(daemon) !== undefined, 10_000, `${daemon.name} to write ${daemon.pidFile}`);
  }
  await waitForAsync(libvirtAnswers, 30_000, `libvirtd in namespace ${NETNS} to answer on ${LIBVIRT_URI}`);
}

export async function stopDaemons(): Promise<void> {
  // libvirtd first: it holds virtlogd's socket for running guests.
  for (const daemon of [...DAEMONS].reverse()) {
    const pid = ourDaemonPid(daemon);
    if (pid === undefined) {
      fs.rmSync(daemon.pidFile, { force: true });
      continue;
    }
    process.kill(pid, "SIGTERM");
    await waitFor(() => !processAlive(pid), 15_000, `${daemon.name} (pid ${pid}) to exit`).catch(() => {
      process.kill(pid, "SIGKILL");
    });
    fs.rmSync(daemon.pidFile, { force: true });
  }
}

export function daemonsRunning(): boolean {
  return DAEMONS.every((d) => ourDaemonPid(d) !== undefined);
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  return waitForAsync(async () => check(), timeoutMs, what);
}

async function waitForAsync(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Restarts the libvirtd we started (guests keep running): for "libvirtd restarted" tests. */
export async function restartLibvirtd(): Promise<void> {
  const daemon = DAEMONS.find((d) => d.name === "libvirtd")!;
  const pid = ourDaemonPid(daemon);
  if (pid === undefined) throw new Error("libvirtd of the test environment is not running");
  process.kill(pid, "SIGTERM");
  const signalledAt = Date.now();
  // Why a libvirtd is slow to exit (it once took over 15 s in CI): its threads, where they wait.
  const diagnose = setTimeout(() => process.stderr.write(`libvirtd (pid ${pid}) still running 10 s after SIGTERM; its threads:\n${threadReport(pid)}\n`), 10_000);
  // libvirtd finishes the calls under way before it exits (under CI load that took over 15 s
  // once): wait, then kill it, and start it again either way — a test after this one must not
  // find no libvirtd at all.
  await waitFor(() => !processAlive(pid), 60_000, `libvirtd (pid ${pid}) to exit`).catch(async () => {
    process.stderr.write(`libvirtd (pid ${pid}) did not exit within 60 s of SIGTERM: SIGKILL\n`);
    process.kill(pid, "SIGKILL");
    await waitFor(() => !processAlive(pid), 15_000, `libvirtd (pid ${pid}) to die`);
  });
  clearTimeout(diagnose);
  const exitedMs = Date.now() - signalledAt;
  if (exitedMs > 5_000) process.stderr.write(`libvirtd (pid ${pid}) took ${exitedMs} ms to exit after SIGTERM\n`);
  fs.rmSync(daemon.pidFile, { force: true });
  await startDaemons();
}

/** One line per thread of a process: name, state, kernel wait channel (for diagnostics only). */
function threadReport(pid: number): string {
  const read = (file: string) => {
    try {
      return fs.readFileSync(file, "utf8").trim();
    } catch {
      return "?";
    }
  };
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .map((tid) => {
        const task = `/proc/${pid}/task/${tid}`;
        const state = /^State:\s+(.*)$/m.exec(read(`${task}/status`))?.[1] ?? "?";
        return `  ${tid} ${read(`${task}/comm`)} [${state}] wchan=${read(`${task}/wchan`)}`;
      })
      .join("\n");
  } catch (error) {
    return `  (unreadable: ${String(error)})`;
  }
}

// Controller benchmarks on the real stack (issues 4 and 16), run inside the test namespace:
//   npm run bench:controller [-- converge|idle|destroy|noop|firewall]   (default: all)
// Prints figures; asserts nothing. Goals: 30 VMs apply→Ready faster than a shell loop of
// `virsh define` + `virsh start` on the same XML, and at least as fast as the same 8 at a time
// (rounds of kvmctl and of that script alternate, as the machine drifts within a run, and each
// script round is compared with the kvmctl rounds either side); a no-op pass over 300 objects in a started
// controller (event streams listening) ≤ 100 ms with no virsh process; over 1000 objects the
// pass time and the controller's RSS ≤ 150 MB; `virsh destroy` → running median ≤ 1 s, of which
// the controller's own share (Stopped event received → `virsh start` issued) ≤ 20 ms; idle
// controller with 30 VMs ≤ 0.3 % of a core and ≤ 80 MB RSS; kvmctl's nftables table flushed by
// hand → its rules back (the watch) median ≤ 300 ms.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import { Session } from "node:inspector/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { parse as parseYaml } from "yaml";
import { pino } from "pino";
import { hostPorts } from "../src/adapters/host-ports.js";
import { Observer } from "../src/adapters/observer.js";
import { Virsh } from "../src/adapters/virsh.js";
import { hostPathPolicy } from "../src/controllers/host-path-policy.js";
import { Manager } from "../src/controllers/manager.js";
import { parseMonitorLine } from "../src/firewall/nft-monitor.js";
import { nftTableFor } from "../src/firewall/nftables.js";
import type { ControllerMetrics } from "../src/runtime/index.js";
import { ManifestStore } from "../src/store/index.js";
import { assertInTestEnv, LIBVIRT_URI, testGuest, testName } from "../testenv/env.js";

const MAIN = path.resolve("dist/cli/main.js");
const VMS = 30;
const NOOP_OBJECTS = process.env.BENCH_NOOP_OBJECTS ? process.env.BENCH_NOOP_OBJECTS.split(",").map(Number) : [300, 1000];
// BENCH_SCRIPTS=parallel (or "none"): which of the scripts `converge` compares with (the loop takes minutes).
const SCRIPTS = new Set((process.env.BENCH_SCRIPTS ?? "loop,parallel").split(","));
// BENCH_CONVERGE_ROUNDS=N: how many times the 8-at-a-time script and kvmctl alternate after kvmctl's first round.
const CONVERGE_ROUNDS = Number(process.env.BENCH_CONVERGE_ROUNDS ?? 2);
// BENCH_NODE_FLAGS="--max-semi-space-size=2 --lite-mode": the controller's node flags (default: the unit file's).
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? "--max-semi-space-size=2 --v8-pool-size=1").split(" ").filter(Boolean);
/** The unit file's malloc setting, unless MALLOC_ARENA_MAX is set for the bench. */
const CONTROLLER_ENV = { MALLOC_ARENA_MAX: "1", ...process.env };
/** Extra `kvmctl controller` flags for every controller the bench starts (experiments: "--rescan 1h"). */
const CONTROLLER_ARGS = (process.env.BENCH_CONTROLLER_ARGS ?? "").split(" ").filter(Boolean);
/** How long the idle window is (s): one tick of CPU is 1/IDLE_SECONDS/HZ of a core. */
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 30);
const parts = new Set(process.argv.slice(2).length ? process.argv.slice(2) : ["converge", "idle", "destroy", "noop", "firewall"]);
const virsh = (...args: string[]) => execa("virsh", ["-q", "-c", LIBVIRT_URI, ...args], { reject: false, timeout: 120_000 });
const kvmctl = (dir: string, ...args: string[]) => execFileSync(process.execPath, [MAIN, "--dir", dir, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** The middle value; of an even count, the mean of the two middle ones. */
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
};
const vmName = (prefix: string, i: number) => testName(`bench-${prefix}-${String(i).padStart(3, "0")}`);

function vmManifest(name: string, i: number, halted = false): string {
  const guest = testGuest();
  return `apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
spec:
  runStrategy: ${halted ? "Halted" : "Always"}
  cpus: 1
  memory: 128Mi
  boot: {kernel: ${guest.kernel}, initrd: ${guest.initrd}, cmdline: "console=ttyS0 quiet"}
  interfaces:
    - user:
        portForwards: [{hostPort: ${41000 + i}, guestPort: 22}]
`;
}

function writeManifests(dir: string, names: string[], halted = false): void {
  fs.mkdirSync(path.join(dir, "virtualmachines"), { recursive: true });
  names.forEach((name, i) => fs.writeFileSync(path.join(dir, "virtualmachines", `${name}.yaml`), vmManifest(name, i, halted)));
}

async function removeDomains(names: string[]): Promise<void> {
  for (const name of names) {
    await virsh("destroy", name);
    await virsh("undefine", name, "--nvram");
  }
}

/** Resolves once every port can be bound on 127.0.0.1 again (at most 30 s). */
async function portsFree(ports: number[]): Promise<void> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const server = net.createServer().once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
  const deadline = Date.now() + 30_000;
  for (const port of ports) {
    while (!(await free(port))) {
      if (Date.now() > deadline) throw new Error(`port ${port} is still in use`);
      await sleep(100);
    }
  }
}

async function runningCount(names: string[]): Promise<number> {
  const out = String((await virsh("list", "--state-running", "--name")).stdout).split("\n").map((s) => s.trim());
  return names.filter((n) => out.includes(n)).length;
}

/**
 * libvirt's lifecycle events as they come, from one `virsh event --loop` process (no polling
 * on the CPUs being measured): `onEvent(domain, "Started" | "Stopped" | ..., when it was read)`.
 * Give it half a second to register before what it should see.
 */
function lifecycleEvents(onEvent: (name: string, what: string, at: number) => void): ChildProcess {
  const events = spawn("virsh", ["-c", LIBVIRT_URI, "event", "--loop", "--event", "lifecycle"], { stdio: ["ignore", "pipe", "ignore"] });
  let buffered = "";
  events.stdout!.on("data", (chunk: Buffer) => {
    const now = Date.now();
    buffered += chunk.toString();
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) {
      const match = /for domain '([^']+)': (\w+)/.exec(line);
      if (match) onEvent(match[1]!, match[2]!, now);
    }
  });
  return events;
}

/** When each of `names` was first reported Started by libvirt, from now until `stop()`. */
async function startedTimes(names: string[]): Promise<{ times: Map<string, number>; stop: () => void }> {
  const wanted = new Set(names);
  const times = new Map<string, number>();
  const events = lifecycleEvents((name, what, at) => {
    if (what === "Started" && wanted.has(name) && !times.has(name)) times.set(name, at);
  });
  await sleep(500);
  return { times, stop: () => events.kill() };
}

/** The last of `times`, ms after `from` (NaN when fewer than `count` came). */
const lastAfter = (times: Map<string, number>, count: number, from: number) => (times.size < count ? NaN : Math.max(...times.values()) - from);

/**
 * VMs whose status says Ready, read in this process: a `kvmctl get` every 200 ms would itself
 * start a Node process five times a second on the two CPUs being measured. Only manifests whose
 * file changed since the last look are parsed again: on cores the guests keep busy, parsing all
 * 30 five times a second cost the benchmark ~1 s of CPU, taken from the controller's share.
 */
function readyCounter(dir: string): () => number {
  const seen = new Map<string, { mtimeMs: number; size: number; ready: boolean }>();
  const vmDir = path.join(dir, "virtualmachines");
  return () => {
    let ready = 0;
    for (const name of fs.existsSync(vmDir) ? fs.readdirSync(vmDir) : []) {
      if (!name.endsWith(".yaml")) continue;
      const file = path.join(vmDir, name);
      const stat = fs.statSync(file, { throwIfNoEntry: false });
      if (!stat) continue;
      let known = seen.get(file);
      if (!known || known.mtimeMs !== stat.mtimeMs || known.size !== stat.size) {
        const doc = parseYaml(fs.readFileSync(file, "utf8")) as { status?: { conditions?: { type: string; status: string }[] } } | null;
        known = { mtimeMs: stat.mtimeMs, size: stat.size, ready: (doc?.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True") };
        seen.set(file, known);
      }
      if (known.ready) ready++;
    }
    return ready;
  };
}

function startController(dir: string, root: string, logLevel = process.env.BENCH_LOG_LEVEL ?? "info", extra: string[] = []): ChildProcess {
  const log = fs.openSync(path.join(root, "controller.log"), "a");
  // Run as examples/systemd/kvmctl.service runs it (NODE_OPTIONS=--max-semi-space-size=2).
  // BENCH_CONTROLLER_NICE=-5: the controller (and its virsh processes) at that priority, as a unit's Nice= would run it.
  const nice = process.env.BENCH_CONTROLLER_NICE;
  const [command, ...prefix] = nice ? ["nice", "-n", nice, process.execPath] : [process.execPath];
  return spawn(command!, [...prefix, ...NODE_FLAGS, MAIN, "--dir", dir, "controller", "--default-domain-type", "qemu", "--concurrency", "8", "--console-log-dir", path.join(root, "console"), "--allow-host-path", `kernel=${path.dirname(testGuest().kernel)}`, "--log-level", logLevel, ...CONTROLLER_ARGS, ...extra], { stdio: ["ignore", log, log], env: CONTROLLER_ENV });
}

interface LogLine {
  time: number;
  msg?: string;
  object?: string;
  step?: string;
  event?: { name: string; detail: string; at: number };
}

/** The controller's JSON log lines (pino) in `root`, oldest first. */
function logLines(root: string): LogLine[] {
  return fs.readFileSync(path.join(root, "controller.log"), "utf8").split("\n").flatMap((text) => {
    try {
      return text.startsWith("{") ? [JSON.parse(text) as LogLine] : [];
    } catch {
      return [];
    }
  });
}

/** When the k-th of `times` came, for a few k, in seconds after `from`: "1st 0.9, 8th 2.1, ...". */
function timeline(times: number[], from: number): string {
  const sorted = [...times].sort((a, b) => a - b);
  const picks = [1, 8, 16, 24, sorted.length].filter((k, i, all) => k <= sorted.length && all.indexOf(k) === i);
  return picks.map((k) => `#${k} ${((sorted[k - 1]! - from) / 1000).toFixed(1)} s`).join(", ");
}

/** The controller's define and start steps (their info lines) since `since`: when each was issued. */
function stepTimeline(root: string, since: number): string {
  const lines = logLines(root).filter((l) => l.time >= since && l.object?.startsWith("VirtualMachine/"));
  const at = (step: string) => lines.filter((l) => l.step === step).map((l) => l.time);
  return `defines issued ${timeline(at("define"), since)}; starts issued ${timeline(at("start"), since)}`;
}

async function waitForLogLine(root: string, match: (line: LogLine) => boolean, timeoutMs = 600_000): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = logLines(root).find(match);
    if (line) return line;
    if (Date.now() > deadline) throw new Error("timed out waiting for the controller's log line");
    await sleep(200);
  }
}

async function stopController(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

function cpuTicks(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

/** Busy CPU seconds so far: the machine's (all cores), a process's own and its waited-for children's. */
const hz = () => Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
function cpuSample(pids: Record<string, number | undefined>): Record<string, number> {
  const ticks = hz();
  const cpu = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const sample: Record<string, number> = { machine: (cpu.reduce((a, b) => a + b, 0) - cpu[3]! - cpu[4]!) / ticks};
  // Every QEMU (the guests) and passt (their user networking) alive now: their CPU so far.
  for (const [name, comm] of [["guests (qemu)", /^qemu-system/], ["passt", /^passt/]] as const) {
    sample[name] = 0;
    for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
      try {
        if (comm.test(fs.readFileSync(`/proc/${pid}/comm`, "utf8"))) sample[name] += cpuTicks(Number(pid)) / ticks;
      } catch {
        // gone meanwhile
      }
    }
  }
  for (const [name, pid] of Object.entries(pids)) {
    if (pid === undefined) continue;
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    sample[name] = (Number(fields[11]) + Number(fields[12])) / ticks;
    sample[`${name} children`] = (Number(fields[13]) + Number(fields[14])) / ticks;
    sample[`${name} live children`] = liveChildrenTicks(pid) / ticks;
  }
  return sample;
}

/**
 * CPU ticks so far of a process's children still alive (the controller's virsh shells and
 * event streams): not in its stat's children fields until they end and are waited for.
 */
function liveChildrenTicks(parent: number): number {
  let sum = 0;
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      if (Number(fields[1]) === parent) sum += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone meanwhile
    }
  }
  return sum;
}

/** A process's CPU ticks so far with all its children's, alive or ended. */
function treeTicks(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]) + liveChildrenTicks(pid);
}
const libvirtdPid = () => Number(fs.readFileSync("/run/kvmctl-testenv/libvirtd.pid", "utf8").trim()) || undefined;
const cpuSpent = (before: Record<string, number>, after: Record<string, number>) =>
  Object.keys(after).map((k) => `${k} ${(after[k]! - (before[k] ?? 0)).toFixed(1)} s`).join(", ");

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
/** RSS split as the kernel counts it: anonymous (heaps, JIT code), file-backed (node's binary, libraries). */
const rssParts = (pid: number) => {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const mb = (field: string) => (Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024).toFixed(1);
  return `anonymous ${mb("RssAnon")} MB, file-backed ${mb("RssFile")} MB`;
};

/** Runs `task` over `items`, at most 8 at once. */
async function eightAtATime<T>(items: T[], task: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: 8 }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await task(item);
  }));
}

/** Sums and counts of the controller's histograms and counters, by series (from /metrics). */
async function metricSums(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sums = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^((?:kvmctl_virsh_command_duration_seconds|controller_runtime_reconcile_time_seconds|workqueue_queue_duration_seconds)_(?:sum|count))\{([^}]*)\} (\S+)$/.exec(line);
    if (match) sums.set(`${match[1]}{${match[2]}}`, Number(match[3]));
    const readings = /^kvmctl_libvirt_readings_total\{([^}]*)\} (\S+)$/.exec(line);
    if (readings) sums.set(`readings{${readings[1]}}`, Number(readings[2]));
  }
  return sums;
}

/** Where the controller's time went while converging: virsh processes by command, reconciles, queue waits (from its metrics). */
function printTimeBreakdown(before: Map<string, number>, after: Map<string, number>, wallMs: number): void {
  const delta = (series: string) => (after.get(series) ?? 0) - (before.get(series) ?? 0);
  const rows = [...after.keys()].filter((k) => k.includes("_sum{")).map((k) => ({ series: k.replace("_sum{", "{"), seconds: delta(k), count: delta(k.replace("_sum{", "_count{")) })).filter((r) => r.count > 0).sort((a, b) => b.seconds - a.seconds);
  console.log(`converge: where the controller's time went over those ${(wallMs / 1000).toFixed(1)} s (summed over its 8 workers; a process's time includes waiting for the CPUs):`);
  for (const r of rows) console.log(`converge:   ${r.series}: ${r.count} × = ${r.seconds.toFixed(1)} s (mean ${((r.seconds / r.count) * 1000).toFixed(0)} ms)`);
  const readings = [...after.keys()].filter((k) => k.startsWith("readings{")).map((k) => `${k.slice(9, -1)} ${delta(k)}`);
  console.log(`converge:   pictures of libvirt read (kvmctl_libvirt_readings_total): ${readings.join(", ") || "none"}`);
}

/** One kvmctl round: apply → all Ready (the conservative figure), and manifests appearing → the last guest Started (the issue's). */
interface KvmctlRound { fromApplyMs: number; toStartedMs: number }

/**
 * `kvmctl apply` of the input manifests into `dir`, served by the controller `pid`, then waits
 * until every VM is Ready; prints how long, when the steps were issued and the CPU spent. Also
 * times the round as the issue defines it, from the manifests appearing in the directory (when
 * the apply made the first kind directory, just before its first file, seen by inotify) to libvirt's
 * Started event of the last guest: the apply CLI's own start-up is then not counted, and the end
 * is the signal the script's figure uses too. The apply runs asynchronously, so the watch and the
 * event stream are timestamped as they come.
 */
async function applyUntilReady(dir: string, root: string, pid: number | undefined, label: string, names: string[]): Promise<KvmctlRound> {
  const started = await startedTimes(names);
  let appearedAt = NaN;
  const watch = fs.watch(dir, (_event, file) => {
    // The first kind directory made (not kvmctl's own `.kvmctl/`): just before the first manifest.
    if (file && !file.startsWith(".") && Number.isNaN(appearedAt)) appearedAt = Date.now();
  });
  try {
    const cpuBefore = cpuSample({ controller: pid, libvirtd: libvirtdPid(), bench: process.pid });
    const applyAt = Date.now();
    await execa(process.execPath, [MAIN, "--dir", dir, "apply", "-f", path.join(root, "input")]);
    const appliedAt = Date.now();
    const readyCount = readyCounter(dir);
    while (readyCount() < VMS) await sleep(200);
    const fromApplyMs = Date.now() - applyAt;
    const toStartedMs = lastAfter(started.times, VMS, appearedAt);
    console.log(`converge: ${label}${VMS} VMs from apply to all Ready: ${fromApplyMs} ms (controller, --concurrency 8)`);
    console.log(`converge: ${label}from the manifests appearing (${appearedAt - applyAt} ms into the apply, which took ${appliedAt - applyAt} ms) to the last guest's Started event: ${toStartedMs} ms`);
    console.log(`converge: after apply, ${stepTimeline(root, applyAt)}`);
    console.log(`converge: CPU time over it: ${cpuSpent(cpuBefore, cpuSample({ controller: pid, libvirtd: libvirtdPid(), bench: process.pid }))} (controller children: its virsh processes that ended; live children: its virsh shells and event streams; bench live children: the controller)`);
    return { fromApplyMs, toStartedMs };
  } finally {
    watch.close();
    started.stop();
  }
}

/** A controller serving metrics on `dir`, its first pass done and idle before a clock starts. */
async function startIdleController(dir: string, root: string): Promise<{ controller: ChildProcess; metricsUrl: string }> {
  const startedAt = Date.now();
  const controller = startController(dir, root, undefined, ["--metrics-address", "127.0.0.1:0"]);
  const serving = await waitForLogLine(root, (l) => typeof l.msg === "string" && l.msg.startsWith("serving ") && l.time >= startedAt);
  await waitForLogLine(root, (l) => l.msg === "first full pass done: ready" && l.time >= startedAt);
  await sleep(1500);
  return { controller, metricsUrl: String((serving as { url?: unknown }).url) };
}

/** The converge's domains gone, and the ports their passt held free again (the next round reuses them). */
async function removeDomainsAndPorts(names: string[]): Promise<void> {
  await removeDomains(names);
  await portsFree(names.map((_, i) => 41000 + i));
}

async function convergeIdleDestroy(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-bench-"));
  fs.chmodSync(root, 0o755);
  const dir = path.join(root, "state");
  const names = Array.from({ length: VMS }, (_, i) => vmName("vm", i));
  let controller: ChildProcess | undefined;
  try {
    writeManifests(path.join(root, "input"), names);
    fs.mkdirSync(dir);
    let metricsUrl: string;
    ({ controller, metricsUrl } = await startIdleController(dir, root));
    const metricsBefore = await metricSums(metricsUrl);
    const first = await applyUntilReady(dir, root, controller.pid, "", names);
    const kvmctlMs = first.fromApplyMs;
    printTimeBreakdown(metricsBefore, await metricSums(metricsUrl), kvmctlMs);

    if (parts.has("idle")) {
      // Steady idle: the virsh shells the converge used end 30 s after their last command
      // (checked every 10 s), so the window starts after that.
      await sleep(45_000);
      const window = IDLE_SECONDS * 1000;
      const before = cpuTicks(controller.pid!);
      const treeBefore = treeTicks(controller.pid!);
      await sleep(window);
      const cpuPercent = ((cpuTicks(controller.pid!) - before) / hz() / (window / 1000)) * 100;
      const treePercent = ((treeTicks(controller.pid!) - treeBefore) / hz() / (window / 1000)) * 100;
      console.log(`idle: controller with ${VMS} VMs Ready, over ${window / 1000} s: CPU ${cpuPercent.toFixed(2)} % of a core (${treePercent.toFixed(2)} % with its virsh shells, event streams and other children), RSS ${rssMb(controller.pid!).toFixed(1)} MB (${rssParts(controller.pid!)}) (${CONTROLLER_ARGS.length ? CONTROLLER_ARGS.join(" ") : "default --firewall-check 5s, --resync 5m"}; node ${NODE_FLAGS.join(" ")})`);
    }

    if (parts.has("destroy")) {
      // The controller again at debug level: its log says when it received each libvirt event
      // ("libvirt event", debug) and when it issued the start (the step's line, logged just
      // before the virsh process is spawned), so its own share is told apart from QEMU's.
      await stopController(controller);
      const restartedAt = Date.now();
      controller = startController(dir, root, "debug");
      await waitForLogLine(root, (l) => l.msg === "first full pass done: ready" && l.time >= restartedAt);
      await sleep(3000); // its first pass's readings and status writes are over
      // From libvirt's own event stream: the time between the domain's Stopped event and its
      // Started event. Polling `virsh list` would itself load the two CPUs this runs on.
      const waiting = new Map<string, { stoppedAt?: number; done: (at: { stoppedAt: number; startedAt: number }) => void }>();
      const events = lifecycleEvents((name, what, now) => {
        const entry = waiting.get(name);
        if (!entry) return;
        if (what === "Stopped") entry.stoppedAt = now;
        else if (what === "Started" && entry.stoppedAt !== undefined) entry.done({ stoppedAt: entry.stoppedAt, startedAt: now });
      });
      await sleep(500);
      const samples: number[] = [];
      const controllerShare: number[] = [];
      const startShare: number[] = [];
      try {
        for (let i = 0; i < 10; i++) {
          const name = names[i]!;
          const seen = new Promise<{ stoppedAt: number; startedAt: number }>((resolve) => waiting.set(name, { done: resolve }));
          const destroyedAt = Date.now();
          await virsh("destroy", name);
          const { stoppedAt, startedAt } = await seen;
          samples.push(startedAt - stoppedAt);
          const lines = logLines(root);
          const heard = lines.find((l) => l.msg === "libvirt event" && l.event?.name === name && /^lifecycle: Stopped/.test(l.event.detail) && l.time >= destroyedAt);
          const issued = heard && lines.find((l) => l.object === `VirtualMachine/${name}` && l.step === "start" && l.time >= heard.event!.at);
          if (heard && issued) {
            controllerShare.push(issued.time - heard.event!.at);
            startShare.push(startedAt - issued.time);
          }
          await sleep(2000); // let the controller finish this one before the next
        }
      } finally {
        events.kill();
      }
      const figures = (xs: number[]) => (xs.length ? `median ${median(xs)} ms, min ${Math.min(...xs)} ms, max ${Math.max(...xs)} ms` : "no samples");
      console.log(`destroy: virsh destroy → running again (Stopped → Started event), ${samples.length} samples: ${figures(samples)}`);
      console.log(`destroy: the controller's own share, Stopped event received → virsh start issued (its debug log), ${controllerShare.length} samples: ${figures(controllerShare)}`);
      console.log(`destroy: virsh start issued → Started event (libvirt, QEMU and passt starting), ${startShare.length} samples: ${figures(startShare)}`);
    }

    // The same XML through a plain shell loop, after the controller is gone.
    await stopController(controller);
    const xmlDir = path.join(root, "xml");
    fs.mkdirSync(xmlDir);
    for (const name of names) fs.writeFileSync(path.join(xmlDir, `${name}.xml`), String((await virsh("dumpxml", "--inactive", name)).stdout));
    await removeDomainsAndPorts(names);
    const script = `for f in "$1"/*.xml; do virsh -q -c ${LIBVIRT_URI} define "$f" >/dev/null && virsh -q -c ${LIBVIRT_URI} start "$(basename "$f" .xml)" >/dev/null; done`;
    if (SCRIPTS.has("loop")) {
      const loopStart = Date.now();
      await execa("bash", ["-c", script, "loop", xmlDir], { timeout: 600_000 });
      while ((await runningCount(names)) < VMS) await sleep(100);
      const loopMs = Date.now() - loopStart;
      console.log(`converge: the same ${VMS} domain XMLs by a shell loop of virsh define + start: ${loopMs} ms`);
      console.log(`converge: ratio shell loop / kvmctl = ${(loopMs / kvmctlMs).toFixed(2)} (above 1: kvmctl is faster)`);
    }

    // The same XML 8 at a time, standing for `xargs -P 8` over a define-then-start script,
    // then kvmctl again (a fresh controller on a fresh directory), ROUNDS times: the machine
    // drifts by tens of percent within a run, so the two alternate and are compared by median.
    if (!SCRIPTS.has("parallel")) return;
    const scriptRounds: ScriptRound[] = [];
    const kvmctlRounds = [first];
    for (let round = 1; round <= CONVERGE_ROUNDS; round++) {
      await removeDomainsAndPorts(names);
      scriptRounds.push(await parallelScript(names, xmlDir));
      await removeDomainsAndPorts(names);
      const again = path.join(root, `state-${round + 1}`);
      fs.mkdirSync(again);
      let url: string;
      ({ controller, metricsUrl: url } = await startIdleController(again, root));
      const before = await metricSums(url);
      const kvmctlRound = await applyUntilReady(again, root, controller.pid, `kvmctl again (round ${round + 1}), after the script: `, names);
      printTimeBreakdown(before, await metricSums(url), kvmctlRound.fromApplyMs);
      kvmctlRounds.push(kvmctlRound);
      await stopController(controller);
      controller = undefined;
    }
    // Two comparisons: the conservative one (kvmctl from `kvmctl apply` to every status Ready,
    // the script to `virsh list` showing every guest running) and the (both to libvirt's
    // Started event of the last guest, kvmctl from its manifests appearing).
    const compare = (what: string, kvmctlMs: number[], scriptMs: number[]) => {
      const seconds = (xs: number[]) => xs.map((ms) => (ms / 1000).toFixed(1)).join(", ");
      const pairs = scriptMs.map((ms, i) => (ms / ((kvmctlMs[i]! + kvmctlMs[i + 1]!) / 2)).toFixed(2));
      console.log(`converge: ${what}: kvmctl rounds ${seconds(kvmctlMs)} s; 8-at-a-time script rounds ${seconds(scriptMs)} s (in run order, alternating, kvmctl first)`);
      console.log(`converge: ${what}: ratio 8-at-a-time / kvmctl, medians = ${(median(scriptMs) / median(kvmctlMs)).toFixed(2)}; each script round against the mean of the kvmctl rounds around it: ${pairs.join(", ")} (above 1: kvmctl is faster)`);
    };
    compare("apply → all Ready against the script → all running", kvmctlRounds.map((r) => r.fromApplyMs), scriptRounds.map((r) => r.toRunningMs));
    compare("manifests appearing / the script's start → the last Started event", kvmctlRounds.map((r) => r.toStartedMs), scriptRounds.map((r) => r.toStartedMs));
  } finally {
    if (controller) await stopController(controller);
    await removeDomains(names);
    if (process.env.BENCH_KEEP_LOG) fs.copyFileSync(path.join(root, "controller.log"), process.env.BENCH_KEEP_LOG);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** One round of the script: to `virsh list` showing every guest running, and to the last guest's Started event. */
interface ScriptRound { toRunningMs: number; toStartedMs: number }

/** The same domain XML by `virsh define` + `virsh start`, 8 VMs at a time (as `xargs -P 8` would run them): prints its figures. */
async function parallelScript(names: string[], xmlDir: string): Promise<ScriptRound> {
  const started = await startedTimes(names);
  const parallelCpu = cpuSample({ bench: process.pid, libvirtd: libvirtdPid() });
  const parallelStart = Date.now();
  const took = { define: [] as number[], start: [] as number[] };
  const issued = { define: [] as number[], start: [] as number[] };
  const timed = async (what: "define" | "start", ...args: string[]) => {
    const at = Date.now();
    issued[what].push(at);
    const result = await virsh(...args);
    took[what].push(Date.now() - at);
    return result;
  };
  // virsh processes spawned from here (no shell), at most 8 VMs in progress at once.
  await eightAtATime(names, async (name) => {
    if ((await timed("define", "define", path.join(xmlDir, `${name}.xml`))).exitCode === 0) await timed("start", "start", name);
  });
  while ((await runningCount(names)) < VMS) await sleep(100);
  const parallelMs = Date.now() - parallelStart;
  const toStartedMs = lastAfter(started.times, VMS, parallelStart);
  started.stop();
  const mean = (xs: number[]) => Math.round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length));
  console.log(`converge: the same ${VMS} domain XMLs by virsh define + start, 8 VMs at a time (as xargs -P 8 would run them): ${parallelMs} ms; to the last guest's Started event ${toStartedMs} ms`);
  console.log(`converge: the script's virsh define ${mean(took.define)} ms mean (max ${Math.max(...took.define)}), virsh start ${mean(took.start)} ms mean (max ${Math.max(...took.start)})`);
  console.log(`converge: the script's defines issued ${timeline(issued.define, parallelStart)}; starts issued ${timeline(issued.start, parallelStart)}`);
  console.log(`converge: CPU time over it: ${cpuSpent(parallelCpu, cpuSample({ bench: process.pid, libvirtd: libvirtdPid() }))} (bench children: its virsh processes)`);
  return { toRunningMs: parallelMs, toStartedMs };
}

/** Halted domains (and their NVRAM) removed a few batches at a time: 1000 one by one take minutes. */
async function removeDomainsBatched(names: string[]): Promise<void> {
  const client = new Virsh({ uri: LIBVIRT_URI });
  await client.batch(names.map((name) => ["destroy", name]), { lanes: 3 }).catch(() => undefined);
  await client.batch(names.map((name) => ["undefine", name, "--nvram"]), { lanes: 3 }).catch(() => undefined);
  await client.close();
  await removeDomains(String((await virsh("list", "--all", "--name")).stdout).split("\n").map((n) => n.trim()).filter((n) => names.includes(n)));
}

/**
 * A no-op pass in a started controller (event streams listening), as a new git revision or
 * an edit of every manifest makes one: every key queued at once and each reconciled once.
 * The manager runs in this process (its Virsh client counts virsh processes); the controller's
 * RSS is then measured on the real `kvmctl controller` over the same objects.
 */
async function noopPass(count: number): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-bench-noop-"));
  fs.chmodSync(root, 0o755);
  const dir = path.join(root, "state");
  const names = Array.from({ length: count }, (_, i) => vmName("noop", i));
  const pending = new Set<string>();
  let passDone = () => undefined as void;
  let lastFinishedAt = Date.now();
  let lastObjectAt = 0n;
  const metrics: ControllerMetrics = {
    concurrency: () => undefined,
    reconcileStarted: () => undefined,
    reconcileFinished: (key) => {
      lastFinishedAt = Date.now();
      if (!pending.delete(key)) return;
      if (key.startsWith("VirtualMachine/")) lastObjectAt = process.hrtime.bigint();
      if (pending.size === 0) passDone();
    },
  };
  let controller: ChildProcess | undefined;
  try {
    writeManifests(dir, names, true);
    const ports = hostPorts({ uri: LIBVIRT_URI });
    const manager = new Manager({
      store: new ManifestStore({ dir }),
      ports,
      logger: pino({ level: "silent" }),
      settings: { instance: "bench", defaultDomainType: "qemu", consoleLogDir: path.join(root, "console") },
      concurrency: 8,
      resyncMs: 300_000,
      firewallBackend: "auto",
      firewallCheckMs: 5_000,
      hostPaths: hostPathPolicy([`kernel=${path.dirname(testGuest().kernel)}`]),
      metrics: { controller: metrics },
    });
    const pass = async () => {
      const keys = await manager.listKeys();
      for (const key of keys) pending.add(key);
      const done = new Promise<void>((resolve) => (passDone = resolve));
      const spawned = ports.hypervisor.virsh.spawned;
      const commands = ports.hypervisor.virsh.commands;
      const t0 = process.hrtime.bigint();
      for (const key of keys) manager.controller.enqueue(key);
      await done;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      // The VMs alone: the pass also holds the firewall's look at its table (an nft process).
      const vmsMs = Number(lastObjectAt - t0) / 1e6;
      return { ms, vmsMs, virsh: ports.hypervisor.virsh.spawned - spawned, commands: ports.hypervisor.virsh.commands - commands, notReady: keys.filter((k) => manager.controller.outcomeOf(k)?.ready !== true).length };
    };
    const started = Date.now();
    await manager.start();
    await manager.controller.firstPass;
    // The domains' Defined events wake them again: wait until nothing has run for 2 s.
    while (manager.controller.queue.length + manager.controller.queue.inFlight > 0 || Date.now() - lastFinishedAt < 2_000) await sleep(100);
    console.log(`noop: ${count} Halted VMs defined by a started controller in ${((Date.now() - started) / 1000).toFixed(1)} s (events handled)`);
    const afterChanges = await pass();
    const informed = ports.hypervisor.informedSince(300_000) !== undefined;
    // BENCH_CPU_PROFILE=DIR: a CPU profile of the no-op pass (open it in Chrome's DevTools).
    const profile = process.env.BENCH_CPU_PROFILE ? new Session() : undefined;
    if (profile) {
      profile.connect();
      await profile.post("Profiler.enable");
      await profile.post("Profiler.start");
    }
    const noops = [await pass()];
    if (profile) {
      const file = path.join(process.env.BENCH_CPU_PROFILE!, `noop-${count}.cpuprofile`);
      fs.writeFileSync(file, JSON.stringify((await profile.post("Profiler.stop")).profile));
      profile.disconnect();
      console.log(`noop: CPU profile of the first no-op pass in ${file}`);
    }
    for (let i = 0; i < 4; i++) noops.push(await pass());
    const rss = process.memoryUsage().rss / 1024 / 1024;
    await manager.stop();
    await ports.hypervisor.close();
    const spread = (xs: number[]) => `median ${median(xs).toFixed(0)} ms (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;
    console.log(`noop: pass over ${count} objects right after those changes: ${afterChanges.ms.toFixed(0)} ms, ${afterChanges.virsh} virsh processes started, ${afterChanges.commands} virsh commands`);
    console.log(`noop: pass over ${count} objects with nothing changed (informer ${informed ? "vouching for the picture" : "NOT vouching: streams not listening?"}), ${noops.length} passes: ${spread(noops.map((p) => p.ms))}, the VMs alone ${spread(noops.map((p) => p.vmsMs))}; virsh processes started ${noops.map((p) => p.virsh).join(", ")}, virsh commands ${noops.map((p) => p.commands).join(", ")}; not Ready ${Math.max(...noops.map((p) => p.notReady))}; this bench process's RSS ${rss.toFixed(1)} MB (tsx loaded)`);
    const virshAlone = new Virsh({ uri: LIBVIRT_URI });
    const t1 = process.hrtime.bigint();
    await new Observer(virshAlone).get(Date.now());
    console.log(`noop: one reading of libvirt (${count} domains) alone: ${(Number(process.hrtime.bigint() - t1) / 1e6).toFixed(0)} ms, ${virshAlone.spawned} processes, ${virshAlone.commands} commands`);
    await virshAlone.close();

    // The controller's RSS over the same objects: the real process, as the unit file runs it.
    const startedAt = Date.now();
    controller = startController(dir, root, "info", ["--instance", "bench"]); // the instance that made the domains above
    const firstPass = await waitForLogLine(root, (l) => l.msg === "first full pass done: ready" && l.time >= startedAt);
    const afterPass = rssMb(controller.pid!);
    const cpuToFirstPass = cpuTicks(controller.pid!) / hz();
    await sleep(10_000);
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${controller.pid!}/status`, "utf8"))?.[1] ?? 0) / 1024;
    console.log(`noop: kvmctl controller over ${count} objects: RSS ${afterPass.toFixed(1)} MB after its first pass, ${rssMb(controller.pid!).toFixed(1)} MB 10 s later, peak ${hwm.toFixed(1)} MB (node ${NODE_FLAGS.join(" ")}); from its start to its first pass done ${firstPass.time - startedAt} ms, ${cpuToFirstPass.toFixed(2)} s of CPU`);
  } finally {
    if (controller) await stopController(controller);
    await removeDomainsBatched(names);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/**
 * kvmctl's table flushed by hand, 10 times, with a controller running a NAT network with port
 * forwards: the time from the flush to the repair, both as this benchmark's own `nft -j
 * monitor` sees them committed (no polling of the ruleset from here). `--firewall-check 10m`:
 * only the controller's watch can be what repairs it.
 */
async function firewallRepair(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-bench-fw-"));
  fs.chmodSync(root, 0o755);
  const dir = path.join(root, "state");
  fs.mkdirSync(path.join(dir, "networks"), { recursive: true });
  const instance = `kb${process.pid.toString(36)}`;
  const table = nftTableFor(instance);
  const network = testName("bench-fw");
  const forwards = Array.from({ length: 8 }, (_, i) => `    - {hostPort: ${42000 + i}, guestAddress: 198.19.43.${10 + i}, guestPort: 22}`).join("\n");
  fs.writeFileSync(path.join(dir, "networks", `${network}.yaml`), `apiVersion: kvmctl.dev/v1alpha1\nkind: Network\nmetadata:\n  name: ${network}\nspec:\n  mode: nat\n  ipv4: {address: 198.19.43.1, prefix: 24}\n  portForwards:\n${forwards}\n`);
  const nft = (...args: string[]) => execa("nft", args, { reject: false, timeout: 30_000 });
  const ruleCount = async () => {
    const listed = await nft("-j", "list", "table", "inet", table);
    return listed.exitCode === 0 ? (JSON.parse(String(listed.stdout)).nftables as { rule?: unknown }[]).filter((i) => i.rule).length : 0;
  };
  // This benchmark's own monitor: when each change to the table was committed.
  const monitor = execa("nft", ["-j", "monitor"], { reject: false, buffer: false, stdin: "ignore" });
  const seen: { at: number; verb: string; object: string; table: string }[] = [];
  let partial = "";
  monitor.stdout?.setEncoding("utf8");
  monitor.stdout?.on("data", (chunk: string) => {
    const at = performance.now();
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      const parsed = parseMonitorLine(line);
      if (parsed?.kind === "change") seen.push({ at, verb: parsed.verb, object: parsed.object, table: parsed.table.name });
    }
  });
  const waitFor = async (what: string, match: (e: (typeof seen)[number]) => boolean, from: number) => {
    for (let i = 0; i < 600; i++) {
      const hit = seen.slice(from).find(match);
      if (hit) return hit;
      await sleep(50);
    }
    throw new Error(`nft monitor never showed ${what}`);
  };
  let controller: ChildProcess | undefined;
  try {
    // nft monitor listens only after reading the ruleset: a marker table, until it shows.
    const mark = testName("bench-mark");
    for (let i = 0; !seen.some((e) => e.table === mark); i++) {
      if (i === 100) throw new Error("nft monitor never showed the marker table");
      await nft("add", "table", "inet", mark);
      await nft("delete", "table", "inet", mark);
      await sleep(100);
    }
    controller = startController(dir, root, undefined, ["--instance", instance, "--firewall-check", "10m"]);
    const deadline = Date.now() + 120_000;
    while ((await ruleCount()) === 0 && Date.now() < deadline) await sleep(200);
    const rules = await ruleCount();
    if (rules === 0) throw new Error(`the controller never filled ${table}; see ${root}/controller.log`);
    await sleep(1500); // the controller is idle before the first flush
    const samples: number[] = [];
    for (let i = 0; i < 10; i++) {
      const from = seen.length;
      if ((await nft("flush", "table", "inet", table)).exitCode !== 0) throw new Error(`nft flush table inet ${table} failed`);
      const flushed = await waitFor("the flush", (e) => e.table === table && e.verb === "delete" && e.object === "rule", from);
      const back = await waitFor("the rules back", (e) => e.table === table && e.verb === "add" && e.object === "rule" && e.at >= flushed.at, from);
      samples.push(back.at - flushed.at);
      await sleep(1000); // the comparison after kvmctl's own write is done before the next flush
    }
    console.log(`firewall: nft flush table inet ${table} (${rules} rules) → rules back (the watch; --firewall-check 10m), ${samples.length} samples: median ${median(samples).toFixed(0)} ms, min ${Math.min(...samples).toFixed(0)} ms, max ${Math.max(...samples).toFixed(0)} ms`);
  } finally {
    if (controller) await stopController(controller);
    monitor.kill("SIGTERM");
    await monitor;
    await virsh("net-destroy", network);
    await virsh("net-undefine", network);
    await nft("delete", "table", "inet", table);
    if (process.env.BENCH_KEEP_LOG) fs.copyFileSync(path.join(root, "controller.log"), process.env.BENCH_KEEP_LOG);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

await assertInTestEnv();
if (!fs.existsSync(MAIN)) throw new Error("dist/cli/main.js is missing: run `npm run build` first");
if (parts.has("converge") || parts.has("idle") || parts.has("destroy")) await convergeIdleDestroy();
if (parts.has("noop")) for (const count of NOOP_OBJECTS) await noopPass(count);
if (parts.has("firewall")) await firewallRepair();

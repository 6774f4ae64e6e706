// Fault harness, figures part (issue "Trust"), run inside the test namespace holding the e2e lock:
//   flock /tmp/kvmctl-e2e.lock npm run testenv:exec -- npm run bench:chaos [-- kill|libvirtd]   (default: both)
// Prints figures and asserts nothing, but prints a FAIL line for every broken invariant and
// then exits non-zero.
//
// Each part converges, from an empty libvirt, a fresh manifest directory holding a dir
// StoragePool, two NAT Networks (a port forward each) and 30 VirtualMachines (the test guest by
// direct kernel boot, 128Mi, domainType qemu, runStrategy Always, an 8Mi disk in the pool and an
// interface on one of the networks), with the controller built in dist/ (`--instance chaos`,
// so its firewall table is `inet kvmctl-chaos`).
// - kill: while it converges, SIGKILLs the controller 20 times at random points (seeded PRNG,
//   CHAOS_SEED; each kill after a random delay of 200 ms to 3 s after its "controller starting"
//   line, or after a random number (1 to 40, at most 15 s) of "reconcile finished" lines of that
//   run), restarting it each time; then a clean start, the time until everything is Ready, a
//   clean stop, and the invariants. Only the controller's PID is killed, as the kernel's OOM
//   killer would; its virsh commands in flight finish on their own (the orphaned event streams,
//   `virsh ... --loop`, are ended by PID). The controller logs through pino asynchronously: the
//   last lines before a SIGKILL may be lost, so a log read around a kill can miss its last steps.
// - libvirtd: the controller keeps running while libvirtd of the test environment is killed
//   (through its pid file, SIGKILL unless CHAOS_LIBVIRTD_SIGNAL=SIGTERM) and started again
//   (testenv/daemons.ts startDaemons) 5 times; after each restart, the time from "libvirtd
//   answers" until everything that was Ready before the kill is Ready again; then the invariants.
// Invariants: every VM has exactly one domain, running, whose status names its UUID; no other
// domain, pool or network of this run; the pool holds exactly one volume per VM (no
// duplicates, no orphans, no stray files); the firewall table holds exactly the rules one clean
// pass renders (src/firewall/rules.ts over the manifests and live bridges), per owner and
// chain, none twice, and each Network's status.firewall.rules agrees; every manifest parses and
// is byte for byte what was written once its status block is taken out; the controller lock is
// free after the final stop.
// Everything made in libvirt and the table are removed in a finally, and the temp dirs.
// CHAOS_KEEP_LOG=FILE copies the controller's log there (it is also kept, and its path printed,
// when an invariant fails).
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { parseAllDocuments } from "yaml";
import { NFT_CHAINS, nftTableFor } from "../src/firewall/nftables.js";
import { renderFirewall, type FirewallNetwork, type FirewallVm } from "../src/firewall/rules.js";
import { holdLock, LockHeldError } from "../src/store/locks.js";
import { ManifestStore, type Snapshot } from "../src/store/index.js";
import { RUN_DIR } from "../testenv/config.js";
import { ourDaemonPid, startDaemons } from "../testenv/daemons.js";
import { assertInTestEnv, LIBVIRT_URI, testGuest, testName } from "../testenv/env.js";

const MAIN = path.resolve("dist/cli/main.js");
// The issue's numbers; the environment variables only make a quick try of the harness itself.
const VMS = Number(process.env.CHAOS_VMS ?? 30);
const KILLS = Number(process.env.CHAOS_KILLS ?? 20);
const LIBVIRTD_RESTARTS = Number(process.env.CHAOS_RESTARTS ?? 5);
const INSTANCE = "chaos";
const NFT_TABLE = nftTableFor(INSTANCE);
const SEED = Number(process.env.CHAOS_SEED ?? 20261201);
const LIBVIRTD_SIGNAL: NodeJS.Signals = process.env.CHAOS_LIBVIRTD_SIGNAL === "SIGTERM" ? "SIGTERM" : "SIGKILL";
const LIBVIRTD = { name: "libvirtd" as const, pidFile: path.join(RUN_DIR, "libvirtd.pid") };
const parts = new Set(process.argv.slice(2).length ? process.argv.slice(2) : ["kill", "libvirtd"]);
for (const part of parts) if (part !== "kill" && part !== "libvirtd") throw new Error(`unknown part ${part}: use kill and/or libvirtd`);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const virsh = (...args: string[]) => execa("virsh", ["-q", "-c", LIBVIRT_URI, ...args], { reject: false, timeout: 120_000 });
const nft = (...args: string[]) => execa("nft", args, { reject: false, timeout: 30_000 });
const lines = (text: unknown) => String(text ?? "").split("\n").map((s) => s.trim()).filter(Boolean);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

let failures = 0;
function fail(part: string, message: string): void {
  failures++;
  console.log(`${part}: FAIL ${message}`);
}

/** mulberry32: a small seeded PRNG, so a run's kill schedule can be replayed (CHAOS_SEED). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// The scenario: manifests written once, remembered byte for byte.

interface Scenario {
  part: string;
  root: string;
  dir: string;
  logFile: string;
  pool: string;
  poolPath: string;
  networks: { name: string; net: string }[];
  vms: { name: string; network: string }[];
  /** Absolute path → the exact text written. */
  files: Map<string, string>;
  /** Work-queue keys of every object ("Kind/name"). */
  keys: string[];
  /** Names of this scenario's libvirt objects all match this. */
  namePattern: RegExp;
}

function setUp(part: string, subnets: [string, string], hostPorts: [number, number]): Scenario {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `kvmctl-chaos-${part}-`));
  fs.chmodSync(root, 0o755); // QEMU (libvirt-qemu) reads the pool directory under it
  const dir = path.join(root, "state");
  const label = part === "kill" ? "chk" : "chl";
  const pool = testName(`${label}-pool`);
  const poolPath = path.join(root, "pool");
  const networks = subnets.map((net, j) => ({ name: testName(`${label}-net${j}`), net }));
  const vms = Array.from({ length: VMS }, (_, i) => ({ name: testName(`${label}-vm-${String(i).padStart(2, "0")}`), network: networks[i % networks.length]!.name }));
  const guest = testGuest();
  const files = new Map<string, string>();
  const put = (rel: string, text: string) => files.set(path.join(dir, rel), text);
  put(
    `storagepools/${pool}.yaml`,
    `# chaos bench (${part}): the pool of the guests' disks
apiVersion: kvmctl.dev/v1alpha1
kind: StoragePool
metadata:
  name: ${pool}
spec:
  type: dir
  path: ${poolPath}
`,
  );
  networks.forEach(({ name, net }, j) =>
    put(
      `networks/${name}.yaml`,
      `# chaos bench (${part}): NAT network ${j}
apiVersion: kvmctl.dev/v1alpha1
kind: Network
metadata:
  name: ${name}
spec:
  mode: nat
  ipv4:
    address: ${net}.1
    prefix: 24
    dhcp: {start: ${net}.100, end: ${net}.200}
  portForwards:
    - {hostPort: ${hostPorts[j]}, guestAddress: ${net}.10, guestPort: 22}
`,
    ),
  );
  vms.forEach(({ name, network }) =>
    put(
      `virtualmachines/${name}.yaml`,
      `# chaos bench (${part}): a software-emulated test guest
apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
spec:
  runStrategy: Always
  domainType: qemu
  cpus: 1
  memory: 128Mi
  terminationGracePeriodSeconds: 5
  boot: {kernel: ${guest.kernel}, initrd: ${guest.initrd}, cmdline: "console=ttyS0 quiet"}
  disks:
    - {name: data, pool: ${pool}, size: 8Mi}
  interfaces:
    - {network: ${network}}
`,
    ),
  );
  for (const [file, text] of files) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
  }
  const suffix = process.pid.toString(36);
  return {
    part,
    root,
    dir,
    logFile: path.join(root, "controller.log"),
    pool,
    poolPath,
    networks,
    vms,
    files,
    keys: [`StoragePool/${pool}`, ...networks.map((n) => `Network/${n.name}`), ...vms.map((v) => `VirtualMachine/${v.name}`)],
    namePattern: new RegExp(`^kvt-${label}-.*-${suffix}$`),
  };
}

// ---------------------------------------------------------------------------------------------
// The controller: spawned from dist/, log appended to one file per part, killed by its PID.

interface Run {
  child: ChildProcess;
  pid: number;
  startedAt: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startController(s: Scenario): Run {
  const log = fs.openSync(s.logFile, "a");
  const startedAt = Date.now();
  // As examples/systemd/kvmctl.service runs it (NODE_OPTIONS=--max-semi-space-size=2); debug
  // logging for the "reconcile finished" lines this harness reads.
  const child = spawn(
    process.execPath,
    ["--max-semi-space-size=2", MAIN, "--dir", s.dir, "controller", "--instance", INSTANCE, "--concurrency", "8", "--default-domain-type", "qemu", "--console-log-dir", path.join(s.root, "console"), "--allow-host-path", `kernel=${path.dirname(testGuest().kernel)}`, "--allow-host-path", `pool=${s.root}`, "--log-level", "debug"],
    { stdio: ["ignore", log, log] },
  );
  fs.closeSync(log);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  return { child, pid: child.pid!, startedAt, exited };
}

async function stopController(run: Run, timeoutMs = 120_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; forced: boolean }> {
  if (run.child.exitCode !== null || run.child.signalCode !== null) return { ...(await run.exited), forced: false };
  run.child.kill("SIGTERM");
  const result = await Promise.race([run.exited, sleep(timeoutMs).then(() => undefined)]);
  if (result) return { ...result, forced: false };
  run.child.kill("SIGKILL");
  return { ...(await run.exited), forced: true };
}

interface ProcInfo {
  pid: number;
  start: string;
  cmd: string;
}

function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z") return undefined;
    return { pid, start: fields[19]!, cmd: fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim() };
  } catch {
    return undefined;
  }
}

/** Direct children of `pid` (the controller's virsh processes), with their start times. */
function childrenOf(pid: number): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== pid) continue;
      const info = procInfo(Number(entry));
      if (info) out.push(info);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** True when `p` is still the very process recorded (same PID and start time). */
const stillAlive = (p: ProcInfo) => procInfo(p.pid)?.start === p.start;

// ---------------------------------------------------------------------------------------------
// The controller's log, read incrementally.

interface LogLine {
  time: number;
  msg?: string;
  pid?: number;
  object?: string;
  reconcileId?: string;
  outcome?: string;
  ready?: boolean;
  startedAt?: number;
  observedAt?: number;
  [field: string]: unknown;
}

interface Reconcile {
  key: string;
  pid: number;
  outcome: string;
  /** outcome "ready" and the reconciler said ready (its "reconciled" line). */
  ready: boolean;
  startedAt: number;
  observedAt?: number;
  /** When its "reconcile finished" line was written. */
  time: number;
}

class LogTail {
  readonly all: LogLine[] = [];
  readonly reconciles: Reconcile[] = [];
  private readonly readyById = new Map<string, boolean>();
  private offset = 0;
  private rest = Buffer.alloc(0);

  constructor(readonly file: string) {}

  poll(): void {
    let fd: number;
    try {
      fd = fs.openSync(this.file, "r");
    } catch {
      return;
    }
    try {
      const chunk = Buffer.alloc(1 << 20);
      for (;;) {
        const n = fs.readSync(fd, chunk, 0, chunk.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        this.rest = Buffer.concat([this.rest, chunk.subarray(0, n)]);
        let nl: number;
        while ((nl = this.rest.indexOf(10)) >= 0) {
          this.take(this.rest.subarray(0, nl).toString("utf8"));
          this.rest = this.rest.subarray(nl + 1);
        }
      }
    } finally {
      fs.closeSync(fd);
    }
  }

  private take(text: string): void {
    if (!text.startsWith("{")) return;
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      return;
    }
    this.all.push(line);
    if (line.msg === "reconciled" && line.reconcileId) this.readyById.set(line.reconcileId, line.ready === true);
    if (line.msg === "reconcile finished" && line.object && line.reconcileId) {
      this.reconciles.push({
        key: line.object,
        pid: line.pid ?? 0,
        outcome: line.outcome ?? "",
        ready: line.outcome === "ready" && this.readyById.get(line.reconcileId) === true,
        startedAt: line.startedAt ?? line.time,
        ...(line.observedAt !== undefined ? { observedAt: line.observedAt } : {}),
        time: line.time,
      });
      this.readyById.delete(line.reconcileId);
    }
  }

  finishedBy(pid: number): number {
    return this.reconciles.filter((r) => r.pid === pid).length;
  }
}

// ---------------------------------------------------------------------------------------------
// "Ready", by positive signals only.

type Conditions = { status?: { conditions?: { type: string; status: string }[] } };
const statusReady = (snapshot: Snapshot, key: string) => ((snapshot.objects.get(key)?.object as Conditions | undefined)?.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");

async function runningDomains(): Promise<Set<string>> {
  return new Set(lines((await virsh("list", "--state-running", "--name")).stdout));
}

interface Settled {
  done: boolean;
  /** When the last of them became (and stayed) Ready by its reconciles. */
  at: number;
  missing: string[];
}

/**
 * Whether every key in `keys` is Ready by the one signal that cannot be stale: its latest
 * reconcile that started at or after `after` and decided on a picture of libvirt taken at or
 * after `after` (or read none) finished "ready" with the reconciler saying ready (`pid`: only
 * that controller's). Status alone is not enough: Ready=True in a manifest may have been
 * written by a controller that was killed since, or before libvirtd was restarted.
 * `at` is the time of the first of the trailing ready reconciles, the latest over the keys.
 */
function settled(tail: LogTail, keys: string[], after: number, pid?: number): Settled {
  const byKey = new Map<string, Reconcile[]>();
  for (const r of tail.reconciles) {
    if (pid !== undefined && r.pid !== pid) continue;
    if (r.startedAt < after || (r.observedAt ?? r.startedAt) < after) continue;
    const list = byKey.get(r.key) ?? [];
    list.push(r);
    byKey.set(r.key, list);
  }
  let at = 0;
  const missing: string[] = [];
  for (const key of keys) {
    const list = byKey.get(key) ?? [];
    let i = list.length;
    while (i > 0 && list[i - 1]!.ready) i--;
    if (i === list.length) {
      missing.push(key);
      continue;
    }
    at = Math.max(at, list[i]!.time);
  }
  return { done: missing.length === 0, at, missing };
}

/**
 * Polls until every key is Ready three ways: by its reconciles (`settled`), in its status, and
 * for VMs, their domain running in libvirt. Returns when that held, or undefined on timeout
 * (with what was missing in `last`).
 */
async function waitReady(s: Scenario, tail: LogTail, store: ManifestStore, keys: string[], after: number, timeoutMs: number, pid?: number): Promise<{ at?: number; last: string[] }> {
  const deadline = Date.now() + timeoutMs;
  let last: string[] = [];
  // The reconciles said ready, but a poll still found a status or a domain behind: the moment
  // is then no earlier than that poll.
  let behindAt = 0;
  for (;;) {
    tail.poll();
    const byLog = settled(tail, keys, after, pid);
    if (byLog.done) {
      const polledAt = Date.now();
      const [snapshot, running] = await Promise.all([store.read(), runningDomains()]);
      const notStatus = keys.filter((k) => !statusReady(snapshot, k));
      const notRunning = s.vms.filter((v) => keys.includes(`VirtualMachine/${v.name}`) && !running.has(v.name)).map((v) => `domain ${v.name} not running`);
      if (!notStatus.length && !notRunning.length) return { at: Math.max(byLog.at, behindAt), last: [] };
      behindAt = polledAt;
      last = [...notStatus.map((k) => `${k}: status not Ready`), ...notRunning];
    } else {
      last = byLog.missing.map((k) => `${k}: no ready reconcile yet`);
    }
    if (Date.now() > deadline) return { last };
    await sleep(250);
  }
}

async function readyNow(s: Scenario, store: ManifestStore): Promise<string[]> {
  const [snapshot, running] = await Promise.all([store.read(), runningDomains()]);
  return s.keys.filter((k) => statusReady(snapshot, k) && (!k.startsWith("VirtualMachine/") || running.has(k.slice("VirtualMachine/".length))));
}

// ---------------------------------------------------------------------------------------------
// Invariants.

/** The document without its top-level `status:` block (the controller's only write). */
const withoutStatus = (text: string) => text.replace(/^status:\n(?:[ \t].*\n|\n)*/gm, "");

const xmlAttr = (element: string, name: string) => new RegExp(`\\b${name}=(?:'([^']*)'|"([^"]*)")`).exec(element)?.slice(1).find((v) => v !== undefined);

const INVARIANTS = [
  "duplicate domains",
  "orphaned domains",
  "missing or stopped domains",
  "domain disk mismatches",
  "status domain UUID mismatches",
  "duplicate volumes",
  "orphaned volumes",
  "missing volumes",
  "orphaned pools or networks",
  "inactive pool or networks",
  "duplicate rules",
  "orphaned rules",
  "rule count mismatches",
  "manifests not parsing",
  "manifests changed outside status",
  "controller lock held",
] as const;
type Invariant = (typeof INVARIANTS)[number];

interface Checked {
  counts: string[];
  invariants: Map<Invariant, number>;
  /** Names (domain, volume, manifest key) a broken invariant is about: to look up in the log. */
  subjects: Set<string>;
}

async function checkInvariants(s: Scenario, store: ManifestStore): Promise<Checked> {
  const P = s.part;
  const invariants = new Map<Invariant, number>(INVARIANTS.map((name) => [name, 0]));
  const subjects = new Set<string>();
  const note = (name: Invariant, problem: string, subject?: string) => {
    invariants.set(name, invariants.get(name)! + 1);
    if (subject) subjects.add(subject);
    fail(P, `${name}: ${problem}`);
  };
  const snapshot = await store.read();

  // Domains: by name pattern, and any domain whose owner metadata names this instance and a
  // manifest of ours (a domain defined under another name would be a duplicate).
  const vmNames = new Set(s.vms.map((v) => v.name));
  const allDomains = lines((await virsh("list", "--all", "--name")).stdout);
  const running = await runningDomains();
  const domainsOf = new Map<string, string[]>();
  let ownedDomains = 0;
  for (const name of allDomains) {
    const xml = String((await virsh("dumpxml", "--inactive", name)).stdout);
    const owner = /<kvmctl:owner\b[^>]*>/.exec(xml)?.[0];
    const manifest = owner ? xmlAttr(owner, "manifest") : undefined;
    const instance = owner ? xmlAttr(owner, "instance") : undefined;
    const ours = s.namePattern.test(name) || (instance === INSTANCE && manifest !== undefined && vmNames.has(manifest.replace(/^VirtualMachine\//, "")));
    if (!ours) continue;
    ownedDomains++;
    const vm = manifest?.startsWith("VirtualMachine/") ? manifest.slice("VirtualMachine/".length) : name;
    if (!vmNames.has(vm) || !vmNames.has(name)) {
      note("orphaned domains", `domain ${name} (owner ${manifest ?? "none"}, instance ${instance ?? "none"}) belongs to no VM manifest of this run`, name);
      continue;
    }
    domainsOf.set(vm, [...(domainsOf.get(vm) ?? []), name]);
    // Its disks: exactly the VM's one volume.
    const disks = [...xml.matchAll(/<disk\b[^>]*device=['"]disk['"][^>]*>([\s\S]*?)<\/disk>/g)].map((m) => {
      const source = /<source\b[^>]*>/.exec(m[1]!)?.[0] ?? "";
      return xmlAttr(source, "file") ?? `${xmlAttr(source, "pool") ?? "?"}/${xmlAttr(source, "volume") ?? "?"}`;
    });
    // kvmctl refers to pool volumes as <source pool= volume=>; a file path would do as well.
    const expected = [`${s.pool}/${vm}-data.qcow2`, path.join(s.poolPath, `${vm}-data.qcow2`)];
    if (disks.length !== 1 || !expected.includes(disks[0]!)) note("domain disk mismatches", `domain ${name} has disks [${disks.join(", ")}], expected [${expected[0]}]`, vm);
    const uuid = /<uuid>([^<]+)<\/uuid>/.exec(xml)?.[1];
    const statusUuid = (snapshot.objects.get(`VirtualMachine/${vm}`)?.object as { status?: { domain?: { uuid?: string } } } | undefined)?.status?.domain?.uuid;
    if (uuid !== statusUuid) note("status domain UUID mismatches", `domain ${name} has UUID ${uuid}, VirtualMachine/${vm}'s status names ${statusUuid ?? "none"}`, vm);
  }
  for (const vm of vmNames) {
    const found = domainsOf.get(vm) ?? [];
    if (found.length > 1) note("duplicate domains", `VirtualMachine/${vm} has ${found.length} domains: ${found.join(", ")}`, vm);
    if (found.length === 0) note("missing or stopped domains", `VirtualMachine/${vm} has no domain`, vm);
    else if (!running.has(vm)) note("missing or stopped domains", `domain ${vm} is not running (${String((await virsh("domstate", "--reason", vm)).stdout).trim()})`, vm);
  }

  // Pools and networks of this run: exactly ours, active.
  const pools = lines((await virsh("pool-list", "--all", "--name")).stdout).filter((n) => s.namePattern.test(n));
  const nets = lines((await virsh("net-list", "--all", "--name")).stdout).filter((n) => s.namePattern.test(n));
  for (const name of pools) if (name !== s.pool) note("orphaned pools or networks", `pool ${name} belongs to no manifest`, name);
  for (const name of nets) if (!s.networks.some((n) => n.name === name)) note("orphaned pools or networks", `network ${name} belongs to no manifest`, name);
  if (!pools.includes(s.pool) || !/^State:\s+running/m.test(String((await virsh("pool-info", s.pool)).stdout))) note("inactive pool or networks", `pool ${s.pool} is not defined and running`, s.pool);
  for (const n of s.networks) if (!/^Active:\s+yes/m.test(String((await virsh("net-info", n.name)).stdout))) note("inactive pool or networks", `network ${n.name} is not active`, n.name);

  // Volumes: libvirt's list after a refresh (so files it did not know of show up), and the
  // directory itself.
  await virsh("pool-refresh", s.pool);
  const volumes = lines((await virsh("vol-list", "--pool", s.pool)).stdout).map((l) => l.split(/\s+/)[0]!);
  const files = fs.existsSync(s.poolPath) ? fs.readdirSync(s.poolPath) : [];
  const expectedVolumes = new Set(s.vms.map((v) => `${v.name}-data.qcow2`));
  for (const vol of new Set([...volumes, ...files])) {
    if (expectedVolumes.has(vol)) continue;
    const vm = [...vmNames].find((n) => vol.startsWith(n));
    note(vm ? "duplicate volumes" : "orphaned volumes", `${volumes.includes(vol) ? "volume" : "file (not a volume)"} ${s.pool}/${vol}${vm ? ` is a second volume of VirtualMachine/${vm}` : ""}`, vm ?? vol);
  }
  for (const vol of expectedVolumes) if (!volumes.includes(vol)) note("missing volumes", `volume ${s.pool}/${vol} is missing`, vol.replace(/-data\.qcow2$/, ""));

  // Firewall: what one clean pass renders for these manifests and the networks' live bridges,
  // against the table, per owner and chain; and no identical rule twice.
  const fwNetworks: FirewallNetwork[] = [];
  const fwVms: FirewallVm[] = [];
  for (const stored of snapshot.objects.values()) {
    if (stored.kind === "Network") {
      const bridge = /<bridge\b[^>]*\bname=['"]([^'"]+)['"]/.exec(String((await virsh("net-dumpxml", stored.name)).stdout))?.[1];
      fwNetworks.push({ key: stored.key, spec: stored.object.spec, ...(bridge ? { bridge } : {}) });
    } else if (stored.kind === "VirtualMachine") {
      fwVms.push({ key: stored.key, spec: stored.object.spec });
    }
  }
  const rendered = renderFirewall({ networks: fwNetworks, vms: fwVms });
  const want = new Map<string, number>();
  for (const r of rendered.rules) want.set(`${r.owner} ${NFT_CHAINS[r.chain].name}`, (want.get(`${r.owner} ${NFT_CHAINS[r.chain].name}`) ?? 0) + 1);
  for (const [owner, why] of rendered.pending) note("rule count mismatches", `rules of ${owner} cannot be rendered: ${why}`);
  const listed = await nft("-j", "list", "table", "inet", NFT_TABLE);
  const have = new Map<string, number>();
  const perOwner = new Map<string, number>();
  const seen = new Map<string, number>();
  let tableRules = 0;
  if (listed.exitCode !== 0) {
    note("rule count mismatches", `table inet ${NFT_TABLE} is not there: ${String(listed.stderr).trim()}`);
  } else {
    for (const item of (JSON.parse(String(listed.stdout)) as { nftables: { rule?: { chain: string; comment?: string; expr?: unknown; handle?: number } }[] }).nftables) {
      if (!item.rule) continue;
      tableRules++;
      const owner = item.rule.comment ?? "";
      have.set(`${owner} ${item.rule.chain}`, (have.get(`${owner} ${item.rule.chain}`) ?? 0) + 1);
      perOwner.set(owner, (perOwner.get(owner) ?? 0) + 1);
      const identity = JSON.stringify([item.rule.chain, owner, item.rule.expr]);
      seen.set(identity, (seen.get(identity) ?? 0) + 1);
      if (!s.keys.includes(owner)) note("orphaned rules", `rule in chain ${item.rule.chain} (handle ${item.rule.handle}) is owned by "${owner}", no object of this run`, owner);
    }
    for (const [identity, n] of seen) if (n > 1) note("duplicate rules", `${n} identical rules ${identity}`, "Firewall/host");
    for (const k of new Set([...want.keys(), ...have.keys()])) {
      const [owner] = k.split(" ");
      if (!s.keys.includes(owner!)) continue; // reported as orphaned
      if ((want.get(k) ?? 0) !== (have.get(k) ?? 0)) note("rule count mismatches", `${k}: ${have.get(k) ?? 0} rules in the table, one clean pass renders ${want.get(k) ?? 0}`, owner);
    }
  }
  for (const n of s.networks) {
    const key = `Network/${n.name}`;
    const status = (snapshot.objects.get(key)?.object as { status?: { firewall?: { rules?: number } } } | undefined)?.status?.firewall?.rules;
    const rendered = [...want].filter(([k]) => k.startsWith(`${key} `)).reduce((sum, [, c]) => sum + c, 0);
    if (status !== rendered) note("rule count mismatches", `${key}: status.firewall.rules is ${status ?? "absent"}, one clean pass renders ${rendered}`, key);
  }

  // Manifests: each parses, one document, and is what was written once its status block is out.
  for (const [file, written] of s.files) {
    const rel = path.relative(s.dir, file);
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (error) {
      note("manifests not parsing", `${rel}: ${(error as Error).message}`, rel);
      continue;
    }
    const docs = parseAllDocuments(text);
    const errors = Array.isArray(docs) ? docs.flatMap((d) => d.errors.map((e) => e.message)) : ["not a document stream"];
    if (errors.length || !Array.isArray(docs) || docs.length !== 1) note("manifests not parsing", `${rel}: ${errors.join("; ") || `${Array.isArray(docs) ? docs.length : 0} documents`}`, rel);
    const stripped = withoutStatus(text);
    if (stripped !== written) {
      const a = written.split("\n");
      const b = stripped.split("\n");
      const at = a.findIndex((l, i) => l !== b[i]);
      note("manifests changed outside status", `${rel}: line ${at + 1} was ${JSON.stringify(a[at])}, is ${JSON.stringify(b[at])}`, rel);
    }
    if (!/^status:\n/m.test(text)) note("manifests changed outside status", `${rel}: has no status block`, rel);
  }
  for (const problem of snapshot.problems) note("manifests not parsing", `store: ${problem.location.file}: ${problem.message}`, problem.location.file);
  // Litter: files in the manifest directory nobody wrote (e.g. a status write's temp file left by a kill).
  const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (e.name === ".kvmctl" ? [] : walk(path.join(d, e.name))) : [path.join(d, e.name)]));
  const stray = walk(s.dir).filter((f) => !s.files.has(f));

  // The controller lock: free after the final stop.
  try {
    const lock = await holdLock("controller", fs.realpathSync(s.dir));
    await lock.release();
  } catch (error) {
    if (!(error instanceof LockHeldError)) throw error;
    note("controller lock held", `the controller lock of ${s.dir} is still held after the final stop`);
  }

  const counts = [
    `domains: ${ownedDomains} of this run (${[...domainsOf.values()].filter((d) => d.length === 1).length}/${VMS} VMs with exactly one), ${s.vms.filter((v) => running.has(v.name)).length}/${VMS} running`,
    `volumes: ${volumes.length} in pool ${s.pool}, ${files.length} files in its directory (expected ${VMS})`,
    `pools: ${pools.length}, networks: ${nets.length} of this run (expected 1 and ${s.networks.length})`,
    `firewall: table inet ${NFT_TABLE}: ${tableRules} rules; by owner ${[...perOwner].map(([o, n]) => `${o.replace(/-[a-z0-9]+$/, "")}=${n}`).join(", ") || "none"}; one clean pass renders ${rendered.rules.length}`,
    `manifests: ${s.files.size} files, ${s.files.size - invariants.get("manifests not parsing")!} parse, ${s.files.size - invariants.get("manifests changed outside status")!} unchanged outside status; ${stray.length} stray files${stray.length ? `: ${stray.map((f) => path.relative(s.dir, f)).join(", ")}` : ""}`,
  ];
  return { counts, invariants, subjects };
}

/** The figures, then the log lines about whatever broke an invariant. */
/**
 * The end of a part: a moment for a firewall check (every 5 s) and the status writes of the
 * last reconciles to land, a SIGTERM that must exit 0, then the invariants.
 */
async function stopAndCheck(part: string, run: Run, s: Scenario, tail: LogTail, store: ManifestStore, faults: { pid: number; at: number }[]): Promise<void> {
  await sleep(3000);
  const stopped = await stopController(run);
  if (stopped.code !== 0 || stopped.forced) fail(part, `the final SIGTERM: exit code ${stopped.code}, signal ${stopped.signal}${stopped.forced ? ", had to be SIGKILLed after 120 s" : ""}`);
  else console.log(`${part}: final stop: SIGTERM, exit 0`);
  report(s, tail, await checkInvariants(s, store), faults);
}

function report(s: Scenario, tail: LogTail, checked: Checked, kills: { pid: number; at: number }[] = []): void {
  for (const line of checked.counts) console.log(`${s.part}: ${line}`);
  console.log(`${s.part}: invariants (0 = holds): ${[...checked.invariants].map(([k, v]) => `${k} ${v}`).join(", ")}`);
  for (const subject of checked.subjects) {
    console.log(`${s.part}: log lines about ${subject} (kills at ${kills.map((k) => `${new Date(k.at).toISOString()} pid ${k.pid}`).join(", ") || "-"}):`);
    for (const line of logAround(tail, subject)) console.log(line);
  }
}

/** The last log lines that mention `needle`, but not the per-reconcile bookkeeping, for evidence. */
function logAround(tail: LogTail, needle: string, limit = 25): string[] {
  tail.poll();
  const noise = new Set(["reconcile finished", "reconciled", "waiting for a dependency"]);
  return tail.all
    .filter((l) => !noise.has(l.msg ?? "") && JSON.stringify(l).includes(needle))
    .slice(-limit)
    .map((l) => `    ${new Date(l.time).toISOString()} pid ${l.pid} ${l.object ?? ""} ${l.msg ?? ""} ${JSON.stringify(Object.fromEntries(Object.entries(l).filter(([k]) => !["time", "msg", "pid", "object", "level", "dir", "hostname", "reconcileId"].includes(k))))}`);
}

// ---------------------------------------------------------------------------------------------
// Cleanup: everything of the scenario in libvirt, the table, the temp dir.

async function cleanUp(s: Scenario, leftovers: ProcInfo[], keepLog: boolean): Promise<void> {
  for (const p of leftovers) if (stillAlive(p)) process.kill(p.pid, "SIGTERM");
  for (const name of lines((await virsh("list", "--all", "--name")).stdout).filter((n) => s.namePattern.test(n))) {
    await virsh("destroy", name);
    await virsh("undefine", name, "--nvram");
  }
  for (const pool of lines((await virsh("pool-list", "--all", "--name")).stdout).filter((n) => s.namePattern.test(n))) {
    await virsh("pool-start", pool);
    await virsh("pool-refresh", pool);
    for (const vol of lines((await virsh("vol-list", "--pool", pool)).stdout).map((l) => l.split(/\s+/)[0]!)) await virsh("vol-delete", vol, "--pool", pool);
    await virsh("pool-destroy", pool);
    await virsh("pool-undefine", pool);
  }
  for (const net of lines((await virsh("net-list", "--all", "--name")).stdout).filter((n) => s.namePattern.test(n))) {
    await virsh("net-destroy", net);
    await virsh("net-undefine", net);
  }
  await nft("delete", "table", "inet", NFT_TABLE);
  const target = process.env.CHAOS_KEEP_LOG ? `${process.env.CHAOS_KEEP_LOG}${parts.size > 1 ? `.${s.part}` : ""}` : keepLog ? path.join(os.tmpdir(), `kvmctl-chaos-${s.part}-${Date.now()}.log`) : undefined;
  if (target && fs.existsSync(s.logFile)) {
    fs.copyFileSync(s.logFile, target);
    console.log(`${s.part}: controller log kept in ${target}`);
  }
  fs.rmSync(s.root, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// Part kill: SIGKILL the controller 20 times while it converges.

async function killPart(): Promise<void> {
  const P = "kill";
  const s = setUp(P, ["198.18.40", "198.18.41"], [42401, 42402]);
  const tail = new LogTail(s.logFile);
  const store = new ManifestStore({ dir: s.dir, diskCache: false });
  const rng = prng(SEED);
  const leftovers: ProcInfo[] = [];
  const kills: { pid: number; at: number }[] = [];
  const upsMs: number[] = [];
  let killsInFlight = 0;
  const failuresBefore = failures;
  let run: Run | undefined;
  console.log(`${P}: seed ${SEED}; ${VMS} VMs, pool ${s.pool}, networks ${s.networks.map((n) => `${n.name} (${n.net}.0/24)`).join(", ")}; SIGKILL to the controller's PID only (its virsh children live on; orphaned event streams (--loop) are then ended by PID)`);
  try {
    await nft("delete", "table", "inet", NFT_TABLE); // a leftover of an earlier run of ours
    const firstStart = Date.now();
    for (let k = 1; k <= KILLS; k++) {
      run = startController(s);
      const byDelay = rng() < 0.5;
      const delayMs = 200 + Math.floor(rng() * 2800);
      const afterReconciles = 1 + Math.floor(rng() * 40);
      let how: string;
      // "Its start" is its "controller starting" line (lock taken, about to reconcile), not the
      // spawn: with the guests loading both CPUs, Node alone can take seconds to get there,
      // and a kill before it tests nothing but startup.
      const upBy = Date.now() + 20_000;
      let upAt: number | undefined;
      while (run.child.exitCode === null && Date.now() < upBy) {
        tail.poll();
        upAt = tail.all.find((l) => l.pid === run!.pid && l.msg === "controller starting")?.time;
        if (upAt !== undefined) break;
        await sleep(10);
      }
      const startup = upAt === undefined ? "never logged \"controller starting\" in 20 s" : `up ${upAt - run.startedAt} ms after its spawn`;
      if (upAt !== undefined) upsMs.push(upAt - run.startedAt);
      if (byDelay) {
        await Promise.race([sleep(Math.max(0, (upAt ?? Date.now()) + delayMs - Date.now())), run.exited]);
        how = `${delayMs} ms after its start (${startup})`;
      } else {
        const cap = Date.now() + 15_000;
        while (run.child.exitCode === null && Date.now() < cap) {
          tail.poll();
          if (tail.finishedBy(run.pid) >= afterReconciles) break;
          await sleep(10);
        }
        how = `after ${afterReconciles} reconciles finished${Date.now() >= cap ? " (not reached in 15 s: killed anyway)" : ""}, ${Date.now() - (upAt ?? run.startedAt)} ms after its start (${startup})`;
      }
      if (run.child.exitCode !== null || run.child.signalCode !== null) {
        const { code, signal } = await run.exited;
        fail(P, `controller ${k} (pid ${run.pid}) exited by itself before its kill (code ${code}, signal ${signal}); log tail:\n${fs.readFileSync(s.logFile, "utf8").split("\n").slice(-5).join("\n")}`);
        continue;
      }
      const children = childrenOf(run.pid);
      if (children.some((p) => !p.cmd.includes("--loop"))) killsInFlight++;
      run.child.kill("SIGKILL");
      await run.exited;
      const killedAt = Date.now();
      kills.push({ pid: run.pid, at: killedAt });
      for (const p of children) {
        if (p.cmd.includes("--loop") && stillAlive(p)) process.kill(p.pid, "SIGTERM");
        else leftovers.push(p);
      }
      tail.poll();
      const running = [...(await runningDomains())].filter((n) => s.namePattern.test(n)).length;
      console.log(`${P}: kill ${String(k).padStart(2)}: pid ${run.pid} SIGKILLed ${how} (at ${new Date(killedAt).toISOString()}, +${secs(killedAt - firstStart)}), ${tail.finishedBy(run.pid)} reconciles finished in that run, ${children.filter((p) => !p.cmd.includes("--loop")).length} virsh commands in flight; ${running}/${VMS} domains running`);
    }
    run = undefined;
    const orphansAlive = leftovers.filter(stillAlive).length;
    console.log(`${P}: ${kills.length} kills done, ${killsInFlight} of them with virsh commands of the controller in flight; spawn → "controller starting" median ${upsMs.length ? median(upsMs) : "-"} ms, max ${upsMs.length ? Math.max(...upsMs) : "-"} ms; ${orphansAlive} of the killed controllers' one-shot virsh commands still running`);

    // The clean start.
    run = startController(s);
    const clean = run;
    const result = await waitReady(s, tail, store, s.keys, clean.startedAt, 5 * 60_000, clean.pid);
    if (result.at === undefined) {
      fail(P, `not all Ready 5 min after the clean start: ${result.last.length} not: ${result.last.slice(0, 10).join("; ")}${result.last.length > 10 ? "; …" : ""}`);
      for (const key of result.last.slice(0, 3).map((l) => l.split(":")[0]!)) {
        console.log(`${P}: last log lines about ${key}:`);
        for (const line of logAround(tail, key, 8)) console.log(line);
      }
    } else {
      console.log(`${P}: clean start (pid ${clean.pid}) → all ${s.keys.length} objects Ready (${VMS} VMs, the pool, ${s.networks.length} networks; each by a ready reconcile of this controller, its status and, for VMs, the domain running): ${secs(result.at - clean.startedAt)}`);
    }
    console.log(`${P}: first start → all Ready, 20 kills included: ${result.at === undefined ? "never" : secs(result.at - firstStart)}`);
    await stopAndCheck(P, clean, s, tail, store, kills);
    run = undefined;
  } finally {
    if (run) await stopController(run, 30_000);
    await cleanUp(s, leftovers, failures > failuresBefore);
  }
}

// ---------------------------------------------------------------------------------------------
// Part libvirtd: kill and restart libvirtd 5 times while the controller converges.

/** "dead": exited, maybe not yet reaped (a zombie); "reaped": no such process any more. */
function processState(pid: number): "running" | "dead" | "reaped" {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z") ? "dead" : "running";
  } catch {
    return "reaped";
  }
}

async function libvirtdPart(): Promise<void> {
  const P = "libvirtd";
  const s = setUp(P, ["198.18.42", "198.18.43"], [42403, 42404]);
  const tail = new LogTail(s.logFile);
  const store = new ManifestStore({ dir: s.dir, diskCache: false });
  const rng = prng(SEED + 1);
  const failuresBefore = failures;
  let run: Run | undefined;
  console.log(`${P}: seed ${SEED + 1}; ${VMS} VMs, pool ${s.pool}, networks ${s.networks.map((n) => `${n.name} (${n.net}.0/24)`).join(", ")}; libvirtd killed with ${LIBVIRTD_SIGNAL} through ${LIBVIRTD.pidFile}, started again by testenv/daemons.ts startDaemons`);
  // "Recovered" is measured by positive signals, because Ready=True in a status may be the
  // value from before the kill: for every object that was Ready (status, and for a VM its
  // domain running) just before the kill, its latest reconcile that started, and decided on a
  // picture of libvirt taken, after the old libvirtd was gone finished ready (the controller's
  // "reconcile finished" line, outcome ready, joined by reconcileId with its "reconciled"
  // line's ready: true); plus its status Ready and its domain running in libvirt. The threshold
  // is the moment the old libvirtd was seen gone, not when the new one answered: a picture
  // taken after it is gone can only come from the new libvirtd (one taken while none runs
  // fails), and a reconcile may well read the new libvirtd in the instants before our own
  // `virsh version` poll says it answers. The time printed runs from "answers" (startDaemons
  // returned: its `virsh -c qemu:///system version` succeeded) to the finishing of the last of
  // those reconciles (negative would mean before our poll noticed).
  const recoveries: number[] = [];
  const restarts: { pid: number; at: number }[] = [];
  try {
    await nft("delete", "table", "inet", NFT_TABLE);
    run = startController(s);
    const started = run.startedAt;
    let lastAnswer = started;
    for (let k = 1; k <= LIBVIRTD_RESTARTS; k++) {
      const delay = k === 1 ? 5000 + Math.floor(rng() * 5000) : 1000 + Math.floor(rng() * 3000);
      await sleep(delay);
      if (run.child.exitCode !== null || run.child.signalCode !== null) {
        fail(P, `the controller (pid ${run.pid}) exited: ${JSON.stringify(await run.exited)}`);
        break;
      }
      const before = await readyNow(s, store);
      const pid = ourDaemonPid(LIBVIRTD);
      if (pid === undefined) throw new Error("libvirtd of the test environment is not running");
      const killedAt = Date.now();
      restarts.push({ pid, at: killedAt });
      process.kill(pid, LIBVIRTD_SIGNAL);
      while (processState(pid) === "running") {
        if (Date.now() - killedAt > 30_000) throw new Error(`libvirtd (pid ${pid}) did not exit within 30 s of ${LIBVIRTD_SIGNAL}`);
        await sleep(20);
      }
      const goneAt = Date.now();
      // As restartLibvirtd: once it is reaped (until then startDaemons takes the zombie for a
      // live libvirtd of ours, and fails reading its /proc/PID/exe), drop the pid file. The
      // reaping is up to this machine's PID 1.
      while (processState(pid) !== "reaped") {
        if (Date.now() - goneAt > 60_000) throw new Error(`libvirtd (pid ${pid}) was not reaped within 60 s of its exit`);
        await sleep(20);
      }
      const reapedMs = Date.now() - goneAt;
      fs.rmSync(LIBVIRTD.pidFile, { force: true });
      // startDaemons refuses to start while any process named libvirtd runs that is not ours
      // (a child libvirtd forked just before the kill, about to exec something): let those end.
      for (let i = 0; i < 100 && (await execa("pidof", ["libvirtd"], { reject: false })).exitCode === 0; i++) await sleep(100);
      await startDaemons();
      const answeredAt = Date.now();
      lastAnswer = answeredAt;
      if (!before.length) {
        console.log(`${P}: restart ${k}: ${LIBVIRTD_SIGNAL} at +${secs(killedAt - started)} with nothing Ready yet: no recovery to measure`);
        continue;
      }
      const result = await waitReady(s, tail, store, before, goneAt, 5 * 60_000, run.pid);
      const readyAfter = (await readyNow(s, store)).length;
      if (result.at === undefined) {
        fail(P, `restart ${k}: the ${before.length} objects Ready before it not all Ready again 5 min after libvirtd answered: ${result.last.slice(0, 10).join("; ")}`);
        continue;
      }
      const recovery = result.at - answeredAt;
      recoveries.push(recovery);
      console.log(
        `${P}: restart ${k}: ${LIBVIRTD_SIGNAL} at +${secs(killedAt - started)} with ${before.length}/${s.keys.length} objects Ready; dead after ${goneAt - killedAt} ms (reaped ${reapedMs} ms later), answering again ${secs(answeredAt - goneAt)} after its death; those ${before.length} Ready again ${recovery} ms after libvirtd answered (${recovery <= 5000 ? "within" : "OVER"} the 5 s goal); ${readyAfter}/${s.keys.length} Ready then`,
      );
    }
    if (recoveries.length) console.log(`${P}: recovery after libvirtd answers, ${recoveries.length} restarts: median ${median(recoveries)} ms, max ${Math.max(...recoveries)} ms, all: ${recoveries.join(", ")} ms (goal ≤ 5000 ms)`);
    const all = await waitReady(s, tail, store, s.keys, lastAnswer, 5 * 60_000, run.pid);
    if (all.at === undefined) fail(P, `not all Ready 5 min after the last restart: ${all.last.length} not: ${all.last.slice(0, 10).join("; ")}${all.last.length > 10 ? "; …" : ""}`);
    else console.log(`${P}: all ${s.keys.length} objects Ready (by reconciles after the last restart) ${secs(all.at - lastAnswer)} after libvirtd last answered, ${secs(all.at - started)} after the controller started`);
    await stopAndCheck(P, run, s, tail, store, restarts);
    run = undefined;
  } finally {
    if (run) await stopController(run, 30_000);
    await ensureLibvirtd(); // an error half-way through a restart: the cleanup needs it
    await cleanUp(s, [], failures > failuresBefore);
  }
}

/** Starts libvirtd of the test environment again if it is not running (after waiting for the old one to be reaped). */
async function ensureLibvirtd(): Promise<void> {
  let pid: number | undefined;
  try {
    pid = ourDaemonPid(LIBVIRTD);
  } catch {
    pid = undefined; // a zombie: its /proc/PID/exe is gone
  }
  if (pid !== undefined) return;
  let recorded = 0;
  try {
    recorded = Number(fs.readFileSync(LIBVIRTD.pidFile, "utf8").trim());
  } catch {
    // no pid file
  }
  for (let i = 0; recorded > 0 && i < 3000 && processState(recorded) !== "reaped"; i++) await sleep(20);
  fs.rmSync(LIBVIRTD.pidFile, { force: true });
  await startDaemons();
  console.log("libvirtd: started again for the cleanup");
}

await assertInTestEnv();
if (!fs.existsSync(MAIN)) throw new Error("dist/cli/main.js is missing: run `npm run build` first");
try {
  if (parts.has("kill")) await killPart();
  if (parts.has("libvirtd")) await libvirtdPart();
} catch (error) {
  fail("chaos", `aborted: ${(error as Error).stack ?? String(error)}`);
} finally {
  if (failures) {
    console.log(`chaos: ${failures} FAIL line(s)`);
    process.exitCode = 1;
  } else {
    console.log("chaos: every invariant held");
  }
}

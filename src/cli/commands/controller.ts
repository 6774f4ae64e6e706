// `kvmctl controller`: the long-running reconciler (what the systemd service runs), or one
// full pass with --once. One controller per manifest directory, enforced by a kernel-held lock.
import fs from "node:fs";
import path from "node:path";
import type { CliContext } from "../context.js";
import { parseDuration } from "../duration.js";
import { CliError, ExitCode, UsageError } from "../errors.js";

export interface ControllerOptions {
  once?: boolean;
  defaultDomainType?: "kvm" | "qemu";
  concurrency: string;
  resync: string;
  firewallBackend: string;
  firewallCheck: string;
  logLevel: string;
  consoleLogDir?: string;
  seedDir?: string;
  downloadDir?: string;
  allowEmpty?: boolean;
  instance?: string;
  settle: string;
  rescan: string;
  allowHostPath: string[];
  reservedHostPorts: string;
  gitPull?: string;
  drift?: "repair" | "report";
  /** HOST:PORT for /metrics, /healthz, /readyz; "0": off; undefined: the default (./controller-metrics.ts). */
  metricsAddress?: string;
}

/**
 * One controller per manifest directory: a lock the kernel holds for this process's lifetime
 * and drops when it dies (src/store/locks.ts), keyed on the directory's real path whatever
 * --status-dir says. `<dataDir>/controller.pid` only says who holds it.
 */
export async function acquireLock(dir: string, dataDir: string): Promise<() => Promise<void>> {
  const real = fs.realpathSync(dir);
  const { holdLock, LockHeldError } = await import("../../store/locks.js");
  const pidFile = path.join(dataDir, "controller.pid");
  let lock;
  try {
    lock = await holdLock("controller", real);
  } catch (error) {
    if (!(error instanceof LockHeldError)) throw error;
    const holder = /^\d+$/.test(readQuietly(pidFile)) ? ` (pid ${readQuietly(pidFile)})` : "";
    throw new CliError(`another kvmctl controller${holder} is already running for the manifest directory ${real}`);
  }
  try {
    const { ensureDataDir } = await import("../../store/disk-cache.js");
    const { replaceFile } = await import("../../store/safe-write.js");
    ensureDataDir(path.dirname(dataDir));
    await replaceFile(pidFile, Buffer.from(`${process.pid}\n`), { any: true });
  } catch {
    // a read-only data directory: the lock holds all the same
  }
  return () => lock.release();
}

/** "22,2222" → [22, 2222]; "none" (or nothing) → []. */
function parsePortList(text: string, flag: string): number[] {
  if (text.trim() === "" || text.trim() === "none") return [];
  return text.split(",").map((part) => {
    const port = Number(part.trim());
    if (!/^\d+$/.test(part.trim()) || port < 1 || port > 65535) throw new UsageError(`${flag}: ${JSON.stringify(part)} is not a port (1-65535); give a comma-separated list, or none`);
    return port;
  });
}

/**
 * The git checkout holding the manifest directory, if any (revisions in status; --git-pull
 * pulls it), with a warning when status blocks are not hidden from git there.
 */
async function gitSource(dir: string, gitPull: string | undefined, logger: { warn(o: object, m: string): void }) {
  const { GitCheckout } = await import("../../gitops/checkout.js");
  const checkout = await GitCheckout.open(dir);
  if (!checkout) {
    if (gitPull !== undefined) throw new UsageError(`--git-pull: ${dir} is not in a git checkout`);
    return undefined;
  }
  const statusFilter = await checkout.statusFilterInstalled();
  if (!statusFilter) logger.warn({ checkout: checkout.top }, "the manifest directory is a git checkout without kvmctl's status filter: git sees the status blocks the controller writes as changes (and `git pull` refuses); run `kvmctl git-setup` once");
  const pullIntervalMs = gitPull === undefined ? undefined : parseDuration(gitPull, "--git-pull");
  return { checkout, statusFilter, ...(pullIntervalMs ? { pullIntervalMs } : {}) };
}

function readQuietly(file: string): string {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch {
    return "";
  }
}

export async function runController(ctx: CliContext, options: ControllerOptions): Promise<void> {
  const concurrency = Number(options.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError("--concurrency must be an integer from 1 to 64");
  const resyncMs = parseDuration(options.resync, "--resync");
  const firewallCheckMs = parseDuration(options.firewallCheck, "--firewall-check");
  const settleMs = parseDuration(options.settle, "--settle");
  const rescanMs = parseDuration(options.rescan, "--rescan");
  if (options.gitPull !== undefined) parseDuration(options.gitPull, "--git-pull");
  const firewallBackend = options.firewallBackend;
  if (firewallBackend !== "auto" && firewallBackend !== "nftables" && firewallBackend !== "iptables") throw new UsageError("--firewall-backend must be auto, nftables or iptables");
  const { hostPathPolicy, describeHostPathPolicy, HostPathFlagError } = await import("../../controllers/host-path-policy.js");
  let hostPaths;
  try {
    hostPaths = hostPathPolicy(options.allowHostPath);
  } catch (error) {
    if (error instanceof HostPathFlagError) throw new UsageError(error.message);
    throw error;
  }
  const reservedHostPorts = parsePortList(options.reservedHostPorts, "--reserved-host-ports");
  // metrics and health: parsed before anything starts; instruments only when served
  const observability = await (await import("./controller-metrics.js")).prepareObservability(options.metricsAddress, options.once === true);
  if (!fs.existsSync(ctx.dir)) throw new CliError(`manifest directory ${ctx.dir} does not exist`);
  const store = await ctx.openStore("control");
  const release = await acquireLock(ctx.dir, store.dataDir);
  const [{ pino }, { Manager }, { hostPorts }] = await Promise.all([import("pino"), import("../../controllers/manager.js"), import("../../adapters/host-ports.js")]);
  const logger = pino({ level: options.logLevel, base: { pid: process.pid, dir: store.dir } });
  const consoleLogDir = options.consoleLogDir ?? process.env.KVMCTL_CONSOLE_LOG_DIR ?? "/var/log/kvmctl/console";
  fs.mkdirSync(consoleLogDir, { recursive: true });
  const { ensureInstance } = await import("../../store/instance.js");
  let instance: string;
  try {
    instance = await ensureInstance(store.dir, store.stateRoot, options.instance);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const git = await gitSource(ctx.dir, options.gitPull, logger);
  const seedDir = path.resolve(options.seedDir ?? process.env.KVMCTL_SEED_DIR ?? "/var/lib/kvmctl/seeds");
  // One directory per instance: two controllers never write (or truncate) the same partial file.
  const downloadDir = path.join(path.resolve(options.downloadDir ?? process.env.KVMCTL_DOWNLOAD_DIR ?? "/var/lib/kvmctl/downloads"), instance);
  const ports = hostPorts({ uri: ctx.connect, dataDir: store.dataDir, downloadDir, ...(observability.metrics ? { virshObserver: observability.metrics.virsh, readingObserver: observability.metrics.reading } : {}) });
  const manager = new Manager({
    store,
    ports,
    logger,
    settings: {
      instance,
      defaultDomainType: options.defaultDomainType ?? (process.env.KVMCTL_DEFAULT_DOMAIN_TYPE === "qemu" ? "qemu" : "kvm"),
      consoleLogDir,
      seedDir,
    },
    concurrency,
    resyncMs,
    firewallBackend,
    firewallCheckMs,
    prune: { settleMs, allowEmpty: options.allowEmpty === true },
    rescanMs,
    hostPaths,
    reservedHostPorts,
    ...(git ? { git } : {}),
    ...(options.drift ? { drift: options.drift } : {}),
    ...(observability.metrics ? { metrics: observability.metrics.manager } : {}),
  });
  try {
    if (options.once) {
      if (git?.pullIntervalMs) {
        const pulled = await manager.requestPull("startup");
        if (pulled instanceof Error) logger.warn({ reason: pulled.reason }, `git pull failed: ${pulled.message}`);
      }
      const reports = await manager.runOnce();
      const notReady = reports.filter((r) => !r.ready);
      for (const r of notReady) logger.warn({ object: r.key, outcome: r.outcome, message: r.error instanceof Error ? r.error.message : undefined }, "not ready");
      const firewall = manager.services.firewall.state();
      logger.info({ instance, objects: reports.length, notReady: notReady.length, virshProcesses: ports.hypervisor.virsh.spawned, firewall: firewall.backend, firewallRules: firewall.total }, "pass complete");
      if (notReady.length) throw new ExitCode(1);
      return;
    }
    logger.info({ instance, uri: ctx.connect, concurrency, resyncMs, hostPaths: describeHostPathPolicy(hostPaths), reservedHostPorts }, "controller starting");
    let stopping = false;
    // SIGHUP (`kvmctl pull`, `kvmctl reconcile --pull`): pull the checkout now, and look at
    // everything. Registered before the start: its default would end the process.
    let started = false;
    process.on("SIGHUP", () => {
      if (stopping) return;
      logger.info({ signal: "SIGHUP" }, git ? "pulling the checkout and resyncing" : "resyncing (the manifest directory is not in a git checkout)");
      const after = git ? manager.requestPull("SIGHUP").then(() => undefined) : Promise.resolve();
      void after.then(() => (started ? manager.resyncAll() : undefined)).catch((error: unknown) => logger.error({ err: error }, "resync failed"));
    });
    await observability.start(manager, logger, store);
    await manager.start();
    started = true;
    await new Promise<void>((resolve) => {
      // Listeners stay registered: a second signal during the drain must not kill us
      // half-way (systemd escalates to SIGKILL after TimeoutStopSec anyway).
      const stop = (signal: string) => {
        if (stopping) return logger.info({ signal }, "already stopping");
        stopping = true;
        logger.info({ signal }, "stopping: finishing in-flight work");
        resolve();
      };
      process.on("SIGTERM", () => stop("SIGTERM"));
      process.on("SIGINT", () => stop("SIGINT"));
    });
    await manager.stop();
    logger.info({}, "controller stopped");
  } finally {
    await observability.stop(logger);
    await ports.hypervisor.close();
    await release();
  }
}

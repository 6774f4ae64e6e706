// `kvmctl controller`: the long-running reconciler (what the systemd service runs), or one
// full pass with --once. One controller per manifest directory, enforced by a lock file.
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
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Takes `<dataDir>/controller.lock` (O_EXCL); a stale lock of a dead process is taken over. */
export function acquireLock(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, "controller.lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
      return () => {
        if (fs.readFileSync(file, "utf8").trim() === String(process.pid)) fs.rmSync(file, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const pid = Number(fs.readFileSync(file, "utf8").trim());
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
        throw new CliError(`another kvmctl controller (pid ${pid}) is already running for this manifest directory (lock ${file})`);
      }
      fs.rmSync(file, { force: true });
    }
  }
  throw new CliError(`could not take the controller lock ${file}`);
}

export async function runController(ctx: CliContext, options: ControllerOptions): Promise<void> {
  const concurrency = Number(options.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError("--concurrency must be an integer from 1 to 64");
  const resyncMs = parseDuration(options.resync, "--resync");
  const firewallCheckMs = parseDuration(options.firewallCheck, "--firewall-check");
  const firewallBackend = options.firewallBackend;
  if (firewallBackend !== "auto" && firewallBackend !== "nftables" && firewallBackend !== "iptables") throw new UsageError("--firewall-backend must be auto, nftables or iptables");
  if (!fs.existsSync(ctx.dir)) throw new CliError(`manifest directory ${ctx.dir} does not exist`);
  const store = await ctx.openStore();
  const release = acquireLock(store.dataDir);
  const [{ pino }, { Manager }, { hostPorts }] = await Promise.all([import("pino"), import("../../controllers/manager.js"), import("../../adapters/host-ports.js")]);
  const logger = pino({ level: options.logLevel, base: { pid: process.pid, dir: store.dir } });
  const consoleLogDir = options.consoleLogDir ?? process.env.KVMCTL_CONSOLE_LOG_DIR ?? "/var/log/kvmctl/console";
  fs.mkdirSync(consoleLogDir, { recursive: true });
  const ports = hostPorts({ uri: ctx.connect });
  const manager = new Manager({
    store,
    ports,
    logger,
    settings: {
      defaultDomainType: options.defaultDomainType ?? (process.env.KVMCTL_DEFAULT_DOMAIN_TYPE === "qemu" ? "qemu" : "kvm"),
      consoleLogDir,
    },
    concurrency,
    resyncMs,
    firewallBackend,
    firewallCheckMs,
  });
  try {
    if (options.once) {
      const reports = await manager.runOnce();
      const notReady = reports.filter((r) => !r.ready);
      for (const r of notReady) logger.warn({ object: r.key, outcome: r.outcome, message: r.error instanceof Error ? r.error.message : undefined }, "not ready");
      const firewall = manager.services.firewall.state();
      logger.info({ objects: reports.length, notReady: notReady.length, virshProcesses: ports.hypervisor.virsh.spawned, firewall: firewall.backend, firewallRules: firewall.total }, "pass complete");
      if (notReady.length) throw new ExitCode(1);
      return;
    }
    logger.info({ uri: ctx.connect, concurrency, resyncMs }, "controller starting");
    await manager.start();
    await new Promise<void>((resolve) => {
      let stopping = false;
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
    await ports.hypervisor.close();
    release();
  }
}

// The QemuConfig port on the host's files: libvirt's /etc/libvirt/qemu.conf and the SASL
// application config QEMU reads from its vnc_sasl_dir. Read on every question (two small
// files, asked only for VMs with auth: sasl), so a fixed host is seen without a restart.
import fs from "node:fs";
import path from "node:path";
import { DEFAULT_SASL_DIR, parseLibvirtConf, vncAuthOfCommandLine, vncSaslSupport, type VncAuth, type VncSaslSupport } from "../libvirt/qemu-conf.js";
import type { QemuConfig } from "../ports/index.js";

export const SYSTEM_QEMU_CONF = "/etc/libvirt/qemu.conf";
/** Where the system QEMU driver keeps each running domain's pid file (`<name>.pid`). */
export const SYSTEM_QEMU_RUN_DIR = "/run/libvirt/qemu";

async function readOrUndefined(file: string): Promise<string | undefined> {
  try {
    return await fs.promises.readFile(file, "utf8");
  } catch {
    return undefined;
  }
}

/** USER_HZ: the unit of /proc/<pid>/stat's start time on every Linux ABI Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

/** The libvirt daemons that read qemu.conf (monolithic libvirtd, modular virtqemud), with when they started. */
async function libvirtDaemons(): Promise<{ pid: number; name: string; startedAtMs: number }[]> {
  const bootTime = Number(/^btime (\d+)$/m.exec((await readOrUndefined("/proc/stat")) ?? "")?.[1]);
  if (!Number.isFinite(bootTime)) return [];
  const daemons: { pid: number; name: string; startedAtMs: number }[] = [];
  for (const entry of await fs.promises.readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readOrUndefined(`/proc/${entry}/stat`);
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    const m = stat ? /^\d+ \((.*)\) (.*)$/s.exec(stat) : null;
    if (!m || (m[1] !== "libvirtd" && m[1] !== "virtqemud")) continue;
    const startTicks = Number(m[2]!.split(" ")[19]);
    daemons.push({ pid: Number(entry), name: m[1], startedAtMs: (bootTime + startTicks / CLOCK_TICKS_PER_SECOND) * 1000 });
  }
  return daemons;
}

export class HostQemuConfig implements QemuConfig {
  constructor(
    private readonly qemuConf = SYSTEM_QEMU_CONF,
    private readonly runDir = SYSTEM_QEMU_RUN_DIR,
  ) {}

  async vncSasl(): Promise<VncSaslSupport> {
    const text = await readOrUndefined(this.qemuConf);
    if (text === undefined) return { usable: false, reason: `${this.qemuConf} cannot be read` };
    const settings = parseLibvirtConf(text);
    const dir = settings.get("vnc_sasl_dir");
    const saslConf = path.join(typeof dir === "string" && dir !== "" ? dir : DEFAULT_SASL_DIR, "qemu.conf");
    const support = vncSaslSupport(settings, await readOrUndefined(saslConf), saslConf);
    if (!support.usable) return support;
    // libvirtd reads qemu.conf only when it starts: a newer file is not what it runs with.
    const changedAt = (await fs.promises.stat(this.qemuConf)).mtimeMs;
    // (The start time is known to a second: /proc/stat's boot time has no fraction.)
    const stale = (await libvirtDaemons()).find((d) => d.startedAtMs + 1000 < changedAt);
    if (stale) return { usable: false, reason: `${this.qemuConf} changed after ${stale.name} (pid ${stale.pid}) started, so it does not run with it yet: restart ${stale.name}` };
    return support;
  }

  async runningVncAuth(name: string): Promise<VncAuth | undefined> {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) return undefined;
    const pid = Number((await readOrUndefined(path.join(this.runDir, `${name}.pid`)))?.trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const args = (await readOrUndefined(`/proc/${pid}/cmdline`))?.split("\0") ?? [];
    // A stale pid file whose pid was reused: the process must be this domain's QEMU.
    const guest = args[args.indexOf("-name") + 1] ?? "";
    if (!args.includes("-name") || !(guest === name || guest.startsWith(`guest=${name},`) || guest === `guest=${name}`)) return undefined;
    return vncAuthOfCommandLine(args);
  }
}

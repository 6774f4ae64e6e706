// The two firewall backends on the host: nftables (`nft -j`) and iptables (`iptables-restore`
// / `iptables-save`, and ip6tables for IPv6 rules). Each observes what kvmctl's own table or
// chains hold and replaces them in one transaction per table. Nothing else is read or written.
import fs from "node:fs";
import { execa } from "execa";
import ipaddr from "ipaddr.js";
import { IPT_TABLES, iptablesChains, iptablesPrefixFor, LEGACY_IPT_CHAINS, readIptablesSave, restoreInput, rulesFor, ownersOf, type IptablesChains, type ObservedIptables } from "../firewall/iptables.js";
import { LEGACY_NFT_TABLE, NFT_FAMILY, nftTableFor, nftTransaction, readNftTable } from "../firewall/nftables.js";
import type { HostListener, Rule } from "../firewall/rules.js";
import type { BackendName, FirewallBackend, FirewallHost, FirewallWatch, FirewallWatchHandlers, Observed, ScratchFiles } from "../ports/index.js";
import { NftMonitor } from "./nft-monitor.js";

const TIMEOUT = 30_000;

async function run(file: string, args: string[], input?: string): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const result = await execa(file, args, { reject: false, timeout: TIMEOUT, ...(input !== undefined ? { input } : {}) });
  return { ok: result.exitCode === 0, stdout: String(result.stdout), stderr: String(result.stderr) };
}

export class NftBackend implements FirewallBackend {
  readonly name = "nftables" as const;

  constructor(
    private readonly scratch: ScratchFiles,
    /** This instance's table (`inet kvmctl-<instance>`). */
    readonly table: string,
  ) {}

  placed(rules: readonly Rule[]): readonly Rule[] {
    return rules; // table inet: one rule serves both families
  }

  private async list(table: string) {
    const result = await run("nft", ["-j", "list", "table", NFT_FAMILY, table]);
    if (!result.ok) {
      if (/No such file or directory|does not exist/i.test(result.stderr)) return readNftTable(undefined);
      throw new Error(`nft list table ${NFT_FAMILY} ${table}: ${result.stderr.trim()}`);
    }
    return readNftTable(result.stdout);
  }

  observe(): Promise<Observed> {
    return this.list(this.table);
  }

  async apply(rules: readonly Rule[]): Promise<void> {
    const error = await this.transaction(rules, false);
    if (error !== undefined) throw new Error(`nft -j -f: ${error}`);
  }

  check(rules: readonly Rule[]): Promise<string | undefined> {
    return this.transaction(rules, true);
  }

  /** libnftables JSON from a file (nft cannot read a socket as /dev/stdin); one transaction: all of it or nothing. `--check` applies nothing. */
  private async transaction(rules: readonly Rule[], checkOnly: boolean): Promise<string | undefined> {
    const file = await this.scratch.write("ruleset.json", JSON.stringify(nftTransaction(rules, this.table)));
    try {
      const result = await run("nft", [...(checkOnly ? ["--check"] : []), "-j", "-f", file]);
      return result.ok ? undefined : result.stderr.trim() || "nft failed";
    } finally {
      await this.scratch.remove(file);
    }
  }

  async legacy(): Promise<{ where: string; owners: string[] } | undefined> {
    const observed = await this.list(LEGACY_NFT_TABLE);
    return observed.present ? { where: `nftables table ${NFT_FAMILY} ${LEGACY_NFT_TABLE}`, owners: observed.rules.map((r) => r.owner) } : undefined;
  }

  async removeLegacy(): Promise<void> {
    const result = await run("nft", ["delete", "table", NFT_FAMILY, LEGACY_NFT_TABLE]);
    if (!result.ok && !/No such file or directory|does not exist/i.test(result.stderr)) throw new Error(`nft delete table ${NFT_FAMILY} ${LEGACY_NFT_TABLE}: ${result.stderr.trim()}`);
  }

  /** `nft -j monitor` (./nft-monitor.ts): changes to this instance's table, as they are committed. */
  watch(handlers: FirewallWatchHandlers): FirewallWatch {
    return new NftMonitor({ table: { family: NFT_FAMILY, name: this.table }, handlers }).start();
  }
}

export class IptablesBackend implements FirewallBackend {
  readonly name = "iptables" as const;

  /** `chains`: this instance's (`KVMCTL-<instance>-*`). */
  constructor(readonly chains: IptablesChains) {}

  placed(rules: readonly Rule[]): Rule[] {
    // A rule for both families is one in iptables and one in ip6tables.
    return [...rulesFor(rules, "ip"), ...rulesFor(rules, "ip6")];
  }

  private async save(family: "ip" | "ip6", table: string, chains: IptablesChains): Promise<ObservedIptables> {
    const tool = family === "ip" ? "iptables-save" : "ip6tables-save";
    const result = await run(tool, ["-t", table]);
    if (!result.ok) throw new Error(`${tool} -t ${table}: ${result.stderr.trim()}`);
    return readIptablesSave(table as "nat" | "filter", result.stdout, chains);
  }

  private families(): { family: "ip" | "ip6"; table: "nat" | "filter" }[] {
    return [...IPT_TABLES.map((table) => ({ family: "ip" as const, table })), { family: "ip6" as const, table: "filter" as const }];
  }

  private async read(chains: IptablesChains) {
    return Promise.all(this.families().map(async ({ family, table }) => ({ family, table, observed: await this.save(family, table, chains) })));
  }

  async observe(): Promise<Observed> {
    const parts = await this.read(this.chains);
    const lines = parts.flatMap((p) => p.observed.lines.map((l) => `${p.family}/${p.table} ${l}`));
    const jumps = parts.flatMap((p) => [...p.observed.jumps].map((j) => `${p.family}/${j}`)).sort();
    return { fingerprint: JSON.stringify({ lines, jumps }), rules: ownersOf(parts.flatMap((p) => p.observed.lines)) };
  }

  private async restore(rules: readonly Rule[], chains: IptablesChains, testOnly = false): Promise<void> {
    for (const { family, table } of this.families()) {
      const observed = await this.save(family, table, chains);
      const input = restoreInput(table, rulesFor(rules, family), observed, chains);
      const tool = family === "ip" ? "iptables-restore" : "ip6tables-restore";
      const result = await run(tool, [...(testOnly ? ["--test"] : []), "--noflush"], input);
      if (!result.ok) throw new Error(`${tool} --noflush (${table}): ${result.stderr.trim()}`);
    }
  }

  async check(rules: readonly Rule[]): Promise<string | undefined> {
    try {
      await this.restore(rules, this.chains, true);
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  }

  apply(rules: readonly Rule[]): Promise<void> {
    return this.restore(rules, this.chains);
  }

  async legacy(): Promise<{ where: string; owners: string[] } | undefined> {
    const parts = await this.read(LEGACY_IPT_CHAINS);
    if (!parts.some((p) => p.observed.chains.size || p.observed.jumps.size)) return undefined;
    return { where: "iptables chains KVMCTL-*", owners: ownersOf(parts.flatMap((p) => p.observed.lines)).map((r) => r.owner) };
  }

  removeLegacy(): Promise<void> {
    return this.restore([], LEGACY_IPT_CHAINS); // no rules: the chains and their jumps go
  }
}

/** The host's firewall tools and the user QEMU runs as (for passt's egress rules). */
export class HostFirewall implements FirewallHost {
  constructor(
    private readonly scratch: ScratchFiles,
    private readonly files = { qemuConf: "/etc/libvirt/qemu.conf", passwd: "/etc/passwd" },
    private readonly procNet = "/proc/net",
  ) {}

  /** nftables when `nft` can list tables here, else iptables when it works, else none; named for `instance`. */
  async detect(preference: "auto" | BackendName, instance: string): Promise<FirewallBackend | undefined> {
    const nftWorks = async () => (await run("nft", ["list", "tables"]).catch(() => ({ ok: false }))).ok;
    const iptablesWorks = async () => (await run("iptables-save", ["-t", "filter"]).catch(() => ({ ok: false }))).ok;
    const nft = () => new NftBackend(this.scratch, nftTableFor(instance));
    const iptables = () => new IptablesBackend(iptablesChains(iptablesPrefixFor(instance)));
    if (preference === "nftables") return (await nftWorks()) ? nft() : undefined;
    if (preference === "iptables") return (await iptablesWorks()) ? iptables() : undefined;
    if (await nftWorks()) return nft();
    if (await iptablesWorks()) return iptables();
    return undefined;
  }

  /** qemu.conf's `user`, else Debian's libvirt-qemu; undefined when unknown. */
  qemuUid(): number | undefined {
    return qemuUid(this.files.qemuConf, this.files.passwd);
  }

  async listening(): Promise<HostListener[]> {
    const found: HostListener[] = [];
    for (const [file, protocol, state] of [["tcp", "tcp", "0A"], ["tcp6", "tcp", "0A"], ["udp", "udp", "07"], ["udp6", "udp", "07"]] as const) {
      let text: string;
      try {
        text = await fs.promises.readFile(`${this.procNet}/${file}`, "utf8");
      } catch {
        continue; // no IPv6 here
      }
      found.push(...parseProcNet(text, protocol, state));
    }
    return found;
  }
}

/**
 * Bound sockets from a /proc/net/{tcp,udp}[6] table: rows in `state` (0A: TCP LISTEN; 07: an
 * unconnected UDP socket). Addresses are hex, each 32-bit word in host (little-endian) order.
 */
export function parseProcNet(text: string, protocol: "tcp" | "udp", state: string): HostListener[] {
  const out: HostListener[] = [];
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || fields[3] !== state) continue;
    const [hexAddress, hexPort] = fields[1]!.split(":") as [string, string];
    const words = hexAddress.match(/.{8}/g) ?? [];
    const bytes = words.flatMap((w) => [w.slice(6, 8), w.slice(4, 6), w.slice(2, 4), w.slice(0, 2)].map((b) => parseInt(b, 16)));
    const address =
      bytes.length === 4
        ? bytes.join(".")
        : compressIpv6(Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16)));
    out.push({ protocol, address, port: parseInt(hexPort, 16) });
  }
  return out;
}

/** "0:0:0:0:0:0:0:1" → "::1"; an IPv4-mapped address as its IPv4 form (how it would match a forward). */
function compressIpv6(groups: string[]): string {
  const address = ipaddr.IPv6.parse(groups.join(":"));
  return address.isIPv4MappedAddress() ? address.toIPv4Address().toString() : address.toString();
}

/**
 * The uid and gid QEMU runs as: qemu.conf's `user` and `group`, else Debian's libvirt-qemu and
 * that user's primary group; undefined when the user is unknown.
 */
export function qemuUser(qemuConf = "/etc/libvirt/qemu.conf", passwd = "/etc/passwd", groups = "/etc/group"): { uid: number; gid: number } | undefined {
  let conf = "";
  try {
    conf = fs.readFileSync(qemuConf, "utf8");
  } catch {
    // no qemu.conf: the defaults
  }
  const uid = qemuUid(qemuConf, passwd);
  if (uid === undefined) return undefined;
  // Debian's libvirt runs QEMU as group libvirt-qemu when qemu.conf names none.
  const group = /^\s*group\s*=\s*"([^"]+)"/m.exec(conf)?.[1] ?? "libvirt-qemu";
  if (/^\+?\d+$/.test(group)) return { uid, gid: Number(group.replace("+", "")) };
  let gid: string | undefined;
  try {
    gid = fs.readFileSync(groups, "utf8").split("\n").find((l) => l.split(":")[0] === group)?.split(":")[2];
  } catch {
    // no group file: the user's primary group
  }
  try {
    gid ??= fs.readFileSync(passwd, "utf8").split("\n").find((l) => l.split(":")[2] === String(uid))?.split(":")[3];
  } catch {
    // nothing more to learn
  }
  return { uid, gid: gid !== undefined && /^\d+$/.test(gid) ? Number(gid) : uid };
}

/** The uid QEMU runs as: qemu.conf's `user`, else Debian's libvirt-qemu; undefined when unknown. */
export function qemuUid(qemuConf = "/etc/libvirt/qemu.conf", passwd = "/etc/passwd"): number | undefined {
  let user = "libvirt-qemu";
  try {
    const configured = /^\s*user\s*=\s*"([^"]+)"/m.exec(fs.readFileSync(qemuConf, "utf8"))?.[1];
    if (configured) user = configured;
  } catch {
    // no qemu.conf: the default user
  }
  if (/^\+?\d+$/.test(user)) return Number(user.replace("+", ""));
  try {
    const line = fs.readFileSync(passwd, "utf8").split("\n").find((l) => l.split(":")[0] === user);
    const uid = line?.split(":")[2];
    return uid !== undefined && /^\d+$/.test(uid) ? Number(uid) : undefined;
  } catch {
    return undefined;
  }
}

// The two firewall backends on the host: nftables (`nft -j`) and iptables (`iptables-restore`
// / `iptables-save`, and ip6tables for IPv6 rules). Each observes what kvmctl's own table or
// chains hold and replaces them in one transaction per table. Nothing else is read or written.
import fs from "node:fs";
import { execa } from "execa";
import { IPT_TABLES, readIptablesSave, restoreInput, rulesFor, ownersOf, type ObservedIptables } from "../firewall/iptables.js";
import { NFT_FAMILY, NFT_TABLE, nftTransaction, readNftTable } from "../firewall/nftables.js";
import type { Rule } from "../firewall/rules.js";
import type { BackendName, FirewallBackend, FirewallHost, Observed, ScratchFiles } from "../ports/index.js";

const TIMEOUT = 30_000;

async function run(file: string, args: string[], input?: string): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const result = await execa(file, args, { reject: false, timeout: TIMEOUT, ...(input !== undefined ? { input } : {}) });
  return { ok: result.exitCode === 0, stdout: String(result.stdout), stderr: String(result.stderr) };
}

export class NftBackend implements FirewallBackend {
  readonly name = "nftables" as const;

  constructor(private readonly scratch: ScratchFiles) {}

  placed(rules: readonly Rule[]): readonly Rule[] {
    return rules; // table inet: one rule serves both families
  }

  async observe(): Promise<Observed> {
    const result = await run("nft", ["-j", "list", "table", NFT_FAMILY, NFT_TABLE]);
    if (!result.ok) {
      if (/No such file or directory|does not exist/i.test(result.stderr)) return readNftTable(undefined);
      throw new Error(`nft list table ${NFT_FAMILY} ${NFT_TABLE}: ${result.stderr.trim()}`);
    }
    return readNftTable(result.stdout);
  }

  async apply(rules: readonly Rule[]): Promise<void> {
    // libnftables JSON from a file (nft cannot read a socket as /dev/stdin); one
    // transaction: all of it or nothing.
    const file = await this.scratch.write("ruleset.json", JSON.stringify(nftTransaction(rules)));
    try {
      const result = await run("nft", ["-j", "-f", file]);
      if (!result.ok) throw new Error(`nft -j -f: ${result.stderr.trim()}`);
    } finally {
      await this.scratch.remove(file);
    }
  }
}

export class IptablesBackend implements FirewallBackend {
  readonly name = "iptables" as const;

  placed(rules: readonly Rule[]): Rule[] {
    // A rule for both families is one in iptables and one in ip6tables.
    return [...rulesFor(rules, "ip"), ...rulesFor(rules, "ip6")];
  }

  private async save(family: "ip" | "ip6", table: string): Promise<ObservedIptables> {
    const tool = family === "ip" ? "iptables-save" : "ip6tables-save";
    const result = await run(tool, ["-t", table]);
    if (!result.ok) throw new Error(`${tool} -t ${table}: ${result.stderr.trim()}`);
    return readIptablesSave(table as "nat" | "filter", result.stdout);
  }

  private async families(): Promise<{ family: "ip" | "ip6"; table: "nat" | "filter" }[]> {
    return [
      ...IPT_TABLES.map((table) => ({ family: "ip" as const, table })),
      { family: "ip6" as const, table: "filter" as const },
    ];
  }

  async observe(): Promise<Observed> {
    const parts = await Promise.all((await this.families()).map(async ({ family, table }) => ({ family, table, observed: await this.save(family, table) })));
    const lines = parts.flatMap((p) => p.observed.lines.map((l) => `${p.family}/${p.table} ${l}`));
    const jumps = parts.flatMap((p) => [...p.observed.jumps].map((j) => `${p.family}/${j}`)).sort();
    return { fingerprint: JSON.stringify({ lines, jumps }), rules: ownersOf(parts.flatMap((p) => p.observed.lines)) };
  }

  async apply(rules: readonly Rule[]): Promise<void> {
    for (const { family, table } of await this.families()) {
      const observed = await this.save(family, table);
      const input = restoreInput(table, rulesFor(rules, family), observed);
      const tool = family === "ip" ? "iptables-restore" : "ip6tables-restore";
      const result = await run(tool, ["--noflush"], input);
      if (!result.ok) throw new Error(`${tool} --noflush (${table}): ${result.stderr.trim()}`);
    }
  }
}

/** The host's firewall tools and the user QEMU runs as (for passt's egress rules). */
export class HostFirewall implements FirewallHost {
  constructor(
    private readonly scratch: ScratchFiles,
    private readonly files = { qemuConf: "/etc/libvirt/qemu.conf", passwd: "/etc/passwd" },
  ) {}

  /** nftables when `nft` can list tables here, else iptables when it works, else none. */
  async detect(preference: "auto" | BackendName): Promise<FirewallBackend | undefined> {
    const nftWorks = async () => (await run("nft", ["list", "tables"]).catch(() => ({ ok: false }))).ok;
    const iptablesWorks = async () => (await run("iptables-save", ["-t", "filter"]).catch(() => ({ ok: false }))).ok;
    if (preference === "nftables") return (await nftWorks()) ? new NftBackend(this.scratch) : undefined;
    if (preference === "iptables") return (await iptablesWorks()) ? new IptablesBackend() : undefined;
    if (await nftWorks()) return new NftBackend(this.scratch);
    if (await iptablesWorks()) return new IptablesBackend();
    return undefined;
  }

  /** qemu.conf's `user`, else Debian's libvirt-qemu; undefined when unknown. */
  qemuUid(): number | undefined {
    return qemuUid(this.files.qemuConf, this.files.passwd);
  }
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

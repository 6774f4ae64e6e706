// iptables backend (pure), for hosts without nftables: a controller instance's own chains
// (KVMCTL-<instance>-*), each jumped to from its built-in chain, replaced atomically per table
// with `iptables-restore --noflush`, and read back from `iptables-save`. Each instance has its
// own chains: one's sync never touches another's rules.
import { createHash } from "node:crypto";
import type { Chain, Rule } from "./rules.js";

export type IptablesTable = "nat" | "filter";

interface ChainSpec {
  table: IptablesTable;
  builtin: string;
  name: string;
}

export type IptablesChains = Record<Chain, ChainSpec>;

/**
 * The chains under a prefix: `KVMCTL-<instance>` for an instance (kept under iptables' 28
 * characters: a longer instance name is replaced by a hash of it), plain `KVMCTL` for the
 * chains of kvmctl before controller instances.
 */
export function iptablesChains(prefix: string): IptablesChains {
  return {
    prerouting: { table: "nat", builtin: "PREROUTING", name: `${prefix}-PREROUTING` },
    "output-nat": { table: "nat", builtin: "OUTPUT", name: `${prefix}-OUTPUT` },
    postrouting: { table: "nat", builtin: "POSTROUTING", name: `${prefix}-POSTROUTING` },
    input: { table: "filter", builtin: "INPUT", name: `${prefix}-INPUT` },
    forward: { table: "filter", builtin: "FORWARD", name: `${prefix}-FORWARD` },
    output: { table: "filter", builtin: "OUTPUT", name: `${prefix}-OUTPUT` },
  };
}

/** The chain prefix of a controller instance. */
export function iptablesPrefixFor(instance: string): string {
  const tag = /^[a-z0-9]{1,9}$/.test(instance) ? instance : createHash("sha256").update(instance).digest("hex").slice(0, 9);
  return `KVMCTL-${tag}`;
}

/** The chains of kvmctl before controller instances (adopted and removed: src/controllers/firewall). */
export const LEGACY_IPT_CHAINS = iptablesChains("KVMCTL");
/** Chains the pure functions use when not told: the legacy names (tests). */
export const IPT_CHAINS = LEGACY_IPT_CHAINS;

export const IPT_TABLES: IptablesTable[] = ["nat", "filter"];
const chainsOf = (table: IptablesTable, chains: IptablesChains) => Object.values(chains).filter((c) => c.table === table);

/** Arguments of one rule after `-A CHAIN` (each a separate token). */
export function ruleArgs(rule: Rule): string[] {
  const args: string[] = [];
  if (rule.iif) args.push("-i", rule.iif);
  if (rule.oif) args.push("-o", rule.oif);
  if (rule.saddr) args.push("-s", rule.saddr);
  if (rule.daddr) args.push("-d", rule.daddr);
  if (rule.notDaddr) args.push("!", "-d", rule.notDaddr);
  if (rule.protocol) args.push("-p", rule.protocol);
  if (rule.daddrLocal) args.push("-m", "addrtype", "--dst-type", "LOCAL");
  if (rule.protocol && rule.dports?.length) {
    if (rule.dports.length === 1) args.push("-m", rule.protocol, "--dport", String(rule.dports[0]));
    else args.push("-m", "multiport", "--dports", rule.dports.join(","));
  }
  if (rule.skuid !== undefined) args.push("-m", "owner", "--uid-owner", String(rule.skuid));
  if (rule.established) args.push("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED");
  if (rule.dnatted) args.push("-m", "conntrack", "--ctstate", "DNAT");
  args.push("-m", "comment", "--comment", rule.owner);
  const v = rule.verdict;
  if (v.type === "dnat") args.push("-j", "DNAT", "--to-destination", `${v.addr}:${v.port}`);
  else args.push("-j", v.type.toUpperCase());
  return args;
}

/** Which rules go to iptables (IPv4) or ip6tables. NAT is IPv4 only. */
export function rulesFor(rules: readonly Rule[], family: "ip" | "ip6"): Rule[] {
  return rules.filter((r) => (r.family ?? family) === family && !(family === "ip6" && IPT_CHAINS[r.chain].table === "nat"));
}

/** What `iptables-save -t TABLE` shows of kvmctl: its chains' rules and the jumps to them. */
export interface ObservedIptables {
  /** Chains that exist, by table. */
  chains: Set<string>;
  /** Built-in chains that jump to ours ("nat/PREROUTING"). */
  jumps: Set<string>;
  /** Rule lines of our chains, in order, as iptables-save prints them. */
  lines: string[];
}

export function readIptablesSave(table: IptablesTable, text: string, chainSet: IptablesChains = IPT_CHAINS): ObservedIptables {
  const ours = new Set(chainsOf(table, chainSet).map((c) => c.name));
  const chains = new Set<string>();
  const jumps = new Set<string>();
  const lines: string[] = [];
  for (const line of text.split("\n")) {
    const declared = /^:(\S+)/.exec(line)?.[1];
    if (declared && ours.has(declared)) chains.add(declared);
    const appended = /^-A (\S+) (.*)$/.exec(line);
    if (!appended) continue;
    const [, chain, rest] = appended;
    if (ours.has(chain!)) lines.push(line);
    else {
      // Only jumps to this instance's chains: another instance's are none of its business.
      const target = /^-j (\S+)$/.exec(rest!.trim())?.[1];
      if (target && chainsOf(table, chainSet).some((c) => c.name === target && c.builtin === chain)) jumps.add(`${table}/${chain}`);
    }
  }
  return { chains, jumps, lines };
}

/** iptables-restore --noflush input for one table: declaring a chain flushes it, then its rules. */
export function restoreInput(table: IptablesTable, rules: readonly Rule[], observed: ObservedIptables, chainSet: IptablesChains = IPT_CHAINS): string {
  const out = [`*${table}`];
  const chains = chainsOf(table, chainSet);
  const wanted = rules.filter((r) => chainSet[r.chain].table === table);
  if (wanted.length === 0) {
    // Nothing to hold: remove the jumps and the chains themselves.
    for (const c of chains) if (observed.jumps.has(`${table}/${c.builtin}`)) out.push(`-D ${c.builtin} -j ${c.name}`);
    for (const c of chains) if (observed.chains.has(c.name)) out.push(`:${c.name} - [0:0]`, `-X ${c.name}`);
  } else {
    for (const c of chains) out.push(`:${c.name} - [0:0]`);
    for (const c of chains) if (!observed.jumps.has(`${table}/${c.builtin}`)) out.push(`-I ${c.builtin} 1 -j ${c.name}`);
    for (const r of wanted) out.push([`-A`, chainSet[r.chain].name, ...ruleArgs(r).map(quote)].join(" "));
  }
  out.push("COMMIT", "");
  return out.join("\n");
}

/** iptables-restore splits on spaces and honours double quotes; validated values never need more. */
function quote(token: string): string {
  if (/^[A-Za-z0-9_.:,/!+-]+$/.test(token)) return token;
  if (/["\\\n]/.test(token)) throw new Error(`value cannot be passed to iptables-restore: ${JSON.stringify(token)}`);
  return `"${token}"`;
}

/** Owner of each rule line (its comment). */
export function ownersOf(lines: readonly string[]): { owner: string }[] {
  return lines.map((line) => ({ owner: /--comment "?([^"\s]+)"?/.exec(line)?.[1] ?? "" }));
}

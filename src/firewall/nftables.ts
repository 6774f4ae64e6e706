// nftables backend (pure): the rule list as one libnftables JSON transaction that replaces
// this controller instance's table (`inet kvmctl-<instance>`) atomically, and a reading of
// `nft -j list table` back. JSON rather than nft's text language, so no value is ever parsed
// as syntax. Each instance has its own table: one's sync never touches another's rules.
import type { Chain, Rule } from "./rules.js";

export const NFT_FAMILY = "inet";
/** The table of kvmctl before controller instances: adopted and removed (src/controllers/firewall). */
export const LEGACY_NFT_TABLE = "kvmctl";

/** The nftables table of a controller instance. */
export function nftTableFor(instance: string): string {
  return `kvmctl-${instance}`;
}

interface ChainSpec {
  name: string;
  type: "nat" | "filter";
  hook: string;
  prio: number;
}

export const NFT_CHAINS: Record<Chain, ChainSpec> = {
  prerouting: { name: "prerouting", type: "nat", hook: "prerouting", prio: -100 },
  "output-nat": { name: "output_nat", type: "nat", hook: "output", prio: -100 },
  postrouting: { name: "postrouting", type: "nat", hook: "postrouting", prio: 100 },
  input: { name: "input", type: "filter", hook: "input", prio: 0 },
  forward: { name: "forward", type: "filter", hook: "forward", prio: 0 },
  output: { name: "output", type: "filter", hook: "output", prio: 0 },
};

type Json = Record<string, unknown>;
const match = (left: unknown, right: unknown, op = "=="): Json => ({ match: { op, left, right } });

function address(value: string): unknown {
  const [addr, len] = value.split("/");
  if (len === undefined) return addr;
  const full = addr!.includes(":") ? 128 : 32;
  return Number(len) === full ? addr : { prefix: { addr, len: Number(len) } };
}

function expressions(rule: Rule): Json[] {
  const out: Json[] = [];
  const fam = rule.family ?? "ip";
  if (rule.iif) out.push(match({ meta: { key: "iifname" } }, rule.iif));
  if (rule.oif) out.push(match({ meta: { key: "oifname" } }, rule.oif));
  if (rule.saddr) out.push(match({ payload: { protocol: fam, field: "saddr" } }, address(rule.saddr)));
  if (rule.daddr) out.push(match({ payload: { protocol: fam, field: "daddr" } }, address(rule.daddr)));
  if (rule.notDaddr) out.push(match({ payload: { protocol: fam, field: "daddr" } }, address(rule.notDaddr), "!="));
  if (rule.daddrLocal) out.push(match({ fib: { result: "type", flags: ["daddr"] } }, "local"));
  if (rule.skuid !== undefined) out.push(match({ meta: { key: "skuid" } }, rule.skuid));
  if (rule.established) out.push(match({ ct: { key: "state" } }, ["established", "related"], "in"));
  if (rule.dnatted) out.push(match({ ct: { key: "status" } }, "dnat", "in"));
  if (rule.protocol && rule.dports?.length) {
    out.push(match({ payload: { protocol: rule.protocol, field: "dport" } }, rule.dports.length === 1 ? rule.dports[0] : { set: rule.dports }));
  } else if (rule.protocol) {
    out.push(match({ meta: { key: "l4proto" } }, rule.protocol));
  }
  const v = rule.verdict;
  if (v.type === "dnat") out.push({ dnat: { family: "ip", addr: v.addr, port: v.port } });
  else out.push({ [v.type]: null });
  return out;
}

/**
 * One transaction: (re)create the table with its chains and rules, or remove it when there
 * are no rules. `add table` first makes the `delete` valid when the table is absent.
 */
export function nftTransaction(rules: readonly Rule[], name: string): Json {
  const table = { family: NFT_FAMILY, name };
  const commands: Json[] = [{ add: { table } }, { delete: { table } }];
  if (rules.length) {
    commands.push({ add: { table } });
    for (const chain of Object.values(NFT_CHAINS)) {
      commands.push({ add: { chain: { family: NFT_FAMILY, table: name, name: chain.name, type: chain.type, hook: chain.hook, prio: chain.prio, policy: "accept" } } });
    }
    for (const rule of rules) {
      commands.push({ add: { rule: { family: NFT_FAMILY, table: name, chain: NFT_CHAINS[rule.chain].name, expr: expressions(rule), comment: rule.owner } } });
    }
  }
  return { nftables: commands };
}

export interface ObservedTable {
  present: boolean;
  /** What the table holds, without handles: equal strings mean equal tables. */
  fingerprint: string;
  rules: { owner: string }[];
}

function stripHandles(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripHandles);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value as Json).filter(([k]) => k !== "handle").map(([k, v]) => [k, stripHandles(v)]));
  }
  return value;
}

/** Reads `nft -j list table inet NAME` output (undefined: the table does not exist). */
export function readNftTable(json: string | undefined): ObservedTable {
  if (json === undefined) return { present: false, fingerprint: "", rules: [] };
  const parsed = JSON.parse(json) as { nftables?: Json[] };
  const items = (parsed.nftables ?? []).filter((item) => !("metainfo" in item));
  const rules = items.flatMap((item) => {
    const rule = item.rule as { comment?: string } | undefined;
    return rule ? [{ owner: rule.comment ?? "" }] : [];
  });
  return { present: true, fingerprint: JSON.stringify(stripHandles(items)), rules };
}

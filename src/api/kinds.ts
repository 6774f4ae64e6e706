// The kind registry: names, aliases and schemas of the three kinds, in one place, so
// the CLI, the store and the CRD generator agree on them.
import type { z } from "zod";
import { network, type Network } from "./network.js";
import { storagePool, type StoragePool } from "./storagepool.js";
import { virtualMachine, type VirtualMachine } from "./virtualmachine.js";

export const KIND_NAMES = ["VirtualMachine", "Network", "StoragePool"] as const;
export type KindName = (typeof KIND_NAMES)[number];

export interface KindInfo {
  kind: KindName;
  singular: string;
  plural: string;
  shortNames: string[];
  schema: z.ZodType;
}

export const KINDS: Record<KindName, KindInfo> = {
  VirtualMachine: { kind: "VirtualMachine", singular: "virtualmachine", plural: "virtualmachines", shortNames: ["vm", "vms"], schema: virtualMachine },
  Network: { kind: "Network", singular: "network", plural: "networks", shortNames: ["net", "nets"], schema: network },
  StoragePool: { kind: "StoragePool", singular: "storagepool", plural: "storagepools", shortNames: ["pool", "pools"], schema: storagePool },
};

/** Any kvmctl object after validation and defaulting. */
export type KvmObject = VirtualMachine | Network | StoragePool;
export type ObjectOfKind<K extends KindName> = Extract<KvmObject, { kind: K }>;

export function isKindName(value: unknown): value is KindName {
  return typeof value === "string" && (KIND_NAMES as readonly string[]).includes(value);
}

/** Resolves what a user types (vm, vms, VirtualMachine, pools, ...) to a kind; "all" to every kind. */
export function resolveKind(alias: string): KindName[] | undefined {
  const wanted = alias.toLowerCase();
  if (wanted === "all") return [...KIND_NAMES];
  for (const info of Object.values(KINDS)) {
    if ([info.kind.toLowerCase(), info.singular, info.plural, ...info.shortNames].includes(wanted)) return [info.kind];
  }
  return undefined;
}

/** "VirtualMachine/web1": the key used by the store, the work queue and messages. */
export function objectKey(kind: KindName, name: string): string {
  return `${kind}/${name}`;
}

// The kind registry: names, aliases and schemas of the three kinds, in one place, so
// the CLI, the store and the CRD generator agree on them. Names alone: ./kind-names.ts.
import type { z } from "zod";
import { KIND_TABLE, type KindName, type KindNames } from "./kind-names.js";
import { network, type Network } from "./network.js";
import { storagePool, type StoragePool } from "./storagepool.js";
import { virtualMachine, type VirtualMachine } from "./virtualmachine.js";

export { KIND_NAMES, KIND_TABLE, isKindName, objectKey, parseObjectKey, resolveKind, type KindName, type KindNames } from "./kind-names.js";

export interface KindInfo extends KindNames {
  schema: z.ZodType;
}

export const KINDS: Record<KindName, KindInfo> = {
  VirtualMachine: { ...KIND_TABLE.VirtualMachine, schema: virtualMachine },
  Network: { ...KIND_TABLE.Network, schema: network },
  StoragePool: { ...KIND_TABLE.StoragePool, schema: storagePool },
};

/** Any kvmctl object after validation and defaulting. */
export type KvmObject = VirtualMachine | Network | StoragePool;
export type ObjectOfKind<K extends KindName> = Extract<KvmObject, { kind: K }>;

// The kind registry: names (./kind-names.ts) and schemas of every kind, in one place, so the
// CLI, the store, the controller and the CRD generator agree on them. A kind added to
// BUILTIN_KINDS in ./kind-names.ts without its schemas here does not compile.
import type { z } from "zod";
import { kindNames, registerKindNames, type KindName, type KindNames } from "./kind-names.js";
import { network, networkStatusFields } from "./network.js";
import { storagePool, storagePoolStatusFields } from "./storagepool.js";
import { virtualMachine, virtualMachineStatusFields } from "./virtualmachine.js";

export { API_GROUP, API_VERSION, isKindName, kindAliasesText, kindChoicesText, kindNameList, kindNames, objectKey, parseObjectKey, resolveKind, type KindName, type KindNames } from "./kind-names.js";

const BUILTIN_SCHEMAS = {
  VirtualMachine: { schema: virtualMachine, statusFields: virtualMachineStatusFields },
  Network: { schema: network, statusFields: networkStatusFields },
  StoragePool: { schema: storagePool, statusFields: storagePoolStatusFields },
} satisfies Record<KindName, { schema: z.ZodType; statusFields: z.ZodType }>;

/** Any kvmctl object after validation and defaulting. */
export type KvmObject = z.output<(typeof BUILTIN_SCHEMAS)[KindName]["schema"]>;
export type ObjectOfKind<K extends KindName> = Extract<KvmObject, { kind: K }>;
/** The status fields kind K's schema lists: a controller writes these and no others. */
export type StatusOf<K extends KindName> = z.output<(typeof BUILTIN_SCHEMAS)[K]["statusFields"]>;

export interface KindInfo extends KindNames {
  /** The whole document: apiVersion, kind, metadata, spec, status (parsed leniently). */
  schema: z.ZodType;
  /** The status as a plain object schema: exactly the fields a controller may write. */
  statusFields: z.ZodObject;
}

const registered = new Map<string, Pick<KindInfo, "schema" | "statusFields">>(Object.entries(BUILTIN_SCHEMAS));

export function kindInfo(kind: KindName): KindInfo {
  const schemas = registered.get(kind);
  if (!schemas) throw new Error(`unknown kind ${kind}`);
  return { ...kindNames(kind), ...schemas };
}

/**
 * Adds a kind that is not built in — a test's (see docs/architecture.md). Its schema is a
 * strictObject of apiVersion, kind (a literal), metadata, spec and an optional status.
 */
export function registerKind(definition: Omit<KindNames, "kind" | "shortNames"> & { kind: string; shortNames?: string[] } & Pick<KindInfo, "schema" | "statusFields">): void {
  registerKindNames(definition);
  registered.set(definition.kind, { schema: definition.schema, statusFields: definition.statusFields });
}

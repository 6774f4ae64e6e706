// Kind names and aliases without the schemas: cheap to import, so the CLI can resolve
// `get vm` without loading zod (the schemas are built only when something is validated).

export const API_GROUP = "kvmctl.dev";
export const API_VERSION = `${API_GROUP}/v1alpha1`;

export const KIND_NAMES = ["VirtualMachine", "Network", "StoragePool"] as const;
export type KindName = (typeof KIND_NAMES)[number];

export interface KindNames {
  kind: KindName;
  singular: string;
  plural: string;
  shortNames: string[];
}

export const KIND_TABLE: Record<KindName, KindNames> = {
  VirtualMachine: { kind: "VirtualMachine", singular: "virtualmachine", plural: "virtualmachines", shortNames: ["vm", "vms"] },
  Network: { kind: "Network", singular: "network", plural: "networks", shortNames: ["net", "nets"] },
  StoragePool: { kind: "StoragePool", singular: "storagepool", plural: "storagepools", shortNames: ["pool", "pools"] },
};

export function isKindName(value: unknown): value is KindName {
  return typeof value === "string" && (KIND_NAMES as readonly string[]).includes(value);
}

/** Resolves what a user types (vm, vms, VirtualMachine, pools, ...) to a kind; "all" to every kind. */
export function resolveKind(alias: string): KindName[] | undefined {
  const wanted = alias.toLowerCase();
  if (wanted === "all") return [...KIND_NAMES];
  for (const info of Object.values(KIND_TABLE)) {
    if ([info.kind.toLowerCase(), info.singular, info.plural, ...info.shortNames].includes(wanted)) return [info.kind];
  }
  return undefined;
}

/** "VirtualMachine/web1": the key used by the store, the work queue and messages. */
export function objectKey(kind: KindName, name: string): string {
  return `${kind}/${name}`;
}

/** Splits "Kind/name" back into its parts. */
export function parseObjectKey(key: string): { kind: KindName; name: string } {
  const slash = key.indexOf("/");
  const kind = key.slice(0, slash);
  if (!isKindName(kind)) throw new Error(`not an object key: ${key}`);
  return { kind, name: key.slice(slash + 1) };
}

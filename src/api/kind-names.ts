// Kind names and aliases without the schemas: cheap to import, so the CLI can resolve
// `get vm` without loading zod (the schemas are built only when something is validated).
//
// BUILTIN_KINDS is where a kind starts: `KindName` is derived from it, and every other
// per-kind table (schemas in ./kinds.ts, CLI columns, controllers) is a Record<KindName, ...>
// that the compiler checks for completeness. A kind defined outside src/ (a test's) is added
// at run time with registerKind in ./kinds.ts.

export const API_GROUP = "kvmctl.dev";
export const API_VERSION = `${API_GROUP}/v1alpha1`;

export interface KindNames {
  kind: KindName;
  singular: string;
  plural: string;
  shortNames: string[];
}

const BUILTIN_KINDS = {
  VirtualMachine: { singular: "virtualmachine", plural: "virtualmachines", shortNames: ["vm", "vms"] },
  Network: { singular: "network", plural: "networks", shortNames: ["net", "nets"] },
  StoragePool: { singular: "storagepool", plural: "storagepools", shortNames: ["pool", "pools"] },
} as const satisfies Record<string, Omit<KindNames, "kind" | "shortNames"> & { shortNames: readonly string[] }>;

export type KindName = keyof typeof BUILTIN_KINDS;

const registered = new Map<string, KindNames>(
  Object.entries(BUILTIN_KINDS).map(([kind, names]) => [kind, { kind: kind as KindName, singular: names.singular, plural: names.plural, shortNames: [...names.shortNames] }]),
);

/** Every kind this process serves, built-in ones first, in registration order. */
export function kindNameList(): KindName[] {
  return [...registered.keys()] as KindName[];
}

/** Names and aliases of a kind. */
export function kindNames(kind: KindName): KindNames {
  const names = registered.get(kind);
  if (!names) throw new Error(`unknown kind ${kind}`);
  return names;
}

/**
 * Adds a kind's names (see registerKind in ./kinds.ts, which also adds its schema). The name
 * becomes a KindName at run time only: built-in code never sees it in its Record tables.
 */
export function registerKindNames(names: { kind: string; singular: string; plural: string; shortNames?: string[] }): void {
  if (registered.has(names.kind)) throw new Error(`kind ${names.kind} is already registered`);
  if (!/^[A-Z][A-Za-z0-9]*$/.test(names.kind)) throw new Error(`kind ${JSON.stringify(names.kind)} must be UpperCamelCase`);
  registered.set(names.kind, { kind: names.kind as KindName, singular: names.singular, plural: names.plural, shortNames: names.shortNames ?? [] });
}

export function isKindName(value: unknown): value is KindName {
  return typeof value === "string" && registered.has(value);
}

/** "vm|vms|virtualmachine(s), net|nets|network(s), ...": every alias, for help texts. */
export function kindAliasesText(): string {
  return kindNameList()
    .map((kind) => [...kindNames(kind).shortNames, `${kindNames(kind).singular}(s)`].join("|"))
    .join(", ");
}

/** "vm/virtualmachine, net/network, ...": the short form of each kind, for error messages. */
export function kindChoicesText(): string {
  return kindNameList()
    .map((kind) => [kindNames(kind).shortNames[0], kindNames(kind).singular].filter(Boolean).join("/"))
    .join(", ");
}

/** Resolves what a user types (vm, vms, VirtualMachine, pools, ...) to a kind; "all" to every kind. */
export function resolveKind(alias: string): KindName[] | undefined {
  const wanted = alias.toLowerCase();
  if (wanted === "all") return kindNameList();
  for (const info of registered.values()) {
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

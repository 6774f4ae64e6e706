// The contract between the manifest directory (this module) and its users: the CLI
// reads and edits manifests through it, the controller reads objects and writes status.

import type { FieldPath, KindName, KvmObject, ObjectOfKind } from "../api/index.js";
import { compareText } from "../api/text.js";

/** Where a document or a field sits. `file` is relative to the manifest directory when inside it. */
export interface SourceLocation {
  file: string;
  /**
   * 1-based index of the document within its file. 0 means the file (or directory) as a
   * whole, e.g. a file that is too large or a symlink loop (addition: printed without "document").
   */
  document: number;
  /** 1-based line and column, when known. */
  line?: number;
  column?: number;
}

/**
 * A problem with the manifests. Printed as
 * `vms/web1.yaml: document 1, line 7:5: spec.cpu: unknown field "cpu"; did you mean "cpus"?`
 */
export interface ManifestProblem {
  location: SourceLocation;
  /** Field path within the document, e.g. ["spec", "disks", 0, "size"]. */
  path?: FieldPath;
  message: string;
  /** "Kind/name" when the document says which object it is. */
  key?: string;
  /**
   * Addition: "warning" for problems that do not make the object invalid (e.g. a malformed
   * status block, which is ignored). Absent means "error".
   */
  severity?: "error" | "warning";
}

/** One valid object of kind K as the directory holds it. */
export interface StoredObjectOf<K extends KindName> {
  key: string;
  kind: K;
  name: string;
  /** Validated, defaults applied, with the status as read (from the file or the status directory). */
  object: ObjectOfKind<K>;
  /** The document as written, without its status block. */
  raw: Record<string, unknown>;
  /** Start of the document. */
  location: SourceLocation;
  /** specHash(raw.spec): see api/hash.ts. */
  specHash: string;
  /**
   * Derived, because nothing outside `status:` may be written: 1 with no status; the status's
   * observedGeneration when its observedSpecHash equals specHash; observedGeneration + 1 otherwise.
   */
  generation: number;
  /** status.createdAt when the controller has recorded it, else the file's birth (or modification) time. */
  createdAt: Date;
}

/** A valid object; narrowed by `kind` (`if (stored.kind === "Network") stored.object.spec.mode`). */
export type StoredObject<K extends KindName = KindName> = { [P in K]: StoredObjectOf<P> }[K];

export interface Snapshot {
  /** Valid objects by key ("Kind/name"). */
  objects: Map<string, StoredObject>;
  /**
   * Keys whose document exists but is invalid (its kind and name were readable), including
   * both sides of a duplicate and objects in a cross-object conflict. The controller marks these
   * Stalled and must never treat them as deleted.
   */
  invalid: Map<string, ManifestProblem[]>;
  /**
   * Files that could not be read at all (YAML syntax, not UTF-8, too large, symlink loop),
   * with the keys they held at the last good read. The controller must not prune those keys,
   * nor any owned libvirt object whose recorded manifest file is listed here.
   */
  unreadableFiles: Map<string, { problems: ManifestProblem[]; lastKnownKeys: string[] }>;
  /** Every problem, in file order, for printing. */
  problems: ManifestProblem[];
}

/** One recorded event, shown by `kvmctl describe` (like Kubernetes events). */
export interface ObjectEvent {
  /** When it was last seen (RFC 3339). */
  time: string;
  type: "Normal" | "Warning";
  reason: string;
  message: string;
  /** The checkout's revision the controller applied when it recorded this (git checkouts). */
  revision?: string;
  /** How often it was seen (identical type, reason and message aggregate, as in Kubernetes); absent: once. */
  count?: number;
  /** When it was first seen (RFC 3339); absent: `time`. */
  firstTime?: string;
}

export interface StoreOptions {
  /** The manifest directory. */
  dir: string;
  /** Write and read status here instead of inside the manifests (read-only checkouts). */
  statusDir?: string;
  /** Addition: files larger than this are refused unread. Default 2 MiB. */
  maxFileSize?: number;
  /**
   * Addition: keep parse results in `<stateRoot>/.kvmctl/cache/` so a fresh process (the CLI)
   * re-parses only files whose content changed. Default true; failures to write it are ignored.
   */
  diskCache?: boolean;
  /**
   * Addition: "owner" writes the disk cache only when this process runs as the owner of the
   * directory holding it (read-only commands: `get` run by another user, even root, writes
   * nothing into someone else's directory). Default "always".
   */
  diskCacheWrites?: "always" | "owner";
  /**
   * Addition: take from the disk cache only the keys each file last held, and parse and
   * validate every file anew (the controller: it acts on what it reads). Default false.
   */
  verifyDiskCache?: boolean;
}

/** Addition: what `watch()` reports. `keys` changed in spec, validity, presence or readability. */
export interface StoreChange {
  keys: string[];
  snapshot: Snapshot;
}

/** Addition: a document parsed from `apply -f` input (see parseManifestSource). */
export interface SourceDocument {
  location: SourceLocation;
  key?: string;
  kind?: KindName;
  name?: string;
  /** Validated object (status dropped) when the document is valid. */
  object?: KvmObject;
  /** The document as written, without status. */
  raw?: Record<string, unknown>;
  /** The document's source text without its status block, comments kept; "\n" line ends. */
  text: string;
  problems: ManifestProblem[];
}

export interface ParsedSource {
  documents: SourceDocument[];
  /** Every problem in the input (syntax errors, invalid documents), in order. */
  problems: ManifestProblem[];
}

/** Addition: the outcome of applyDocuments for one object. */
export interface ApplyOutcome {
  key: string;
  action: "created" | "configured" | "unchanged";
  /** Manifest file (relative to the directory) that holds or will hold the object. */
  file: string;
}

export interface ApplyResult {
  /** False when anything was invalid: then nothing was written and `problems` says why. */
  ok: boolean;
  outcomes: ApplyOutcome[];
  problems: ManifestProblem[];
}

/** The valid object of `kind` named `name`, typed by its kind; undefined when there is none. */
export function objectOf<K extends KindName>(snapshot: Pick<Snapshot, "objects">, kind: K, name: string): StoredObject<K> | undefined {
  const stored = snapshot.objects.get(`${kind}/${name}`);
  return stored?.kind === kind ? (stored as StoredObject<K>) : undefined;
}

/** Every valid object of `kind`, typed by its kind, in key order. */
export function objectsOf<K extends KindName>(snapshot: Pick<Snapshot, "objects">, kind: K): StoredObject<K>[] {
  const found: StoredObject<K>[] = [];
  for (const stored of snapshot.objects.values()) if (stored.kind === kind) found.push(stored as StoredObject<K>);
  return found.sort((a, b) => compareText(a.key, b.key));
}

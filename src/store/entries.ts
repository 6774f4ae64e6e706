// What reading one manifest file produces. Plain JSON on purpose: entries are cached in
// memory and on disk (`.kvmctl/cache/`), so a fresh CLI process skips parsing and validating
// files whose content it has seen before.
import type { KindName, KvmObject } from "../api/index.js";
import type { ManifestProblem } from "./types.js";

export interface DocumentEntry {
  /** 1-based document index in the file. */
  index: number;
  /** Where the document's content starts. */
  line: number;
  column: number;
  kind?: KindName;
  name?: string;
  /** "Kind/name" when kind is known and the name is a valid DNS-1123 label. */
  key?: string;
  /** Position of metadata.name (duplicates are reported there). */
  nameLine?: number;
  nameColumn?: number;
  /** Errors make the document invalid; warnings (severity "warning") do not. */
  problems: ManifestProblem[];
  /** Validated object, defaults applied, without status. Present when valid. */
  object?: KvmObject;
  /** The document as written, without status. */
  raw?: Record<string, unknown>;
  specHash?: string;
  /** The document's own status block, validated; absent when missing or malformed. */
  status?: Record<string, unknown>;
}

export interface FileEntry {
  rel: string;
  /** sha1 of the file's bytes; the cache key. */
  hash?: string;
  /** Set when the file could not be read or parsed at all. */
  unreadable?: ManifestProblem[];
  documents: DocumentEntry[];
}

/** Status documents of one file in the status directory, by object key. */
export interface StatusFileEntry {
  hash?: string;
  statuses: Record<string, Record<string, unknown>>;
  problems: ManifestProblem[];
}

export function hasErrors(entry: DocumentEntry): boolean {
  return entry.problems.some((p) => p.severity !== "warning");
}

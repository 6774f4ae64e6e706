// Pure: what revision of the checkout the controller applies, written as Flux writes it —
// `<branch>@sha1:<commit>`, with `+dirty` when the manifests in the working tree are not what
// that commit holds (status blocks aside: they never count, see withoutStatusBlocks).
import { createHash } from "node:crypto";

export interface Revision {
  /** The branch checked out; undefined on a detached HEAD. */
  branch: string | undefined;
  commit: string;
  dirty: boolean;
}

export function formatRevision(revision: Revision): string {
  return `${revision.branch ?? "HEAD"}@sha1:${revision.commit}${revision.dirty ? "+dirty" : ""}`;
}

/** `main@sha1:<40 hex>+dirty` → `main@sha1:<12 hex>+dirty`, for tables. */
export function shortRevision(revision: string): string {
  return revision.replace(/@sha1:([0-9a-f]{12})[0-9a-f]{28}/, "@sha1:$1");
}

/** The commit a formatted revision names, if it names one. */
export function commitOf(revision: string | undefined): string | undefined {
  return /@sha1:([0-9a-f]{40})/.exec(revision ?? "")?.[1];
}

/** Git's object id of a file's content (what `git hash-object` prints for a blob). */
export function gitBlobId(content: Uint8Array): string {
  return createHash("sha1").update(`blob ${content.length}\0`).update(content).digest("hex");
}

/**
 * Manifest files whose (filtered) content differs from the commit: changed, added (untracked
 * included: the controller applies them all the same) or deleted. Paths relative to the
 * manifest directory, sorted.
 */
export function differingFiles(committed: ReadonlyMap<string, string>, working: ReadonlyMap<string, string>): string[] {
  const out = new Set<string>();
  for (const [file, blob] of working) if (committed.get(file) !== blob) out.add(file);
  for (const file of committed.keys()) if (!working.has(file)) out.add(file);
  return [...out].sort();
}

/**
 * `git ls-tree -r -z HEAD` output (`<mode> blob <id>\t<path>\0...`) → path → blob id, for the
 * paths under `prefix` (the manifest directory's path in the repository, "" or ending in "/"),
 * made relative to it and kept only when `keep` says so (manifest files).
 */
export function parseLsTree(output: string, prefix: string, keep: (rel: string) => boolean): Map<string, string> {
  const out = new Map<string, string>();
  for (const entry of output.split("\0")) {
    const tab = entry.indexOf("\t");
    if (tab < 0) continue;
    const [, type, id] = entry.slice(0, tab).split(" ");
    const file = entry.slice(tab + 1);
    if (type !== "blob" || !id || !file.startsWith(prefix)) continue;
    const rel = file.slice(prefix.length);
    if (keep(rel)) out.set(rel, id);
  }
  return out;
}

// What the controller knows of the git checkout it applies (Flux's GitRepository status, kept
// in `.kvmctl/source.json`): the revision applied, the last pull and how it went. Written by
// the controller, read by `kvmctl get`/`describe` (a failed pull is a visible condition) and by
// `kvmctl pull`/`reconcile --pull` waiting for the pull they asked the controller for.
import fs from "node:fs";
import path from "node:path";

export interface PullRecord {
  /** When it finished (RFC 3339). */
  time: string;
  /** What asked for it: "interval", "startup", "SIGHUP" (kvmctl pull / reconcile --pull). */
  trigger: string;
  ok: boolean;
  /** Failure reason (PullError's), or how it went: none | fast-forward | merge | rebase. */
  reason: string;
  message: string;
}

export interface SourceStatus {
  /** The checkout's top directory. */
  checkout: string;
  upstream?: string;
  /** The revision the controller applies now: `<branch>@sha1:<commit>[+dirty]`. */
  revision?: string;
  /** Whether `kvmctl git-setup` hides status blocks from git here. */
  statusFilter: boolean;
  /** --git-pull's interval (ms), when set. */
  pullIntervalMs?: number;
  lastPull?: PullRecord;
  /** The last pull that succeeded, when the last one did not. */
  lastGoodPull?: PullRecord;
}

export function sourceFile(dataDir: string): string {
  return path.join(dataDir, "source.json");
}

/** The controller's record, or undefined (none written, unreadable). */
export function readSource(dataDir: string): SourceStatus | undefined {
  try {
    const value = JSON.parse(fs.readFileSync(sourceFile(dataDir), "utf8")) as SourceStatus;
    return typeof value === "object" && value && typeof value.checkout === "string" ? value : undefined;
  } catch {
    return undefined;
  }
}

export async function writeSource(dataDir: string, stateRoot: string, status: SourceStatus): Promise<void> {
  const [{ replaceFile }, { ensureDataDir }] = await Promise.all([import("../store/safe-write.js"), import("../store/disk-cache.js")]);
  ensureDataDir(stateRoot);
  await replaceFile(sourceFile(dataDir), Buffer.from(`${JSON.stringify(status, null, 2)}\n`), { any: true });
}

/** One line for `get`/`describe` when the last pull failed; undefined when all is well. */
export function sourceWarning(source: SourceStatus | undefined): string | undefined {
  const pull = source?.lastPull;
  if (!source || !pull || pull.ok) return undefined;
  return `the last git pull failed at ${pull.time} (${pull.reason}): ${pull.message}; still applying ${source.revision ?? "the last good revision"}`;
}

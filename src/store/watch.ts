// Watches the manifest directory and reports which object keys changed. Events are collected
// for a short quiet period (bursts collapse into one re-read); files whose content is exactly
// what the store itself last wrote (status write-back) are dropped before re-reading.
import fs from "node:fs";
import path from "node:path";
import { canonicalJson } from "../api/hash.js";
import type { FileWriter } from "./file-writer.js";
import { formatProblem } from "./problems.js";
import { contentHash } from "./read-text.js";
import { isManifestFileName } from "./scan.js";
import type { Snapshot, StoreChange } from "./types.js";

export interface WatchOptions {
  /** Quiet period before re-reading, in ms. Default 50. */
  debounceMs?: number;
  /** Longest a burst may delay a re-read, in ms. Default 1000. */
  maxDelayMs?: number;
  /** Called when re-reading fails unexpectedly (bad manifests never fail: they are in the snapshot). */
  onError?: (error: unknown) => void;
  /**
   * How often the whole directory is read again even without file events (ms; default 10 s):
   * the safety net for events the watcher missed, and how a directory that was moved away,
   * unmounted or replaced is noticed coming back (the watcher then attaches to it again).
   */
  rescanMs?: number;
  /**
   * A mark of the git checkout the directory is in, undefined while a git command is changing
   * it (src/gitops/checkout.ts settledMark). A re-read waits while git is busy (at most
   * BUSY_WAIT_MS) and is redone when git changed the checkout during it, so a `git checkout`,
   * `reset --hard` or merge is seen as one settled snapshot, never half-way.
   */
  settledMark?: () => string | undefined;
}

/** Longest a re-read waits for a git command (a stale index.lock must not stop the controller). */
const BUSY_WAIT_MS = 10_000;

export interface StoreWatcher {
  close(): Promise<void>;
}

export interface WatchContext {
  dir: string;
  /** Real paths to ignore (a status directory inside the manifest directory). */
  ignore: string[];
  writer: FileWriter;
  read(): Promise<Snapshot>;
  baseline: Snapshot;
}

/**
 * What identifies each key's state for change detection: spec and metadata (not status),
 * the file it lives in, its problems when invalid, or the file it was last seen in when unreadable.
 */
export function fingerprints(snapshot: Snapshot): Map<string, string> {
  const prints = new Map<string, string>();
  for (const [key, obj] of snapshot.objects) prints.set(key, `ok ${obj.location.file} ${rawPrint(obj.raw)}`);
  for (const [key, problems] of snapshot.invalid) prints.set(key, `invalid ${problems.map(formatProblem).join("\n")}`);
  for (const [file, unreadable] of snapshot.unreadableFiles) {
    for (const key of unreadable.lastKnownKeys) {
      if (!prints.has(key)) prints.set(key, `unreadable ${file} ${unreadable.problems.map(formatProblem).join("\n")}`);
    }
  }
  return prints;
}

/**
 * canonicalJson of a document, once per document object: the reader hands back the same
 * (never mutated) object while its file is unchanged, so a rescan that finds nothing new
 * serialises nothing.
 */
const rawPrints = new WeakMap<object, string>();
function rawPrint(raw: Record<string, unknown>): string {
  let print = rawPrints.get(raw);
  if (print === undefined) rawPrints.set(raw, (print = canonicalJson(raw)));
  return print;
}

export function changedKeys(before: Map<string, string>, after: Map<string, string>): string[] {
  const keys = new Set<string>();
  for (const [key, print] of after) if (before.get(key) !== print) keys.add(key);
  for (const key of before.keys()) if (!after.has(key)) keys.add(key);
  return [...keys].sort();
}

export async function watchDirectory(ctx: WatchContext, onChange: (change: StoreChange) => void, options: WatchOptions = {}): Promise<StoreWatcher> {
  const { watch } = await import("chokidar");
  const debounceMs = options.debounceMs ?? 50;
  const maxDelayMs = options.maxDelayMs ?? 1000;
  const root = path.resolve(ctx.dir);
  let previous = fingerprints(ctx.baseline);
  let pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let firstPendingAt = 0;
  let running: Promise<void> = Promise.resolve();
  let closed = false;
  /** Since when a re-read has been waiting for a git command to finish. */
  let busySince: number | undefined;

  const ignored = (p: string, stats?: fs.Stats): boolean => {
    const rel = path.relative(root, p);
    if (rel === "") return false;
    if (rel.startsWith("..") || rel.split(path.sep).some((part) => part.startsWith("."))) return true;
    if (ctx.ignore.some((dir) => p === dir || p.startsWith(dir + path.sep))) return true;
    return stats?.isFile() === true && !isManifestFileName(path.basename(p));
  };

  const flush = async (): Promise<void> => {
    timer = undefined;
    const paths = pending;
    pending = new Set();
    let relevant = false;
    for (const p of paths) {
      if (!ctx.writer.hasWritten(p)) {
        relevant = true;
        continue;
      }
      let hash: string | undefined;
      try {
        hash = contentHash(fs.readFileSync(p));
      } catch {
        hash = undefined;
      }
      if (ctx.writer.isOwnWrite(p, hash)) continue; // our own status write
      ctx.writer.forgetWrite(p);
      relevant = true;
    }
    if (!relevant || closed) return;
    const mark = options.settledMark?.();
    if (options.settledMark && mark === undefined && Date.now() - (busySince ??= Date.now()) < BUSY_WAIT_MS) return schedule(root);
    const snapshot = await ctx.read();
    if (options.settledMark && mark !== undefined && options.settledMark() !== mark) return schedule(root); // git moved meanwhile: read again
    busySince = undefined;
    const next = fingerprints(snapshot);
    const keys = changedKeys(previous, next);
    previous = next;
    if (keys.length && !closed) onChange({ keys, snapshot });
  };

  const schedule = (p: string): void => {
    if (closed) return;
    if (pending.size === 0) firstPendingAt = Date.now();
    pending.add(p);
    if (timer) clearTimeout(timer);
    const wait = Math.max(0, Math.min(debounceMs, firstPendingAt + maxDelayMs - Date.now()));
    timer = setTimeout(() => {
      // One re-read at a time; events arriving meanwhile start the next one.
      running = running.then(flush).catch((error: unknown) => options.onError?.(error));
    }, wait);
  };

  // The directory's identity: when it changes (moved away and back, replaced, remounted), the
  // watcher is attached again, since inotify follows the old directory, not the path.
  const identity = (): string | undefined => {
    try {
      const st = fs.statSync(root);
      return `${st.dev}:${st.ino}`;
    } catch {
      return undefined;
    }
  };
  let watcher: ReturnType<typeof watch> | undefined;
  let attachedTo: string | undefined;
  const attach = async (): Promise<void> => {
    await watcher?.close();
    watcher = undefined;
    attachedTo = identity();
    if (attachedTo === undefined || closed) return;
    const next = watch(root, { ignoreInitial: true, ignored, followSymlinks: true, ignorePermissionErrors: false });
    next.on("all", (event, p) => {
      if (event === "add" || event === "change" || event === "unlink") {
        if (isManifestFileName(path.basename(p))) schedule(p);
      } else if (event === "addDir" || event === "unlinkDir") schedule(p);
    });
    // A directory that became unreadable, and the like: re-read, the snapshot will say what is wrong.
    next.on("error", () => schedule(root));
    await new Promise<void>((resolve) => next.once("ready", () => resolve()));
    watcher = next;
  };
  await attach();

  const rescanMs = options.rescanMs ?? 10_000;
  const rescan = setInterval(() => {
    running = running
      .then(async () => {
        if (identity() !== attachedTo) {
          await attach();
          schedule(root);
          return;
        }
        schedule(root); // the safety net: a full re-read finds whatever no event reported
      })
      .catch((error: unknown) => options.onError?.(error));
  }, rescanMs);
  rescan.unref();

  return {
    async close() {
      closed = true;
      clearInterval(rescan);
      if (timer) clearTimeout(timer);
      await watcher?.close();
      await running;
    },
  };
}

// The manifest store: reads the manifest directory into snapshots, writes status back,
// watches for changes and edits manifests for the CLI. See docs/store.md.
//
// Importing this module is cheap on purpose (no yaml, no zod): a CLI run whose manifests are
// all in the parse cache never loads them. Heavy parts are imported when first needed.
import fs from "node:fs";
import path from "node:path";
import { ManifestEditError } from "./errors.js";
import { FileWriter, KeyedQueue } from "./file-writer.js";
import { readManifestText } from "./read-text.js";
import { ManifestReader } from "./reader.js";
import { stampOfPath, vouches, type FileStamp } from "./file-stamp.js";
import type { WatchOptions, StoreWatcher } from "./watch.js";
import type { TerminatingRecord } from "./terminating.js";
import type { ApplyResult, ObjectEvent, ParsedSource, Snapshot, SourceDocument, StoreChange, StoreOptions, StoredObject } from "./types.js";

// Heavy modules, loaded on first use. One promise each, so callers resume in call order
// (separate import() calls may settle in any order under a loader, which would reorder writes).
const lazy = <T>(load: () => Promise<T>): (() => Promise<T>) => {
  let promise: Promise<T> | undefined;
  return () => (promise ??= load());
};
const editModule = lazy(() => import("./edit.js"));
const statusWriterModule = lazy(() => import("./status-writer.js"));
const statusDirModule = lazy(() => import("./status-dir.js"));
const checkModule = lazy(() => import("./check-documents.js"));
const watchModule = lazy(() => import("./watch.js"));
const applyModule = lazy(() => import("./apply.js"));
const eventsModule = lazy(() => import("./events.js"));
const terminatingModule = lazy(() => import("./terminating.js"));
const inputModule = lazy(() => import("./input.js"));
const regionsModule = lazy(() => import("./yaml-regions.js"));

export * from "./types.js";
/** Thrown by writeStatus, applyDocuments and deleteObject when a file cannot be edited safely; nothing was written to it. */
export { ManifestEditError } from "./errors.js";
export type { StoreWatcher, WatchOptions } from "./watch.js";
export type { TerminatingRecord } from "./terminating.js";
export { compareProblems, formatFieldPath, formatLocation, formatProblem, isError } from "./problems.js";
export { deriveGeneration } from "./snapshot.js";
export { DEFAULT_MAX_FILE_SIZE } from "./read-text.js";

/**
 * Input for `apply -f FILE|DIR|-`: parsed and validated like the directory, with positions;
 * `label` is the file name (or "<stdin>") used in problems. Async only because the parser is
 * loaded on first use; the synchronous version is `parseManifestSource` in ./edit.js.
 */
export async function parseManifestSource(text: string, label: string): Promise<ParsedSource> {
  const edit = await editModule();
  return edit.parseManifestSource(text, label);
}

/**
 * `apply -f FILE|DIR` input: a file, or every .yaml/.yml file under a directory (same rules as
 * the manifest directory), parsed like parseManifestSource; problems name `target/relative/path`.
 * For `-f -`, read stdin yourself and call parseManifestSource(text, "<stdin>").
 */
export async function readManifestInput(target: string, maxFileSize?: number): Promise<ParsedSource> {
  const input = await inputModule();
  return input.readManifestInput(target, maxFileSize);
}

/** The status fields a writer sets to say which spec its status describes. */
export function observedFields(stored: Pick<StoredObject, "generation" | "specHash">): { observedGeneration: number; observedSpecHash: string } {
  return { observedGeneration: stored.generation, observedSpecHash: stored.specHash };
}

export class ManifestStore {
  readonly dir: string;
  readonly statusDir: string | undefined;
  /** Where kvmctl keeps its own data (`.kvmctl/`): the status directory if any, else the manifest directory. */
  readonly stateRoot: string;
  private readonly reader: ManifestReader;
  private readonly writer: FileWriter;
  /** Status writes for one key happen in call order: the last call wins. */
  private readonly statusQueue = new KeyedQueue();
  /**
   * Per key, a status found already in its manifest, and the file's stamp taken before that
   * read: while the file keeps that stamp, the same status needs no read, parse and compare
   * (a no-op pass over many objects would spend most of its time there).
   */
  private readonly statusInPlace = new Map<string, { file: string; status: string; stamp: FileStamp; readAt: number }>();
  private lastSnapshot: Snapshot | undefined;

  constructor(readonly options: StoreOptions) {
    this.dir = path.resolve(options.dir);
    this.statusDir = options.statusDir === undefined ? undefined : path.resolve(options.statusDir);
    this.stateRoot = this.statusDir ?? this.dir;
    // Manifests may be symlinks to files inside the manifest directory (never outside it).
    this.writer = new FileWriter({ symlinksWithin: this.dir, maxFileSize: options.maxFileSize });
    this.reader = new ManifestReader({
      dir: this.dir,
      statusDir: this.statusDir,
      stateRoot: this.stateRoot,
      maxFileSize: options.maxFileSize,
      diskCache: options.diskCache,
      diskCacheWrites: options.diskCacheWrites,
      verifyDiskCache: options.verifyDiskCache,
    });
  }

  /** Reads the directory. Never throws for bad manifests: they are in `problems`. */
  async read(): Promise<Snapshot> {
    const sequence = ++this.reads;
    const snapshot = await this.reader.read();
    this.sequences.set(snapshot, sequence);
    this.lastSnapshot = snapshot;
    return snapshot;
  }

  private reads = 0;
  private readonly sequences = new WeakMap<Snapshot, number>();

  /** In which order reads of this store started (1, 2, ...): a higher number saw a later directory. 0: not this store's. */
  readSequence(snapshot: Snapshot): number {
    return this.sequences.get(snapshot) ?? 0;
  }

  /** The last status this store wrote for each key, and how many reads had started by then (those may lack it). */
  private readonly writtenStatus = new Map<string, { status: Record<string, unknown> | null; readsBefore: number }>();

  /**
   * The status this process last wrote for `key` (null: removed) when `snapshot` was read before
   * that write and so may lack it; undefined when it wrote none, or `snapshot` was read after
   * (it holds that write, or an edit someone made since). What the controller builds the next
   * status on, and the status page shows, instead of the snapshot's.
   */
  statusWritten(key: string, snapshot: Snapshot): Record<string, unknown> | null | undefined {
    const written = this.writtenStatus.get(key);
    if (!written || this.readSequence(snapshot) > written.readsBefore) return undefined;
    return written.status;
  }

  /** The snapshot of the last read(), if any. */
  get snapshot(): Snapshot | undefined {
    return this.lastSnapshot;
  }

  /** `<stateRoot>/.kvmctl`: kvmctl's own data (events, cache, the controller's lock). */
  get dataDir(): string {
    return path.join(this.stateRoot, ".kvmctl");
  }

  /** Absolute path of a manifest file given relative to the directory (as in SourceLocation.file). */
  manifestPath(rel: string): string {
    return path.join(this.dir, ...rel.split("/"));
  }

  /**
   * Sets `key`'s status (null removes it): in its manifest's top-level `status:` block, or in the
   * status directory. Only that block changes; the write is atomic and skipped when nothing
   * changes. Resolves false when the object is not in any readable manifest (deleted — or its file
   * is unreadable right now: see snapshot.unreadableFiles before treating it as gone). Calls for
   * one key take effect in call order. Throws ManifestEditError when the
   * document cannot be edited safely (e.g. flow style); nothing is written then.
   * Set status.observedGeneration/observedSpecHash (see observedFields) to say which spec it describes.
   */
  writeStatus(key: string, status: Record<string, unknown> | null): Promise<boolean> {
    return this.statusQueue.run(key, async () => {
      while (this.held) await this.held.promise;
      this.writing++;
      try {
        const written = await this.writeStatusNow(key, status);
        if (written) this.writtenStatus.set(key, { status, readsBefore: this.reads });
        else this.writtenStatus.delete(key);
        return written;
      } finally {
        if (--this.writing === 0) this.drained?.();
      }
    });
  }

  /** Set while exclusive() runs: status writes wait for it. */
  private held: { promise: Promise<void> } | undefined;
  private writing = 0;
  private drained: (() => void) | undefined;

  /**
   * Runs `fn` with this store's status writes held off: it starts once the writes under way
   * have finished, and writes asked for meanwhile wait until it is done (a git pull changing
   * the manifests must not race a status write). `fn` gets a status writer that is not held.
   * One exclusive section at a time.
   */
  async exclusive<T>(fn: (writeStatus: (key: string, status: Record<string, unknown> | null) => Promise<boolean>) => Promise<T>): Promise<T> {
    while (this.held) await this.held.promise;
    let release!: () => void;
    this.held = { promise: new Promise<void>((resolve) => (release = resolve)) };
    try {
      if (this.writing > 0) await new Promise<void>((resolve) => (this.drained = resolve));
      this.drained = undefined;
      return await fn((key, status) => this.writeStatusNow(key, status));
    } finally {
      this.held = undefined;
      release();
    }
  }

  private async writeStatusNow(key: string, status: Record<string, unknown> | null): Promise<boolean> {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (attempt > 0 || !this.lastSnapshot) await this.read();
      const places = this.reader.placesOf(key);
      if (places.length > 1) throw new ManifestEditError(`${key}: defined more than once (${places.map((p) => p.file).join(", ")}); status not written`);
      const place = places[0];
      if (!place) continue;
      const result = this.statusDir ? await this.writeStatusToDir(place.file, key, status) : await this.writeStatusInFile(place.file, key, status);
      if (result !== "missing") return true;
    }
    return false;
  }

  private async writeStatusInFile(rel: string, key: string, status: Record<string, unknown> | null): Promise<"written" | "unchanged" | "missing"> {
    const abs = this.manifestPath(rel);
    const wanted = JSON.stringify(status);
    const known = this.statusInPlace.get(key);
    if (known && known.file === abs && known.status === wanted && vouches(known.stamp, known.readAt, stampOfPath(abs))) return "unchanged";
    const { editStatusInText } = await statusWriterModule();
    // Only while the file is still the one read: a concurrent edit (apply, delete, a person,
    // git) wins, and the status edit is redone on top of it; a file that is gone stays gone.
    return this.writer.run(abs, async () => {
      // Taken before the read: a change after it makes the stamp differ (or, in the same
      // timestamp tick, leaves it unsettled), and the next write reads again.
      const readAt = Date.now();
      const stamp = stampOfPath(abs);
      const result = await this.writer.update(abs, (current) => {
        if (current.text === undefined) {
          if (current.unreadable) throw new ManifestEditError(`${rel}: cannot write status: ${current.unreadable}`);
          return { result: "missing" as const };
        }
        let edit;
        try {
          edit = editStatusInText(current.text, key, status);
        } catch (error) {
          throw new ManifestEditError(`${rel}: ${error instanceof Error ? error.message : String(error)}`);
        }
        return edit.result === "written" ? { write: edit.text, result: edit.result } : { result: edit.result };
      });
      if (result === "unchanged" && stamp !== undefined) this.statusInPlace.set(key, { file: abs, status: wanted, stamp, readAt });
      else this.statusInPlace.delete(key);
      return result;
    });
  }

  private async writeStatusToDir(rel: string, key: string, status: Record<string, unknown> | null): Promise<"written" | "unchanged" | "missing"> {
    const [{ editStatusFileText, statusFilePath }, { identify, parseYamlText }] = await Promise.all([statusDirModule(), checkModule()]);
    // The manifest is only read, to make sure the object is still there.
    const manifest = readManifestText(this.manifestPath(rel), this.options.maxFileSize);
    if (!manifest.ok) return "missing";
    const present = parseYamlText(manifest.text, rel).documents.some((d) => identify(d.value).key === key);
    if (!present) return "missing";
    const [kind, name] = key.split("/") as [string, string];
    const file = statusFilePath(this.statusDir!, rel);
    return this.writer.run(file, () =>
      this.writer.update(
        file,
        (current) => {
          const edit = editStatusFileText(current.text, kind, name, status);
          return edit.result === "unchanged" ? { result: "unchanged" as const } : { write: edit.text, result: "written" as const };
        },
        {},
      ),
    );
  }

  /**
   * Calls onChange with the keys whose spec, validity, presence or readability changed (status
   * changes, including the store's own writes, are not reported). Resolves once watching.
   */
  async watch(onChange: (change: StoreChange) => void, options: WatchOptions = {}): Promise<StoreWatcher> {
    const { watchDirectory } = await watchModule();
    const baseline = await this.read();
    const ignore: string[] = [];
    if (this.statusDir) ignore.push(this.statusDir);
    return watchDirectory({ dir: this.dir, ignore, writer: this.writer, read: () => this.read(), baseline }, onChange, options);
  }

  /**
   * Applies parsed input (parseManifestSource): each object is created in `<plural>/<name>.yaml`
   * or updated in place (its document's text replaced by the input's text, its status kept).
   * Everything is validated first, cross-object checks included; if anything is invalid,
   * nothing is written and `ok` is false. `dryRun` plans without writing.
   */
  async applyDocuments(documents: SourceDocument[], options: { dryRun?: boolean } = {}): Promise<ApplyResult> {
    const { applyDocuments } = await applyModule();
    const context = { dir: this.dir, maxFileSize: this.options.maxFileSize, reader: this.reader, writer: this.writer, read: () => this.read() };
    return applyDocuments(context, documents, options);
  }

  /** Removes `key`'s document from its file (the file when it held nothing else). False when not found. */
  async deleteObject(key: string): Promise<boolean> {
    const [{ removeDocument }, { editStatusFileText, statusFilePath }] = await Promise.all([editModule(), statusDirModule()]);
    await this.read();
    const places = this.reader.placesOf(key);
    if (places.length > 1) throw new ManifestEditError(`${key}: defined more than once (${places.map((p) => p.file).join(", ")}); not deleted`);
    const place = places[0];
    if (!place) return false;
    const abs = this.manifestPath(place.file);
    const removed = await this.writer.run(abs, () =>
      this.writer.update(abs, (current) => {
        if (current.text === undefined) throw new ManifestEditError(`${place.file}: cannot delete ${key}: ${current.unreadable ?? "the file is gone"}`);
        let result;
        try {
          result = removeDocument(current.text, key);
        } catch (error) {
          throw new ManifestEditError(`${place.file}: ${error instanceof Error ? error.message : String(error)}`);
        }
        return result.result === "missing" ? { result: false } : { write: result.text, result: true };
      }),
    );
    if (removed && this.statusDir) {
      const [kind, name] = key.split("/") as [string, string];
      const file = statusFilePath(this.statusDir, place.file);
      await this.writer.run(file, () =>
        this.writer.update(
          file,
          (current) => {
            if (current.text === undefined) return { result: undefined };
            const edit = editStatusFileText(current.text, kind, name, null);
            return edit.result === "written" ? { write: edit.text, result: undefined } : { result: undefined };
          },
          {},
        ),
      );
    }
    if (removed) await this.recordDeletionIntent(key);
    return removed;
  }

  /**
   * `kvmctl delete` records that a deletion was asked for (`.kvmctl/deleting/<Kind>-<name>`): a
   * directory emptied by an explicit delete is pruned, one emptied by accident is not (see
   * src/controllers/prune-policy.ts). Best effort: without it, the controller only prunes less.
   */
  private async recordDeletionIntent(key: string): Promise<void> {
    const { keyFileStem } = await eventsModule();
    const { ensureDataDir } = await import("./disk-cache.js");
    try {
      ensureDataDir(this.stateRoot, "deleting");
      const file = path.join(this.dataDir, "deleting", keyFileStem(key));
      await this.writer.run(file, () => this.writer.write(file, `${new Date().toISOString()}\n`, {}));
    } catch {
      // a read-only data directory: the deletion stands, the controller just asks for --allow-empty
    }
  }

  /** Keys whose deletion `kvmctl delete` asked for and the controller has not finished. */
  async deletionIntents(): Promise<Set<string>> {
    let names: string[];
    try {
      names = await fs.promises.readdir(path.join(this.dataDir, "deleting"));
    } catch {
      return new Set();
    }
    return new Set(names.flatMap((n) => (/^[A-Z][A-Za-z0-9]*-[a-z0-9-]+$/.test(n) ? [n.replace("-", "/")] : [])));
  }

  /** The deletion of `key` is handled: forget that it was asked for. */
  async clearDeletionIntent(key: string): Promise<void> {
    const { keyFileStem } = await eventsModule();
    const file = path.join(this.dataDir, "deleting", keyFileStem(key));
    if (fs.existsSync(file)) await this.writer.run(file, () => this.writer.remove(file, {}));
  }

  /**
   * `kvmctl suspend|resume`: whether `key` is paused on this host (`.kvmctl/suspended/<Kind>-<name>`,
   * holding when and by whom). The controller does nothing for a suspended object.
   */
  async setSuspended(key: string, suspended: { since: string; by: string } | undefined): Promise<void> {
    await this.setMarker("suspended", key, suspended ? `${JSON.stringify(suspended)}\n` : undefined);
  }

  /** The last suspended() answer, the stamp of `.kvmctl/suspended/` taken before it was read, and when (every reconcile asks). */
  private suspendedRead: { stamp: FileStamp | undefined; readAt: number; keys: Map<string, { since: string; by: string }> } | undefined;

  /** Keys suspended on this host, with when and by whom. */
  async suspended(): Promise<Map<string, { since: string; by: string }>> {
    // Markers are added, replaced and removed by rename or unlink, which changes the directory's
    // stamp (src/store/file-stamp.ts); an absent directory holds none.
    const readAt = Date.now();
    const stamp = stampOfPath(path.join(this.dataDir, "suspended"));
    const last = this.suspendedRead;
    if (last && vouches(last.stamp, last.readAt, stamp)) return new Map(last.keys);
    const out = new Map<string, { since: string; by: string }>();
    for (const [key, text] of await this.markers("suspended")) {
      try {
        const value = JSON.parse(text) as { since?: unknown; by?: unknown };
        out.set(key, { since: String(value.since ?? ""), by: String(value.by ?? "") });
      } catch {
        out.set(key, { since: "", by: "" });
      }
    }
    this.suspendedRead = { stamp, readAt, keys: new Map(out) };
    return out;
  }

  /** `kvmctl reconcile KIND/NAME`: asks the running controller to reconcile `key` now (`.kvmctl/requests/`). */
  async requestReconcile(key: string): Promise<void> {
    await this.setMarker("requests", key, `${new Date().toISOString()}\n`);
  }

  /** The reconciles asked for (and forgets the requests): for the controller. */
  async takeReconcileRequests(): Promise<string[]> {
    // Asked every second: while `.kvmctl/requests/` is absent, or as it was when last found
    // empty, nothing is read. A directory's stamp vouches for its entries only once its times
    // are older than the look by more than a timestamp tick (git's racy-clean rule), so a
    // request made in the same tick as an empty look is still found.
    const readAt = Date.now();
    const stamp = stampOfPath(path.join(this.dataDir, "requests"));
    const empty = this.requestsFoundEmpty;
    if (!stamp || (empty && vouches(empty.stamp, empty.readAt, stamp))) return [];
    const keys = [...(await this.markers("requests")).keys()];
    for (const key of keys) await this.setMarker("requests", key, undefined);
    this.requestsFoundEmpty = keys.length === 0 ? { stamp, readAt } : undefined;
    return keys;
  }

  /** The stamp of `.kvmctl/requests/` when it was last found empty, and when that look began (src/store/file-stamp.ts). */
  private requestsFoundEmpty: { stamp: FileStamp; readAt: number } | undefined;

  /** Whether a reconcile asked for is still waiting for the controller. */
  async reconcileRequested(key: string): Promise<boolean> {
    return (await this.markers("requests")).has(key);
  }

  /** A small file per key under `.kvmctl/<kind>/` (undefined: removed). */
  private async setMarker(dir: string, key: string, text: string | undefined): Promise<void> {
    const { keyFileStem } = await eventsModule();
    const { ensureDataDir } = await import("./disk-cache.js");
    const file = path.join(this.dataDir, dir, keyFileStem(key));
    if (text === undefined) {
      if (fs.existsSync(file)) await this.writer.run(file, () => this.writer.remove(file, {}));
      return;
    }
    ensureDataDir(this.stateRoot, dir);
    await this.writer.run(file, () => this.writer.write(file, text, {}));
  }

  private async markers(dir: string): Promise<Map<string, string>> {
    const { keyOfFileStem } = await eventsModule();
    let names: string[];
    try {
      names = await fs.promises.readdir(path.join(this.dataDir, dir));
    } catch {
      return new Map();
    }
    const out = new Map<string, string>();
    for (const name of names) {
      const key = keyOfFileStem(name);
      if (!key) continue;
      try {
        out.set(key, await fs.promises.readFile(path.join(this.dataDir, dir, name), "utf8"));
      } catch {
        // gone meanwhile
      }
    }
    return out;
  }

  /** Removes temporary files a killed kvmctl left in the manifest (and status) directory; returns them. */
  async removeStaleTempFiles(): Promise<string[]> {
    const { removeStaleTempFiles } = await import("./safe-write.js");
    return [...new Set([this.dir, this.stateRoot])].flatMap((root) => removeStaleTempFiles(root));
  }

  /** Records an event in `<stateRoot>/.kvmctl/events/<Kind>-<name>.jsonl` (an identical one is counted, not repeated), keeping the last 50. */
  async recordEvent(key: string, event: ObjectEvent): Promise<void> {
    const { recordEvent } = await eventsModule();
    await recordEvent(this.writer, this.dataDir, key, event);
  }

  /** The recorded events of `key`, oldest first. */
  async readEvents(key: string): Promise<ObjectEvent[]> {
    const { readEvents } = await eventsModule();
    return readEvents(this.dataDir, key);
  }

  /** Every object's recorded events (key → events, oldest first), for `kvmctl events`. */
  async readAllEvents(): Promise<Map<string, ObjectEvent[]>> {
    const { readAllEvents } = await eventsModule();
    return readAllEvents(this.dataDir);
  }

  /** Where the events files are (`kvmctl events -w` watches it). */
  get eventsDir(): string {
    return path.join(this.dataDir, "events");
  }

  private terminatingKeys: Promise<Set<string>> | undefined;

  /**
   * Records that `key`'s manifest is gone but its libvirt object is kept (phase, reason,
   * message), or, with undefined, that it is not (gone, or its manifest is back). Returns
   * whether the record changed.
   */
  async setTerminating(key: string, state: { phase: string; reason: string; message: string } | undefined): Promise<boolean> {
    // Known keys are remembered so clearing costs no file system call in the common case.
    this.terminatingKeys ??= this.listTerminating().then((records) => new Set(records.map((r) => `${r.kind}/${r.name}`)));
    const keys = await this.terminatingKeys;
    if (!state && !keys.has(key)) return false;
    const { setTerminating } = await terminatingModule();
    const changed = await setTerminating(this.writer, this.dataDir, key, state);
    if (state) keys.add(key);
    else keys.delete(key);
    return changed;
  }

  /** Objects kept in libvirt after their manifest was deleted (see terminating.ts). */
  async listTerminating(): Promise<TerminatingRecord[]> {
    const { listTerminating } = await terminatingModule();
    return listTerminating(this.dataDir);
  }

  async readTerminating(key: string): Promise<TerminatingRecord | undefined> {
    const { readTerminating } = await terminatingModule();
    return readTerminating(this.dataDir, key);
  }

  /**
   * An invalid object's document (snapshot.invalid) as far as it parses, for `describe`: the
   * file holding it (the first, for a duplicate), the document as written without its status,
   * and its status (from the status directory when there is one) — the last status the
   * controller wrote, kept while the document is invalid. Undefined when `key` is not invalid
   * in the last read; `document`/`status` absent when the file no longer parses or has none.
   */
  async readInvalidDocument(key: string): Promise<{ file: string; document?: Record<string, unknown>; status?: Record<string, unknown> } | undefined> {
    const snapshot = this.lastSnapshot ?? (await this.read());
    const problems = snapshot.invalid.get(key);
    const at = problems?.find((p) => p.key === key)?.location ?? problems?.[0]?.location;
    if (!at) return undefined;
    const [{ statusesInText }, { parseRegions }] = await Promise.all([statusWriterModule(), regionsModule()]);
    const text = readManifestText(this.manifestPath(at.file), this.options.maxFileSize);
    if (!text.ok) return { file: at.file };
    const parsed = parseRegions(text.text);
    const region = parsed.regions.find((r) => r.key === key) ?? parsed.regions.find((r) => r.index === at.document);
    const value = region?.value && typeof region.value === "object" && !Array.isArray(region.value) ? (region.value as Record<string, unknown>) : undefined;
    let status: Record<string, unknown> | undefined;
    if (this.statusDir) {
      const { statusFilePath } = await statusDirModule();
      const statusText = readManifestText(statusFilePath(this.statusDir, at.file), this.options.maxFileSize);
      status = statusText.ok ? statusesInText(statusText.text).get(key) : undefined;
    } else status = statusesInText(text.text).get(key);
    if (!value) return { file: at.file, status };
    const { status: _ignored, ...document } = value;
    void _ignored;
    return { file: at.file, document, status };
  }
}

// Reads the whole manifest directory into a Snapshot, re-parsing only files whose content
// changed since the last read (in this process, or in any earlier one through the disk cache).
// yaml and zod are loaded only when something must actually be parsed or checked.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { cachePath, emptyCache, loadDiskCache, saveDiskCache, type CacheData } from "./disk-cache.js";
import type { KvmObject } from "../api/index.js";
import { hasErrors, type FileEntry, type StatusFileEntry } from "./entries.js";
import { stampOf, vouches, type FileStamp } from "./file-stamp.js";
import { readManifestText, DEFAULT_MAX_FILE_SIZE, type TextResult } from "./read-text.js";
import { scanManifestDir } from "./scan.js";
import { assembleSnapshot, type Candidate } from "./snapshot.js";
import type { ManifestProblem, Snapshot } from "./types.js";

export interface ReaderOptions {
  dir: string;
  statusDir?: string;
  stateRoot: string;
  maxFileSize?: number;
  diskCache?: boolean;
  diskCacheWrites?: "always" | "owner";
  verifyDiskCache?: boolean;
}

type CheckModule = typeof import("./check-documents.js");
let checkModule: Promise<CheckModule> | undefined;
/** The parser and validators, loaded on first need. */
export function loadChecker(): Promise<CheckModule> {
  checkModule ??= import("./check-documents.js");
  return checkModule;
}

/** However its stat looks, a file is read again at least this often (a safety net, staggered). */
const TRUST_STAT_MS = 5 * 60_000;

type TextRead = Extract<TextResult, { ok: true }>;

interface ReadMemo {
  stamp: FileStamp;
  /** When the read that gave `result` began (ms epoch). */
  readAt: number;
  result: TextRead;
}

/**
 * Remembers what each file held at its last read, and hands it back, without reading, while
 * the file's stamp has not moved and is old enough to vouch for the content (src/store/file-stamp.ts).
 */
class UnchangedFiles {
  private memos = new Map<string, ReadMemo>();

  /** The last read's text of `abs` when the file has certainly not changed since; else undefined. */
  unchanged(abs: string, now: number): TextRead | undefined {
    const memo = this.memos.get(abs);
    if (!memo || now - memo.readAt > TRUST_STAT_MS) return undefined;
    const stat = fs.statSync(abs, { throwIfNoEntry: false });
    return stat?.isFile() && vouches(memo.stamp, memo.readAt, stampOf(stat)) ? memo.result : undefined;
  }

  /** Reads `abs` (readManifestText), remembering a good result for the next `unchanged`. */
  read(abs: string, maxFileSize: number, readAt: number): TextResult {
    const result = readManifestText(abs, maxFileSize);
    if (result.ok) this.memos.set(abs, { stamp: stampOf(result.stat), readAt, result });
    else this.memos.delete(abs);
    return result;
  }

  /** Keeps only the files in `present` (the others are gone). */
  retain(present: ReadonlySet<string>): void {
    for (const abs of this.memos.keys()) if (!present.has(abs)) this.memos.delete(abs);
  }

  clear(): void {
    this.memos.clear();
  }
}

export class ManifestReader {
  private cache: CacheData | undefined;
  private files = new UnchangedFiles();
  private diskLoaded = false;
  /** Text of each file as of the last read, to locate cross-object problems without reading again. */
  private texts = new Map<string, string>();
  /** Every document that names an object, as of the last read (valid or not). */
  private documentsByKey = new Map<string, { file: string; index: number }[]>();
  private lastFiles: FileEntry[] = [];
  private excludeReal: Set<string>;

  constructor(private readonly options: ReaderOptions) {
    this.excludeReal = new Set();
    this.refreshExcluded();
  }

  /**
   * A status directory inside the manifest directory is never read as manifests. It may not
   * exist when the reader starts (the first status write makes it), so it is looked up at
   * every read.
   */
  private refreshExcluded(): void {
    if (!this.options.statusDir) return;
    this.excludeReal.add(path.resolve(this.options.statusDir));
    try {
      this.excludeReal.add(fs.realpathSync(this.options.statusDir));
    } catch {
      // not created yet: its resolved path is excluded already
    }
  }

  private mayWriteCache(): boolean {
    if (this.options.diskCacheWrites !== "owner") return true;
    const owner = fs.statSync(this.options.stateRoot, { throwIfNoEntry: false })?.uid;
    return owner !== undefined && owner === process.geteuid?.();
  }

  /** Keys the file (or, for "dir/", every file under it) held at its last good read. */
  lastKnownKeys(rel: string): string[] {
    const lastKnown = this.cache?.lastKnown ?? {};
    if (!rel.endsWith("/")) return lastKnown[rel] ?? [];
    return Object.entries(lastKnown)
      .filter(([file]) => file.startsWith(rel) || rel === "./")
      .flatMap(([, keys]) => keys);
  }

  async read(): Promise<Snapshot> {
    const { dir, statusDir, maxFileSize = DEFAULT_MAX_FILE_SIZE } = this.options;
    if (!this.diskLoaded) {
      this.diskLoaded = true;
      if (this.options.diskCache !== false) this.cache = loadDiskCache(this.options.stateRoot, { keysOnly: this.options.verifyDiskCache === true });
    }
    const previous = this.cache ?? emptyCache();
    const next: CacheData = { files: {}, statusFiles: {}, lastKnown: { ...previous.lastKnown }, crossCheck: previous.crossCheck };
    let changed = this.cache === undefined;

    this.refreshExcluded();
    const scan = scanManifestDir(dir, this.excludeReal);
    // A directory that was read before and is gone now (moved away, unmounted, a checkout being
    // replaced) is not an empty one: everything it held is unreadable, and so kept, until it is back.
    if (!fs.existsSync(dir) && Object.values(previous.lastKnown).some((keys) => keys.length > 0)) {
      scan.problems.push({ rel: ".", directory: true, message: `the manifest directory ${dir} is gone (moved, unmounted or being replaced?); nothing it held is pruned until it is back` });
    }
    const files: FileEntry[] = [];
    const fileTimes = new Map<string, Date>();
    const texts = new Map<string, string>();
    const seen = new Set<string>();
    const readAt = Date.now();
    const present = new Set<string>();
    for (const file of scan.files) {
      seen.add(file.rel);
      present.add(file.abs);
      const result = this.files.unchanged(file.abs, readAt) ?? this.files.read(file.abs, maxFileSize, readAt);
      let entry: FileEntry;
      if (!result.ok) {
        const problem: ManifestProblem = { location: { file: file.rel, document: result.document ?? 0 }, message: result.message };
        if (result.line !== undefined) Object.assign(problem.location, { line: result.line, column: result.column });
        entry = { rel: file.rel, unreadable: [problem], documents: [] };
      } else {
        texts.set(file.rel, result.text);
        fileTimes.set(file.rel, result.stat.birthtimeMs > 0 ? result.stat.birthtime : result.stat.mtime);
        const cached = previous.files[file.rel];
        if (cached && cached.hash === result.hash) entry = cached;
        else {
          const { checkManifestText } = await loadChecker();
          entry = checkManifestText(result.text, file.rel, result.hash);
          changed = true;
        }
        next.files[file.rel] = entry;
        if (!entry.unreadable) next.lastKnown[file.rel] = entry.documents.flatMap((d) => (d.key ? [d.key] : []));
      }
      files.push(entry);
    }
    // Forget files that are gone, but not those inside a directory we could not read this time.
    const blocked = scan.problems.filter((p) => !p.warning).map((p) => (p.directory ? `${p.rel}/` : p.rel));
    for (const rel of Object.keys(next.lastKnown)) {
      if (!seen.has(rel) && !blocked.some((b) => rel === b || rel.startsWith(b) || b === "./")) {
        delete next.lastKnown[rel];
        changed = true;
      }
    }
    for (const rel of Object.keys(previous.files)) if (!seen.has(rel)) changed = true;

    let statusOverlay: Map<string, Record<string, unknown>> | undefined;
    const statusProblems: ManifestProblem[] = [];
    if (statusDir) {
      statusOverlay = new Map();
      for (const file of files) {
        const entry = await this.readStatusFile(file.rel, previous, next, readAt, present, () => (changed = true));
        if (!entry) continue;
        statusProblems.push(...entry.problems);
        for (const doc of file.documents) if (doc.key && entry.statuses[doc.key]) statusOverlay.set(doc.key, entry.statuses[doc.key]!);
      }
    }

    this.files.retain(present);
    this.cache = next;
    this.texts = texts;
    this.lastFiles = files;
    this.documentsByKey = new Map();
    for (const file of files) {
      for (const doc of file.documents) {
        if (doc.key) this.documentsByKey.set(doc.key, [...(this.documentsByKey.get(doc.key) ?? []), { file: file.rel, index: doc.index }]);
      }
    }
    const snapshot = await assembleSnapshot({
      files,
      fileTimes,
      statusOverlay,
      statusProblems,
      scanProblems: scan.problems,
      lastKnownKeys: (rel) => this.lastKnownKeys(rel),
      crossCheck: async (candidates) => {
        const hash = candidateHash(candidates, next);
        if (next.crossCheck?.hash === hash) return next.crossCheck.problems;
        const problems = await this.crossCheck(candidates);
        next.crossCheck = { hash, problems };
        changed = true;
        return problems;
      },
    });
    if (changed && this.options.diskCache !== false && this.mayWriteCache()) await saveDiskCache(this.options.stateRoot, next);
    return snapshot;
  }

  private async readStatusFile(rel: string, previous: CacheData, next: CacheData, readAt: number, present: Set<string>, markChanged: () => void): Promise<StatusFileEntry | undefined> {
    const abs = path.join(this.options.statusDir!, rel);
    if (!fs.existsSync(abs)) {
      if (previous.statusFiles[rel]) markChanged();
      return undefined;
    }
    present.add(abs);
    const label = path.join(this.options.statusDir!, rel);
    const result = this.files.unchanged(abs, readAt) ?? this.files.read(abs, this.options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE, readAt);
    if (!result.ok) {
      return { statuses: {}, problems: [{ location: { file: label, document: 0 }, severity: "warning", message: `status file ignored: ${result.message}` }] };
    }
    const cached = previous.statusFiles[rel];
    let entry: StatusFileEntry;
    if (cached && cached.hash === result.hash) entry = cached;
    else {
      const { checkStatusText } = await loadChecker();
      entry = checkStatusText(result.text, label, result.hash);
      markChanged();
    }
    next.statusFiles[rel] = entry;
    return entry;
  }

  /** Cross-object checks (src/api), each finding located in its document. */
  private async crossCheck(candidates: Candidate[]): Promise<ManifestProblem[]> {
    if (candidates.length < 2) return [];
    const [{ validateObjectSet }, { parseYamlText }, { locatePath }] = await Promise.all([
      import("../api/index.js"),
      loadChecker(),
      import("./locate.js"),
    ]);
    const issues = validateObjectSet(candidates.map((c) => c.object));
    if (issues.length === 0) return [];
    const byKey = new Map(candidates.map((c) => [c.key, c]));
    const parsedFiles = new Map<string, ReturnType<typeof parseYamlText>>();
    return issues.flatMap((issue) => {
      const candidate = byKey.get(issue.key);
      if (!candidate) return [];
      let parsed = parsedFiles.get(candidate.file);
      if (!parsed) {
        parsed = parseYamlText(this.texts.get(candidate.file) ?? "", candidate.file);
        parsedFiles.set(candidate.file, parsed);
      }
      const doc = parsed.documents[candidate.entry.index - 1]?.doc;
      const pos = doc ? locatePath(doc, parsed.lineCounter, issue.path) : { line: candidate.entry.line, column: candidate.entry.column };
      return [{ location: { file: candidate.file, document: candidate.entry.index, line: pos.line, column: pos.column }, path: issue.path, key: issue.key, message: issue.message }];
    });
  }

  /** Where each key's documents were at the last read (more than one place means a duplicate). */
  placesOf(key: string): { file: string; index: number }[] {
    return this.documentsByKey.get(key) ?? [];
  }

  /** Every schema-valid object at the last read, including those invalid only through conflicts or duplicates. */
  schemaValidObjects(): { key: string; file: string; object: KvmObject; raw: Record<string, unknown> }[] {
    return this.lastFiles.flatMap((file) =>
      file.documents.flatMap((doc) => (doc.key && doc.object && !hasErrors(doc) ? [{ key: doc.key, file: file.rel, object: doc.object, raw: doc.raw! }] : [])),
    );
  }

  /** Drops everything remembered (used by tests and after a failed write). */
  forget(): void {
    this.cache = undefined;
    this.files.clear();
    this.diskLoaded = true;
  }

  get cacheFile(): string {
    return cachePath(this.options.stateRoot);
  }
}

/** Identifies a set of candidates by where they come from and the content there. */
function candidateHash(candidates: Candidate[], cache: CacheData): string {
  const hash = createHash("sha1");
  for (const c of candidates) hash.update(`${c.key}\0${c.file}\0${cache.files[c.file]?.hash ?? ""}\0${c.entry.index}\n`);
  return hash.digest("hex");
}

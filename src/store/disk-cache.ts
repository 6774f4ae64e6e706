// Parse results kept on disk between processes, in `<stateRoot>/.kvmctl/cache/read.json`.
// Entries are keyed by relative path and valid only for the same content hash, and the whole
// cache only for the same kvmctl code (a fingerprint of src/api and src/store), so a stale
// cache can cost time but never give a wrong answer.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { FileEntry, StatusFileEntry } from "./entries.js";
import { ensurePrivateDir, replaceFile, UnsafePathError } from "./safe-write.js";
import type { ManifestProblem } from "./types.js";

const FORMAT = 1;

export interface CacheData {
  files: Record<string, FileEntry>;
  statusFiles: Record<string, StatusFileEntry>;
  /** Keys each file held at its last good read. */
  lastKnown: Record<string, string[]>;
  crossCheck?: { hash: string; problems: ManifestProblem[] };
}

export function emptyCache(): CacheData {
  return { files: {}, statusFiles: {}, lastKnown: {} };
}

let fingerprint: string | undefined;

/** Changes whenever the code that produces entries changes (new build, edited source). */
export function codeFingerprint(): string {
  if (fingerprint) return fingerprint;
  const hash = createHash("sha1").update(String(FORMAT));
  for (const dir of ["../api/", "./"]) {
    const abs = fileURLToPath(new URL(dir, import.meta.url));
    try {
      for (const name of fs.readdirSync(abs).sort()) {
        const st = fs.statSync(path.join(abs, name));
        hash.update(`${dir}${name}:${st.size}:${st.mtimeMs}\n`);
      }
    } catch {
      hash.update(`${dir}?`);
    }
  }
  fingerprint = hash.digest("hex");
  return fingerprint;
}

export function cachePath(stateRoot: string): string {
  return path.join(stateRoot, ".kvmctl", "cache", "read.json");
}

/**
 * `<stateRoot>/.kvmctl/` as kvmctl's private data directory (0700, never a symlink: see
 * ensurePrivateDir), with a `.gitignore` of `*` so a git checkout never picks up kvmctl's own
 * data. Never creates stateRoot itself (a missing manifest directory stays missing).
 */
export function ensureDataDir(stateRoot: string, sub?: string): string {
  const dataDir = path.join(stateRoot, ".kvmctl");
  ensurePrivateDir(sub ? path.join(dataDir, sub) : dataDir, stateRoot);
  const ignore = path.join(dataDir, ".gitignore");
  try {
    // O_EXCL|O_NOFOLLOW: a planted (even dangling) symlink named .gitignore is never followed.
    const fd = fs.openSync(ignore, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    try {
      fs.writeFileSync(fd, "# kvmctl's own data: never commit it\n*\n");
    } finally {
      fs.closeSync(fd);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    if (fs.lstatSync(ignore).isSymbolicLink()) throw new UnsafePathError(ignore, "is a symlink");
  }
  return dataDir;
}

/**
 * The cache as saved. Parse results are only good for the code that made them; the keys each
 * file held are not about the code and are kept across a new version (an unreadable file's
 * objects stay protected through an upgrade), when well-formed. `keysOnly` keeps just those
 * keys: the controller parses and validates every file itself rather than act on parse results
 * anyone who can write the cache file could have edited.
 */
export function loadDiskCache(stateRoot: string, options: { keysOnly?: boolean } = {}): CacheData | undefined {
  try {
    const data = JSON.parse(fs.readFileSync(cachePath(stateRoot), "utf8")) as { fingerprint?: string; data?: CacheData };
    if (!data.data) return undefined;
    if (data.fingerprint === codeFingerprint() && !options.keysOnly) return data.data;
    return { ...emptyCache(), lastKnown: wellFormedLastKnown(data.data.lastKnown) };
  } catch {
    return undefined; // missing or damaged: start over
  }
}

function wellFormedLastKnown(value: unknown): Record<string, string[]> {
  if (!value || typeof value !== "object") return {};
  const out: Record<string, string[]> = {};
  for (const [file, keys] of Object.entries(value)) {
    if (Array.isArray(keys) && keys.every((k) => typeof k === "string" && /^[A-Z][A-Za-z0-9]*\/[a-z0-9-]{1,63}$/.test(k))) out[file] = keys;
  }
  return out;
}

/** Best effort: a read-only directory simply has no cache. */
export async function saveDiskCache(stateRoot: string, data: CacheData): Promise<void> {
  const file = cachePath(stateRoot);
  try {
    ensureDataDir(stateRoot, "cache");
    await replaceFile(file, Buffer.from(JSON.stringify({ fingerprint: codeFingerprint(), data })), { any: true });
  } catch {
    // ignored on purpose
  }
}

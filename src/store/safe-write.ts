// How kvmctl replaces a file without ever losing someone else's edit or being led elsewhere:
// - the new content goes to an exclusive temp file with an unpredictable name in the target's
//   directory (O_CREAT|O_EXCL|O_NOFOLLOW), its owner and mode set on the descriptor (those of
//   the file it replaces, or of the directory for a new file: a 0700 checkout stays private);
// - just before the rename, holding the cross-process lock of that file (./locks.ts, which the
//   CLI and the controller both take), the target is checked to still be the version the
//   caller read (device, inode, size, mtime and content hash), or still absent: otherwise the
//   temp file is dropped and the caller is told "conflict", to read again and redo its edit;
// - a target that is a symlink is refused, unless `symlinksWithin` is given and the link's real
//   path stays inside that directory (a manifest symlinked to another file of the checkout).
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { withLock } from "./locks.js";
import { contentHash } from "./read-text.js";

/** What a file was when it was read: the rename happens only if it still is. */
export interface FileVersion {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  hash: string;
}

/** The version a replace expects to find: a file as read, no file at all, or anything. */
export type Expectation = { version: FileVersion } | { absent: true } | { any: true };

export class UnsafePathError extends Error {
  constructor(readonly file: string, reason: string) {
    super(`${file}: ${reason}; kvmctl does not write there`);
    this.name = "UnsafePathError";
  }
}

export function versionOf(stat: fs.Stats, hash: string): FileVersion {
  return { dev: stat.dev, ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs, hash };
}

export interface ReplaceOptions {
  /** Follow a symlinked target only when its real path is inside this directory. */
  symlinksWithin?: string;
}

function inside(dir: string, file: string): boolean {
  const rel = path.relative(dir, file);
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel);
}

/** The file to operate on: `file` itself, or the target of a symlink the options allow. */
export function resolveTarget(file: string, options: ReplaceOptions = {}): string {
  const abs = path.resolve(file);
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(abs);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return abs;
    throw error;
  }
  if (stat.isSymbolicLink()) {
    if (!options.symlinksWithin) throw new UnsafePathError(abs, "is a symlink");
    let real: string;
    try {
      real = fs.realpathSync(abs);
    } catch {
      throw new UnsafePathError(abs, "is a symlink to nothing");
    }
    if (!inside(fs.realpathSync(options.symlinksWithin), real)) throw new UnsafePathError(abs, `is a symlink to ${real}, outside ${options.symlinksWithin}`);
    return real;
  }
  if (!stat.isFile()) throw new UnsafePathError(abs, "is not a regular file");
  return abs;
}

/** The current version of `file` (never following a symlink), or undefined when there is none. */
function currentVersion(file: string): FileVersion | undefined | "other" {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP") return "other";
    throw error;
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) return "other";
    return versionOf(stat, contentHash(fs.readFileSync(fd)));
  } finally {
    fs.closeSync(fd);
  }
}

function matches(expect: Expectation, current: FileVersion | undefined | "other"): boolean {
  if ("any" in expect) return current !== "other";
  if ("absent" in expect) return current === undefined;
  if (current === undefined || current === "other") return false;
  const v = expect.version;
  return v.dev === current.dev && v.ino === current.ino && v.size === current.size && v.mtimeMs === current.mtimeMs && v.hash === current.hash;
}

/** The target's identity (device, inode, size, mtime) is still the expected version's. */
function sameIdentity(expect: Expectation, target: string): boolean {
  if (!("version" in expect)) return true; // absent / any: the content check said all there is
  try {
    const st = fs.lstatSync(target);
    const v = expect.version;
    return st.isFile() && st.dev === v.dev && st.ino === v.ino && st.size === v.size && st.mtimeMs === v.mtimeMs;
  } catch {
    return false;
  }
}

/** Owner and mode for the new content: the replaced file's, else the directory's (files never more open than it). */
function placement(target: string): { mode: number; uid: number; gid: number } {
  try {
    const st = fs.lstatSync(target);
    return { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  } catch {
    const dir = fs.statSync(path.dirname(target));
    return { mode: dir.mode & 0o666, uid: dir.uid, gid: dir.gid };
  }
}

/**
 * Replaces `file` with `data` if it is still as `expect` says. Resolves "written", or
 * "conflict" when the file changed (or appeared, or vanished) since it was read: then nothing
 * was written. Throws UnsafePathError for a symlink or a non-regular file.
 */
export async function replaceFile(file: string, data: Uint8Array, expect: Expectation, options: ReplaceOptions = {}): Promise<"written" | "conflict"> {
  const target = resolveTarget(file, options);
  const dir = path.dirname(target);
  makeParents(dir);
  const dirStat = fs.lstatSync(dir);
  if (!dirStat.isDirectory()) throw new UnsafePathError(dir, "is not a directory");
  const temp = path.join(dir, `.${path.basename(target)}.kvmctl-${randomBytes(8).toString("hex")}.tmp`);
  const { mode, uid, gid } = placement(target);
  const fd = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  let renamed = false;
  try {
    try {
      fs.writeFileSync(fd, data);
      if (process.geteuid?.() === 0) fs.fchownSync(fd, uid, gid);
      fs.fchmodSync(fd, mode);
      // On the thread pool: on cores busy with guests an fsync takes tens of ms, during which a
      // synchronous one held the main thread, and with it every worker (1.6 s over a converge
      // of 30 VMs). Nothing is renamed until it is done.
      await new Promise<void>((resolve, reject) => fs.fsync(fd, (error) => (error ? reject(error) : resolve())));
    } finally {
      fs.closeSync(fd);
    }
    return await withLock("file", target, async () => {
      if (!matches(expect, currentVersion(target))) return "conflict";
      // The content check reads the file; a rename landing meanwhile shows in a last look at its
      // identity right before ours. What remains is the gap between two system calls (about
      // 2 µs): a rename by another program in exactly that gap is replaced by ours. kvmctl's
      // own writers are all inside this lock. (renameat2's RENAME_EXCHANGE would close the
      // gap; Node does not offer it.)
      if (!sameIdentity(expect, target)) return "conflict";
      fs.renameSync(temp, target);
      renamed = true;
      return "written";
    });
  } finally {
    if (!renamed) fs.rmSync(temp, { force: true });
  }
}

/** Removes `file` if it is still as `expect` says; "absent" when there was nothing to remove. */
export async function removeFile(file: string, expect: Expectation, options: ReplaceOptions = {}): Promise<"removed" | "conflict" | "absent"> {
  const target = resolveTarget(file, options);
  return withLock("file", target, async () => {
    const current = currentVersion(target);
    if (current === undefined) return "absent";
    if (!matches(expect, current)) return "conflict";
    fs.rmSync(target);
    return "removed";
  });
}

/**
 * Creates the missing directories of `dir` (a new `virtualmachines/` in the manifest directory,
 * the status directory's tree), each with its parent's mode and owner.
 */
function makeParents(dir: string): void {
  if (fs.existsSync(dir)) return;
  makeParents(path.dirname(dir));
  const parent = fs.statSync(path.dirname(dir));
  try {
    fs.mkdirSync(dir, { mode: parent.mode & 0o777 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    return;
  }
  if (process.geteuid?.() === 0) fs.lchownSync(dir, parent.uid, parent.gid);
}

/**
 * `<root>/.kvmctl` (or a directory in it) as a private directory kvmctl may write into: made
 * 0700 when missing, and refused when it is a symlink or not a directory (a planted symlink
 * would redirect every write). `root` itself is never created.
 */
export function ensurePrivateDir(dir: string, root: string): string {
  if (!fs.existsSync(root)) throw new Error(`${root} does not exist`);
  const rel = path.relative(root, dir);
  let current = root;
  for (const part of rel.split(path.sep).filter(Boolean)) {
    current = path.join(current, part);
    try {
      fs.mkdirSync(current, { mode: 0o700 });
      const parent = fs.statSync(root);
      if (process.geteuid?.() === 0) fs.lchownSync(current, parent.uid, parent.gid);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const stat = fs.lstatSync(current);
    if (stat.isSymbolicLink()) throw new UnsafePathError(current, "is a symlink");
    if (!stat.isDirectory()) throw new UnsafePathError(current, "is not a directory");
  }
  return dir;
}

/** A temporary file of replaceFile's: `.<name>.kvmctl-<16 hex>.tmp`. */
const TEMP_FILE = /^\..+\.kvmctl-[0-9a-f]{16}\.tmp$/;

/**
 * Removes replaceFile's temporary files under `root` that a killed process left behind (older
 * than `olderThanMs`: a live writer's is seconds old at most). Never follows symlinks. Returns
 * the paths removed.
 */
export function removeStaleTempFiles(root: string, olderThanMs = 60_000, now = Date.now()): string[] {
  const removed: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory() && depth < 16 && entry.name !== ".git") walk(full, depth + 1);
      else if (entry.isFile() && TEMP_FILE.test(entry.name)) {
        try {
          if (now - fs.lstatSync(full).mtimeMs > olderThanMs) {
            fs.rmSync(full, { force: true });
            removed.push(full);
          }
        } catch {
          // gone meanwhile
        }
      }
    }
  };
  walk(root, 0);
  return removed;
}


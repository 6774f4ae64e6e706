// kvmctl's own files and directories on the host (seeds, unattend media, host keys, build
// records): made with an exact mode, never through a symlink, written whole or not at all.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { UnsafePathError } from "../store/safe-write.js";

/**
 * `dir` as a directory with exactly `mode` (and `owner`, when given), made (not its parents)
 * when missing; a symlink or a non-directory there is refused. The caller makes sure nobody
 * else can swap the entry between the check and the chmod (its parent is kvmctl's).
 */
export function ensureOwnDir(dir: string, mode: number, owner?: { uid: number; gid: number }): void {
  try {
    fs.mkdirSync(dir, { mode });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  const stat = fs.lstatSync(dir);
  if (stat.isSymbolicLink()) throw new UnsafePathError(dir, "is a symlink");
  if (!stat.isDirectory()) throw new UnsafePathError(dir, "is not a directory");
  if ((stat.mode & 0o7777) !== mode) fs.chmodSync(dir, mode);
  if (owner && (stat.uid !== owner.uid || stat.gid !== owner.gid)) fs.lchownSync(dir, owner.uid, owner.gid);
}

/** `file` as a path kvmctl may replace: absent, or a regular file (never a symlink). */
export function checkReplaceable(file: string): void {
  const stat = fs.lstatSync(file, { throwIfNoEntry: false });
  if (!stat) return;
  if (stat.isSymbolicLink()) throw new UnsafePathError(file, "is a symlink");
  if (!stat.isFile()) throw new UnsafePathError(file, "is not a regular file");
}

/** Writes `content` to `file` atomically with `mode`: a private temp file beside it (O_EXCL, no symlink followed), fsync, rename. */
export function writeFileAtomic(file: string, content: string | Buffer, mode: number): void {
  checkReplaceable(file);
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.kvmctl-${randomBytes(8).toString("hex")}.tmp`);
  const fd = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  let renamed = false;
  try {
    try {
      fs.fchmodSync(fd, mode);
      fs.writeFileSync(fd, content);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, file);
    renamed = true;
  } finally {
    if (!renamed) fs.rmSync(temp, { force: true });
  }
}

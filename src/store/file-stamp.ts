// A file's (or directory's) stamp: what changes whenever its content may have, so a content
// read earlier can be used again without reading, as git's index does for the worktree.
import fs from "node:fs";

/**
 * A stamp vouches for content only when its mtime and ctime are older than the read that gave
 * the content by this margin (git's "racy clean" rule): a write in the same timestamp tick as
 * the read (same size) is never mistaken for none. 2 s is longer than any filesystem's tick
 * (FAT's); ext4, xfs and tmpfs tick in milliseconds.
 */
export const RACY_MARGIN_MS = 2_000;

export interface FileStamp {
  /** Device, inode, size, mtime and ctime: equal ids mean the content may be unchanged. */
  readonly id: string;
  /** The later of mtime and ctime (ms epoch, sub-ms kept). */
  readonly changedMs: number;
}

/** The stamp of an fs.Stats (from stat or fstat). */
export function stampOf(stat: fs.Stats): FileStamp {
  return { id: `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`, changedMs: Math.max(stat.mtimeMs, stat.ctimeMs) };
}

/** The stamp of `file` now (following symlinks, as a read would); undefined when it is absent or cannot be stat'ed. */
export function stampOfPath(file: string): FileStamp | undefined {
  try {
    const stat = fs.statSync(file, { throwIfNoEntry: false });
    return stat && stampOf(stat);
  } catch {
    return undefined;
  }
}

/**
 * Whether a path's stamp now (`later`) vouches that its content is what a read begun at
 * `readAtMs` (ms epoch, taken before the stat) found with stamp `earlier`: the same stamp, and
 * last changed more than RACY_MARGIN_MS before that read. Absent then and absent now (both
 * undefined) vouches too: a path that appears has a stamp.
 */
export function vouches(earlier: FileStamp | undefined, readAtMs: number, later: FileStamp | undefined): boolean {
  if (earlier === undefined || later === undefined) return earlier === later;
  return later.id === earlier.id && earlier.changedMs < readAtMs - RACY_MARGIN_MS;
}

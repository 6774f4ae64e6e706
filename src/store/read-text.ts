// Reads one manifest file as UTF-8 text, refusing what the parser must never see: files over
// the size limit (refused from their size, never read whole) and bytes that are not UTF-8.
import { createHash } from "node:crypto";
import fs from "node:fs";
import { describeFsError } from "./scan.js";

export const DEFAULT_MAX_FILE_SIZE = 2 * 1024 * 1024;

export type TextResult =
  | { ok: true; text: string; hash: string; stat: fs.Stats }
  | { ok: false; message: string; line?: number; column?: number; document?: number; missing?: boolean };

// ignoreBOM keeps a leading BOM in the string, so offsets match the bytes we write back.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function contentHash(data: string | Uint8Array): string {
  return createHash("sha1").update(data).digest("hex");
}

export function formatSize(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}

/** Reads `abs` (with `noFollow`, refusing a symlink: the writers read what they will replace). */
export function readManifestText(abs: string, maxSize = DEFAULT_MAX_FILE_SIZE, options: { noFollow?: boolean } = {}): TextResult {
  let fd: number | undefined;
  try {
    fd = fs.openSync(abs, fs.constants.O_RDONLY | (options.noFollow ? fs.constants.O_NOFOLLOW : 0));
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) return { ok: false, message: "not a regular file" };
    if (stat.size > maxSize) return tooLarge(stat.size, maxSize);
    // Read at most one byte past the limit: a file that grew since fstat is still refused.
    const buffer = Buffer.allocUnsafe(Math.min(stat.size, maxSize) + 1);
    let length = 0;
    for (;;) {
      const n = fs.readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length === buffer.length) break;
    }
    if (length > maxSize) return tooLarge(length, maxSize);
    const bytes = buffer.subarray(0, length);
    return decodeManifestBytes(bytes, stat);
  } catch (error) {
    return { ok: false, message: `cannot read: ${describeFsError(error)}`, ...((error as NodeJS.ErrnoException).code === "ENOENT" ? { missing: true } : {}) };
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

export function decodeManifestBytes(bytes: Uint8Array, stat: fs.Stats): TextResult {
  try {
    return { ok: true, text: decoder.decode(bytes), hash: contentHash(bytes), stat };
  } catch {
    return notUtf8(bytes);
  }
}

function tooLarge(size: number, maxSize: number): TextResult {
  return { ok: false, message: `file is ${formatSize(size)}, over the ${formatSize(maxSize)} limit for a manifest; not read` };
}

/** Says where the first invalid byte is, so the user can find it. */
function notUtf8(bytes: Uint8Array): TextResult {
  const offset = firstInvalidUtf8(bytes);
  const before = new TextDecoder("utf-8").decode(bytes.subarray(0, offset));
  const lines = before.split("\n");
  const line = lines.length;
  const column = (lines.at(-1)?.length ?? 0) + 1;
  const byte = bytes[offset]?.toString(16).padStart(2, "0") ?? "??";
  return {
    ok: false,
    message: `not UTF-8 text: invalid byte 0x${byte} (save the file as UTF-8)`,
    line,
    column,
    document: documentIndexAt(lines),
  };
}

/** 1-based document number at the end of `lines`: `---` lines start documents. */
function documentIndexAt(lines: string[]): number {
  let index = 0;
  let contentSeen = false;
  for (const line of lines) {
    if (/^---(\s|$)/.test(line)) {
      index += 1;
      contentSeen = true;
    } else if (!contentSeen && line.trim() !== "" && !line.startsWith("#") && !line.startsWith("%")) {
      index = 1;
      contentSeen = true;
    }
  }
  return Math.max(1, index);
}

/** Offset of the first byte that breaks UTF-8 (bytes.length if none). */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    let need: number;
    let min: number;
    if (b < 0x80) {
      i += 1;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) [need, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [need, min] = [2, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [need, min] = [3, 0x10000];
    else return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return bytes.length;
}

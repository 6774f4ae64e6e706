// The SeedMedia port: a cloud-init NoCloud seed (label cidata) built from rendered files
// without mounting anything (DESIGN.md §5):
// - iso:  genisoimage -volid cidata -joliet -rock (a CD-ROM or a disk);
// - vfat: mkfs.vfat -n CIDATA --invariant, then mcopy -m (a disk only). Byte-reproducible: the
//   volume ID and times are constants (--invariant), the files carry a fixed mtime (mcopy -m),
//   under TZ=UTC and without the user's mtools configuration.
// The files hold the VM's private host key and user-data, so:
// - they are staged in a fresh 0700 directory (mkdtemp) next to the target, each file 0600,
//   and removed afterwards;
// - the medium is a temp file in the target's directory, created O_CREAT|O_EXCL|O_NOFOLLOW with
//   mode 0600, handed to the tools as /dev/fd/3 (the open file itself: no path they could be
//   led elsewhere by), fsynced and renamed over the target (then the directory is fsynced);
// - a target that is a symlink (or not a regular file) is refused, never followed;
// - what a killed build left next to the target (staging directory, temp medium) is removed by
//   the next build of that target once it is older than 10 minutes;
// - the tools run from argument arrays (execa, no shell), and an error says which tool failed
//   and its exit, never the files' content.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import type { SeedFile, SeedFileName, SeedMedia } from "../ports/index.js";
import { UnsafePathError } from "../store/safe-write.js";
import { checkReplaceable, ensureOwnDir, writeFileAtomic } from "./private-files.js";

const NAMES: ReadonlySet<SeedFileName> = new Set(["meta-data", "user-data", "network-config", "vendor-data"]);
/** The staged files' mtime, which mcopy -m copies into the FAT: 2000-01-01T00:00:00Z. */
const FIXED_MTIME = 946_684_800;
const MIB = 1024 * 1024;
/** What the tools see of the environment: nothing of the user's mtools setup, UTC times. */
const TOOL_ENV = { TZ: "UTC", LC_ALL: "C", MTOOLSRC: "/dev/null", MTOOLS_SKIP_CHECK: "1" };

/** A VFAT image big enough for `files`: 1 MiB of room beyond their size, whole MiBs. */
/**
 * `fd` as the child's fd 3. execa's types name only the parent's fds 3-9, but execa hands any
 * integer to child_process.spawn, which makes it the child's fd 3 (a test checks this).
 */
export function asChildFd3(fd: number): 3 {
  return fd as 3;
}

export function vfatSize(files: readonly { content: string | Buffer }[]): number {
  const bytes = files.reduce((sum, f) => sum + Buffer.byteLength(f.content), 0);
  return Math.ceil((bytes + MIB) / MIB) * MIB;
}

function checkFiles(files: readonly SeedFile[]): void {
  const seen = new Set<string>();
  for (const file of files) {
    if (!NAMES.has(file.name)) throw new Error(`${JSON.stringify(file.name)} is not a NoCloud seed file`);
    if (seen.has(file.name)) throw new Error(`seed file ${file.name} given twice`);
    seen.add(file.name);
  }
  if (!seen.has("meta-data") || !seen.has("user-data")) throw new Error("a NoCloud seed needs meta-data and user-data");
}

/** A staging directory or temp file older than this is a killed build's leftover. */
export const STALE_AFTER_MS = 10 * 60_000;

/**
 * Removes what killed builds left next to `file` (`.NAME.kvmctl-seed-*` staging directories,
 * which hold the seed's secrets, and `.NAME.kvmctl-*.tmp` media), when older than
 * `olderThanMs`: a build running now is younger. Symlinks are removed themselves, never followed.
 */
export function removeStaleSeedFiles(file: string, olderThanMs = STALE_AFTER_MS, now = Date.now()): void {
  const dir = path.dirname(file);
  const prefix = `.${path.basename(file)}.kvmctl-`;
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith(prefix) || !(name.startsWith(`${prefix}seed-`) || name.endsWith(".tmp"))) continue;
    const at = path.join(dir, name);
    const stat = fs.lstatSync(at, { throwIfNoEntry: false });
    if (stat && now - stat.mtimeMs > olderThanMs) fs.rmSync(at, { recursive: stat.isDirectory(), force: true });
  }
}

async function run(tool: string, args: string[], fd: number, timeoutMs: number, purpose: string): Promise<void> {
  const result = await execa(tool, args, { stdio: ["ignore", "pipe", "pipe", asChildFd3(fd)], env: TOOL_ENV, timeout: timeoutMs, reject: false });
  if ((result as { code?: string }).code === "ENOENT") throw new Error(`${tool} is not installed: ${purpose} needs it (${tool === "genisoimage" ? "genisoimage" : tool === "mcopy" ? "mtools" : "dosfstools"} package)`);
  if (result.failed) {
    // stderr of these tools names files and sizes, not content; kept short all the same.
    const detail = String(result.stderr ?? "").trim().split("\n").slice(-3).join("; ").slice(0, 500);
    const how = result.timedOut ? `timed out after ${timeoutMs} ms` : result.exitCode !== undefined ? `exited ${result.exitCode}` : (result.shortMessage ?? "failed");
    throw new Error(`${tool} ${how} ${purpose}${detail ? `: ${detail}` : ""}`);
  }
}

/**
 * Records in `sidecar` (0600, written atomically, never through a symlink) that `target` now
 * holds what `hash` names, with the target's inode, size and mtime.
 */
export function writeBuiltRecord(target: string, sidecar: string, hash: string): void {
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new Error("a seed hash is 64 hex digits");
  const file = path.resolve(target);
  const stat = fs.lstatSync(file);
  if (!stat.isFile()) throw new UnsafePathError(file, "is not a regular file");
  const record = `${hash} ${stat.ino} ${stat.size} ${Math.trunc(stat.mtimeMs)}\n`;
  writeFileAtomic(sidecar, record, 0o600);
}

/** The hash `sidecar` records for `target` when `target` is still that file; undefined otherwise. */
export function readBuiltRecord(target: string, sidecar: string): string | undefined {
  const file = path.resolve(target);
  const stat = fs.lstatSync(file, { throwIfNoEntry: false });
  if (!stat?.isFile()) return undefined;
  let fd: number;
  try {
    fd = fs.openSync(sidecar, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ELOOP") return undefined; // no record (a symlink is none either): rebuild
    throw error;
  }
  let text: string;
  try {
    if (!fs.fstatSync(fd).isFile()) return undefined;
    text = fs.readFileSync(fd, "utf8");
  } finally {
    fs.closeSync(fd);
  }
  const match = /^([0-9a-f]{64}) (\d+) (\d+) (\d+)\n$/.exec(text);
  if (!match) return undefined;
  const same = match[2] === String(stat.ino) && match[3] === String(stat.size) && match[4] === String(Math.trunc(stat.mtimeMs));
  return same ? match[1] : undefined;
}

/** What buildImage makes. */
export interface ImageSpec {
  /** iso: genisoimage -joliet -rock; vfat: FAT sized for the files; floppy: a 1.44 MB FAT12 image. */
  format: "iso" | "vfat" | "floppy";
  /** The volume label (ISO volume ID, FAT label). */
  label: string;
  /** For errors: "building a cloud-init seed". */
  purpose: string;
  /** Who the medium belongs to (fchown before it is renamed into place); default: whoever runs kvmctl. */
  owner?: { uid: number; gid: number };
}

/** A 1.44 MB floppy: 2880 sectors of 512 bytes (mkfs.fat picks the standard geometry for it). */
export const FLOPPY_BYTES = 1_474_560;

/**
 * Builds an image of `files` (at its root) at `target`: staged in a fresh 0700 directory next
 * to the target (each file 0600, a fixed mtime), written through an O_EXCL|O_NOFOLLOW 0600
 * temp file handed to the tools as /dev/fd/3, fsynced, renamed over the target (a symlink or
 * non-file target refused), the directory fsynced.
 */
export async function buildImage(target: string, spec: ImageSpec, files: readonly { name: string; content: string | Buffer }[], timeoutMs: number): Promise<void> {
  const file = path.resolve(target);
  const dir = path.dirname(file);
  if (!fs.statSync(dir).isDirectory()) throw new UnsafePathError(dir, "is not a directory");
  checkReplaceable(file);
  removeStaleSeedFiles(file);

  const staging = await fs.promises.mkdtemp(path.join(dir, `.${path.basename(file)}.kvmctl-seed-`));
  const temp = path.join(dir, `.${path.basename(file)}.kvmctl-${randomBytes(8).toString("hex")}.tmp`);
  let fd: number | undefined;
  let renamed = false;
  try {
    await fs.promises.chmod(staging, 0o700);
    const staged: string[] = [];
    for (const f of files) {
      if (f.name.includes("/") || f.name.startsWith(".")) throw new Error(`${JSON.stringify(f.name)} is not a file name for a medium`);
      const at = path.join(staging, f.name);
      await fs.promises.writeFile(at, f.content, { mode: 0o600, flag: fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW });
      await fs.promises.utimes(at, FIXED_MTIME, FIXED_MTIME);
      staged.push(at);
    }
    fd = fs.openSync(temp, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    fs.fchmodSync(fd, 0o600); // whatever the umask
    if (spec.format === "iso") {
      await run("genisoimage", ["-quiet", "-input-charset", "utf-8", "-volid", spec.label, "-joliet", "-rock", "-o", "/dev/fd/3", staging], fd, timeoutMs, spec.purpose);
    } else {
      const floppy = spec.format === "floppy";
      fs.ftruncateSync(fd, floppy ? FLOPPY_BYTES : vfatSize(files));
      await run("mkfs.vfat", [...(floppy ? ["-F", "12"] : []), "-n", spec.label, "--invariant", "/dev/fd/3", ...(floppy ? ["1440"] : [])], fd, timeoutMs, spec.purpose);
      await run("mcopy", ["-m", "-i", "/dev/fd/3", ...staged, "::/"], fd, timeoutMs, spec.purpose);
    }
    if (spec.owner) fs.fchownSync(fd, spec.owner.uid, spec.owner.gid);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    checkReplaceable(file); // rename replaces a symlink planted meanwhile rather than following it; refuse it all the same
    fs.renameSync(temp, file);
    renamed = true;
    const dirFd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
    if (!renamed) fs.rmSync(temp, { force: true });
    await fs.promises.rm(staging, { recursive: true, force: true });
  }
}

export class HostSeedMedia implements SeedMedia {
  constructor(private readonly timeoutMs = 60_000) {}

  async build(target: string, format: "iso" | "vfat", files: readonly SeedFile[]): Promise<void> {
    checkFiles(files);
    await buildImage(target, { format, label: format === "iso" ? "cidata" : "CIDATA", purpose: "building a cloud-init seed" }, files, this.timeoutMs);
  }

  async prepareDir(root: string, dir: string): Promise<void> {
    const top = path.resolve(root);
    const target = path.resolve(dir);
    if (target !== top && !target.startsWith(`${top}${path.sep}`)) throw new Error(`${target} is not under the seed directory ${top}`);
    // The root's own parents (/var/lib) are the system's: made when missing, not checked.
    fs.mkdirSync(path.dirname(top), { recursive: true, mode: 0o755 });
    const parts = path.relative(top, target).split(path.sep).filter(Boolean);
    let at = top;
    for (const part of ["", ...parts]) {
      at = part ? path.join(at, part) : at;
      ensureOwnDir(at, 0o711);
    }
  }

  async recordBuilt(target: string, hash: string): Promise<void> {
    writeBuiltRecord(target, `${path.resolve(target)}.built`, hash);
  }

  async builtHash(target: string): Promise<string | undefined> {
    return readBuiltRecord(target, `${path.resolve(target)}.built`);
  }

  async removeDir(dir: string): Promise<boolean> {
    const at = path.resolve(dir);
    const stat = fs.lstatSync(at, { throwIfNoEntry: false });
    if (!stat) return false;
    if (stat.isSymbolicLink() || !stat.isDirectory()) fs.unlinkSync(at); // the link itself, never what it points at
    else fs.rmSync(at, { recursive: true, force: true }); // rm does not follow symlinks inside
    return true;
  }
}

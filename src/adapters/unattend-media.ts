// The UnattendMedia port: Windows unattend media (seed 004), Autounattend.xml at the root of
// - cdrom:  an ISO 9660 image with Joliet and Rock Ridge (genisoimage -volid UNATTEND), or
// - floppy: a 1.44 MB FAT12 image (mkfs.vfat -F 12 --invariant ... 1440, then mcopy -m),
// built without mounting anything, by seed-media.ts's buildImage.
//
// Seed 004's leak (answer files with domain-join credentials on an ISO share every power user
// could read) must not happen here. The layout under the VM's seed directory:
//
//   <seedDir>/<instance>/<vm>/              0711 root   (made by HostSeedMedia.prepareDir)
//     unattend.key                          0600 root   the HMAC key of the digest (32 random bytes)
//     unattend.built                        0600 root   the build record (digest, inode, size, mtime)
//     unattend/                             0700 QEMU's user: only root and QEMU enter it
//       unattend.img                        0600 QEMU's user
//
// - The medium is built in the root-owned VM directory (staging directory and temp file there,
//   where QEMU can write nothing), fchowned to QEMU's uid/gid, then renamed into QEMU's
//   directory: kvmctl never creates or opens a path inside a directory QEMU can write, so a
//   symlink planted there is replaced, never followed.
// - QEMU's directory is QEMU's own (0700) because QEMU must open the medium by path; libvirt's
//   DAC driver then chowns the file to the same user at start and restores it at stop (no
//   change). QEMU processes share one uid, so any QEMU on the host could read the medium: the
//   per-VM separation between guests is AppArmor's/SELinux's (svirt), as for every disk.
// - The digest that says whether the medium is current is keyed (HMAC-SHA256 under a random
//   per-VM key, 0600): the record next to it does not let anyone confirm a guessed answer file.
import { createHmac, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { UnattendLocation, UnattendMedia, UnattendMediumKind } from "../ports/index.js";
import { qemuUser } from "./firewall.js";
import { ensureOwnDir } from "./private-files.js";
import { buildImage, FLOPPY_BYTES, HostSeedMedia, readBuiltRecord, writeBuiltRecord } from "./seed-media.js";

/** What the file at the medium's root is called: Windows Setup looks for it at the root of removable media. */
export const ANSWER_FILE = "Autounattend.xml";
export const UNATTEND_LABEL = "UNATTEND";
const KEY_BYTES = 32;
/** What fits on the floppy beside FAT12's tables and root directory (1 457 152 bytes free; a margin kept). */
export const FLOPPY_CAPACITY = FLOPPY_BYTES - 24 * 1024;

export interface HostUnattendMediaOptions {
  /** The uid/gid QEMU runs as (default: qemu.conf's user and group, Debian's libvirt-qemu). */
  owner?: () => { uid: number; gid: number } | undefined;
  timeoutMs?: number;
}

export class HostUnattendMedia implements UnattendMedia {
  private readonly dirs = new HostSeedMedia();
  private readonly owner: () => { uid: number; gid: number } | undefined;
  private readonly timeoutMs: number;

  constructor(options: HostUnattendMediaOptions = {}) {
    this.owner = options.owner ?? (() => qemuUser());
    this.timeoutMs = options.timeoutMs ?? 60_000;
  }

  async digest(at: UnattendLocation, medium: UnattendMediumKind, content: Buffer): Promise<string> {
    const where = checkLocation(at);
    await this.dirs.prepareDir(at.root, at.vmDir);
    const key = readOrMakeKey(where.key);
    return createHmac("sha256", key).update(`kvmctl-unattend\0${medium}\0`).update(content).digest("hex");
  }

  async builtHash(at: UnattendLocation): Promise<string | undefined> {
    const where = checkLocation(at);
    return readBuiltRecord(where.path, where.record);
  }

  async build(at: UnattendLocation, medium: UnattendMediumKind, content: Buffer, hash: string): Promise<void> {
    const where = checkLocation(at);
    const owner = this.owner();
    if (!owner) throw new Error("the user QEMU runs as is unknown (no `user` in /etc/libvirt/qemu.conf and no libvirt-qemu user): the unattend medium is built only for QEMU's own user");
    if (medium === "floppy" && content.length > FLOPPY_CAPACITY) {
      throw new Error(`the answer file is ${content.length} bytes: more than a 1.44 MB floppy holds (${FLOPPY_CAPACITY}); use medium: cdrom`);
    }
    await this.dirs.prepareDir(at.root, at.vmDir);
    // QEMU's directory, 0700. Its parent is root's 0711 directory: nobody else can swap the entry between the check and the chown.
    ensureOwnDir(where.dir, 0o700, owner);
    // Built where only root writes, then moved into QEMU's directory in one rename.
    await buildImage(where.staged, { format: medium === "floppy" ? "floppy" : "iso", label: UNATTEND_LABEL, purpose: "building the unattend medium", owner }, [{ name: ANSWER_FILE, content }], this.timeoutMs);
    fs.renameSync(where.staged, where.path); // replaces whatever QEMU's user put there (a symlink too), following nothing
    fsyncDir(where.dir);
    writeBuiltRecord(where.path, where.record, hash);
  }

  async present(at: UnattendLocation): Promise<boolean> {
    const where = checkLocation(at);
    return [where.dir, where.record, where.key, where.staged].some((p) => fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined);
  }

  async remove(at: UnattendLocation): Promise<boolean> {
    const where = checkLocation(at);
    let removed = await this.dirs.removeDir(where.dir); // the link itself when it is one; rm follows no symlink inside
    for (const file of [where.staged, where.record, where.key]) {
      if (fs.lstatSync(file, { throwIfNoEntry: false })) {
        fs.rmSync(file, { recursive: true, force: true });
        removed = true;
      }
    }
    return removed;
  }
}

/** The paths of one location, checked: the VM's directory under the root, the medium where the layout puts it. */
function checkLocation(at: UnattendLocation): { dir: string; path: string; key: string; record: string; staged: string } {
  const root = path.resolve(at.root);
  const vmDir = path.resolve(at.vmDir);
  if (!vmDir.startsWith(`${root}${path.sep}`)) throw new Error(`${vmDir} is not under the seed directory ${root}`);
  const dir = path.join(vmDir, "unattend");
  const file = path.join(dir, "unattend.img");
  if (path.resolve(at.dir) !== dir || path.resolve(at.path) !== file) throw new Error(`the unattend medium of ${vmDir} is ${file}, not ${at.path}`);
  return { dir, path: file, key: path.join(vmDir, "unattend.key"), record: path.join(vmDir, "unattend.built"), staged: path.join(vmDir, "unattend.img") };
}

/** The VM's digest key: read (a regular file of 32 bytes, never through a symlink), else made 0600. */
function readOrMakeKey(file: string): Buffer {
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number | undefined;
    try {
      fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      const stat = fs.fstatSync(fd);
      if (stat.isFile() && stat.size === KEY_BYTES) {
        const key = Buffer.alloc(KEY_BYTES);
        if (fs.readSync(fd, key, 0, KEY_BYTES, 0) === KEY_BYTES) return key;
      }
      // Not a key kvmctl made: replaced (the medium is then rebuilt under the new key).
      fs.closeSync(fd);
      fd = undefined;
      fs.rmSync(file, { force: true });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ELOOP") fs.unlinkSync(file); // a symlink: removed itself, never followed
      else if (code !== "ENOENT") throw error;
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
    const key = randomBytes(KEY_BYTES);
    try {
      const out = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
      try {
        fs.fchmodSync(out, 0o600);
        fs.writeSync(out, key);
        fs.fsyncSync(out);
      } finally {
        fs.closeSync(out);
      }
      return key;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error; // made meanwhile: read it
    }
  }
  throw new Error(`cannot make the unattend digest key ${file}`);
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

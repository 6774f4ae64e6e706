// The HostKeys port: one ed25519 SSH host key per VM, made by ssh-keygen and kept under
// kvmctl's data directory, injected into the guest through cloud-init (src/cloudinit/seed.ts)
// so that `kvmctl ssh` and `kvmctl ssh-config` can check the guest's key from its first boot.
//
//   <dataDir>/host-keys/            0700
//     <vm>/                         0700
//       ssh_host_ed25519_key        0600  the private key: never printed, logged or in status
//       ssh_host_ed25519_key.pub    0644
//   <dataDir>/known_hosts/          0755  (public: `kvmctl ssh-config` reads it as any user
//     <vm>                          0644   who can enter the data directory)
//
// - Idempotent: a VM's existing key is reused (its public half is derived from it again with
//   `ssh-keygen -y`, so a lost or edited .pub is repaired); a new key is generated in a private
//   temp directory and hard-linked into place, which fails when another reconcile got there
//   first — then that key is the one used. The pin never changes behind a guest's back.
// - A private key readable by group or others is refused (a key that may have leaked is not a
//   pin), and so is a symlink anywhere kvmctl reads or writes: files are opened O_NOFOLLOW and
//   handed to ssh-keygen as /dev/fd/3.
// - The directories the keys live in must have an existing parent (ensureDataDir makes the
//   data directory with its .gitignore).
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import type { HostKeyPair, HostKeys } from "../ports/index.js";
import { hostKeyAlias, knownHostsLine, type HostKeyDirs } from "../ssh/pinned.js";
import { UnsafePathError } from "../store/safe-write.js";
import { ensureOwnDir, writeFileAtomic } from "./private-files.js";
import { asChildFd3, STALE_AFTER_MS } from "./seed-media.js";

export { hostKeyDirs, knownHostsFile, type HostKeyDirs } from "../ssh/pinned.js";

const KEY_FILE = "ssh_host_ed25519_key";

/** `vm` when it is a VM name (a DNS-1123 label): never a path. */
function checkName(vm: string): string {
  hostKeyAlias(vm);
  return vm;
}

/** A key pair whose private half JSON.stringify and util.inspect do not show. */
function keyPair(publicKey: string, privateKey: string): HostKeyPair {
  const pair = { publicKey } as { publicKey: string; privateKey: string };
  Object.defineProperty(pair, "privateKey", { value: privateKey, enumerable: false });
  return Object.freeze(pair);
}

/** Opens an existing regular file without following a symlink; undefined when there is none. */
function openNoFollow(file: string): number | undefined {
  try {
    return fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP") throw new UnsafePathError(file, "is a symlink");
    throw error;
  }
}

export class HostKeyFiles implements HostKeys {
  constructor(
    private readonly dirs: HostKeyDirs,
    private readonly timeoutMs = 30_000,
  ) {}

  private vmDir(vm: string): string {
    return path.join(this.dirs.keys, checkName(vm));
  }

  async ensure(vm: string): Promise<HostKeyPair> {
    const dir = this.vmDir(vm);
    ensureOwnDir(this.dirs.keys, 0o700);
    ensureOwnDir(dir, 0o700);
    this.removeStale(dir);
    const privateFile = path.join(dir, KEY_FILE);
    if (!fs.lstatSync(privateFile, { throwIfNoEntry: false })) await this.generate(vm, dir, privateFile);
    const fd = openNoFollow(privateFile);
    if (fd === undefined) throw new Error(`the host key of ${vm} vanished while it was being read`);
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) throw new UnsafePathError(privateFile, "is not a regular file");
      if ((stat.mode & 0o077) !== 0) {
        throw new Error(`${privateFile} is readable or writable by others (mode ${(stat.mode & 0o777).toString(8)}): a host key that may have leaked is no pin; remove it and kvmctl makes a new one (the guest then needs re-provisioning)`);
      }
      const privateKey = fs.readFileSync(fd, "utf8");
      // The public half from the private key itself: a lost or edited .pub cannot unpin the guest.
      const result = await execa("ssh-keygen", ["-y", "-f", "/dev/fd/3"], { stdio: ["ignore", "pipe", "pipe", asChildFd3(fd)], timeout: this.timeoutMs, reject: false });
      if (result.failed) throw new Error(`ssh-keygen -y could not read the host key of ${vm} (${privateFile}): exit ${result.exitCode ?? "none"}`);
      const publicKey = `${String(result.stdout).trim().split(" ").slice(0, 2).join(" ")} kvmctl-${vm}\n`;
      if (!publicKey.startsWith("ssh-ed25519 ")) throw new Error(`${privateFile} is not an ed25519 key`);
      this.writePublic(vm, dir, publicKey);
      return keyPair(publicKey, privateKey);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** A killed generation's temp directory holds a private key: removed once it is old (a running one is younger). */
  private removeStale(dir: string): void {
    for (const name of fs.readdirSync(dir)) {
      if (!name.startsWith(".keygen-")) continue;
      const at = path.join(dir, name);
      const stat = fs.lstatSync(at, { throwIfNoEntry: false });
      if (stat && Date.now() - stat.mtimeMs > STALE_AFTER_MS) fs.rmSync(at, { recursive: stat.isDirectory(), force: true });
    }
  }

  private async generate(vm: string, dir: string, privateFile: string): Promise<void> {
    const temp = await fs.promises.mkdtemp(path.join(dir, ".keygen-"));
    try {
      const key = path.join(temp, "key");
      const result = await execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `kvmctl-${vm}`, "-f", key], { stdin: "ignore", timeout: this.timeoutMs, reject: false });
      if ((result as { code?: string }).code === "ENOENT") throw new Error("ssh-keygen is not installed: pinning a VM's host key needs it (openssh-client package)");
      if (result.failed) throw new Error(`ssh-keygen could not make the host key of ${vm}: exit ${result.exitCode ?? "none"}${result.timedOut ? " (timed out)" : ""}`);
      fs.chmodSync(key, 0o600);
      const fd = fs.openSync(key, fs.constants.O_RDONLY);
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      try {
        // Create-if-absent: a concurrent ensure() that linked first wins, and its key is used.
        fs.linkSync(key, privateFile);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
    } finally {
      await fs.promises.rm(temp, { recursive: true, force: true });
    }
  }

  private writePublic(vm: string, dir: string, publicKey: string): void {
    const pubFile = path.join(dir, `${KEY_FILE}.pub`);
    if (readSmall(pubFile) !== publicKey) writeFileAtomic(pubFile, publicKey, 0o644);
    ensureOwnDir(this.dirs.knownHosts, 0o755);
    const hostsFile = path.join(this.dirs.knownHosts, vm);
    const line = knownHostsLine(vm, publicKey);
    if (readSmall(hostsFile) !== line) writeFileAtomic(hostsFile, line, 0o644);
  }

  async publicKey(vm: string): Promise<string | undefined> {
    return readSmall(path.join(this.vmDir(vm), `${KEY_FILE}.pub`));
  }

  async remove(vm: string): Promise<void> {
    const dir = this.vmDir(vm);
    for (const target of [path.join(this.dirs.knownHosts, vm), dir]) {
      const stat = fs.lstatSync(target, { throwIfNoEntry: false });
      if (!stat) continue;
      if (stat.isSymbolicLink()) fs.unlinkSync(target); // the link itself, never what it points at
      else fs.rmSync(target, { recursive: true, force: true });
    }
  }
}

/** A small public file's text (O_NOFOLLOW), or undefined when it is missing. */
function readSmall(file: string): string | undefined {
  const fd = openNoFollow(file);
  if (fd === undefined) return undefined;
  try {
    if (!fs.fstatSync(fd).isFile()) throw new UnsafePathError(file, "is not a regular file");
    return fs.readFileSync(fd, "utf8");
  } finally {
    fs.closeSync(fd);
  }
}

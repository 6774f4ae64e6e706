// Small host ports backed by files: secret files, kernel settings under /proc/sys, and the
// private scratch directory other adapters write command input into.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { PathResolver, ScratchFiles, SecretFiles, Sysctl } from "../ports/index.js";

/** A secret is a password or a key: far below this. */
const MAX_SECRET_BYTES = 64 * 1024;

export class HostSecretFiles implements SecretFiles {
  /**
   * Regular files only, opened non-blocking (a FIFO would freeze the event loop, /dev/zero
   * would grow memory without end) and read up to a cap.
   */
  async read(file: string): Promise<string> {
    return (await this.readBytes(file)).toString("utf8");
  }

  async readBytes(file: string): Promise<Buffer> {
    const handle = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new Error(`${file} is not a regular file`);
      if (stat.size > MAX_SECRET_BYTES) throw new Error(`${file} is ${stat.size} bytes, over the ${MAX_SECRET_BYTES}-byte limit for a secret`);
      const buffer = Buffer.alloc(Math.min(stat.size, MAX_SECRET_BYTES) + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      if (bytesRead > MAX_SECRET_BYTES) throw new Error(`${file} grew over the ${MAX_SECRET_BYTES}-byte limit for a secret`);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }
}

export class HostPathResolver implements PathResolver {
  /** Throws for a path that cannot be resolved (a symlink loop, a symlink to nothing, no permission). */
  real(file: string): string {
    let current = path.resolve(file);
    const rest: string[] = [];
    for (;;) {
      try {
        return path.join(fs.realpathSync.native(current), ...rest.reverse());
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== "ENOENT" && code !== "ENOTDIR") throw error;
        // A dangling symlink would let its target be created later through it.
        if (fs.lstatSync(current, { throwIfNoEntry: false })?.isSymbolicLink()) throw new Error(`${current} is a symlink to a missing target`);
        const parent = path.dirname(current);
        if (parent === current) return path.resolve(file);
        rest.push(path.basename(current));
        current = parent;
      }
    }
  }
}

export class ProcSysctl implements Sysctl {
  constructor(private readonly procSys = "/proc/sys") {}

  async ensureIpv4Forwarding(): Promise<boolean> {
    const file = path.join(this.procSys, "net/ipv4/ip_forward");
    if ((await fs.promises.readFile(file, "utf8")).trim() === "1") return false;
    await fs.promises.writeFile(file, "1" + os.EOL);
    return true;
  }
}

/**
 * A private (0700) directory under the system temp dir, made on first use. Its files are a few
 * KB (an XML for virsh) and written and removed synchronously: on cores busy with guests each
 * hop through libuv's thread pool waits for a CPU (an async write measured 0.25-2 s there,
 * delaying every `virsh define`), while the calls themselves take microseconds.
 */
export class TempScratchFiles implements ScratchFiles {
  private dir: string | undefined;

  constructor(private readonly prefix = "kvmctl-") {}

  async write(label: string, content: string): Promise<string> {
    this.dir ??= fs.mkdtempSync(path.join(os.tmpdir(), this.prefix));
    const file = path.join(this.dir, `${label.replace(/[^A-Za-z0-9_.-]/g, "_")}-${randomBytes(6).toString("hex")}`);
    fs.writeFileSync(file, content, { mode: 0o600, flag: "wx" }); // wx: O_EXCL, so never through a symlink
    return file;
  }

  async remove(file: string): Promise<void> {
    fs.rmSync(file, { force: true });
  }

  async close(): Promise<void> {
    if (this.dir) await fs.promises.rm(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}

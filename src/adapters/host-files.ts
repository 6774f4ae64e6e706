// Small host ports backed by files: secret files, kernel settings under /proc/sys, and the
// private scratch directory other adapters write command input into.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ScratchFiles, SecretFiles, Sysctl } from "../ports/index.js";

export class HostSecretFiles implements SecretFiles {
  async read(file: string): Promise<string> {
    return fs.promises.readFile(file, "utf8");
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

/** A private (0700) directory under the system temp dir, made on first use. */
export class TempScratchFiles implements ScratchFiles {
  private dir: string | undefined;

  constructor(private readonly prefix = "kvmctl-") {}

  async write(label: string, content: string): Promise<string> {
    this.dir ??= await fs.promises.mkdtemp(path.join(os.tmpdir(), this.prefix));
    const file = path.join(this.dir, `${label.replace(/[^A-Za-z0-9_.-]/g, "_")}-${randomBytes(6).toString("hex")}`);
    await fs.promises.writeFile(file, content, { mode: 0o600, flag: "wx" });
    return file;
  }

  async remove(file: string): Promise<void> {
    await fs.promises.rm(file, { force: true });
  }

  async close(): Promise<void> {
    if (this.dir) await fs.promises.rm(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}

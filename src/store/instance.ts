// The controller instance of a manifest directory: a stable id, kept in the directory's
// `.kvmctl/instance`, that every libvirt object and firewall rule kvmctl makes records, so a
// controller changes and prunes only what its own manifests made (src/controllers/ownership.ts).
// `--instance NAME` overrides it. A read-only checkout keeps it in the status directory's `.kvmctl/`.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { ensureDataDir } from "./disk-cache.js";
import { replaceFile } from "./safe-write.js";

export const INSTANCE_NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

function instanceFiles(dir: string, stateRoot: string): string[] {
  return [...new Set([path.join(dir, ".kvmctl", "instance"), path.join(stateRoot, ".kvmctl", "instance")])];
}

/** The instance recorded for this directory, if any (never creates one). */
export function readInstance(dir: string, stateRoot: string): string | undefined {
  for (const file of instanceFiles(dir, stateRoot)) {
    try {
      const id = fs.readFileSync(file, "utf8").trim();
      if (INSTANCE_NAME.test(id)) return id;
    } catch {
      // none there
    }
  }
  return undefined;
}

/** The instance: `override` (--instance), else the recorded one, else a new one, recorded. */
export async function ensureInstance(dir: string, stateRoot: string, override?: string): Promise<string> {
  if (override !== undefined) {
    if (!INSTANCE_NAME.test(override)) throw new Error(`--instance ${JSON.stringify(override)}: use 1 to 32 lower-case letters, digits and '-'`);
    return override;
  }
  const recorded = readInstance(dir, stateRoot);
  if (recorded) return recorded;
  const id = `k${randomBytes(4).toString("hex")}`;
  for (const root of [...new Set([dir, stateRoot])]) {
    try {
      ensureDataDir(root);
      if ((await replaceFile(path.join(root, ".kvmctl", "instance"), Buffer.from(`${id}\n`), { absent: true })) === "written") return id;
      const raced = readInstance(dir, stateRoot); // another process recorded one first
      if (raced) return raced;
    } catch {
      // read-only there: the next place
    }
  }
  throw new Error(`cannot record a controller instance in ${dir}/.kvmctl or ${stateRoot}/.kvmctl (read-only?); pass --instance NAME`);
}

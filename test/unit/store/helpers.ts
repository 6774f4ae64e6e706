// Shared test helpers: real temp directories, real files.
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const created: string[] = [];
/** Makes every directory under `dir` writable again (tests lock some), never following symlinks. */
function unlock(dir: string): void {
  try {
    fs.chmodSync(dir, 0o700);
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) unlock(path.join(dir, entry.name));
    }
  } catch {
    // already gone
  }
}

process.on("exit", () => {
  for (const dir of created) {
    unlock(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** A fresh directory under the system temp dir, removed when the test process exits. */
export async function tempDir(prefix = "kvmctl-store-"): Promise<string> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), prefix));
  created.push(dir);
  return dir;
}

/** Writes files given as { "vms/web1.yaml": "..." } (strings or bytes), creating directories. */
export function writeTree(root: string, files: Record<string, string | Uint8Array>): void {
  for (const [rel, content] of Object.entries(files)) {
    const abs = path.join(root, rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, content);
  }
}

/**
 * Every entry under root except kvmctl's own `.kvmctl/` data: path → kind, mode and content hash.
 * Used to prove that reading never changes the manifests.
 */
export function treeState(root: string): Record<string, string> {
  const state: Record<string, string> = {};
  const walk = (dir: string, rel: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      if (childRel === ".kvmctl") continue;
      const abs = path.join(dir, entry.name);
      const st = fs.lstatSync(abs);
      if (entry.isSymbolicLink()) state[childRel] = `link ${fs.readlinkSync(abs)}`;
      else if (entry.isDirectory()) {
        state[childRel] = `dir ${st.mode.toString(8)}`;
        walk(abs, childRel);
      } else state[childRel] = `file ${st.mode.toString(8)} ${createHash("sha1").update(fs.readFileSync(abs)).digest("hex")}`;
    }
  };
  walk(root, "");
  return state;
}

export const VM = (name: string, spec = "  cpus: 1\n  memory: 1Gi\n") =>
  `apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: ${name}\nspec:\n${spec}`;

export const NET = (name: string, spec = "  mode: isolated\n") => `apiVersion: kvmctl.dev/v1alpha1\nkind: Network\nmetadata:\n  name: ${name}\nspec:\n${spec}`;

/** Resolves when `predicate` holds, polling; rejects after `ms`. */
export async function until(predicate: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** 1-based line:column of the n-th occurrence of `needle` in `text` (what an editor would show). */
export function posOf(text: string, needle: string, occurrence = 1): string {
  let index = -1;
  for (let i = 0; i < occurrence; i++) {
    index = text.indexOf(needle, index + 1);
    if (index === -1) throw new Error(`fixture has no ${JSON.stringify(needle)}`);
  }
  const before = text.slice(0, index).split("\n");
  return `${before.length}:${before.at(-1)!.length + 1}`;
}

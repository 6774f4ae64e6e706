// Runs the real CLI (from source, through tsx) as a child process, the way a user would.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const MAIN = path.join(ROOT, "src/cli/main.ts");

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function kvmctl(args: string[], options: { cwd?: string; input?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const result = await execa(process.execPath, ["--import", "tsx", MAIN, ...args], {
    cwd: options.cwd ?? ROOT,
    input: options.input,
    env: { KVMCTL_DIR: "", KVMCTL_STATUS_DIR: "", ...options.env },
    reject: false,
    timeout: 300_000,
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

export function tempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `kvmctl-${label}-`));
}

/** Every file under `dir` (kvmctl's own .kvmctl/ excluded) with its bytes, to prove nothing changed. */
export function contents(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      if (entry.name === ".kvmctl") continue;
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) out[path.relative(dir, full)] = fs.readFileSync(full).toString("base64");
    }
  };
  walk(dir);
  return out;
}

// One place to run host commands for the test environment: argument arrays only, with
// the command echoed to stderr so a failing provisioning step is easy to read.
import { execa, type Options } from "execa";
import { NETNS } from "./config.js";

export interface RunOptions {
  input?: string;
  quiet?: boolean;
  allowFailure?: boolean;
  timeoutMs?: number;
  env?: Record<string, string>;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export async function run(file: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  if (!options.quiet) process.stderr.write(`+ ${[file, ...args].join(" ")}\n`);
  const execaOptions: Options = {
    reject: false,
    timeout: options.timeoutMs ?? 600_000,
    env: options.env,
    ...(options.input !== undefined ? { input: options.input } : { stdin: "ignore" }),
  };
  const result = await execa(file, args, execaOptions);
  const out: RunResult = {
    stdout: String(result.stdout ?? ""),
    stderr: String(result.stderr ?? ""),
    exitCode: result.exitCode ?? (result.timedOut ? 124 : 1),
  };
  if (out.exitCode !== 0 && !options.allowFailure) {
    throw new Error(`${file} ${args.join(" ")} failed (exit ${out.exitCode}): ${out.stderr.trim() || out.stdout.trim()}`);
  }
  return out;
}

/** Runs a command inside the test namespace. */
export function runInNetns(file: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return run("ip", ["netns", "exec", NETNS, file, ...args], options);
}

export async function commandExists(file: string): Promise<boolean> {
  const result = await execa("which", [file], { reject: false, stdin: "ignore" });
  return result.exitCode === 0;
}

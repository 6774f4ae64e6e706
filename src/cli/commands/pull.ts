// `kvmctl pull` and `kvmctl reconcile --pull`: update the git checkout holding the manifest
// directory from its upstream, status-aware (src/gitops/pull.ts). When a controller runs for the
// directory, it does the pull itself (asked by SIGHUP), with its status writes held and the
// pulled tree applied as one snapshot; this command waits for its outcome. Otherwise the pull
// runs here.
import fs from "node:fs";
import type { CliContext } from "../context.js";
import { parseDuration } from "../duration.js";
import { CliError, ExitCode } from "../errors.js";

export async function runPull(ctx: CliContext, options: { timeout: string }): Promise<void> {
  const timeoutMs = parseDuration(options.timeout, "--timeout");
  const [{ GitCheckout }, { pullCheckout, PullError }] = await Promise.all([import("../../gitops/checkout.js"), import("../../gitops/pull.js")]);
  const checkout = await GitCheckout.open(ctx.dir);
  if (!checkout) throw new CliError(`${ctx.dir} is not in a git checkout`);
  const store = await ctx.openStore();
  const controller = await runningController(ctx.dir, store.dataDir);
  if (controller !== undefined) return askController(controller, store.dataDir, timeoutMs);
  try {
    const outcome = await pullCheckout({ checkout, store });
    if (outcome.how === "none") process.stdout.write(`already up to date (${outcome.upstream} at ${outcome.to.slice(0, 12)}${outcome.ahead ? `; ${outcome.ahead} local commit(s) not on it` : ""})\n`);
    else process.stdout.write(`updated ${outcome.from.slice(0, 12)}..${outcome.to.slice(0, 12)} from ${outcome.upstream} (${outcome.how}); ${outcome.files} file(s) changed, ${outcome.statusesBack} status block(s) put back\n`);
  } catch (error) {
    if (error instanceof PullError) throw new CliError(error.message);
    throw error;
  }
}

/** `kvmctl reconcile [KIND/NAME...] [--pull]`: asks the running controller to reconcile those objects now, pulling first with --pull. */
export async function runReconcile(ctx: CliContext, targets: string[], options: { pull?: boolean; timeout: string }): Promise<void> {
  if (!options.pull && targets.length === 0) throw new CliError("kvmctl reconcile needs KIND/NAME... (objects to reconcile now) or --pull (pull the checkout and look at everything)");
  const timeoutMs = parseDuration(options.timeout, "--timeout");
  const store = await ctx.openStore();
  const controller = await runningController(ctx.dir, store.dataDir);
  if (controller === undefined) throw new CliError(`no kvmctl controller is running for ${ctx.dir}${options.pull ? "; `kvmctl pull` updates the checkout by itself" : ""}`);
  if (targets.length) {
    const { parseTargets } = await import("./wait.js");
    const keys = parseTargets(targets);
    const snapshot = await store.read();
    const missing = keys.filter((key) => !snapshot.objects.has(key) && !snapshot.invalid.has(key));
    if (missing.length) throw new CliError(`${missing.join(", ")}: not found in ${store.dir}`);
    for (const key of keys) await store.requestReconcile(key);
    // The controller looks for requests every second: wait until it took them.
    for (const deadline = Date.now() + timeoutMs; ; ) {
      const waiting = [];
      for (const key of keys) if (await store.reconcileRequested(key)) waiting.push(key);
      if (!waiting.length) break;
      if (Date.now() > deadline) throw new CliError(`the controller (pid ${controller}) did not take the request for ${waiting.join(", ")} within ${Math.round(timeoutMs / 1000)} s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    process.stdout.write(`reconcile requested: ${keys.join(", ")} (taken by the controller, pid ${controller})\n`);
  }
  if (options.pull) {
    const { GitCheckout } = await import("../../gitops/checkout.js");
    if (!(await GitCheckout.open(ctx.dir))) throw new CliError(`${ctx.dir} is not in a git checkout`);
    await askController(controller, store.dataDir, timeoutMs);
  }
}

/**
 * The pid of the controller running for `dir`, or undefined when none holds its lock. The pid
 * file is trusted only while the lock is held and the process is a kvmctl controller.
 */
async function runningController(dir: string, dataDir: string): Promise<number | undefined> {
  const path = await import("node:path");
  const { holdLock, LockHeldError } = await import("../../store/locks.js");
  try {
    const lock = await holdLock("controller", fs.realpathSync(dir));
    await lock.release();
    return undefined;
  } catch (error) {
    if (!(error instanceof LockHeldError)) throw error;
  }
  const pid = Number(readQuietly(path.join(dataDir, "controller.pid")));
  const command = Number.isInteger(pid) && pid > 1 ? readQuietly(`/proc/${pid}/cmdline`).split("\0") : [];
  if (!command.includes("controller")) throw new CliError(`a kvmctl controller holds ${dir} but its pid file (${path.join(dataDir, "controller.pid")}) does not name it; try again`);
  return pid;
}

/** SIGHUP to the controller, then its pull's outcome from `.kvmctl/source.json`. */
async function askController(pid: number, dataDir: string, timeoutMs: number): Promise<void> {
  const { readSource } = await import("../../gitops/source.js");
  const askedAt = Date.now();
  try {
    process.kill(pid, "SIGHUP");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(code === "EPERM" ? `the controller (pid ${pid}) runs as another user: ask it as that user (e.g. sudo kvmctl pull)` : `could not signal the controller (pid ${pid}): ${String(error)}`);
  }
  process.stderr.write(`asked the running controller (pid ${pid}) to pull\n`);
  for (const deadline = askedAt + timeoutMs; Date.now() < deadline; ) {
    const pull = readSource(dataDir)?.lastPull;
    if (pull && pull.trigger === "SIGHUP" && Date.parse(pull.time) >= askedAt) {
      if (!pull.ok) {
        process.stderr.write(`error: ${pull.message}\n`);
        throw new ExitCode(1);
      }
      process.stdout.write(`${pull.message}\n`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new CliError(`the controller (pid ${pid}) did not report its pull within ${Math.round(timeoutMs / 1000)} s; see its log`);
}

function readQuietly(file: string): string {
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch {
    return "";
  }
}

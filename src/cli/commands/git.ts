// The manifest directory as a git checkout: status written back into the manifests must never
// be a change git sees. `kvmctl git-setup` installs a clean filter (`kvmctl git-clean`) for
// the checkout's YAML files (and a push-to-checkout hook, `kvmctl git-push-to-checkout`), so `git diff`, `git add`, `git commit -a` and `git pull` see spec
// changes only; the working tree keeps its status blocks.
import fs from "node:fs";
import path from "node:path";
import type { CliContext } from "../context.js";
import { GIT_FILTER } from "../../gitops/checkout.js";
import { CliError } from "../errors.js";

const ATTRIBUTES = [`*.yaml filter=${GIT_FILTER}`, `*.yml filter=${GIT_FILTER}`];
/** What the filter passes through untouched: git hands it whole blobs. */
const MAX_FILTER_BYTES = 16 * 1024 * 1024;

/** `kvmctl git-clean`: stdin → stdout without status blocks (git's clean filter protocol). */
export async function runGitClean(): Promise<void> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  const bytes = Buffer.concat(chunks);
  let out: Buffer = bytes;
  const text = size <= MAX_FILTER_BYTES ? decodeUtf8(bytes) : undefined;
  if (text !== undefined) {
    const { withoutStatusBlocks } = await import("../../store/status-writer.js");
    out = Buffer.from(withoutStatusBlocks(text), "utf8");
  }
  await new Promise<void>((resolve, reject) => process.stdout.write(out, (error) => (error ? reject(error) : resolve())));
}

function decodeUtf8(bytes: Buffer): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * This process's node options with module specifiers made absolute (`--import tsx` when run
 * from source): git runs the filter from the checkout, where a bare specifier would not resolve.
 */
function absoluteNodeOptions(execArgv: readonly string[]): string[] {
  return execArgv.map((arg, i) => {
    const flag = execArgv[i - 1];
    if ((flag === "--import" || flag === "--loader" || flag === "--experimental-loader") && !arg.startsWith(".") && !path.isAbsolute(arg) && !arg.includes(":")) {
      try {
        return import.meta.resolve(arg);
      } catch {
        return arg;
      }
    }
    return arg;
  });
}

/** A word for git's shell (git runs filter commands through sh): single-quoted. */
const shellWord = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;

/**
 * `kvmctl git-setup`: in the git checkout holding the manifest directory, the clean filter in
 * the repository's config (this kvmctl, by absolute path) and the attributes in
 * `.git/info/attributes` (local: nothing to commit).
 */
export async function runGitSetup(ctx: CliContext): Promise<void> {
  const { execa } = await import("execa");
  const git = (...args: string[]) => execa("git", ["-C", ctx.dir, ...args], { reject: false });
  const found = await git("rev-parse", "--git-common-dir");
  if (found.exitCode !== 0) throw new CliError(`${ctx.dir} is not in a git checkout: ${String(found.stderr).trim()}`);
  const gitDir = path.resolve(ctx.dir, String(found.stdout).trim());
  const nodeCommand = [process.execPath, ...absoluteNodeOptions(process.execArgv), path.resolve(process.argv[1]!)];
  const command = [...nodeCommand, "git-clean"].map(shellWord).join(" ");
  const set = await git("config", "--local", `filter.${GIT_FILTER}.clean`, command);
  if (set.exitCode !== 0) throw new CliError(`git config filter.${GIT_FILTER}.clean: ${String(set.stderr).trim()}`);
  const attributes = path.join(gitDir, "info", "attributes");
  fs.mkdirSync(path.dirname(attributes), { recursive: true });
  const existing = fs.existsSync(attributes) ? fs.readFileSync(attributes, "utf8") : "";
  const missing = ATTRIBUTES.filter((line) => !existing.split("\n").includes(line));
  if (missing.length) {
    const { replaceFile } = await import("../../store/safe-write.js");
    const text = `${existing}${existing && !existing.endsWith("\n") ? "\n" : ""}# kvmctl: status blocks are not part of what git stores\n${missing.join("\n")}\n`;
    await replaceFile(attributes, Buffer.from(text), { any: true });
  }
  await installPushHook(gitDir, [...nodeCommand, "--dir", path.resolve(ctx.dir), "git-push-to-checkout"]);
  // Files whose only change is status: git's index still holds their old size, which makes
  // `git status` list them; re-adding them records the same blob with the current size.
  const listed = String((await git("status", "--porcelain", "-z", "--untracked-files=no")).stdout).split("\0").filter(Boolean);
  const modified = listed.filter((e) => e.startsWith(" M ")).map((e) => e.slice(3));
  const changed = new Set(String((await git("diff", "--name-only", "-z")).stdout).split("\0").filter(Boolean));
  const statusOnly = modified.filter((f) => !changed.has(f) && /\.ya?ml$/.test(f));
  const top = String((await git("rev-parse", "--show-toplevel")).stdout).trim();
  if (statusOnly.length) await execa("git", ["-C", top, "update-index", "--", ...statusOnly], { reject: false });
  process.stdout.write(`git checkout ${path.dirname(gitDir)}: status blocks are invisible to git (filter ${GIT_FILTER} for *.yaml, *.yml)\n`);
}

const HOOK_MARK = "# kvmctl push-to-checkout";

/**
 * git's push-to-checkout hook: a push into this checkout (receive.denyCurrentBranch
 * updateInstead) updates the working tree the way `kvmctl pull` does, status set aside and put
 * back. A hook someone else wrote is left alone (and said so).
 */
async function installPushHook(gitDir: string, command: string[]): Promise<void> {
  const hook = path.join(gitDir, "hooks", "push-to-checkout");
  const existing = fs.existsSync(hook) ? fs.readFileSync(hook, "utf8") : undefined;
  if (existing !== undefined && !existing.includes(HOOK_MARK)) {
    process.stderr.write(`warning: ${hook} exists and is not kvmctl's: pushes into this checkout do not set status aside (kvmctl pull does)\n`);
    return;
  }
  const { replaceFile } = await import("../../store/safe-write.js");
  fs.mkdirSync(path.dirname(hook), { recursive: true });
  const text = `#!/bin/sh\n${HOOK_MARK}: a push into this checkout moves it like \`kvmctl pull\` (status set aside and put back)\nexec ${command.map(shellWord).join(" ")} "$1"\n`;
  await replaceFile(hook, Buffer.from(text), { any: true });
  const fd = fs.openSync(hook, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    fs.fchmodSync(fd, 0o755); // git runs only executable hooks
  } finally {
    fs.closeSync(fd);
  }
}

/** `kvmctl git-push-to-checkout COMMIT`: run by git as the push-to-checkout hook. */
export async function runPushToCheckout(ctx: CliContext, commit: string): Promise<void> {
  if (!/^[0-9a-f]{40,64}$/.test(commit)) throw new CliError(`git-push-to-checkout: ${JSON.stringify(commit)} is not a commit id`);
  const [{ GitCheckout }, { pushToCheckout, PullError }] = await Promise.all([import("../../gitops/checkout.js"), import("../../gitops/pull.js")]);
  const checkout = await GitCheckout.open(ctx.dir);
  if (!checkout) throw new CliError(`${ctx.dir} is not in a git checkout`);
  try {
    const moved = await pushToCheckout(checkout, await ctx.openStore(), commit);
    process.stderr.write(`kvmctl: checkout updated to ${commit.slice(0, 12)}; ${moved.files} file(s) changed, ${moved.statusesBack} status block(s) put back\n`);
  } catch (error) {
    if (error instanceof PullError) throw new CliError(error.message.replace("the upstream changes", "the push changes").replace("then pull again", "then push again"));
    throw error;
  }
}

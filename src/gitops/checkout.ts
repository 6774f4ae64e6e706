// The git checkout holding a manifest directory, as the controller and `kvmctl pull` see it:
// where it is, which revision its manifests are at, whether git is busy in it, and whether
// status blocks are hidden from git (`kvmctl git-setup`). Runs git with argument arrays only.
import fs from "node:fs";
import path from "node:path";
import { isManifestFileName, scanManifestDir } from "../store/scan.js";
import { differingFiles, formatRevision, gitBlobId, parseLsTree, type Revision } from "./revision.js";

export interface GitResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** The filter `kvmctl git-setup` installs (src/cli/commands/git.ts). */
export const GIT_FILTER = "kvmctl-status";

/**
 * The environment git runs in: what a git hook exported (GIT_DIR, GIT_INDEX_FILE...) would
 * point our commands at another repository, and a fetch must never wait for a password.
 */
function gitEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!/^GIT_/.test(name)) env[name] = value;
  return { ...env, GIT_TERMINAL_PROMPT: "0", LC_ALL: "C" };
}

export class GitCheckout {
  /** Blob ids of working files by path, while their size and mtime stay the same. */
  private readonly blobs = new Map<string, { stamp: string; blob: string }>();

  private constructor(
    /** The manifest directory. */
    readonly dir: string,
    /** The checkout's top directory. */
    readonly top: string,
    /** The manifest directory's path inside the repository: "" or "sub/dir/". */
    readonly prefix: string,
    /** The checkout's git directory (`.git`, or a worktree's). */
    readonly gitDir: string,
    /** Where the refs are (the main repository's git directory for a worktree). */
    readonly commonDir: string,
  ) {}

  /**
   * A mark of what HEAD points at, from a few stats and no git process: it changes with a
   * commit, a checkout, a reset, a pull or a push into the checkout (which change no manifest
   * when only HEAD moves), so the controller can tell its revision changed.
   */
  headMark(): string {
    const stamp = (file: string) => {
      try {
        const st = fs.statSync(file);
        return `${st.ino}:${st.size}:${st.mtimeMs}`;
      } catch {
        return "-";
      }
    };
    let head = "";
    try {
      head = fs.readFileSync(path.join(this.gitDir, "HEAD"), "utf8").trim();
    } catch {
      // no HEAD: a broken checkout; the revision says so
    }
    const ref = /^ref: (refs\/[^\0]+)$/.exec(head)?.[1];
    return `${head} ${ref ? stamp(path.join(this.commonDir, ref)) : ""} ${stamp(path.join(this.commonDir, "packed-refs"))}`;
  }

  /** The checkout holding `dir`, or undefined when `dir` is not in one (or git is missing). */
  static async open(dir: string): Promise<GitCheckout | undefined> {
    const probe = await runGit(dir, ["rev-parse", "--show-toplevel", "--show-prefix", "--absolute-git-dir", "--path-format=absolute", "--git-common-dir"]);
    if (!probe.ok) return undefined;
    const [top, prefix, gitDir, commonDir] = probe.stdout.split("\n");
    if (!top || prefix === undefined || !gitDir || !commonDir) return undefined;
    return new GitCheckout(path.resolve(dir), top, prefix, gitDir, commonDir);
  }

  /** git in the checkout's top directory. */
  git(args: readonly string[]): Promise<GitResult> {
    return runGit(this.top, args);
  }

  /** Like git(), but a failure throws with git's message. */
  async must(args: readonly string[]): Promise<string> {
    const result = await this.git(args);
    if (!result.ok) throw new Error(`git ${args.join(" ")}: ${result.stderr || "failed"}`);
    return result.stdout;
  }

  /**
   * A mark of the index while no git command is changing the checkout (undefined while one is:
   * its `index.lock` exists). A snapshot read between two equal marks saw no git operation.
   */
  settledMark(): string | undefined {
    if (fs.existsSync(path.join(this.gitDir, "index.lock"))) return undefined;
    try {
      const st = fs.statSync(path.join(this.gitDir, "index"));
      const head = fs.readFileSync(path.join(this.gitDir, "HEAD"), "utf8");
      return `${st.ino}:${st.size}:${st.mtimeMs}:${head}`;
    } catch {
      return "no-index";
    }
  }

  /** Whether `kvmctl git-setup` has hidden status blocks from git here. */
  async statusFilterInstalled(): Promise<boolean> {
    const filter = await this.git(["config", "--get", `filter.${GIT_FILTER}.clean`]);
    if (!filter.ok || !filter.stdout.trim()) return false;
    const probe = await this.git(["check-attr", "filter", "--", `${this.prefix}probe.yaml`]);
    return probe.ok && probe.stdout.trim().endsWith(`: filter: ${GIT_FILTER}`);
  }

  /**
   * The revision the manifest directory is at: HEAD's branch and commit, dirty when any
   * manifest file (status blocks stripped) differs from HEAD, is untracked, or is gone.
   * `exclude`: real paths inside the directory that hold no manifests (a status directory).
   */
  async revision(exclude: ReadonlySet<string> = new Set()): Promise<Revision & { differing: string[] }> {
    const [head, branch] = await Promise.all([this.must(["rev-parse", "--verify", "HEAD"]), this.git(["symbolic-ref", "--quiet", "--short", "HEAD"])]);
    const listing = await this.must(["ls-tree", "-r", "-z", "--full-tree", "HEAD", "--", ...(this.prefix ? [this.prefix] : [])]);
    const committed = parseLsTree(listing, this.prefix, (rel) => rel.split("/").every((part) => !part.startsWith(".")) && isManifestFileName(path.posix.basename(rel)));
    const working = new Map<string, string>();
    const { withoutStatusBlocks } = await import("../store/status-writer.js");
    const seen = new Set<string>();
    for (const file of scanManifestDir(this.dir, exclude).files) {
      seen.add(file.abs);
      try {
        const st = fs.lstatSync(file.abs);
        const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
        const cached = this.blobs.get(file.abs);
        if (cached?.stamp === stamp) {
          working.set(file.rel, cached.blob);
          continue;
        }
        const bytes = fs.readFileSync(file.abs);
        const text = bytes.toString("utf8");
        // Only a file with a status block needs the YAML parse.
        const clean = /^status:/m.test(text) ? Buffer.from(withoutStatusBlocks(text), "utf8") : bytes;
        const blob = gitBlobId(clean);
        this.blobs.set(file.abs, { stamp, blob });
        working.set(file.rel, blob);
      } catch {
        working.set(file.rel, "unreadable");
      }
    }
    for (const abs of this.blobs.keys()) if (!seen.has(abs)) this.blobs.delete(abs);
    const differing = differingFiles(committed, working);
    return { branch: branch.ok ? branch.stdout.trim() : undefined, commit: head.trim(), dirty: differing.length > 0, differing };
  }

  /** formatRevision(revision()). */
  async revisionString(exclude?: ReadonlySet<string>): Promise<string> {
    return formatRevision(await this.revision(exclude));
  }
}

/** git with `args` in `cwd` (never through a shell); stdout without its final newline kept as is. */
export async function runGit(cwd: string, args: readonly string[]): Promise<GitResult> {
  const { execa } = await import("execa");
  try {
    const result = await execa("git", ["-C", cwd, ...args], { reject: false, stripFinalNewline: false, env: gitEnvironment(), extendEnv: false, stdin: "ignore" });
    return { ok: result.exitCode === 0, stdout: String(result.stdout), stderr: String(result.stderr).trim() };
  } catch (error) {
    return { ok: false, stdout: "", stderr: error instanceof Error ? error.message : String(error) };
  }
}

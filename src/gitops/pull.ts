// Updates the git checkout holding the manifest directory from its upstream, status-aware
// (`kvmctl pull`, and the controller's --git-pull). The status blocks the controller wrote are
// set aside — kept in `.kvmctl/pull-status.json` until they are back, so a killed pull loses
// nothing and the next one puts them back first — the files they were in given their committed
// bytes, the upstream merged (fast-forward, or git's configured merge or rebase when local
// commits diverge), and every status put back for the objects that still exist (a changed
// spec shows a stale observedGeneration until reconciled). A real conflict — uncommitted spec
// edits in files the upstream changes, or a merge git cannot make — is never resolved here:
// the checkout is left exactly as it was and the error says which files and what to do.
import fs from "node:fs";
import path from "node:path";
import type { ManifestStore } from "../store/index.js";
import type { GitCheckout } from "./checkout.js";

export type PullFailureReason = "NoUpstream" | "FetchFailed" | "LocalChanges" | "Diverged" | "Conflict" | "MergeFailed" | "Busy";

export class PullError extends Error {
  constructor(
    readonly reason: PullFailureReason,
    message: string,
    /** The files the failure is about (colliding, conflicting), relative to the checkout's top. */
    readonly files: string[] = [],
  ) {
    super(message);
    this.name = "PullError";
  }
}

export interface PullOutcome {
  /** The upstream branch, e.g. origin/main. */
  upstream: string;
  from: string;
  to: string;
  /** How the checkout got there; "none" when it was up to date. */
  how: "none" | "fast-forward" | "merge" | "rebase";
  /** Files that differ between the old and new HEAD. */
  files: number;
  /** Status blocks put back. */
  statusesBack: number;
  /** Local commits not on the upstream (after the pull). */
  ahead: number;
}

type WriteStatus = (key: string, status: Record<string, unknown>) => Promise<boolean>;

export interface PullOptions {
  checkout: GitCheckout;
  store: ManifestStore;
  /**
   * Runs the part that changes files with the store's status writes held off (ManifestStore.exclusive),
   * handing it a status writer that is not held. The controller also holds its snapshot there.
   */
  exclusive?: <T>(fn: (writeStatus: WriteStatus) => Promise<T>) => Promise<T>;
}

/** What `.kvmctl/pull-status.json` holds while a pull is under way. */
interface SetAside {
  /** Key → status, for the statuses set aside and not put back yet. */
  statuses: Record<string, Record<string, unknown>>;
  /** Set while git merges or rebases: HEAD before it, and how (a killed pull's leftover is undone). */
  merging?: { head: string; how: "merge" | "rebase" };
}

export async function pullCheckout(options: PullOptions): Promise<PullOutcome> {
  const { checkout, store } = options;
  const exclusive = options.exclusive ?? ((fn) => store.exclusive(fn));
  const upstreamName = await checkout.git(["rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}"]);
  if (!upstreamName.ok) throw new PullError("NoUpstream", `the checkout ${checkout.top} has no upstream branch to pull from (git branch --set-upstream-to=REMOTE/BRANCH)`);
  const upstream = upstreamName.stdout.trim();

  // A pull killed after setting status aside: put it back first.
  await exclusive((writeStatus) => finishInterruptedPull(checkout, store, writeStatus));

  const fetched = await checkout.git(["fetch", "--quiet"]);
  if (!fetched.ok) throw new PullError("FetchFailed", `git fetch: ${fetched.stderr || "failed"} (the checkout is unchanged)`);

  return exclusive(async (writeStatus) => {
    const head = (await checkout.must(["rev-parse", "HEAD"])).trim();
    const target = (await checkout.must(["rev-parse", "@{u}"])).trim();
    const ahead = async () => Number((await checkout.must(["rev-list", "--count", "@{u}..HEAD"])).trim());
    if (head === target || (await checkout.git(["merge-base", "--is-ancestor", "@{u}", "HEAD"])).ok) {
      return { upstream, from: head, to: head, how: "none", files: 0, statusesBack: 0, ahead: await ahead() };
    }
    const how = (await checkout.git(["merge-base", "--is-ancestor", "HEAD", "@{u}"])).ok ? "fast-forward" : await divergedStrategy(checkout, upstream);
    const moved = await moveCheckout({ checkout, store, writeStatus, head, target, how, label: upstream });
    return { upstream, from: head, to: (await checkout.must(["rev-parse", "HEAD"])).trim(), how, ...moved, ahead: await ahead() };
  });
}

/**
 * `kvmctl git-push-to-checkout COMMIT`, git's push-to-checkout hook (installed by `kvmctl
 * git-setup`) for a push into the host's non-bare checkout (receive.denyCurrentBranch
 * updateInstead): the working tree and index updated to COMMIT like a fast-forward pull, status
 * set aside and put back; git moves the branch afterwards. Refused (the push with it) on the
 * same conflicts as a pull.
 */
export async function pushToCheckout(checkout: GitCheckout, store: ManifestStore, target: string): Promise<{ files: number; statusesBack: number }> {
  // This runs in git's process, not the controller's: a status write of a running controller
  // can land between setting a file's status aside and git reading it ("not uptodate"). Each
  // attempt undoes itself, so it is tried again a few times.
  for (let attempt = 1; ; attempt++) {
    try {
      return await store.exclusive(async (writeStatus) => {
        await finishInterruptedPull(checkout, store, writeStatus);
        const head = (await checkout.must(["rev-parse", "HEAD"])).trim();
        return moveCheckout({ checkout, store, writeStatus, head, target, how: "read-tree", label: "the pushed commit" });
      });
    } catch (error) {
      const raced = error instanceof PullError && (error.reason === "Busy" || (error.reason === "MergeFailed" && /not uptodate/.test(error.message)));
      if (!raced || attempt >= 5) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
}

interface Move {
  checkout: GitCheckout;
  store: ManifestStore;
  writeStatus: WriteStatus;
  head: string;
  target: string;
  how: "fast-forward" | "merge" | "rebase" | "read-tree";
  /** What the target is, for messages: "origin/main". */
  label: string;
}

/** The checkout from `head` to `target` (or merged with it), status set aside and put back; the rest of pull's contract. */
async function moveCheckout({ checkout, store, writeStatus, head, target, how, label }: Move): Promise<{ files: number; statusesBack: number }> {
  const savedFile = path.join(store.dataDir, "pull-status.json");
  // The files the target changes, and which of them hold more than status in the working tree.
  const { withoutStatusBlocks, statusesInText } = await import("../store/status-writer.js");
  const incoming = (await checkout.must(["diff", "--name-only", "--no-renames", "-z", head, target])).split("\0").filter(Boolean);
  const touched: { rel: string; abs: string; text: string; committed: string }[] = [];
  const colliding: string[] = [];
  for (const rel of incoming) {
    const abs = path.join(checkout.top, rel);
    if (!fs.existsSync(abs)) continue;
    const committed = await checkout.git(["show", `${head}:${rel}`]);
    if (!committed.ok) {
      colliding.push(`${rel} (untracked here, added in ${label})`);
      continue;
    }
    const text = fs.readFileSync(abs, "utf8");
    if (text === committed.stdout) continue;
    if (!/\.ya?ml$/.test(rel) || withoutStatusBlocks(text) !== committed.stdout) colliding.push(rel);
    else touched.push({ rel, abs, text, committed: committed.stdout });
  }
  if (colliding.length) {
    throw new PullError("LocalChanges", `uncommitted changes in files the upstream changes: ${colliding.join(", ")}; commit or stash them, then pull again (nothing was changed)`, colliding);
  }

  // Set the status aside (durably first), then give the files their committed bytes.
  const { replaceFile, versionOf } = await import("../store/safe-write.js");
  const { contentHash } = await import("../store/read-text.js");
  const { ensureDataDir } = await import("../store/disk-cache.js");
  const saved: SetAside = { statuses: {} };
  for (const file of touched) for (const [key, status] of statusesInText(file.text)) saved.statuses[key] = status;
  ensureDataDir(store.stateRoot);
  const record = (value: SetAside) => replaceFile(savedFile, Buffer.from(JSON.stringify(value)), { any: true });
  await record(saved);
  const given: typeof touched = [];
  /** Undoes everything: each file given back its exact bytes (if it still holds the committed ones). */
  const undo = async () => {
    for (const file of given) {
      const now = fs.readFileSync(file.abs, "utf8");
      if (now === file.committed) await replaceFile(file.abs, Buffer.from(file.text), { version: versionOf(fs.statSync(file.abs), contentHash(now)) });
    }
    await checkout.git(["update-index", "-q", "--refresh"]);
    fs.rmSync(savedFile, { force: true });
  };
  for (const file of touched) {
    // Only if it is still the file read above: anyone's write meanwhile means pull again.
    const written = await replaceFile(file.abs, Buffer.from(file.committed), { version: versionOf(fs.statSync(file.abs), contentHash(file.text)) });
    if (written === "conflict") {
      await undo();
      throw new PullError("Busy", `${file.rel} changed while kvmctl pulled; nothing was changed: pull again`, [file.rel]);
    }
    given.push(file);
  }
  // The index may hold those files' sizes with status (kvmctl git-setup): record the committed bytes.
  if (touched.length) await checkout.git(["update-index", "-q", "--", ...touched.map((f) => f.abs)]);

  if (how === "merge" || how === "rebase") await record({ ...saved, merging: { head, how } });
  const merged =
    how === "fast-forward"
      ? await checkout.git(["merge", "--ff-only", "--quiet", target])
      : how === "merge"
        ? await checkout.git(["merge", "--no-edit", "--quiet", target])
        : how === "rebase"
          ? await checkout.git(["rebase", "--quiet", target])
          : await checkout.git(["read-tree", "-u", "-m", head, target]);
  if (!merged.ok) {
    const conflicts = (await checkout.git(["diff", "--name-only", "--diff-filter=U", "-z"])).stdout.split("\0").filter(Boolean);
    if (how === "merge" || how === "rebase") await checkout.git([how, "--abort"]);
    await undo();
    if (conflicts.length) {
      throw new PullError(
        "Conflict",
        `${how === "merge" ? `merging ${label} into` : `rebasing onto ${label}`} the checkout's local commits conflicts in ${conflicts.join(", ")}: kvmctl does not resolve conflicts; the checkout is as it was — ${how} ${label} yourself, resolve, commit, then pull again`,
        conflicts,
      );
    }
    throw new PullError("MergeFailed", `git ${how}: ${merged.stderr || merged.stdout.trim() || "failed"}; the checkout is as it was`);
  }
  return { files: incoming.length, statusesBack: await putBack(savedFile, store, writeStatus) };
}

/** Local commits diverge from the upstream: git's configured way (pull.rebase, pull.ff), never an interactive one. */
async function divergedStrategy(checkout: GitCheckout, upstream: string): Promise<"merge" | "rebase"> {
  const branch = (await checkout.git(["symbolic-ref", "--quiet", "--short", "HEAD"])).stdout.trim();
  const config = async (name: string) => (await checkout.git(["config", "--get", name])).stdout.trim().toLowerCase();
  const rebase = (branch ? await config(`branch.${branch}.rebase`) : "") || (await config("pull.rebase"));
  if (rebase === "interactive" || rebase === "i") throw new PullError("Diverged", `the checkout's local commits diverge from ${upstream} and git is set to rebase interactively: pull by hand (nothing was changed)`);
  if (rebase === "true" || rebase === "merges" || rebase === "m") return "rebase";
  if ((await config("pull.ff")) === "only") {
    throw new PullError("Diverged", `the checkout has commits that are not on ${upstream} and pull.ff is only: kvmctl does not merge them; merge or rebase them yourself (nothing was changed)`);
  }
  return "merge";
}

/**
 * What a killed pull left: git's merge or rebase undone if it stopped half-way, and the status
 * it set aside put back. Returns how many status blocks came back.
 */
export async function finishInterruptedPull(checkout: GitCheckout, store: ManifestStore, writeStatus: WriteStatus): Promise<number> {
  const savedFile = path.join(store.dataDir, "pull-status.json");
  if (!fs.existsSync(savedFile)) return 0;
  const saved = readSetAside(savedFile);
  if (saved.merging && (await checkout.must(["rev-parse", "HEAD"])).trim() === saved.merging.head) {
    // Stopped in the middle of our merge or rebase (conflict markers and all): undo it.
    if (saved.merging.how === "merge" && fs.existsSync(path.join(checkout.gitDir, "MERGE_HEAD"))) await checkout.git(["merge", "--abort"]);
    if (saved.merging.how === "rebase" && (fs.existsSync(path.join(checkout.gitDir, "rebase-merge")) || fs.existsSync(path.join(checkout.gitDir, "rebase-apply")))) await checkout.git(["rebase", "--abort"]);
  }
  return putBack(savedFile, store, writeStatus);
}

function readSetAside(file: string): SetAside {
  try {
    const value = JSON.parse(fs.readFileSync(file, "utf8")) as SetAside;
    return { statuses: value.statuses ?? {}, ...(value.merging ? { merging: value.merging } : {}) };
  } catch {
    return { statuses: {} };
  }
}

/** Puts the statuses set aside back for the objects that exist; forgets the rest. */
async function putBack(savedFile: string, store: ManifestStore, writeStatus: WriteStatus): Promise<number> {
  const saved = readSetAside(savedFile);
  await store.read();
  let back = 0;
  for (const [key, status] of Object.entries(saved.statuses)) {
    if (await writeStatus(key, status).catch(() => false)) back++;
  }
  fs.rmSync(savedFile, { force: true });
  return back;
}

// `kvmctl pull`: update the git checkout holding the manifest directory from its upstream,
// status-aware. The status blocks the controller wrote are set aside (kept in
// .kvmctl/pull-status.json until they are back), the files they were in given back their
// committed bytes, the upstream fetched and fast-forwarded, and every status put back for the
// objects that still exist (a changed spec shows a stale observedGeneration until reconciled).
// A real conflict — local commits that diverge, uncommitted spec edits in files the upstream
// changes — is never resolved here: kvmctl stops before changing anything and says what to do.
import fs from "node:fs";
import path from "node:path";
import type { CliContext } from "../context.js";
import { CliError } from "../errors.js";

interface Saved {
  /** Key → status, for the statuses set aside and not put back yet. */
  statuses: Record<string, Record<string, unknown>>;
}

export async function runPull(ctx: CliContext): Promise<void> {
  const { execa } = await import("execa");
  const git = async (...args: string[]) => {
    const result = await execa("git", ["-C", ctx.dir, ...args], { reject: false, stripFinalNewline: false });
    return { ok: result.exitCode === 0, stdout: String(result.stdout), stderr: String(result.stderr).trim() };
  };
  const must = async (...args: string[]) => {
    const result = await git(...args);
    if (!result.ok) throw new CliError(`git ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  };
  const top = (await must("rev-parse", "--show-toplevel")).trim();
  const upstream = await git("rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}");
  if (!upstream.ok) throw new CliError(`the checkout ${top} has no upstream branch to pull from (git branch --set-upstream-to=REMOTE/BRANCH)`);

  const store = await ctx.openStore();
  const { statusesInText, withoutStatusBlocks } = await import("../../store/status-writer.js");
  const { replaceFile, versionOf } = await import("../../store/safe-write.js");
  const { ensureDataDir } = await import("../../store/disk-cache.js");
  const savedFile = path.join(store.dataDir, "pull-status.json");

  // A pull killed after setting status aside: put it back first.
  await restore(savedFile, store);

  await must("fetch", "--quiet");
  const head = (await must("rev-parse", "HEAD")).trim();
  const target = (await must("rev-parse", "@{u}")).trim();
  if (head === target) {
    process.stdout.write(`already up to date (${upstream.stdout.trim()} at ${target.slice(0, 12)})\n`);
    return;
  }
  if (!(await git("merge-base", "--is-ancestor", "HEAD", "@{u}")).ok) {
    throw new CliError(`the checkout has commits that are not on ${upstream.stdout.trim()}: kvmctl does not merge them; merge or rebase them yourself (nothing was changed)`);
  }

  // The files the upstream changes, and which of them hold more than status in the working tree.
  const incoming = (await must("diff", "--name-only", "-z", "HEAD", "@{u}")).split("\0").filter(Boolean);
  const touched: { rel: string; abs: string; text: string; committed: string }[] = [];
  const colliding: string[] = [];
  for (const rel of incoming) {
    const abs = path.join(top, rel);
    if (!fs.existsSync(abs)) continue;
    const committed = await git("show", `HEAD:${rel}`);
    if (!committed.ok) {
      colliding.push(`${rel} (untracked here, added upstream)`);
      continue;
    }
    const text = fs.readFileSync(abs, "utf8");
    if (text === committed.stdout) continue;
    if (!/\.ya?ml$/.test(rel) || withoutStatusBlocks(text) !== committed.stdout) colliding.push(rel);
    else touched.push({ rel, abs, text, committed: committed.stdout });
  }
  if (colliding.length) {
    throw new CliError(`uncommitted changes in files the upstream changes: ${colliding.join(", ")}; commit or stash them, then pull again (nothing was changed)`);
  }

  // Set the status aside (durably first), then give the files their committed bytes.
  const saved: Saved = { statuses: {} };
  for (const file of touched) for (const [key, status] of statusesInText(file.text)) saved.statuses[key] = status;
  ensureDataDir(store.stateRoot);
  await replaceFile(savedFile, Buffer.from(JSON.stringify(saved)), { any: true });
  const { contentHash } = await import("../../store/read-text.js");
  for (const file of touched) {
    // Only if it is still the file read above: a status write meanwhile means pull again.
    const written = await replaceFile(file.abs, Buffer.from(file.committed), { version: versionOf(fs.statSync(file.abs), contentHash(file.text)) });
    if (written === "conflict") {
      await restore(savedFile, store);
      throw new CliError(`${file.rel} changed while kvmctl pulled (a status write?); the status blocks were put back, nothing else changed: pull again`);
    }
  }
  // The index may hold those files' sizes with status (kvmctl git-setup): record the committed bytes.
  if (touched.length) await git("update-index", "-q", "--", ...touched.map((f) => f.abs));
  const merged = await git("merge", "--ff-only", "--quiet", "@{u}");
  if (!merged.ok) {
    await restore(savedFile, store);
    throw new CliError(`git merge --ff-only: ${merged.stderr}; the status blocks were put back, nothing else changed`);
  }
  const back = await restore(savedFile, store);
  process.stdout.write(`updated ${head.slice(0, 12)}..${target.slice(0, 12)} from ${upstream.stdout.trim()}; ${incoming.length} file(s) changed, ${back} status block(s) put back\n`);
}

/** Puts the statuses set aside back for the objects that exist; forgets the rest. Returns how many. */
async function restore(savedFile: string, store: Awaited<ReturnType<CliContext["openStore"]>>): Promise<number> {
  if (!fs.existsSync(savedFile)) return 0;
  let saved: Saved;
  try {
    saved = JSON.parse(fs.readFileSync(savedFile, "utf8")) as Saved;
  } catch {
    saved = { statuses: {} };
  }
  await store.read();
  let back = 0;
  for (const [key, status] of Object.entries(saved.statuses ?? {})) {
    if (await store.writeStatus(key, status).catch(() => false)) back++;
  }
  fs.rmSync(savedFile, { force: true });
  return back;
}

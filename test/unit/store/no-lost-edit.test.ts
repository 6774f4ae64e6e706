// No edit is ever lost to a status write (issue 12): a second process writes status in a loop
// while this one applies, deletes, edits in place and replaces by rename (as git does). After
// each change the test waits until the writer has written twice more — the positive signal that
// it looked — and checks the change is still there. kvmctl's own writers (apply, delete) share
// the writer's lock and are raced at full speed; other programs' edits and renames are checked
// against a writer doing 100 status writes a second (far busier than a controller is on one
// object), since against them only the check-to-rename gap of the rename(2) itself remains
// (src/store/safe-write.ts).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { ManifestStore, parseManifestSource } from "../../../src/store/index.js";
import { tempDir } from "./helpers.js";

const CHILD = fileURLToPath(new URL("./status-loop-child.ts", import.meta.url));
const manifest = (cpus: number, memory = 256) => `apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: web\nspec:\n  cpus: ${cpus}\n  memory: ${memory}Mi\n`;

/** The status writer in its own process, with a count of the writes it has finished. */
function startWriter(dir: string, pauseMs = 0) {
  const child = spawn(process.execPath, ["--import", "tsx", CHILD, dir, String(pauseMs)], { stdio: ["pipe", "pipe", "pipe"] });
  let count = 0;
  let errors = "";
  let buffered = "";
  const waiters: { at: number; resolve: () => void }[] = [];
  const marks: ((done: number) => void)[] = [];
  child.stdout!.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith("mark ")) marks.shift()?.(Number(line.slice(5)));
      else count = Number(line);
    }
    for (const w of waiters.filter((w) => count >= w.at)) w.resolve();
  });
  child.stderr!.on("data", (chunk: Buffer) => (errors += chunk.toString()));
  return {
    /**
     * Resolves once the writer has finished `n` more writes counted from when it saw this call
     * (its own count, not our possibly stale reading of its output): with n >= 2, at least one
     * of them started after everything done before the call.
     */
    async more(n = 2): Promise<void> {
      const seen = await new Promise<number>((resolve) => {
        marks.push(resolve);
        child.stdin!.write("mark\n");
      });
      const at = seen + n;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the status writer stalled at ${count}: ${errors}`)), 20_000);
        waiters.push({ at, resolve: () => (clearTimeout(timer), resolve()) });
        if (count >= at) waiters.at(-1)!.resolve();
      });
    },
    get errors() {
      return errors;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        const kill = setTimeout(() => child.kill("SIGKILL"), 5_000);
        child.once("exit", () => (clearTimeout(kill), resolve()));
        child.stdin!.end();
      }),
  };
}

const specOf = (file: string) => (parse(fs.readFileSync(file, "utf8")) as { spec: { cpus: number; memory: string } }).spec;

async function manifestDir(): Promise<{ dir: string; file: string }> {
  const dir = await tempDir("kvmctl-no-lost-edit-");
  const file = path.join(dir, "virtualmachines", "web.yaml");
  fs.mkdirSync(path.dirname(file));
  fs.writeFileSync(file, manifest(1));
  return { dir, file };
}

/**
 * Against a writer at full speed an apply or delete may give up (FileConflictError: the file
 * kept changing, nothing was written): refused, not lost, and what a person does then is run
 * it again. Lost would be an edit reported done that is not in the file.
 */
async function refusedIsRetried<T>(edit: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await edit();
    } catch (error) {
      if ((error as Error).name !== "FileConflictError" || attempt >= 5) throw error;
    }
  }
}

test("a status writer at full speed loses none of 40 applies and 20 deletes", { timeout: 120_000 }, async () => {
  const { dir, file } = await manifestDir();
  const writer = startWriter(dir);
  const cli = new ManifestStore({ dir, diskCache: false }); // as `kvmctl apply` / `delete` would
  const lost: string[] = [];
  try {
    await writer.more(3);
    for (let i = 0; i < 40; i++) {
      const source = await parseManifestSource(manifest(100 + i), "<input>");
      const applied = await refusedIsRetried(() => cli.applyDocuments(source.documents));
      assert.ok(applied.ok, JSON.stringify(applied.problems));
      await writer.more();
      if (specOf(file).cpus !== 100 + i) lost.push(`apply ${i}: cpus ${specOf(file).cpus}`);
    }
    for (let i = 0; i < 20; i++) {
      assert.ok(await refusedIsRetried(() => cli.deleteObject("VirtualMachine/web")));
      await writer.more();
      if (fs.existsSync(file)) lost.push(`delete ${i}: the manifest came back`);
      fs.writeFileSync(file, manifest(1)); // the next round needs it
      await writer.more();
    }
  } finally {
    await writer.stop();
  }
  assert.deepEqual(lost, [], "edits lost to the status writer");
  assert.equal(writer.errors, "", "the status writer failed");
  assert.match(fs.readFileSync(file, "utf8"), /^status:/m, "the writer's own work is there too");
});

test("a busy status writer loses none of 40 edits in place and 40 renames by other programs", { timeout: 120_000 }, async () => {
  const { dir, file } = await manifestDir();
  const writer = startWriter(dir, 10);
  const lost: string[] = [];
  try {
    await writer.more(3);
    for (let i = 0; i < 40; i++) {
      // An editor saving in place: the whole file rewritten, status block and all.
      const text = fs.readFileSync(file, "utf8").replace(/memory: \d+Mi/, `memory: ${300 + i}Mi`);
      fs.writeFileSync(file, text);
      await writer.more();
      if (specOf(file).memory !== `${300 + i}Mi`) lost.push(`edit ${i}: memory ${specOf(file).memory}`);
    }
    for (let i = 0; i < 40; i++) {
      // git checkout: a new file renamed over the old one, without the status block.
      const temp = path.join(dir, "virtualmachines", `.web.yaml.git-${i}`);
      fs.writeFileSync(temp, manifest(200 + i));
      fs.renameSync(temp, file);
      await writer.more();
      if (specOf(file).cpus !== 200 + i) lost.push(`rename ${i}: cpus ${specOf(file).cpus}`);
    }
  } finally {
    await writer.stop();
  }
  assert.deepEqual(lost, [], "edits lost to the status writer");
  assert.equal(writer.errors, "", "the status writer failed");
  assert.match(fs.readFileSync(file, "utf8"), /^status:/m, "the writer's own work is there too");
});

test("temporary files a killed writer left behind are removed once stale, a live writer's are not", async () => {
  const { removeStaleTempFiles } = await import("../../../src/store/safe-write.js");
  const { dir } = await manifestDir();
  const stale = path.join(dir, "virtualmachines", ".web.yaml.kvmctl-0123456789abcdef.tmp");
  const fresh = path.join(dir, "virtualmachines", ".web.yaml.kvmctl-fedcba9876543210.tmp");
  const lookalike = path.join(dir, "virtualmachines", ".web.yaml.swp");
  for (const f of [stale, fresh, lookalike]) fs.writeFileSync(f, "x");
  const old = new Date(Date.now() - 120_000);
  fs.utimesSync(stale, old, old);
  assert.deepEqual(removeStaleTempFiles(dir), [stale]);
  assert.ok(fs.existsSync(fresh) && fs.existsSync(lookalike));
});

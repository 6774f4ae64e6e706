// What the safety-net rescan may skip: a file (or the requests directory) whose stat has not
// moved since a read that began well after its last change; everything else is read again.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { ManifestStore } from "../../../src/store/index.js";
import { RACY_MARGIN_MS } from "../../../src/store/file-stamp.js";
import { tempDir, VM, writeTree } from "./helpers.js";

/** Counts files opened for reading under `dir` while `run` runs. */
async function opensUnder<T>(dir: string, run: () => Promise<T>): Promise<{ result: T; opened: string[] }> {
  const original = fs.openSync;
  const opened: string[] = [];
  fs.openSync = ((file: fs.PathLike, ...rest: unknown[]) => {
    if (String(file).startsWith(dir)) opened.push(path.relative(dir, String(file)));
    return (original as (...args: unknown[]) => number)(file, ...rest);
  }) as typeof fs.openSync;
  try {
    return { result: await run(), opened };
  } finally {
    fs.openSync = original;
  }
}

/** An mtime that utimes can set back exactly (whole seconds, an hour ago). */
const OLD = Math.floor(Date.now() / 1000) - 3600;

const cpusOf = (snapshot: Awaited<ReturnType<ManifestStore["read"]>>, key: string) =>
  (snapshot.objects.get(key)?.object.spec as { cpus?: number } | undefined)?.cpus;

describe("unchanged files", () => {
  it("a same-size edit right after a read is seen (the file is too new for its stat to vouch)", async () => {
    const dir = await tempDir();
    writeTree(dir, { "web.yaml": VM("web") });
    const file = path.join(dir, "web.yaml");
    fs.utimesSync(file, OLD, OLD);
    const store = new ManifestStore({ dir, diskCache: false });
    assert.equal(cpusOf(await store.read(), "VirtualMachine/web"), 1);
    const before = fs.statSync(file, { bigint: true });
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("cpus: 1", "cpus: 2"));
    fs.utimesSync(file, OLD, OLD); // even with the old mtime back
    const after = fs.statSync(file, { bigint: true });
    assert.deepEqual([after.size, after.mtimeNs, after.ino], [before.size, before.mtimeNs, before.ino]);
    assert.equal(cpusOf(await store.read(), "VirtualMachine/web"), 2);
  });

  it("an old file with the same stat is not read again; any edit to it is, whatever its mtime says", async () => {
    const dir = await tempDir();
    writeTree(dir, { "web.yaml": VM("web"), "db.yaml": VM("db") });
    const file = path.join(dir, "web.yaml");
    fs.utimesSync(file, OLD, OLD);
    const store = new ManifestStore({ dir, diskCache: false });
    await store.read();
    await new Promise((resolve) => setTimeout(resolve, RACY_MARGIN_MS + 200)); // the files age past the margin
    const settling = await opensUnder(dir, () => store.read());
    assert.deepEqual(settling.opened.sort(), ["db.yaml", "web.yaml"], "read once more: the first read was too close to the writes");
    const quiet = await opensUnder(dir, () => store.read());
    assert.deepEqual(quiet.opened, [], "nothing moved: nothing is read");
    assert.equal(cpusOf(quiet.result, "VirtualMachine/web"), 1);

    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("cpus: 1", "cpus: 4"));
    fs.utimesSync(file, OLD, OLD); // same size, inode and mtime: only ctime moves
    const edited = await opensUnder(dir, () => store.read());
    assert.deepEqual(edited.opened, ["web.yaml"]);
    assert.equal(cpusOf(edited.result, "VirtualMachine/web"), 4);
    assert.equal(cpusOf(edited.result, "VirtualMachine/db"), 1);

    fs.rmSync(path.join(dir, "db.yaml"));
    fs.writeFileSync(path.join(dir, "db.yaml"), VM("db").replace("cpus: 1", "cpus: 3")); // a new inode
    assert.equal(cpusOf(await store.read(), "VirtualMachine/db"), 3);
  });
});

describe("reconcile requests", () => {
  it("a request made right after an empty look is taken, and taken once", async () => {
    const dir = await tempDir();
    writeTree(dir, { "web.yaml": VM("web") });
    const store = new ManifestStore({ dir, diskCache: false });
    assert.deepEqual(await store.takeReconcileRequests(), [], "no requests directory yet");
    await store.requestReconcile("VirtualMachine/web");
    assert.deepEqual(await store.takeReconcileRequests(), ["VirtualMachine/web"]);
    assert.deepEqual(await store.takeReconcileRequests(), []);
    await store.requestReconcile("VirtualMachine/web");
    assert.deepEqual(await store.takeReconcileRequests(), ["VirtualMachine/web"], "same tick as the empty look");
  });

  it("a settled empty requests directory is not listed again until it changes", async () => {
    const dir = await tempDir();
    writeTree(dir, { "web.yaml": VM("web") });
    const store = new ManifestStore({ dir, diskCache: false });
    await store.requestReconcile("VirtualMachine/web");
    assert.deepEqual(await store.takeReconcileRequests(), ["VirtualMachine/web"]);
    await new Promise((resolve) => setTimeout(resolve, RACY_MARGIN_MS + 200));
    assert.deepEqual(await store.takeReconcileRequests(), []);
    const original = fs.promises.readdir;
    let listed = 0;
    fs.promises.readdir = ((...args: Parameters<typeof original>) => ((listed += 1), original(...args))) as typeof original;
    try {
      assert.deepEqual(await store.takeReconcileRequests(), []);
      assert.equal(listed, 0, "the settled stamp vouches for the empty directory");
      await store.requestReconcile("VirtualMachine/web");
      assert.deepEqual(await store.takeReconcileRequests(), ["VirtualMachine/web"]);
      assert.equal(listed, 1);
    } finally {
      fs.promises.readdir = original;
    }
  });
});

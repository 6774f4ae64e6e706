// watch(): real files in a temp dir; reports the keys that changed, collapses bursts,
// and does not report the store's own status writes.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, it } from "node:test";
import { execFileSync } from "node:child_process";
import { GitCheckout } from "../../../src/gitops/checkout.js";
import { ManifestStore, type StoreChange, type StoreWatcher } from "../../../src/store/index.js";
import { NET, sleep, tempDir, until, VM, writeTree } from "./helpers.js";

let watcher: StoreWatcher | undefined;
afterEach(async () => {
  await watcher?.close();
  watcher = undefined;
});

async function watched(files: Record<string, string>, options: { rescanMs?: number; sub?: string } = {}) {
  const dir = options.sub ? path.join(await tempDir(), options.sub) : await tempDir();
  writeTree(dir, files);
  const store = new ManifestStore({ dir });
  const changes: StoreChange[] = [];
  watcher = await store.watch((change) => changes.push(change), { rescanMs: options.rescanMs });
  const keys = () => changes.flatMap((c) => c.keys);
  const next = async (what: string) => {
    const seen = changes.length;
    await until(() => changes.length > seen, 5000, what);
    return changes.at(-1)!;
  };
  return { dir, store, changes, keys, next, file: (rel: string) => path.join(dir, rel) };
}

describe("watch", () => {
  it("reports added, edited, invalid, valid again, unreadable and removed objects", async () => {
    const w = await watched({ "nets/lan.yaml": NET("lan") });

    let pending = w.next("add");
    writeTree(w.dir, { "vms/web1.yaml": VM("web1") });
    let change = await pending;
    assert.deepEqual(change.keys, ["VirtualMachine/web1"]);
    assert.ok(change.snapshot.objects.has("VirtualMachine/web1"));

    pending = w.next("spec edit");
    fs.writeFileSync(w.file("vms/web1.yaml"), VM("web1", "  cpus: 2\n"));
    assert.deepEqual((await pending).keys, ["VirtualMachine/web1"]);

    pending = w.next("became invalid");
    fs.writeFileSync(w.file("vms/web1.yaml"), VM("web1", "  cpu: 2\n"));
    change = await pending;
    assert.deepEqual(change.keys, ["VirtualMachine/web1"]);
    assert.ok(change.snapshot.invalid.has("VirtualMachine/web1"));

    pending = w.next("valid again");
    fs.writeFileSync(w.file("vms/web1.yaml"), VM("web1", "  cpus: 2\n"));
    change = await pending;
    assert.deepEqual(change.keys, ["VirtualMachine/web1"]);
    assert.ok(change.snapshot.objects.has("VirtualMachine/web1"));

    pending = w.next("unreadable");
    fs.writeFileSync(w.file("vms/web1.yaml"), "kind: [\n");
    change = await pending;
    assert.deepEqual(change.keys, ["VirtualMachine/web1"]);
    assert.deepEqual(change.snapshot.unreadableFiles.get("vms/web1.yaml")?.lastKnownKeys, ["VirtualMachine/web1"]);

    pending = w.next("removed");
    fs.rmSync(w.file("nets/lan.yaml"));
    change = await pending;
    assert.deepEqual(change.keys, ["Network/lan"]);
    assert.ok(!change.snapshot.objects.has("Network/lan"));
  });

  it("collapses a burst of writes into one report", async () => {
    const w = await watched({});
    const names = Array.from({ length: 20 }, (_, i) => `vm${i}`);
    for (const name of names) writeTree(w.dir, { [`vms/${name}.yaml`]: VM(name) });
    await until(() => new Set(w.keys()).size === 20, 5000, "all 20 keys");
    await sleep(300);
    assert.ok(w.changes.length <= 2, `expected the burst to collapse, got ${w.changes.length} reports`);
    assert.deepEqual([...new Set(w.keys())].sort(), names.map((n) => `VirtualMachine/${n}`).sort());
  });

  it("does not report its own status writes, but still sees the user's edits", async () => {
    const w = await watched({ "vms/web1.yaml": VM("web1"), "nets/lan.yaml": NET("lan") });
    // Count re-reads: events for files holding exactly what the store wrote must not cause one.
    let reads = 0;
    const read = w.store.read.bind(w.store);
    w.store.read = () => {
      reads += 1;
      return read();
    };
    for (let i = 0; i < 3; i++) {
      assert.equal(await w.store.writeStatus("VirtualMachine/web1", { observedGeneration: 1, phase: "Running", round: i }), true);
    }
    await sleep(400);
    assert.deepEqual(w.changes, [], "own writes are not changes");
    assert.equal(reads, 0, "own writes are dropped before re-reading");

    const pending = w.next("user edit after own writes");
    fs.writeFileSync(w.file("vms/web1.yaml"), fs.readFileSync(w.file("vms/web1.yaml"), "utf8").replace("cpus: 1", "cpus: 3"));
    const change = await pending;
    assert.deepEqual(change.keys, ["VirtualMachine/web1"]);
    assert.equal(change.snapshot.objects.get("VirtualMachine/web1")?.object.status?.phase, "Running", "the status written earlier is read back");
  });

  it("ignores dot-directories, non-YAML files and stops after close()", async () => {
    const w = await watched({ "nets/lan.yaml": NET("lan") });
    writeTree(w.dir, { ".hidden/x.yaml": VM("hidden"), "notes.txt": "hello", "nets/.swp.yaml": VM("swap") });
    await sleep(400);
    assert.deepEqual(w.changes, []);
    await watcher!.close();
    watcher = undefined;
    writeTree(w.dir, { "vms/late.yaml": VM("late") });
    await sleep(300);
    assert.deepEqual(w.changes, []);
  });

  it("a directory moved away is unreadable (nothing pruned); moved back, it is watched again and edits are seen", async () => {
    const w = await watched({ "vms/web.yaml": VM("web") }, { rescanMs: 200, sub: "state" });
    const away = path.join(path.dirname(w.dir), "moved-away");
    let pending = w.next("gone");
    fs.renameSync(w.dir, away);
    let change = await pending;
    assert.deepEqual(change.keys, ["VirtualMachine/web"]);
    assert.deepEqual(change.snapshot.unreadableFiles.get(".")?.lastKnownKeys, ["VirtualMachine/web"], "kept, not deleted");
    pending = w.next("back");
    fs.renameSync(away, w.dir);
    change = await pending;
    assert.ok(change.snapshot.objects.has("VirtualMachine/web"));
    pending = w.next("an edit after coming back");
    fs.writeFileSync(w.file("vms/web.yaml"), VM("web", "  cpus: 3\n"));
    change = await pending;
    assert.deepEqual(change.keys, ["VirtualMachine/web"]);
    assert.equal(change.snapshot.objects.get("VirtualMachine/web")?.raw.spec && (change.snapshot.objects.get("VirtualMachine/web")!.raw.spec as { cpus: number }).cpus, 3);
  });

  it("in a git checkout, waits while a git command holds the index and reports its whole change once", async () => {
    const dir = await tempDir();
    writeTree(dir, { "vms/a.yaml": VM("a") });
    execFileSync("git", ["init", "-q", dir]);
    execFileSync("git", ["-C", dir, "add", "."]);
    execFileSync("git", ["-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "a"]);
    const checkout = await GitCheckout.open(dir);
    assert.ok(checkout);
    let busyAnswers = 0;
    const store = new ManifestStore({ dir });
    const changes: StoreChange[] = [];
    const settledMark = () => {
      const mark = checkout.settledMark();
      if (mark === undefined) busyAnswers++;
      return mark;
    };
    watcher = await store.watch((change) => changes.push(change), { settledMark });
    // What git does in a checkout or reset: take index.lock, rewrite files one by one, let go.
    const lock = path.join(dir, ".git", "index.lock");
    fs.writeFileSync(lock, "");
    writeTree(dir, { "vms/a.yaml": VM("a", "  cpus: 2\n") });
    await until(() => busyAnswers >= 2, 5000, "the watcher asking twice while git is busy");
    writeTree(dir, { "vms/b.yaml": VM("b") });
    const asked = busyAnswers;
    await until(() => busyAnswers > asked, 5000, "the watcher asking again after the second file");
    assert.equal(changes.length, 0, "nothing reported while git holds the index");
    fs.rmSync(lock);
    await until(() => changes.length > 0, 5000, "the change after git let go");
    assert.deepEqual(changes[0]!.keys, ["VirtualMachine/a", "VirtualMachine/b"], "one change, both files");
    assert.equal((changes[0]!.snapshot.objects.get("VirtualMachine/a")!.raw.spec as { cpus: number }).cpus, 2);
  });
});

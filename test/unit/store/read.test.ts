// Reading the manifest directory: what is read, what a snapshot holds, the parse caches.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { specHash, type VirtualMachine } from "../../../src/api/index.js";
import { formatFieldPath, formatProblem, ManifestStore, type StoredObject } from "../../../src/store/index.js";
import { NET, posOf, tempDir, VM, writeTree } from "./helpers.js";

describe("read", () => {
  it("reads .yaml and .yml files recursively, several documents per file, skipping dot-paths and other files", async () => {
    const dir = await tempDir();
    const multi = `# two networks\n${NET("lan")}---\n${NET("dmz")}`;
    writeTree(dir, {
      "a/b/c/multi.yaml": multi,
      "vms/web1.yml": VM("web1"),
      "vms/.web2.yaml": VM("web2"),
      ".git/x.yaml": VM("web3"),
      "vms/readme.txt": VM("web4"),
      "vms/web5.yaml.bak": VM("web5"),
    });
    const snapshot = await new ManifestStore({ dir }).read();
    assert.deepEqual(snapshot.problems, []);
    assert.deepEqual([...snapshot.objects.keys()].sort(), ["Network/dmz", "Network/lan", "VirtualMachine/web1"]);
    assert.deepEqual(snapshot.objects.get("Network/dmz")?.location, { file: "a/b/c/multi.yaml", document: 2, line: Number(posOf(multi, "apiVersion", 2).split(":")[0]), column: 1 });
  });

  it("a missing directory is an empty store, and is not created by reading", async () => {
    const dir = path.join(await tempDir(), "nope");
    const snapshot = await new ManifestStore({ dir }).read();
    assert.equal(snapshot.objects.size + snapshot.problems.length + snapshot.unreadableFiles.size, 0);
    assert.ok(!fs.existsSync(dir));
  });

  it("kvmctl's own data directory ignores itself in git", async () => {
    const dir = await tempDir();
    writeTree(dir, { "a.yaml": NET("a") });
    await new ManifestStore({ dir }).read();
    assert.match(fs.readFileSync(path.join(dir, ".kvmctl/.gitignore"), "utf8"), /^\*$/m);
  });

  it("holds the validated object with defaults, the raw document without status, specHash and createdAt", async () => {
    const dir = await tempDir();
    writeTree(dir, {
      "web1.yaml": `${VM("web1")}status:\n  observedGeneration: 1\n  createdAt: "2024-01-02T03:04:05Z"\n`,
      "web2.yaml": VM("web2"),
    });
    const snapshot = await new ManifestStore({ dir }).read();
    const web1 = snapshot.objects.get("VirtualMachine/web1") as StoredObject<"VirtualMachine">;
    assert.equal(web1.kind, "VirtualMachine");
    assert.equal(web1.name, "web1");
    assert.equal(web1.object.spec.runStrategy, "Always");
    assert.equal(web1.object.spec.memory, 1024 ** 3);
    assert.deepEqual(web1.raw, { apiVersion: "kvmctl.dev/v1alpha1", kind: "VirtualMachine", metadata: { name: "web1" }, spec: { cpus: 1, memory: "1Gi" } });
    assert.equal(web1.specHash, specHash({ cpus: 1, memory: "1Gi" }));
    assert.equal(web1.createdAt.toISOString(), "2024-01-02T03:04:05.000Z");
    const stat = fs.statSync(path.join(dir, "web2.yaml"));
    const fileTime = stat.birthtimeMs > 0 ? stat.birthtime : stat.mtime;
    assert.equal(snapshot.objects.get("VirtualMachine/web2")!.createdAt.getTime(), fileTime.getTime());
  });

  it("cross-object conflicts make both sides invalid, each located in its own file", async () => {
    const dir = await tempDir();
    const net = (name: string) => NET(name, "  mode: isolated\n  ipv4: {address: 192.0.2.1, prefix: 24}\n");
    writeTree(dir, { "a.yaml": net("a"), "b.yaml": `# b\n${net("b")}`, "c.yaml": NET("c") });
    const snapshot = await new ManifestStore({ dir }).read();
    assert.deepEqual([...snapshot.objects.keys()], ["Network/c"]);
    const lines = snapshot.problems.map(formatProblem);
    assert.equal(lines.length, 2);
    assert.ok(lines[0]!.startsWith(`a.yaml: document 1, line ${posOf(net("a"), "192.0.2.1")}: spec.ipv4.address: ipv4 subnet 192.0.2.1/24 overlaps Network/b`), lines[0]);
    assert.ok(lines[1]!.startsWith(`b.yaml: document 1, line ${posOf(`# b\n${net("b")}`, "192.0.2.1")}: spec.ipv4.address: ipv4 subnet 192.0.2.1/24 overlaps Network/a`), lines[1]);
    assert.ok(snapshot.invalid.has("Network/a") && snapshot.invalid.has("Network/b"));
  });

  it("re-reads parse only files whose content changed", async () => {
    const dir = await tempDir();
    writeTree(dir, { "a.yaml": NET("a"), "b.yaml": NET("b") });
    const store = new ManifestStore({ dir });
    const first = await store.read();
    fs.writeFileSync(path.join(dir, "b.yaml"), NET("b", "  mode: isolated\n  autostart: false\n"));
    const second = await store.read();
    assert.equal(second.objects.get("Network/a")!.raw, first.objects.get("Network/a")!.raw, "unchanged file: the cached parse is reused");
    assert.notEqual(second.objects.get("Network/b")!.raw, first.objects.get("Network/b")!.raw);
    assert.equal(second.objects.get("Network/b")!.object.spec.autostart, false);
  });

  it("the disk cache gives a fresh process the same snapshot, and notices same-size edits with the old mtime", async () => {
    const dir = await tempDir();
    writeTree(dir, { "a.yaml": VM("a"), "bad.yaml": VM("bad", "  cpu: 1\n"), "nets.yaml": `${NET("n1")}---\n${NET("n2")}` });
    const warm = await new ManifestStore({ dir }).read();
    assert.ok(fs.existsSync(path.join(dir, ".kvmctl/cache/read.json")));
    const cached = await new ManifestStore({ dir }).read();
    const uncached = await new ManifestStore({ dir, diskCache: false }).read();
    assert.deepEqual(cached, uncached);
    assert.deepEqual(cached, warm);

    const file = path.join(dir, "a.yaml");
    const stat = fs.statSync(file);
    fs.writeFileSync(file, VM("a", "  cpus: 3\n  memory: 1Gi\n"));
    fs.utimesSync(file, stat.atime, stat.mtime);
    assert.equal(fs.statSync(file).size, stat.size);
    const edited = await new ManifestStore({ dir }).read();
    assert.equal((edited.objects.get("VirtualMachine/a")?.object as VirtualMachine).spec.cpus, 3);
  });

  it("a store that verifies the cache (the controller's) never takes a hand-edited parse result, and keeps the keys", async () => {
    const dir = await tempDir();
    writeTree(dir, { "a.yaml": VM("a", "  cpus: 2\n"), "nets.yaml": `${NET("n1")}---\n${NET("n2")}` });
    await new ManifestStore({ dir }).read();
    const cacheFile = path.join(dir, ".kvmctl/cache/read.json");
    // Someone who can write .kvmctl/ edits the cached object: the manifest says cpus: 2.
    const text = fs.readFileSync(cacheFile, "utf8");
    assert.match(text, /"cpus":2/);
    fs.writeFileSync(cacheFile, text.replace(/"cpus":2/g, '"cpus":-5'));
    fs.writeFileSync(path.join(dir, "nets.yaml"), "kind: [\n");
    const verified = await new ManifestStore({ dir, verifyDiskCache: true }).read();
    assert.equal((verified.objects.get("VirtualMachine/a")?.object as VirtualMachine).spec.cpus, 2);
    assert.deepEqual(verified.unreadableFiles.get("nets.yaml")?.lastKnownKeys, ["Network/n1", "Network/n2"], "the keys files held are kept");
    assert.doesNotMatch(fs.readFileSync(cacheFile, "utf8"), /"cpus":-5/, "and the cache is written right again");
  });

  it("a file that became unreadable keeps its last known keys, also across processes", async () => {
    const dir = await tempDir();
    writeTree(dir, { "nets.yaml": `${NET("n1")}---\n${NET("n2")}` });
    await new ManifestStore({ dir }).read();
    fs.writeFileSync(path.join(dir, "nets.yaml"), `${NET("n1")}---\nkind: [\n`);
    const snapshot = await new ManifestStore({ dir }).read();
    assert.deepEqual(snapshot.unreadableFiles.get("nets.yaml")?.lastKnownKeys, ["Network/n1", "Network/n2"]);
    assert.equal(snapshot.objects.size, 0);
  });
});

describe("formatProblem", () => {
  it("prints file, document, line:column, field path and message", () => {
    assert.equal(
      formatProblem({ location: { file: "vms/web1.yaml", document: 1, line: 7, column: 5 }, path: ["spec", "cpu"], message: 'unknown field "cpu"; did you mean "cpus"?' }),
      'vms/web1.yaml: document 1, line 7:5: spec.cpu: unknown field "cpu"; did you mean "cpus"?',
    );
    assert.equal(formatProblem({ location: { file: "big.yaml", document: 0 }, message: "too large" }), "big.yaml: too large");
    assert.equal(formatFieldPath(["spec", "disks", 0, "size"]), "spec.disks[0].size");
    assert.equal(formatFieldPath(["metadata", "labels", "app.kubernetes.io/name"]), 'metadata.labels["app.kubernetes.io/name"]');
  });
});

describe("a manifest directory that goes away", () => {
  it("is not an empty store once it was read: everything it held is unreadable, and comes back with it", async () => {
    const root = await tempDir();
    const dir = path.join(root, "state");
    writeTree(dir, { "vms/web.yaml": VM("web"), "nets/lan.yaml": NET("lan") });
    const store = new ManifestStore({ dir, diskCache: false });
    assert.equal((await store.read()).objects.size, 2);
    fs.renameSync(dir, path.join(root, "moved"));
    const gone = await store.read();
    assert.equal(gone.objects.size, 0);
    assert.deepEqual(gone.unreadableFiles.get(".")?.lastKnownKeys.sort(), ["Network/lan", "VirtualMachine/web"], "every key it held is protected");
    assert.match(gone.problems.map(formatProblem).join("\n"), /the manifest directory .* is gone/);
    assert.deepEqual((await store.read()).unreadableFiles.get(".")?.lastKnownKeys.length, 2, "still protected on the next read");
    fs.renameSync(path.join(root, "moved"), dir);
    const back = await store.read();
    assert.equal(back.objects.size, 2);
    assert.equal(back.unreadableFiles.size, 0);
  });
});

describe("the disk cache across a new version of kvmctl", () => {
  it("keeps what each file held (an unreadable file stays protected), drops the parse results", async () => {
    const dir = await tempDir();
    writeTree(dir, { "vms/web.yaml": VM("web") });
    await new ManifestStore({ dir }).read();
    const file = path.join(dir, ".kvmctl", "cache", "read.json");
    const cache = JSON.parse(fs.readFileSync(file, "utf8")) as { fingerprint: string; data: { files: Record<string, unknown> } };
    fs.writeFileSync(file, JSON.stringify({ ...cache, fingerprint: "an older kvmctl" }));
    fs.writeFileSync(path.join(dir, "vms/web.yaml"), "apiVersion: [unclosed\n");
    const snapshot = await new ManifestStore({ dir }).read();
    assert.deepEqual(snapshot.unreadableFiles.get("vms/web.yaml")?.lastKnownKeys, ["VirtualMachine/web"]);
  });
});

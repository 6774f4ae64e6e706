// Trust, through the real CLI over real temporary directories:
// 1. an object whose manifest file (or directory) cannot be read now is listed as Unreadable,
//    from the keys its file held at the last good read, never as "No resources found";
// 2. `delete` refuses a StoragePool (as a Network) while VM manifests use it, and an object
//    whose file cannot be read; a refused delete leaves the directory byte-for-byte as it was.
// Files are made unreadable in ways that work as root too (CI runs as root, so no chmod 000):
// a YAML syntax error, bytes that are not UTF-8, a file over the size limit, the directory moved
// away, a subdirectory replaced by a symlink loop. Each is first read once by `kvmctl get`, so
// the disk cache (.kvmctl/cache/read.json) learns what the file held; every call is a fresh process.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { parse } from "yaml";
import { contents, kvmctl, tempDir, type CliResult } from "./helpers.js";

const vm = (name: string, specLines = "") =>
  `apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: ${name}\nspec:\n  cpus: 1\n  memory: 512Mi\n${specLines}`;
const pool = (name: string) => `apiVersion: kvmctl.dev/v1alpha1\nkind: StoragePool\nmetadata:\n  name: ${name}\nspec:\n  type: dir\n  path: /srv/kvmctl-test/${name}\n`;
const network = (name: string) => `apiVersion: kvmctl.dev/v1alpha1\nkind: Network\nmetadata:\n  name: ${name}\nspec:\n  mode: isolated\n`;

const roots: string[] = [];
after(() => {
  for (const root of roots) fs.rmSync(root, { recursive: true, force: true });
});

/** A manifest directory `<root>/state` holding `files` (relative path → text). */
function manifestDir(label: string, files: Record<string, string>): { root: string; dir: string } {
  const root = tempDir(label);
  roots.push(root);
  const dir = path.join(root, "state");
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  fs.mkdirSync(dir, { recursive: true });
  return { root, dir };
}

const ok = (result: CliResult, what: string) => assert.equal(result.exitCode, 0, `${what}: exit ${result.exitCode}\n${result.stderr}`);

/** `kvmctl get vm` once, so the disk cache learns the keys of every file, then `breakIt`. */
async function readThenBreak(dir: string, breakIt: () => void, extra: string[] = []): Promise<void> {
  const first = await kvmctl(["--dir", dir, ...extra, "get", "vm"]);
  ok(first, "the first read");
  assert.match(first.stdout, /^web\s+Unknown\s+Pending\s+1\s+512Mi\s+/m);
  breakIt();
}

const UNREADABLE_ROW = /^web\s+False\s+Unreadable\s+-\s+-\s+-$/m;
const SYNTAX_PROBLEM = /vms\/web\.yaml: document 1, line \d+:\d+: invalid YAML: /;

describe("get lists objects of unreadable files as Unreadable", () => {
  const breakers: { name: string; apply(file: string): void; problem: RegExp }[] = [
    { name: "a YAML syntax error", apply: (file) => fs.appendFileSync(file, "oops: [\n"), problem: SYNTAX_PROBLEM },
    { name: "bytes that are not UTF-8", apply: (file) => fs.appendFileSync(file, Buffer.from([0x23, 0x20, 0x63, 0x61, 0x66, 0xe9, 0x0a])), problem: /vms\/web\.yaml: document 1, line 8:6: not UTF-8 text: invalid byte 0xe9/ },
    { name: "a file over the size limit", apply: (file) => fs.appendFileSync(file, `# ${"x".repeat(3 * 1024 * 1024)}\n`), problem: /vms\/web\.yaml: file is 3\.0 MiB, over the 2\.0 MiB limit for a manifest; not read/ },
  ];
  for (const breaker of breakers) {
    test(`${breaker.name}: READY False, Unreadable, the problem on stderr and in MESSAGE`, async () => {
      const { dir } = manifestDir("unreadable", { "vms/web.yaml": vm("web"), "vms/db.yaml": vm("db") });
      await readThenBreak(dir, () => breaker.apply(path.join(dir, "vms/web.yaml")));

      const table = await kvmctl(["--dir", dir, "get", "vm"]);
      ok(table, "get vm");
      assert.match(table.stdout, UNREADABLE_ROW);
      assert.match(table.stdout, /^db\s+Unknown\s+Pending\s+1\s+512Mi\s+\S+$/m, "the readable file is listed as before");
      assert.match(table.stderr, new RegExp(`^error: ${breaker.problem.source}`, "m"));
      assert.doesNotMatch(table.stderr, /No resources found/);

      const wide = await kvmctl(["--dir", dir, "get", "vm", "-o", "wide"]);
      ok(wide, "get vm -o wide");
      const row = wide.stdout.split("\n").find((line) => line.startsWith("web "));
      assert.ok(row, wide.stdout);
      assert.match(row, new RegExp(`^web\\s+False\\s+Unreadable(\\s+-){7}\\s+${breaker.problem.source}`));
    });
  }

  test("every output format, get and describe by name, and back to normal once the file is fixed", async () => {
    const { dir } = manifestDir("unreadable-formats", { "vms/web.yaml": vm("web"), "vms/db.yaml": vm("db") });
    const file = path.join(dir, "vms/web.yaml");
    await readThenBreak(dir, () => fs.appendFileSync(file, "oops: [\n"));

    // Named, it exists (its file does): the row, exit 0; the problem is on stderr.
    const named = await kvmctl(["--dir", dir, "get", "vm", "web"]);
    ok(named, "get vm web");
    assert.equal(named.stdout, "NAME   READY   STATUS       CPUS   MEMORY   AGE\nweb    False   Unreadable   -      -        -");
    assert.match(named.stderr, new RegExp(`^error: ${SYNTAX_PROBLEM.source}`));
    assert.doesNotMatch(named.stderr, /not found/);

    for (const format of ["yaml", "json"] as const) {
      const shown = await kvmctl(["--dir", dir, "get", "vm", "web", "-o", format]);
      ok(shown, `get vm web -o ${format}`);
      const document = (format === "json" ? JSON.parse(shown.stdout) : parse(shown.stdout)) as { status: { conditions: { message: string }[] } };
      const message = document.status.conditions[0]?.message ?? "";
      assert.match(message, new RegExp(`^${SYNTAX_PROBLEM.source}`));
      assert.deepEqual(document, {
        apiVersion: "kvmctl.dev/v1alpha1",
        kind: "VirtualMachine",
        metadata: { name: "web" },
        status: { conditions: [{ type: "Ready", status: "False", reason: "ManifestUnreadable", message }] },
      });
    }
    const list = await kvmctl(["--dir", dir, "get", "vm", "-o", "yaml"]);
    ok(list, "get vm -o yaml");
    const items = (parse(list.stdout) as { items: { metadata: { name: string }; spec?: unknown; status?: { conditions?: { reason: string }[] } }[] }).items;
    assert.deepEqual(items.map((i) => [i.metadata.name, i.spec === undefined, i.status?.conditions?.[0]?.reason]), [["db", false, undefined], ["web", true, "ManifestUnreadable"]]);

    const names = await kvmctl(["--dir", dir, "get", "all", "-o", "name"]);
    ok(names, "get all -o name");
    assert.equal(names.stdout, "virtualmachine/db\nvirtualmachine/web");
    const all = await kvmctl(["--dir", dir, "get", "all"]);
    ok(all, "get all");
    assert.match(all.stdout, /^virtualmachine\/web\s+False\s+Unreadable\s+-\s+-\s+-$/m);

    const described = await kvmctl(["--dir", dir, "describe", "vm", "web"]);
    ok(described, "describe vm web");
    assert.match(described.stdout, /^Name:\s+web$/m);
    assert.match(described.stdout, /^Kind:\s+VirtualMachine$/m);
    assert.match(described.stdout, /^File:\s+vms\/web\.yaml \(cannot be read; it held this object at its last good read\)$/m);
    assert.match(described.stdout, new RegExp(`^Problem:\\s+${SYNTAX_PROBLEM.source}`, "m"));
    assert.match(described.stdout, /^\s+Ready\s+False\s+ManifestUnreadable\s+vms\/web\.yaml: /m);
    assert.doesNotMatch(described.stderr, /not found/);

    // A name nothing held is still not found.
    const missing = await kvmctl(["--dir", dir, "get", "vm", "nope"]);
    assert.equal(missing.exitCode, 1);
    assert.match(missing.stderr, /^error: virtualmachines "nope" not found in /m);
    const describedMissing = await kvmctl(["--dir", dir, "describe", "vm", "nope"]);
    assert.equal(describedMissing.exitCode, 1);
    assert.match(describedMissing.stderr, /virtualmachines "nope" not found/);

    fs.writeFileSync(file, vm("web"));
    const fixed = await kvmctl(["--dir", dir, "get", "vm", "web"]);
    ok(fixed, "get vm web after the fix");
    assert.match(fixed.stdout, /^web\s+Unknown\s+Pending\s+1\s+512Mi\s+/m);
    assert.equal(fixed.stderr, "");
  });

  test("an unreadable file whose object is also defined, valid, elsewhere: only the valid one is shown", async () => {
    const { dir } = manifestDir("unreadable-moved", { "vms/web.yaml": vm("web"), "vms/db.yaml": vm("db") });
    await readThenBreak(dir, () => fs.appendFileSync(path.join(dir, "vms/web.yaml"), "oops: [\n"));
    fs.writeFileSync(path.join(dir, "web-again.yaml"), vm("web").replace("cpus: 1", "cpus: 3"));

    const table = await kvmctl(["--dir", dir, "get", "vm"]);
    ok(table, "get vm");
    assert.deepEqual(table.stdout.trim().split("\n").map((line) => line.split(/\s+/).slice(0, 4).join(" ")), ["NAME READY STATUS CPUS", "db Unknown Pending 1", "web Unknown Pending 3"]);
    assert.match(table.stderr, SYNTAX_PROBLEM, "the unreadable file is still reported");
    const shown = await kvmctl(["--dir", dir, "get", "vm", "web", "-o", "json"]);
    ok(shown, "get vm web -o json");
    assert.equal((JSON.parse(shown.stdout) as { spec: { cpus: number } }).spec.cpus, 3);
    const described = await kvmctl(["--dir", dir, "describe", "vm", "web"]);
    ok(described, "describe vm web");
    assert.match(described.stdout, /^File:\s+web-again\.yaml: document 1, line 1:1$/m);
  });

  test("the manifest directory moved away (its cache in --status-dir): everything it held is Unreadable", async () => {
    const { root, dir } = manifestDir("unreadable-gone", { "vms/web.yaml": vm("web"), "db.yaml": vm("db") });
    const statusDir = path.join(root, "status");
    fs.mkdirSync(statusDir);
    const flags = ["--dir", dir, "--status-dir", statusDir];
    await readThenBreak(dir, () => fs.renameSync(dir, path.join(root, "moved")), ["--status-dir", statusDir]);

    const table = await kvmctl([...flags, "get", "vm"]);
    ok(table, "get vm");
    assert.equal(table.stdout, "NAME   READY   STATUS       CPUS   MEMORY   AGE\ndb     False   Unreadable   -      -        -\nweb    False   Unreadable   -      -        -");
    assert.match(table.stderr, /^error: \.: the manifest directory .* is gone/m);
    assert.doesNotMatch(table.stderr, /No resources found/);
    const wide = await kvmctl([...flags, "get", "vm", "web", "-o", "wide"]);
    ok(wide, "get vm web -o wide");
    assert.match(wide.stdout, /^web\s+False\s+Unreadable(\s+-){7}\s+\.: the manifest directory \S+ is gone \(moved, unmounted or being replaced\?\); nothing it held is pruned until it is back$/m);
    const described = await kvmctl([...flags, "describe", "vm", "db"]);
    ok(described, "describe vm db");
    assert.match(described.stdout, new RegExp(`^File:\\s+${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\(cannot be read`, "m"));
    assert.ok(!fs.existsSync(dir), "nothing recreated the directory");
  });

  test("a subdirectory replaced by a symlink loop: what it held is Unreadable, the rest as before", async () => {
    const { root, dir } = manifestDir("unreadable-loop", { "vms/web.yaml": vm("web"), "db.yaml": vm("db") });
    await readThenBreak(dir, () => {
      fs.renameSync(path.join(dir, "vms"), path.join(root, "vms"));
      fs.symlinkSync(".", path.join(dir, "vms"));
    });
    const table = await kvmctl(["--dir", dir, "get", "vm", "-o", "wide"]);
    ok(table, "get vm -o wide");
    assert.match(table.stdout, /^db\s+Unknown\s+Pending\s+1\s+512Mi\s+/m);
    assert.match(table.stdout, /^web\s+False\s+Unreadable(\s+-){7}\s+vms: symlink loop: /m);
  });
});

describe("delete refuses what cannot be deleted safely, and changes nothing then", () => {
  /** Pools images, base, default and spare; network lan; VMs web (images, lan), db (images, cloned from base), app (the default pool). */
  function inUseDir(): string {
    const { dir } = manifestDir("delete-in-use", {
      "pools.yaml": `${pool("images")}---\n${pool("base")}---\n${pool("default")}---\n${pool("spare")}`,
      "networks/lan.yaml": network("lan"),
      "virtualmachines/web.yaml": vm("web", "  disks:\n    - {name: root, pool: images, size: 1Gi}\n  interfaces:\n    - network: lan\n"),
      "virtualmachines/db.yaml": vm("db", "  disks:\n    - name: root\n      pool: images\n      from: {pool: base, volume: base.qcow2}\n"),
      "virtualmachines/app.yaml": vm("app", "  disks:\n    - {name: root, size: 1Gi}\n"),
    });
    return dir;
  }
  const POOL_ADVICE = "delete those or move their disks to another pool first (--force deletes anyway; the controller keeps the pool while it holds volumes)";
  const inUse = (name: string, users: string[]) =>
    `error: storagepool "${name}" is in use by ${users.map((u) => `VirtualMachine/${u} (virtualmachines/${u}.yaml)`).join(", ")}: ${POOL_ADVICE}`;

  /** The deletions `kvmctl delete` recorded for the controller (.kvmctl/deleting/). */
  const intents = (dir: string) => (fs.existsSync(path.join(dir, ".kvmctl/deleting")) ? fs.readdirSync(path.join(dir, ".kvmctl/deleting")).sort() : []);

  async function refused(dir: string, args: string[], stderr: string): Promise<void> {
    const before = contents(dir);
    const intentsBefore = intents(dir);
    const result = await kvmctl(["--dir", dir, "delete", ...args]);
    assert.equal(result.exitCode, 1, `delete ${args.join(" ")}: ${result.stderr}`);
    assert.equal(result.stderr, stderr);
    assert.equal(result.stdout, "", "nothing reported as deleted");
    assert.deepEqual(contents(dir), before, "a refused delete changed the directory");
    assert.deepEqual(intents(dir), intentsBefore, "a refused delete recorded a deletion intent");
  }

  test("a pool a VM's disk is in, or is cloned from, or (unnamed) the default pool", async () => {
    const dir = inUseDir();
    await refused(dir, ["pool", "images"], inUse("images", ["db", "web"]));
    await refused(dir, ["storagepool", "base"], inUse("base", ["db"]));
    await refused(dir, ["pools", "default"], inUse("default", ["app"]));
    await refused(dir, ["storagepool/images"], inUse("images", ["db", "web"]));
  });

  test("delete -f of a StoragePool, and several objects at once: all or nothing", async () => {
    const dir = inUseDir();
    const input = path.join(path.dirname(dir), "images.yaml");
    fs.writeFileSync(input, pool("images"));
    await refused(dir, ["-f", input], inUse("images", ["db", "web"]));
    await refused(dir, ["pool", "spare", "images"], inUse("images", ["db", "web"]));
    await refused(
      dir,
      ["pool/images", "network/lan", "pool/spare"],
      `${inUse("images", ["db", "web"])}\n` +
        'error: network "lan" is in use by VirtualMachine/web (virtualmachines/web.yaml): delete those or move them to another network first (--force deletes anyway; the controller keeps the network while running guests use it)',
    );
    assert.match((await kvmctl(["--dir", dir, "get", "pool", "spare", "-o", "name"])).stdout, /^storagepool\/spare$/m);
  });

  test("VMs deleted in the same command do not count", async () => {
    const dir = inUseDir();
    const deleted = await kvmctl(["--dir", dir, "delete", "vm/db", "pool/base"]);
    ok(deleted, "delete vm/db pool/base");
    assert.equal(deleted.stdout, 'virtualmachine "db" deleted\nstoragepool "base" deleted');
    assert.equal(deleted.stderr, "");
    // images is still used by web.
    await refused(dir, ["pool", "images"], inUse("images", ["web"]));
    const input = path.join(path.dirname(dir), "web-and-images.yaml");
    fs.writeFileSync(input, `${vm("web")}---\n${pool("images")}`);
    const both = await kvmctl(["--dir", dir, "delete", "-f", input]);
    ok(both, "delete -f web + images");
    assert.equal(both.stdout, 'virtualmachine "web" deleted\nstoragepool "images" deleted');
  });

  test("--force deletes anyway, touching only the pool's document; a pool no manifest holds is not found, not in use", async () => {
    const dir = inUseDir();
    const before = contents(dir);
    const forced = await kvmctl(["--dir", dir, "delete", "pool", "images", "--force"]);
    ok(forced, "delete pool images --force");
    assert.equal(forced.stdout, 'storagepool "images" deleted');
    assert.equal(forced.stderr, "");
    const after = contents(dir);
    assert.notEqual(after["pools.yaml"], before["pools.yaml"]);
    assert.deepEqual({ ...after, "pools.yaml": "" }, { ...before, "pools.yaml": "" }, "only pools.yaml changed");
    const left = fs.readFileSync(path.join(dir, "pools.yaml"), "utf8");
    assert.ok(left.endsWith(`${pool("base")}---\n${pool("default")}---\n${pool("spare")}`), left);
    assert.doesNotMatch(left, /images/);
    const gone = await kvmctl(["--dir", dir, "get", "pool", "images"]);
    assert.equal(gone.exitCode, 1);
    assert.match(gone.stderr, /storagepools "images" not found/);
    // web and db still say pool: images, but there is no manifest left to delete.
    const again = await kvmctl(["--dir", dir, "delete", "pool", "images"]);
    assert.equal(again.exitCode, 1);
    assert.match(again.stderr, /^error: storagepools "images" not found in /);
    assert.doesNotMatch(again.stderr, /in use/);
    ok(await kvmctl(["--dir", dir, "delete", "pool", "images", "--ignore-not-found"]), "delete --ignore-not-found");
    const net = await kvmctl(["--dir", dir, "delete", "network", "lan", "--force"]);
    ok(net, "delete network lan --force");
    assert.equal(net.stdout, 'network "lan" deleted');
  });

  test("an object whose file cannot be read is not deleted, not even with --force or --ignore-not-found", async () => {
    const { dir } = manifestDir("delete-unreadable", { "vms/web.yaml": vm("web", "  disks:\n    - {name: root, pool: images, size: 1Gi}\n"), "pools/images.yaml": pool("images") });
    await readThenBreak(dir, () => fs.appendFileSync(path.join(dir, "vms/web.yaml"), "oops: [\n"));
    const problem = /^error: virtualmachines "web" cannot be deleted: it was last seen in vms\/web\.yaml, which cannot be read now \(vms\/web\.yaml: document 1, line \d+:\d+: invalid YAML: [^\n]*\); fix that file first$/;
    for (const args of [["vm", "web"], ["vm", "web", "--force", "--ignore-not-found"], ["vm/web", "pool/images"]]) {
      const before = contents(dir);
      const result = await kvmctl(["--dir", dir, "delete", ...args]);
      assert.equal(result.exitCode, 1, `delete ${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr, problem);
      assert.equal(result.stdout, "");
      assert.deepEqual(contents(dir), before, "a refused delete changed the directory");
    }
    // The pool web (as last read) used: nobody can tell whether web still does, so a warning, not a refusal.
    const poolDeleted = await kvmctl(["--dir", dir, "delete", "pool", "images"]);
    ok(poolDeleted, "delete pool images");
    assert.equal(poolDeleted.stdout, 'storagepool "images" deleted');
    assert.equal(poolDeleted.stderr, 'warning: storagepool "images" may be in use by VirtualMachine/web (vms/web.yaml): its manifest cannot be read, so kvmctl cannot tell');
    assert.ok(!fs.existsSync(path.join(dir, "pools/images.yaml")));
  });
});

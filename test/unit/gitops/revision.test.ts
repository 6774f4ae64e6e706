// The revision the controller records (Flux's `<branch>@sha1:<commit>`), and how "dirty" is told:
// blob ids as git computes them (checked against the real `git hash-object`), the listing of
// HEAD's tree, and a real checkout whose status-only changes are not dirty and spec edits are.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { GitCheckout } from "../../../src/gitops/checkout.js";
import { commitOf, differingFiles, formatRevision, gitBlobId, parseLsTree, shortRevision } from "../../../src/gitops/revision.js";
import { ManifestStore } from "../../../src/store/index.js";

const SHA = "0123456789abcdef0123456789abcdef01234567";

test("formatRevision, shortRevision and commitOf", () => {
  assert.equal(formatRevision({ branch: "main", commit: SHA, dirty: false }), `main@sha1:${SHA}`);
  assert.equal(formatRevision({ branch: undefined, commit: SHA, dirty: true }), `HEAD@sha1:${SHA}+dirty`);
  assert.equal(shortRevision(`main@sha1:${SHA}+dirty`), "main@sha1:0123456789ab+dirty");
  assert.equal(commitOf(`main@sha1:${SHA}+dirty`), SHA);
  assert.equal(commitOf(undefined), undefined);
});

test("gitBlobId is git's object id", () => {
  for (const content of ["", "kind: VirtualMachine\n", "ünïcode\r\n"]) {
    const expected = execFileSync("git", ["hash-object", "--stdin"], { input: content, encoding: "utf8" }).trim();
    assert.equal(gitBlobId(Buffer.from(content)), expected);
  }
});

test("parseLsTree keeps the manifest files under the prefix; differingFiles finds changed, added and deleted ones", () => {
  const listing = [`100644 blob aaa\tsub/vms/a.yaml`, `100644 blob bbb\tsub/README.md`, `040000 tree ccc\tsub/vms`, `100644 blob ddd\tother/x.yaml`, `100644 blob eee\tsub/b.yml`].join("\0") + "\0";
  const committed = parseLsTree(listing, "sub/", (rel) => /\.ya?ml$/.test(rel));
  assert.deepEqual([...committed], [["vms/a.yaml", "aaa"], ["b.yml", "eee"]]);
  assert.deepEqual(differingFiles(committed, new Map([["vms/a.yaml", "aaa"], ["b.yml", "eee"]])), []);
  assert.deepEqual(differingFiles(committed, new Map([["vms/a.yaml", "zzz"], ["new.yaml", "n"]])), ["b.yml", "new.yaml", "vms/a.yaml"]);
});

test("a real checkout: status written back is not dirty; a spec edit, an untracked manifest and a deleted one are", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-revision-"));
  const git = (...args: string[]) => execFileSync("git", ["-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.invalid", ...args], { encoding: "utf8" });
  fs.mkdirSync(path.join(dir, "vms"));
  const vm = "apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: a\nspec:\n  memory: 1Gi\n";
  fs.writeFileSync(path.join(dir, "vms", "a.yaml"), vm);
  git("init", "-q", "-b", "main");
  git("add", ".");
  git("commit", "-qm", "a");
  const head = git("rev-parse", "HEAD").trim();
  const checkout = (await GitCheckout.open(dir))!;
  assert.equal(await checkout.revisionString(), `main@sha1:${head}`);

  assert.equal(await new ManifestStore({ dir }).writeStatus("VirtualMachine/a", { observedGeneration: 1, phase: "Running" }), true);
  assert.equal(await checkout.revisionString(), `main@sha1:${head}`, "status is not a change");

  fs.writeFileSync(path.join(dir, "vms", "a.yaml"), fs.readFileSync(path.join(dir, "vms", "a.yaml"), "utf8").replace("1Gi", "2Gi"));
  assert.deepEqual(await checkout.revision().then((r) => [r.dirty, r.differing]), [true, ["vms/a.yaml"]]);
  fs.writeFileSync(path.join(dir, "vms", "a.yaml"), vm);
  fs.writeFileSync(path.join(dir, "vms", "b.yaml"), vm.replace("name: a", "name: b"));
  assert.deepEqual((await checkout.revision()).differing, ["vms/b.yaml"]);
  fs.rmSync(path.join(dir, "vms", "b.yaml"));
  fs.rmSync(path.join(dir, "vms", "a.yaml"));
  assert.equal(await checkout.revisionString(), `main@sha1:${head}+dirty`);
  fs.rmSync(dir, { recursive: true, force: true });
});

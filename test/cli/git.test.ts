// The manifest directory as a git checkout (issue 14, first part): after `kvmctl git-setup`,
// status blocks written into the manifests are invisible to what git stores — `git diff`,
// `git add` and `git commit -a` see spec changes only, and `git status` is clean right after
// the setup. Real git, real files: a bare remote, a "laptop" clone, the host checkout whose
// manifests carry status. (A plain `git pull` still refuses once a status write changed a
// file's size: git takes a size change for a change without asking the filter; that is for
// `kvmctl pull`.)
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { ManifestStore } from "../../src/store/index.js";
import { kvmctl, tempDir } from "./helpers.js";

const VM = (memory: string) => `apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: g1\nspec:\n  runStrategy: Halted\n  memory: ${memory}\n`;
const STATUS = { observedGeneration: 1, observedSpecHash: "abc", phase: "Stopped", conditions: [{ type: "Ready", status: "True", reason: "Succeeded", message: "", lastTransitionTime: "2026-12-01T00:00:00Z" }] };

function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main", ...args], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

test("after git-setup, status blocks are no change to git: diff, add and commit -a see the spec only", async () => {
  const root = tempDir("kvmctl-git-");
  const remote = path.join(root, "remote.git");
  git(root, "init", "--bare", remote);
  const laptop = path.join(root, "laptop");
  git(root, "clone", remote, laptop);
  fs.mkdirSync(path.join(laptop, "vms"));
  fs.writeFileSync(path.join(laptop, "vms", "g1.yaml"), VM("256Mi"));
  git(laptop, "add", ".");
  git(laptop, "commit", "-m", "g1");
  git(laptop, "push", "origin", "HEAD:main");
  const host = path.join(root, "host");
  git(root, "clone", remote, host);

  // The controller writes status into the host's manifest.
  const file = path.join(host, "vms", "g1.yaml");
  assert.equal(await new ManifestStore({ dir: host }).writeStatus("VirtualMachine/g1", STATUS), true);
  assert.match(fs.readFileSync(file, "utf8"), /^status:/m);
  assert.match(git(host, "status", "--porcelain"), /vms\/g1\.yaml/, "without the filter git sees status as a change");

  const setup = await kvmctl(["--dir", host, "git-setup"]);
  assert.equal(setup.exitCode, 0, setup.stderr);
  assert.match(setup.stdout, /status blocks are invisible to git/);
  assert.equal(git(host, "status", "--porcelain"), "", "status is no change");
  execFileSync("git", ["diff", "--quiet"], { cwd: host });
  assert.equal(git(host, "status", "--porcelain", "--ignored").includes(".kvmctl"), true, "kvmctl's own data is ignored, not untracked");

  // On the host: status written again, and a spec edit committed with commit -a.
  assert.equal(await new ManifestStore({ dir: host }).writeStatus("VirtualMachine/g1", STATUS), true);
  fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("memory: 256Mi", "memory: 768Mi"));
  assert.match(git(host, "diff"), /^-  memory: 256Mi\n\+  memory: 768Mi$/m);
  assert.doesNotMatch(git(host, "diff"), /status/);
  git(host, "commit", "-am", "host edit");
  assert.equal(git(host, "show", "HEAD:vms/g1.yaml"), VM("768Mi"), "history holds the spec only");
  assert.match(fs.readFileSync(file, "utf8"), /^status:/m, "the working tree keeps its status");
  execFileSync("git", ["diff", "--quiet"], { cwd: host });
  execFileSync("git", ["diff", "--quiet", "HEAD", "--", "vms/g1.yaml"], { cwd: host });
});

test("git-setup outside a git checkout says so", async () => {
  const dir = tempDir("kvmctl-nogit-");
  const result = await kvmctl(["--dir", dir, "git-setup"]);
  assert.equal(result.exitCode, 1);
  assert.match(result.stderr, /is not in a git checkout/);
});

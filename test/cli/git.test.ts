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

/** A bare remote holding vms/g1.yaml, a "laptop" clone that pushes to it, and the host's checkout. */
function checkouts(label: string): { laptop: string; host: string } {
  const root = tempDir(label);
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
  return { laptop, host };
}

test("after git-setup, status blocks are no change to git: diff, add and commit -a see the spec only", async () => {
  const { laptop, host } = checkouts("kvmctl-git-");

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

/** The working tree's files (without .git and kvmctl's data) and HEAD: what a refused pull must leave as it was. */
function checkoutState(dir: string): string {
  const files = fs.readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => !f.startsWith(".git") && !f.startsWith(".kvmctl") && fs.statSync(path.join(dir, f)).isFile()).sort();
  return JSON.stringify([git(dir, "rev-parse", "HEAD"), ...files.map((f) => [f, fs.readFileSync(path.join(dir, f), "utf8")])]);
}

test("kvmctl pull: status set aside and put back around a fast-forward; a real conflict is refused and nothing changes", async () => {
  const { laptop, host } = checkouts("kvmctl-pull-");
  const file = path.join(host, "vms", "g1.yaml");
  assert.equal(await new ManifestStore({ dir: host }).writeStatus("VirtualMachine/g1", STATUS), true);

  // Upstream edits the last spec line (right where the host's status block begins) and adds a VM.
  fs.writeFileSync(path.join(laptop, "vms", "g1.yaml"), VM("512Mi"));
  fs.writeFileSync(path.join(laptop, "vms", "g2.yaml"), VM("128Mi").replace("name: g1", "name: g2"));
  git(laptop, "add", ".");
  git(laptop, "commit", "-m", "g1 more memory, g2");
  git(laptop, "push", "origin", "HEAD:main");
  assert.throws(() => git(host, "pull", "--ff-only"), /would be overwritten|commit your changes/, "plain git pull refuses here");

  const pulled = await kvmctl(["--dir", host, "pull"]);
  assert.equal(pulled.exitCode, 0, pulled.stderr);
  assert.match(pulled.stdout, /updated [0-9a-f]{12}\.\.[0-9a-f]{12} from origin\/main; 2 file\(s\) changed, 1 status block\(s\) put back/);
  assert.equal(git(host, "rev-parse", "HEAD"), git(laptop, "rev-parse", "HEAD"));
  const text = fs.readFileSync(file, "utf8");
  assert.ok(text.startsWith(VM("512Mi")), text);
  assert.match(text, /^status:\n  observedGeneration: 1\n/m, "the status is back, its generation stale until reconciled");
  assert.doesNotMatch(text, /<<<<<<<|>>>>>>>/);
  assert.ok(fs.existsSync(path.join(host, "vms", "g2.yaml")));
  assert.ok(!fs.existsSync(path.join(host, ".kvmctl", "pull-status.json")), "nothing left set aside");
  assert.match((await kvmctl(["--dir", host, "pull"])).stdout, /already up to date/);

  // Killed after setting status aside (the file already given its committed bytes): the next
  // pull puts it back first.
  const { statusesInText } = await import("../../src/store/status-writer.js");
  const aside = Object.fromEntries(statusesInText(fs.readFileSync(file, "utf8")));
  fs.writeFileSync(path.join(host, ".kvmctl", "pull-status.json"), JSON.stringify({ statuses: aside }));
  fs.writeFileSync(file, VM("512Mi"));
  assert.match((await kvmctl(["--dir", host, "pull"])).stdout, /already up to date/);
  assert.match(fs.readFileSync(file, "utf8"), /^status:\n  observedGeneration: 1\n/m, "the status set aside by the killed pull is back");
  assert.ok(!fs.existsSync(path.join(host, ".kvmctl", "pull-status.json")));

  // A colliding uncommitted spec edit on the host: refused, the checkout exactly as it was.
  fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("memory: 512Mi", "memory: 1Gi"));
  fs.writeFileSync(path.join(laptop, "vms", "g1.yaml"), VM("640Mi"));
  git(laptop, "commit", "-am", "g1 640Mi");
  git(laptop, "push", "origin", "HEAD:main");
  const before = checkoutState(host);
  const refused = await kvmctl(["--dir", host, "pull"]);
  assert.equal(refused.exitCode, 1);
  assert.match(refused.stderr, /uncommitted changes in files the upstream changes: vms\/g1\.yaml; commit or stash them, then pull again \(nothing was changed\)/);
  assert.equal(checkoutState(host), before);

  // Local commits that diverge from upstream: refused too.
  git(host, "commit", "-am", "host 1Gi");
  const diverged = await kvmctl(["--dir", host, "pull"]);
  assert.equal(diverged.exitCode, 1);
  assert.match(diverged.stderr, /has commits that are not on origin\/main: kvmctl does not merge them/);
});

// The manifest directory as a git checkout (issue 14, first part): after `kvmctl git-setup`,
// status blocks written into the manifests are invisible to what git stores — `git diff`,
// `git add` and `git commit -a` see spec changes only, and `git status` is clean right after
// the setup. Real git, real files: a bare remote, a "laptop" clone, the host checkout whose
// manifests carry status. (A plain `git pull` still refuses once a status write changed a
// file's size: git takes a size change for a change without asking the filter; that is for
// `kvmctl pull`.)
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
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
  assert.match(pulled.stdout, /updated [0-9a-f]{12}\.\.[0-9a-f]{12} from origin\/main \(fast-forward\); 2 file\(s\) changed, 1 status block\(s\) put back/);
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

  // Local commits that diverge from upstream and collide with it: git's merge conflicts, and
  // kvmctl says so and leaves the checkout exactly as it was (no merge in progress).
  assert.equal((await kvmctl(["--dir", host, "git-setup"])).exitCode, 0);
  git(host, "-c", "user.name=h", "-c", "user.email=h@example.invalid", "commit", "-am", "host 1Gi");
  assert.doesNotMatch(git(host, "show", "HEAD:vms/g1.yaml"), /status:/, "the status stays out of the host's commit");
  const diverged = checkoutState(host);
  const conflict = await kvmctl(["--dir", host, "pull"]);
  assert.equal(conflict.exitCode, 1);
  assert.match(conflict.stderr, /merging origin\/main into the checkout's local commits conflicts in vms\/g1\.yaml: kvmctl does not resolve conflicts; the checkout is as it was/);
  assert.equal(checkoutState(host), diverged);
  assert.ok(!fs.existsSync(path.join(host, ".git", "MERGE_HEAD")), "no merge left in progress");
  assert.match(fs.readFileSync(file, "utf8"), /^status:\n  observedGeneration: 1\n/m, "the status is still there");
});

test("kvmctl pull merges local commits that do not collide (git's configured way), and pull.ff=only refuses them", async () => {
  const { laptop, host } = checkouts("kvmctl-merge-");
  const identity = ["-c", "user.name=h", "-c", "user.email=h@example.invalid"];
  git(host, "config", "user.name", "host");
  git(host, "config", "user.email", "host@example.invalid");
  assert.equal(await new ManifestStore({ dir: host }).writeStatus("VirtualMachine/g1", STATUS), true);
  // The host commits a new VM; the laptop changes g1's last spec line.
  fs.writeFileSync(path.join(host, "vms", "h1.yaml"), VM("128Mi").replace("name: g1", "name: h1"));
  git(host, ...identity, "add", "vms/h1.yaml");
  git(host, ...identity, "commit", "-m", "h1");
  fs.writeFileSync(path.join(laptop, "vms", "g1.yaml"), VM("384Mi"));
  git(laptop, "commit", "-am", "g1 384Mi");
  git(laptop, "push", "origin", "HEAD:main");

  git(host, "config", "pull.ff", "only");
  const refused = await kvmctl(["--dir", host, "pull"]);
  assert.equal(refused.exitCode, 1);
  assert.match(refused.stderr, /has commits that are not on origin\/main and pull.ff is only: kvmctl does not merge them/);
  git(host, "config", "--unset", "pull.ff");

  const merged = await kvmctl(["--dir", host, "pull"]);
  assert.equal(merged.exitCode, 0, merged.stderr);
  assert.match(merged.stdout, /from origin\/main \(merge\); \d+ file\(s\) changed, 1 status block\(s\) put back/);
  assert.equal(git(host, "rev-list", "--count", "--merges", "HEAD").trim(), "1", "a merge commit");
  const text = fs.readFileSync(path.join(host, "vms", "g1.yaml"), "utf8");
  assert.ok(text.startsWith(VM("384Mi")), text);
  assert.match(text, /^status:\n  observedGeneration: 1\n/m);
  assert.ok(fs.existsSync(path.join(host, "vms", "h1.yaml")));
  assert.match((await kvmctl(["--dir", host, "pull"])).stdout, /already up to date \(origin\/main at [0-9a-f]{12}; 2 local commit\(s\) not on it\)/);
});

test("kvmctl pull: a manifest moved to another file upstream (a rename to git) takes its status along", async () => {
  const { laptop, host } = checkouts("kvmctl-move-");
  assert.equal((await kvmctl(["--dir", host, "git-setup"])).exitCode, 0);
  assert.equal(await new ManifestStore({ dir: host }).writeStatus("VirtualMachine/g1", STATUS), true);
  fs.mkdirSync(path.join(laptop, "vms", "moved"));
  git(laptop, "mv", "vms/g1.yaml", "vms/moved/g1.yaml");
  git(laptop, "commit", "-m", "moved");
  git(laptop, "push", "origin", "HEAD:main");
  const pulled = await kvmctl(["--dir", host, "pull"]);
  assert.equal(pulled.exitCode, 0, pulled.stderr);
  assert.ok(!fs.existsSync(path.join(host, "vms", "g1.yaml")));
  const text = fs.readFileSync(path.join(host, "vms", "moved", "g1.yaml"), "utf8");
  assert.ok(text.startsWith(VM("256Mi")), text);
  assert.match(text, /^status:\n  observedGeneration: 1\n/m, "the status moved with the object");
  execFileSync("git", ["diff", "--quiet"], { cwd: host });
});

test("a push into the host's own checkout (updateInstead) moves it like a pull, status kept; a colliding edit rejects the push", async () => {
  const { laptop, host } = checkouts("kvmctl-push-");
  assert.equal((await kvmctl(["--dir", host, "git-setup"])).exitCode, 0);
  git(host, "config", "receive.denyCurrentBranch", "updateInstead");
  git(host, "checkout", "-q", "main");
  const file = path.join(host, "vms", "g1.yaml");
  assert.equal(await new ManifestStore({ dir: host }).writeStatus("VirtualMachine/g1", STATUS), true);
  git(laptop, "remote", "add", "host", host);
  fs.writeFileSync(path.join(laptop, "vms", "g1.yaml"), VM("448Mi"));
  git(laptop, "commit", "-am", "g1 448Mi");
  execFileSync("git", ["push", "host", "HEAD:main"], { cwd: laptop, stdio: ["ignore", "pipe", "pipe"] });
  assert.equal(git(host, "rev-parse", "HEAD"), git(laptop, "rev-parse", "HEAD"), "the branch moved");
  const text = fs.readFileSync(file, "utf8");
  assert.ok(text.startsWith(VM("448Mi")), text);
  assert.match(text, /^status:\n  observedGeneration: 1\n/m, "the status is kept");
  execFileSync("git", ["diff", "--quiet", "HEAD"], { cwd: host });

  // An uncommitted spec edit on the host in the file the push changes: the push is rejected, nothing changes.
  fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("memory: 448Mi", "memory: 2Gi"));
  fs.writeFileSync(path.join(laptop, "vms", "g1.yaml"), VM("464Mi"));
  git(laptop, "commit", "-am", "g1 464Mi");
  const before = checkoutState(host);
  assert.throws(() => execFileSync("git", ["push", "host", "HEAD:main"], { cwd: laptop, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }), (error: { stderr: string }) => {
    assert.match(error.stderr, /uncommitted changes in files the push changes: vms\/g1\.yaml; commit or stash them, then push again/);
    return true;
  });
  assert.equal(checkoutState(host), before);
});

test("kvmctl pull killed with SIGKILL the moment it has set status aside: the next pull completes it, nothing lost", async () => {
  const { laptop, host } = checkouts("kvmctl-kill-");
  const file = path.join(host, "vms", "g1.yaml");
  const aside = path.join(host, ".kvmctl", "pull-status.json");
  let caught = 0;
  for (let trial = 0; trial < 4; trial++) {
    assert.equal(await new ManifestStore({ dir: host }).writeStatus("VirtualMachine/g1", { ...STATUS, observedGeneration: trial + 1 }), true);
    const memory = `${300 + trial}Mi`;
    fs.writeFileSync(path.join(laptop, "vms", "g1.yaml"), VM(memory));
    git(laptop, "commit", "-am", memory);
    git(laptop, "push", "origin", "HEAD:main");

    const child = spawnKvmctl(["--dir", host, "pull"]);
    // The positive signal: the set-aside record exists; kill right then (or it finished first).
    while (child.exitCode === null && !fs.existsSync(aside)) await new Promise((resolve) => setImmediate(resolve));
    if (child.exitCode === null) {
      child.kill("SIGKILL");
      caught++;
    }
    await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once("exit", resolve)));
    // git commands it had started finish on their own: wait until none holds the index.
    while (fs.existsSync(path.join(host, ".git", "index.lock"))) await new Promise((resolve) => setTimeout(resolve, 10));

    const next = await kvmctl(["--dir", host, "pull"]);
    assert.equal(next.exitCode, 0, next.stderr);
    assert.equal(git(host, "rev-parse", "HEAD"), git(laptop, "rev-parse", "HEAD"));
    const text = fs.readFileSync(file, "utf8");
    assert.ok(text.startsWith(VM(memory)), text);
    assert.match(text, new RegExp(`^status:\\n  observedGeneration: ${trial + 1}\\n`, "m"), `trial ${trial}: the status set aside is back`);
    assert.doesNotMatch(text, /<<<<<<<|>>>>>>>/);
    assert.ok(!fs.existsSync(aside));
  }
  assert.ok(caught >= 2, `killed midway in ${caught} of 4 trials`);
});

function spawnKvmctl(args: string[]) {
  const main = path.resolve(import.meta.dirname, "../../src/cli/main.ts");
  return spawn(process.execPath, ["--import", "tsx", main, ...args], { env: { ...process.env, KVMCTL_DIR: "", KVMCTL_STATUS_DIR: "" }, stdio: "ignore" });
}

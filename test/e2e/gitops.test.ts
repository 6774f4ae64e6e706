// GitOps on the real stack (issue 14): a bare repository as the remote, a "laptop" clone
// pushing commits, the host checkout (after `kvmctl git-setup`) watched by a controller running
// with `--git-pull 2s`. Twenty commits in a row reach libvirt with no human step: memory and
// CPU edits (RestartRequired on the running VM), an edit on the last spec line of a document
// that has a status block, new VMs, a VM moved to another file (same domain id, still running),
// a network added and removed, a commit with an invalid manifest (reported with file and line,
// the rest applied, that VM left at its last good revision) and its fix, VMs deleted. After every
// commit: every object's lastAppliedRevision names it, the remote's history holds no status
// line, `git diff --quiet` holds on the host, no conflict marker exists. Then a colliding
// uncommitted edit on the host: the controller's pull and `kvmctl pull` refuse and change nothing.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ResultPromise } from "execa";
import { ManifestStore } from "../../src/store/index.js";
import { assertInTestEnv, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, testGuestVm, virsh } from "./harness.js";

const run = E2eDirs.create("gitops");
const host = run.dir;
const remote = path.join(run.root, "remote.git");
const laptop = path.join(run.root, "laptop");
const [g1, g2, g3, g4, n1] = ["g1", "g2", "g3", "g4", "n1"].map((n) => testName(`git-${n}`)) as [string, string, string, string, string];
let controller: ResultPromise | undefined;

function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", ["-c", "user.name=laptop", "-c", "user.email=laptop@example.invalid", "-c", "init.defaultBranch=main", ...args], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** A VM manifest whose spec ends with `memory:` (the line next to the status block the controller writes). */
function vm(name: string, fields: { runStrategy?: string; cpus?: number; memory: string; autostart?: boolean; cpusText?: string }): string {
  const lines = [`  runStrategy: ${fields.runStrategy ?? "Halted"}`, `  cpus: ${fields.cpusText ?? fields.cpus ?? 1}`, ...(fields.autostart ? ["  autostart: true"] : []), `  memory: ${fields.memory}`];
  // testGuestVm puts cpus/memory first; later keys win in our own text below, so write it whole.
  return testGuestVm(name, "").replace(/  cpus: 1\n  memory: 256Mi\n/, "") + lines.join("\n") + "\n";
}

function network(name: string): string {
  return `apiVersion: kvmctl.dev/v1alpha1\nkind: Network\nmetadata: {name: ${name}}\nspec:\n  mode: isolated\n  ipv4: {address: 198.18.31.1, prefix: 24}\n`;
}

/** Writes (or, with null, removes) laptop files, commits and pushes; returns the commit. */
function commit(message: string, files: Record<string, string | null>): string {
  for (const [rel, text] of Object.entries(files)) {
    const file = path.join(laptop, rel);
    if (text === null) fs.rmSync(file);
    else {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text);
    }
  }
  git(laptop, "add", "-A");
  git(laptop, "commit", "-q", "-m", message);
  git(laptop, "push", "-q", "origin", "HEAD:main");
  return git(laptop, "rev-parse", "HEAD").trim();
}

async function dumpxml(name: string, inactive = true): Promise<string> {
  const result = await virsh("dumpxml", ...(inactive ? ["--inactive"] : []), name);
  return result.exitCode === 0 ? String(result.stdout) : "";
}
const memoryKiB = (xml: string) => Number(/<memory unit='KiB'>(\d+)<\/memory>/.exec(xml)?.[1] ?? 0);
const vcpus = (xml: string) => Number(/<vcpu[^>]*>(\d+)<\/vcpu>/.exec(xml)?.[1] ?? 0);
const exists = async (kind: "dom" | "net", name: string) => (await virsh(kind === "dom" ? "domuuid" : "net-uuid", name)).exitCode === 0;
const domid = async (name: string) => String((await virsh("domid", name)).stdout).trim();

/** Every object's status in the host checkout (what the controller wrote), by key. */
async function statuses(): Promise<Map<string, Record<string, unknown> | undefined>> {
  const snapshot = await new ManifestStore({ dir: host }).read();
  return new Map([...snapshot.objects].map(([key, stored]) => [key, (stored.object as { status?: Record<string, unknown> }).status]));
}

/** What must hold after every commit once it is applied; `except`: keys left at an older revision (invalid ones). */
async function appliedEverywhere(sha: string, except: string[] = []): Promise<boolean> {
  for (const [key, status] of await statuses()) {
    if (except.includes(key)) continue;
    if (status?.lastAppliedRevision !== `main@sha1:${sha}`) return false;
  }
  return true;
}

function assertGitClean(): void {
  assert.doesNotMatch(execFileSync("git", ["-C", remote, "log", "-p", "--all"], { encoding: "utf8" }), /^\+status:/m, "status never enters the remote's history");
  execFileSync("git", ["-C", host, "diff", "--quiet"]); // throws when git sees a change
  for (const file of fs.readdirSync(host, { recursive: true, encoding: "utf8" })) {
    if (file.startsWith(".git") || !/\.ya?ml$/.test(file)) continue;
    assert.doesNotMatch(fs.readFileSync(path.join(host, file), "utf8"), /^(<<<<<<<|=======|>>>>>>>)/m, `${file}: no conflict marker`);
  }
}

const latencies: number[] = [];

/** Pushes a commit and waits until libvirt shows `reached` and every object names the commit. */
async function step(message: string, files: Record<string, string | null>, reached: () => Promise<boolean>, except: string[] = []): Promise<string> {
  const pushedAt = Date.now();
  const sha = commit(message, files);
  await run.waitUntil(`"${message}" reaching libvirt`, reached, 90_000, 200);
  latencies.push(Date.now() - pushedAt);
  await run.waitUntil(`every object's lastAppliedRevision naming "${message}" (${sha})`, () => appliedEverywhere(sha, except), 60_000, 200);
  assertGitClean();
  return sha;
}

before(async () => {
  assertInTestEnv();
  git(run.root, "init", "-q", "--bare", remote);
  git(run.root, "clone", "-q", remote, laptop);
  commit("g1 running, g2 halted", { [`vms/${g1}.yaml`]: vm(g1, { runStrategy: "Always", memory: "256Mi" }), [`vms/${g2}.yaml`]: vm(g2, { memory: "128Mi" }) });
  fs.rmdirSync(host);
  git(run.root, "clone", "-q", remote, host);
  const setup = await kvmctl(["--dir", host, "git-setup"]);
  assert.equal(setup.exitCode, 0, setup.stderr);
  controller = run.startController(["--git-pull", "2s", "--rescan", "1s", "--metrics-address", "127.0.0.1:0"]);
});

after(async () => {
  if (controller && controller.exitCode === null) {
    controller.kill("SIGTERM");
    await controller;
  }
  for (const name of [g1, g2, g3, g4]) {
    await virsh("destroy", name);
    await virsh("undefine", name, "--nvram");
  }
  await virsh("net-destroy", n1);
  await virsh("net-undefine", n1);
  if (latencies.length) process.stdout.write(`# push → libvirt (ms), --git-pull 2s: ${latencies.join(" ")}; max ${Math.max(...latencies)}\n`);
  run.cleanUp();
});

test("twenty commits pushed to the remote reach libvirt through --git-pull, each as one revision", async () => {
  const first = git(host, "rev-parse", "HEAD").trim();
  await run.waitUntil("the first revision applied", async () => (await exists("dom", g1)) && (await exists("dom", g2)) && (await appliedEverywhere(first)), 180_000, 500);
  await run.waitUntil(`${g1} running`, async () => String((await virsh("domstate", g1)).stdout).trim() === "running", 120_000, 500);
  assertGitClean();
  const g1Id = await domid(g1);

  // 2: memory of the running VM: the definition changes, the VM says RestartRequired.
  await step("g1 320Mi", { [`vms/${g1}.yaml`]: vm(g1, { runStrategy: "Always", memory: "320Mi" }) }, async () => memoryKiB(await dumpxml(g1)) === 320 * 1024);
  const g1Status = (await statuses()).get(`VirtualMachine/${g1}`) as { conditions?: { type: string; status: string }[] };
  assert.ok(g1Status.conditions?.some((c) => c.type === "RestartRequired" && c.status === "True"), JSON.stringify(g1Status));
  // 3-4: CPU, then the last spec line of a document with a status block (a conflict for `git pull --autostash`).
  assert.match(fs.readFileSync(path.join(host, "vms", `${g2}.yaml`), "utf8"), /  memory: 128Mi\nstatus:\n/, "the status block sits right after the last spec line");
  await step("g2 2 cpus", { [`vms/${g2}.yaml`]: vm(g2, { cpus: 2, memory: "128Mi" }) }, async () => vcpus(await dumpxml(g2)) === 2);
  await step("g2 last line", { [`vms/${g2}.yaml`]: vm(g2, { cpus: 2, memory: "144Mi" }) }, async () => memoryKiB(await dumpxml(g2)) === 144 * 1024);
  // 5: a new VM.
  await step("g3", { [`vms/${g3}.yaml`]: vm(g3, { memory: "128Mi" }) }, () => exists("dom", g3));
  // 6: a VM moved to another file: the same domain, still running.
  const moved = `vms/moved/${g1}.yaml`;
  // (The domain records which manifest file it came from.)
  await step("g1 moved", { [`vms/${g1}.yaml`]: null, [moved]: vm(g1, { runStrategy: "Always", memory: "320Mi" }) }, async () => (await dumpxml(g1)).includes(`file="${moved}"`) || (await dumpxml(g1)).includes(`file='${moved}'`));
  assert.equal(await domid(g1), g1Id, "the moved VM kept running as the same domain");
  // 7-9: a network added, a VM edited, the network removed.
  await step("n1", { [`networks/${n1}.yaml`]: network(n1) }, () => exists("net", n1));
  await step("g3 2 cpus", { [`vms/${g3}.yaml`]: vm(g3, { cpus: 2, memory: "128Mi" }) }, async () => vcpus(await dumpxml(g3)) === 2);
  await step("n1 removed", { [`networks/${n1}.yaml`]: null }, async () => !(await exists("net", n1)));

  // 10: an invalid manifest: reported with file and line; g2 stays at its last good revision, the rest applies.
  const g2Key = `VirtualMachine/${g2}`;
  const g2Before = await dumpxml(g2);
  const invalid = await step("g2 invalid", { [`vms/${g2}.yaml`]: vm(g2, { cpusText: "many", memory: "144Mi" }), [`vms/${g3}.yaml`]: vm(g3, { cpus: 2, memory: "160Mi" }) }, async () => memoryKiB(await dumpxml(g3)) === 160 * 1024, [g2Key]);
  const got = await kvmctl(["--dir", host, "get", "vm", g2]);
  assert.match(got.stderr, new RegExp(`vms/${g2}\\.yaml: document 1, line \\d+:\\d+: spec\\.cpus`), got.stderr);
  assert.equal(await dumpxml(g2), g2Before, "the invalid VM's domain is left as it was");
  const g2Text = fs.readFileSync(path.join(host, "vms", `${g2}.yaml`), "utf8");
  assert.doesNotMatch(g2Text, new RegExp(`lastAppliedRevision: main@sha1:${invalid}`), "the invalid VM was not applied at that revision");
  // 11: its fix.
  await step("g2 fixed", { [`vms/${g2}.yaml`]: vm(g2, { cpus: 3, memory: "144Mi" }) }, async () => vcpus(await dumpxml(g2)) === 3);

  // 12-20: more edits, VMs added and deleted.
  await step("g3 192Mi", { [`vms/${g3}.yaml`]: vm(g3, { cpus: 2, memory: "192Mi" }) }, async () => memoryKiB(await dumpxml(g3)) === 192 * 1024);
  await step("g2 200Mi", { [`vms/${g2}.yaml`]: vm(g2, { cpus: 3, memory: "200Mi" }) }, async () => memoryKiB(await dumpxml(g2)) === 200 * 1024);
  await step("g3 autostart", { [`vms/${g3}.yaml`]: vm(g3, { cpus: 2, memory: "192Mi", autostart: true }) }, async () => /Autostart:\s+enable/.test(String((await virsh("dominfo", g3)).stdout)));
  await step("g1 2 cpus", { [moved]: vm(g1, { runStrategy: "Always", cpus: 2, memory: "320Mi" }) }, async () => vcpus(await dumpxml(g1)) === 2);
  await step("g3 deleted", { [`vms/${g3}.yaml`]: null }, async () => !(await exists("dom", g3)));
  await step("g2 autostart", { [`vms/${g2}.yaml`]: vm(g2, { cpus: 3, memory: "200Mi", autostart: true }) }, async () => /Autostart:\s+enable/.test(String((await virsh("dominfo", g2)).stdout)));
  await step("g4", { [`vms/${g4}.yaml`]: vm(g4, { memory: "128Mi" }) }, () => exists("dom", g4));
  await step("g4 160Mi", { [`vms/${g4}.yaml`]: vm(g4, { memory: "160Mi" }) }, async () => memoryKiB(await dumpxml(g4)) === 160 * 1024);
  const last = await step("g2 deleted", { [`vms/${g2}.yaml`]: null }, async () => !(await exists("dom", g2)));
  assert.equal(latencies.length, 19, "nineteen commits after the first");
  assert.equal(await domid(g1), g1Id, "g1 ran through all of it as the same domain");

  // What a person sees: the revision in get -o wide, describe and the events.
  const wide = await kvmctl(["--dir", host, "get", "vm", g1, "-o", "wide"]);
  assert.match(wide.stdout, new RegExp(`REVISION[\\s\\S]*main@sha1:${last.slice(0, 12)}\\b`), wide.stdout);
  const described = await kvmctl(["--dir", host, "describe", "vm", g1]);
  assert.match(described.stdout, new RegExp(`Revision:\\s+main@sha1:${last}\\n`), described.stdout);
  assert.match(described.stdout, /REVISION/, "events name the revision they were recorded at");
});

test("a colliding uncommitted edit on the host: the pull is refused, nothing changes, the last good revision stays applied", async () => {
  const file = path.join(host, "vms", `${g4}.yaml`);
  const head = git(host, "rev-parse", "HEAD").trim();
  // The host edits g4 by hand (applied as a dirty revision), the laptop pushes another g4 edit.
  fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("memory: 160Mi", "memory: 176Mi"));
  await run.waitUntil("the hand edit applied as a dirty revision", async () => memoryKiB(await dumpxml(g4)) === 176 * 1024 && (await appliedEverywhere(`${head}+dirty`)), 60_000, 200);
  const edited = fs.readFileSync(file, "utf8");
  commit("g4 208Mi", { [`vms/${g4}.yaml`]: vm(g4, { memory: "208Mi" }) });

  const refused = await kvmctl(["--dir", host, "pull"]);
  assert.equal(refused.exitCode, 1, refused.stdout);
  assert.match(refused.stderr, new RegExp(`asked the running controller \\(pid \\d+\\) to pull[\\s\\S]*uncommitted changes in files the upstream changes: vms/${g4}\\.yaml; commit or stash them, then pull again \\(nothing was changed\\)`));
  assert.equal(git(host, "rev-parse", "HEAD").trim(), head, "HEAD unchanged");
  assert.equal(fs.readFileSync(file, "utf8"), edited, "the hand edit is as it was");
  const got = await kvmctl(["--dir", host, "get", "vm"]);
  assert.match(got.stderr, /warning: the last git pull failed at .* \(LocalChanges\): uncommitted changes/, got.stderr);
  assert.equal(memoryKiB(await dumpxml(g4)), 176 * 1024, "what the checkout holds stays applied");

  // The edit undone by hand: the next pull (the interval's) goes through.
  fs.writeFileSync(file, edited.replace("memory: 176Mi", "memory: 160Mi"));
  await run.waitUntil("the laptop's edit applied after the hand edit was undone", async () => memoryKiB(await dumpxml(g4)) === 208 * 1024, 60_000, 200);
  const sha = git(laptop, "rev-parse", "HEAD").trim();
  await run.waitUntil("every object at the laptop's commit", () => appliedEverywhere(sha), 60_000, 200);
  assertGitClean();
  assert.doesNotMatch((await kvmctl(["--dir", host, "get", "vm"])).stderr, /warning: the last git pull failed/);

  // The pulls as Prometheus counts them.
  const serving = run.logLines().find((l) => typeof l.msg === "string" && l.msg.startsWith("serving ") && l.msg.includes("/metrics"));
  const metrics = await (await fetch(`${String(serving?.url)}/metrics`)).text();
  const pulls = (result: string) => Number(new RegExp(`^kvmctl_git_pulls_total\\{result="${result}"\\} (\\d+)$`, "m").exec(metrics)?.[1] ?? 0);
  assert.ok(pulls("fast-forward") >= 20, metrics);
  assert.ok(pulls("LocalChanges") >= 1, metrics);
});

test("a push straight into the host's checkout (updateInstead) is applied as its own revision", async () => {
  git(host, "config", "receive.denyCurrentBranch", "updateInstead");
  git(laptop, "remote", "add", "host", host);
  fs.writeFileSync(path.join(laptop, "vms", `${g4}.yaml`), vm(g4, { memory: "224Mi" }));
  git(laptop, "commit", "-qam", "g4 224Mi, pushed to the host");
  const sha = git(laptop, "rev-parse", "HEAD").trim();
  git(laptop, "push", "-q", "host", "HEAD:main");
  assert.equal(git(host, "rev-parse", "HEAD").trim(), sha);
  await run.waitUntil("the pushed commit in libvirt", async () => memoryKiB(await dumpxml(g4)) === 224 * 1024, 60_000, 200);
  await run.waitUntil("every object at the pushed commit", () => appliedEverywhere(sha), 60_000, 200);
  assertGitClean();
});

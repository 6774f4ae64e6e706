// kubectl parity: `wait --for=condition=Ready` (and `apply --wait`) wait through a Stalled
// status that predates the latest spec and give up only on a Stalled status for the current
// spec; `describe` of an invalid object shows its problems, its last status and its events.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import { ManifestStore, observedFields } from "../../src/store/index.js";
import { kvmctl, spawnKvmctl, tempDir, type RunningCli } from "./helpers.js";

const KEY = "VirtualMachine/web1";
const vm = (memory: string) => `apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata: {name: web1}\nspec: {memory: ${memory}, runStrategy: Halted}\n`;

const running: RunningCli[] = [];
after(() => {
  for (const child of running) child.kill("SIGKILL");
});

/** A status as the controller writes it for the spec now in the file: Stalled, or Ready. */
async function writeStatus(dir: string, outcome: "stalled" | "ready"): Promise<number> {
  const store = new ManifestStore({ dir });
  const stored = (await store.read()).objects.get(KEY)!;
  const now = new Date().toISOString();
  const at = { observedGeneration: stored.generation, lastTransitionTime: now };
  const conditions =
    outcome === "stalled"
      ? [
          { type: "Ready", status: "False", reason: "HostPathNotAllowed", message: "bad path", ...at },
          { type: "Stalled", status: "True", reason: "HostPathNotAllowed", message: "bad path", ...at },
        ]
      : [{ type: "Ready", status: "True", reason: "Running", message: "up", ...at }];
  assert.equal(await store.writeStatus(KEY, { ...observedFields(stored), phase: outcome === "stalled" ? "Failed" : "Running", conditions }), true);
  return stored.generation;
}

/** web1 Stalled at generation 1, then its spec edited: the Stalled status predates the spec (generation 2). */
async function staleStalled(label: string): Promise<string> {
  const dir = tempDir(label);
  const file = path.join(dir, "web1.yaml");
  fs.writeFileSync(file, vm("256Mi"));
  assert.equal(await writeStatus(dir, "stalled"), 1);
  fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("256Mi", "512Mi"));
  assert.equal((await new ManifestStore({ dir }).read()).objects.get(KEY)!.generation, 2);
  return dir;
}

test("wait gives up at once on a Stalled status for the current spec", async () => {
  const dir = tempDir("wait-stalled");
  fs.writeFileSync(path.join(dir, "web1.yaml"), vm("256Mi"));
  await writeStatus(dir, "stalled");
  const started = Date.now();
  const result = await kvmctl(["--dir", dir, "wait", "vm/web1", "--for=condition=Ready", "--timeout=30s"]);
  assert.equal(result.exitCode, 1);
  assert.match(result.stderr, /virtualmachines\/web1 is stalled: HostPathNotAllowed: bad path/);
  assert.ok(Date.now() - started < 20_000, "did not wait for the timeout");
});

test("wait keeps waiting through a Stalled status from before the latest spec: times out, saying the status is older", async () => {
  const dir = await staleStalled("wait-stale-stalled");
  const started = Date.now();
  const result = await kvmctl(["--dir", dir, "wait", "vm/web1", "--for=condition=Ready", "--timeout=2s"]);
  assert.equal(result.exitCode, 1, result.stderr);
  assert.ok(Date.now() - started >= 2_000, "waited for the whole timeout");
  assert.doesNotMatch(result.stderr, /stalled/);
  assert.match(result.stderr, /timed out waiting for condition Ready=True on virtualmachines\/web1 \(Ready=False, HostPathNotAllowed: bad path; the status describes generation 1, the spec is generation 2\)/);
});

test("wait through a stale Stalled status ends once Ready is written for the current spec", async () => {
  const dir = await staleStalled("wait-stale-then-ready");
  const child = spawnKvmctl(["--dir", dir, "wait", "vm/web1", "--for=condition=Ready", "--timeout=60s"]);
  running.push(child);
  let exited = false;
  void child.exited.then(() => (exited = true));
  // Several of its 250 ms polls have seen the stale Stalled status by now.
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  assert.equal(exited, false, `wait gave up on a stale Stalled status: ${child.stderr()}`);
  assert.equal(await writeStatus(dir, "ready"), 2);
  assert.equal(await child.exited, 0, child.stderr());
  assert.equal(child.stdout(), "virtualmachine/web1 condition met\n");
});

test("apply --wait of a fix for a Stalled object waits for the fixed spec's status (a positive signal: it printed 'configured')", async () => {
  const dir = tempDir("apply-wait-stalled");
  fs.writeFileSync(path.join(dir, "web1.yaml"), vm("256Mi"));
  await writeStatus(dir, "stalled");
  const input = path.join(tempDir("apply-wait-stalled-input"), "web1.yaml");
  fs.writeFileSync(input, vm("512Mi"));
  const child = spawnKvmctl(["--dir", dir, "apply", "-f", input, "--wait", "--timeout=60s"]);
  running.push(child);
  await child.waitForStdout(/^virtualmachine\/web1 configured\n/m);
  let exited = false;
  void child.exited.then(() => (exited = true));
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  assert.equal(exited, false, `apply --wait gave up on a stale Stalled status: ${child.stderr()}`);
  await writeStatus(dir, "ready");
  assert.equal(await child.exited, 0, child.stderr());
  assert.equal(child.stdout(), "virtualmachine/web1 configured\nvirtualmachine/web1 Running Ready=True Running: up\n");
});

test("describe of an invalid object shows its problems, its last status and its events", async () => {
  const dir = tempDir("describe-invalid");
  const file = path.join(dir, "web1.yaml");
  fs.writeFileSync(file, vm("256Mi"));
  await writeStatus(dir, "ready");
  const store = new ManifestStore({ dir });
  await store.recordEvent(KEY, { time: new Date().toISOString(), type: "Normal", reason: "Started", message: "define domain; start domain" });
  // A typo makes the document invalid; its status block stays in it.
  fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("memory: 256Mi", "memory: 256Mi, cpu: 2"));
  assert.ok((await store.read()).invalid.has(KEY));

  const result = await kvmctl(["--dir", dir, "describe", "vm", "web1"]);
  assert.equal(result.exitCode, 1);
  assert.match(result.stderr, /error: virtualmachines "web1" is invalid/);
  const out = result.stdout;
  assert.match(out, /^Name:\s+web1$/m);
  assert.match(out, /^File:\s+web1\.yaml$/m);
  assert.match(out, /^Phase:\s+Invalid/m);
  assert.match(out, /^Problems:\n {2}error: web1\.yaml: document 1, line 4:\d+: spec\.cpu: unknown field "cpu"; did you mean "cpus"\?$/m);
  assert.match(out, /^Observed:\s+generation 1/m);
  assert.match(out, /^Last phase:\s+Running$/m);
  assert.match(out, /^Spec:\n {2}memory: 256Mi\n {2}cpu: 2\n/m);
  assert.match(out, /^Conditions:\n\s+TYPE\s+STATUS\s+REASON\s+SINCE\s+MESSAGE\n\s+Ready\s+True\s+Running\s+\S+\s+up$/m);
  assert.match(out, /^Events:\n\s+TYPE\s+REASON\s+COUNT\s+FIRST SEEN\s+LAST SEEN\s+MESSAGE\n\s+Normal\s+Started\s+1\s+\S+\s+\S+\s+define domain; start domain$/m);

  // With --status-dir the status comes from there.
  const statusDir = tempDir("describe-invalid-status");
  const split = tempDir("describe-invalid-split");
  fs.writeFileSync(path.join(split, "web1.yaml"), vm("256Mi"));
  const splitStore = new ManifestStore({ dir: split, statusDir });
  const stored = (await splitStore.read()).objects.get(KEY)!;
  await splitStore.writeStatus(KEY, { ...observedFields(stored), phase: "Stopped", conditions: [{ type: "Ready", status: "False", reason: "Stopped", message: "halted", observedGeneration: 1, lastTransitionTime: new Date().toISOString() }] });
  fs.writeFileSync(path.join(split, "web1.yaml"), vm("256Mi").replace("memory: 256Mi", "memory: 256Mi, cpu: 2"));
  const fromDir = await kvmctl(["--dir", split, "--status-dir", statusDir, "describe", "vm", "web1"]);
  assert.equal(fromDir.exitCode, 1);
  assert.match(fromDir.stdout, /^Last phase:\s+Stopped$/m);
  assert.match(fromDir.stdout, /^\s+Ready\s+False\s+Stopped\s+\S+\s+halted$/m);
});

// `get -w` as kubectl's: the table, then one line per change — status written by the
// controller (here: the store's writeStatus, what the controller calls), a manifest added,
// edited or deleted (its last state printed once more) — the header never repeated; -o json
// prints a document per change; SIGINT/SIGTERM end it with exit 0. And `apply --wait` /
// `delete --wait` print a line per phase change.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import { ManifestStore, observedFields } from "../../src/store/index.js";
import { spawnKvmctl, tempDir, type RunningCli } from "./helpers.js";

const vm = (name: string, memory = "256Mi") => `apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata: {name: ${name}}\nspec: {memory: ${memory}, runStrategy: Halted}\n`;

const running: RunningCli[] = [];
after(() => {
  for (const child of running) child.kill("SIGKILL");
});

function start(args: string[]): RunningCli {
  const child = spawnKvmctl(args);
  running.push(child);
  return child;
}

/** What the controller writes: a status for the object's current spec. */
async function writeStatus(dir: string, key: string, phase: string, ready: "True" | "False", reason: string, extra: Record<string, unknown>[] = []): Promise<void> {
  const store = new ManifestStore({ dir });
  const stored = (await store.read()).objects.get(key);
  assert.ok(stored, `${key} is in ${dir}`);
  const now = new Date().toISOString();
  const conditions = [{ type: "Ready", status: ready, reason, message: `${reason} now`, observedGeneration: stored.generation, lastTransitionTime: now }, ...extra];
  assert.equal(await store.writeStatus(key, { ...observedFields(stored), phase, conditions }), true);
}

const count = (text: string, pattern: RegExp) => text.split("\n").filter((line) => pattern.test(line)).length;

test("get vm -w: the table, then a line per status write, new, edited and deleted manifest; SIGINT exits 0", async () => {
  const dir = tempDir("get-watch");
  fs.writeFileSync(path.join(dir, "web1.yaml"), vm("web1"));
  const child = start(["--dir", dir, "get", "vm", "-w"]);
  await child.waitForStdout(/^NAME\s+READY\s+STATUS\s+CPUS\s+MEMORY\s+AGE\n/m);
  await child.waitForStdout(/^web1\s+Unknown\s+Pending\s+1\s+256Mi/m);

  await writeStatus(dir, "VirtualMachine/web1", "Stopped", "False", "Stopped");
  await child.waitForStdout(/^web1\s+False\s+Stopped\s+1\s+256Mi/m);
  await writeStatus(dir, "VirtualMachine/web1", "Running", "True", "Running");
  await child.waitForStdout(/^web1\s+True\s+Running\s+1\s+256Mi/m);

  fs.writeFileSync(path.join(dir, "web2.yaml"), vm("web2"));
  await child.waitForStdout(/^web2\s+Unknown\s+Pending/m);
  fs.writeFileSync(path.join(dir, "web1.yaml"), fs.readFileSync(path.join(dir, "web1.yaml"), "utf8").replace("256Mi", "512Mi"));
  await child.waitForStdout(/^web1\s+True\s+Running\s+1\s+512Mi/m);

  // Deleted: its last state once more, as kubectl prints a deleted object.
  fs.rmSync(path.join(dir, "web2.yaml"));
  await child.waitForStdout(/^web2\s+Unknown\s+Pending[^\n]*\n(?:[^\n]*\n)*web2\s+Unknown\s+Pending/m);

  // Nothing changes: nothing more is printed (AGE moving on is not a change), over a few polls.
  const settled = child.stdout();
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  assert.equal(child.stdout(), settled, "no line without a change");

  child.kill("SIGINT");
  assert.equal(await child.exited, 0, child.stderr());
  const out = child.stdout();
  assert.equal(count(out, /^NAME\s/), 1, `one header:\n${out}`);
  assert.equal(count(out, /^web2\s/), 2, `web2 added, then printed once more when deleted:\n${out}`);
  assert.equal(count(out, /^web1\s+True\s+Running\s+1\s+256Mi/), 1, `each change once:\n${out}`);
  // Lines line up under the first table's header.
  const header = out.split("\n")[0]!;
  const at = header.indexOf("STATUS");
  for (const line of out.trimEnd().split("\n").slice(1)) assert.ok(line[at - 1] === " " && line[at] !== " ", `aligned:\n${out}`);
  assert.equal(child.stderr(), "");
});

test("get vm NAME -o wide -w: only that object, with the wide columns; a Stalled status shows in MESSAGE; SIGTERM exits 0", async () => {
  const dir = tempDir("get-watch-wide");
  fs.writeFileSync(path.join(dir, "web1.yaml"), vm("web1"));
  fs.writeFileSync(path.join(dir, "other.yaml"), vm("other"));
  const child = start(["--dir", dir, "get", "vm", "web1", "-o", "wide", "-w"]);
  await child.waitForStdout(/^NAME\s+READY\s+STATUS\s+CPUS\s+MEMORY\s+AGE\s+RUNSTRATEGY\s+DOMAIN\s+SSH\s+REVISION\s+MESSAGE\n/m);
  const stalled = { type: "Stalled", status: "True", reason: "HostPathNotAllowed", message: "disk path outside the policy", observedGeneration: 1, lastTransitionTime: new Date().toISOString() };
  await writeStatus(dir, "VirtualMachine/web1", "Failed", "False", "HostPathNotAllowed", [stalled]);
  await child.waitForStdout(/^web1\s+False\s+Failed\s+1\s+256Mi\s+\S+\s+Halted\s+-\s+-\s+-\s+HostPathNotAllowed: disk path outside the policy$/m);
  await writeStatus(dir, "VirtualMachine/other", "Running", "True", "Running");
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  child.kill("SIGTERM");
  assert.equal(await child.exited, 0, child.stderr());
  assert.doesNotMatch(child.stdout(), /other/, "another object's change is not printed");
});

test("get vm -o json -w: one document per object, then one per change", async () => {
  const dir = tempDir("get-watch-json");
  fs.writeFileSync(path.join(dir, "web1.yaml"), vm("web1"));
  const child = start(["--dir", dir, "get", "vm", "-o", "json", "-w"]);
  await child.waitForStdout(/^}\n/m);
  await writeStatus(dir, "VirtualMachine/web1", "Running", "True", "Running");
  await child.waitForStdout(/"phase": "Running"[\s\S]*^}\n/m);
  child.kill("SIGINT");
  assert.equal(await child.exited, 0, child.stderr());
  // Pretty-printed documents, one after another (not a List).
  const documents = child.stdout().split(/\n(?=\{)/).map((text) => JSON.parse(text) as { kind: string; metadata: { name: string }; status?: { phase?: string } });
  assert.equal(documents.length, 2, child.stdout());
  assert.deepEqual(documents.map((d) => [d.kind, d.metadata.name, d.status?.phase]), [["VirtualMachine", "web1", undefined], ["VirtualMachine", "web1", "Running"]]);
});

test("get -w of a name that is not there is an error, as kubectl's", async () => {
  const dir = tempDir("get-watch-missing");
  const child = start(["--dir", dir, "get", "vm", "nope", "-w"]);
  assert.equal(await child.exited, 1);
  assert.match(child.stderr(), /virtualmachines "nope" not found/);
});

test("apply --wait prints a line per phase change until Ready; delete --wait one while kept and one when deleted", async () => {
  const dir = tempDir("apply-wait-progress");
  const input = path.join(tempDir("apply-wait-input"), "web1.yaml");
  fs.writeFileSync(input, vm("web1"));
  const apply = start(["--dir", dir, "apply", "-f", input, "--wait", "--timeout=60s"]);
  await apply.waitForStdout(/^virtualmachine\/web1 created\n/m);
  await writeStatus(dir, "VirtualMachine/web1", "Pending", "False", "DependencyNotReady");
  await apply.waitForStdout(/^virtualmachine\/web1 Pending Ready=False DependencyNotReady: DependencyNotReady now\n/m);
  await writeStatus(dir, "VirtualMachine/web1", "Running", "True", "Running");
  assert.equal(await apply.exited, 0, apply.stderr());
  assert.equal(apply.stdout(), "virtualmachine/web1 created\nvirtualmachine/web1 Pending Ready=False DependencyNotReady: DependencyNotReady now\nvirtualmachine/web1 Running Ready=True Running: Running now\n");

  const store = new ManifestStore({ dir });
  const del = start(["--dir", dir, "delete", "vm", "web1", "--wait", "--timeout=60s"]);
  await del.waitForStdout(/^virtualmachine "web1" deleted\n/m);
  await store.setTerminating("VirtualMachine/web1", { phase: "Terminating", reason: "ShuttingDown", message: "waiting for the guest to shut down" });
  await del.waitForStdout(/^virtualmachine\/web1 Terminating ShuttingDown: waiting for the guest to shut down\n/m);
  await store.setTerminating("VirtualMachine/web1", undefined);
  await store.recordEvent("VirtualMachine/web1", { time: new Date().toISOString(), type: "Normal", reason: "Deleted", message: "domain destroyed and undefined" });
  assert.equal(await del.exited, 0, del.stderr());
  assert.equal(
    del.stdout(),
    'virtualmachine "web1" deleted\nvirtualmachine/web1 Terminating ShuttingDown: waiting for the guest to shut down\nvirtualmachine/web1 Deleted: domain destroyed and undefined\n',
  );
});

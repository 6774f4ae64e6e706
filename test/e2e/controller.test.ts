// The controller on the real stack (issue 4's proof): a VM on the test guest becomes Ready,
// answers SSH through its forward, comes back after `virsh destroy`, takes a memory change
// per its runStrategy, survives SIGKILL and a libvirtd restart, never touches a domain it
// does not own, and on deletion leaves its disk behind.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ResultPromise } from "execa";
import { parseDocument } from "yaml";
import { restartLibvirtd } from "../../testenv/daemons.js";
import { assertInTestEnv, testGuest, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, virsh } from "./harness.js";
import { freePort, sshWhenReady } from "./ssh.js";

const pool = testName("pool");
const vm = testName("vm");
const foreign = testName("foreign");
let root = "";
let dir = "";
let run: E2eDirs; // set in before(); after() runs even when before() failed
let port = 0;
let controller: ResultPromise | undefined;

const domstate = async (name: string) => String((await virsh("domstate", name)).stdout).trim();
const readyWait = (key: string, timeout = "120s") => kvmctl(["--dir", dir, "wait", key, "--for=condition=Ready", `--timeout=${timeout}`]);

function manifests(memory: string, extra = ""): string {
  const guest = testGuest();
  return `apiVersion: kvmctl.dev/v1alpha1
kind: StoragePool
metadata:
  name: ${pool}
spec:
  type: dir
  path: ${path.join(root, "pool")}
---
apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: ${vm}
spec:
  cpus: 1
  memory: ${memory}
  terminationGracePeriodSeconds: 20
  boot: {kernel: ${guest.kernel}, initrd: ${guest.initrd}, cmdline: "console=ttyS0 quiet"}
  disks:
    - {name: data, pool: ${pool}, size: 32Mi}
  interfaces:
    - user:
        portForwards: [{hostPort: ${port}, guestPort: 22}]
${extra}`;
}

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-controller");
  ({ root, dir } = run);
  port = await freePort();
});

after(async () => {
  if (controller && controller.exitCode === null) controller.kill("SIGKILL");
  for (const name of [vm, foreign]) {
    await virsh("destroy", name);
    await virsh("undefine", name, "--nvram");
  }
  await virsh("pool-destroy", pool);
  await virsh("pool-undefine", pool);
  run?.cleanUp();
});

test("a VM on the test guest converges, self-heals, changes, survives crashes, and is pruned", async (t) => {
  fs.writeFileSync(path.join(root, "vm.yaml"), manifests("256Mi"));
  const applied = await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "vm.yaml")]);
  assert.equal(applied.exitCode, 0, applied.stderr);
  controller = run.startController();

  await t.test("Ready, and SSH through the forward works", async () => {
    const ready = await readyWait(`vm/${vm}`);
    assert.equal(ready.exitCode, 0, ready.stderr);
    const kernel = await sshWhenReady({ port, key: testGuest().sshKey }, ["uname", "-r"]);
    assert.match(kernel.trim(), /-cloud-amd64$/);
    const got = await kvmctl(["--dir", dir, "get", "vm", vm, "-o", "json"]);
    const status = JSON.parse(got.stdout).status;
    assert.equal(status.phase, "Running");
    assert.deepEqual(status.ssh, { host: "127.0.0.1", port });
    assert.match(status.domain.uuid, /^[0-9a-f-]{36}$/);
    assert.equal((await virsh("vol-info", "--pool", pool, `${vm}-data.qcow2`)).exitCode, 0, "disk created in its pool");
  });

  await t.test("kvmctl ssh: through the forward the spec names (not a hand-edited status), known hosts in the user's state directory", async () => {
    // Someone edits the status block to point elsewhere: kvmctl ssh does not follow it.
    const file = fs.readdirSync(dir, { recursive: true, encoding: "utf8" }).map((f) => path.join(dir, f)).find((f) => f.endsWith(".yaml") && fs.readFileSync(f, "utf8").includes(`name: ${vm}`) && fs.readFileSync(f, "utf8").includes("kind: VirtualMachine"))!;
    const doc = parseDocument(fs.readFileSync(file, "utf8"));
    assert.equal(doc.getIn(["status", "ssh", "port"]), port);
    doc.setIn(["status", "ssh", "port"], 1);
    fs.writeFileSync(file, doc.toString());
    const state = path.join(root, "xdg-state");
    const ssh = await kvmctl(["--dir", dir, "ssh", vm, "-i", testGuest().sshKey, "--", "uname", "-r"], { env: { XDG_STATE_HOME: state } });
    assert.equal(ssh.exitCode, 0, ssh.stderr);
    assert.match(ssh.stdout.trim(), /-cloud-amd64$/);
    const knownHosts = fs.readdirSync(path.join(state, "kvmctl", "known_hosts"), { recursive: true, encoding: "utf8" });
    assert.ok(knownHosts.some((f) => path.basename(f) === vm), `known hosts: ${knownHosts.join(", ")}`);
    assert.ok(!fs.existsSync(path.join(dir, ".kvmctl", "known_hosts")), "nothing in the manifest tree");
  });

  await t.test("virsh destroy by hand: running again", async () => {
    assert.equal((await virsh("destroy", vm)).exitCode, 0);
    const ms = await run.waitUntil("the domain to run again", async () => (await domstate(vm)) === "running");
    process.stdout.write(`# destroy → running: ${ms} ms\n`);
  });

  await t.test("memory change: RestartRequired without allowRestart, applied with it", async () => {
    fs.writeFileSync(path.join(root, "vm.yaml"), manifests("320Mi"));
    assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "vm.yaml")])).exitCode, 0);
    await run.waitUntil("RestartRequired", async () => {
      const got = JSON.parse((await kvmctl(["--dir", dir, "get", "vm", vm, "-o", "json"])).stdout);
      return (got.status?.conditions ?? []).some((c: { type: string; status: string }) => c.type === "RestartRequired" && c.status === "True");
    });
    const inactive = String((await virsh("dumpxml", "--inactive", vm)).stdout);
    assert.match(inactive, /<memory unit='KiB'>327680<\/memory>/, "next-boot definition has the new memory");
    assert.match(String((await virsh("dumpxml", vm)).stdout), /<memory unit='KiB'>262144<\/memory>/, "the running domain was not restarted");

    fs.writeFileSync(path.join(root, "vm.yaml"), manifests("320Mi").replace("  cpus: 1\n", "  cpus: 1\n  allowRestart: true\n"));
    assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "vm.yaml")])).exitCode, 0);
    await run.waitUntil("the restart with the new memory", async () => /<memory unit='KiB'>327680<\/memory>/.test(String((await virsh("dumpxml", vm)).stdout)) && (await domstate(vm)) === "running", 120_000);
    assert.equal((await readyWait(`vm/${vm}`)).exitCode, 0);
  });

  await t.test("a domain kvmctl does not own is never touched", async () => {
    const xmlFile = path.join(root, "foreign.xml");
    const own = String((await virsh("dumpxml", "--inactive", vm)).stdout);
    fs.writeFileSync(xmlFile, own.replace(/<metadata>[\s\S]*<\/metadata>/, "").replace(/<uuid>.*<\/uuid>/, "").replace(`<name>${vm}</name>`, `<name>${foreign}</name>`).replace(/<disk[\s\S]*?<\/disk>/, "").replace(/<interface[\s\S]*?<\/interface>/, ""));
    assert.equal((await virsh("define", xmlFile)).exitCode, 0);
    const before = String((await virsh("dumpxml", "--inactive", foreign)).stdout);
    fs.writeFileSync(path.join(root, "foreign.yaml"), `apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: ${foreign}\nspec:\n  memory: 256Mi\n`);
    assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "foreign.yaml")])).exitCode, 0);
    const wait = await readyWait(`vm/${foreign}`, "30s");
    assert.equal(wait.exitCode, 1);
    assert.match(wait.stderr, /stalled: NotOwned/);
    assert.equal(String((await virsh("dumpxml", "--inactive", foreign)).stdout), before, "the foreign domain changed");
    assert.equal(await domstate(foreign), "shut off");
    // `delete --wait` returns once the controller recorded this deletion's Deleted event (one
    // recorded before, when the domain was defined by hand, does not count).
    const deletedAt = Date.now();
    const deleted = await kvmctl(["--dir", dir, "delete", "vm", foreign, "--wait", "--timeout=60s"]);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    const events = fs.readFileSync(path.join(dir, ".kvmctl", "events", `VirtualMachine-${foreign}.jsonl`), "utf8");
    const handled = events.split("\n").filter(Boolean).map((line) => JSON.parse(line) as { time: string; reason: string; message: string }).filter((e) => e.reason === "Deleted" && Date.parse(e.time) >= deletedAt);
    assert.match(handled.at(-1)?.message ?? "", /not created by kvmctl: left alone/, events);
    assert.equal((await virsh("domstate", foreign)).exitCode, 0, "deleting the manifest removed a domain kvmctl does not own");
  });

  await t.test("SIGKILL mid-convergence, then a restart: no duplicates, no damage", async () => {
    assert.equal((await virsh("destroy", vm)).exitCode, 0);
    controller!.kill("SIGKILL");
    await controller;
    controller = run.startController();
    await run.waitUntil("the domain to run again after the controller restarted", async () => (await domstate(vm)) === "running");
    assert.equal((await readyWait(`vm/${vm}`)).exitCode, 0);
    const names = String((await virsh("list", "--all", "--name")).stdout).split("\n").filter((n) => n.trim() === vm);
    assert.equal(names.length, 1);
    const vols = String((await virsh("vol-list", pool)).stdout).split("\n").filter((l) => l.includes(vm));
    assert.equal(vols.length, 1, vols.join("\n"));
    const get = await kvmctl(["--dir", dir, "get", "all"]);
    assert.equal(get.exitCode, 0);
    assert.equal(get.stderr, "", "manifests are intact");
  });

  await t.test("libvirtd restarted under the running controller: it recovers", async () => {
    const restartedAt = Date.now();
    await restartLibvirtd();
    // The destroy must come once the controller listens again: its domain event stream back,
    // and the resync that follows it reaching the new libvirtd.
    const reconnected = await run.waitForLog("the domain event stream reconnected", (line) => line.msg === "libvirt event stream reconnected; resyncing" && line.stream === "domain" && line.time >= restartedAt);
    await run.waitForReconciles(`VirtualMachine/${vm}`, { after: reconnected.time });
    assert.equal((await virsh("destroy", vm)).exitCode, 0);
    await run.waitUntil("the domain to run again after libvirtd restarted", async () => (await domstate(vm)) === "running");
  });

  await t.test("deleting the manifest: domain gone, disk kept", async () => {
    const deleted = await kvmctl(["--dir", dir, "delete", "vm", vm, "--wait", "--timeout=60s"]);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    assert.notEqual((await virsh("domstate", vm)).exitCode, 0, "domain still defined");
    assert.equal((await virsh("vol-info", "--pool", pool, `${vm}-data.qcow2`)).exitCode, 0, "the disk was deleted");
  });

  await t.test("SIGTERM: the controller finishes and exits 0", async () => {
    controller!.kill("SIGTERM");
    const result = await controller!;
    assert.equal(result.exitCode, 0, `exit ${result.exitCode} signal ${result.signal}`);
  });
});

// The informer on the real stack (issue 16): once libvirt's three event streams listen, a
// pass over objects whose manifests changed but whose libvirt objects did not runs no virsh
// process at all (kvmctl_virsh_commands_total does not move); changes made by hand that
// libvirt reports are still seen and repaired (a definition replaced with `virsh define`, a
// domain destroyed); one it does not report (`virsh setmaxmem --config`) is left to the
// resync or to `kvmctl reconcile`, which reads libvirt afresh and repairs it.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ResultPromise } from "execa";
import { assertInTestEnv, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, sleep, testGuestVm, virsh } from "./harness.js";

const halted = Array.from({ length: 5 }, (_, i) => testName(`inf-${i}`));
const running = testName("inf-run");
const run = E2eDirs.create("e2e-informer");
let controller: ResultPromise | undefined;

/** A VM manifest on the test guest; `label` marks a manifest change that changes nothing in libvirt. */
const manifest = (name: string, strategy: "Halted" | "Always", label?: number) => {
  const text = testGuestVm(name, `  runStrategy: ${strategy}\n`);
  return label === undefined ? text : text.replace(`metadata: {name: ${name}}`, `metadata:\n  name: ${name}\n  labels: {pass: "${label}"}`);
};
const write = (name: string, strategy: "Halted" | "Always", label?: number) => fs.writeFileSync(path.join(run.dir, `${name}.yaml`), manifest(name, strategy, label));
const ready = async (name: string) => {
  const waited = await kvmctl(["--dir", run.dir, "wait", `vm/${name}`, "--for=condition=Ready", "--timeout=120s"]);
  assert.equal(waited.exitCode, 0, waited.stderr);
};
const maxMemoryKiB = async (name: string) => Number(/<memory unit='KiB'>(\d+)<\/memory>/.exec(String((await virsh("dumpxml", "--inactive", name)).stdout))?.[1] ?? 0);
const domstate = async (name: string) => String((await virsh("domstate", name)).stdout).trim();

let metricsUrl = "";
/** Every virsh process the controller ran (its kvmctl_virsh_commands_total, all commands). */
async function virshProcesses(): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  return text.split("\n").filter((l) => l.startsWith("kvmctl_virsh_commands_total{")).reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

/** Pictures of libvirt the controller read, by scope (kvmctl_libvirt_readings_total: whole, or the changed domains alone). */
async function readings(scope: "whole" | "changed"): Promise<number> {
  const text = await (await fetch(`${metricsUrl}/metrics`)).text();
  return Number(new RegExp(`^kvmctl_libvirt_readings_total\\{scope="${scope}"\\} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
}

/**
 * Changes every Halted VM's manifest (a label) and waits until each was reconciled for it (their
 * log lines). First the controller's last picture of libvirt is let age past the 2 s a shared
 * picture may lag a request: then only the informer can answer without reading.
 */
async function labelPass(label: number) {
  await sleep(2_500);
  for (const name of halted) write(name, "Halted", label);
  const changedAt = Date.now();
  const lines = [];
  for (const name of halted) lines.push(...(await run.waitForReconciles(`VirtualMachine/${name}`, { after: changedAt, changed: "manifests" })));
  return lines;
}

before(async () => {
  await assertInTestEnv();
  for (const name of halted) write(name, "Halted");
  const startedAt = Date.now();
  controller = run.startController(["--metrics-address", "127.0.0.1:0"]);
  const serving = await run.waitForLog("the metrics server", (l) => typeof l.msg === "string" && l.msg.startsWith("serving ") && l.time >= startedAt);
  metricsUrl = String((serving as { url?: unknown }).url);
});

after(async () => {
  if (controller && controller.exitCode === null) {
    controller.kill("SIGTERM");
    await controller;
  }
  for (const name of [...halted, running]) {
    await virsh("destroy", name);
    await virsh("undefine", name, "--nvram");
  }
  run.cleanUp();
});

test("the informer: no virsh for a pass when libvirt did not change; what libvirt reports is still repaired", async (t) => {
  await t.test("the three event streams listen; every VM Ready", async () => {
    for (const stream of ["domain", "pool", "network"]) {
      await run.waitForLog(`the ${stream} event stream listening`, (l) => l.msg === "libvirt event stream listening" && l.stream === stream);
    }
    for (const name of halted) await ready(name);
  });

  await t.test("a second pass over the objects with nothing changed in libvirt runs no virsh process", async () => {
    // The first pass after the defines reads libvirt once (they came after its last picture).
    await labelPass(1);
    const before = await virshProcesses();
    assert.ok(before > 0, "the metric counts virsh processes");
    const lines = await labelPass(2);
    assert.deepEqual(lines.map((l) => l.outcome), halted.map(() => "ready"));
    assert.equal(await virshProcesses(), before, "no virsh process for the pass");
  });

  await t.test("a definition replaced by hand (a Defined event) is seen and repaired, reading that domain alone", async () => {
    const [name] = halted as [string];
    const file = path.join(run.root, "by-hand.xml");
    fs.writeFileSync(file, String((await virsh("dumpxml", "--inactive", name)).stdout).replace(/<memory unit='KiB'>\d+<\/memory>/, "<memory unit='KiB'>393216</memory>").replace(/<currentMemory unit='KiB'>\d+<\/currentMemory>/, "<currentMemory unit='KiB'>393216</currentMemory>"));
    const before = await virshProcesses();
    const [wholeBefore, changedBefore] = [await readings("whole"), await readings("changed")];
    const definedAt = Date.now();
    assert.equal((await virsh("define", file)).exitCode, 0);
    const heard = await run.waitForLibvirtEvent("domain", name, /^lifecycle: Defined/, definedAt);
    await run.waitForReconciles(`VirtualMachine/${name}`, { after: heard });
    assert.equal(await maxMemoryKiB(name), 256 * 1024, "put back as the manifest says");
    assert.ok((await virshProcesses()) > before, "libvirt read again and redefined");
    // The VM was Ready and the event names its domain: the picture is mended, not read whole.
    assert.ok((await readings("changed")) > changedBefore, "the changed domain read alone");
    assert.equal(await readings("whole"), wholeBefore, "no whole reading of libvirt for it");
  });

  await t.test("an edit libvirt sends no event for (setmaxmem --config): not seen by a pass; kvmctl reconcile reads afresh and repairs it", async () => {
    const name = halted[1]!;
    await labelPass(3); // after the repair above: its picture is read again
    assert.equal((await virsh("setmaxmem", name, "300M", "--config")).exitCode, 0);
    assert.equal(await maxMemoryKiB(name), 300 * 1024);
    const before = await virshProcesses();
    await labelPass(4);
    assert.equal(await virshProcesses(), before, "answered from the kept picture");
    assert.equal(await maxMemoryKiB(name), 300 * 1024, "which cannot know of the edit");

    const askedAt = Date.now();
    const asked = await kvmctl(["--dir", run.dir, "reconcile", `vm/${name}`]);
    assert.equal(asked.exitCode, 0, asked.stderr);
    const taken = await run.waitForLog("the request taken", (l) => l.msg === "reconcile requested" && l.object === `VirtualMachine/${name}` && l.time >= askedAt);
    await run.waitForReconciles(`VirtualMachine/${name}`, { after: taken.time });
    assert.equal(await maxMemoryKiB(name), 256 * 1024, "repaired");
  });

  await t.test("a running VM destroyed by hand is started again", async () => {
    write(running, "Always");
    await ready(running);
    assert.equal(await domstate(running), "running");
    const destroyedAt = Date.now();
    assert.equal((await virsh("destroy", running)).exitCode, 0);
    await run.waitForLibvirtEvent("domain", running, /^lifecycle: Stopped/, destroyedAt);
    await run.waitUntil("the domain to run again", async () => (await domstate(running)) === "running", 60_000);
    const restarted = run.logLines().find((l) => l.object === `VirtualMachine/${running}` && l.step === "start" && l.time >= destroyedAt);
    assert.ok(restarted, "the controller started it");
  });
});

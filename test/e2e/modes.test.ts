// Suspend, resume, reconcile-now and report-only drift on the real stack (issue 16): a VM
// whose domain is changed by hand (virsh define of its XML with more memory) under the annotation
// kvmctl.dev/drift: report is reported as Drifted and left as it is; suspended with `kvmctl
// suspend`, nothing is done for it even once the annotation is gone (the controller's own log
// line says it looked); `kvmctl resume` lets it be repaired; `kvmctl reconcile` is taken at once.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ResultPromise } from "execa";
import { ManifestStore } from "../../src/store/index.js";
import { assertInTestEnv, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, testGuestVm, virsh } from "./harness.js";

const run = E2eDirs.create("modes");
const name = testName("modes");
const file = path.join(run.dir, `${name}.yaml`);
let controller: ResultPromise | undefined;

const manifest = (annotation: string) => testGuestVm(name, "  runStrategy: Halted\n").replace(`metadata: {name: ${name}}`, annotation ? `metadata:\n  name: ${name}\n  annotations: {${annotation}}` : `metadata: {name: ${name}}`);
const maxMemoryKiB = async () => Number(/<memory unit='KiB'>(\d+)<\/memory>/.exec(String((await virsh("dumpxml", "--inactive", name)).stdout))?.[1] ?? 0);
const conditions = async () => {
  const stored = (await new ManifestStore({ dir: run.dir }).read()).objects.get(`VirtualMachine/${name}`);
  return ((stored?.object as { status?: { conditions?: { type: string; status: string; message?: string }[] } } | undefined)?.status?.conditions ?? []);
};

/** Redefines the domain by hand with `kib` of memory (libvirt reports it: a Defined event). */
async function defineByHand(kib: number): Promise<void> {
  const xml = String((await virsh("dumpxml", "--inactive", name)).stdout).replace(/<memory unit='KiB'>\d+<\/memory>/, `<memory unit='KiB'>${kib}</memory>`).replace(/<currentMemory unit='KiB'>\d+<\/currentMemory>/, `<currentMemory unit='KiB'>${kib}</currentMemory>`);
  const file = path.join(run.root, "by-hand.xml");
  fs.writeFileSync(file, xml);
  const defined = await virsh("define", file);
  assert.equal(defined.exitCode, 0, String(defined.stderr));
}

before(async () => {
  assertInTestEnv();
  fs.writeFileSync(file, manifest(""));
  controller = run.startController(["--rescan", "1s"]);
});

after(async () => {
  if (controller && controller.exitCode === null) {
    controller.kill("SIGTERM");
    await controller;
  }
  await virsh("undefine", name, "--nvram");
  run.cleanUp();
});

test("report-only drift, suspend, resume and reconcile-now", async () => {
  const waited = await kvmctl(["--dir", run.dir, "wait", `vm/${name}`, "--for=condition=Ready", "--timeout=120s"]);
  assert.equal(waited.exitCode, 0, waited.stderr);
  assert.equal(await maxMemoryKiB(), 256 * 1024);

  // drift: report from git, then a change by hand: reported, not repaired.
  fs.writeFileSync(file, manifest('"kvmctl.dev/drift": report'));
  const annotatedAt = Date.now();
  await run.waitForReconciles(`VirtualMachine/${name}`, { after: annotatedAt, changed: "manifests" });
  await defineByHand(512 * 1024);
  await run.waitUntil("Drifted in status", async () => (await conditions()).some((c) => c.type === "Drifted" && c.status === "True"), 60_000);
  assert.match((await conditions()).find((c) => c.type === "Drifted")!.message ?? "", /memory/);
  assert.equal(await maxMemoryKiB(), 512 * 1024, "left as it was");
  const described = await kvmctl(["--dir", run.dir, "describe", "vm", name]);
  assert.match(described.stdout, /Drifted\s+True\s+DriftDetected/);
  assert.match(described.stdout, /Warning\s+Drifted/);

  // Suspended on this host, and the annotation removed: still nothing done.
  const suspended = await kvmctl(["--dir", run.dir, "suspend", `vm/${name}`]);
  assert.equal(suspended.exitCode, 0, suspended.stderr);
  assert.match(suspended.stdout, /suspended/);
  const editedAt = Date.now();
  fs.writeFileSync(file, manifest(""));
  await run.waitForLog("the controller leaving the suspended VM alone", (l) => l.msg === "suspended: left alone" && l.object === `VirtualMachine/${name}` && l.time >= editedAt);
  assert.equal(await maxMemoryKiB(), 512 * 1024, "nothing done while suspended");
  const wide = await kvmctl(["--dir", run.dir, "get", "vm", name, "-o", "wide"]);
  assert.match(wide.stdout, /\(suspended by kvmctl suspend\)/);

  // Resumed: repaired at once.
  const resumed = await kvmctl(["--dir", run.dir, "resume", `vm/${name}`]);
  assert.equal(resumed.exitCode, 0, resumed.stderr);
  await run.waitUntil("repaired after resume", async () => (await maxMemoryKiB()) === 256 * 1024, 60_000);
  await run.waitUntil("Drifted cleared", async () => !(await conditions()).some((c) => c.type === "Drifted"), 60_000);

  // Reconcile now: taken by the controller.
  const askedAt = Date.now();
  const asked = await kvmctl(["--dir", run.dir, "reconcile", `vm/${name}`]);
  assert.equal(asked.exitCode, 0, asked.stderr);
  assert.match(asked.stdout, /reconcile requested: VirtualMachine\//);
  await run.waitForLog("the requested reconcile", (l) => l.msg === "reconcile requested" && l.object === `VirtualMachine/${name}` && l.time >= askedAt);
});

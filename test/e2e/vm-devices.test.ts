// VirtualMachine devices and run strategies on the real stack: UEFI with secure boot and a
// TPM (OVMF, swtpm), a VNC console behind a password read from a file, an interface on a
// host bridge; runStrategy Once (not restarted after it stops) and Manual (left as the
// operator leaves it), autostart; deletion removes the NVRAM file.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { execa, type ResultPromise } from "execa";
import { assertInTestEnv, testGuest, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, virsh } from "./harness.js";
import { vncSecurityTypes } from "./rfb.js";

const secure = testName("uefi");
const manual = testName("manual");
// Interface names are at most 15 characters.
const bridge = `kt-br${process.pid.toString(36)}`.slice(0, 15);
const PASSWORD = "s3cr3t-v"; // VNC passwords are at most 8 characters
let root = "";
let dir = "";
let run: E2eDirs; // set in before(); after() runs even when before() failed
let controller: ResultPromise | undefined;

const domstate = async (name: string) => String((await virsh("domstate", name)).stdout).trim();
/** The power steps (start, shutdown, destroy) the controller logged for VM `name` since `after`. */
const powerSteps = (name: string, after: number) =>
  run.logLines().filter((l) => l.object === `VirtualMachine/${name}` && l.time >= after && ["start", "shutdown", "destroy"].includes(String(l.step))).map((l) => `${l.step}: ${l.msg}`);

function manifests(): string {
  const guest = testGuest();
  const boot = `{kernel: ${guest.kernel}, initrd: ${guest.initrd}, cmdline: "console=ttyS0 quiet"}`;
  return `apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: ${secure}
spec:
  runStrategy: Once
  memory: 256Mi
  firmware: uefi-secure
  tpm: true
  terminationGracePeriodSeconds: 5
  boot: ${boot}
  consoles:
    vnc: {listen: 127.0.0.1, passwordSecretFile: ${path.join(root, "vnc-password")}}
  interfaces:
    - bridge: ${bridge}
---
apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: ${manual}
spec:
  runStrategy: Manual
  autostart: true
  memory: 256Mi
  firmware: uefi
  terminationGracePeriodSeconds: 5
  boot: ${boot}
`;
}

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-devices");
  ({ root, dir } = run);
  fs.writeFileSync(path.join(root, "vnc-password"), `${PASSWORD}\n`, { mode: 0o600 });
  await execa("ip", ["link", "add", "name", bridge, "type", "bridge"]);
  await execa("ip", ["link", "set", bridge, "up"]);
});

after(async () => {
  if (controller && controller.exitCode === null) controller.kill("SIGKILL");
  for (const name of [secure, manual]) {
    await virsh("destroy", name);
    await virsh("undefine", name, "--nvram");
  }
  await execa("ip", ["link", "del", bridge], { reject: false });
  run?.cleanUp();
});

test("UEFI secure boot with a TPM, VNC with a password, a bridge; runStrategy Once and Manual", async (t) => {
  fs.writeFileSync(path.join(root, "vms.yaml"), manifests());
  const applied = await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "vms.yaml")]);
  assert.equal(applied.exitCode, 0, applied.stderr);
  controller = run.startController();

  await t.test("uefi-secure + TPM: OVMF with secure boot, an NVRAM file, swtpm; the domain runs", async () => {
    const ready = await kvmctl(["--dir", dir, "wait", `vm/${secure}`, "--for=condition=Ready", "--timeout=120s"]);
    assert.equal(ready.exitCode, 0, ready.stderr);
    assert.equal(await domstate(secure), "running");
    const live = String((await virsh("dumpxml", secure)).stdout);
    assert.match(live, /<loader [^>]*secure='yes'[^>]*type='pflash'[^>]*>[^<]*OVMF[^<]*<\/loader>|<loader [^>]*type='pflash'[^>]*secure='yes'[^>]*>[^<]*OVMF[^<]*<\/loader>/, "libvirt picked a secure-boot OVMF build");
    assert.match(live, /<smm state='on'\/>/);
    assert.match(live, /<tpm model='tpm-crb'>\s*<backend type='emulator' version='2.0'/);
    const nvram = /<nvram[^>]*>([^<]+)<\/nvram>/.exec(live)?.[1];
    assert.ok(nvram && fs.existsSync(nvram), `NVRAM file ${nvram}`);
    const uuid = /<uuid>([^<]+)<\/uuid>/.exec(live)![1]!;
    assert.ok(fs.existsSync(`/var/lib/libvirt/swtpm/${uuid}`), "swtpm keeps the TPM state");
  });

  await t.test("VNC listens on 127.0.0.1 and asks for the password from the file", async () => {
    const display = String((await virsh("vncdisplay", secure)).stdout).trim();
    const match = /^127\.0\.0\.1:(\d+)$/.exec(display);
    assert.ok(match, `vncdisplay: ${display}`);
    const types = await vncSecurityTypes(5900 + Number(match[1]));
    assert.ok(types.includes(2), `VNC authentication offered: ${types.join(",")}`);
    assert.ok(!types.includes(1), "no unauthenticated access");
    const withSecrets = String((await virsh("dumpxml", "--security-info", secure)).stdout);
    assert.match(withSecrets, new RegExp(`passwd='${PASSWORD}'`), "the password came from the file, newline trimmed");
    for (const file of fs.readdirSync(dir, { recursive: true, encoding: "utf8" })) {
      const full = path.join(dir, file);
      if (fs.statSync(full).isFile()) assert.doesNotMatch(fs.readFileSync(full, "utf8"), new RegExp(PASSWORD), `the password reached ${file}`);
    }
    assert.doesNotMatch(fs.readFileSync(run.logFile, "utf8"), new RegExp(PASSWORD), "the password reached the log");
  });

  await t.test("the bridge interface: the domain's tap is a port of the host bridge", async () => {
    const iflist = String((await virsh("domiflist", secure)).stdout);
    const row = iflist.split("\n").find((l) => l.includes(bridge));
    assert.ok(row, iflist);
    const tap = row.trim().split(/\s+/)[0]!;
    const ports = JSON.parse(String((await execa("ip", ["-j", "link", "show", "master", bridge])).stdout)) as { ifname: string }[];
    assert.deepEqual(ports.map((p) => p.ifname), [tap]);
  });

  await t.test("runStrategy Once: stopped by hand, it is not started again", async () => {
    const before = Date.now();
    assert.equal((await virsh("destroy", secure)).exitCode, 0);
    // Not started again by a reconcile that saw it stopped.
    const stopped = await run.waitForLibvirtEvent("domain", secure, /^lifecycle: Stopped/, before);
    await run.waitForReconciles(`VirtualMachine/${secure}`, { after: stopped });
    assert.equal(await domstate(secure), "shut off");
    assert.deepEqual(powerSteps(secure, before), []);
    await run.waitUntil("phase Stopped", async () => (await run.getJson(`vm/${secure}`)).status.phase === "Stopped", 20_000);
  });

  await t.test("runStrategy Manual: defined, not started; started or stopped by hand, left so", async () => {
    const ready = await kvmctl(["--dir", dir, "wait", `vm/${manual}`, "--for=condition=Ready", "--timeout=60s"]);
    assert.equal(ready.exitCode, 0, ready.stderr);
    assert.equal(await domstate(manual), "shut off");
    assert.match(String((await virsh("dominfo", manual)).stdout), /^Autostart:\s+enable$/m, "autostart: true reaches libvirt");
    assert.match(String((await virsh("dominfo", secure)).stdout), /^Autostart:\s+disable$/m);
    assert.match(JSON.stringify((await run.getJson(`vm/${manual}`)).status.conditions), /runStrategy Manual/);
    const beforeStart = Date.now();
    assert.equal((await virsh("start", manual)).exitCode, 0);
    const started = await run.waitForLibvirtEvent("domain", manual, /^lifecycle: Started/, beforeStart);
    await run.waitForReconciles(`VirtualMachine/${manual}`, { after: started });
    assert.equal(await domstate(manual), "running", "the controller stopped a Manual VM started by hand");
    assert.deepEqual(powerSteps(manual, beforeStart), [], "a shutdown takes a while: the decision is in the log");
    await run.waitUntil("phase Running", async () => (await run.getJson(`vm/${manual}`)).status.phase === "Running", 20_000);
    const beforeDestroy = Date.now();
    assert.equal((await virsh("destroy", manual)).exitCode, 0);
    const stopped = await run.waitForLibvirtEvent("domain", manual, /^lifecycle: Stopped/, beforeDestroy);
    await run.waitForReconciles(`VirtualMachine/${manual}`, { after: stopped });
    assert.equal(await domstate(manual), "shut off", "the controller started a Manual VM stopped by hand");
    assert.deepEqual(powerSteps(manual, beforeDestroy), []);
  });

  await t.test("deleting the manifests undefines both domains and removes their NVRAM files", async () => {
    const nvrams = await Promise.all([secure, manual].map(async (name) => /<nvram[^>]*>([^<]+)<\/nvram>/.exec(String((await virsh("dumpxml", "--inactive", name)).stdout))?.[1]));
    assert.ok(nvrams.every((f) => f && fs.existsSync(f)), `NVRAM files: ${nvrams.join(", ")}`);
    const deleted = await kvmctl(["--dir", dir, "delete", "-f", path.join(root, "vms.yaml"), "--wait", "--timeout=60s"]);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    for (const name of [secure, manual]) assert.notEqual((await virsh("domstate", name)).exitCode, 0, `${name} still defined`);
    for (const file of nvrams) assert.equal(fs.existsSync(file!), false, `${file} left behind`);
    controller!.kill("SIGTERM");
    assert.equal((await controller!).exitCode, 0);
  });
});

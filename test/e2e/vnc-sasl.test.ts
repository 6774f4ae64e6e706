// VNC with SASL on the real stack (issue 15, seed 003). SASL is host-wide (qemu.conf), so this
// file turns it on for the host itself (testenv/vnc-sasl.ts: SCRAM-SHA-256 from a sasldb, over
// TLS) and puts the host's qemu.conf back after. First, on the host as it is (no SASL), a VM with
// `auth: sasl` is refused with a condition and never defined; so it is while qemu.conf has SASL
// but libvirtd still runs with the file it read before; then, with libvirtd restarted, the same controller converges it, and its console offers VeNCrypt with X509SASL
// only (no None, no VNC password), SCRAM-SHA-256 only inside TLS, lets the sasldb user in and
// turns a wrong password away. A VM with a VNC password on the same host gets password auth:
// QEMU offers one auth type and a password wins over SASL.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ResultPromise } from "execa";
import { HostQemuConfig } from "../../src/adapters/qemu-config.js";
import { assertInTestEnv, testName } from "../../testenv/env.js";
import { restartLibvirtd } from "../../testenv/daemons.js";
import { enableHostVncSasl, restoreHostQemuConf, type VncSaslLogin } from "../../testenv/vnc-sasl.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, testGuestVm, virsh } from "./harness.js";
import { RFB_NONE, RFB_VENCRYPT, RFB_VNC_AUTH, rfbConnect, scramSha256Login, startX509Sasl, veNCryptSubtypes, VENCRYPT_X509_SASL } from "./rfb.js";

const saslVm = testName("vnc-sasl");
const passwordVm = testName("vnc-pw");
/** VeNCrypt's X509VNC: TLS, then the VNC password challenge. */
const VENCRYPT_X509_VNC = 261;
let run: E2eDirs;
let controller: ResultPromise | undefined;
let login: VncSaslLogin | undefined;

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-vnc-sasl");
});

after(async () => {
  if (controller && controller.exitCode === null) controller.kill("SIGKILL");
  for (const name of [saslVm, passwordVm]) {
    await virsh("destroy", name);
    await virsh("undefine", name, "--nvram");
  }
  await restoreHostQemuConf();
  run?.cleanUp();
});

async function vncPort(name: string): Promise<number> {
  const display = String((await virsh("vncdisplay", name)).stdout).trim();
  const match = /^127\.0\.0\.1:(\d+)$/.exec(display);
  assert.ok(match, `vncdisplay ${name}: ${display}`);
  return 5900 + Number(match[1]);
}

test("VNC SASL: refused on a host without it, then SASL only, SCRAM-SHA-256 inside TLS, on a host with it", async (t) => {
  fs.writeFileSync(path.join(run.root, "vnc-password"), "pw-8char\n", { mode: 0o600 });
  const manifests = [
    testGuestVm(saslVm, "  consoles:\n    vnc: {auth: sasl}\n"),
    testGuestVm(passwordVm, `  consoles:\n    vnc: {passwordSecretFile: ${path.join(run.root, "vnc-password")}}\n`),
  ].join("---\n");
  fs.writeFileSync(path.join(run.root, "vms.yaml"), manifests);
  const applied = await kvmctl(["--dir", run.dir, "apply", "-f", path.join(run.root, "vms.yaml")]);
  assert.equal(applied.exitCode, 0, applied.stderr);
  controller = run.startController();

  await t.test("the host has no VNC SASL: the VM reports VncSaslUnavailable and is never defined", async () => {
    await run.waitUntil("the VncSaslUnavailable condition", async () => (await run.getJson(`vm/${saslVm}`)).status?.conditions?.some((c: { type: string; reason: string }) => c.type === "Ready" && c.reason === "VncSaslUnavailable"), 60_000);
    const ready = (await run.getJson(`vm/${saslVm}`)).status.conditions.find((c: { type: string }) => c.type === "Ready");
    assert.match(ready.message, /auth is sasl, but this host does not give VNC SASL: qemu\.conf does not set vnc_sasl = 1/);
    assert.notEqual((await virsh("domstate", saslVm)).exitCode, 0, "no domain defined");
    const events = await kvmctl(["--dir", run.dir, "events", `vm/${saslVm}`]);
    assert.match(events.stdout, /Warning\s+VncSaslUnavailable/, events.stdout);
    // The other VM is not held up by it.
    const other = await kvmctl(["--dir", run.dir, "wait", `vm/${passwordVm}`, "--for=condition=Ready", "--timeout=120s"]);
    assert.equal(other.exitCode, 0, other.stderr);
  });

  await t.test("SASL in qemu.conf, libvirtd not restarted: still refused, the condition says to restart libvirtd", async () => {
    login = await enableHostVncSasl({ restart: false });
    const asked = await kvmctl(["--dir", run.dir, "reconcile", `vm/${saslVm}`]);
    assert.equal(asked.exitCode, 0, asked.stderr);
    await run.waitUntil("the restart-libvirtd message", async () => /changed after libvirtd \(pid \d+\) started, so it does not run with it yet: restart libvirtd/.test((await run.getJson(`vm/${saslVm}`)).status?.conditions?.find((c: { type: string }) => c.type === "Ready")?.message ?? ""), 60_000);
    assert.notEqual((await virsh("domstate", saslVm)).exitCode, 0, "still no domain defined");
  });

  await t.test("SASL on the host (libvirtd restarted): the VM converges; its console offers X509SASL only, SCRAM-SHA-256 only", async () => {
    await restartLibvirtd();
    const { user, password, caCertificate } = login!;
    const ready = await kvmctl(["--dir", run.dir, "wait", `vm/${saslVm}`, "--for=condition=Ready", "--timeout=120s"]);
    assert.equal(ready.exitCode, 0, `${ready.stderr}\n${run.logTail()}`);
    assert.equal(String((await virsh("domstate", saslVm)).stdout).trim(), "running");
    const session = await rfbConnect(await vncPort(saslVm));
    try {
      assert.deepEqual(session.types, [RFB_VENCRYPT], `offered: ${session.types.join(",")}`);
      assert.ok(!session.types.includes(RFB_NONE) && !session.types.includes(RFB_VNC_AUTH));
      assert.deepEqual(await veNCryptSubtypes(session), [VENCRYPT_X509_SASL]);
      assert.deepEqual(await startX509Sasl(session, caCertificate), ["SCRAM-SHA-256"]);
      assert.equal(await scramSha256Login(session, user, password), true, "the sasldb user logs in");
      assert.equal(await new HostQemuConfig().runningVncAuth(saslVm), "sasl", "read from the running QEMU as the controller reads it");
    } finally {
      session.close();
    }
  });

  await t.test("a wrong password is turned away", async () => {
    const session = await rfbConnect(await vncPort(saslVm));
    try {
      assert.deepEqual(await veNCryptSubtypes(session), [VENCRYPT_X509_SASL]);
      await startX509Sasl(session, login!.caCertificate);
      assert.equal(await scramSha256Login(session, login!.user, `${login!.password}-wrong`), false);
    } finally {
      session.close();
    }
  });

  await t.test("a VM with a VNC password, started on the SASL host: password auth (a password wins over SASL)", async () => {
    // Started before SASL was on: restart it so its QEMU is one the SASL host started.
    const before = Date.now();
    assert.equal((await virsh("destroy", passwordVm)).exitCode, 0);
    const stopped = await run.waitForLibvirtEvent("domain", passwordVm, /^lifecycle: Stopped/, before);
    await run.waitForLibvirtEvent("domain", passwordVm, /^lifecycle: Started/, stopped);
    const session = await rfbConnect(await vncPort(passwordVm));
    try {
      assert.deepEqual(session.types, [RFB_VENCRYPT]);
      assert.deepEqual(await veNCryptSubtypes(session), [VENCRYPT_X509_VNC]);
      assert.equal(await new HostQemuConfig().runningVncAuth(passwordVm), "password");
    } finally {
      session.close();
    }
  });
});

// Proves the test environment itself, with no kvmctl code: a software-emulated domain
// boots the test guest by direct kernel boot, passt forwards a loopback port to its sshd,
// `uname -r` answers through it, and an ACPI shutdown powers it off.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { execa } from "execa";
import { XMLBuilder } from "fast-xml-parser";
import { assertInTestEnv, LIBVIRT_URI, testGuest, testName } from "../../testenv/env.js";
import { freePort, sshWhenReady } from "./ssh.js";

const name = testName("smoke");
const virsh = (...args: string[]) => execa("virsh", ["-q", "-c", LIBVIRT_URI, ...args], { reject: false, timeout: 60_000 });

function domainXml(port: number, consoleLog: string): string {
  const guest = testGuest();
  const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: "@_", format: true });
  return builder.build({
    domain: {
      "@_type": "qemu",
      name,
      memory: { "@_unit": "MiB", "#text": "256" },
      vcpu: "1",
      os: {
        type: { "@_arch": "x86_64", "@_machine": "q35", "#text": "hvm" },
        kernel: guest.kernel,
        initrd: guest.initrd,
        cmdline: "console=ttyS0 quiet",
      },
      features: { acpi: "" },
      on_poweroff: "destroy",
      devices: {
        interface: {
          "@_type": "user",
          backend: { "@_type": "passt" },
          model: { "@_type": "virtio" },
          portForward: { "@_proto": "tcp", "@_address": "127.0.0.1", range: { "@_start": String(port), "@_to": "22" } },
        },
        serial: { "@_type": "file", source: { "@_path": consoleLog } },
        console: { "@_type": "file", source: { "@_path": consoleLog }, target: { "@_type": "serial" } },
      },
    },
  });
}

let workdir = "";
before(async () => {
  await assertInTestEnv();
  workdir = fs.mkdtempSync(path.join(os.tmpdir(), "kvt-smoke-"));
});
after(async () => {
  await virsh("destroy", name);
  await virsh("undefine", name);
  if (workdir) fs.rmSync(workdir, { recursive: true, force: true });
});

test("the test guest boots under software emulation and answers SSH through a passt forward", async () => {
  const port = await freePort();
  const consoleLog = path.join(workdir, "console.log");
  const xmlFile = path.join(workdir, "domain.xml");
  fs.writeFileSync(xmlFile, domainXml(port, consoleLog));

  const defined = await virsh("define", xmlFile);
  assert.equal(defined.exitCode, 0, String(defined.stderr));
  const started = Date.now();
  const start = await virsh("start", name);
  assert.equal(start.exitCode, 0, String(start.stderr));

  const kernel = await sshWhenReady({ port, key: testGuest().sshKey }, ["uname", "-r"]);
  const seconds = (Date.now() - started) / 1000;
  process.stdout.write(`# boot-to-SSH: ${seconds.toFixed(1)} s\n`);
  // The guest runs the cloud kernel the environment took from /boot.
  assert.match(kernel.trim(), /-cloud-amd64$/);
  assert.ok(fs.existsSync(`/boot/vmlinuz-${kernel.trim()}`), `guest kernel ${kernel} is not from /boot`);
  assert.match(fs.readFileSync(consoleLog, "utf8"), /KVMCTL-GUEST-READY ip=\d+\.\d+\.\d+\.\d+\/\d+/);

  // ACPI shutdown: the guest's acpid powers it off and libvirt sees it shut off.
  const shutdown = await virsh("shutdown", name);
  assert.equal(shutdown.exitCode, 0, String(shutdown.stderr));
  const deadline = Date.now() + 60_000;
  let state = "";
  while (Date.now() < deadline) {
    state = String((await virsh("domstate", name)).stdout).trim();
    if (state === "shut off") break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.equal(state, "shut off");

  const undefine = await virsh("undefine", name);
  assert.equal(undefine.exitCode, 0, String(undefine.stderr));
});

test("testenv:exec passes SIGTERM on to its command: nothing is left running in the namespace", async () => {
  const pidFile = path.join(workdir, "child.pid");
  // The command records its PID, then waits; `trap` makes its end on SIGTERM visible as exit 143.
  const script = `echo $$ > ${pidFile}; trap 'exit 143' TERM; while :; do sleep 0.1; done`;
  const cli = execa(process.execPath, ["--import", "tsx", path.resolve("testenv/cli.ts"), "exec", "--", "bash", "-c", script], { reject: false });
  const deadline = Date.now() + 15_000;
  while (!fs.existsSync(pidFile) || !fs.readFileSync(pidFile, "utf8").trim()) {
    assert.ok(Date.now() < deadline, "the command did not start");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const childPid = Number(fs.readFileSync(pidFile, "utf8").trim());
  assert.ok(fs.existsSync(`/proc/${childPid}`), "the command runs");
  cli.kill("SIGTERM");
  const result = await cli;
  assert.equal(result.exitCode, 143, "testenv:exec exits as its command did (128 + SIGTERM)");
  assert.ok(!fs.existsSync(`/proc/${childPid}`) || fs.readFileSync(`/proc/${childPid}/stat`, "utf8").split(" ")[2] === "Z", "the command was left running");
});

// Proves the cloud-init test guest, with no kvmctl code: a software-emulated domain boots the
// cached Debian image (through a per-test qcow2 overlay) by direct kernel boot with a NoCloud
// seed ISO on a CD-ROM; cloud-init applies the seed's hostname, authorised key, host key and
// write_files; SSH as `debian` through a passt forward succeeds with StrictHostKeyChecking=yes
// against a known_hosts file holding only the host key the test generated; an ACPI shutdown
// powers it off.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { execa } from "execa";
import { XMLBuilder } from "fast-xml-parser";
import { stringify } from "yaml";
import { assertInTestEnv, LIBVIRT_URI, testCloudGuest, testName, type TestCloudGuest } from "../../testenv/env.js";
import { freePort } from "./ssh.js";

const name = testName("cloud");
const virsh = (...args: string[]) => execa("virsh", ["-q", "-c", LIBVIRT_URI, ...args], { reject: false, timeout: 60_000 });
const MARKER_FILE = "/var/lib/kvt-cloud-marker";

interface Files {
  overlay: string;
  seed: string;
  consoleLog: string;
}

function domainXml(guest: TestCloudGuest, port: number, files: Files): string {
  const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: "@_", format: true });
  return builder.build({
    domain: {
      "@_type": "qemu",
      name,
      memory: { "@_unit": "MiB", "#text": "512" },
      vcpu: "1",
      os: {
        type: { "@_arch": "x86_64", "@_machine": "q35", "#text": "hvm" },
        kernel: guest.kernel,
        initrd: guest.initrd,
        cmdline: guest.cmdline,
      },
      features: { acpi: "" },
      on_poweroff: "destroy",
      devices: {
        // The cloud kernel has no AHCI driver, so q35's SATA is out: the CD-ROM sits on virtio-scsi.
        controller: { "@_type": "scsi", "@_index": "0", "@_model": "virtio-scsi" },
        disk: [
          {
            "@_type": "file",
            "@_device": "disk",
            driver: { "@_name": "qemu", "@_type": "qcow2" },
            source: { "@_file": files.overlay },
            target: { "@_dev": "vda", "@_bus": "virtio" },
          },
          {
            "@_type": "file",
            "@_device": "cdrom",
            driver: { "@_name": "qemu", "@_type": "raw" },
            source: { "@_file": files.seed },
            target: { "@_dev": "sda", "@_bus": "scsi" },
            readonly: "",
          },
        ],
        interface: {
          "@_type": "user",
          backend: { "@_type": "passt" },
          model: { "@_type": "virtio" },
          portForward: { "@_proto": "tcp", "@_address": "127.0.0.1", range: { "@_start": String(port), "@_to": "22" } },
        },
        serial: { "@_type": "file", source: { "@_path": files.consoleLog } },
        console: { "@_type": "file", source: { "@_path": files.consoleLog }, target: { "@_type": "serial" } },
      },
    },
  });
}

async function keyPair(file: string, comment: string): Promise<{ privateKey: string; publicKey: string }> {
  await execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file]);
  return { privateKey: fs.readFileSync(file, "utf8"), publicKey: fs.readFileSync(`${file}.pub`, "utf8").trim() };
}

async function waitFor(what: string, timeoutMs: number, probe: () => boolean | Promise<boolean>, detail: () => string = () => ""): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs / 1000} s${detail() ? `: ${detail()}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

let workdir = "";
before(async () => {
  await assertInTestEnv();
  testCloudGuest(); // fails loudly here when the environment has no cloud guest
  workdir = fs.mkdtempSync(path.join(os.tmpdir(), "kvt-cloud-"));
  fs.chmodSync(workdir, 0o755); // QEMU (libvirt-qemu) reads the overlay and the seed
});
after(async () => {
  await virsh("destroy", name);
  await virsh("undefine", name);
  if (process.env.KEEP_E2E_DIR) process.stdout.write(`# kept ${workdir}\n`);
  else if (workdir) fs.rmSync(workdir, { recursive: true, force: true });
});

test("the cloud-init guest takes hostname, user key, pinned host key and write_files from a NoCloud seed", async () => {
  const guest = testCloudGuest();
  const port = await freePort();
  const keys = path.join(workdir, "keys");
  fs.mkdirSync(keys, { mode: 0o700 });
  const user = await keyPair(path.join(keys, "id_ed25519"), "kvt-cloud-user");
  const host = await keyPair(path.join(keys, "ssh_host_ed25519_key"), "kvt-cloud-host");
  const knownHosts = path.join(keys, "known_hosts");
  // Only the key the test made: sshd must present exactly it.
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${host.publicKey}\n`);
  const token = randomBytes(12).toString("hex");

  // The NoCloud seed: an ISO labelled cidata holding meta-data and user-data.
  const seedDir = path.join(workdir, "seed");
  fs.mkdirSync(seedDir);
  fs.writeFileSync(path.join(seedDir, "meta-data"), stringify({ "instance-id": `${name}-1`, "local-hostname": name }));
  const userData = {
    ssh_authorized_keys: [user.publicKey],
    ssh_deletekeys: true,
    ssh_genkeytypes: ["ed25519"],
    ssh_keys: { ed25519_private: host.privateKey, ed25519_public: host.publicKey },
    write_files: [{ path: MARKER_FILE, content: `${token}\n`, permissions: "0644" }],
  };
  fs.writeFileSync(path.join(seedDir, "user-data"), `#cloud-config\n${stringify(userData, { lineWidth: 0 })}`);
  const files: Files = {
    overlay: path.join(workdir, "root.qcow2"),
    seed: path.join(workdir, "seed.iso"),
    consoleLog: path.join(workdir, "console.log"),
  };
  await execa("genisoimage", [
    "-quiet", "-output", files.seed, "-volid", "cidata", "-joliet", "-rock",
    path.join(seedDir, "meta-data"), path.join(seedDir, "user-data"),
  ]);
  // The cached base stays read-only: the VM writes to its own overlay.
  await execa("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", guest.disk, files.overlay]);
  for (const file of [files.seed, files.overlay]) fs.chmodSync(file, 0o644);
  const xmlFile = path.join(workdir, "domain.xml");
  fs.writeFileSync(xmlFile, domainXml(guest, port, files));

  const defined = await virsh("define", xmlFile);
  assert.equal(defined.exitCode, 0, String(defined.stderr));
  const started = Date.now();
  const start = await virsh("start", name);
  assert.equal(start.exitCode, 0, String(start.stderr));

  const consoleText = () => (fs.existsSync(files.consoleLog) ? fs.readFileSync(files.consoleLog, "utf8") : "");
  await waitFor("the ready marker on the serial console", 240_000, () => consoleText().includes(guest.readyMarker), () => consoleText().slice(-3000));
  const toMarker = (Date.now() - started) / 1000;

  const ssh = (command: string[]) =>
    execa(
      "ssh",
      [
        "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=yes",
        "-o", `UserKnownHostsFile=${knownHosts}`,
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "ConnectTimeout=5",
        "-o", "LogLevel=ERROR",
        "-i", path.join(keys, "id_ed25519"),
        "-p", String(port),
        `${guest.user}@127.0.0.1`,
        "--",
        ...command,
      ],
      { reject: false, timeout: 30_000 },
    );
  // sshd is up when the marker prints; a few tries cover passt's forward settling. A wrong host
  // key fails every try ("Host key verification failed") and so the test.
  let answer = await ssh(["hostname"]);
  for (let i = 0; answer.exitCode !== 0 && i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    answer = await ssh(["hostname"]);
  }
  assert.equal(answer.exitCode, 0, `ssh failed: ${String(answer.stderr)}`);
  const toSsh = (Date.now() - started) / 1000;
  process.stdout.write(`# cloud guest: ready marker ${toMarker.toFixed(1)} s, boot-to-SSH ${toSsh.toFixed(1)} s\n`);
  assert.equal(String(answer.stdout).trim(), name);

  const marker = await ssh(["cat", MARKER_FILE]);
  assert.equal(marker.exitCode, 0, String(marker.stderr));
  assert.equal(String(marker.stdout).trim(), token);
  // ssh_genkeytypes [ed25519] with ssh_keys: the seed's key pair is the only host key.
  const hostKeys = await ssh(["ls", "/etc/ssh"]);
  assert.equal(hostKeys.exitCode, 0, String(hostKeys.stderr));
  assert.deepEqual(
    String(hostKeys.stdout).split("\n").filter((f) => f.startsWith("ssh_host_")).sort(),
    ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"],
  );
  // cloud-init writes the public half 0600 too; the default user has passwordless sudo.
  const publicKey = await ssh(["sudo", "-n", "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]);
  assert.equal(publicKey.exitCode, 0, String(publicKey.stderr));
  assert.equal(String(publicKey.stdout).trim().split(" ").slice(0, 2).join(" "), host.publicKey.split(" ").slice(0, 2).join(" "));

  // ACPI shutdown: systemd-logind powers it off and libvirt sees it shut off.
  const shutdown = await virsh("shutdown", name);
  assert.equal(shutdown.exitCode, 0, String(shutdown.stderr));
  let state = "";
  await waitFor("shut off after an ACPI shutdown", 180_000, async () => {
    state = String((await virsh("domstate", name)).stdout).trim();
    return state === "shut off";
  }, () => `state ${state}; console: ${consoleText().slice(-2000)}`);

  const undefine = await virsh("undefine", name);
  assert.equal(undefine.exitCode, 0, String(undefine.stderr));
});

// spec.cloudInit on the real stack, with the cloud-init test guest (a Debian image with the
// real cloud-init, built by the test environment: testenv/cloud-guest.ts, published in
// /run/kvmctl-testenv/cloud-guest/): the controller pins a host key, builds the NoCloud seed
// and attaches it as a CD-ROM; the guest takes hostname, authorized key and a write_files
// marker from it; `kvmctl ssh` logs in as spec.cloudInit.sshUser with StrictHostKeyChecking=yes
// against the pinned key only — on the first connection; deletion (Delete) removes seed and key.
// A missing cloud guest fails the test (testCloudGuest() throws), never skips it.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { execa, type ResultPromise } from "execa";
import { RUN_DIR } from "../../testenv/config.js";
import { assertInTestEnv, testCloudGuest, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, virsh } from "./harness.js";
import { freePort } from "./ssh.js";

const GUEST_DIR = path.join(RUN_DIR, "cloud-guest");

const pool = testName("cipool");
const vm = testName("civm");
const MARKER_FILE = "/var/lib/kvt-ci-marker";
let run: E2eDirs;
let controller: ResultPromise | undefined;
let port = 0;

before(async () => {
  await assertInTestEnv();
  testCloudGuest(); // throws when the test environment has no cloud guest
  run = E2eDirs.create("e2e-cloud-init");
  port = await freePort();
});

after(async () => {
  if (controller && controller.exitCode === null) controller.kill("SIGKILL");
  for (const name of [vm, `${vm}-b`]) {
    await virsh("destroy", name);
    await virsh("undefine", name);
  }
  await virsh("pool-destroy", pool);
  await virsh("pool-undefine", pool);
  run?.cleanUp();
});

test("a cloud-init VM boots with its seed: hostname, key, write_files; kvmctl ssh with the pinned host key on the first try", { timeout: 600_000 }, async () => {
  const { root, dir } = run;
  // The kernel and initrd copied for this test (libvirt relabels what a guest boots from); the base disk imported from the cache.
  for (const f of ["vmlinuz", "initrd.img"]) fs.copyFileSync(path.join(GUEST_DIR, f), path.join(root, f));
  const base = fs.realpathSync(path.join(GUEST_DIR, "disk.qcow2"));
  const keys = path.join(root, "keys");
  fs.mkdirSync(keys, { mode: 0o700 });
  await execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "kvt-ci-user", "-f", path.join(keys, "id_ed25519")]);
  const userKey = fs.readFileSync(path.join(keys, "id_ed25519.pub"), "utf8").trim();
  const token = randomBytes(12).toString("hex");
  const seeds = path.join(root, "seeds");
  fs.writeFileSync(
    path.join(root, "vm.yaml"),
    `apiVersion: kvmctl.dev/v1alpha1
kind: StoragePool
metadata: {name: ${pool}}
spec: {type: dir, path: ${path.join(root, "pool")}}
---
apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata: {name: ${vm}}
spec:
  cpus: 1
  memory: 512Mi
  terminationGracePeriodSeconds: 10
  deletionPolicy: Delete
  boot: {kernel: ${path.join(root, "vmlinuz")}, initrd: ${path.join(root, "initrd.img")}, cmdline: "root=/dev/vda rw console=ttyS0"}
  disks:
    - {name: root, pool: ${pool}, from: {image: ${base}}}
  interfaces:
    - user: {portForwards: [{hostPort: ${port}, guestPort: 22}]}
  cloudInit:
    sshUser: debian
    sshAuthorizedKeys: ["${userKey}"]
    userData: |
      #cloud-config
      write_files:
        - {path: ${MARKER_FILE}, content: "${token}\\n", permissions: "0644"}
`,
  );
  const applied = await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "vm.yaml")]);
  assert.equal(applied.exitCode, 0, applied.stderr);
  controller = run.startController(["--seed-dir", seeds, "--allow-host-path", `image=${path.dirname(base)}`, "--allow-host-path", `kernel=${root}`]);
  const ready = await kvmctl(["--dir", dir, "wait", `vm/${vm}`, "--for=condition=Ready", "--timeout=300s"]);
  assert.equal(ready.exitCode, 0, `${ready.stderr}\n${run.logTail(30)}`);

  // The seed: 0600 in 0711 directories; the pinned known_hosts file written before the boot.
  const seedDir = path.join(seeds, run.instance, vm);
  const seed = path.join(seedDir, "seed.img");
  assert.equal(fs.statSync(seed).mode & 0o777, 0o600);
  for (const d of [seeds, path.dirname(seedDir), seedDir]) assert.equal(fs.statSync(d).mode & 0o777, 0o711, d);
  const knownHosts = path.join(dir, ".kvmctl", "known_hosts", vm);
  assert.match(fs.readFileSync(knownHosts, "utf8"), new RegExp(`^kvmctl-${vm} ssh-ed25519 `));
  const xml = String((await virsh("dumpxml", "--inactive", vm)).stdout);
  assert.match(xml, /<disk type='file' device='cdrom'>/);
  assert.ok(xml.includes(`<source file='${seed}'`), xml);

  const status = JSON.parse((await kvmctl(["--dir", dir, "get", "vm", vm, "-o", "json"])).stdout).status;
  assert.equal(status.cloudInit.medium, "cdrom");
  assert.match(status.cloudInit.instanceId, /^iid-[0-9a-f-]{36}$/);
  assert.match(status.cloudInit.seedHash, /^[0-9a-f]{16}$/);

  // kvmctl ssh: the pinned key only (StrictHostKeyChecking=yes); until sshd answers the
  // connection is refused or reset, but a host key mismatch would fail at once.
  const env = { XDG_STATE_HOME: path.join(root, "xdg") };
  /** hostname, login and the marker, over kvmctl ssh with the pinned key, retried until sshd answers. */
  const inGuest = async (): Promise<Awaited<ReturnType<typeof kvmctl>>> => {
    const deadline = Date.now() + 240_000;
    for (;;) {
      const out = await kvmctl(["--dir", dir, "ssh", vm, "-i", path.join(keys, "id_ed25519"), "--", "sh", "-c", `'hostname; id -un; cat ${MARKER_FILE}'`], { env });
      if (out.exitCode === 0) return out;
      assert.doesNotMatch(out.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed|No ED25519 host key is known/, "the guest's host key is not the pinned one");
      if (Date.now() > deadline) assert.fail(`kvmctl ssh did not succeed: ${out.stderr}\n${run.logTail(20)}`);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
  };
  const out = await inGuest();
  assert.deepEqual(out.stdout.trim().split("\n"), [vm, "debian", token]);
  assert.doesNotMatch(out.stderr, /no pinned host key/);
  assert.ok(!fs.existsSync(path.join(root, "xdg", "kvmctl", "known_hosts")), "no trust-on-first-use file: the pin was used");

  // No private key anywhere kvmctl shows.
  const shown = [(await kvmctl(["--dir", dir, "get", "vm", vm, "-o", "yaml"])).stdout, (await kvmctl(["--dir", dir, "describe", "vm", vm])).stdout, fs.readFileSync(run.logFile, "utf8")].join("\n");
  assert.ok(!shown.includes("PRIVATE KEY"), "a private key in get/describe/log output");

  // New user-data, the same instance-id: the seed is rebuilt, the running guest is not
  // restarted (same domain id) and keeps what it was provisioned with (a new seed is read at a
  // cold boot, and then cloud-init does not run its per-instance modules again: unit-tested).
  const manifest = fs.readFileSync(path.join(root, "vm.yaml"), "utf8");
  const token2 = randomBytes(12).toString("hex");
  const idBefore = String((await virsh("domid", vm)).stdout).trim();
  fs.writeFileSync(path.join(root, "vm.yaml"), manifest.replace(`content: "${token}\\n"`, `content: "${token2}\\n"`));
  assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "vm.yaml")])).exitCode, 0);
  await run.waitUntil("the seed rebuilt for the new user-data", async () => JSON.parse((await kvmctl(["--dir", dir, "get", "vm", vm, "-o", "json"])).stdout).status.cloudInit.seedHash !== status.cloudInit.seedHash, 60_000, 500);
  assert.equal(String((await virsh("domid", vm)).stdout).trim(), idBefore, "not restarted");
  assert.deepEqual((await inGuest()).stdout.trim().split("\n"), [vm, "debian", token], "the guest keeps what it was provisioned with");

  // A second VM from the same image gets its own host key (pinned before it ever boots).
  const vm2 = `${vm}-b`;
  fs.writeFileSync(path.join(root, "vm2.yaml"), `apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata: {name: ${vm2}}\nspec:\n  runStrategy: Halted\n  memory: 512Mi\n  deletionPolicy: Delete\n  boot: {kernel: ${path.join(root, "vmlinuz")}, initrd: ${path.join(root, "initrd.img")}}\n  disks:\n    - {name: root, pool: ${pool}, from: {image: ${base}}}\n  cloudInit:\n    sshAuthorizedKeys: ["${userKey}"]\n`);
  assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "vm2.yaml")])).exitCode, 0);
  const knownHosts2 = path.join(dir, ".kvmctl", "known_hosts", vm2);
  await run.waitUntil("the second VM's pinned key", async () => fs.existsSync(knownHosts2), 60_000, 500);
  const keyOf = (file: string) => fs.readFileSync(file, "utf8").trim().split(" ").slice(1).join(" ");
  assert.notEqual(keyOf(knownHosts2), keyOf(knownHosts), "each VM has its own host key");
  assert.equal((await kvmctl(["--dir", dir, "delete", "vm", vm2, "--wait", "--timeout=120s"])).exitCode, 0);

  // Deleted with deletionPolicy Delete: domain, seed and pinned key go.
  const deleted = await kvmctl(["--dir", dir, "delete", "vm", vm, "--wait", "--timeout=120s"]);
  assert.equal(deleted.exitCode, 0, deleted.stderr);
  assert.equal(fs.existsSync(seedDir), false, "seed directory removed");
  assert.equal(fs.existsSync(knownHosts), false, "pinned known_hosts removed");
  assert.equal(fs.existsSync(path.join(dir, ".kvmctl", "host-keys", vm)), false, "host key removed");
});

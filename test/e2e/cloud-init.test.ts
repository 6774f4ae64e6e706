// spec.cloudInit on the real stack, with the cloud-init test guest (a Debian image with the
// real cloud-init, built by the test environment: testenv/cloud-guest.ts, published in
// /run/kvmctl-testenv/cloud-guest/): the controller pins a host key, builds the NoCloud seed
// and attaches it as a CD-ROM; the guest takes hostname, authorized key and a write_files
// marker from it; `kvmctl ssh` logs in as spec.cloudInit.sshUser with StrictHostKeyChecking=yes
// against the pinned key only — on the first connection; new user-data under the same
// instance-id is read at a cold boot but not applied; deletion (Delete) removes seed and key.
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
  runStrategy: Always
  cpus: 2 # under software emulation two vCPUs boot it in ~160 s of this test, not ~230 s (2026-12-02)
  memory: 512Mi
  terminationGracePeriodSeconds: 300
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
  /** `script` run in the guest over kvmctl ssh with the pinned key, retried until sshd answers; by default hostname, login and the marker. */
  const inGuest = async (script = `hostname; id -un; cat ${MARKER_FILE}`): Promise<Awaited<ReturnType<typeof kvmctl>>> => {
    const deadline = Date.now() + 240_000;
    for (;;) {
      const out = await kvmctl(["--dir", dir, "ssh", vm, "-i", path.join(keys, "id_ed25519"), "--", "sh", "-c", `'${script}'`], { env });
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
  // restarted (same domain id) and keeps what it was provisioned with.
  const manifest = fs.readFileSync(path.join(root, "vm.yaml"), "utf8");
  const token2 = randomBytes(12).toString("hex");
  const idBefore = String((await virsh("domid", vm)).stdout).trim();
  const changed = manifest.replace(`content: "${token}\\n"`, `content: "${token2}\\n"`);
  fs.writeFileSync(path.join(root, "vm.yaml"), changed);
  assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "vm.yaml")])).exitCode, 0);
  await run.waitUntil("the seed rebuilt for the new user-data", async () => JSON.parse((await kvmctl(["--dir", dir, "get", "vm", vm, "-o", "json"])).stdout).status.cloudInit.seedHash !== status.cloudInit.seedHash, 60_000, 500);
  assert.equal(String((await virsh("domid", vm)).stdout).trim(), idBefore, "not restarted");
  assert.deepEqual((await inGuest()).stdout.trim().split("\n"), [vm, "debian", token], "the guest keeps what it was provisioned with");

  // ... and a cold boot with the new seed does not re-provision it either (cloud-init's rule for
  // an unchanged instance-id). The first boot's cloud-init runs to its end, then kvmctl stops the
  // guest gracefully (runStrategy Halted: an ACPI shutdown; the grace period is long enough that
  // it is never forced off) and starts it again (Always). A hard power-off here would lose what
  // the guest had not yet written back, host keys included, and sshd would never start again.
  const done = await inGuest("sudo cloud-init status --wait");
  assert.match(done.stdout, /status: done/, "the first boot's cloud-init finished");
  const stopping = Date.now();
  fs.writeFileSync(path.join(root, "vm.yaml"), changed.replace("runStrategy: Always", "runStrategy: Halted"));
  assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "vm.yaml")])).exitCode, 0);
  const stopped = await run.waitForLog("the domain stopped", (l) => l.msg === "libvirt event" && l.time >= stopping && l.event?.kind === "domain" && l.event.name === vm && /^lifecycle: Stopped/.test(l.event.detail), 300_000);
  assert.equal(stopped.event?.detail, "lifecycle: Stopped Shutdown", "the guest shut down by itself (ACPI), it was not forced off");
  const starting = Date.now();
  fs.writeFileSync(path.join(root, "vm.yaml"), changed);
  assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "vm.yaml")])).exitCode, 0);
  const started = await run.waitForLibvirtEvent("domain", vm, /^lifecycle: Started/, starting, 120_000);
  assert.notEqual(String((await virsh("domid", vm)).stdout).trim(), idBefore, "a new QEMU process: a cold boot");
  // The marker and hostname of the first boot; cloud-init read the new user-data (its copy in
  // the instance directory has the new token) and skipped write_files as already run.
  const cold = await inGuest(
    `hostname; cat ${MARKER_FILE}; sudo grep -c ${token2} /var/lib/cloud/instance/user-data.txt || true; sudo grep -c "config-write-files already ran" /var/log/cloud-init.log || true`,
  );
  process.stdout.write(`# cloud-init guest: ACPI shutdown ${((stopped.time - stopping) / 1000).toFixed(1)} s, cold boot to SSH ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  const [hostname, marker, newUserData, skipped] = cold.stdout.trim().split("\n");
  assert.deepEqual([hostname, marker], [vm, token], "same instance-id: not re-provisioned");
  assert.ok(Number(newUserData) >= 1, `cloud-init read the new user-data: ${cold.stdout}`);
  assert.ok(Number(skipped) >= 1, `cloud-init skipped write_files as already run: ${cold.stdout}`);

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

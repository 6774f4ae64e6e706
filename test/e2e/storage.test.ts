// StoragePools and disks on the real stack: dir pools and a logical pool on the test volume
// group converge and are repaired after pool-destroy / pool-undefine by hand; a VM's disks
// are cloned from a volume, imported from image files (converted where the formats differ)
// and created empty, and its guest reads them; deletionPolicy Delete removes exactly the
// volumes kvmctl created; a pool that still holds volumes outlives its manifest as a kept
// (Retained) object with a condition, and goes once it is empty.
//
// No volume is created in the logical pool: this machine's kernel has no device-mapper, so
// lvcreate cannot activate an LV (`/dev/mapper/control: No such device`). The logical
// volume XML is covered by test/unit/libvirt/pool.test.ts.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { execa, type ResultPromise } from "execa";
import { assertInTestEnv, TEST_VG, testGuest, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, virsh } from "./harness.js";
import { freePort, sshWhenReady } from "./ssh.js";

const dirPool = testName("imgs");
const rawPool = testName("raw");
const lvPool = testName("lv");
const vm = testName("disks");
const MARKER = "KVMCTL-MARKER-01";
let root = "";
let dir = "";
let run: E2eDirs; // set in before(); after() runs even when before() failed
let port = 0;
let controller: ResultPromise | undefined;

const poolState = async (name: string) => /^State:\s+running$/m.test(String((await virsh("pool-info", name)).stdout));
const volumes = async (pool: string) =>
  String((await virsh("vol-list", pool)).stdout)
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n): n is string => !!n)
    .sort();

function pools(): string {
  return `apiVersion: kvmctl.dev/v1alpha1
kind: StoragePool
metadata:
  name: ${dirPool}
spec:
  type: dir
  path: ${path.join(root, "images")}
---
apiVersion: kvmctl.dev/v1alpha1
kind: StoragePool
metadata:
  name: ${rawPool}
spec:
  type: dir
  path: ${path.join(root, "raw")}
---
apiVersion: kvmctl.dev/v1alpha1
kind: StoragePool
metadata:
  name: ${lvPool}
spec:
  type: logical
  volumeGroup: ${TEST_VG}
`;
}

function vmManifest(): string {
  const guest = testGuest();
  return `apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: ${vm}
spec:
  memory: 256Mi
  terminationGracePeriodSeconds: 5
  deletionPolicy: Delete
  boot: {kernel: ${guest.kernel}, initrd: ${guest.initrd}, cmdline: "console=ttyS0 quiet"}
  disks:
    - {name: clone, pool: ${dirPool}, from: {volume: base.qcow2}, size: 16Mi}
    - {name: rawclone, pool: ${rawPool}, format: raw, from: {volume: base.qcow2, pool: ${dirPool}}}
    - {name: image, pool: ${dirPool}, from: {image: ${path.join(root, "base.qcow2")}}}
    - {name: rawimport, pool: ${rawPool}, format: raw, from: {image: ${path.join(root, "base.qcow2")}}}
    - {name: fromraw, pool: ${dirPool}, from: {image: ${path.join(root, "base.raw")}}}
    - {name: empty, pool: ${rawPool}, size: 8Mi}
  interfaces:
    - user:
        portForwards: [{hostPort: ${port}, guestPort: 22}]
`;
}

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-storage");
  ({ root, dir } = run);
  port = await freePort();
  // A 4 MiB raw image with a marker at its start, and the same disk as qcow2.
  const raw = Buffer.alloc(4 * 1024 * 1024);
  raw.write(MARKER, 0, "ascii");
  fs.writeFileSync(path.join(root, "base.raw"), raw);
  await execa("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", path.join(root, "base.raw"), path.join(root, "base.qcow2")]);
  fs.chmodSync(path.join(root, "base.raw"), 0o644);
  fs.chmodSync(path.join(root, "base.qcow2"), 0o644);
});

after(async () => {
  if (controller && controller.exitCode === null) controller.kill("SIGKILL");
  await virsh("destroy", vm);
  await virsh("undefine", vm, "--nvram");
  for (const pool of [lvPool, rawPool, dirPool]) {
    for (const volume of await volumes(pool)) if (volume.startsWith("kvt-") || volume === "base.qcow2") await virsh("vol-delete", "--pool", pool, volume);
    await virsh("pool-destroy", pool);
    await virsh("pool-undefine", pool);
  }
  run?.cleanUp();
});

test("pools and disks converge, are repaired, and are deleted only when empty", async (t) => {
  fs.writeFileSync(path.join(root, "pools.yaml"), pools());
  assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "pools.yaml")])).exitCode, 0);
  controller = run.startController();

  await t.test("a dir pool and a logical pool on the test volume group become Ready", async () => {
    for (const pool of [dirPool, rawPool, lvPool]) {
      const ready = await kvmctl(["--dir", dir, "wait", `pool/${pool}`, "--for=condition=Ready", "--timeout=60s"]);
      assert.equal(ready.exitCode, 0, ready.stderr);
      const info = String((await virsh("pool-info", pool)).stdout);
      assert.match(info, /^State:\s+running$/m);
      assert.match(info, /^Autostart:\s+yes$/m);
    }
    assert.ok(fs.statSync(path.join(root, "images")).isDirectory(), "pool-build made the directory");
    const lv = await run.getJson(`pool/${lvPool}`);
    assert.equal(lv.status.phase, "Active");
    assert.equal(lv.status.path, `/dev/${TEST_VG}`);
    assert.ok(lv.status.capacity > 0, "capacity from the volume group");
    const table = await kvmctl(["--dir", dir, "get", "pools"]);
    assert.match(table.stdout, new RegExp(`${lvPool}\\s+True\\s+Active\\s+logical\\s+vg:${TEST_VG}`));
  });

  await t.test("pool-destroy by hand: started again; pool-undefine by hand: defined again, same UUID", async () => {
    assert.equal((await virsh("pool-destroy", dirPool)).exitCode, 0);
    const restarted = await run.waitUntil("the dir pool to run again", () => poolState(dirPool));
    const uuid = (await run.getJson(`pool/${lvPool}`)).status.uuid;
    // Both in one virsh call, repeated until the undefine takes: the controller starts a
    // destroyed pool again within milliseconds, and an active pool cannot be undefined.
    await run.waitUntil("a hand-typed pool-destroy + pool-undefine to take", async () => (await virsh(`pool-destroy ${lvPool} ; pool-undefine ${lvPool}`)).exitCode === 0);
    // The repair is define, start, then autostart: wait for all of it, not just the start.
    const redefined = await run.waitUntil("the logical pool to be back, running and autostarted", async () => {
      const info = String((await virsh("pool-info", lvPool)).stdout);
      return /^State:\s+running$/m.test(info) && /^Autostart:\s+yes$/m.test(info);
    });
    process.stdout.write(`# pool-destroy → running: ${restarted} ms; pool-undefine → running: ${redefined} ms\n`);
    assert.equal(String((await virsh("pool-uuid", lvPool)).stdout).trim(), uuid);
    assert.match(String((await virsh("pool-info", lvPool)).stdout), /^Autostart:\s+yes$/m);
  });

  await t.test("disks: cloned, imported (converted where formats differ) and created; the guest reads them", async () => {
    // The clone source: a volume put in the dir pool by hand (kvmctl did not create it).
    assert.equal((await virsh("vol-create-as", dirPool, "base.qcow2", "4M", "--format", "qcow2")).exitCode, 0);
    assert.equal((await virsh("vol-upload", "--pool", dirPool, "base.qcow2", path.join(root, "base.qcow2"))).exitCode, 0);
    fs.writeFileSync(path.join(root, "vm.yaml"), vmManifest());
    assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "vm.yaml")])).exitCode, 0);
    const ready = await kvmctl(["--dir", dir, "wait", `vm/${vm}`, "--for=condition=Ready", "--timeout=180s"]);
    assert.equal(ready.exitCode, 0, ready.stderr);

    assert.deepEqual(await volumes(dirPool), [`${vm}-clone.qcow2`, `${vm}-fromraw.qcow2`, `${vm}-image.qcow2`, "base.qcow2"].sort());
    assert.deepEqual(await volumes(rawPool), [`${vm}-empty.qcow2`, `${vm}-rawclone`, `${vm}-rawimport`].sort());
    const format = async (pool: string, volume: string) => JSON.parse(String((await execa("qemu-img", ["info", "-U", "--output=json", String((await virsh("vol-path", "--pool", pool, volume)).stdout).trim()])).stdout)).format;
    assert.equal(await format(dirPool, `${vm}-clone.qcow2`), "qcow2");
    assert.equal(await format(rawPool, `${vm}-rawclone`), "raw", "a qcow2 volume cloned into a raw disk");
    assert.equal(await format(rawPool, `${vm}-rawimport`), "raw", "a qcow2 image imported into a raw disk");
    assert.equal(await format(dirPool, `${vm}-fromraw.qcow2`), "qcow2", "a raw image imported into a qcow2 disk");

    // Inside the guest: vda..vdf in manifest order; every copy starts with the marker.
    const guest = await sshWhenReady({ port, key: testGuest().sshKey }, [
      // One word: ssh hands it to the guest's shell as it is.
      "for d in vda vdb vdc vdd vde vdf; do echo $d $(cat /sys/block/$d/size) $(head -c 16 /dev/$d | tr -c 'A-Z0-9-' '.'); done",
    ]);
    const disks = Object.fromEntries(
      guest
        .trim()
        .split("\n")
        .map((line) => {
          const [device, sectors, head] = line.split(" ");
          return [device, { bytes: Number(sectors) * 512, head }];
        }),
    );
    assert.equal(disks.vda?.bytes, 16 * 1024 * 1024, "the clone grew to the size asked for");
    for (const device of ["vda", "vdb", "vdc", "vdd", "vde"]) assert.equal(disks[device]?.head, MARKER, `${device}: ${guest}`);
    assert.equal(disks.vdf?.bytes, 8 * 1024 * 1024, "an empty disk of the size asked for");
    assert.equal((await run.getJson(`vm/${vm}`)).status.phase, "Running");
  });

  await t.test("a disk grown on the running VM: blockresize, the guest sees the new size, the domain keeps running", async () => {
    const domid = String((await virsh("domid", vm)).stdout).trim();
    fs.writeFileSync(path.join(root, "vm.yaml"), vmManifest().replace("{name: empty, pool: ${rawPool}, size: 8Mi}".replace("${rawPool}", rawPool), `{name: empty, pool: ${rawPool}, size: 24Mi}`));
    assert.match(fs.readFileSync(path.join(root, "vm.yaml"), "utf8"), /size: 24Mi/);
    assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "vm.yaml")])).exitCode, 0);
    const ready = await kvmctl(["--dir", dir, "wait", `vm/${vm}`, "--for=condition=Ready", "--timeout=90s"]);
    assert.equal(ready.exitCode, 0, ready.stderr);
    const size = await sshWhenReady({ port, key: testGuest().sshKey }, ["blockdev --getsize64 /dev/vdf"]);
    assert.equal(Number(size.trim()), 24 * 1024 * 1024, "the guest sees the grown disk");
    assert.equal(String((await virsh("domid", vm)).stdout).trim(), domid, "the same running domain");
    const events = fs.readFileSync(path.join(dir, ".kvmctl", "events", `VirtualMachine-${vm}.jsonl`), "utf8");
    assert.match(events, /live: blockresize vdf/);
  });

  await t.test("deletionPolicy Delete removes exactly the volumes kvmctl created", async () => {
    const deleted = await kvmctl(["--dir", dir, "delete", "vm", vm, "--wait", "--timeout=90s"]);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    assert.deepEqual(await volumes(dirPool), ["base.qcow2"], "the clone source stays");
    assert.deepEqual(await volumes(rawPool), []);
  });

  await t.test("a pool that still holds volumes outlives its manifest as Retained, and goes once it is empty", async () => {
    const deleted = await kvmctl(["--dir", dir, "delete", "pool", dirPool]);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    await run.waitUntil("the kept pool in kvmctl get", async () => /Retained/.test((await kvmctl(["--dir", dir, "get", "pools"])).stdout));
    assert.equal(await poolState(dirPool), true, "the pool holding a volume keeps running");
    const table = await kvmctl(["--dir", dir, "get", "pool", dirPool, "-o", "wide"]);
    assert.equal(table.exitCode, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`${dirPool}\\s+False\\s+Retained.*pool still holds 1 volume\\(s\\) \\(base\\.qcow2\\)`));
    const described = await kvmctl(["--dir", dir, "describe", "pool", dirPool]);
    assert.equal(described.exitCode, 0, described.stderr);
    assert.match(described.stdout, /File:\s+<deleted>/);
    assert.match(described.stdout, /Ready\s+False\s+PoolNotEmpty/);
    assert.match(described.stdout, /Warning\s+DeletionBlocked/);
    const wait = await kvmctl(["--dir", dir, "wait", `pool/${dirPool}`, "--for=delete", "--timeout=2s"]);
    assert.equal(wait.exitCode, 1);
    assert.match(wait.stderr, /it is kept \(PoolNotEmpty: pool still holds 1 volume/);
    const eventLines = () => fs.readFileSync(path.join(dir, ".kvmctl/events", `StoragePool-${dirPool}.jsonl`), "utf8").trim().split("\n");
    // One more look at the kept pool after its DeletionBlocked event (kept pools are looked at
    // every 10 s; nothing else queues it): no second event.
    const blocked = eventLines().map((l) => JSON.parse(l) as { time: string; reason: string }).find((e) => e.reason === "DeletionBlocked");
    assert.ok(blocked, eventLines().join("\n"));
    await run.waitForReconciles(`StoragePool/${dirPool}`, { after: Date.parse(blocked.time) });
    const events = eventLines();
    assert.equal(events.filter((l) => l.includes("DeletionBlocked")).length, 1, "one event per change, not one per look");

    assert.equal((await virsh("vol-delete", "--pool", dirPool, "base.qcow2")).exitCode, 0);
    const gone = await run.waitUntil("the emptied pool to be removed", async () => (await virsh("pool-info", dirPool)).exitCode !== 0, 30_000);
    process.stdout.write(`# emptied pool removed ${gone} ms after its last volume\n`);
    assert.ok(fs.existsSync(path.join(root, "images")), "the directory itself stays (pool-undefine, not pool-delete)");
    await run.waitUntil("the record to be cleared", async () => !/Retained/.test((await kvmctl(["--dir", dir, "get", "pools"])).stdout), 10_000);
    const get = await kvmctl(["--dir", dir, "get", "pool", dirPool]);
    assert.equal(get.exitCode, 1);
    assert.match(get.stderr, /not found/);
  });

  await t.test("owned pools with no volumes go with their manifests, the volume group stays; SIGTERM exits 0", async () => {
    for (const pool of [rawPool, lvPool]) {
      const deleted = await kvmctl(["--dir", dir, "delete", "pool", pool, "--wait", "--timeout=60s"]);
      assert.equal(deleted.exitCode, 0, deleted.stderr);
      assert.notEqual((await virsh("pool-info", pool)).exitCode, 0, `${pool} still defined`);
    }
    assert.equal(String((await execa("vgs", ["--noheadings", "-o", "vg_name", TEST_VG])).stdout).trim(), TEST_VG);
    controller!.kill("SIGTERM");
    assert.equal((await controller!).exitCode, 0);
  });
});

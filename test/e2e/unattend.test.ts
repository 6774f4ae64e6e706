// spec.unattend on the real stack, with the busybox test guest on machine pc: the controller
// builds the answer file's ISO in QEMU's 0700 directory (0600, QEMU's user) and attaches it as
// an IDE CD-ROM; the guest (given the cloud kernel's ATA/CD-ROM/ISO 9660 modules in an extra
// cpio archive appended to its initrd) mounts /dev/sr0 and reads the exact bytes. Then
// ejectAfterFirstBoot: the medium leaves the definition and the host while the running guest
// still reads it from QEMU's open file. A marker in the answer file is found nowhere kvmctl
// shows or wrote: manifest directory (.kvmctl/ too), controller log, get -o yaml, describe,
// diff, and every world-readable file under the test's root.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { after, before, test } from "node:test";
import { execa, type ResultPromise } from "execa";
import { assertInTestEnv, testGuest, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, testGuestVm, virsh } from "./harness.js";
import { freePort } from "./ssh.js";

const vm = testName("unattend");
/** The cloud kernel's modules for an IDE CD-ROM with ISO 9660 (PIIX on pc; q35's AHCI is not in the cloud kernel), in load order. */
const MODULES = ["drivers/scsi/scsi_common.ko", "drivers/scsi/scsi_mod.ko", "drivers/cdrom/cdrom.ko", "drivers/ata/libata.ko", "drivers/ata/ata_piix.ko", "drivers/scsi/sr_mod.ko", "fs/isofs/isofs.ko"];
let run: E2eDirs;
let controller: ResultPromise | undefined;
let port = 0;

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-unattend");
  port = await freePort();
});

after(async () => {
  if (controller && controller.exitCode === null) controller.kill("SIGKILL");
  await virsh("destroy", vm);
  await virsh("undefine", vm);
  run?.cleanUp();
});

function cloudKernelVersion(): string {
  const versions = fs.readdirSync("/boot").flatMap((f) => /^vmlinuz-(.+-cloud-amd64)$/.exec(f)?.[1] ?? []).sort();
  assert.ok(versions.length, "no cloud kernel in /boot");
  return versions.at(-1)!;
}

/** The test guest's initrd with the modules appended as a second archive under /lib/modules/extra. */
async function initrdWithModules(out: string): Promise<void> {
  const staging = path.join(run.root, "modules-root");
  const extra = path.join(staging, "lib/modules/extra");
  fs.mkdirSync(extra, { recursive: true });
  const base = `/lib/modules/${cloudKernelVersion()}/kernel`;
  for (const m of MODULES) fs.copyFileSync(path.join(base, m), path.join(extra, path.basename(m)));
  const entries = [".", "./lib", "./lib/modules", "./lib/modules/extra", ...MODULES.map((m) => `./lib/modules/extra/${path.basename(m)}`)];
  const cpio = await execa("cpio", ["--create", "--format=newc", "--owner=0:0", "--quiet"], { cwd: staging, input: entries.join("\n") + "\n", encoding: "buffer" });
  fs.writeFileSync(out, Buffer.concat([fs.readFileSync(testGuest().initrd), zlib.gzipSync(cpio.stdout)]), { mode: 0o644 });
}

/** Everything under `top` (not following symlinks). */
function walk(top: string): string[] {
  const stat = fs.lstatSync(top, { throwIfNoEntry: false });
  if (!stat) return [];
  return [top, ...(stat.isDirectory() ? fs.readdirSync(top).flatMap((n) => walk(path.join(top, n))) : [])];
}

test("the guest reads Autounattend.xml from its CD-ROM byte for byte; 0600/0700 QEMU's; ejected after the first boot; the marker nowhere", { timeout: 900_000 }, async () => {
  const { root, dir } = run;
  const guest = testGuest();
  const initrd = path.join(root, "initrd-unattend.img");
  await initrdWithModules(initrd);
  const kernel = path.join(root, "vmlinuz");
  fs.copyFileSync(guest.kernel, kernel);

  const marker = `KVT-UNATTEND-${randomBytes(12).toString("hex")}`;
  const answers = `<?xml version="1.0" encoding="utf-8"?>\n<unattend xmlns="urn:schemas-microsoft-com:unattend">\n  <!-- ${marker} -->\n</unattend>\n`;
  const secrets = path.join(root, "secrets");
  fs.mkdirSync(secrets, { mode: 0o700 });
  const secretFile = path.join(secrets, "Autounattend.xml");
  fs.writeFileSync(secretFile, answers, { mode: 0o600 });
  const seeds = path.join(root, "seeds");

  const manifest = (eject: boolean) =>
    testGuestVm(
      vm,
      `  machine: pc
  interfaces:
    - user: {portForwards: [{hostPort: ${port}, guestPort: 22}]}
  unattend: {secretFile: ${secretFile}${eject ? ", ejectAfterFirstBoot: true" : ""}}
`,
    )
      .replace(guest.kernel, kernel)
      .replace(guest.initrd, initrd);
  const apply = async (eject: boolean) => {
    fs.writeFileSync(path.join(root, "vm.yaml"), manifest(eject));
    const applied = await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "vm.yaml")]);
    assert.equal(applied.exitCode, 0, applied.stderr);
  };
  await apply(false);
  controller = run.startController(["--seed-dir", seeds, "--allow-host-path", `kernel=${root}`]);
  const ready = await kvmctl(["--dir", dir, "wait", `vm/${vm}`, "--for=condition=Ready", "--timeout=300s"]);
  assert.equal(ready.exitCode, 0, `${ready.stderr}\n${run.logTail(30)}`);

  // Modes and owners: the medium 0600 and its directory 0700, both QEMU's; the record and key root's 0600.
  const qemuUid = Number(String((await execa("id", ["-u", "libvirt-qemu"])).stdout).trim());
  const vmDir = path.join(seeds, run.instance, vm);
  const medium = path.join(vmDir, "unattend", "unattend.img");
  const st = (p: string) => fs.lstatSync(p);
  assert.equal(st(medium).mode & 0o7777, 0o600);
  assert.equal(st(medium).uid, qemuUid);
  assert.equal(st(path.dirname(medium)).mode & 0o7777, 0o700);
  assert.equal(st(path.dirname(medium)).uid, qemuUid);
  for (const f of ["unattend.key", "unattend.built"]) {
    assert.equal(st(path.join(vmDir, f)).mode & 0o7777, 0o600, f);
    assert.equal(st(path.join(vmDir, f)).uid, 0, f);
  }
  const xml = String((await virsh("dumpxml", "--inactive", vm)).stdout);
  assert.match(xml, /<disk type='file' device='cdrom'>/);
  assert.ok(xml.includes(`<source file='${medium}'`), xml);
  assert.match(xml, /<target dev='hda' bus='ide'\/>/);

  // The guest: load the modules, mount the CD-ROM, hash the file.
  const expected = createHash("sha256").update(answers).digest("hex");
  const readInGuest = async (): Promise<string> => {
    const script = `for m in ${MODULES.map((m) => path.basename(m, ".ko")).join(" ")}; do insmod /lib/modules/extra/$m.ko 2>/dev/null; done; i=0; while [ ! -b /dev/sr0 ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done; mkdir -p /mnt/u; mount -t iso9660 -o ro /dev/sr0 /mnt/u 2>/dev/null; ls /mnt/u; sha256sum /mnt/u/Autounattend.xml; umount /mnt/u`;
    const deadline = Date.now() + 240_000;
    for (;;) {
      const out = await kvmctl(["--dir", dir, "ssh", vm, "-i", guest.sshKey, "--", "sh", "-c", `'${script}'`], { env: { XDG_STATE_HOME: path.join(root, "xdg") } });
      if (out.exitCode === 0 && out.stdout.includes(expected)) return out.stdout;
      if (Date.now() > deadline) assert.fail(`the guest did not read the medium: exit ${out.exitCode}\n${out.stdout}\n${out.stderr}\n${run.logTail(20)}`);
      await new Promise((resolve) => setTimeout(resolve, 3_000));
    }
  };
  const first = await readInGuest();
  assert.match(first, /Autounattend\.xml/);
  assert.ok(first.includes(`${expected}  /mnt/u/Autounattend.xml`), first);
  const status = JSON.parse((await kvmctl(["--dir", dir, "get", "vm", vm, "-o", "json"])).stdout).status;
  assert.deepEqual(status.unattend, { medium: "cdrom", attached: true });

  // ejectAfterFirstBoot: the domain has run, so the medium leaves the definition and the host at once.
  await apply(true);
  await run.waitUntil("the unattend medium removed from the host", async () => !fs.existsSync(path.join(vmDir, "unattend")), 120_000, 500);
  const inactive = async () => String((await virsh("dumpxml", "--inactive", vm)).stdout);
  try {
    await run.waitUntil("the unattend medium gone from the definition", async () => !(await inactive()).includes("ua-kvmctl-unattend"), 30_000, 500);
  } catch (error) {
    assert.fail(`${(error as Error).message}\n${await inactive()}`);
  }
  for (const f of ["unattend.key", "unattend.built"]) assert.equal(fs.existsSync(path.join(vmDir, f)), false, f);
  assert.equal(String((await virsh("domstate", vm)).stdout).trim(), "running", "not restarted");
  await run.waitUntil("status says ejected", async () => JSON.parse((await kvmctl(["--dir", dir, "get", "vm", vm, "-o", "json"])).stdout).status?.unattend?.attached === false, 60_000, 500);
  // QEMU keeps the file it opened: the running guest still reads the answer file.
  assert.ok((await readInGuest()).includes(expected));

  // The marker nowhere kvmctl shows or wrote.
  const shown = [
    (await kvmctl(["--dir", dir, "get", "vm", vm, "-o", "yaml"])).stdout,
    (await kvmctl(["--dir", dir, "describe", "vm", vm])).stdout,
    (await kvmctl(["--dir", dir, "diff"])).stdout,
    (await kvmctl(["--dir", dir, "diff"])).stderr,
    fs.readFileSync(run.logFile, "utf8"),
    String((await virsh("dumpxml", vm)).stdout),
  ];
  for (const text of shown) assert.ok(!text.includes(marker), `the marker in: ${text.slice(0, 200)}`);
  for (const file of walk(dir)) if (fs.lstatSync(file).isFile()) assert.ok(!fs.readFileSync(file).includes(marker), `the marker in ${file}`);
  for (const file of walk(root)) {
    const s = fs.lstatSync(file);
    if (s.isFile() && s.mode & 0o004) assert.ok(!fs.readFileSync(file).includes(marker), `the marker in the world-readable ${file}`);
  }
  for (const file of walk(seeds)) assert.equal(fs.lstatSync(file).mode & 0o004, 0, `${file} is world-readable`);
});

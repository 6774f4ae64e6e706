// The test guest: Debian's cloud kernel plus a tiny initramfs (busybox-static, dropbear)
// that gets an address by DHCP, runs sshd and prints a ready line on the serial console.
// The base initramfs is cached by a hash of its inputs; the SSH key is per run and rides
// in a second cpio archive appended to it (the kernel unpacks concatenated archives).
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";
import { execa } from "execa";
import { CACHE_DIR, RUN_DIR } from "./config.js";
import { run } from "./run.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const GUEST_FILES = path.join(HERE, "guest-files");
const MODULES = [
  "drivers/virtio/virtio_ring.ko",
  "drivers/virtio/virtio.ko",
  "drivers/virtio/virtio_pci_modern_dev.ko",
  "drivers/virtio/virtio_pci_legacy_dev.ko",
  "drivers/virtio/virtio_pci.ko",
  "net/core/failover.ko",
  "drivers/net/net_failover.ko",
  "drivers/net/virtio_net.ko",
  "drivers/block/virtio_blk.ko",
  "drivers/char/virtio_console.ko",
  "drivers/acpi/button.ko",
  "drivers/input/evdev.ko",
];

export interface GuestImage {
  kernel: string;
  initrd: string;
  sshKey: string;
  kernelVersion: string;
}

/** Where `guest()` publishes the current guest: stable paths for manifests and people. */
export const CURRENT_GUEST_DIR = path.join(RUN_DIR, "guest");

function cloudKernelVersion(): string {
  const versions = fs
    .readdirSync("/boot")
    .map((f) => /^vmlinuz-(.+-cloud-amd64)$/.exec(f)?.[1])
    .filter((v): v is string => v !== undefined)
    .sort();
  const latest = versions.at(-1);
  if (!latest) throw new Error("no /boot/vmlinuz-*-cloud-amd64: install linux-image-cloud-amd64 (npm run testenv:up does)");
  return latest;
}

async function packageVersion(name: string): Promise<string> {
  return (await run("dpkg-query", ["-W", "-f", "${Version}", name], { quiet: true })).stdout.trim();
}

async function inputsHash(kernelVersion: string): Promise<string> {
  const hash = createHash("sha256");
  hash.update(kernelVersion);
  hash.update(await packageVersion("busybox-static"));
  hash.update(await packageVersion("dropbear-bin"));
  hash.update(fs.readFileSync(fileURLToPath(import.meta.url)));
  for (const f of fs.readdirSync(GUEST_FILES).sort()) hash.update(f).update(fs.readFileSync(path.join(GUEST_FILES, f)));
  return hash.digest("hex").slice(0, 16);
}

/** Shared libraries of a dynamic binary, from ldd (dropbear is not static). */
async function sharedLibraries(binary: string): Promise<string[]> {
  const out = (await run("ldd", [binary], { quiet: true })).stdout;
  return [...out.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]!);
}

function copyInto(root: string, source: string, target = source, mode?: number): void {
  const dest = path.join(root, target);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.copyFileSync(source, dest);
  if (mode !== undefined) fs.chmodSync(dest, mode);
}

function writeInto(root: string, target: string, content: string, mode = 0o644): void {
  const dest = path.join(root, target);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.writeFileSync(dest, content, { mode });
  fs.chmodSync(dest, mode);
}

/** Packs a directory as a gzip'd newc cpio archive, files owned by root. */
async function packCpio(root: string): Promise<Buffer> {
  const entries = fs
    .readdirSync(root, { recursive: true, encoding: "utf8" })
    .map((p) => `./${p}`)
    .sort();
  const result = await execa("cpio", ["--create", "--format=newc", "--owner=0:0", "--quiet"], {
    cwd: root,
    input: [".", ...entries].join("\n") + "\n",
    encoding: "buffer",
  });
  return zlib.gzipSync(result.stdout, { level: 9 });
}

async function buildBaseInitramfs(kernelVersion: string, outFile: string): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-guest-"));
  try {
    for (const dir of ["bin", "sbin", "proc", "sys", "dev", "run", "tmp", "etc/dropbear", "root", "var/log"]) {
      fs.mkdirSync(path.join(root, dir), { recursive: true });
    }
    fs.chmodSync(path.join(root, "root"), 0o700);
    copyInto(root, "/bin/busybox", "bin/busybox", 0o755);
    fs.symlinkSync("busybox", path.join(root, "bin/sh"));
    copyInto(root, "/usr/sbin/dropbear", "sbin/dropbear", 0o755);
    for (const lib of await sharedLibraries("/usr/sbin/dropbear")) copyInto(root, fs.realpathSync(lib), lib.slice(1), 0o755);
    const moduleDir = `/lib/modules/${kernelVersion}/kernel`;
    for (const mod of MODULES) copyInto(root, path.join(moduleDir, mod), path.join("lib/modules", path.basename(mod)));
    copyInto(root, path.join(GUEST_FILES, "init"), "init", 0o755);
    copyInto(root, path.join(GUEST_FILES, "udhcpc.script"), "etc/udhcpc.script", 0o755);
    copyInto(root, path.join(GUEST_FILES, "power-button"), "etc/acpi/PWRF/00000080", 0o755);
    writeInto(root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    writeInto(root, "etc/group", "root:x:0:\n");
    writeInto(root, "etc/shells", "/bin/sh\n");
    writeInto(root, "etc/acpid.conf", "PWRF PWRF/00000080\n");
    fs.writeFileSync(outFile, await packCpio(root));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** A key pair for this run, and a second cpio archive that authorises it for root. */
async function runKeyOverlay(keyFile: string): Promise<Buffer> {
  if (!fs.existsSync(keyFile)) {
    fs.mkdirSync(path.dirname(keyFile), { recursive: true });
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "kvmctl-testenv", "-f", keyFile], { quiet: true });
  }
  fs.chmodSync(keyFile, 0o600);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-guest-key-"));
  try {
    fs.mkdirSync(path.join(root, "root/.ssh"), { recursive: true, mode: 0o700 });
    fs.chmodSync(path.join(root, "root"), 0o700);
    fs.chmodSync(path.join(root, "root/.ssh"), 0o700);
    writeInto(root, "root/.ssh/authorized_keys", fs.readFileSync(`${keyFile}.pub`, "utf8"), 0o600);
    return await packCpio(root);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** Builds (or reuses) the guest and publishes kernel, initrd and key under CURRENT_GUEST_DIR. */
export async function guest(): Promise<GuestImage> {
  const kernelVersion = cloudKernelVersion();
  const cacheDir = path.join(CACHE_DIR, "guest", await inputsHash(kernelVersion));
  const baseInitrd = path.join(cacheDir, "initramfs-base.cpio.gz");
  if (!fs.existsSync(baseInitrd)) {
    fs.mkdirSync(cacheDir, { recursive: true });
    const partial = `${baseInitrd}.partial`;
    await buildBaseInitramfs(kernelVersion, partial);
    fs.renameSync(partial, baseInitrd);
  }
  fs.mkdirSync(CURRENT_GUEST_DIR, { recursive: true, mode: 0o755 });
  fs.chmodSync(RUN_DIR, 0o755);
  fs.chmodSync(CURRENT_GUEST_DIR, 0o755);
  const sshKey = path.join(CURRENT_GUEST_DIR, "id_ed25519");
  const overlay = await runKeyOverlay(sshKey);
  const kernel = path.join(CURRENT_GUEST_DIR, "vmlinuz");
  const initrd = path.join(CURRENT_GUEST_DIR, "initrd.img");
  // Our own copies: libvirt relabels the files a guest boots from; /boot stays untouched.
  fs.copyFileSync(`/boot/vmlinuz-${kernelVersion}`, `${kernel}.tmp`);
  fs.renameSync(`${kernel}.tmp`, kernel);
  fs.writeFileSync(`${initrd}.tmp`, Buffer.concat([fs.readFileSync(baseInitrd), overlay]), { mode: 0o644 });
  fs.renameSync(`${initrd}.tmp`, initrd);
  fs.chmodSync(kernel, 0o644);
  fs.chmodSync(initrd, 0o644);
  return { kernel, initrd, sshKey, kernelVersion };
}

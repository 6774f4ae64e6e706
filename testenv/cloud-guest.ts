// The cloud-init test guest: a Debian bookworm root disk with the real cloud-init, systemd
// and OpenSSH, built from Debian packages only (mmdebstrap from the machine's own mirror), and
// booted directly from its kernel and a small initramfs. Cached by a hash of its inputs (the
// package list, the configuration written into it and this script) in
// /var/cache/kvmctl-testenv/cloud-guest/<hash>/:
//
//   vmlinuz, initrd.img  the rootfs's cloud kernel and its initramfs (MODULES=list)
//   disk.qcow2           the root file system: ext4 on the whole disk (no partition table),
//                        2 GiB virtual. A read-only BASE: every VM gets its own qcow2 overlay
//                        (`qemu-img create -f qcow2 -F qcow2 -b disk.qcow2 vm.qcow2`) or a copy.
//
// The guest takes everything else from a NoCloud seed (`cidata`): hostname, users' keys, host
// keys. It prints KVMCTL-CLOUD-READY on ttyS0 once cloud-init's init stage and sshd are done.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CACHE_DIR, RUN_DIR } from "./config.js";
import { debianMirror } from "./provision.js";
import { commandExists, run } from "./run.js";

const SUITE = "bookworm";
const PACKAGES = [
  "systemd-sysv",
  "udev",
  "dbus", // hostnamectl (cloud-init's set_hostname) talks to systemd-hostnamed over D-Bus
  "cloud-init",
  "openssh-server",
  "linux-image-cloud-amd64",
  "initramfs-tools",
  "ifupdown", // cloud-init's eni renderer: DHCP on the NIC from its fallback network config
  "isc-dhcp-client",
  "iproute2",
  "netbase",
  "sudo", // cloud-init's default user `debian` gets passwordless sudo
  "e2fsprogs", // resize2fs: cloud-init's resizefs fits the root file system to a larger overlay
];
const DISK_SIZE = "2G";
/** What a domain passes the kernel: the root disk is the first virtio disk, whole. */
export const CLOUD_GUEST_CMDLINE = "root=/dev/vda rw console=ttyS0";
/** cloud-init's default user on Debian. */
export const CLOUD_GUEST_USER = "debian";
export const CLOUD_GUEST_READY = "KVMCTL-CLOUD-READY";

// Modules the initramfs loads besides what udev finds by modalias: the root disk (virtio_blk;
// ext4 is built in), and the NIC and seed media, though those load from the root file system too.
const INITRAMFS_MODULES = ["virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "sr_mod", "cdrom", "isofs", "vfat", "nls_cp437", "nls_ascii"];

/** Files written into the rootfs before its packages install: initramfs-tools reads them when the kernel's postinst builds the initrd. */
const EARLY_FILES: Record<string, string> = {
  "etc/initramfs-tools/conf.d/kvmctl": "# kvmctl test environment: only the listed modules (and their dependencies)\nMODULES=list\n",
  // /etc/initramfs-tools/modules is initramfs-tools' conffile; modules.d is read too.
  "usr/share/initramfs-tools/modules.d/kvmctl": INITRAMFS_MODULES.join("\n") + "\n",
};

const READY_UNIT = `[Unit]
Description=Tell the serial console that cloud-init's init stage and sshd are done (kvmctl test environment)
After=cloud-init.service ssh.service
Wants=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/bin/echo ${CLOUD_GUEST_READY}
StandardOutput=tty
TTYPath=/dev/ttyS0

[Install]
WantedBy=multi-user.target
`;

/** Files written into the finished rootfs. */
const LATE_FILES: Record<string, string> = {
  "etc/cloud/cloud.cfg.d/99_kvmctl.cfg": [
    "# kvmctl test environment: a NoCloud seed or nothing; no probing of cloud metadata services.",
    "datasource_list: [NoCloud, None]",
    "# The root file system is the whole disk: nothing to grow (resize_rootfs still fits ext4 to it).",
    "growpart: {mode: 'off'}",
    "grub_dpkg: {enabled: false}",
    "# /etc/hosts names the seed's hostname (sudo looks it up).",
    "manage_etc_hosts: true",
    "",
  ].join("\n"),
  // No locales package: C.UTF-8 is built in, and with it already set cloud-init's locale
  // module has nothing to run (it would call update-locale otherwise).
  "etc/default/locale": "LANG=C.UTF-8\n",
  "etc/fstab": "/dev/vda / ext4 defaults,errors=remount-ro 0 1\n",
  // sshd starts once cloud-init has written the seed's host keys (the image has none of its own).
  "etc/systemd/system/ssh.service.d/kvmctl-after-cloud-init.conf": "[Unit]\nAfter=cloud-init.service\n",
  "etc/systemd/system/kvmctl-cloud-ready.service": READY_UNIT,
};

const MASKED_UNITS = ["e2scrub_reap.service"];

export interface CloudGuestImage {
  kernel: string;
  initrd: string;
  /** The read-only qcow2 base; VMs use an overlay of it (or a copy). */
  disk: string;
  kernelVersion: string;
  cmdline: string;
  user: string;
}

/** Where `cloudGuest()` publishes the current image: kernel and initrd copies, and a link to the cached disk. */
export const CURRENT_CLOUD_GUEST_DIR = path.join(RUN_DIR, "cloud-guest");

function mmdebstrapArgs(earlyDir: string, rootfs: string, mirror: string): string[] {
  return [
    "--mode=unshare", // as root: its own mount namespace, so no mount outlives it
    "--variant=apt",
    `--include=${PACKAGES.join(",")}`,
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    // mmdebstrap's own special hook (it copies; no shell runs).
    `--essential-hook=sync-in ${earlyDir} /`,
    SUITE,
    rootfs,
    mirror,
  ];
}

function inputsHash(): string {
  const hash = createHash("sha256");
  // The mirror is left out: any Debian mirror serves the same packages.
  hash.update(JSON.stringify(mmdebstrapArgs("EARLY", "ROOTFS", "MIRROR")));
  hash.update(JSON.stringify({ EARLY_FILES, LATE_FILES, MASKED_UNITS, DISK_SIZE }));
  hash.update(fs.readFileSync(fileURLToPath(import.meta.url)));
  return hash.digest("hex").slice(0, 16);
}

function writeInto(root: string, target: string, content: string, mode = 0o644): void {
  const dest = path.join(root, target);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.writeFileSync(dest, content, { mode });
  fs.chmodSync(dest, mode);
}

/** What the seed must provide, not the image: host identity and keys. */
function scrubIdentity(rootfs: string): void {
  for (const f of fs.readdirSync(path.join(rootfs, "etc/ssh"))) {
    if (f.startsWith("ssh_host_")) fs.rmSync(path.join(rootfs, "etc/ssh", f));
  }
  fs.rmSync(path.join(rootfs, "etc/hostname"), { force: true });
  // dhclient writes it from the lease.
  fs.rmSync(path.join(rootfs, "etc/resolv.conf"), { force: true });
  // An empty machine-id: systemd makes a new one on each VM's first boot.
  fs.writeFileSync(path.join(rootfs, "etc/machine-id"), "");
  fs.rmSync(path.join(rootfs, "var/lib/dbus/machine-id"), { force: true });
  // No root password: locked.
  const shadowFile = path.join(rootfs, "etc/shadow");
  const shadow = fs.readFileSync(shadowFile, "utf8").split("\n");
  fs.writeFileSync(
    shadowFile,
    shadow.map((line) => (line.startsWith("root:") ? line.split(":").map((field, i) => (i === 1 ? "*" : field)).join(":") : line)).join("\n"),
  );
}

function onlyFile(dir: string, pattern: RegExp): string {
  const matches = fs.readdirSync(dir).filter((f) => pattern.test(f));
  if (matches.length !== 1) throw new Error(`expected one ${pattern} in ${dir}, found ${matches.join(", ") || "none"}`);
  return matches[0]!;
}

async function build(outDir: string): Promise<{ kernelVersion: string }> {
  const earlyDir = path.join(outDir, "early");
  const rootfs = path.join(outDir, "rootfs");
  for (const [target, content] of Object.entries(EARLY_FILES)) writeInto(earlyDir, target, content);
  process.stderr.write(`building the cloud-init test guest (mmdebstrap ${SUITE}) in ${outDir}\n`);
  await run("mmdebstrap", mmdebstrapArgs(earlyDir, rootfs, debianMirror()), { timeoutMs: 900_000 });

  for (const [target, content] of Object.entries(LATE_FILES)) writeInto(rootfs, target, content);
  const wants = path.join(rootfs, "etc/systemd/system/multi-user.target.wants");
  fs.mkdirSync(wants, { recursive: true });
  fs.symlinkSync("/etc/systemd/system/kvmctl-cloud-ready.service", path.join(wants, "kvmctl-cloud-ready.service"));
  // Masked: e2fsprogs' LVM snapshot reaper, which would only take the one emulated CPU at boot.
  for (const unit of MASKED_UNITS) fs.symlinkSync("/dev/null", path.join(rootfs, "etc/systemd/system", unit));
  scrubIdentity(rootfs);

  const boot = path.join(rootfs, "boot");
  const kernelFile = onlyFile(boot, /^vmlinuz-.+-cloud-amd64$/);
  const kernelVersion = kernelFile.slice("vmlinuz-".length);
  fs.copyFileSync(path.join(boot, kernelFile), path.join(outDir, "vmlinuz"));
  fs.copyFileSync(path.join(boot, `initrd.img-${kernelVersion}`), path.join(outDir, "initrd.img"));

  const raw = path.join(outDir, "disk.raw");
  await run("mkfs.ext4", ["-q", "-F", "-L", "kvmctl-root", "-d", rootfs, raw, DISK_SIZE]);
  await run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, path.join(outDir, "disk.qcow2")]);
  fs.rmSync(raw);
  fs.rmSync(rootfs, { recursive: true, force: true });
  fs.rmSync(earlyDir, { recursive: true, force: true });
  for (const f of ["vmlinuz", "initrd.img"]) fs.chmodSync(path.join(outDir, f), 0o644);
  fs.chmodSync(path.join(outDir, "disk.qcow2"), 0o444);
  return { kernelVersion };
}

const PARTIAL = ".partial-";

/** Removes half-built images whose builder (by the pid in the name) is gone. */
function removeAbandonedBuilds(parent: string): void {
  if (!fs.existsSync(parent)) return;
  for (const entry of fs.readdirSync(parent)) {
    const pid = Number(entry.split(PARTIAL)[1]);
    if (!entry.includes(PARTIAL) || !Number.isInteger(pid) || pid <= 0) continue;
    if (!fs.existsSync(`/proc/${pid}`)) fs.rmSync(path.join(parent, entry), { recursive: true, force: true });
  }
}

/** Builds (or reuses) the cloud-init guest and publishes it under CURRENT_CLOUD_GUEST_DIR. */
export async function cloudGuest(): Promise<CloudGuestImage> {
  const parent = path.join(CACHE_DIR, "cloud-guest");
  const cacheDir = path.join(parent, inputsHash());
  const manifestFile = path.join(cacheDir, "build.json");
  if (!fs.existsSync(manifestFile)) {
    if (!(await commandExists("mmdebstrap"))) throw new Error("mmdebstrap is not installed: run `npm run testenv:up` (it installs it)");
    removeAbandonedBuilds(parent);
    // Built aside and renamed into place: a half-built image is never taken for a cached one,
    // and two builders of the same image never share a directory.
    const partial = `${cacheDir}${PARTIAL}${process.pid}`;
    fs.mkdirSync(partial, { recursive: true, mode: 0o755 });
    try {
      const started = Date.now();
      const { kernelVersion } = await build(partial);
      const seconds = (Date.now() - started) / 1000;
      fs.writeFileSync(path.join(partial, "build.json"), JSON.stringify({ kernelVersion, seconds, packages: PACKAGES }, null, 2) + "\n");
      fs.chmodSync(partial, 0o755);
      if (fs.existsSync(manifestFile)) {
        fs.rmSync(partial, { recursive: true, force: true }); // another builder finished first
      } else {
        fs.rmSync(cacheDir, { recursive: true, force: true }); // never complete without build.json
        fs.renameSync(partial, cacheDir);
      }
      process.stderr.write(`built the cloud-init test guest in ${seconds.toFixed(0)} s\n`);
    } catch (error) {
      fs.rmSync(partial, { recursive: true, force: true });
      throw error;
    }
  }
  for (const dir of [CACHE_DIR, parent]) fs.chmodSync(dir, 0o755);
  const { kernelVersion } = JSON.parse(fs.readFileSync(manifestFile, "utf8")) as { kernelVersion: string };

  fs.mkdirSync(CURRENT_CLOUD_GUEST_DIR, { recursive: true, mode: 0o755 });
  fs.chmodSync(RUN_DIR, 0o755);
  fs.chmodSync(CURRENT_CLOUD_GUEST_DIR, 0o755);
  const kernel = path.join(CURRENT_CLOUD_GUEST_DIR, "vmlinuz");
  const initrd = path.join(CURRENT_CLOUD_GUEST_DIR, "initrd.img");
  // Our own copies of kernel and initrd (libvirt relabels the files a guest boots from); the
  // disk is a link to the cached base, which VMs only ever read through their overlays.
  for (const [from, to] of [
    [path.join(cacheDir, "vmlinuz"), kernel],
    [path.join(cacheDir, "initrd.img"), initrd],
  ] as const) {
    fs.copyFileSync(from, `${to}.tmp`);
    fs.chmodSync(`${to}.tmp`, 0o644);
    fs.renameSync(`${to}.tmp`, to);
  }
  const link = path.join(CURRENT_CLOUD_GUEST_DIR, "disk.qcow2");
  fs.rmSync(`${link}.tmp`, { force: true });
  fs.symlinkSync(path.join(cacheDir, "disk.qcow2"), `${link}.tmp`);
  fs.renameSync(`${link}.tmp`, link);
  return { kernel, initrd, disk: path.join(cacheDir, "disk.qcow2"), kernelVersion, cmdline: CLOUD_GUEST_CMDLINE, user: CLOUD_GUEST_USER };
}

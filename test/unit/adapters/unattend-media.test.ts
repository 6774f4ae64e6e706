// HostUnattendMedia with the real tools (genisoimage, mkfs.vfat, mtools; read back with
// isoinfo and mtools): the answer file's exact bytes at the medium's root, the floppy a
// 1.44 MB FAT12 image, modes and owners (0600 medium of QEMU's user in QEMU's 0700
// directory, root's key and record), a keyed digest, planted symlinks not followed, nothing
// world-readable, everything removed.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { HostUnattendMedia } from "../../../src/adapters/unattend-media.js";
import type { UnattendLocation } from "../../../src/ports/index.js";

const MARKER = "UNATTEND-MARKER-SECRET-0b9e44";
/** Not valid UTF-8 on purpose (a BOM, a lone 0xff and a NUL): the bytes must survive as they are. */
const ANSWERS = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(`<?xml version="1.0"?>\n<unattend><!-- ${MARKER} --></unattend>\n`), Buffer.from([0xff, 0x00, 0x0a])]);
const isRoot = process.getuid?.() === 0;
// Any uid/gid will do for the checks; root can give files to anyone.
const QEMU = isRoot ? { uid: 64_123, gid: 64_124 } : { uid: process.getuid!(), gid: process.getgid!() };

function scene(vm = "win"): { root: string; at: UnattendLocation; media: HostUnattendMedia; cleanup: () => void } {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-unattend-"));
  const root = path.join(base, "seeds");
  const vmDir = path.join(root, "t1", vm);
  const at = { root, vmDir, dir: `${vmDir}/unattend`, path: `${vmDir}/unattend/unattend.img` };
  return { root, at, media: new HostUnattendMedia({ owner: () => QEMU }), cleanup: () => fs.rmSync(base, { recursive: true, force: true }) };
}

const mode = (p: string) => fs.lstatSync(p).mode & 0o7777;
const TOOLS = { env: { ...process.env, MTOOLS_SKIP_CHECK: "1", MTOOLSRC: "/dev/null" }, encoding: "buffer" as const, stripFinalNewline: false };

test("cdrom: an ISO labelled UNATTEND with Autounattend.xml (Joliet and Rock Ridge) holding the exact bytes; modes and owners", async () => {
  const { at, media, cleanup } = scene();
  try {
    const hash = await media.digest(at, "cdrom", ANSWERS);
    await media.build(at, "cdrom", ANSWERS, hash);
    const joliet = await execa("isoinfo", ["-i", at.path, "-J", "-x", "/Autounattend.xml"], TOOLS);
    assert.deepEqual(Buffer.from(joliet.stdout), ANSWERS);
    const rock = await execa("isoinfo", ["-i", at.path, "-R", "-x", "/Autounattend.xml"], TOOLS);
    assert.deepEqual(Buffer.from(rock.stdout), ANSWERS);
    const listing = String((await execa("isoinfo", ["-i", at.path, "-J", "-f"])).stdout).trim();
    assert.equal(listing, "/Autounattend.xml", "the file at the root, nothing else");
    assert.match(String((await execa("isoinfo", ["-d", "-i", at.path])).stdout), /^Volume id: UNATTEND$/m);

    assert.equal(mode(at.path), 0o600);
    assert.equal(mode(at.dir), 0o700);
    assert.equal(mode(at.vmDir), 0o711);
    assert.equal(mode(`${at.vmDir}/unattend.key`), 0o600);
    assert.equal(mode(`${at.vmDir}/unattend.built`), 0o600);
    for (const p of [at.path, at.dir]) assert.deepEqual([fs.lstatSync(p).uid, fs.lstatSync(p).gid], [QEMU.uid, QEMU.gid], `${p} is QEMU's`);
    if (isRoot) for (const p of [`${at.vmDir}/unattend.key`, `${at.vmDir}/unattend.built`, at.vmDir]) assert.equal(fs.lstatSync(p).uid, 0, `${p} is root's`);
    assert.deepEqual(fs.readdirSync(at.dir), ["unattend.img"], "no staging leftovers in QEMU's directory");
    assert.deepEqual(fs.readdirSync(at.vmDir).sort(), ["unattend", "unattend.built", "unattend.key"]);
    assert.equal(await media.builtHash(at), hash);
  } finally {
    cleanup();
  }
});

test("floppy: a 1474560-byte FAT12 image labelled UNATTEND holding Autounattend.xml (mdir, mtype), byte for byte", async () => {
  const { at, media, cleanup } = scene();
  try {
    await media.build(at, "floppy", ANSWERS, await media.digest(at, "floppy", ANSWERS));
    assert.equal(fs.statSync(at.path).size, 1_474_560);
    const boot = fs.readFileSync(at.path).subarray(0, 62);
    assert.equal(boot.subarray(54, 62).toString("latin1"), "FAT12   ");
    assert.equal(boot.subarray(43, 54).toString("latin1"), "UNATTEND   ");
    assert.equal(boot.readUInt16LE(19), 2880, "2880 sectors");
    assert.equal(boot[21], 0xf0, "the 1.44 MB floppy's media descriptor");
    const dir = String((await execa("mdir", ["-i", at.path, "::/"], { env: TOOLS.env })).stdout);
    assert.match(dir, /Autounattend\.xml/);
    assert.match(dir, /1 file/);
    const typed = await execa("mtype", ["-i", at.path, "::/Autounattend.xml"], TOOLS);
    assert.deepEqual(Buffer.from(typed.stdout), ANSWERS);
    assert.equal(mode(at.path), 0o600);
    assert.equal(mode(at.dir), 0o700);
  } finally {
    cleanup();
  }
});

test("the digest is keyed: stable for one VM, another per VM and per medium, not a plain hash; the key is made once, 0600", async () => {
  const a = scene("a");
  const b = scene("b");
  try {
    const { createHash } = await import("node:crypto");
    const first = await a.media.digest(a.at, "cdrom", ANSWERS);
    assert.match(first, /^[0-9a-f]{64}$/);
    assert.equal(await a.media.digest(a.at, "cdrom", ANSWERS), first);
    assert.notEqual(await a.media.digest(a.at, "floppy", ANSWERS), first);
    assert.notEqual(await a.media.digest(a.at, "cdrom", Buffer.concat([ANSWERS, Buffer.from(" ")])), first);
    assert.notEqual(await b.media.digest(b.at, "cdrom", ANSWERS), first, "another VM, another key");
    assert.notEqual(first, createHash("sha256").update(ANSWERS).digest("hex"));
    assert.equal(fs.statSync(`${a.at.vmDir}/unattend.key`).size, 32);
    assert.equal(mode(`${a.at.vmDir}/unattend.key`), 0o600);
  } finally {
    a.cleanup();
    b.cleanup();
  }
});

test("rebuilt: a new medium (new inode) and record; a medium changed behind kvmctl's back has no record", async () => {
  const { at, media, cleanup } = scene();
  try {
    const one = await media.digest(at, "cdrom", ANSWERS);
    await media.build(at, "cdrom", ANSWERS, one);
    const inode = fs.statSync(at.path).ino;
    const changed = Buffer.concat([ANSWERS, Buffer.from("<!-- 2 -->")]);
    const two = await media.digest(at, "cdrom", changed);
    await media.build(at, "cdrom", changed, two);
    assert.notEqual(fs.statSync(at.path).ino, inode, "replaced by rename, not rewritten in place");
    assert.equal(await media.builtHash(at), two);
    fs.appendFileSync(at.path, "x");
    assert.equal(await media.builtHash(at), undefined);
  } finally {
    cleanup();
  }
});

test("planted symlinks are not followed: the medium's name in QEMU's directory, the directory itself, the key", async () => {
  const { at, media, root, cleanup } = scene();
  const victim = path.join(path.dirname(root), "victim");
  try {
    fs.writeFileSync(victim, "keep me\n", { mode: 0o644 });
    const hash = await media.digest(at, "cdrom", ANSWERS);
    fs.mkdirSync(at.dir, { mode: 0o700 });
    fs.symlinkSync(victim, at.path); // as QEMU's user could, in its own directory
    await media.build(at, "cdrom", ANSWERS, hash);
    assert.equal(fs.readFileSync(victim, "utf8"), "keep me\n");
    assert.ok(fs.lstatSync(at.path).isFile(), "the link replaced by the medium");

    await media.remove(at);
    fs.mkdirSync(at.vmDir, { recursive: true });
    const elsewhere = path.join(path.dirname(root), "elsewhere");
    fs.mkdirSync(elsewhere);
    fs.symlinkSync(elsewhere, at.dir);
    await assert.rejects(media.build(at, "cdrom", ANSWERS, hash), /is a symlink/);
    assert.deepEqual(fs.readdirSync(elsewhere), []);

    fs.unlinkSync(at.dir);
    fs.symlinkSync(victim, `${at.vmDir}/unattend.key`);
    await media.digest(at, "cdrom", ANSWERS);
    assert.equal(fs.readFileSync(victim, "utf8"), "keep me\n");
    assert.ok(fs.lstatSync(`${at.vmDir}/unattend.key`).isFile());
  } finally {
    cleanup();
  }
});

test("nothing kvmctl wrote is world-readable, and remove takes it all (present says so)", async () => {
  const { at, media, cleanup } = scene();
  try {
    await media.build(at, "floppy", ANSWERS, await media.digest(at, "floppy", ANSWERS));
    const walk = (p: string): string[] => [p, ...(fs.lstatSync(p).isDirectory() ? fs.readdirSync(p).flatMap((n) => walk(path.join(p, n))) : [])];
    for (const p of walk(at.vmDir)) assert.equal(mode(p) & 0o004, 0, `${p} is world-readable (${mode(p).toString(8)})`);
    assert.equal(await media.present(at), true);
    assert.equal(await media.remove(at), true);
    assert.deepEqual(fs.readdirSync(at.vmDir), []);
    assert.equal(await media.present(at), false);
    assert.equal(await media.remove(at), false);
  } finally {
    cleanup();
  }
});

test("a floppy too small for the answer file, or an unknown QEMU user: refused before anything is built", async () => {
  const { at, cleanup } = scene();
  try {
    const big = Buffer.alloc(1_460_000, 0x41);
    const media = new HostUnattendMedia({ owner: () => QEMU });
    await assert.rejects(media.build(at, "floppy", big, "0".repeat(64)), /more than a 1\.44 MB floppy holds/);
    const nobody = new HostUnattendMedia({ owner: () => undefined });
    await assert.rejects(nobody.build(at, "cdrom", ANSWERS, "0".repeat(64)), /the user QEMU runs as is unknown/);
    assert.equal(fs.existsSync(at.path), false);
  } finally {
    cleanup();
  }
});

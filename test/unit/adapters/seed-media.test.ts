// The SeedMedia port as src/adapters/seed-media.ts runs it, with the real genisoimage,
// mkfs.vfat and mcopy (a missing tool fails these tests; it does not skip them), read back with
// the tools cloud-init and a reviewer would use: blkid for the label cloud-init looks for,
// isoinfo for the ISO's files, mtype/mdir for the VFAT's. The medium is 0600, written by rename
// (no temp file left), never through a symlink; the VFAT image is byte-reproducible.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { HostSeedMedia } from "../../../src/adapters/seed-media.js";
import type { SeedFile } from "../../../src/ports/index.js";
import { tempDir } from "../store/helpers.js";

const FILES: SeedFile[] = [
  { name: "meta-data", content: "instance-id: iid-test\nlocal-hostname: web\n" },
  { name: "user-data", content: "#cloud-config\nssh_keys:\n  ed25519_private: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n    secret\n    -----END OPENSSH PRIVATE KEY-----\n" },
  { name: "network-config", content: "version: 2\nethernets: {eth0: {dhcp4: true}}\n" },
  { name: "vendor-data", content: "#cloud-config\n" },
];

const tool = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const label = (file: string) => tool("blkid", "-p", "-o", "value", "-s", "LABEL", file).trim();
const fsType = (file: string) => tool("blkid", "-p", "-o", "value", "-s", "TYPE", file).trim();
const mode = (file: string) => fs.lstatSync(file).mode & 0o777;
/** Nothing but the listed names in `dir`: no temp file or staging directory left behind. */
const onlyThese = (dir: string, names: string[]) => assert.deepEqual(fs.readdirSync(dir).sort(), [...names].sort());

test("ISO: volume cidata (Joliet + Rock Ridge), every file byte for byte, mode 0600", async () => {
  const dir = await tempDir("kvmctl-seed-iso-");
  const target = path.join(dir, "web-seed.iso");
  await new HostSeedMedia().build(target, "iso", FILES);
  assert.equal(label(target), "cidata");
  assert.equal(fsType(target), "iso9660");
  assert.match(tool("isoinfo", "-d", "-i", target), /^Volume id: cidata$/m);
  for (const f of FILES) assert.equal(tool("isoinfo", "-J", "-x", `/${f.name}`, "-i", target), f.content, f.name);
  assert.match(tool("isoinfo", "-R", "-l", "-i", target), /user-data/, "Rock Ridge names");
  assert.equal(mode(target), 0o600);
  onlyThese(dir, ["web-seed.iso"]);
});

test("VFAT: label CIDATA, every file byte for byte, mode 0600, and the same bytes when built again later", async () => {
  const dir = await tempDir("kvmctl-seed-vfat-");
  const first = path.join(dir, "a.img");
  const second = path.join(dir, "b.img");
  const media = new HostSeedMedia();
  await media.build(first, "vfat", FILES);
  // FAT times have a 2 s resolution: a build 2 s later would differ if any time came from the clock.
  await sleep(2_100);
  await media.build(second, "vfat", FILES);
  assert.ok(fs.readFileSync(first).equals(fs.readFileSync(second)), "two builds of the same files are byte-identical");
  assert.equal(label(first), "CIDATA");
  assert.equal(fsType(first), "vfat");
  const env = { ...process.env, MTOOLSRC: "/dev/null", MTOOLS_SKIP_CHECK: "1" };
  const listing = execFileSync("mdir", ["-i", first, "::/"], { encoding: "utf8", env });
  for (const f of FILES) {
    assert.ok(listing.includes(f.name), `${f.name} has its long name`);
    assert.equal(execFileSync("mtype", ["-i", first, `::/${f.name}`], { encoding: "utf8", env }), f.content, f.name);
  }
  assert.equal(mode(first), 0o600);
  onlyThese(dir, ["a.img", "b.img"]);
  // Other files make another image.
  await media.build(second, "vfat", [FILES[0]!, { name: "user-data", content: "#cloud-config\npackages: [curl]\n" }]);
  assert.ok(!fs.readFileSync(first).equals(fs.readFileSync(second)));
});

test("an existing medium is replaced (a new inode, 0600 even if it was 0644); a symlink at the target is refused, its target untouched", async () => {
  const dir = await tempDir("kvmctl-seed-replace-");
  const target = path.join(dir, "seed.iso");
  fs.writeFileSync(target, "old", { mode: 0o644 });
  const before = fs.statSync(target).ino;
  await new HostSeedMedia().build(target, "iso", FILES);
  assert.notEqual(fs.statSync(target).ino, before);
  assert.equal(mode(target), 0o600);
  assert.equal(label(target), "cidata");

  const victim = path.join(dir, "victim");
  fs.writeFileSync(victim, "precious", { mode: 0o644 });
  const link = path.join(dir, "linked.img");
  fs.symlinkSync(victim, link);
  for (const format of ["iso", "vfat"] as const) {
    await assert.rejects(new HostSeedMedia().build(link, format, FILES), /linked\.img: is a symlink; kvmctl does not write there/);
  }
  const dangling = path.join(dir, "dangling.img");
  fs.symlinkSync(path.join(dir, "would-be-created"), dangling);
  await assert.rejects(new HostSeedMedia().build(dangling, "iso", FILES), /is a symlink/);
  assert.equal(fs.readFileSync(victim, "utf8"), "precious");
  assert.equal(mode(victim), 0o644);
  assert.ok(!fs.existsSync(path.join(dir, "would-be-created")));
  fs.mkdirSync(path.join(dir, "a-dir"));
  await assert.rejects(new HostSeedMedia().build(path.join(dir, "a-dir"), "iso", FILES), /is not a regular file/);
  onlyThese(dir, ["seed.iso", "victim", "linked.img", "dangling.img", "a-dir"]);
});

test("a seed without meta-data or user-data, or with a file that is not a NoCloud one, is refused before any tool runs", async () => {
  const dir = await tempDir("kvmctl-seed-bad-");
  const media = new HostSeedMedia();
  await assert.rejects(media.build(path.join(dir, "s.iso"), "iso", [FILES[0]!]), /needs meta-data and user-data/);
  await assert.rejects(media.build(path.join(dir, "s.iso"), "iso", [...FILES, { name: "../etc/passwd" as "meta-data", content: "" }]), /is not a NoCloud seed file/);
  await assert.rejects(media.build(path.join(dir, "s.iso"), "iso", [...FILES, FILES[0]!]), /given twice/);
  onlyThese(dir, []);
});

test("what a killed build left next to the target (a staging directory with secrets, a temp medium) goes once it is old; a young one stays", async () => {
  const dir = await tempDir("kvmctl-seed-stale-");
  const old = Date.now() / 1000 - 3600;
  const staging = path.join(dir, ".seed.iso.kvmctl-seed-AbC123");
  fs.mkdirSync(staging, { mode: 0o700 });
  fs.writeFileSync(path.join(staging, "user-data"), "secret");
  fs.utimesSync(staging, old, old);
  const temp = path.join(dir, ".seed.iso.kvmctl-0123456789abcdef.tmp");
  fs.writeFileSync(temp, "half an ISO");
  fs.utimesSync(temp, old, old);
  const young = path.join(dir, ".seed.iso.kvmctl-seed-Young1");
  fs.mkdirSync(young);
  const otherTarget = path.join(dir, ".other.iso.kvmctl-seed-Old999");
  fs.mkdirSync(otherTarget);
  fs.utimesSync(otherTarget, old, old);
  await new HostSeedMedia().build(path.join(dir, "seed.iso"), "iso", FILES);
  onlyThese(dir, ["seed.iso", ".seed.iso.kvmctl-seed-Young1", ".other.iso.kvmctl-seed-Old999"]);
});

test("a missing tool is an error that names it and its package (never a silent skip)", async () => {
  const dir = await tempDir("kvmctl-seed-notool-");
  const saved = process.env.PATH;
  process.env.PATH = dir; // nothing in it
  try {
    await assert.rejects(new HostSeedMedia().build(path.join(dir, "s.iso"), "iso", FILES), /genisoimage is not installed: .*\(genisoimage package\)/);
    await assert.rejects(new HostSeedMedia().build(path.join(dir, "s.img"), "vfat", FILES), /mkfs\.vfat is not installed: .*\(dosfstools package\)/);
  } finally {
    process.env.PATH = saved;
  }
  onlyThese(dir, []);
});

test("seed directory: made 0711 under the root, a symlink in it refused, removed without following links", async () => {
  const base = await tempDir();
  const root = path.join(base, "seeds");
  const media = new HostSeedMedia();
  const dir = path.join(root, "t1", "web");
  await media.prepareDir(root, dir);
  for (const at of [root, path.join(root, "t1"), dir]) assert.equal(mode(at), 0o711, at);
  await media.prepareDir(root, dir); // idempotent
  await assert.rejects(media.prepareDir(root, path.join(base, "elsewhere")), /is not under the seed directory/);
  const outside = path.join(base, "outside");
  fs.mkdirSync(outside);
  fs.symlinkSync(outside, path.join(root, "t1", "linked"));
  await assert.rejects(media.prepareDir(root, path.join(root, "t1", "linked")), /symlink/);
  assert.equal(await media.removeDir(path.join(root, "t1", "linked")), true);
  assert.ok(fs.existsSync(outside), "the link went, not what it pointed at");
  assert.equal(await media.removeDir(path.join(root, "t1", "linked")), false);
  await media.build(path.join(dir, "seed.img"), "iso", FILES);
  assert.equal(await media.removeDir(dir), true);
  assert.equal(fs.existsSync(dir), false);
});

test("built record: the hash is read back only while the medium is the file it was recorded for (survives a restart)", async () => {
  const dir = await tempDir();
  const target = path.join(dir, "seed.img");
  const media = new HostSeedMedia();
  const hash = "ab".repeat(32);
  assert.equal(await media.builtHash(target), undefined, "no medium");
  await media.build(target, "iso", FILES);
  assert.equal(await media.builtHash(target), undefined, "no record yet");
  await media.recordBuilt(target, hash);
  assert.equal(mode(`${target}.built`), 0o600);
  assert.equal(await new HostSeedMedia().builtHash(target), hash, "another process (a restarted controller) reads it");
  onlyThese(dir, ["seed.img", "seed.img.built"]);
  // chown (libvirt's DAC labelling at start) changes neither inode, size nor mtime.
  fs.chmodSync(target, 0o600);
  assert.equal(await media.builtHash(target), hash);
  // Rebuilt (a new file by rename) without a new record: unknown, so rebuilt again.
  await media.build(target, "iso", FILES);
  assert.equal(await media.builtHash(target), undefined);
  await media.recordBuilt(target, hash);
  // A record that is a symlink counts as none.
  fs.rmSync(`${target}.built`);
  fs.symlinkSync("/etc/hostname", `${target}.built`);
  assert.equal(await media.builtHash(target), undefined);
  await assert.rejects(media.recordBuilt(target, hash), /symlink/);
  await assert.rejects(media.recordBuilt(target, "not-a-hash"), /64 hex digits/);
});

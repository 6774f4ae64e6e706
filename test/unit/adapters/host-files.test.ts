// Host files as the controller reads them (src/adapters/host-files.ts): a secret file's text (a
// FIFO, a device or a huge file is refused at once, never blocking or filling memory), and real
// paths for the host-path policy.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { HostPathResolver, HostSecretFiles } from "../../../src/adapters/host-files.js";
import { tempDir } from "../store/helpers.js";

test("a secret file: regular files only, non-blocking, size-capped", async () => {
  const dir = await tempDir("kvmctl-secrets-");
  const secrets = new HostSecretFiles();
  fs.writeFileSync(path.join(dir, "vnc"), "s3cret\n");
  assert.equal(await secrets.read(path.join(dir, "vnc")), "s3cret\n");
  execFileSync("mkfifo", [path.join(dir, "fifo")]);
  const started = Date.now();
  await assert.rejects(secrets.read(path.join(dir, "fifo")), /not a regular file/);
  assert.ok(Date.now() - started < 5_000, "a FIFO with no writer did not block the read");
  await assert.rejects(secrets.read("/dev/zero"), /not a regular file/);
  fs.writeFileSync(path.join(dir, "big"), Buffer.alloc(70 * 1024));
  await assert.rejects(secrets.read(path.join(dir, "big")), /over the 65536-byte limit/);
  await assert.rejects(secrets.read(path.join(dir, "missing")), /ENOENT/);
});

test("real paths: symlinks followed, a missing tail resolved through its deepest parent, dangling links and loops refused", async () => {
  const dir = fs.realpathSync(await tempDir("kvmctl-realpath-"));
  const paths = new HostPathResolver();
  fs.mkdirSync(path.join(dir, "allowed"));
  fs.mkdirSync(path.join(dir, "outside"));
  fs.writeFileSync(path.join(dir, "outside", "secret"), "x");
  fs.symlinkSync(path.join(dir, "outside"), path.join(dir, "allowed", "escape"));
  assert.equal(paths.real(path.join(dir, "allowed", "escape", "secret")), path.join(dir, "outside", "secret"));
  // A dir pool's directory that does not exist yet, below a symlink.
  assert.equal(paths.real(path.join(dir, "allowed", "escape", "new", "pool")), path.join(dir, "outside", "new", "pool"));
  assert.equal(paths.real(path.join(dir, "allowed", "new")), path.join(dir, "allowed", "new"));
  fs.symlinkSync(path.join(dir, "outside", "later"), path.join(dir, "allowed", "dangling"));
  assert.throws(() => paths.real(path.join(dir, "allowed", "dangling")), /is a symlink to a missing target/);
  assert.throws(() => paths.real(path.join(dir, "allowed", "dangling", "sub")), /is a symlink to a missing target/);
  fs.symlinkSync(path.join(dir, "allowed", "loop"), path.join(dir, "allowed", "loop"));
  assert.throws(() => paths.real(path.join(dir, "allowed", "loop", "x")), /ELOOP/);
});

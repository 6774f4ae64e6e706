// Secret files as the controller reads them (src/adapters/host-files.ts): a regular file's text;
// a FIFO, a device or a huge file is refused at once, never blocking or filling memory.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { HostSecretFiles } from "../../../src/adapters/host-files.js";
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

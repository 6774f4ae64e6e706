// The pieces together, with the real tools: a VM's pinned key from ssh-keygen
// (src/adapters/host-keys.ts), its seed rendered (src/cloudinit/seed.ts) and built as an ISO and
// as VFAT (src/adapters/seed-media.ts), then read back off the media: the host key the guest
// will get is the one in the VM's known_hosts file, and its private half is a working key.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { HostKeyFiles, hostKeyDirs, knownHostsFile } from "../../../src/adapters/host-keys.js";
import { HostSeedMedia } from "../../../src/adapters/seed-media.js";
import { cloudInit } from "../../../src/api/virtualmachine.js";
import { renderSeed } from "../../../src/cloudinit/seed.js";
import { tempDir } from "../store/helpers.js";

test("a seed built from a real pinned key: the key on the medium is the VM's known_hosts key, and works", async () => {
  const root = await tempDir("kvmctl-seed-build-");
  const dataDir = path.join(root, ".kvmctl");
  fs.mkdirSync(dataDir, { mode: 0o700 });
  const hostKey = await new HostKeyFiles(hostKeyDirs(dataDir)).ensure("web");
  const seed = renderSeed({
    name: "web",
    uuid: "5f0c2a8e-1b7d-5e3a-9c4f-0a1b2c3d4e5f",
    cloudInit: cloudInit.parse({ sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIUserKey alice@laptop"], userData: "#cloud-config\nwrite_files: [{path: /etc/marker, content: seeded}]\n" }),
    hostKey,
  });
  const media = new HostSeedMedia();
  const iso = path.join(root, "web-seed.iso");
  const img = path.join(root, "web-seed.img");
  await media.build(iso, "iso", seed.files);
  await media.build(img, "vfat", seed.files);
  const env = { ...process.env, MTOOLSRC: "/dev/null", MTOOLS_SKIP_CHECK: "1" };
  const userData = {
    iso: execFileSync("isoinfo", ["-J", "-x", "/user-data", "-i", iso], { encoding: "utf8" }),
    vfat: execFileSync("mtype", ["-i", img, "::/user-data"], { encoding: "utf8", env }),
  };
  assert.equal(userData.iso, userData.vfat);
  const config = parse(userData.iso, { version: "1.1" }) as { ssh_keys: { ed25519_private: string; ed25519_public: string }; write_files: unknown[] };
  const known = fs.readFileSync(knownHostsFile(dataDir, "web"), "utf8").trim().split(" ");
  assert.deepEqual(config.ssh_keys.ed25519_public.split(" ").slice(0, 2), known.slice(1));
  assert.equal(config.write_files.length, 1);
  // The private key on the medium is a key ssh-keygen reads, and its public half is the pinned one.
  const extracted = path.join(root, "extracted");
  fs.writeFileSync(extracted, config.ssh_keys.ed25519_private, { mode: 0o600 });
  assert.deepEqual(execFileSync("ssh-keygen", ["-y", "-f", extracted], { encoding: "utf8" }).trim().split(" ").slice(0, 2), known.slice(1));
  const metaData = parse(execFileSync("isoinfo", ["-J", "-x", "/meta-data", "-i", iso], { encoding: "utf8" }));
  assert.deepEqual(metaData, { "instance-id": "iid-5f0c2a8e-1b7d-5e3a-9c4f-0a1b2c3d4e5f", "local-hostname": "web" });
});

// The HostKeys port as src/adapters/host-keys.ts runs it, with the real ssh-keygen (a missing
// tool fails these tests): one ed25519 key per VM, made once and reused, the private key 0600 in
// a 0700 directory and never shown by JSON.stringify or util.inspect, the public key and the
// VM's known_hosts file readable; a key that may have leaked, and symlinks, refused.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { inspect } from "node:util";
import { HostKeyFiles, hostKeyDirs, knownHostsFile } from "../../../src/adapters/host-keys.js";
import { tempDir } from "../store/helpers.js";

const mode = (file: string) => fs.lstatSync(file).mode & 0o777;

async function setup() {
  const dataDir = path.join(await tempDir("kvmctl-host-keys-"), ".kvmctl");
  fs.mkdirSync(dataDir, { mode: 0o700 });
  const dirs = hostKeyDirs(dataDir);
  return { dataDir, dirs, keys: new HostKeyFiles(dirs), privateFile: (vm: string) => path.join(dirs.keys, vm, "ssh_host_ed25519_key") };
}

test("a VM's key: made by ssh-keygen once, then reused; files and modes; the private half never shown", async () => {
  const { dataDir, dirs, keys, privateFile } = await setup();
  assert.equal(await keys.publicKey("web"), undefined);
  const pair = await keys.ensure("web");
  assert.match(pair.publicKey, /^ssh-ed25519 [A-Za-z0-9+/]+=* kvmctl-web\n$/);
  assert.match(pair.privateKey, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
  // The private key on disk is the one returned, and its public half is the one returned.
  assert.equal(fs.readFileSync(privateFile("web"), "utf8"), pair.privateKey);
  const derived = execFileSync("ssh-keygen", ["-y", "-f", privateFile("web")], { encoding: "utf8" });
  assert.equal(derived.split(" ").slice(0, 2).join(" "), pair.publicKey.split(" ").slice(0, 2).join(" "));
  assert.match(execFileSync("ssh-keygen", ["-l", "-f", privateFile("web")], { encoding: "utf8" }), /^256 SHA256:\S+ kvmctl-web \(ED25519\)$/m);
  // Modes: the secret private, the public parts readable.
  assert.equal(mode(dirs.keys), 0o700);
  assert.equal(mode(path.join(dirs.keys, "web")), 0o700);
  assert.equal(mode(privateFile("web")), 0o600);
  assert.equal(mode(`${privateFile("web")}.pub`), 0o644);
  assert.equal(mode(dirs.knownHosts), 0o755);
  assert.equal(mode(knownHostsFile(dataDir, "web")), 0o644);
  assert.equal(fs.readFileSync(knownHostsFile(dataDir, "web"), "utf8"), `kvmctl-web ${pair.publicKey.split(" ").slice(0, 2).join(" ")}\n`);
  assert.deepEqual(fs.readdirSync(path.join(dirs.keys, "web")).sort(), ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"], "no temp key left");
  // Not in a log line or a status by accident.
  assert.ok(!JSON.stringify(pair).includes("PRIVATE KEY"));
  assert.ok(!inspect(pair).includes("PRIVATE KEY"));
  assert.ok(!JSON.stringify({ ...pair }).includes("PRIVATE KEY"));

  // Reused: same pair, same file (not rewritten).
  const inode = fs.statSync(privateFile("web")).ino;
  const again = await keys.ensure("web");
  assert.equal(again.publicKey, pair.publicKey);
  assert.equal(again.privateKey, pair.privateKey);
  assert.equal(fs.statSync(privateFile("web")).ino, inode);
  assert.equal(await keys.publicKey("web"), pair.publicKey);
  // A new adapter over the same directory (a restarted controller) finds it too.
  assert.equal((await new HostKeyFiles(dirs).ensure("web")).publicKey, pair.publicKey);

  // Another VM, another key.
  const other = await keys.ensure("db");
  assert.notEqual(other.publicKey.split(" ")[1], pair.publicKey.split(" ")[1]);
  assert.match(other.publicKey, / kvmctl-db\n$/);
});

test("concurrent ensure() of one VM agree on one key", async () => {
  const { dirs, keys, privateFile } = await setup();
  const pairs = await Promise.all([keys.ensure("web"), keys.ensure("web"), new HostKeyFiles(dirs).ensure("web")]);
  assert.equal(new Set(pairs.map((p) => p.publicKey)).size, 1);
  assert.equal(new Set(pairs.map((p) => p.privateKey)).size, 1);
  assert.equal(fs.readFileSync(privateFile("web"), "utf8"), pairs[0]!.privateKey);
});

test("a lost or edited public key and known_hosts file are repaired from the private key", async () => {
  const { dataDir, keys, privateFile } = await setup();
  const pair = await keys.ensure("web");
  fs.rmSync(`${privateFile("web")}.pub`);
  fs.writeFileSync(knownHostsFile(dataDir, "web"), "kvmctl-web ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIForged\n");
  assert.equal((await keys.ensure("web")).publicKey, pair.publicKey);
  assert.equal(fs.readFileSync(`${privateFile("web")}.pub`, "utf8"), pair.publicKey);
  assert.equal(fs.readFileSync(knownHostsFile(dataDir, "web"), "utf8"), `kvmctl-web ${pair.publicKey.split(" ").slice(0, 2).join(" ")}\n`);
});

test("a private key others can read is refused (not silently re-pinned); symlinks are never followed", async () => {
  const { dataDir, dirs, keys, privateFile } = await setup();
  await keys.ensure("web");
  fs.chmodSync(privateFile("web"), 0o640);
  await assert.rejects(keys.ensure("web"), /is readable or writable by others \(mode 640\): a host key that may have leaked is no pin/);
  fs.chmodSync(privateFile("web"), 0o600);
  await keys.ensure("web");

  // A symlink in place of a VM's private key, of its directory, of its known_hosts file.
  const victim = path.join(path.dirname(dataDir), "victim");
  fs.writeFileSync(victim, "precious\n", { mode: 0o644 });
  fs.mkdirSync(path.join(dirs.keys, "linked"), { mode: 0o700 });
  fs.symlinkSync(victim, privateFile("linked"));
  await assert.rejects(keys.ensure("linked"), /ssh_host_ed25519_key: is a symlink/);
  fs.symlinkSync(path.dirname(victim), path.join(dirs.keys, "dirlink"));
  await assert.rejects(keys.ensure("dirlink"), /dirlink: is a symlink/);
  fs.symlinkSync(victim, knownHostsFile(dataDir, "hosts"));
  await assert.rejects(keys.ensure("hosts"), /known_hosts\/hosts: is a symlink/);
  assert.equal(fs.readFileSync(victim, "utf8"), "precious\n");
  assert.equal(mode(victim), 0o644);
  assert.deepEqual(fs.readdirSync(path.dirname(victim)).sort(), [".kvmctl", "victim"]);

  // Names that are not VM names never become paths.
  await assert.rejects(keys.ensure("../escape"), /is not a VM name/);
  assert.throws(() => knownHostsFile(dataDir, "a/b"), /is not a VM name/);
});

test("remove() forgets a VM's key and known_hosts file (a symlink is removed itself, its target kept)", async () => {
  const { dataDir, dirs, keys } = await setup();
  const first = await keys.ensure("web");
  await keys.remove("web");
  assert.ok(!fs.existsSync(path.join(dirs.keys, "web")));
  assert.ok(!fs.existsSync(knownHostsFile(dataDir, "web")));
  assert.equal(await keys.publicKey("web"), undefined);
  assert.notEqual((await keys.ensure("web")).publicKey, first.publicKey, "a new key after removal");
  const victim = path.join(path.dirname(dataDir), "victim");
  fs.mkdirSync(victim);
  fs.writeFileSync(path.join(victim, "keep"), "x");
  fs.symlinkSync(victim, path.join(dirs.keys, "linked"));
  await keys.remove("linked");
  assert.ok(fs.existsSync(path.join(victim, "keep")));
  await keys.remove("never-made");
});

test("a killed generation's temp directory (a private key) goes once it is old", async () => {
  const { dirs, keys } = await setup();
  const vmDir = path.join(dirs.keys, "web");
  fs.mkdirSync(dirs.keys, { mode: 0o700 });
  fs.mkdirSync(vmDir, { mode: 0o700 });
  const stale = path.join(vmDir, ".keygen-AbC123");
  fs.mkdirSync(stale, { mode: 0o700 });
  fs.writeFileSync(path.join(stale, "key"), "-----BEGIN OPENSSH PRIVATE KEY-----\n", { mode: 0o600 });
  const old = Date.now() / 1000 - 3600;
  fs.utimesSync(stale, old, old);
  await keys.ensure("web");
  assert.deepEqual(fs.readdirSync(vmDir).sort(), ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]);
});

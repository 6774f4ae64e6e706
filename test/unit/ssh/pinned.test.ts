// The known_hosts line and the OpenSSH config block of a VM's pinned host key
// (src/ssh/pinned.ts), read back by the real OpenSSH tools: `ssh -G` says what ssh would do with
// the block (nothing is connected to), `ssh-keygen -F` finds the key under the VM's alias.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { hostKeyAlias, knownHostsLine, sshConfigBlock, type SshConfigEntry } from "../../../src/ssh/pinned.js";
import { tempDir } from "../store/helpers.js";

const PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDmT99o2YKA3v7Jixm9+4LHXu8xOTgM8GRf/pnP5VNy6 kvmctl-web\n";

/** What `ssh -G` resolves for `host` from `config` alone: option → values (lower-case names). */
function resolved(dir: string, config: string, host: string): Map<string, string[]> {
  const file = path.join(dir, "config");
  fs.writeFileSync(file, config);
  const out = execFileSync("ssh", ["-G", "-F", file, host], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const options = new Map<string, string[]>();
  for (const line of out.split("\n").filter(Boolean)) {
    const at = line.indexOf(" ");
    const key = line.slice(0, at).toLowerCase();
    options.set(key, [...(options.get(key) ?? []), line.slice(at + 1)]);
  }
  return options;
}

test("the known_hosts line: the key under the VM's alias, without its comment, found by ssh-keygen -F", async () => {
  const dir = await tempDir("kvmctl-known-hosts-");
  const line = knownHostsLine("web", PUB);
  assert.equal(line.split(" ").length, 3);
  const file = path.join(dir, "known_hosts");
  fs.writeFileSync(file, line);
  const found = execFileSync("ssh-keygen", ["-F", hostKeyAlias("web"), "-f", file], { encoding: "utf8" });
  assert.match(found, /^kvmctl-web ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDmT99o2YKA3v7Jixm9\+4LHXu8xOTgM8GRf\/pnP5VNy6$/m);
  assert.throws(() => execFileSync("ssh-keygen", ["-F", "[127.0.0.1]:2222", "-f", file], { stdio: "pipe" }), "not under host:port");
  assert.throws(() => knownHostsLine("web", "not a key"), /not an OpenSSH public key line/);
  assert.throws(() => hostKeyAlias("Web_1"), /not a VM name/);
});

test("a pinned VM's config block, as ssh resolves it: StrictHostKeyChecking yes, its own known_hosts file, the alias", async () => {
  const dir = await tempDir("kvmctl-ssh-config-");
  const entry: SshConfigEntry = { name: "web", host: "127.0.0.1", port: 2222, user: "debian", identityFile: path.join(dir, "my keys", "id_ed25519"), knownHostsFile: path.join(dir, "state dir", "known_hosts", "web"), pinned: true };
  const block = sshConfigBlock(entry);
  const options = resolved(dir, block, "web");
  assert.deepEqual(options.get("hostname"), ["127.0.0.1"]);
  assert.deepEqual(options.get("port"), ["2222"]);
  assert.deepEqual(options.get("user"), ["debian"]);
  assert.deepEqual(options.get("identityfile"), [entry.identityFile]);
  assert.deepEqual(options.get("identitiesonly"), ["yes"]);
  assert.deepEqual(options.get("userknownhostsfile"), [entry.knownHostsFile]);
  assert.deepEqual(options.get("stricthostkeychecking"), ["true"]);
  assert.deepEqual(options.get("hostkeyalias"), ["kvmctl-web"]);
  assert.ok(!block.includes("trust"), "no trust-on-first-use remark on a pinned VM");
});

test("an unpinned VM's block says so and trusts the first key (accept-new); blocks for several VMs stay apart", async () => {
  const dir = await tempDir("kvmctl-ssh-config-");
  const tofu = sshConfigBlock({ name: "old", host: "::1", port: 2200, knownHostsFile: path.join(dir, "old"), pinned: false });
  assert.match(tofu, /^# old: no pinned host key .*the first key seen is trusted\n/);
  const config = [tofu, sshConfigBlock({ name: "web", host: "127.0.0.1", port: 2222, knownHostsFile: path.join(dir, "web"), pinned: true })].join("\n");
  const old = resolved(dir, config, "old");
  assert.deepEqual(old.get("hostname"), ["::1"]);
  assert.deepEqual(old.get("port"), ["2200"]);
  assert.deepEqual(old.get("stricthostkeychecking"), ["accept-new"]);
  assert.deepEqual(old.get("hostkeyalias"), ["kvmctl-old"]);
  assert.deepEqual(resolved(dir, config, "web").get("port"), ["2222"]);
  assert.throws(() => sshConfigBlock({ name: "web", host: "127.0.0.1", port: 22, knownHostsFile: '/tmp/a"b', pinned: true }), /cannot be written in an OpenSSH config file/);
});

// `kvmctl ssh-config` through the real CLI, its output read back by `ssh -G` (what ssh would
// do with it; nothing is connected to): a VM whose host key kvmctl pinned gets
// StrictHostKeyChecking yes with the known_hosts file under the data directory; a VM without
// one keeps trust on first use with `kvmctl ssh`'s own known-hosts file, said in a comment.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import { HostKeyFiles, hostKeyDirs, knownHostsFile } from "../../src/adapters/host-keys.js";
import { kvmctl, tempDir } from "./helpers.js";

const root = tempDir("ssh-config");
after(() => fs.rmSync(root, { recursive: true, force: true }));

const vm = (name: string, spec: string) => `---\napiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata: {name: ${name}}\nspec:\n${spec}`;

function resolved(config: string, host: string): Map<string, string> {
  const file = path.join(root, `config-${host}`);
  fs.writeFileSync(file, config);
  const out = execFileSync("ssh", ["-G", "-F", file, host], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return new Map(out.split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf(" ")).toLowerCase(), l.slice(l.indexOf(" ") + 1)] as const));
}

test("ssh-config: pinned and unpinned VMs, one or all, and the refusals", async () => {
  const dir = path.join(root, "state");
  const xdg = path.join(root, "xdg");
  fs.mkdirSync(dir);
  fs.writeFileSync(
    path.join(dir, "vms.yaml"),
    vm("web", "  interfaces:\n    - user: {portForwards: [{hostPort: 2222, guestPort: 22}]}\n  cloudInit: {sshAuthorizedKeys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey a@b\"]}\n") +
      vm("old", "  interfaces:\n    - user: {portForwards: [{hostPort: 2200, guestPort: 22, address: 0.0.0.0}]}\n") +
      vm("quiet", "  cpus: 1\n"),
  );
  // The controller would have pinned web's key (src/adapters/host-keys.ts) into the data directory.
  const dataDir = path.join(dir, ".kvmctl");
  fs.mkdirSync(dataDir, { mode: 0o700 });
  const pair = await new HostKeyFiles(hostKeyDirs(dataDir)).ensure("web");
  const env = { XDG_STATE_HOME: xdg };

  const all = await kvmctl(["--dir", dir, "ssh-config", "-l", "debian", "-i", "keys/id_ed25519"], { env });
  assert.equal(all.exitCode, 0, all.stderr);
  assert.match(all.stderr, /no SSH endpoint .*: quiet/);
  assert.ok(!all.stdout.includes("PRIVATE"), "no private key in the output");
  const web = resolved(all.stdout, "web");
  assert.equal(web.get("hostname"), "127.0.0.1");
  assert.equal(web.get("port"), "2222");
  assert.equal(web.get("user"), "debian");
  assert.equal(web.get("identityfile"), path.resolve("keys/id_ed25519"));
  assert.equal(web.get("stricthostkeychecking"), "true");
  assert.equal(web.get("hostkeyalias"), "kvmctl-web");
  assert.equal(web.get("userknownhostsfile"), knownHostsFile(dataDir, "web"));
  // The file ssh is pointed at holds the pinned key under the alias.
  const found = execFileSync("ssh-keygen", ["-F", "kvmctl-web", "-f", knownHostsFile(dataDir, "web")], { encoding: "utf8" });
  assert.ok(found.includes(pair.publicKey.split(" ")[1]!));

  const old = resolved(all.stdout, "old");
  assert.equal(old.get("hostname"), "127.0.0.1", "a forward on every address is reached on loopback");
  assert.equal(old.get("port"), "2200");
  assert.equal(old.get("stricthostkeychecking"), "accept-new");
  assert.ok(old.get("userknownhostsfile")!.startsWith(path.join(xdg, "kvmctl", "known_hosts")), old.get("userknownhostsfile"));
  assert.match(all.stdout, /^# old: no pinned host key/m);

  const one = await kvmctl(["--dir", dir, "ssh-config", "web"], { env });
  assert.equal(one.exitCode, 0, one.stderr);
  assert.equal(resolved(one.stdout, "web").get("user"), "root", "kvmctl ssh's default login");
  assert.ok(!one.stdout.includes("Host old"));

  const none = await kvmctl(["--dir", dir, "ssh-config", "quiet"], { env });
  assert.equal(none.exitCode, 1);
  assert.match(none.stderr, /virtualmachine "quiet" has no SSH endpoint/);
  const missing = await kvmctl(["--dir", dir, "ssh-config", "nope"], { env });
  assert.equal(missing.exitCode, 1);
  assert.match(missing.stderr, /virtualmachines "nope" not found/);
});

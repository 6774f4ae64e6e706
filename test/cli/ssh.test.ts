// `kvmctl ssh` through the real CLI, with a stand-in `ssh` first on PATH that prints the
// arguments it was given (nothing is connected to): a VM whose host key kvmctl pinned is
// reached with StrictHostKeyChecking=yes and its own known_hosts file; any other keeps trust on
// first use, said once on stderr; the login is -l, else spec.cloudInit.sshUser, else root.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import { HostKeyFiles, hostKeyDirs, knownHostsFile } from "../../src/adapters/host-keys.js";
import { kvmctl, tempDir } from "./helpers.js";

const root = tempDir("ssh");
after(() => fs.rmSync(root, { recursive: true, force: true }));

const vm = (name: string, spec: string) => `---\napiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata: {name: ${name}}\nspec:\n${spec}`;

test("kvmctl ssh: pinned key → StrictHostKeyChecking=yes with the VM's known_hosts; unpinned → accept-new, said on first use", async () => {
  const dir = path.join(root, "state");
  const xdg = path.join(root, "xdg");
  const bin = path.join(root, "bin");
  fs.mkdirSync(dir);
  fs.mkdirSync(bin);
  // The stand-in ssh: its arguments, one a line, on stdout.
  fs.writeFileSync(path.join(bin, "ssh"), `#!${process.execPath}\nprocess.stdout.write(process.argv.slice(2).join("\\n") + "\\n");\n`, { mode: 0o755 });
  fs.writeFileSync(
    path.join(dir, "vms.yaml"),
    vm("web", "  interfaces:\n    - user: {portForwards: [{hostPort: 2222, guestPort: 22}]}\n  cloudInit: {sshUser: debian}\n") +
      vm("old", "  interfaces:\n    - user: {portForwards: [{hostPort: 2200, guestPort: 22}]}\n"),
  );
  const dataDir = path.join(dir, ".kvmctl");
  fs.mkdirSync(dataDir, { mode: 0o700 });
  await new HostKeyFiles(hostKeyDirs(dataDir)).ensure("web");
  const env = { XDG_STATE_HOME: xdg, PATH: `${bin}:${process.env.PATH}` };

  const web = await kvmctl(["--dir", dir, "ssh", "web", "--", "hostname"], { env });
  assert.equal(web.exitCode, 0, web.stderr);
  assert.deepEqual(web.stdout.trim().split("\n"), [
    "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${knownHostsFile(dataDir, "web")}`,
    "-o", "HostKeyAlias=kvmctl-web",
    "-p", "2222",
    "-l", "debian",
    "127.0.0.1",
    "--", "hostname",
  ]);
  assert.equal(web.stderr, "", "nothing to say for a pinned key");
  const asRoot = await kvmctl(["--dir", dir, "ssh", "web", "-l", "root"], { env });
  assert.ok(asRoot.stdout.split("\n").join(" ").includes("-l root"), "-l wins over sshUser");

  const old = await kvmctl(["--dir", dir, "ssh", "old"], { env });
  assert.equal(old.exitCode, 0, old.stderr);
  const args = old.stdout.trim().split("\n");
  assert.ok(args.includes("StrictHostKeyChecking=accept-new"));
  assert.ok(args.some((a) => a.startsWith(`UserKnownHostsFile=${path.join(xdg, "kvmctl", "known_hosts")}`)));
  assert.deepEqual(args.slice(-3), ["-l", "root", "127.0.0.1"]);
  assert.match(old.stderr, /virtualmachine "old" has no pinned host key .*trusting the key it shows first \(StrictHostKeyChecking=accept-new/);
  // Once the first key is kept (ssh wrote the file), nothing more is said.
  const tofu = args.find((a) => a.startsWith("UserKnownHostsFile="))!.slice("UserKnownHostsFile=".length);
  fs.writeFileSync(tofu, "kvmctl-old ssh-ed25519 AAAA\n");
  const again = await kvmctl(["--dir", dir, "ssh", "old"], { env });
  assert.equal(again.stderr, "");
});

// `kvmctl ssh-config [NAME...]`: OpenSSH config blocks for VMs (like `vagrant ssh-config`), so
// plain ssh, scp, rsync and Ansible reach them the way `kvmctl ssh` does:
//   kvmctl ssh-config >> ~/.ssh/config.d/kvmctl   or   ssh -F <(kvmctl ssh-config web) web
// The endpoint comes from the spec (src/api/ssh-endpoint.ts), as for `kvmctl ssh`. A VM whose
// host key kvmctl pinned (its known_hosts file exists under the data directory,
// src/adapters/host-keys.ts) gets StrictHostKeyChecking yes with that file; any other VM keeps
// trust on first use (accept-new) with `kvmctl ssh`'s own per-VM known-hosts file, and its
// block says so in a comment.
import fs from "node:fs";
import path from "node:path";
import { sshEndpointOf } from "../../api/ssh-endpoint.js";
import type { VirtualMachineSpec } from "../../api/virtualmachine.js";
import { knownHostsFile, sshConfigBlock } from "../../ssh/pinned.js";
import type { CliContext } from "../context.js";
import { CliError } from "../errors.js";
import { knownHostsDir, loginFor } from "./ssh.js";

export interface SshConfigOptions {
  identity?: string;
  /** Default: each VM's spec.cloudInit.sshUser, else root. */
  login?: string;
}

function isRegularFile(file: string): boolean {
  return fs.lstatSync(file, { throwIfNoEntry: false })?.isFile() === true;
}

export async function runSshConfig(ctx: CliContext, names: string[], options: SshConfigOptions): Promise<void> {
  const store = await ctx.openStore("read");
  const snapshot = await store.read();
  const vms = [...snapshot.objects.values()].filter((o) => o.kind === "VirtualMachine");
  const wanted = names.length > 0 ? [...new Set(names)] : vms.map((o) => o.name).sort();
  const blocks: string[] = [];
  const skipped: string[] = [];
  for (const name of wanted) {
    const stored = snapshot.objects.get(`VirtualMachine/${name}`);
    if (!stored) throw new CliError(`virtualmachines "${name}" not found in ${store.dir}`);
    const spec = (stored.object as { spec: VirtualMachineSpec }).spec;
    const endpoint = sshEndpointOf(spec);
    if (!endpoint) {
      if (names.length > 0) throw new CliError(`virtualmachine "${name}" has no SSH endpoint (it needs a user interface with a portForward to guest port 22)`);
      skipped.push(name);
      continue;
    }
    const pinnedFile = knownHostsFile(store.dataDir, name);
    const pinned = isRegularFile(pinnedFile);
    blocks.push(
      sshConfigBlock({
        name,
        host: endpoint.host,
        port: endpoint.port,
        user: loginFor(spec, options.login),
        ...(options.identity ? { identityFile: path.resolve(options.identity) } : {}),
        knownHostsFile: pinned ? pinnedFile : path.join(knownHostsDir(ctx.dir), name),
        pinned,
      }),
    );
  }
  if (skipped.length > 0) process.stderr.write(`# no SSH endpoint (no user interface forwarding to guest port 22): ${skipped.join(", ")}\n`);
  if (blocks.length === 0) throw new CliError(`no virtualmachine in ${store.dir} has an SSH endpoint`);
  process.stdout.write(blocks.join("\n"));
}

// `kvmctl ssh NAME` and `kvmctl console NAME`: reach a VM as its spec says. The SSH endpoint
// comes from the spec (a user interface's forward to guest port 22), never from the status
// block anyone can edit by hand. SSH keeps a known-hosts file per VM in the user's own state
// directory (outside the manifest tree, which others may write), so a rebuilt guest's new host
// key is a per-VM matter and never touches ~/.ssh/known_hosts.
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { sshEndpointOf, type SshEndpoint } from "../../api/ssh-endpoint.js";
import type { VirtualMachineSpec } from "../../api/virtualmachine.js";
import type { CliContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";

export interface SshOptions {
  identity?: string;
  login: string;
}

async function vmSpec(ctx: CliContext, name: string): Promise<VirtualMachineSpec> {
  const store = await ctx.openStore("read");
  const snapshot = await store.read();
  const stored = snapshot.objects.get(`VirtualMachine/${name}`);
  if (!stored) throw new CliError(`virtualmachines "${name}" not found in ${store.dir}`);
  return (stored.object as { spec: VirtualMachineSpec }).spec;
}

/**
 * This user's known-hosts directory for one manifest directory:
 * `$XDG_STATE_HOME/kvmctl/known_hosts/<hash of the directory's real path>/` (default
 * ~/.local/state), made 0700.
 */
function knownHostsDir(manifestDir: string): string {
  const state = process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state");
  let real = path.resolve(manifestDir);
  try {
    real = fs.realpathSync(manifestDir);
  } catch {
    // the directory was found by the read above; a race leaves its resolved path
  }
  const dir = path.join(state, "kvmctl", "known_hosts", createHash("sha256").update(real).digest("hex").slice(0, 16));
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export async function runSsh(ctx: CliContext, name: string, command: string[], options: SshOptions): Promise<void> {
  const endpoint: SshEndpoint | undefined = sshEndpointOf(await vmSpec(ctx, name));
  if (!endpoint) throw new CliError(`virtualmachine "${name}" has no SSH endpoint (it needs a user interface with a portForward to guest port 22)`);
  const args = [
    "-o", "StrictHostKeyChecking=accept-new",
    "-o", `UserKnownHostsFile=${path.join(knownHostsDir(ctx.dir), name)}`,
    "-o", `HostKeyAlias=kvmctl-${name}`,
    "-p", String(endpoint.port),
    ...(options.identity ? ["-i", options.identity] : []),
    `${options.login}@${endpoint.host}`,
    ...(command.length ? ["--", ...command] : []),
  ];
  const { execa } = await import("execa");
  const result = await execa("ssh", args, { stdio: "inherit", reject: false });
  if (result.exitCode !== 0) throw new ExitCode(result.exitCode ?? 1);
}

export async function runConsole(ctx: CliContext, name: string): Promise<void> {
  await vmSpec(ctx, name);
  // By UUID: virsh would read a name like "7" as a domain ID first (another domain's console).
  const [{ execa }, { hostPorts }] = await Promise.all([import("execa"), import("../../adapters/host-ports.js")]);
  const ports = hostPorts({ uri: ctx.connect, virshTimeoutMs: 30_000 });
  const domain = (await ports.hypervisor.observe(Date.now()).finally(() => ports.hypervisor.close())).domains.get(name);
  if (!domain) throw new CliError(`virtualmachine "${name}" has no domain in libvirt (${ctx.connect}) yet`);
  const result = await execa("virsh", ["-c", ctx.connect, "console", domain.config.uuid], { stdio: "inherit", reject: false });
  if (result.exitCode !== 0) throw new ExitCode(result.exitCode ?? 1);
}

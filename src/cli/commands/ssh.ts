// `kvmctl ssh NAME` and `kvmctl console NAME`: reach a VM as its spec says. The SSH endpoint
// comes from the spec (a user interface's forward to guest port 22), never from the status
// block anyone can edit by hand.
//
// Host keys: a VM with a cloud-init seed has a host key kvmctl made and pinned before its first
// boot (src/adapters/host-keys.ts): its known_hosts file `<dataDir>/known_hosts/<vm>` exists,
// and ssh checks the guest against it alone (StrictHostKeyChecking=yes, HostKeyAlias
// kvmctl-<vm>) — a different key is refused, also on the first connection. Any other VM keeps
// trust on first use (accept-new) with a known-hosts file per VM in the user's own state
// directory (outside the manifest tree, which others may write), so a rebuilt guest's new host
// key is a per-VM matter and never touches ~/.ssh/known_hosts; the first use says so on stderr.
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { sshEndpointOf, type SshEndpoint } from "../../api/ssh-endpoint.js";
import type { VirtualMachineSpec } from "../../api/virtualmachine.js";
import { knownHostsFile } from "../../ssh/pinned.js";
import type { CliContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";

export interface SshOptions {
  identity?: string;
  /** Default: loginFor(spec). */
  login?: string;
}

/** The user to log in as: -l, else the VM's spec.cloudInit.sshUser, else root. */
export function loginFor(spec: VirtualMachineSpec, login: string | undefined): string {
  return login ?? spec.cloudInit?.sshUser ?? "root";
}

async function vmSpecAndDataDir(ctx: CliContext, name: string): Promise<{ spec: VirtualMachineSpec; dataDir: string }> {
  const store = await ctx.openStore("read");
  const snapshot = await store.read();
  const stored = snapshot.objects.get(`VirtualMachine/${name}`);
  if (!stored) throw new CliError(`virtualmachines "${name}" not found in ${store.dir}`);
  return { spec: (stored.object as { spec: VirtualMachineSpec }).spec, dataDir: store.dataDir };
}

async function vmSpec(ctx: CliContext, name: string): Promise<VirtualMachineSpec> {
  return (await vmSpecAndDataDir(ctx, name)).spec;
}

/** A regular file (not a symlink) at `file`. */
function isRegularFile(file: string): boolean {
  try {
    return fs.lstatSync(file, { throwIfNoEntry: false })?.isFile() === true;
  } catch {
    return false; // a data directory this user cannot enter: nothing pinned that we can use
  }
}

/**
 * The host-key options for ssh: the pinned file when kvmctl pinned the VM's key, else trust
 * on first use — said on stderr when it is the first use (nothing known of the VM yet).
 */
export function hostKeyOptions(ctx: CliContext, dataDir: string, name: string, stderr: (line: string) => void): string[] {
  const pinned = knownHostsFile(dataDir, name);
  if (isRegularFile(pinned)) {
    return ["-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${pinned}`, "-o", `HostKeyAlias=kvmctl-${name}`];
  }
  const tofu = path.join(knownHostsDir(ctx.dir), name);
  if (!isRegularFile(tofu)) {
    stderr(`kvmctl: virtualmachine "${name}" has no pinned host key (no cloud-init seed, or ${pinned} cannot be read): trusting the key it shows first (StrictHostKeyChecking=accept-new, kept in ${tofu})\n`);
  }
  return ["-o", "StrictHostKeyChecking=accept-new", "-o", `UserKnownHostsFile=${tofu}`, "-o", `HostKeyAlias=kvmctl-${name}`];
}

/**
 * This user's known-hosts directory for one manifest directory:
 * `$XDG_STATE_HOME/kvmctl/known_hosts/<hash of the directory's real path>/` (default
 * ~/.local/state), made 0700.
 */
export function knownHostsDir(manifestDir: string): string {
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
  const { spec, dataDir } = await vmSpecAndDataDir(ctx, name);
  const endpoint: SshEndpoint | undefined = sshEndpointOf(spec);
  if (!endpoint) throw new CliError(`virtualmachine "${name}" has no SSH endpoint (it needs a user interface with a portForward to guest port 22)`);
  const args = [
    ...hostKeyOptions(ctx, dataDir, name, (line) => process.stderr.write(line)),
    "-p", String(endpoint.port),
    ...(options.identity ? ["-i", options.identity] : []),
    "-l", loginFor(spec, options.login),
    endpoint.host,
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

// `kvmctl ssh NAME` and `kvmctl console NAME`: reach a VM the way its status says.
// SSH keeps a known-hosts file per VM under .kvmctl/, so a rebuilt guest's new host key
// is a per-VM matter and never touches ~/.ssh/known_hosts.
import fs from "node:fs";
import path from "node:path";
import type { CliContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";

export interface SshOptions {
  identity?: string;
  login: string;
}

async function vmStatus(ctx: CliContext, name: string): Promise<{ ssh?: { host: string; port: number } }> {
  const store = await ctx.openStore();
  const snapshot = await store.read();
  const stored = snapshot.objects.get(`VirtualMachine/${name}`);
  if (!stored) throw new CliError(`virtualmachines "${name}" not found in ${store.dir}`);
  return ((stored.object as { status?: unknown }).status ?? {}) as { ssh?: { host: string; port: number } };
}

export async function runSsh(ctx: CliContext, name: string, command: string[], options: SshOptions): Promise<void> {
  const status = await vmStatus(ctx, name);
  if (!status.ssh) throw new CliError(`virtualmachine "${name}" has no SSH endpoint in its status (it needs a user interface with a portForward to guest port 22, and a running controller)`);
  const store = await ctx.openStore();
  const knownHostsDir = path.join(store.dataDir, "known_hosts");
  fs.mkdirSync(knownHostsDir, { recursive: true });
  const args = [
    "-o", "StrictHostKeyChecking=accept-new",
    "-o", `UserKnownHostsFile=${path.join(knownHostsDir, name)}`,
    "-o", `HostKeyAlias=kvmctl-${name}`,
    "-p", String(status.ssh.port),
    ...(options.identity ? ["-i", options.identity] : []),
    `${options.login}@${status.ssh.host === "0.0.0.0" ? "127.0.0.1" : status.ssh.host}`,
    ...(command.length ? ["--", ...command] : []),
  ];
  const { execa } = await import("execa");
  const result = await execa("ssh", args, { stdio: "inherit", reject: false });
  if (result.exitCode !== 0) throw new ExitCode(result.exitCode ?? 1);
}

export async function runConsole(ctx: CliContext, name: string): Promise<void> {
  await vmStatus(ctx, name);
  // By UUID: virsh would read a name like "7" as a domain ID first (another domain's console).
  const [{ execa }, { hostPorts }] = await Promise.all([import("execa"), import("../../adapters/host-ports.js")]);
  const ports = hostPorts({ uri: ctx.connect, virshTimeoutMs: 30_000 });
  const domain = (await ports.hypervisor.observe(Date.now()).finally(() => ports.hypervisor.close())).domains.get(name);
  if (!domain) throw new CliError(`virtualmachine "${name}" has no domain in libvirt (${ctx.connect}) yet`);
  const result = await execa("virsh", ["-c", ctx.connect, "console", domain.config.uuid], { stdio: "inherit", reject: false });
  if (result.exitCode !== 0) throw new ExitCode(result.exitCode ?? 1);
}

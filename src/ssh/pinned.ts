// Pinned SSH host keys, as text: where a data directory keeps them, the known_hosts line of a
// VM's kvmctl-made host key and the OpenSSH config block (like `vagrant ssh-config`) that
// reaches the VM with it. Pure (paths computed, never touched): the key files are
// src/adapters/host-keys.ts's, the endpoint src/api/ssh-endpoint.ts's.
//
// A VM's known_hosts entry is under `HostKeyAlias` `kvmctl-<name>`, not `[host]:port`: every
// VM is reached on loopback, on ports that are reused, so host:port says nothing about which
// guest answers; the alias does, and each VM has its own known_hosts file besides.

import path from "node:path";

const VM_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface HostKeyDirs {
  /** Private (0700): one 0700 directory per VM holding its key pair. */
  keys: string;
  /** Public (0755): one known_hosts file per VM, named after it. */
  knownHosts: string;
}

/** Where a data directory (`<stateRoot>/.kvmctl`) keeps the host keys and their known_hosts files. */
export function hostKeyDirs(dataDir: string): HostKeyDirs {
  return { keys: path.join(dataDir, "host-keys"), knownHosts: path.join(dataDir, "known_hosts") };
}

/** The known_hosts file of `vm` under a data directory (what `kvmctl ssh-config` points at). */
export function knownHostsFile(dataDir: string, vm: string): string {
  hostKeyAlias(vm); // a VM name, never a path
  return path.join(hostKeyDirs(dataDir).knownHosts, vm);
}

export function hostKeyAlias(vm: string): string {
  if (!VM_NAME.test(vm)) throw new Error(`${JSON.stringify(vm)} is not a VM name (a DNS-1123 label)`);
  return `kvmctl-${vm}`;
}

/** `kvmctl-<vm> ssh-ed25519 AAAA...` + newline: the public key without its comment, under the VM's alias. */
export function knownHostsLine(vm: string, publicKey: string): string {
  const match = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)) ([A-Za-z0-9+/]+={0,2})(?: .*)?\n?$/.exec(publicKey);
  if (!match) throw new Error(`the host key of ${vm} is not an OpenSSH public key line`);
  return `${hostKeyAlias(vm)} ${match[1]} ${match[2]}\n`;
}

export interface SshConfigEntry {
  /** The VM's name: the `Host` pattern, and the `HostKeyAlias` (`kvmctl-<name>`). */
  name: string;
  /** Where the guest's port 22 is reached (src/api/ssh-endpoint.ts). */
  host: string;
  port: number;
  user?: string;
  identityFile?: string;
  knownHostsFile: string;
  /**
   * true: `knownHostsFile` holds the VM's pinned key (StrictHostKeyChecking yes). false: none
   * is pinned (no cloud-init seed), the first key seen is trusted (accept-new) — said in a comment.
   */
  pinned: boolean;
}

/** A value for ssh_config: quoted when it has blanks; refused when ssh_config cannot hold it. */
function configValue(value: string, what: string): string {
  if (value === "" || /["\r\n\0]/.test(value)) throw new Error(`${what} ${JSON.stringify(value)} cannot be written in an OpenSSH config file`);
  return /[\s#]/.test(value) ? `"${value}"` : value;
}

/** One `Host` block, two-space indented, ending in a newline. */
export function sshConfigBlock(entry: SshConfigEntry): string {
  const lines = [
    ...(entry.pinned ? [] : [`# ${entry.name}: no pinned host key (the VM has no cloud-init seed): the first key seen is trusted`]),
    `Host ${configValue(entry.name, "host name")}`,
    `  HostName ${configValue(entry.host, "address")}`,
    `  Port ${entry.port}`,
    ...(entry.user !== undefined ? [`  User ${configValue(entry.user, "user")}`] : []),
    ...(entry.identityFile !== undefined ? [`  IdentityFile ${configValue(entry.identityFile, "identity file")}`, "  IdentitiesOnly yes"] : []),
    `  UserKnownHostsFile ${configValue(entry.knownHostsFile, "known-hosts file")}`,
    `  StrictHostKeyChecking ${entry.pinned ? "yes" : "accept-new"}`,
    `  HostKeyAlias ${hostKeyAlias(entry.name)}`,
  ];
  return lines.join("\n") + "\n";
}

// Where a VM's SSH is reached from the host, derived from its spec (a user-mode interface's
// forward to guest port 22). Kept free of zod so `kvmctl ssh` loads nothing heavy.
import type { VirtualMachineSpec } from "./virtualmachine.js";

export type SshEndpoint = { host: string; port: number };

/** The host address and port that reach the guest's port 22, or undefined when none does. */
export function sshEndpointOf(spec: Pick<VirtualMachineSpec, "interfaces">): SshEndpoint | undefined {
  const forward = spec.interfaces.flatMap((nic) => nic.user?.portForwards ?? []).find((pf) => pf.guestPort === 22 && pf.protocol === "tcp");
  if (!forward) return undefined;
  // A forward on every address is reached on loopback.
  const host = forward.address === "0.0.0.0" ? "127.0.0.1" : forward.address === "::" ? "::1" : forward.address;
  return { host, port: forward.hostPort };
}

// What the Hypervisor port reports: one consistent picture of libvirt's domains, pools,
// volumes and networks, as facts parsed from their XML (src/libvirt). Pure types.
import type { DomainFacts, NetworkFacts, PoolFacts, VolumeFacts } from "../libvirt/index.js";

export interface LiveDomain {
  /** Persistent (next boot) definition. */
  config: DomainFacts;
  /** Running definition, when active. */
  running?: DomainFacts;
  /** virsh domstate --reason: "running (booted)", "shut off (destroyed)" ... */
  state: string;
  reason: string;
  autostart: boolean;
  persistent: boolean;
}

export interface LivePool {
  facts: PoolFacts;
  active: boolean;
  autostart: boolean;
  /** By volume name; only for active pools. */
  volumes: Map<string, VolumeFacts>;
}

export interface LiveNetwork {
  uuid: string;
  name: string;
  /** Persistent (next start) definition. */
  config: NetworkFacts;
  /** Running definition, when active (the bridge libvirt picked is here). */
  running?: NetworkFacts;
  active: boolean;
  autostart: boolean;
  /** False once `net-undefine` ran on the running network: it is gone at its next stop. */
  persistent: boolean;
}

export interface LiveState {
  /** When the reading of this picture started (ms epoch). */
  takenAt: number;
  domains: Map<string, LiveDomain>;
  pools: Map<string, LivePool>;
  networks: Map<string, LiveNetwork>;
}

/** A DHCP lease a network's dnsmasq handed out (IPv4 or IPv6, address without prefix). */
export type Lease = {
  mac: string;
  ip: string;
  hostname?: string;
  expiry?: string;
};

// The ports: what the controllers may ask of the host. The composition root
// (src/adapters/host-ports.ts) builds the real ones; tests pass fakes.
import type { Clock } from "../runtime/clock.js";
import type { Hypervisor } from "./hypervisor.js";
import type { Downloads, FirewallHost, HostKeys, ImageTool, NetDevices, PathResolver, QemuConfig, SecretFiles, SeedMedia, Sysctl, UnattendMedia } from "./host.js";

export * from "./errors.js";
export type * from "./host.js";
export type * from "./hypervisor.js";
export type * from "./live.js";

export interface Ports {
  hypervisor: Hypervisor;
  secrets: SecretFiles;
  paths: PathResolver;
  images: ImageTool;
  netdev: NetDevices;
  sysctl: Sysctl;
  firewall: FirewallHost;
  /** cloud-init NoCloud seed media (src/adapters/seed-media.ts). */
  seedMedia: SeedMedia;
  /** Windows unattend media (src/adapters/unattend-media.ts). */
  unattendMedia: UnattendMedia;
  /** Each VM's pinned SSH host key (src/adapters/host-keys.ts). */
  hostKeys: HostKeys;
  /** Base images from a URL, downloaded in the background (src/adapters/downloads.ts). */
  downloads: Downloads;
  /** qemu.conf's host-wide settings: VNC SASL (src/adapters/qemu-config.ts). */
  qemuConfig: QemuConfig;
  clock: Clock;
}

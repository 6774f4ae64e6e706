// The composition root of the host: the real adapter behind every port (src/ports). The
// controller command and the benchmarks build their ports here; tests build fakes instead.
import { systemClock } from "../runtime/clock.js";
import type { HostKeyPair, HostKeys, Ports } from "../ports/index.js";
import { DEFAULT_DOWNLOAD_DIR, HttpDownloads } from "./downloads.js";
import { HostFirewall } from "./firewall.js";
import { HostPathResolver, HostSecretFiles, ProcSysctl, TempScratchFiles } from "./host-files.js";
import { HostKeyFiles, hostKeyDirs } from "./host-keys.js";
import { LinuxNetDevices } from "./netdev.js";
import { HostQemuConfig } from "./qemu-config.js";
import { QemuImg } from "./qemu-img.js";
import { HostSeedMedia } from "./seed-media.js";
import { HostUnattendMedia } from "./unattend-media.js";
import { Virsh } from "./virsh.js";
import { VirshHypervisor } from "./virsh-hypervisor.js";

export interface HostPortsOptions {
  /** libvirt URI. */
  uri: string;
  /** Timeout of one virsh command. */
  virshTimeoutMs?: number;
  /** Told of every virsh process (subcommand, ms): the controller's metrics. */
  virshObserver?: (command: string, ms: number) => void;
  /** Told of every picture of libvirt read, whole or of the changed domains alone: the controller's metrics. */
  readingObserver?: (scope: "whole" | "changed") => void;
  /**
   * kvmctl's data directory of the manifest directory (`<stateRoot>/.kvmctl`, the store's
   * dataDir): where the VMs' pinned SSH host keys live. Without it (kvmctl diff, console) no
   * host key can be made or read.
   */
  dataDir?: string;
  /** Where base images from a URL are downloaded (default /var/lib/kvmctl/downloads): kvmctl's own, never a pool's directory. */
  downloadDir?: string;
}

/** Host keys without a data directory: nothing is made, nothing is known. */
class NoHostKeys implements HostKeys {
  async ensure(vm: string): Promise<HostKeyPair> {
    throw new Error(`no data directory: the host key of ${vm} cannot be made here`);
  }
  async publicKey(): Promise<string | undefined> {
    return undefined;
  }
  async remove(): Promise<void> {}
}

export interface HostPorts extends Ports {
  hypervisor: VirshHypervisor;
}

export function hostPorts(options: HostPortsOptions): HostPorts {
  const scratch = new TempScratchFiles("kvmctl-controller-");
  return {
    hypervisor: new VirshHypervisor(new Virsh({ uri: options.uri, ...(options.virshTimeoutMs ? { timeoutMs: options.virshTimeoutMs } : {}), ...(options.virshObserver ? { observer: options.virshObserver } : {}) }), scratch, undefined, options.readingObserver),
    secrets: new HostSecretFiles(),
    paths: new HostPathResolver(),
    images: new QemuImg(),
    netdev: new LinuxNetDevices(),
    sysctl: new ProcSysctl(),
    firewall: new HostFirewall(scratch),
    seedMedia: new HostSeedMedia(),
    unattendMedia: new HostUnattendMedia(),
    hostKeys: options.dataDir ? new HostKeyFiles(hostKeyDirs(options.dataDir)) : new NoHostKeys(),
    downloads: new HttpDownloads(options.downloadDir ?? DEFAULT_DOWNLOAD_DIR),
    qemuConfig: new HostQemuConfig(),
    clock: systemClock,
  };
}

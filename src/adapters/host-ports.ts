// The composition root of the host: the real adapter behind every port (src/ports). The
// controller command and the benchmarks build their ports here; tests build fakes instead.
import { systemClock } from "../runtime/clock.js";
import type { Ports } from "../ports/index.js";
import { HostFirewall } from "./firewall.js";
import { HostPathResolver, HostSecretFiles, ProcSysctl, TempScratchFiles } from "./host-files.js";
import { LinuxNetDevices } from "./netdev.js";
import { QemuImg } from "./qemu-img.js";
import { Virsh } from "./virsh.js";
import { VirshHypervisor } from "./virsh-hypervisor.js";

export interface HostPortsOptions {
  /** libvirt URI. */
  uri: string;
  /** Timeout of one virsh command. */
  virshTimeoutMs?: number;
  /** Told of every virsh process (subcommand, ms): the controller's metrics. */
  virshObserver?: (command: string, ms: number) => void;
}

export interface HostPorts extends Ports {
  hypervisor: VirshHypervisor;
}

export function hostPorts(options: HostPortsOptions): HostPorts {
  const scratch = new TempScratchFiles("kvmctl-controller-");
  return {
    hypervisor: new VirshHypervisor(new Virsh({ uri: options.uri, ...(options.virshTimeoutMs ? { timeoutMs: options.virshTimeoutMs } : {}), ...(options.virshObserver ? { observer: options.virshObserver } : {}) }), scratch),
    secrets: new HostSecretFiles(),
    paths: new HostPathResolver(),
    images: new QemuImg(),
    netdev: new LinuxNetDevices(),
    sysctl: new ProcSysctl(),
    firewall: new HostFirewall(scratch),
    clock: systemClock,
  };
}

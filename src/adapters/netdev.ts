// The NetDevices port on Linux, for one repair libvirt does not make: after a network is
// stopped and started again (by hand), its new bridge has none of the running guests' taps,
// which stay cut off. Which bridge a tap is a port of comes from sysfs; putting it back is `ip link`.
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import type { NetDevices } from "../ports/index.js";

/** Linux interface names: up to 15 characters, never an option to `ip`. */
const DEVICE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

export class LinuxNetDevices implements NetDevices {
  constructor(private readonly sysfs = "/sys/class/net") {}

  bridgeOf(device: string): string | undefined {
    if (!DEVICE_NAME.test(device)) return undefined;
    try {
      return path.basename(fs.readlinkSync(path.join(this.sysfs, device, "master")));
    } catch {
      return undefined;
    }
  }

  async attach(device: string, bridge: string): Promise<void> {
    if (!DEVICE_NAME.test(device) || !DEVICE_NAME.test(bridge)) throw new Error(`not an interface name: ${device} / ${bridge}`);
    await execa("ip", ["link", "set", "dev", device, "master", bridge], { timeout: 30_000 });
  }
}

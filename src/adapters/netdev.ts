// Host network devices, for one repair libvirt does not make: after a network is stopped and
// started again (by hand), its new bridge has none of the running guests' taps, which stay
// cut off. Which bridge a tap is a port of comes from sysfs; putting it back is `ip link`.
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";

/** Linux interface names: up to 15 characters, never an option to `ip`. */
const DEVICE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

/** The bridge `device` is a port of; undefined when it is none's (or does not exist). */
export function bridgeOfDevice(device: string, sysfs = "/sys/class/net"): string | undefined {
  if (!DEVICE_NAME.test(device)) return undefined;
  try {
    return path.basename(fs.readlinkSync(path.join(sysfs, device, "master")));
  } catch {
    return undefined;
  }
}

/** Makes `device` a port of `bridge` again. */
export async function attachToBridge(device: string, bridge: string): Promise<void> {
  if (!DEVICE_NAME.test(device) || !DEVICE_NAME.test(bridge)) throw new Error(`not an interface name: ${device} / ${bridge}`);
  await execa("ip", ["link", "set", "dev", device, "master", bridge], { timeout: 30_000 });
}

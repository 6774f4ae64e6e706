// The sealed network namespace: loopback plus a veth pair whose both ends stay inside,
// so passt finds a routable interface and default route, yet nothing can leave.
import fs from "node:fs";
import { DEFAULT_GATEWAY, NETNS, VETH_GATEWAY_SIDE, VETH_GUEST_SIDE } from "./config.js";
import { run, runInNetns } from "./run.js";

export function netnsExists(): boolean {
  return fs.existsSync(`/run/netns/${NETNS}`);
}

/** True when the calling process runs inside the test namespace. */
export function insideNetns(): boolean {
  try {
    return fs.statSync("/proc/self/ns/net").ino === fs.statSync(`/run/netns/${NETNS}`).ino;
  } catch {
    return false;
  }
}

export async function createNetns(): Promise<void> {
  if (!netnsExists()) await run("ip", ["netns", "add", NETNS]);
  await runInNetns("ip", ["link", "set", "lo", "up"]);
  const links = await runInNetns("ip", ["-o", "link", "show"], { quiet: true });
  if (!links.stdout.includes(`${VETH_GUEST_SIDE.name}@`)) {
    await runInNetns("ip", ["link", "add", VETH_GUEST_SIDE.name, "type", "veth", "peer", "name", VETH_GATEWAY_SIDE.name]);
    await runInNetns("ip", ["addr", "add", VETH_GUEST_SIDE.address, "dev", VETH_GUEST_SIDE.name]);
    await runInNetns("ip", ["addr", "add", VETH_GATEWAY_SIDE.address, "dev", VETH_GATEWAY_SIDE.name]);
  }
  await runInNetns("ip", ["link", "set", VETH_GUEST_SIDE.name, "up"]);
  await runInNetns("ip", ["link", "set", VETH_GATEWAY_SIDE.name, "up"]);
  const routes = await runInNetns("ip", ["route", "show", "default"], { quiet: true });
  if (!routes.stdout.includes("default")) {
    await runInNetns("ip", ["route", "add", "default", "via", DEFAULT_GATEWAY, "dev", VETH_GUEST_SIDE.name]);
  }
}

export async function deleteNetns(): Promise<void> {
  if (netnsExists()) await run("ip", ["netns", "delete", NETNS]);
}

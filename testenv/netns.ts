// The sealed network namespace: loopback plus a veth pair whose both ends stay inside,
// so passt finds a routable interface and default route, yet nothing can leave.
import fs from "node:fs";
import { DEFAULT_GATEWAY, NETNS, OUTSIDE_LINK, OUTSIDE_NETNS, VETH_GATEWAY_SIDE, VETH_GUEST_SIDE } from "./config.js";
import { run, runInNetns } from "./run.js";

export function netnsExists(name = NETNS): boolean {
  return fs.existsSync(`/run/netns/${name}`);
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
  await createOutside();
}

/**
 * The outside namespace and its veth link to the test namespace. No default route on either
 * side of it: the outside namespace reaches only the test namespace's end of the link.
 */
async function createOutside(): Promise<void> {
  const { inside, outside } = OUTSIDE_LINK;
  if (!netnsExists(OUTSIDE_NETNS)) await run("ip", ["netns", "add", OUTSIDE_NETNS]);
  await run("ip", ["-n", OUTSIDE_NETNS, "link", "set", "lo", "up"]);
  const links = await run("ip", ["-n", NETNS, "-o", "link", "show"], { quiet: true });
  if (!links.stdout.includes(`${inside.name}@`)) {
    await run("ip", ["-n", NETNS, "link", "add", inside.name, "type", "veth", "peer", "name", outside.name, "netns", OUTSIDE_NETNS]);
    await run("ip", ["-n", NETNS, "addr", "add", inside.address, "dev", inside.name]);
    for (const address of outside.addresses) await run("ip", ["-n", OUTSIDE_NETNS, "addr", "add", address, "dev", outside.name]);
  }
  await run("ip", ["-n", NETNS, "link", "set", inside.name, "up"]);
  await run("ip", ["-n", OUTSIDE_NETNS, "link", "set", outside.name, "up"]);
}

export async function deleteNetns(): Promise<void> {
  // Deleting a namespace deletes the veth pairs with an end in it.
  for (const name of [OUTSIDE_NETNS, NETNS]) if (netnsExists(name)) await run("ip", ["netns", "delete", name]);
}

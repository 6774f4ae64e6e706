// Network plans: pure functions from (manifest, what libvirt holds, who uses it) to the
// virsh steps that converge it. Unit-tested without a host.
import type { NetworkSpec } from "../../api/network.js";
import { buildNetworkXml, compareNetwork, networkUuid, parseNetworkXml, planNetworkUpdates, type InterfaceFacts, type NetUpdate, type NetworkDifference, type NetworkFacts } from "../../libvirt/index.js";
import type { LiveDomain, LiveNetwork, NetworkUpdateScope } from "../../ports/index.js";
import type { Step } from "../kind.js";
import { leftAloneMessage, networkOwnership, notOursMessage, type Ownership } from "../ownership.js";

/** Steps on the network, each naming it by UUID (the port never resolves a name). */
export type NetworkAction =
  | { type: "define"; xml: string }
  /** net-update on the running network, its persistent definition, or both. */
  | { type: "update"; uuid: string; update: NetUpdate; scope: NetworkUpdateScope }
  | { type: "start"; uuid: string }
  | { type: "destroy"; uuid: string }
  | { type: "undefine"; uuid: string }
  | { type: "autostart"; uuid: string; enabled: boolean };

export interface NetworkPlanInput {
  key: string;
  name: string;
  /** This controller instance (src/controllers/ownership.ts). */
  instance: string;
  file: string;
  specHash: string;
  spec: NetworkSpec;
  live: LiveNetwork | undefined;
  /** Running domains attached to this network, by name. */
  users: string[];
}

export type NetworkPlan =
  | { kind: "notOwned"; reason: string; message: string }
  /** mode user: nothing in libvirt; the firewall holds its rules. */
  | { kind: "firewallOnly" }
  | { kind: "converge"; uuid: string; steps: Step<NetworkAction>[]; restartRequired?: string };

/** Ours to change: this instance's, or an earlier kvmctl's for this manifest (adopted by changing it). */
function changeable(ownership: Ownership): boolean {
  return ownership.of === "mine" || ownership.of === "legacy";
}

/** The interfaces running domains have on `network` (live definitions), with their domain. */
export function guestNicsOn(network: string, domains: Iterable<LiveDomain>): { domain: LiveDomain; nic: InterfaceFacts }[] {
  const found: { domain: LiveDomain; nic: InterfaceFacts }[] = [];
  for (const domain of domains) {
    for (const nic of domain.running?.interfaces ?? []) if (nic.type === "network" && nic.source === network) found.push({ domain, nic });
  }
  return found;
}

/** Running domains whose live definition has an interface on `network`. */
export function networkUsers(network: string, domains: Iterable<LiveDomain>): string[] {
  return [...new Set(guestNicsOn(network, domains).map(({ domain }) => domain.running!.name))].sort();
}

/**
 * Taps of running kvmctl-owned guests on `network` that are not ports of its `bridge`: a network
 * stopped and started by hand comes back with an empty bridge, and libvirt does not plug the
 * guests back in. Guests kvmctl does not own are left as they are.
 */
export function tapsOffBridge(network: string, bridge: string, domains: Iterable<LiveDomain>, bridgeOfDevice: (device: string) => string | undefined): { domain: string; device: string }[] {
  return guestNicsOn(network, domains).flatMap(({ domain, nic }) =>
    domain.config.owner && nic.target && bridgeOfDevice(nic.target) !== bridge ? [{ domain: domain.running!.name, device: nic.target }] : [],
  );
}

const describe = (diffs: NetworkDifference[]) => diffs.map((d) => `${d.field} ${JSON.stringify(d.live)} → ${JSON.stringify(d.desired)}`).join(", ");

export function planNetwork(input: NetworkPlanInput): NetworkPlan {
  const { spec, live, name } = input;
  const ownership = live ? networkOwnership(live, input.key, name, input.instance) : { of: "mine" as const };
  if (spec.mode === "user") {
    if (live && changeable(ownership)) {
      // The mode changed to user: the libvirt network it used to be goes away.
      return { kind: "converge", uuid: live.uuid, steps: teardown(live, input.users) };
    }
    return { kind: "firewallOnly" };
  }
  if (live && !changeable(ownership)) {
    const { reason, message } = notOursMessage(ownership, `libvirt network "${name}"`, input.instance);
    return { kind: "notOwned", reason, message };
  }
  // A redefinition keeps the UUID, bridge name and MAC libvirt holds (the running network's first).
  const kept = live ? { uuid: live.uuid, bridge: live.running?.bridge ?? live.config.bridge, mac: live.running?.mac ?? live.config.mac } : {};
  const xml = buildNetworkXml(name, spec, { manifest: input.key, instance: input.instance, file: input.file, specHash: input.specHash }, kept);
  const desired = parseNetworkXml(xml);
  const steps: Step<NetworkAction>[] = [];
  // The definition carries kvmctl's name-derived UUID; a network already there keeps its own.
  const uuid = live?.uuid ?? networkUuid(name, input.instance);
  if (!live) {
    steps.push({ action: { type: "define", xml }, message: "define network" });
    steps.push({ action: { type: "start", uuid }, message: "start network" });
    if (spec.autostart) steps.push({ action: { type: "autostart", uuid, enabled: true }, message: "enable autostart" });
    return { kind: "converge", uuid, steps };
  }

  let restartRequired: string | undefined;
  // The next-start definition: DHCP edits in place, anything else by redefining.
  const configUpdates = planNetworkUpdates(desired, live.config);
  const configDiffs = compareNetwork(desired, live.config);
  const ownerStale = ownership.of === "legacy" || live.config.owner?.specHash !== input.specHash || live.config.owner?.manifest !== input.key || live.config.owner?.file !== input.file;
  // A network undefined by hand while running is transient: defining it again makes it
  // persistent, so it survives its next stop and the host's next boot.
  const redefine = configUpdates === undefined || ownerStale || !live.persistent;
  if (redefine) {
    const why = !live.persistent
      ? "undefined by hand while running: define it again"
      : configDiffs.length
        ? `redefine: ${describe(configDiffs)}`
        : ownership.of === "legacy"
          ? `adopt: made by an earlier kvmctl, now owned by instance ${input.instance}`
          : "update ownership metadata";
    steps.push({ action: { type: "define", xml }, message: why });
  }
  if (live.active && live.running) {
    const runningUpdates = planNetworkUpdates(desired, live.running);
    const runningDiffs = compareNetwork(desired, live.running);
    if (runningUpdates === undefined) {
      const what = describe(runningDiffs.filter((d) => d.needsRestart));
      if (input.users.length) {
        restartRequired = `the running network differs (${what}); not restarted while ${input.users.join(", ")} use it`;
      } else {
        steps.push({ action: { type: "destroy", uuid }, message: `restart to apply: ${what}` });
        steps.push({ action: { type: "start", uuid }, message: "start network" });
      }
    } else {
      // Live edits; the persistent side is edited the same way unless a define above covers it.
      const configByEdit = !redefine;
      const sameEdit = (a: NetUpdate, b: NetUpdate) => a.xml === b.xml && a.command === b.command && a.section === b.section;
      for (const update of runningUpdates) {
        const both = configByEdit && configUpdates.some((u) => sameEdit(u, update));
        steps.push({ action: { type: "update", uuid, update, scope: both ? "both" : "live" }, message: `net-update --live${both ? " --config" : ""} ${update.command} ${update.section} ${update.xml}` });
      }
      if (configByEdit) {
        for (const update of configUpdates.filter((u) => !runningUpdates.some((r) => sameEdit(r, u)))) {
          steps.push({ action: { type: "update", uuid, update, scope: "config" }, message: `net-update --config ${update.command} ${update.section} ${update.xml}` });
        }
      }
    }
  } else {
    if (!redefine && configUpdates) {
      for (const update of configUpdates) steps.push({ action: { type: "update", uuid, update, scope: "config" }, message: `net-update --config ${update.command} ${update.section} ${update.xml}` });
    }
    steps.push({ action: { type: "start", uuid }, message: "network is stopped: start it" });
  }
  if (live.autostart !== spec.autostart) steps.push({ action: { type: "autostart", uuid, enabled: spec.autostart }, message: `${spec.autostart ? "enable" : "disable"} autostart` });
  return { kind: "converge", uuid, steps, ...(restartRequired ? { restartRequired } : {}) };
}

export type NetworkDeletionPlan =
  | { kind: "absent" }
  | { kind: "notOwned"; message: string }
  | { kind: "blocked"; message: string }
  | { kind: "prune"; steps: Step<NetworkAction>[] };

/**
 * The manifest is gone: remove what kvmctl owns, but never pull a network from under running
 * guests or VM manifests that still name it.
 */
export function planNetworkDeletion(key: string, name: string, live: LiveNetwork | undefined, users: string[], referencedBy: string[], instance: string): NetworkDeletionPlan {
  if (!live) return { kind: "absent" };
  const ownership = networkOwnership(live, key, name, instance);
  if (ownership.of !== "mine") return { kind: "notOwned", message: leftAloneMessage(ownership, `libvirt network "${name}"`) };
  const holders = [...users.map((u) => `running domain ${u}`), ...referencedBy.filter((r) => !users.includes(r.split("/")[1] ?? "")).map((r) => `manifest ${r}`)];
  if (holders.length) return { kind: "blocked", message: `network "${name}" is still used by ${holders.join(", ")}; it is kept until they stop using it` };
  return { kind: "prune", steps: teardown(live, []) };
}

/** Stop and undefine; a transient network (undefined by hand while running) is gone once stopped. */
function teardown(live: LiveNetwork, users: string[]): Step<NetworkAction>[] {
  if (users.length) return [];
  const steps: Step<NetworkAction>[] = [];
  if (live.active) steps.push({ action: { type: "destroy", uuid: live.uuid }, message: "stop network" });
  if (live.persistent) steps.push({ action: { type: "undefine", uuid: live.uuid }, message: "undefine network" });
  return steps;
}

/** The bridge a network's guests are on: the running definition's, else the configured one. */
export function bridgeOf(live: LiveNetwork | undefined): string | undefined {
  return live?.running?.bridge ?? live?.config.bridge;
}

export type { NetworkFacts };

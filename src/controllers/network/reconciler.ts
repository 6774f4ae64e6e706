// Network: observe → plan (pure) → act through virsh → firewall → status.
import fs from "node:fs";
import path from "node:path";
import type { Network } from "../../api/network.js";
import type { VirtualMachine } from "../../api/virtualmachine.js";
import { markReady, markReconciling, setExtraCondition, TerminalError, type Condition } from "../../runtime/index.js";
import { observedFields } from "../../store/index.js";
import { markKept, recordDeleted, recordEvent, withoutUndefined, type KindResult, type ReconcileInput, type ReconcilerDeps } from "../types.js";
import { bridgeOf, guestNicsOn, networkUsers, planNetwork, planNetworkDeletion, tapsOffBridge, type NetworkAction } from "./plan.js";
import { attachToBridge, bridgeOfDevice } from "../../adapters/netdev.js";
import type { LiveDomain } from "../../adapters/observer.js";

async function act(deps: ReconcilerDeps, name: string, action: NetworkAction): Promise<void> {
  switch (action.type) {
    case "define": {
      const file = path.join(deps.scratchDir, `network-${name}.xml`);
      fs.writeFileSync(file, action.xml);
      await deps.virsh.run(["net-define", file]);
      return;
    }
    case "update": {
      const { update } = action;
      await deps.virsh.run(["net-update", name, update.command, update.section, update.xml, "--parent-index", String(update.parentIndex), ...(action.scope === "both" ? ["--live", "--config"] : [`--${action.scope}`])]);
      return;
    }
    case "start":
      await deps.virsh.run(["net-start", name]);
      return;
    case "destroy":
      await deps.virsh.run(["net-destroy", name]);
      return;
    case "undefine":
      await deps.virsh.run(["net-undefine", name]);
      return;
    case "autostart":
      await deps.virsh.run(["net-autostart", name, ...(action.enabled ? [] : ["--disable"])]);
      return;
  }
}

export interface Lease {
  mac: string;
  ip: string;
  hostname?: string;
  expiry?: string;
}

/** `virsh net-dhcp-leases` table → leases (IPv4 and IPv6, address without prefix). */
export function parseLeases(text: string): Lease[] {
  const leases: Lease[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+([0-9a-f:]{17})\s+(ipv[46])\s+(\S+)\s+(\S+)/i.exec(line);
    if (!m) continue;
    const [, expiry, mac, , ip, hostname] = m;
    leases.push({ mac: mac!.toLowerCase(), ip: ip!.split("/")[0]!, ...(hostname && hostname !== "-" ? { hostname } : {}), expiry: expiry! });
  }
  return leases;
}

/** VM manifests that name this network on an interface. */
function referencingVms(deps: ReconcilerDeps, name: string): string[] {
  const keys: string[] = [];
  for (const [key, stored] of deps.snapshot().objects) {
    if (stored.object.kind !== "VirtualMachine") continue;
    if ((stored.object as VirtualMachine).spec.interfaces.some((nic) => nic.network === name)) keys.push(key);
  }
  return keys.sort();
}

export async function reconcileNetwork(deps: ReconcilerDeps, input: ReconcileInput): Promise<KindResult> {
  const { name, log } = input;
  const state = await deps.live(input.since);
  const live = state.networks.get(name);
  const users = networkUsers(name, state.domains.values());

  if (!input.stored) {
    const plan = planNetworkDeletion(input.key, name, live, users, referencingVms(deps, name));
    if (plan.kind === "blocked") {
      log.warn({ reason: "NetworkInUse" }, plan.message);
      await markKept(deps, input.key, { phase: "Terminating", reason: "NetworkInUse", message: plan.message });
      return { ready: false, requeueAfterMs: 5_000 };
    }
    if (plan.kind === "prune") {
      for (const step of plan.steps) {
        log.info({ step: step.action.type }, step.message);
        await act(deps, name, step.action);
      }
    }
    await recordDeleted(deps, input.key, plan.kind === "prune" ? "network removed from libvirt" : plan.kind === "notOwned" ? `libvirt network "${name}" was not created by kvmctl: left alone` : "no network in libvirt to remove");
    await deps.syncFirewall?.(Date.now());
    await deps.store.setTerminating(input.key, undefined);
    return { ready: true };
  }

  const stored = input.stored;
  await deps.store.setTerminating(input.key, undefined); // the manifest is back
  const network = stored.object as Network;
  const plan = planNetwork({ key: input.key, name, file: stored.location.file, specHash: stored.specHash, spec: network.spec, live, users });
  if (plan.kind === "notOwned") throw new TerminalError(plan.message, "NotOwned");
  const steps = plan.kind === "converge" ? plan.steps : [];
  for (const step of steps) {
    log.info({ step: step.action.type }, step.message);
    await act(deps, name, step.action);
  }
  if (steps.length) await recordEvent(deps, input.key, "Normal", "Converged", steps.map((s) => s.message).join("; "));

  const after = steps.length ? (await deps.live(Date.now())).networks.get(name) : live;
  const bridge = bridgeOf(after);
  if (after?.active && bridge && network.spec.mode !== "user") {
    for (const tap of tapsOffBridge(name, bridge, state.domains.values(), bridgeOfDevice)) {
      log.info({ domain: tap.domain, device: tap.device, bridge }, "guest interface not on the network's bridge (network restarted by hand?): plugging it back");
      await attachToBridge(tap.device, bridge);
      await recordEvent(deps, input.key, "Normal", "Reconnected", `${tap.domain}'s ${tap.device} plugged back into ${bridge}`);
    }
  }
  const firewall = await deps.syncFirewall?.(steps.length ? Date.now() : input.since);
  const isUser = network.spec.mode === "user";
  const pendingRules = firewall?.pending.get(input.key);
  const firewallError = firewall?.error ?? (firewall?.backend === "none" && (firewall.counts.size || network.spec.portForwards.length || network.spec.egress.length || network.spec.mode === "nat") ? "no firewall backend on this host" : undefined);
  const ok = (isUser || after?.active === true) && !firewallError && !pendingRules;
  let leases: ReturnType<typeof parseLeases> | undefined;
  if (after?.active && network.spec.ipv4?.dhcp) {
    const out = await deps.virsh.runOrMissing(["net-dhcp-leases", name]).catch(() => undefined);
    leases = out === undefined ? undefined : parseLeases(out);
  }

  const previous = (network.status?.conditions ?? []) as Condition[];
  let conditions = ok
    ? markReady(previous, stored.generation, "Succeeded", isUser ? `passt egress rules applied (${firewall?.counts.get(input.key) ?? 0} rules)` : `network is active on bridge ${bridgeOf(after) ?? "?"}`)
    : markReconciling(previous, stored.generation, firewallError ? "FirewallFailed" : "Progressing", firewallError ?? pendingRules ?? "network is not active yet");
  const restartRequired = plan.kind === "converge" ? plan.restartRequired : undefined;
  conditions = setExtraCondition(conditions, "RestartRequired", restartRequired !== undefined, stored.generation, "NetworkInUse", restartRequired ?? "");
  await deps.store.writeStatus(input.key, withoutUndefined({
    ...observedFields(stored),
    conditions,
    uuid: after?.uuid,
    bridge: isUser ? undefined : bridgeOf(after),
    active: isUser ? undefined : after?.active ?? false,
    libvirtForwardMode: after?.config.forwardMode,
    leases,
    firewall: firewall ? { backend: firewall.backend, rules: firewall.counts.get(input.key) ?? 0 } : undefined,
  }));
  // libvirt sends no event when dnsmasq hands out a lease: while a running guest on this
  // network has no lease yet, look again shortly so status.leases catches up.
  const awaitingLease = leases !== undefined && guestMacsWithoutLease(name, state.domains.values(), leases).length > 0;
  return { ready: ok, requeueAfterMs: ok ? (awaitingLease ? LEASE_POLL_MS : undefined) : 2_000 };
}

const LEASE_POLL_MS = 5_000;

/** MACs of running guests' interfaces on `network` that hold no DHCP lease. */
export function guestMacsWithoutLease(network: string, domains: Iterable<LiveDomain>, leases: Lease[]): string[] {
  const leased = new Set(leases.map((l) => l.mac.toLowerCase()));
  return guestNicsOn(network, domains).flatMap(({ nic }) => (nic.mac && !leased.has(nic.mac.toLowerCase()) ? [nic.mac.toLowerCase()] : []));
}

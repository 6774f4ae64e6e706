// Network: observe → plan (pure, ./plan.ts) → act through the ports → firewall → report.
import { TerminalError } from "../../runtime/index.js";
import { networkOwnership } from "../ownership.js";
import type { Lease, LiveDomain, LiveState, Ports } from "../../ports/index.js";
import { objectsOf, type Snapshot } from "../../store/index.js";
import type { KindController, KindOutcome, PlanTarget } from "../kind.js";
import { networksOfVm } from "../virtualmachine/controller.js";
import { bridgeOf, guestNicsOn, networkUsers, planNetwork, planNetworkDeletion, tapsOffBridge, type NetworkAction, type NetworkPlan, type NetworkPlanInput } from "./plan.js";

async function act(ports: Ports, action: NetworkAction): Promise<void> {
  const hv = ports.hypervisor;
  switch (action.type) {
    case "define":
      return hv.defineNetwork(action.xml);
    case "update":
      return hv.updateNetwork(action.uuid, action.update, action.scope);
    case "start":
      return hv.startNetwork(action.uuid);
    case "destroy":
      return hv.destroyNetwork(action.uuid);
    case "undefine":
      return hv.undefineNetwork(action.uuid);
    case "autostart":
      return hv.setNetworkAutostart(action.uuid, action.enabled);
  }
}

/** VM manifests that name this network on an interface. */
function referencingVms(snapshot: Snapshot, name: string): string[] {
  return objectsOf(snapshot, "VirtualMachine")
    .filter((vm) => vm.object.spec.interfaces.some((nic) => nic.network === name))
    .map((vm) => vm.key);
}

/** libvirt sends no event when dnsmasq hands out a lease: while a running guest has none, look again this often. */
const LEASE_POLL_MS = 5_000;
/** How often a Network whose forwards the host port guard left out looks again. */
const REFUSED_FORWARD_POLL_MS = 10_000;

/** MACs of running guests' interfaces on `network` that hold no DHCP lease. */
export function guestMacsWithoutLease(network: string, domains: Iterable<LiveDomain>, leases: Lease[]): string[] {
  const leased = new Set(leases.map((l) => l.mac.toLowerCase()));
  return guestNicsOn(network, domains).flatMap(({ nic }) => (nic.mac && !leased.has(nic.mac.toLowerCase()) ? [nic.mac.toLowerCase()] : []));
}

function planInputOf(target: PlanTarget<"Network">, live: LiveState, instance: string): NetworkPlanInput {
  const network = live.networks.get(target.name);
  return {
    key: target.key,
    name: target.name,
    instance,
    file: target.file ?? network?.config.owner?.file ?? "",
    specHash: target.specHash,
    spec: target.object.spec,
    live: network,
    users: networkUsers(target.name, live.domains.values()),
  };
}

export const networkController: KindController<"Network", NetworkPlanInput, NetworkPlan> = {
  kind: "Network",
  readsOnlyEventedFacts: () => false, // DHCP leases and net-update edits send no event
  order: 20,

  ownedKeys(live, instance) {
    return [...live.networks.values()].flatMap((net) => (networkOwnership(net, `Network/${net.name}`, net.name, instance).of === "mine" ? [`Network/${net.name}`] : []));
  },

  recordedFile: (live, name) => live.networks.get(name)?.config.owner?.file || undefined,

  wakeFor(event, snapshot) {
    if (event.kind === "network") return [`Network/${event.name}`];
    // A guest that starts takes DHCP leases its networks report in status.
    if (event.kind === "domain") return networksOfVm(snapshot, event.name).map((network) => `Network/${network}`);
    return [];
  },

  async planInput(ctx, target, live) {
    return planInputOf(target, live, ctx.settings.instance);
  },

  plan: planNetwork,

  changes(plan) {
    if (plan.kind === "notOwned") return [plan.message];
    if (plan.kind === "converge") return [...plan.steps.map((s) => s.message), ...(plan.restartRequired ? [`RestartRequired: ${plan.restartRequired}`] : [])];
    return []; // firewall rules are not diffed: they depend on every manifest and on live bridges
  },

  async reconcile(ctx, { key, name, stored, since }): Promise<KindOutcome<"Network">> {
    const state = await ctx.live(since);
    const live = state.networks.get(name);
    const users = networkUsers(name, state.domains.values());

    if (!stored) {
      const plan = planNetworkDeletion(key, name, live, users, referencingVms(ctx.snapshot, name), ctx.settings.instance);
      if (plan.kind === "blocked") {
        ctx.log.warn({ reason: "NetworkInUse" }, plan.message);
        await ctx.record.kept({ phase: "Terminating", reason: "NetworkInUse", message: plan.message });
        return { ready: false, requeueAfterMs: 5_000 };
      }
      if (plan.kind === "prune") {
        for (const step of plan.steps) {
          ctx.log.info({ step: step.action.type }, step.message);
          await act(ctx.ports, step.action);
        }
      }
      await ctx.record.deleted(plan.kind === "prune" ? "network removed from libvirt" : plan.kind === "notOwned" ? plan.message : "no network in libvirt to remove");
      await ctx.services.firewall.sync(ctx.ports.clock.now());
      await ctx.record.notKept();
      return { ready: true };
    }

    await ctx.record.notKept(); // the manifest is back
    const network = stored.object;
    const plan = planNetwork(planInputOf({ key, name, object: network, specHash: stored.specHash, file: stored.location.file }, state, ctx.settings.instance));
    if (plan.kind === "notOwned") throw new TerminalError(plan.message, plan.reason);
    const steps = plan.kind === "converge" ? plan.steps : [];
    for (const step of steps) {
      ctx.log.info({ step: step.action.type }, step.message);
      await act(ctx.ports, step.action);
    }
    if (steps.length) await ctx.record.event("Normal", "Converged", steps.map((s) => s.message).join("; "));

    const after = steps.length ? (await ctx.live(ctx.ports.clock.now())).networks.get(name) : live;
    const bridge = bridgeOf(after);
    const repairs: string[] = steps.map((s) => s.action.type);
    if (after?.active && bridge && network.spec.mode !== "user") {
      for (const tap of tapsOffBridge(name, bridge, state.domains.values(), (device) => ctx.ports.netdev.bridgeOf(device))) {
        ctx.log.info({ domain: tap.domain, device: tap.device, bridge }, "guest interface not on the network's bridge (network restarted by hand?): plugging it back");
        await ctx.ports.netdev.attach(tap.device, bridge);
        await ctx.record.event("Normal", "Reconnected", `${tap.domain}'s ${tap.device} plugged back into ${bridge}`);
        repairs.push("reconnect");
      }
    }
    const firewall = await ctx.services.firewall.sync(steps.length ? ctx.ports.clock.now() : since);
    const isUser = network.spec.mode === "user";
    const pendingRules = firewall.pending.get(key);
    const firewallError = firewall.error ?? firewall.failed.get(key) ?? (firewall.backend === "none" && (firewall.counts.size || network.spec.portForwards.length || network.spec.egress.length || network.spec.mode === "nat") ? "no firewall backend on this host" : undefined);
    // Forwards left out because the host itself uses their port: the rest of the network works.
    const refusedForwards = firewall.refused.get(key);
    const ok = (isUser || after?.active === true) && !firewallError && !pendingRules && !refusedForwards;
    let leases: Lease[] | undefined;
    if (after?.active && network.spec.ipv4?.dhcp) leases = await ctx.ports.hypervisor.networkLeases(after.uuid).catch(() => undefined);
    const restartRequired = plan.kind === "converge" ? plan.restartRequired : undefined;
    // libvirt sends no event when dnsmasq hands out a lease: while a running guest on this
    // network has no lease yet, look again shortly so status.leases catches up.
    const awaitingLease = leases !== undefined && guestMacsWithoutLease(name, state.domains.values(), leases).length > 0;
    return {
      ready: ok,
      repairs,
      // A busy port may be let go of: look again now and then, not every 2 s.
      requeueAfterMs: ok ? (awaitingLease ? LEASE_POLL_MS : undefined) : refusedForwards && !firewallError && !pendingRules ? REFUSED_FORWARD_POLL_MS : 2_000,
      report: {
        reason: ok ? "Succeeded" : firewallError ? "FirewallFailed" : refusedForwards ? "HostPortConflict" : "Progressing",
        message: ok ? (isUser ? `passt egress rules applied (${firewall.counts.get(key) ?? 0} rules)` : `network is active on bridge ${bridge ?? "?"}`) : (firewallError ?? refusedForwards ?? pendingRules ?? "network is not active yet"),
        extraConditions: [{ type: "RestartRequired", present: restartRequired !== undefined, reason: "NetworkInUse", message: restartRequired ?? "" }],
        facts: {
          uuid: after?.uuid,
          bridge: isUser ? undefined : bridge,
          active: isUser ? undefined : (after?.active ?? false),
          libvirtForwardMode: after?.config.forwardMode,
          leases,
          firewall: { backend: firewall.backend, rules: firewall.counts.get(key) ?? 0 },
        },
      },
    };
  },
};

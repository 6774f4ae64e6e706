// The host firewall kvmctl wants, rendered from manifests (pure). A backend-neutral rule list:
// the nftables and iptables modules turn it into their own syntax. Every rule carries the
// object it exists for, so status can count rules per object and logs can say why a rule is there.
import type { NetworkSpec } from "../api/network.js";
import type { VirtualMachineSpec } from "../api/virtualmachine.js";
import { ipv4Bounds, isLoopbackAddress } from "../api/net.js";
import { compareText } from "../api/text.js";

export type Chain = "prerouting" | "output-nat" | "postrouting" | "input" | "forward" | "output";
export type Family = "ip" | "ip6";

export type Verdict = { type: "accept" } | { type: "drop" } | { type: "return" } | { type: "masquerade" } | { type: "dnat"; addr: string; port: number };

export interface Rule {
  chain: Chain;
  /** "Kind/name" of the manifest the rule exists for. */
  owner: string;
  /** Set when the rule matches addresses of one family; unset rules apply to both. */
  family?: Family;
  iif?: string;
  oif?: string;
  saddr?: string;
  daddr?: string;
  notDaddr?: string;
  /** Destination is one of the host's own addresses (fib / addrtype LOCAL). */
  daddrLocal?: boolean;
  protocol?: "tcp" | "udp";
  dports?: number[];
  /** Socket owner uid (the output hook only). */
  skuid?: number;
  established?: boolean;
  /** Connections this host DNATed (port forwards). */
  dnatted?: boolean;
  verdict: Verdict;
}

export interface FirewallNetwork {
  key: string;
  spec: NetworkSpec;
  /** The bridge its guests are on (libvirt's name when the spec sets none); unknown until defined. */
  bridge?: string;
}

export interface FirewallVm {
  key: string;
  spec: VirtualMachineSpec;
  /** VNC port of the running domain (libvirt allocates it when the spec sets none). */
  vncPort?: number;
}

/** A socket bound on the host (TCP listening, UDP unconnected), as /proc/net lists it. */
export interface HostListener {
  protocol: "tcp" | "udp";
  address: string;
  port: number;
}

/** What a Network's port forward may not take: it would redirect the host's own traffic to a guest. */
export interface HostPortGuard {
  /** Host ports no forward takes, whatever listens (the controller's --reserved-host-ports; 22 by default). */
  reserved: readonly number[];
  /** Sockets bound on the host right now. */
  listening: readonly HostListener[];
}

export interface FirewallInputs {
  networks: FirewallNetwork[];
  vms: FirewallVm[];
  /** uid QEMU (and passt) run as; needed only for mode user egress rules. */
  qemuUid?: number;
  /** Without it, no forward is refused. */
  hostPorts?: HostPortGuard;
}

export interface RenderResult {
  rules: Rule[];
  /** Objects whose rules could not be rendered, and why (e.g. bridge not known yet). */
  pending: Map<string, string>;
  /** Objects some of whose port forwards were left out (a reserved or busy host port), and why. */
  refused: Map<string, string>;
  /** True when some NAT network needs the kernel to forward IPv4. */
  needsForwarding: boolean;
}

const familyOf = (address: string): Family => (address.includes(":") ? "ip6" : "ip");

function subnetOf(address: string, prefix: number): string {
  return `${ipv4Bounds(address, prefix).network}/${prefix}`;
}

/** Egress rules of one network, in order, as rules in `chain` with `base` added to each. */
function egressRules(owner: string, spec: NetworkSpec, chain: Chain, base: Partial<Rule>): Rule[] {
  const rules: Rule[] = [];
  for (const rule of spec.egress) {
    const protocols = rule.protocol ? [rule.protocol] : rule.ports?.length ? (["tcp", "udp"] as const) : [undefined];
    for (const to of rule.to) {
      for (const protocol of protocols) {
        rules.push({
          ...base,
          chain,
          owner,
          family: familyOf(to),
          daddr: to,
          ...(protocol ? { protocol } : {}),
          ...(rule.ports?.length ? { dports: rule.ports } : {}),
          verdict: { type: rule.action === "allow" ? "accept" : "drop" },
        });
      }
    }
  }
  return rules;
}

const isWildcard = (address: string) => address === "0.0.0.0" || address === "::";

/**
 * Why the forward may not take its host port, or undefined. A socket listening on all
 * addresses, or on the forward's own hostAddress, or (for a forward to every local address) on
 * any address but loopback, is the host's: the DNAT would take its traffic.
 */
export function forwardConflict(pf: NetworkSpec["portForwards"][number], guard: HostPortGuard): string | undefined {
  const port = `${pf.protocol}/${pf.hostPort}`;
  if (guard.reserved.includes(pf.hostPort)) return `host port ${port} is reserved on this host (the controller's --reserved-host-ports): a forward would take it from the host`;
  const taken = guard.listening.find(
    (l) => l.protocol === pf.protocol && l.port === pf.hostPort && (isWildcard(l.address) || (pf.hostAddress ? l.address === pf.hostAddress : !isLoopbackAddress(l.address))),
  );
  if (taken) return `host port ${port} is in use on this host (a socket listens on ${taken.address.includes(":") ? `[${taken.address}]` : taken.address}:${taken.port}): a forward would take its traffic`;
  return undefined;
}

function networkRules(net: FirewallNetwork, qemuUid: number | undefined, pending: Map<string, string>, guard: HostPortGuard | undefined, refused: Map<string, string>): Rule[] {
  const { key: owner, spec } = net;
  if (spec.mode === "user") {
    if (spec.egress.length === 0) return [];
    if (qemuUid === undefined) {
      pending.set(owner, "the QEMU user is unknown, so passt egress rules cannot be matched");
      return [];
    }
    // passt traffic is the QEMU user's own: the output hook, matched by socket owner (seed 002).
    const base = { skuid: qemuUid };
    return [
      { chain: "output", owner, ...base, oif: "lo", verdict: { type: "accept" } },
      { chain: "output", owner, ...base, established: true, verdict: { type: "accept" } },
      ...egressRules(owner, spec, "output", base),
    ];
  }
  const needsBridge = spec.egress.length > 0 || spec.portForwards.length > 0 || spec.mode === "nat";
  if (!net.bridge) {
    if (needsBridge) pending.set(owner, "the network's bridge is not known yet");
    return [];
  }
  const bridge = net.bridge;
  const rules: Rule[] = [];
  if (spec.egress.length) {
    // Replies to connections made to the guests are not egress.
    rules.push({ chain: "forward", owner, iif: bridge, established: true, verdict: { type: "accept" } });
    rules.push(...egressRules(owner, spec, "forward", { iif: bridge }));
  }
  if (spec.mode === "nat" && spec.ipv4) {
    const subnet = subnetOf(spec.ipv4.address, spec.ipv4.prefix);
    // As libvirt's own NAT: multicast and broadcast are not masqueraded.
    rules.push({ chain: "postrouting", owner, family: "ip", saddr: subnet, daddr: "224.0.0.0/24", verdict: { type: "return" } });
    rules.push({ chain: "postrouting", owner, family: "ip", saddr: subnet, daddr: "255.255.255.255/32", verdict: { type: "return" } });
    rules.push({ chain: "postrouting", owner, family: "ip", saddr: subnet, notDaddr: subnet, verdict: { type: "masquerade" } });
  }
  const forwards = spec.portForwards.filter((pf) => {
    const conflict = guard && forwardConflict(pf, guard);
    if (conflict) refused.set(owner, refused.has(owner) ? `${refused.get(owner)}; ${conflict}` : conflict);
    return !conflict;
  });
  for (const pf of forwards) {
    const match = pf.hostAddress ? { daddr: pf.hostAddress } : { daddrLocal: true };
    const common = { owner, family: "ip" as const, protocol: pf.protocol, dports: [pf.hostPort], verdict: { type: "dnat" as const, addr: pf.guestAddress, port: pf.guestPort } };
    // From outside (prerouting) and from the host itself (output). Loopback is left alone:
    // a packet from 127.0.0.1 cannot be routed to a guest.
    rules.push({ chain: "prerouting", ...match, ...common });
    rules.push({ chain: "output-nat", ...match, ...(pf.hostAddress ? {} : { notDaddr: "127.0.0.0/8" }), ...common });
  }
  if (forwards.length) rules.push({ chain: "forward", owner, oif: bridge, dnatted: true, verdict: { type: "accept" } });
  return rules;
}

function vmRules(vm: FirewallVm): Rule[] {
  const rules: Rule[] = [];
  const owner = vm.key;
  for (const nic of vm.spec.interfaces) {
    for (const pf of nic.user?.portForwards ?? []) {
      const wildcard = pf.address === "0.0.0.0" || pf.address === "::";
      rules.push({
        chain: "input",
        owner,
        family: familyOf(pf.address),
        ...(wildcard ? {} : { daddr: pf.address }),
        protocol: pf.protocol,
        dports: [pf.hostPort],
        verdict: { type: "accept" },
      });
    }
  }
  const vnc = vm.spec.consoles.vnc;
  const port = vnc?.port ?? vm.vncPort;
  if (vnc && port !== undefined) {
    const wildcard = vnc.listen === "0.0.0.0" || vnc.listen === "::";
    rules.push({ chain: "input", owner, family: familyOf(vnc.listen), ...(wildcard ? {} : { daddr: vnc.listen }), protocol: "tcp", dports: [port], verdict: { type: "accept" } });
  }
  return rules;
}

/** Every rule kvmctl wants, in a stable order (networks, then VMs, each by key). */
export function renderFirewall(inputs: FirewallInputs): RenderResult {
  const pending = new Map<string, string>();
  const refused = new Map<string, string>();
  const networks = [...inputs.networks].sort((a, b) => compareText(a.key, b.key));
  const vms = [...inputs.vms].sort((a, b) => compareText(a.key, b.key));
  const rules = [...networks.flatMap((n) => networkRules(n, inputs.qemuUid, pending, inputs.hostPorts, refused)), ...vms.flatMap(vmRules)];
  const needsForwarding = networks.some((n) => n.spec.mode === "nat" || n.spec.mode === "route" || n.spec.mode === "open");
  return { rules, pending, refused, needsForwarding };
}

/** Rules per owner key. */
export function countByOwner(rules: readonly { owner: string }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const rule of rules) counts.set(rule.owner, (counts.get(rule.owner) ?? 0) + 1);
  return counts;
}

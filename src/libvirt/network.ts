// Network XML: build a libvirt virtual network from a Network spec, read it back, compare on
// what the spec sets, and plan `virsh net-update` edits so a changed DHCP reservation or
// range does not need a network restart (which would cut every guest off).
//
// `mode: nat` is defined as libvirt's `<forward mode='open'/>`: libvirt then writes no
// firewall rules for it, and kvmctl's own table does the masquerading and port forwarding.
// With libvirt's own NAT mode its FORWARD rules reject every new inbound connection to the
// guests, and a rule in another table cannot override a reject (see docs/networking.md).
import type { NetworkSpec } from "../api/network.js";
import { ownedUuid, ownerMetadataNode, parseOwnerMetadata, type OwnerMetadata } from "./metadata.js";
import { attr, buildXml, child, children, parseXml, textOf, type XmlNode } from "./xml.js";

/** The UUID kvmctl gives a new network: derived from its name and the controller instance (none: an earlier version's). */
export function networkUuid(name: string, instance?: string): string {
  return ownedUuid("Network", name, instance);
}

/** libvirt's forward mode for each kvmctl mode; undefined: no <forward> (isolated). */
export function libvirtForwardMode(mode: NetworkSpec["mode"]): string | undefined {
  switch (mode) {
    case "nat":
    case "open":
      return "open";
    case "route":
      return "route";
    case "bridge":
      return "bridge";
    case "isolated":
      return undefined;
  }
}

export interface DhcpHostFacts {
  mac?: string;
  ip: string;
  name?: string;
}

export interface DhcpRange {
  start: string;
  end: string;
}

export interface IpFacts {
  /** Position among the network's <ip> elements (net-update --parent-index). */
  index: number;
  address: string;
  prefix?: number;
  dhcp?: { ranges: DhcpRange[]; hosts: DhcpHostFacts[] };
}

export interface NetworkFacts {
  name: string;
  uuid?: string;
  /** libvirt's forward mode (open, route, bridge, nat ...), "none" without <forward>. */
  forwardMode: string;
  bridge?: string;
  /** The bridge's MAC address (libvirt picks one when the definition has none). */
  mac?: string;
  ipv4?: IpFacts;
  ipv6?: IpFacts;
  owner?: OwnerMetadata;
}

/**
 * What libvirt chose for a network when it was first defined (the bridge name and its MAC).
 * A redefinition carries them over: without them libvirt picks new ones, and after the next
 * restart guests would find their gateway on another MAC (their ARP caches hold the old one).
 */
export interface LibvirtChoices {
  bridge?: string;
  mac?: string;
  /** The network's UUID: a redefinition keeps it (libvirt refuses a new one for the same name). */
  uuid?: string;
}

// ---------------------------------------------------------------------------------------
// Build

export function buildNetworkXml(name: string, spec: NetworkSpec, owner?: OwnerMetadata, kept: LibvirtChoices = {}): string {
  const forward = libvirtForwardMode(spec.mode);
  const bridgeMode = spec.mode === "bridge";
  const bridge = spec.bridge ?? (bridgeMode ? undefined : kept.bridge);
  const mac = bridgeMode ? undefined : kept.mac;
  const ips = bridgeMode ? [] : [ipv4Element(spec.ipv4), ipv6Element(spec.ipv6)].filter((ip): ip is XmlNode => ip !== undefined);
  return buildXml({
    network: {
      name,
      uuid: kept.uuid ?? networkUuid(name, owner?.instance),
      ...(owner ? { metadata: ownerMetadataNode(owner) } : {}),
      ...(forward ? { forward: { "@_mode": forward } } : {}),
      // bridge mode joins an existing host bridge; other modes may name the bridge libvirt creates.
      ...(bridge ? { bridge: bridgeMode ? { "@_name": bridge } : { "@_name": bridge, "@_stp": "on", "@_delay": "0" } } : {}),
      ...(mac ? { mac: { "@_address": mac } } : {}),
      ...(ips.length ? { ip: ips } : {}),
    },
  });
}

function ipv4Element(v4: NetworkSpec["ipv4"]): XmlNode | undefined {
  if (!v4) return undefined;
  return {
    "@_address": v4.address,
    "@_prefix": String(v4.prefix),
    ...(v4.dhcp ? { dhcp: { range: [rangeElement(v4.dhcp)], ...(v4.dhcp.hosts.length ? { host: v4.dhcp.hosts.map(dhcpHostElement) } : {}) } } : {}),
  };
}

function ipv6Element(v6: NetworkSpec["ipv6"]): XmlNode | undefined {
  if (!v6) return undefined;
  return {
    "@_family": "ipv6",
    "@_address": v6.address,
    "@_prefix": String(v6.prefix),
    ...(v6.dhcp ? { dhcp: { range: [rangeElement(v6.dhcp)] } } : {}),
  };
}

const rangeElement = (r: DhcpRange): XmlNode => ({ "@_start": r.start, "@_end": r.end });

function dhcpHostElement(h: DhcpHostFacts): XmlNode {
  return { ...(h.mac ? { "@_mac": h.mac.toLowerCase() } : {}), ...(h.name ? { "@_name": h.name } : {}), "@_ip": h.ip };
}

/** One `<host .../>` for `virsh net-update NET add|delete ip-dhcp-host XML`. */
export function buildDhcpHostXml(host: DhcpHostFacts): string {
  return buildXml({ host: dhcpHostElement(host) }).trim();
}

/** One `<range .../>` for `virsh net-update NET add|delete ip-dhcp-range XML`. */
export function buildDhcpRangeXml(range: DhcpRange): string {
  return buildXml({ range: rangeElement(range) }).trim();
}

// ---------------------------------------------------------------------------------------
// Parse

export function parseNetworkXml(xml: string): NetworkFacts {
  const net = child(parseXml(xml), "network");
  if (!net) throw new Error("not a <network> document");
  const forward = child(net, "forward");
  const ips = children(net, "ip");
  const familyOf = (ip: XmlNode) => attr(ip, "family") ?? (attr(ip, "address")?.includes(":") ? "ipv6" : "ipv4");
  const v4 = ips.findIndex((ip) => familyOf(ip) === "ipv4");
  const v6 = ips.findIndex((ip) => familyOf(ip) === "ipv6");
  return {
    name: textOf(net, "name") ?? "",
    uuid: textOf(net, "uuid"),
    forwardMode: forward ? (attr(forward, "mode") ?? "nat") : "none",
    bridge: attr(child(net, "bridge"), "name"),
    mac: attr(child(net, "mac"), "address"),
    ipv4: v4 >= 0 ? parseIp(ips[v4]!, v4) : undefined,
    ipv6: v6 >= 0 ? parseIp(ips[v6]!, v6) : undefined,
    owner: parseOwnerMetadata(child(net, "metadata")),
  };
}

function parseIp(ip: XmlNode, index: number): IpFacts | undefined {
  const address = attr(ip, "address");
  if (address === undefined) return undefined;
  const netmask = attr(ip, "netmask");
  const prefixText = attr(ip, "prefix");
  const prefix = prefixText !== undefined ? Number(prefixText) : netmask ? netmaskToPrefix(netmask) : undefined;
  const dhcp = child(ip, "dhcp");
  const ranges = children(dhcp, "range").flatMap((r) => {
    const start = attr(r, "start");
    const end = attr(r, "end");
    return start !== undefined && end !== undefined ? [{ start, end }] : [];
  });
  const hosts = children(dhcp, "host").flatMap((h): DhcpHostFacts[] => {
    const hostIp = attr(h, "ip");
    if (hostIp === undefined) return [];
    const mac = attr(h, "mac")?.toLowerCase();
    const name = attr(h, "name");
    return [{ ...(mac !== undefined ? { mac } : {}), ip: hostIp, ...(name !== undefined ? { name } : {}) }];
  });
  return { index, address, prefix, ...(dhcp ? { dhcp: { ranges, hosts } } : {}) };
}

/** 255.255.255.0 → 24; undefined for a non-contiguous mask. */
export function netmaskToPrefix(mask: string): number | undefined {
  const parts = mask.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  const bits = parts.map((p) => p.toString(2).padStart(8, "0")).join("");
  if (!/^1*0*$/.test(bits)) return undefined;
  const zero = bits.indexOf("0");
  return zero === -1 ? 32 : zero;
}

// ---------------------------------------------------------------------------------------
// Compare and plan live edits

export interface NetworkDifference {
  field: string;
  desired: unknown;
  live: unknown;
  /** True when only a redefinition + restart applies it; false when net-update can. */
  needsRestart: boolean;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const hostKey = (h: DhcpHostFacts) => `${h.mac?.toLowerCase() ?? ""}|${h.name ?? ""}|${h.ip}`;
const rangeKey = (r: DhcpRange) => `${r.start}-${r.end}`;
const sortedKeys = <T>(items: readonly T[], key: (t: T) => string) => items.map(key).sort();

/**
 * Differences on what the spec sets. libvirt's own additions (the bridge name it picked,
 * the bridge MAC, NAT port ranges, DNS defaults) are not drift.
 */
export function compareNetwork(desired: NetworkFacts, live: NetworkFacts): NetworkDifference[] {
  const out: NetworkDifference[] = [];
  const check = (field: string, d: unknown, l: unknown, needsRestart: boolean) => {
    if (!same(d, l)) out.push({ field, desired: d, live: l, needsRestart });
  };
  check("forward mode", desired.forwardMode, live.forwardMode, true);
  if (desired.bridge !== undefined) check("bridge", desired.bridge, live.bridge, true);
  for (const family of ["ipv4", "ipv6"] as const) {
    const d = desired[family];
    const l = live[family];
    if (!d || !l) {
      if (d || l) out.push({ field: family, desired: d?.address, live: l?.address, needsRestart: true });
      continue;
    }
    check(`${family}.address`, d.address, l.address, true);
    check(`${family}.prefix`, d.prefix, l.prefix, true);
    if (!d.dhcp !== !l.dhcp) {
      out.push({ field: `${family}.dhcp`, desired: d.dhcp ? "enabled" : "disabled", live: l.dhcp ? "enabled" : "disabled", needsRestart: true });
      continue;
    }
    if (!d.dhcp || !l.dhcp) continue;
    check(`${family}.dhcp.ranges`, sortedKeys(d.dhcp.ranges, rangeKey), sortedKeys(l.dhcp.ranges, rangeKey), false);
    check(`${family}.dhcp.hosts`, sortedKeys(d.dhcp.hosts, hostKey), sortedKeys(l.dhcp.hosts, hostKey), false);
  }
  return out;
}

export interface NetUpdate {
  command: "delete" | "add-last";
  section: "ip-dhcp-host" | "ip-dhcp-range";
  xml: string;
  /** `--parent-index`: which <ip> element the edit is for. */
  parentIndex: number;
}

function editsFor<T>(section: NetUpdate["section"], desired: readonly T[], live: readonly T[], key: (t: T) => string, xml: (t: T) => string, parentIndex: number): NetUpdate[] {
  const want = new Set(desired.map(key));
  const have = new Set(live.map(key));
  return [
    // Deletes first, so an address or MAC can move from one entry to another.
    ...live.filter((t) => !want.has(key(t))).map((t): NetUpdate => ({ command: "delete", section, xml: xml(t), parentIndex })),
    ...desired.filter((t) => !have.has(key(t))).map((t): NetUpdate => ({ command: "add-last", section, xml: xml(t), parentIndex })),
  ];
}

/**
 * The net-update edits that turn the live DHCP settings into the desired ones, or undefined
 * when some difference needs a redefinition and restart instead.
 */
export function planNetworkUpdates(desired: NetworkFacts, live: NetworkFacts): NetUpdate[] | undefined {
  if (compareNetwork(desired, live).some((d) => d.needsRestart)) return undefined;
  const updates: NetUpdate[] = [];
  for (const family of ["ipv4", "ipv6"] as const) {
    const d = desired[family]?.dhcp;
    const l = live[family];
    if (!d || !l?.dhcp) continue;
    updates.push(...editsFor("ip-dhcp-host", d.hosts, l.dhcp.hosts, hostKey, buildDhcpHostXml, l.index));
    // A new range is added before the old one goes: libvirt refuses to delete the last range.
    const ranges = editsFor("ip-dhcp-range", d.ranges, l.dhcp.ranges, rangeKey, buildDhcpRangeXml, l.index);
    updates.push(...ranges.filter((u) => u.command === "add-last"), ...ranges.filter((u) => u.command === "delete"));
  }
  return updates;
}

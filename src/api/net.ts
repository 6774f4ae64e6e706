// Address helpers over ipaddr.js, used by the schemas' cross-field checks.
import ipaddr from "ipaddr.js";
import { z } from "zod";

export const ipv4Address = z.string().refine((s) => ipaddr.IPv4.isValidFourPartDecimal(s), {
  error: "must be an IPv4 address like 10.0.0.1",
});
// No zone id ("fe80::1%eth0"): ipaddr.js accepts one, but no firewall rule or libvirt address can hold it.
const isIpv6 = (s: string) => !s.includes("%") && ipaddr.IPv6.isValid(s);
export const ipv6Address = z.string().refine(isIpv6, {
  error: "must be an IPv6 address like fd00::1 (without a %zone)",
});
export const ipAddress = z.string().refine((s) => ipaddr.IPv4.isValidFourPartDecimal(s) || isIpv6(s), {
  error: "must be an IPv4 or IPv6 address (IPv6 without a %zone)",
});
export const cidr = z.string().refine(isCidr, { error: "must be a CIDR range like 10.0.0.0/8 or fd00::/8" });

export function isCidr(s: string): boolean {
  try {
    const [addr] = ipaddr.parseCIDR(s);
    return addr.kind() === "ipv6" || ipaddr.IPv4.isValidFourPartDecimal(s.split("/")[0]!);
  } catch {
    return false;
  }
}

/** True when `address` lies inside `network/prefix` (same family). */
export function inSubnet(address: string, network: string, prefix: number): boolean {
  try {
    const a = ipaddr.parse(address);
    const n = ipaddr.parse(network);
    return a.kind() === n.kind() && a.match(n, prefix);
  } catch {
    return false;
  }
}

/** The network and broadcast addresses of an IPv4 subnet, as strings. */
export function ipv4Bounds(address: string, prefix: number): { network: string; broadcast: string } {
  const cidrText = `${address}/${prefix}`;
  return {
    network: ipaddr.IPv4.networkAddressFromCIDR(cidrText).toString(),
    broadcast: ipaddr.IPv4.broadcastAddressFromCIDR(cidrText).toString(),
  };
}

/** Compares two addresses of the same family numerically (-1, 0, 1). */
export function compareAddresses(a: string, b: string): number {
  const x = ipaddr.parse(a).toByteArray();
  const y = ipaddr.parse(b).toByteArray();
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

/** 127.0.0.0/8 or ::1: reachable from this host only. */
export function isLoopbackAddress(address: string): boolean {
  return address.startsWith("127.") || address === "::1";
}

/** The first and last address of `address/prefix` as numbers (IPv4 or IPv6). */
export function subnetRange(address: string, prefix: number): { start: bigint; end: bigint } {
  const bytes = ipaddr.parse(address).toByteArray();
  const bits = bytes.length * 8;
  const value = bytes.reduce((acc, byte) => (acc << 8n) | BigInt(byte), 0n);
  const size = 1n << BigInt(bits - prefix);
  const start = value - (value % size);
  return { start, end: start + size - 1n };
}


/** A URL without its user name and password: what messages, status and events may show. */
export function shownUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return "(an invalid URL)";
  }
}

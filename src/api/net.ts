// Address helpers over ipaddr.js, used by the schemas' cross-field checks.
import ipaddr from "ipaddr.js";
import { z } from "zod";

export const ipv4Address = z.string().refine((s) => ipaddr.IPv4.isValidFourPartDecimal(s), {
  error: "must be an IPv4 address like 10.0.0.1",
});
export const ipv6Address = z.string().refine((s) => ipaddr.IPv6.isValid(s), {
  error: "must be an IPv6 address like fd00::1",
});
export const ipAddress = z.string().refine((s) => ipaddr.IPv4.isValidFourPartDecimal(s) || ipaddr.IPv6.isValid(s), {
  error: "must be an IPv4 or IPv6 address",
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

/** Two subnets overlap when either contains the other's network address. */
export function subnetsOverlap(a: { address: string; prefix: number }, b: { address: string; prefix: number }): boolean {
  return inSubnet(a.address, b.address, b.prefix) || inSubnet(b.address, a.address, a.prefix);
}

// Network: DESIGN.md §1. A libvirt virtual network plus the firewall rules it implies.
import { z } from "zod";
import { API_VERSION, objectMeta, reportDuplicates, statusBase } from "./common.js";
import { interfaceName, macAddress, port } from "./names.js";
import { cidr, compareAddresses, inSubnet, ipv4Address, ipv4Bounds, ipv6Address } from "./net.js";

export const dhcpHost = z.strictObject({
  mac: macAddress.optional(),
  ip: ipv4Address,
  name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, { error: "must be a host name (DNS-1123 label)" }).optional(),
});

export const ipv4Config = z.strictObject({
  address: ipv4Address.meta({ description: "The host's address on the network (the gateway)." }),
  prefix: z.number().int().min(8).max(30),
  dhcp: z
    .strictObject({
      start: ipv4Address,
      end: ipv4Address,
      hosts: z.array(dhcpHost).default([]),
    })
    .optional(),
});

export const ipv6Config = z.strictObject({
  address: ipv6Address,
  prefix: z.number().int().min(8).max(128),
  dhcp: z.strictObject({ start: ipv6Address, end: ipv6Address }).optional(),
});

export const networkPortForward = z.strictObject({
  protocol: z.enum(["tcp", "udp"]).default("tcp"),
  hostPort: port,
  // IPv4 only: the forward is a DNAT to the guest's IPv4 address.
  hostAddress: ipv4Address.optional().meta({ description: "Only traffic to this host IPv4 address; default any." }),
  guestAddress: ipv4Address,
  guestPort: port,
});

export const egressRule = z.strictObject({
  action: z.enum(["allow", "deny"]),
  to: z.array(cidr).min(1),
  protocol: z.enum(["tcp", "udp"]).optional(),
  ports: z.array(port).optional(),
});

// `user` is not a libvirt network: it stands for the host's passt user networking, whose
// guest traffic is the QEMU user's own (seed 002); it carries only egress rules.
export const networkModes = ["nat", "isolated", "bridge", "open", "route", "user"] as const;

export const networkSpec = z
  .strictObject({
    mode: z.enum(networkModes).default("nat"),
    bridge: interfaceName.optional().meta({ description: "bridge mode: an existing host bridge; other modes: the bridge libvirt creates." }),
    ipv4: ipv4Config.optional(),
    ipv6: ipv6Config.optional(),
    portForwards: z.array(networkPortForward).default([]),
    egress: z.array(egressRule).default([]).meta({ description: "Ordered rules for guest traffic leaving the network; the first match wins." }),
    autostart: z.boolean().default(true),
  })
  .check((ctx) => {
    const spec = ctx.value;
    const issue = (path: (string | number)[], message: string) => ctx.issues.push({ code: "custom", input: spec, path, message });
    if (spec.mode === "user") {
      for (const key of ["ipv4", "ipv6", "bridge"] as const) if (spec[key]) issue([key], `mode user (passt user networking) takes no ${key}`);
      if (spec.portForwards.length) issue(["portForwards"], "mode user takes no port forwards: give them on the VM's user interface");
    } else if (spec.mode === "bridge") {
      if (!spec.bridge) issue(["bridge"], "mode bridge needs the name of an existing host bridge");
      for (const key of ["ipv4", "ipv6"] as const) if (spec[key]) issue([key], `mode bridge takes no ${key}: the host bridge's own network applies`);
      if (spec.portForwards.length) issue(["portForwards"], "port forwards need a nat network");
    } else if (spec.mode === "nat" && !spec.ipv4) {
      issue(["mode"], "mode nat needs ipv4 (address and prefix)");
    }
    if (spec.portForwards.length && spec.mode !== "nat" && spec.mode !== "bridge" && spec.mode !== "user") {
      issue(["portForwards"], `port forwards need a nat network, not ${spec.mode}`);
    }
    // ipaddr.js throws on a malformed address or prefix. Such a field is already reported by
    // its own schema (refinements do not stop this check), so skip the checks that read it.
    const isIpv4 = (ip: string) => ipv4Address.safeParse(ip).success;
    const v4 = spec.ipv4 && isIpv4(spec.ipv4.address) && ipv4Config.shape.prefix.safeParse(spec.ipv4.prefix).success ? spec.ipv4 : undefined;
    if (v4) {
      const { network, broadcast } = ipv4Bounds(v4.address, v4.prefix);
      if (v4.address === network || v4.address === broadcast) issue(["ipv4", "address"], `${v4.address} is the ${v4.address === network ? "network" : "broadcast"} address of ${network}/${v4.prefix}`);
      const usable = (path: (string | number)[], ip: string) => {
        if (!isIpv4(ip)) return;
        if (!inSubnet(ip, v4.address, v4.prefix)) issue(path, `${ip} is outside ${network}/${v4.prefix}`);
        else if (ip === network || ip === broadcast) issue(path, `${ip} is the network or broadcast address`);
        else if (ip === v4.address) issue(path, `${ip} is the network's own address`);
      };
      if (v4.dhcp) {
        usable(["ipv4", "dhcp", "start"], v4.dhcp.start);
        usable(["ipv4", "dhcp", "end"], v4.dhcp.end);
        if (isIpv4(v4.dhcp.start) && isIpv4(v4.dhcp.end) && compareAddresses(v4.dhcp.start, v4.dhcp.end) > 0) issue(["ipv4", "dhcp", "end"], `DHCP range ends (${v4.dhcp.end}) before it starts (${v4.dhcp.start})`);
        v4.dhcp.hosts.forEach((h, i) => usable(["ipv4", "dhcp", "hosts", i, "ip"], h.ip));
        const hosts = v4.dhcp.hosts;
        reportDuplicates(ctx, hosts.map((h) => h.ip), (i) => ["ipv4", "dhcp", "hosts", i, "ip"], "DHCP host address");
        const macs = hosts.flatMap((h, i) => (h.mac ? [[h.mac.toLowerCase(), i] as const] : []));
        reportDuplicates(ctx, macs.map(([m]) => m), (k) => ["ipv4", "dhcp", "hosts", macs[k]![1], "mac"], "DHCP host MAC");
        hosts.forEach((h, i) => {
          if (!h.mac && !h.name) issue(["ipv4", "dhcp", "hosts", i], "a DHCP host needs mac or name");
        });
      }
      spec.portForwards.forEach((pf, i) => {
        if (isIpv4(pf.guestAddress) && !inSubnet(pf.guestAddress, v4.address, v4.prefix)) issue(["portForwards", i, "guestAddress"], `${pf.guestAddress} is outside ${network}/${v4.prefix}`);
      });
    }
    const v6 = spec.ipv6;
    if (v6?.dhcp) {
      for (const end of ["start", "end"] as const) {
        if (!inSubnet(v6.dhcp[end], v6.address, v6.prefix)) issue(["ipv6", "dhcp", end], `${v6.dhcp[end]} is outside ${v6.address}/${v6.prefix}`);
      }
      if (v6.prefix !== 64) issue(["ipv6", "prefix"], "DHCPv6 needs a /64 network (libvirt's rule)");
    }
    reportDuplicates(ctx, spec.portForwards.map((pf) => `${pf.protocol}/${pf.hostPort}`), (i) => ["portForwards", i, "hostPort"], "host port");
  });

/** Every status field the controller writes; kvmctl writes no other (a unit test checks). */
export const networkStatusFields = z.object({
  ...statusBase,
  uuid: z.string().optional(),
  bridge: z.string().optional(),
  active: z.boolean().optional(),
  leases: z.array(z.looseObject({ mac: z.string(), ip: z.string(), hostname: z.string().optional(), expiry: z.string().optional() })).optional(),
  firewall: z.looseObject({ backend: z.string(), rules: z.number() }).optional(),
  /** The forward mode libvirt holds (mode nat is defined as libvirt's open: see docs/networking.md). */
  libvirtForwardMode: z.string().optional(),
});

/** Status as read: parsed leniently (unknown fields kept), a hand edit never blocks the spec. */
export const networkStatus = z.looseObject(networkStatusFields.shape);

export const network = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal("Network"),
  metadata: objectMeta,
  spec: networkSpec.prefault({}),
  status: networkStatus.optional(),
});

export type Network = z.infer<typeof network>;
export type NetworkSpec = z.infer<typeof networkSpec>;
export type NetworkStatus = z.infer<typeof networkStatus>;

// Checks that span several manifests: a host port forwarded twice, two networks on
// overlapping subnets or one bridge, a volume claimed by two VMs. Each finding is
// reported on every object involved, so each file shows its own error.
import { objectKey, type KvmObject } from "./kinds.js";
import { subnetRange } from "./net.js";
import type { FieldPath } from "./validate.js";
import type { Network } from "./network.js";

export interface CrossObjectIssue {
  key: string; // "Kind/name" of the object the issue is reported on
  path: FieldPath;
  message: string;
}

interface Claim {
  key: string;
  path: FieldPath;
  value: string;
  describe: string; // how the claim reads in a message, e.g. "VirtualMachine/web1"
}

export function validateObjectSet(objects: readonly KvmObject[]): CrossObjectIssue[] {
  const issues: CrossObjectIssue[] = [];
  issues.push(...conflicts(hostPortClaims(objects), (v) => `host port ${v}`));
  issues.push(...conflicts(volumeClaims(objects), (v) => `volume ${v}`));
  issues.push(...conflicts(bridgeClaims(objects), (v) => `bridge ${v}`));
  issues.push(...conflicts(poolTargetClaims(objects), (v) => `pool target ${v}`));
  issues.push(...conflicts(userNetworkClaims(objects), () => "mode user (the host's passt user networking)"));
  issues.push(...subnetOverlaps(objects.filter((o): o is Network => o.kind === "Network")));
  return issues;
}

/** Reports each claim whose value another object also claims. */
function conflicts(claims: Claim[], what: (value: string) => string): CrossObjectIssue[] {
  const byValue = new Map<string, Claim[]>();
  for (const claim of claims) byValue.set(claim.value, [...(byValue.get(claim.value) ?? []), claim]);
  const issues: CrossObjectIssue[] = [];
  for (const [value, group] of byValue) {
    const owners = new Set(group.map((c) => c.key));
    if (owners.size < 2) continue; // repeats inside one object are the object schema's job
    for (const claim of group) {
      const others = [...new Set(group.filter((c) => c.key !== claim.key).map((c) => c.describe))];
      issues.push({ key: claim.key, path: claim.path, message: `${what(value)} is also used by ${others.join(", ")}` });
    }
  }
  return issues;
}

/** The passt user networking is one per host: only one Network may describe it. */
function userNetworkClaims(objects: readonly KvmObject[]): Claim[] {
  return objects.flatMap((obj): Claim[] => {
    if (obj.kind !== "Network" || obj.spec.mode !== "user") return [];
    const key = objectKey(obj.kind, obj.metadata.name);
    return [{ key, describe: key, value: "user", path: ["spec", "mode"] }];
  });
}

function hostPortClaims(objects: readonly KvmObject[]): Claim[] {
  const claims: Claim[] = [];
  for (const obj of objects) {
    const key = objectKey(obj.kind, obj.metadata.name);
    if (obj.kind === "VirtualMachine") {
      obj.spec.interfaces.forEach((nic, i) =>
        nic.user?.portForwards.forEach((pf, j) =>
          claims.push({ key, describe: key, value: `${pf.protocol}/${pf.hostPort}`, path: ["spec", "interfaces", i, "user", "portForwards", j, "hostPort"] }),
        ),
      );
    } else if (obj.kind === "Network") {
      obj.spec.portForwards.forEach((pf, i) =>
        claims.push({ key, describe: key, value: `${pf.protocol}/${pf.hostPort}`, path: ["spec", "portForwards", i, "hostPort"] }),
      );
    }
  }
  return claims;
}

function volumeClaims(objects: readonly KvmObject[]): Claim[] {
  return objects.flatMap((obj) => {
    if (obj.kind !== "VirtualMachine") return [];
    const key = objectKey(obj.kind, obj.metadata.name);
    // Index into spec.disks itself (not into the disks that name a volume), so the path points at the right disk.
    return obj.spec.disks.flatMap((d, i) =>
      d.volume === undefined ? [] : [{ key, describe: key, value: `${d.pool}/${d.volume}`, path: ["spec", "disks", i, "volume"] }],
    );
  });
}

function bridgeClaims(objects: readonly KvmObject[]): Claim[] {
  return objects.flatMap((obj) =>
    obj.kind === "Network" && obj.spec.bridge && obj.spec.mode !== "bridge"
      ? [{ key: objectKey(obj.kind, obj.metadata.name), describe: objectKey(obj.kind, obj.metadata.name), value: obj.spec.bridge, path: ["spec", "bridge"] }]
      : [],
  );
}

function poolTargetClaims(objects: readonly KvmObject[]): Claim[] {
  return objects.flatMap((obj) => {
    if (obj.kind !== "StoragePool") return [];
    const key = objectKey(obj.kind, obj.metadata.name);
    const target = obj.spec.type === "dir" ? obj.spec.path : `/dev/${obj.spec.volumeGroup ?? obj.metadata.name}`;
    if (!target) return [];
    return [{ key, describe: key, value: target.replace(/\/+$/, ""), path: ["spec", obj.spec.type === "dir" ? "path" : "volumeGroup"] }];
  });
}

/**
 * Every pair of networks whose subnets overlap, each side reported. Two CIDR blocks overlap
 * only when one holds the other, so a sweep over the blocks sorted by start (larger first) with
 * a stack of the blocks still open finds them in O(n log n) plus one step per overlapping pair
 * (4,000 networks were 38 s with the pairwise check on every read).
 */
function subnetOverlaps(networks: Network[]): CrossObjectIssue[] {
  const issues: { order: [number, number]; issue: CrossObjectIssue }[] = [];
  for (const family of ["ipv4", "ipv6"] as const) {
    const blocks = networks.flatMap((n, index) => (n.spec[family] ? [{ index, net: n, subnet: n.spec[family]!, ...subnetRange(n.spec[family]!.address, n.spec[family]!.prefix) }] : []));
    blocks.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.end > b.end ? -1 : a.end < b.end ? 1 : a.index - b.index));
    const open: typeof blocks = [];
    for (const block of blocks) {
      while (open.length && open[open.length - 1]!.end < block.start) open.pop();
      for (const outer of open) {
        for (const [a, b] of [[outer, block], [block, outer]] as const) {
          issues.push({
            order: [a.index, b.index],
            issue: {
              key: objectKey("Network", a.net.metadata.name),
              path: ["spec", family, "address"],
              message: `${family} subnet ${a.subnet.address}/${a.subnet.prefix} overlaps Network/${b.net.metadata.name} (${b.subnet.address}/${b.subnet.prefix})`,
            },
          });
        }
      }
      open.push(block);
    }
  }
  // In the order the networks were given (family by family), as the pairwise check reported them.
  const familyOf = (i: { issue: CrossObjectIssue }) => (i.issue.path[1] === "ipv4" ? 0 : 1);
  issues.sort((x, y) => familyOf(x) - familyOf(y) || x.order[0] - y.order[0] || x.order[1] - y.order[1]);
  return issues.map((i) => i.issue);
}

// Which host paths a manifest may make the controller use. Whoever can write the manifest
// directory must not get root through it: a dir pool on /etc would turn /etc/shadow into an
// attachable volume, `from.image` would copy any host file into a guest disk, a logical pool
// builds a volume group over (wipes) its devices. So the controller's own configuration
// (--allow-host-path, never the manifests) says which directories each use may reach, and a
// manifest naming a path outside them is Stalled (HostPathNotAllowed) with nothing done.
//
// Pure: the caller resolves real paths (symlinks followed) through the PathResolver port, so
// a symlink inside an allowed directory that points out of it is refused too.
import path from "node:path";

/** What a manifest uses a host path for; each has its own allowed directories. */
export const HOST_PATH_USES = ["pool", "device", "image", "kernel", "secret"] as const;
export type HostPathUse = (typeof HOST_PATH_USES)[number];

export const HOST_PATH_USE_WORDS: Record<HostPathUse, string> = {
  pool: "storage pool directories",
  device: "logical pools' source devices",
  image: "disk images to import",
  kernel: "kernels and initrds",
  secret: "secret files",
};

/** Directories (absolute, real) each use may reach, the directory itself and everything under it. */
export type HostPathPolicy = Record<HostPathUse, readonly string[]>;

/**
 * kvmctl's defaults: libvirt's own image directory and kvmctl's under /var/lib. None of /, /etc,
 * /dev, /proc, /sys, /boot, /root, /run; no device at all (building a logical pool wipes them:
 * name each with --allow-host-path device=/dev/...).
 */
export const DEFAULT_HOST_PATHS: HostPathPolicy = {
  pool: ["/var/lib/libvirt/images", "/var/lib/kvmctl"],
  device: [],
  image: ["/var/lib/libvirt/images", "/var/lib/kvmctl"],
  kernel: ["/var/lib/libvirt/boot", "/var/lib/kvmctl"],
  secret: ["/var/lib/kvmctl/secrets"],
};

/** One host path a manifest names. */
export interface HostPathRef {
  use: HostPathUse;
  /** Where in the manifest, e.g. `spec.disks[1].from.image`. */
  field: string;
  path: string;
}

export class HostPathFlagError extends Error {}

/**
 * The policy from `--allow-host-path USE=DIR` values (each adds DIR to USE's defaults; `none`
 * as the whole value of one of them drops the defaults). Throws HostPathFlagError on a bad one.
 */
export function hostPathPolicy(flags: readonly string[]): HostPathPolicy {
  const dropDefaults = flags.includes("none");
  const policy = Object.fromEntries(HOST_PATH_USES.map((use) => [use, dropDefaults ? [] : [...DEFAULT_HOST_PATHS[use]]])) as Record<HostPathUse, string[]>;
  for (const flag of flags) {
    if (flag === "none") continue;
    const match = /^([a-z]+)=(.+)$/.exec(flag);
    const use = match?.[1] as HostPathUse | undefined;
    if (!match || !HOST_PATH_USES.includes(use!)) throw new HostPathFlagError(`--allow-host-path ${JSON.stringify(flag)}: expected USE=DIR with USE one of ${HOST_PATH_USES.join(", ")} (or "none" to drop the defaults)`);
    const dir = match[2]!;
    if (!path.isAbsolute(dir) || dir.split("/").includes("..")) throw new HostPathFlagError(`--allow-host-path ${JSON.stringify(flag)}: ${JSON.stringify(dir)} must be an absolute path without '..'`);
    if (path.resolve(dir) === "/") throw new HostPathFlagError(`--allow-host-path ${JSON.stringify(flag)}: allowing / would allow everything; name the directories`);
    policy[use!].push(path.resolve(dir));
  }
  return policy;
}

/** The policy in words, for the controller's start line. */
export function describeHostPathPolicy(policy: HostPathPolicy): Record<HostPathUse, string> {
  return Object.fromEntries(HOST_PATH_USES.map((use) => [use, policy[use].length ? policy[use].join(", ") : "(none)"])) as Record<HostPathUse, string>;
}

/** True when `real` is `root` or inside it (both absolute and resolved). */
export function isWithin(real: string, root: string): boolean {
  const rel = path.relative(root, real);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/**
 * The refusals for `refs`, in words that name the field, the path and what would allow it;
 * empty when all are allowed. `realPath` follows symlinks (a path that does not exist yet,
 * as a dir pool's, resolves through its deepest existing parent), for the manifest's paths and
 * the policy's directories alike; a path it cannot resolve is refused.
 */
export function hostPathRefusals(refs: readonly HostPathRef[], policy: HostPathPolicy, realPath: (p: string) => string): string[] {
  const refusals: string[] = [];
  const resolve = (p: string): string | Error => {
    try {
      return realPath(p);
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  };
  for (const ref of refs) {
    const roots = policy[ref.use].map(resolve).filter((r): r is string => typeof r === "string");
    const real = resolve(ref.path);
    if (real instanceof Error) {
      refusals.push(`${ref.field}: ${JSON.stringify(ref.path)} cannot be resolved (${real.message}); refused`);
      continue;
    }
    if (roots.some((root) => isWithin(real, root))) continue;
    const resolved = real === ref.path ? "" : ` (really ${JSON.stringify(real)})`;
    const allowed = policy[ref.use].length ? `only ${policy[ref.use].join(", ")} ${policy[ref.use].length > 1 ? "are" : "is"} allowed` : "none is allowed";
    refusals.push(`${ref.field}: ${JSON.stringify(ref.path)}${resolved} is outside the host paths this controller allows for ${HOST_PATH_USE_WORDS[ref.use]} (${allowed}; the controller's --allow-host-path ${ref.use}=DIR adds one)`);
  }
  return refusals;
}

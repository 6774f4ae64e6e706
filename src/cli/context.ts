// What every command needs: the manifest directory, the libvirt URI, and a store over them.
// Resolved from flags, then the environment, then defaults (DESIGN.md §3).
import type { ManifestStore } from "../store/index.js";

export interface GlobalOptions {
  dir?: string;
  connect?: string;
  statusDir?: string;
}

export interface CliContext {
  dir: string;
  connect: string;
  statusDir: string | undefined;
  /**
   * The store over the directory. "read" (get, describe, diff, wait): the parse cache is written
   * only by the directory's owner, so reading someone else's directory leaves it as it was.
   * "control" (the controller): every file parsed and validated anew, the cache's parse results
   * never trusted.
   */
  openStore(access?: "read" | "write" | "control"): Promise<ManifestStore>;
}

export const DEFAULT_DIR = "./state";
export const DEFAULT_CONNECT = "qemu:///system";

export function resolveContext(options: GlobalOptions, env: NodeJS.ProcessEnv = process.env): CliContext {
  const dir = options.dir ?? env.KVMCTL_DIR ?? DEFAULT_DIR;
  const connect = options.connect ?? env.KVMCTL_CONNECT ?? DEFAULT_CONNECT;
  const statusDir = options.statusDir ?? (env.KVMCTL_STATUS_DIR || undefined);
  let store: ManifestStore | undefined;
  return {
    dir,
    connect,
    statusDir,
    async openStore(access = "write") {
      if (!store) {
        const { ManifestStore } = await import("../store/index.js");
        store = new ManifestStore({ dir, statusDir, diskCacheWrites: access === "read" ? "owner" : "always", verifyDiskCache: access === "control" });
      }
      return store;
    },
  };
}

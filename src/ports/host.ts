// Ports for the host services other than libvirt. Reconcilers reach the host only through
// these (and the Hypervisor port); src/adapters/ implements them on Linux (host-ports.ts builds them), the unit
// tests with in-memory fakes.
import type { HostListener, Rule } from "../firewall/rules.js";

/** Files that hold secrets (a VNC password): read, never logged. */
export interface SecretFiles {
  /** The file's text; throws with a message naming the file when it cannot be read. */
  read(file: string): Promise<string>;
}

export interface ImageInfo {
  format: string;
  virtualSize: number;
  /** Another file the image reads (a qcow2 backing file or external data file), if any. */
  backingFile?: string;
}

/** Real paths on the host, for the host-path policy (src/controllers/host-path-policy.ts). */
export interface PathResolver {
  /**
   * `file` with every symlink resolved; a path that does not exist (yet) resolves through its
   * deepest existing parent, the rest appended as written.
   */
  real(file: string): string;
}

/** qemu-img: learn an image's format and size, convert it into an existing volume. */
export interface ImageTool {
  info(file: string): Promise<ImageInfo>;
  /** Writes `source` converted to `targetFormat` into the existing `target` (file or LV). */
  convert(source: string, sourceFormat: string, target: string, targetFormat: "qcow2" | "raw"): Promise<void>;
}

/** Host network devices: which bridge a tap is a port of, and plugging it back. */
export interface NetDevices {
  /** The bridge `device` is a port of; undefined when none (or no such device). */
  bridgeOf(device: string): string | undefined;
  attach(device: string, bridge: string): Promise<void>;
}

/** Kernel settings the networks need. */
export interface Sysctl {
  /** Turns IPv4 forwarding on; true when it was off. */
  ensureIpv4Forwarding(): Promise<boolean>;
}

/** Files written for a command to read (virsh define, nft -f): private, removed after use. */
export interface ScratchFiles {
  /** Writes `content` to a new private file; returns its path. */
  write(label: string, content: string): Promise<string>;
  remove(file: string): Promise<void>;
  /** Removes every file still there. */
  close(): Promise<void>;
}

export type BackendName = "nftables" | "iptables";

export interface Observed {
  /** Equal strings mean equal firewall content. */
  fingerprint: string;
  rules: { owner: string }[];
}

/** One host firewall (nftables or iptables): kvmctl's own table or chains, nothing else. */
export interface FirewallBackend {
  readonly name: BackendName;
  observe(): Promise<Observed>;
  apply(rules: readonly Rule[]): Promise<void>;
  /** Whether `rules` alone would apply, changing nothing: the backend's error, or undefined when they would. */
  check?(rules: readonly Rule[]): Promise<string | undefined>;
  /** The rules as this backend stores them, so an observation can be checked against them. */
  placed(rules: readonly Rule[]): readonly { owner: string }[];
  /** kvmctl's table or chains from before controller instances, if present, and whose rules they hold. */
  legacy?(): Promise<{ where: string; owners: string[] } | undefined>;
  removeLegacy?(): Promise<void>;
}

export interface FirewallHost {
  /** nftables when it works here, else iptables, else undefined (or only the preferred one); its table or chains are `instance`'s own. */
  detect(preference: "auto" | BackendName, instance: string): Promise<FirewallBackend | undefined>;
  /** The uid QEMU runs as (passt's traffic is QEMU's own); undefined when unknown. */
  qemuUid(): number | undefined;
  /** Sockets bound on the host (TCP listening, UDP unconnected): a port forward must not take their traffic. */
  listening(): Promise<HostListener[]>;
}

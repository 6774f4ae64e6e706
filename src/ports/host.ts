// Ports for the host services other than libvirt. Reconcilers reach the host only through
// these (and the Hypervisor port); src/adapters/ implements them on Linux (host-ports.ts builds them), the unit
// tests with in-memory fakes.
import type { HostListener, Rule } from "../firewall/rules.js";
import type { VncAuth, VncSaslSupport } from "../libvirt/qemu-conf.js";

/** Files that hold secrets (a VNC password): read, never logged. */
export interface SecretFiles {
  /** The file's text; throws with a message naming the file when it cannot be read. */
  read(file: string): Promise<string>;
  /** The file's bytes as they are (an answer file copied byte for byte); same rules and errors as `read`. */
  readBytes(file: string): Promise<Buffer>;
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
  /**
   * Reports changes to this backend's own table as the host makes them (nftables: `nft -j
   * monitor`), until stopped; absent where the backend cannot (iptables): then the periodic
   * check is all there is. Changes to other tables are reported as ignored, never as changes.
   */
  watch?(handlers: FirewallWatchHandlers): FirewallWatch;
}

/** What a firewall watch reports (FirewallBackend.watch). */
export interface FirewallWatchHandlers {
  /** kvmctl's own table changed, or may have (`why`: what was seen): compare it now. */
  changed(why: string): void;
  /** Changes to other tables, seen and left alone: lines per table ("inet admin"). */
  ignored(tables: ReadonlyMap<string, number>): void;
  /** The watching process listens (again, with `restart`); `changed` follows, as what happened before it listened was not seen. */
  started(info: { pid: number | undefined; restart: boolean }): void;
  /** The watching process ended (`message`: why); it is started again after `retryInMs`. */
  ended(message: string, retryInMs: number): void;
}

export interface FirewallWatch {
  /** Stops watching: the watching process is ended (by its own handle) and not restarted. */
  stop(): Promise<void>;
}

export interface FirewallHost {
  /** nftables when it works here, else iptables, else undefined (or only the preferred one); its table or chains are `instance`'s own. */
  detect(preference: "auto" | BackendName, instance: string): Promise<FirewallBackend | undefined>;
  /** The uid QEMU runs as (passt's traffic is QEMU's own); undefined when unknown. */
  qemuUid(): number | undefined;
  /** Sockets bound on the host (TCP listening, UDP unconnected): a port forward must not take their traffic. */
  listening(): Promise<HostListener[]>;
}

/** A file of a cloud-init NoCloud seed (src/cloudinit/seed.ts renders them). */
export type SeedFileName = "meta-data" | "user-data" | "network-config" | "vendor-data";

export interface SeedFile {
  name: SeedFileName;
  content: string;
}

/**
 * Builds a NoCloud seed medium (volume label cidata) from rendered files, without mounting
 * anything: an ISO 9660 image (for a CD-ROM or a disk) or a VFAT image (a disk only). The
 * files hold secrets (the VM's private host key, user-data): the medium is 0600 and nothing
 * of its content is logged.
 */
export interface SeedMedia {
  /**
   * Writes the medium to `target` atomically (a temp file in its directory, renamed over it),
   * mode 0600. Refuses a `target` that is a symlink or not a regular file; its directory must exist.
   */
  build(target: string, format: "iso" | "vfat", files: readonly SeedFile[]): Promise<void>;
  /**
   * Makes `dir` (the seed directory of one VM) and its missing parents, each 0711 (QEMU's user
   * may pass through, list nothing); a symlink or non-directory anywhere below `root` is refused.
   */
  prepareDir(root: string, dir: string): Promise<void>;
  /**
   * Records that `target` now holds the seed of `hash` (a sidecar `<target>.built`, 0600,
   * written atomically), together with the medium's inode, size and mtime.
   */
  recordBuilt(target: string, hash: string): Promise<void>;
  /**
   * The hash recorded for `target`, when the record exists and the medium is still the file it
   * was recorded for (same inode, size, mtime); undefined otherwise (then: rebuild).
   */
  builtHash(target: string): Promise<string | undefined>;
  /** Removes a VM's seed directory (never following a symlink); false when there was none. */
  removeDir(dir: string): Promise<boolean>;
}

/** Where one VM's unattend medium lives (the controller's unattendLocation gives it). */
export interface UnattendLocation {
  /** kvmctl's seed directory: every VM's directory is under it. */
  root: string;
  /** The VM's directory (0711, root's, shared with the cloud-init seed): holds the digest key and the build record. */
  vmDir: string;
  /** `<vmDir>/unattend`: 0700, owned by the user QEMU runs as; holds only the medium. */
  dir: string;
  /** `<dir>/unattend.img`: the medium, 0600, owned by the user QEMU runs as. */
  path: string;
}

export type UnattendMediumKind = "cdrom" | "floppy";

/**
 * Windows unattend media (seed 004): the answer file at the root of an ISO (label UNATTEND)
 * or a 1.44 MB FAT12 floppy image, built without mounting anything. The answer file is a
 * secret (domain-join credentials, passwords): nothing of it is logged, and the only record
 * of what a medium holds is a keyed digest.
 */
export interface UnattendMedia {
  /**
   * HMAC-SHA256 of (medium, content) under a random 256-bit key kept 0600 in the VM's
   * directory (made on first use): equal for equal inputs, and no help to anyone guessing the
   * content without the key.
   */
  digest(at: UnattendLocation, medium: UnattendMediumKind, content: Buffer): Promise<string>;
  /** The digest recorded for the medium when it is still the file recorded (inode, size, mtime); undefined: rebuild. */
  builtHash(at: UnattendLocation): Promise<string | undefined>;
  /** Builds the medium atomically (0600, QEMU's user's, in QEMU's 0700 directory) and records `hash`. */
  build(at: UnattendLocation, medium: UnattendMediumKind, content: Buffer, hash: string): Promise<void>;
  /** Whether anything of the VM's unattend medium (medium, record, key) is on the host. */
  present(at: UnattendLocation): Promise<boolean>;
  /** Removes the medium, its directory, its record and its key (never following a symlink); false when there was none. */
  remove(at: UnattendLocation): Promise<boolean>;
}

/**
 * An SSH host key pair. `privateKey` is a secret: the adapter makes it a non-enumerable
 * property, so JSON.stringify and util.inspect (a log line, a status) never show it.
 */
export interface HostKeyPair {
  /** `ssh-ed25519 AAAA... kvmctl-<vm>` */
  readonly publicKey: string;
  /** The OpenSSH private key text. Never logged, never in status, events or diffs. */
  readonly privateKey: string;
}

/** The pinned ed25519 host key of each VM, kept under kvmctl's data directory. */
export interface HostKeys {
  /** The VM's key pair, generated on first use and reused after (the pin must not change). */
  ensure(vm: string): Promise<HostKeyPair>;
  /** The VM's public key when one exists (nothing is generated). */
  publicKey(vm: string): Promise<string | undefined>;
  /** Forgets the VM's key (its manifest is gone). */
  remove(vm: string): Promise<void>;
}

/**
 * Where the download of one base image (by its sha256) stands: `absent` (nothing on disk, not
 * started), `running`, `failed` (a broken download: its partial file is kept and the next
 * start resumes it), `mismatch` (finished, but the bytes' sha256 is not the one asked for: the
 * partial file is gone), `complete` (verified; `file` is the image).
 */
export type DownloadPhase = "absent" | "running" | "failed" | "mismatch" | "complete";

export interface DownloadState {
  phase: DownloadPhase;
  /** Bytes on disk so far (the partial file's size while running or failed). */
  bytes: number;
  /** The whole size when the server said it. */
  total?: number;
  /** complete: the verified image file (under the download directory). */
  file?: string;
  /** failed: why; mismatch: expected and actual. */
  message?: string;
  /** mismatch: the sha256 the bytes had. */
  actual?: string;
}

/**
 * Base images downloaded over http(s) into kvmctl's own download directory (never a pool
 * directory: libvirt would list a partial file as a volume). One download per sha256 at a time,
 * in the background: `start` returns at once and `state` says how it goes. A broken download
 * keeps `<sha256>.part` and resumes with an HTTP Range request (or starts over when the server
 * ignores the range); the finished bytes are checked against the sha256 and renamed into place,
 * or removed when they do not match.
 */
export interface Downloads {
  /** Where the download of `sha256` stands (no side effect). */
  state(sha256: string): DownloadState;
  /** Starts (or resumes) the download in the background unless it is running or complete; true when it started now. */
  start(url: string, sha256: string): boolean;
  /** Records that `target` (`<poolUuid>/<volume>`) holds the whole image of `sha256` (its import ran to its end). */
  recordImported(sha256: string, target: string): Promise<void>;
  /** Whether `target` was recorded as holding the whole image of `sha256`. */
  imported(sha256: string, target: string): Promise<boolean>;
}

/** The host's QEMU driver settings that no domain XML carries (src/adapters/qemu-config.ts). */
export interface QemuConfig {
  /** Whether a VNC console without a password of its own gets SASL, and only SASL, on this host. */
  vncSasl(): Promise<VncSaslSupport>;
  /**
   * The auth the running QEMU of domain `name` gives its VNC console, read from the process
   * itself; undefined when that cannot be known here (not running, no VNC, not this host's).
   */
  runningVncAuth(name: string): Promise<VncAuth | undefined>;
}

// The Hypervisor port: everything the reconcilers ask of libvirt. Reconcilers and plans see
// only this interface (src/adapters/virsh-hypervisor.ts implements it with virsh; the unit
// tests use test/unit/helpers/fake-hypervisor.ts).
//
// Contract: once an object exists it is addressed by its UUID, never by its name. virsh reads
// a domain argument as an ID first, then a UUID, then a name (networks and pools: UUID before
// name), and a manifest name such as "1" or a UUID-shaped label is valid: by name, kvmctl
// would act on someone else's object. Defining takes the XML (which carries the UUID).
// Failures are HypervisorError (./errors.ts): NotFoundError, BusyError, ExistsError, or kind
// "other"; `cause` holds the adapter's error.
import type { NetUpdate } from "../libvirt/index.js";
import type { Lease, LiveDomain, LiveState } from "./live.js";
import type { VolumeFacts } from "../libvirt/index.js";

export type HypervisorObjectKind = "domain" | "pool" | "network";

/** A libvirt lifecycle event: says which object to look at, never what it now is. */
export interface HypervisorEvent {
  kind: HypervisorObjectKind;
  name: string;
  /** e.g. "lifecycle: Stopped Destroyed". */
  detail: string;
  /** When it was received (ms epoch); a picture taken at or after this reflects it. */
  at: number;
  /**
   * It only announces the event that follows (libvirt's "Shutdown Finished" before "Stopped"):
   * nothing has changed yet, so nothing is woken for it (a reconcile now would re-read libvirt
   * just before the Stopped event, which is applied to the picture without reading).
   */
  prelude?: boolean;
  /**
   * The event our own command on this domain brought back (define → Defined, start → Started,
   * destroy → Stopped Destroyed, undefine → Undefined; src/adapters/echoes.ts): the reconcile
   * that ran the command read the domain afterwards, so it is not woken again for it. What
   * renders from every domain (the firewall) still is.
   */
  echo?: boolean;
}

export interface HypervisorEventHandlers {
  onEvent(event: HypervisorEvent): void;
  /** The event stream was re-established (libvirtd restarted): events may have been missed. */
  onReconnect(stream: string): void;
  onError(stream: string, message: string): void;
  /**
   * The stream's callbacks are registered with libvirtd: from now on its events arrive.
   * `complete` false: libvirtd refused some, whose events never come (nothing is then trusted
   * to hold without a reading).
   */
  onListening?(stream: string, complete: boolean): void;
}

/** Where a `net-update` applies: the running network, its next-start definition, or both. */
export type NetworkUpdateScope = "live" | "config" | "both";

export interface Hypervisor {
  /**
   * A picture of libvirt whose reading started at or after `since` (ms epoch). Concurrent
   * callers share one reading; a newer cached picture is returned as is. `mend`, while
   * watching: a picture made stale only by changes to a few domains (their events, this
   * process's commands on them) is brought up to date by reading those alone — for callers
   * that, like an informer's, trust the picture for what libvirt sends no event for.
   */
  observe(since: number, options?: { mend?: boolean }): Promise<LiveState>;
  /** One domain as it is now, cheaper than a whole picture; undefined when it does not exist. */
  readDomain(uuid: string): Promise<LiveDomain | undefined>;
  /**
   * When libvirt last changed as far as this process knows (ms epoch): its own changing
   * commands and libvirt's events. A picture older than this may miss something.
   */
  readonly changedAt: number;
  /**
   * The current picture's `takenAt` when it is known to still hold now (an informer's cache):
   * `observe` of that time answers it without a reading. It holds while the event streams
   * have listened without a break since before it was read, and no event and no changing
   * command of this process came since. Facts libvirt sends no event for (autostart flags,
   * volumes, edits such as `setmaxmem --config`) may have changed by hand meanwhile: the
   * picture is trusted only while its reading is at most `maxAgeMs` old. Undefined otherwise
   * (also before `watch`, and in `controller --once`).
   * With `domain` (a domain's name): whether it holds for that domain alone, for a reader whose
   * plan reads nothing of other domains — changes known to be about other domains (their
   * events, this process's commands on them, ended or running) do not count then.
   */
  informedSince(maxAgeMs: number, domain?: string): number | undefined;
  /**
   * Follows libvirt's lifecycle events until stop() is called. `maxAgeMs`: how old a whole
   * reading may be for a stale picture to be mended by reading only the domains that changed
   * (as informedSince's; default 0: never).
   */
  watch(handlers: HypervisorEventHandlers, options?: { maxAgeMs?: number }): { stop(): void };

  defineDomain(xml: string): Promise<void>;
  /**
   * Starts the domain; resolves to how libvirt shows it right after (read together with the
   * start, so a reconcile needs no second reading), undefined when that reading failed.
   */
  startDomain(uuid: string): Promise<LiveDomain | undefined>;
  /** Asks the guest to shut down (ACPI). */
  shutdownDomain(uuid: string): Promise<void>;
  /** Forces the domain off; resolves also when it was not running. */
  destroyDomain(uuid: string): Promise<void>;
  /** Removes the definition with its NVRAM and managed save image. */
  undefineDomain(uuid: string): Promise<void>;
  setDomainAutostart(uuid: string, enabled: boolean): Promise<void>;

  createVolume(poolUuid: string, xml: string): Promise<void>;
  /** Creates a volume from `xml` holding a copy of `fromVolume` (converted to the new volume's format). */
  createVolumeFrom(poolUuid: string, xml: string, fromPoolUuid: string, fromVolume: string): Promise<void>;
  readVolume(poolUuid: string, volume: string): Promise<VolumeFacts | undefined>;
  /** The volume's path on the host (a file or a block device). */
  volumePath(poolUuid: string, volume: string): Promise<string>;
  /** Copies a host file's bytes into the volume as they are. */
  uploadVolume(poolUuid: string, volume: string, file: string): Promise<void>;
  /** Grows the volume to `capacity` bytes; resolves false (and changes nothing) when that would shrink it. */
  resizeVolume(poolUuid: string, volume: string, capacity: number): Promise<boolean>;
  /** Grows a disk of a running domain (by its target, e.g. "vda") to `capacity` bytes; the guest sees the new size. */
  resizeDiskLive(uuid: string, target: string, capacity: number): Promise<void>;
  deleteVolume(poolUuid: string, volume: string): Promise<void>;

  defineNetwork(xml: string): Promise<void>;
  /** Edits a DHCP host or range in place (`net-update`), without restarting the network. */
  updateNetwork(uuid: string, update: NetUpdate, scope: NetworkUpdateScope): Promise<void>;
  startNetwork(uuid: string): Promise<void>;
  destroyNetwork(uuid: string): Promise<void>;
  undefineNetwork(uuid: string): Promise<void>;
  setNetworkAutostart(uuid: string, enabled: boolean): Promise<void>;
  /** The network's DHCP leases; undefined when the network does not exist. */
  networkLeases(uuid: string): Promise<Lease[] | undefined>;

  definePool(xml: string): Promise<void>;
  /** Builds the pool's storage (dir: the directory; logical: the volume group). `noOverwrite`: never over existing data; an existing one is fine. */
  buildPool(uuid: string, options: { noOverwrite: boolean }): Promise<void>;
  startPool(uuid: string): Promise<void>;
  destroyPool(uuid: string): Promise<void>;
  undefinePool(uuid: string): Promise<void>;
  setPoolAutostart(uuid: string, enabled: boolean): Promise<void>;

  /** Ends the event streams and removes scratch files. */
  close(): Promise<void>;
}

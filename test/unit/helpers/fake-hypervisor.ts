// An in-memory libvirt behind the Hypervisor port (src/ports/hypervisor.ts), for reconciler
// unit tests. It mirrors what the virsh adapter (src/adapters/virsh-hypervisor.ts) and libvirt
// do where the reconcilers can tell: objects are addressed by UUID only (anything else is
// refused, as the adapter refuses it), definitions are parsed with the project's own parsers
// (src/libvirt), names are unique per kind, a running object keeps its running definition when
// it is redefined, undefining a running object leaves it transient, and so on.
//
// Every mutating call is recorded in `calls` ("startDomain <uuid>") so a test can assert which
// objects were touched, and that a converged object costs no call at all. Changes "by hand"
// (an operator's virsh) go through `byHand(...)` or the edit helpers: they are not recorded
// and, as in libvirt, not known to the process until an event says so.
import { randomUUID } from "node:crypto";
import {
  attr,
  buildXml,
  child,
  parseDomainXml,
  parseNetworkXml,
  parsePoolXml,
  parseVolumeXml,
  parseXml,
  type DhcpHostFacts,
  type DhcpRange,
  type DomainFacts,
  type IpFacts,
  type NetUpdate,
  type NetworkFacts,
  type PoolFacts,
  type VolumeFacts,
  type XmlNode,
} from "../../../src/libvirt/index.js";
import {
  ExistsError,
  HypervisorError,
  NotFoundError,
  type Hypervisor,
  type HypervisorEvent,
  type HypervisorEventHandlers,
  type Lease,
  type LiveDomain,
  type LiveNetwork,
  type LivePool,
  type LiveState,
  type NetworkUpdateScope,
} from "../../../src/ports/index.js";
import { pictureHoldsForDomain, pictureStillHolds } from "../../../src/adapters/informed.js";
import type { Clock } from "../../../src/runtime/clock.js";
import { ManualClock } from "./manual-clock.js";

/** UUIDs as libvirt prints them (the adapter's check: a name never reaches a command). */
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const ACTIVE_DOMAIN_STATES = new Set(["running", "paused", "blocked", "pmsuspended", "in shutdown", "idle"]);
const GiB = 1024 ** 3;

interface DomainRecord {
  uuid: string;
  /** The persistent (next boot) definition; for a transient domain, the running one. */
  config: DomainFacts;
  running?: DomainFacts;
  state: string;
  reason: string;
  autostart: boolean;
  persistent: boolean;
  /** virsh's domain ID while it runs. */
  id?: number;
}

interface NetworkRecord {
  uuid: string;
  config: NetworkFacts;
  running?: NetworkFacts;
  autostart: boolean;
  persistent: boolean;
  leases: Lease[];
}

interface PoolRecord {
  uuid: string;
  /** The definition in use (what `pool-dumpxml` shows, and what the observer reads). */
  def: PoolFacts;
  /** A definition given while the pool was active: it takes effect at the next start. */
  newDef?: PoolFacts;
  active: boolean;
  autostart: boolean;
  volumes: Map<string, VolumeFacts>;
}

/** A host-side hook: taps plugged into bridges when guests start, dropped when a network stops. */
export interface TapHost {
  plug(device: string, bridge: string): void;
  bridgeGone(bridge: string): void;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

function uuidArg(uuid: string): string {
  if (!UUID_RE.test(uuid)) throw new HypervisorError(`not a UUID: ${JSON.stringify(uuid)}`, "other");
  return uuid.toLowerCase();
}

const sameHost = (a: DhcpHostFacts, b: DhcpHostFacts) => (a.mac ?? "") === (b.mac ?? "") && (a.name ?? "") === (b.name ?? "") && a.ip === b.ip;
const sameRange = (a: DhcpRange, b: DhcpRange) => a.start === b.start && a.end === b.end;

export class FakeHypervisor implements Hypervisor {
  /** Every mutating call, in order, as "<method> <uuid> [details]" (attempts: failed ones too). */
  readonly calls: string[] = [];
  /** The guest ignores ACPI: shutdownDomain changes nothing (tests the forced stop after the grace period). */
  acpiIgnored = false;
  /** Directories that exist on the "host" (a dir pool starts only on an existing directory). */
  readonly hostDirs = new Set<string>();
  /** Volume groups that exist on the "host" (a logical pool starts only on an existing one). */
  readonly hostVolumeGroups = new Set<string>();
  /** What each volume was filled from ("pool-uuid/volume" → "upload <file>" / "clone <pool>/<vol>"). */
  readonly volumeOrigins = new Map<string, string>();
  /** Set by fakePorts: where taps go when guests start. */
  tapHost: TapHost | undefined;
  closed = false;
  /**
   * Opt-in, as the real observer: the last picture is kept and answers `observe(since)` for
   * any `since` up to its `takenAt` (a change by hand is then seen only by a new reading), and
   * `informedSince` follows the real rule (src/adapters/informed.ts) while `listeningSince` is
   * set (the event streams' registration). Off: every observe is a fresh reading and nothing
   * is informed.
   */
  cachePictures = false;
  listeningSince: number | undefined;
  /** Full readings of libvirt (observe calls the kept picture did not answer). */
  reads = 0;
  /** Single-domain readings (readDomain calls). */
  domainReads = 0;
  /** "fails": startDomain starts the domain but its reading afterwards yields nothing (as the adapter's can). */
  startReadBack: "works" | "fails" = "works";
  private cached: LiveState | undefined;

  private readonly domains = new Map<string, DomainRecord>();
  private readonly networks = new Map<string, NetworkRecord>();
  private readonly pools = new Map<string, PoolRecord>();
  private readonly watchers = new Set<HypervisorEventHandlers>();
  private readonly failures = new Map<string, Error[]>();
  private lastChangeAt = 0;
  /** The domains (by name) changed since the kept picture was taken; "everything" when anything else changed too. */
  private changedSincePicture: Set<string> | "everything" = new Set();
  private quiet = 0;
  private nextDomainId = 1;
  private nextTap = 0;
  private nextMac = 1;
  private nextVncPort = 5900;

  constructor(readonly clock: Clock = new ManualClock()) {}

  // -------------------------------------------------------------------------------------
  // Test controls

  /** Runs `fn` as an operator would (virsh by hand): its calls are not recorded, changedAt does not move. */
  async byHand<T>(fn: (hv: this) => Promise<T> | T): Promise<T> {
    this.quiet++;
    try {
      return await fn(this);
    } finally {
      this.quiet--;
    }
  }

  /** The next call of `method` throws `error` (once per call to failNext). */
  failNext(method: keyof Hypervisor, error: Error): void {
    this.failures.set(method, [...(this.failures.get(method) ?? []), error]);
  }

  /** Forgets the recorded calls (e.g. after setting the scene). */
  clearCalls(): void {
    this.calls.length = 0;
  }

  /** The objects the recorded calls addressed (each call's UUID; a clone's source pool too), in call order, without repeats. */
  uuidsTouched(): string[] {
    return [...new Set(this.calls.flatMap((c) => {
      const [method, uuid, , fromPool] = c.split(" ");
      return method === "createVolumeFrom" ? [uuid!, fromPool!] : [uuid!];
    }))];
  }

  /** Delivers a libvirt event to every watcher, as libvirt's event stream would (and marks the picture stale). */
  emit(event: HypervisorEvent): void {
    this.markChanged(event.kind === "domain" ? event.name : undefined);
    for (const handlers of this.watchers) handlers.onEvent(event);
  }

  /** The event stream was re-established (libvirtd restarted). */
  reconnect(stream = "lifecycle"): void {
    this.markChanged();
    for (const handlers of this.watchers) handlers.onReconnect(stream);
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  /** The UUID of the object of `kind` named `name`, if there is one. */
  uuidOf(kind: "domain" | "network" | "pool", name: string): string | undefined {
    if (kind === "domain") return this.domainByName(name)?.uuid;
    if (kind === "network") return this.networkByName(name)?.uuid;
    return this.poolByName(name)?.uuid;
  }

  /** Everything libvirt holds about one object, as text: compare before and after to prove it untouched. */
  dump(kind: "domain" | "network" | "pool", uuid: string): string {
    const record = kind === "domain" ? this.domains.get(uuid) : kind === "network" ? this.networks.get(uuid) : this.pools.get(uuid);
    if (!record) return "<absent>";
    return JSON.stringify(record, (_key, value: unknown) => (value instanceof Map ? Object.fromEntries(value) : value));
  }

  /**
   * A domain as libvirt holds it (a copy), by name. (By name only: a helper that also took a
   * UUID would have virsh's ambiguity, which the tests exist to rule out.)
   */
  domain(name: string): LiveDomain | undefined {
    const record = this.domainByName(name);
    return record && this.liveDomain(record);
  }

  network(name: string): LiveNetwork | undefined {
    const record = this.networkByName(name);
    return record && this.liveNetwork(record);
  }

  pool(name: string): (LivePool & { pendingDefinition?: PoolFacts }) | undefined {
    const record = this.poolByName(name);
    if (!record) return undefined;
    return { ...this.livePool(record), ...(record.newDef ? { pendingDefinition: clone(record.newDef) } : {}) };
  }

  /** Edits a domain's persistent definition in place, as `virsh edit` would (by hand). */
  editDomain(name: string, edit: (config: DomainFacts) => void): void {
    const record = this.domainByName(name);
    if (!record) throw new Error(`no domain ${name}`);
    edit(record.config);
  }

  /** Edits a network's definition by hand: the next-start one ("config"), the running one ("live"), or both. */
  editNetwork(name: string, edit: (facts: NetworkFacts) => void, scope: NetworkUpdateScope = "both"): void {
    const record = this.networkByName(name);
    if (!record) throw new Error(`no network ${name}`);
    if (scope !== "live") edit(record.config);
    if (scope !== "config" && record.running) edit(record.running);
  }

  /** Edits a pool's definition by hand (`pool-edit`): an active pool's takes effect at its next start. */
  editPool(name: string, edit: (facts: PoolFacts) => void): void {
    const record = this.poolByName(name);
    if (!record) throw new Error(`no pool ${name}`);
    if (record.active) {
      record.newDef ??= clone(record.def);
      edit(record.newDef);
    } else edit(record.def);
  }

  /** The guest crashed (on_crash destroy: libvirt reports "shut off (crashed)"), or powered itself off ("shutdown"). */
  guestStopped(name: string, reason: "crashed" | "shutdown" = "crashed"): void {
    const record = this.domainByName(name);
    if (!record || !ACTIVE_DOMAIN_STATES.has(record.state)) throw new Error(`no running domain ${name}`);
    this.stopDomain(record, reason);
  }

  /** The network's DHCP leases, as dnsmasq would hand them out. */
  setLeases(name: string, leases: Lease[]): void {
    const record = this.networkByName(name);
    if (!record) throw new Error(`no network ${name}`);
    record.leases = clone(leases);
  }

  /** A volume put into an active pool by hand (an operator's image, another tool's disk). */
  addVolume(poolName: string, volume: string, capacity: number, format = "qcow2"): void {
    const pool = this.poolByName(poolName);
    if (!pool) throw new Error(`no pool ${poolName}`);
    pool.volumes.set(volume, { name: volume, path: this.pathOf(pool, volume), capacity, allocation: 0, format });
  }

  /**
   * A domain kvmctl did not make: no <kvmctl:owner>, a random UUID (or `uuid`). Running unless
   * `running: false`; `id` sets its virsh ID (the number `virsh start 7` would resolve first).
   */
  async addForeignDomain(name: string, options: { running?: boolean; uuid?: string; id?: number; memoryMiB?: number; autostart?: boolean; network?: string } = {}): Promise<string> {
    const uuid = options.uuid ?? randomUUID();
    const xml = buildXml({
      domain: {
        "@_type": "kvm",
        name,
        uuid,
        memory: { "@_unit": "KiB", "#text": String((options.memoryMiB ?? 512) * 1024) },
        vcpu: { "@_placement": "static", "#text": "1" },
        os: { type: { "@_arch": "x86_64", "@_machine": "pc-q35-8.2", "#text": "hvm" } },
        devices: options.network ? { interface: [{ "@_type": "network", source: { "@_network": options.network }, model: { "@_type": "virtio" } }] } : {},
      },
    });
    await this.byHand(async (hv) => {
      await hv.defineDomain(xml);
      if (options.autostart) await hv.setDomainAutostart(uuid, true);
      if (options.running ?? true) {
        if (options.id !== undefined) hv.nextDomainId = options.id;
        await hv.startDomain(uuid);
      }
    });
    return uuid;
  }

  /** A network kvmctl did not make (no owner metadata, a random UUID unless given), active unless told otherwise. */
  async addForeignNetwork(name: string, options: { active?: boolean; uuid?: string; autostart?: boolean; address?: string } = {}): Promise<string> {
    const uuid = options.uuid ?? randomUUID();
    const xml = buildXml({
      network: {
        name,
        uuid,
        forward: { "@_mode": "nat" },
        ip: [{ "@_address": options.address ?? "192.168.122.1", "@_netmask": "255.255.255.0", dhcp: { range: [{ "@_start": (options.address ?? "192.168.122.1").replace(/\.\d+$/, ".2"), "@_end": (options.address ?? "192.168.122.1").replace(/\.\d+$/, ".254") }] } }],
      },
    });
    await this.byHand(async (hv) => {
      await hv.defineNetwork(xml);
      if (options.autostart ?? true) await hv.setNetworkAutostart(uuid, true);
      if (options.active ?? true) await hv.startNetwork(uuid);
    });
    return uuid;
  }

  /** A dir pool kvmctl did not make (its UUID is not kvmctl's name-derived one), active unless told otherwise. */
  async addForeignPool(name: string, options: { active?: boolean; uuid?: string; path?: string; autostart?: boolean } = {}): Promise<string> {
    const uuid = options.uuid ?? randomUUID();
    const path = options.path ?? `/srv/foreign/${name}`;
    this.hostDirs.add(path);
    const xml = buildXml({ pool: { "@_type": "dir", name, uuid, target: { path } } });
    await this.byHand(async (hv) => {
      await hv.definePool(xml);
      if (options.autostart ?? true) await hv.setPoolAutostart(uuid, true);
      if (options.active ?? true) await hv.startPool(uuid);
    });
    return uuid;
  }

  // -------------------------------------------------------------------------------------
  // Hypervisor: reading

  get changedAt(): number {
    return this.lastChangeAt;
  }

  informedSince(maxAgeMs: number, domain?: string): number | undefined {
    const picture = this.cached;
    if (!this.cachePictures || !picture) return undefined;
    const facts = { readAt: picture.takenAt, takenAt: picture.takenAt, listeningSince: this.listeningSince, changedAt: this.lastChangeAt, mutationsInFlight: 0, now: this.clock.now(), maxAgeMs };
    // For one domain: the rule of the adapter (only other domains changed), with the same listening and age conditions.
    const changed = this.changedSincePicture;
    const holdsForDomain = domain !== undefined && changed !== "everything" && pictureStillHolds({ ...facts, changedAt: picture.takenAt }) && pictureHoldsForDomain([...changed].map((name) => ({ name })), [], (ref) => "name" in ref && ref.name === domain);
    return holdsForDomain || pictureStillHolds(facts) ? picture.takenAt : undefined;
  }

  /** Every observe's `mend` (Hypervisor.observe), in call order: which readers trusted the informer. */
  readonly mendAsked: boolean[] = [];

  async observe(since: number, options: { mend?: boolean } = {}): Promise<LiveState> {
    this.mendAsked.push(options.mend === true);
    if (this.cachePictures && this.cached && this.cached.takenAt >= since) return this.cached;
    const domains = new Map<string, LiveDomain>();
    for (const d of this.domains.values()) domains.set(d.config.name, this.liveDomain(d));
    const pools = new Map<string, LivePool>();
    for (const p of this.pools.values()) pools.set(p.def.name, this.livePool(p));
    const networks = new Map<string, LiveNetwork>();
    for (const n of this.networks.values()) networks.set(n.config.name, this.liveNetwork(n));
    this.reads++;
    const picture = { takenAt: this.clock.now(), domains, pools, networks };
    if (this.cachePictures) {
      this.cached = picture;
      this.changedSincePicture = new Set();
    }
    return picture;
  }

  async readDomain(uuid: string): Promise<LiveDomain | undefined> {
    this.domainReads++;
    const record = this.domains.get(uuidArg(uuid));
    return record && this.liveDomain(record);
  }

  watch(handlers: HypervisorEventHandlers): { stop(): void } {
    this.watchers.add(handlers);
    return { stop: () => void this.watchers.delete(handlers) };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.watchers.clear();
  }

  // -------------------------------------------------------------------------------------
  // Domains

  async defineDomain(xml: string): Promise<void> {
    const facts = parseDomainXml(xml);
    const uuid = (facts.uuid || randomUUID()).toLowerCase();
    this.mutate(`defineDomain ${uuid}`, "defineDomain", facts.name || undefined);
    if (!facts.name) throw new HypervisorError("XML error: missing domain name", "other");
    facts.uuid = uuid;
    const byName = this.domainByName(facts.name);
    if (byName && byName.uuid !== uuid) throw new ExistsError(`operation failed: domain '${facts.name}' already exists with uuid ${byName.uuid}`);
    const existing = this.domains.get(uuid);
    if (existing && existing.config.name !== facts.name) throw new ExistsError(`operation failed: domain '${existing.config.name}' is already defined with uuid ${uuid}`);
    // libvirt gives every interface without one a MAC when it defines the domain.
    for (const nic of facts.interfaces) nic.mac ??= this.newMac();
    if (existing) {
      existing.config = facts;
      existing.persistent = true;
    } else {
      this.domains.set(uuid, { uuid, config: facts, state: "shut off", reason: "unknown", autostart: false, persistent: true });
    }
  }

  async startDomain(uuid: string): Promise<LiveDomain | undefined> {
    const d = this.domainFor("startDomain", uuid);
    if (ACTIVE_DOMAIN_STATES.has(d.state)) throw new ExistsError("Requested operation is not valid: domain is already running");
    // What QEMU needs to start: its volumes in active pools, its networks active.
    for (const disk of d.config.disks) {
      if (!disk.pool || !disk.volume) continue;
      const pool = this.poolByName(disk.pool);
      if (!pool) throw new NotFoundError(`failed to get pool '${disk.pool}'`);
      if (!pool.active) throw new HypervisorError(`Requested operation is not valid: storage pool '${disk.pool}' is not active`, "other");
      if (!pool.volumes.has(disk.volume)) throw new NotFoundError(`Storage volume not found: no storage vol with matching path '${disk.volume}'`);
    }
    const running = clone(d.config);
    for (const nic of running.interfaces) {
      if (nic.type !== "network" && nic.type !== "bridge") continue;
      const network = nic.type === "network" ? this.networkByName(nic.source ?? "") : undefined;
      if (nic.type === "network" && !network) throw new NotFoundError(`Network not found: no network with matching name '${nic.source}'`);
      if (network && !network.running) throw new HypervisorError(`Requested operation is not valid: network '${nic.source}' is not active`, "other");
      nic.target = `vnet${this.nextTap++}`;
      const bridge = network ? network.running?.bridge : nic.source;
      if (bridge) this.tapHost?.plug(nic.target, bridge);
    }
    if (running.vnc?.autoport) running.vnc = { ...running.vnc, port: this.nextVncPort++ };
    d.running = running;
    d.state = "running";
    d.reason = "booted";
    d.id = this.nextDomainId++;
    return this.startReadBack === "fails" ? undefined : this.liveDomain(d);
  }

  async shutdownDomain(uuid: string): Promise<void> {
    const d = this.domainFor("shutdownDomain", uuid);
    if (!ACTIVE_DOMAIN_STATES.has(d.state)) throw new HypervisorError("Requested operation is not valid: domain is not running", "other");
    if (this.acpiIgnored) return;
    this.stopDomain(d, "shutdown");
  }

  async destroyDomain(uuid: string): Promise<void> {
    const d = this.domainFor("destroyDomain", uuid);
    // The adapter resolves when the domain was not running.
    if (!ACTIVE_DOMAIN_STATES.has(d.state)) return;
    this.stopDomain(d, "destroyed");
  }

  async undefineDomain(uuid: string): Promise<void> {
    const d = this.domainFor("undefineDomain", uuid);
    if (ACTIVE_DOMAIN_STATES.has(d.state)) {
      // Still running, now transient: gone at its next stop; its definition is the running one.
      d.persistent = false;
      d.autostart = false;
      if (d.running) d.config = clone(d.running);
    } else {
      this.domains.delete(d.uuid);
    }
  }

  async setDomainAutostart(uuid: string, enabled: boolean): Promise<void> {
    const d = this.domainFor("setDomainAutostart", uuid, enabled ? "on" : "off");
    if (!d.persistent) throw new HypervisorError("Requested operation is not valid: cannot set autostart for transient domain", "other");
    d.autostart = enabled;
  }

  // -------------------------------------------------------------------------------------
  // Volumes

  async createVolume(poolUuid: string, xml: string): Promise<void> {
    const facts = parseVolumeXml(xml);
    const pool = this.activePoolFor("createVolume", poolUuid, facts.name);
    if (pool.volumes.has(facts.name)) throw new ExistsError(`storage volume '${facts.name}' exists already`);
    pool.volumes.set(facts.name, { ...facts, path: this.pathOf(pool, facts.name), format: facts.format ?? (pool.def.type === "logical" ? undefined : "raw") });
  }

  async createVolumeFrom(poolUuid: string, xml: string, fromPoolUuid: string, fromVolume: string): Promise<void> {
    const facts = parseVolumeXml(xml);
    const pool = this.activePoolFor("createVolumeFrom", poolUuid, facts.name, uuidArg(fromPoolUuid), fromVolume);
    const from = this.pools.get(fromPoolUuid.toLowerCase());
    if (!from) throw new NotFoundError(`failed to get pool '${fromPoolUuid}'`);
    if (!from.active) throw new HypervisorError(`Requested operation is not valid: storage pool '${from.def.name}' is not active`, "other");
    const source = from.volumes.get(fromVolume);
    if (!source) throw new NotFoundError(`Storage volume not found: no storage vol with matching name '${fromVolume}'`);
    if (pool.volumes.has(facts.name)) throw new ExistsError(`storage volume '${facts.name}' exists already`);
    pool.volumes.set(facts.name, { ...facts, path: this.pathOf(pool, facts.name), capacity: Math.max(facts.capacity, source.capacity) });
    this.volumeOrigins.set(`${pool.uuid}/${facts.name}`, `clone ${from.def.name}/${fromVolume}`);
  }

  async readVolume(poolUuid: string, volume: string): Promise<VolumeFacts | undefined> {
    const pool = this.pools.get(uuidArg(poolUuid));
    if (!pool) return undefined; // the adapter: not-found reads as absent
    if (!pool.active) throw new HypervisorError(`Requested operation is not valid: storage pool '${pool.def.name}' is not active`, "other");
    const facts = pool.volumes.get(volume);
    return facts && clone(facts);
  }

  async volumePath(poolUuid: string, volume: string): Promise<string> {
    const pool = this.pools.get(uuidArg(poolUuid));
    if (!pool) throw new NotFoundError(`failed to get pool '${poolUuid}'`);
    if (!pool.active) throw new HypervisorError(`Requested operation is not valid: storage pool '${pool.def.name}' is not active`, "other");
    const facts = pool.volumes.get(volume);
    if (!facts) throw new NotFoundError(`Storage volume not found: no storage vol with matching name '${volume}'`);
    return facts.path ?? this.pathOf(pool, volume);
  }

  async uploadVolume(poolUuid: string, volume: string, file: string): Promise<void> {
    const pool = this.activePoolFor("uploadVolume", poolUuid, volume);
    if (!pool.volumes.has(volume)) throw new NotFoundError(`Storage volume not found: no storage vol with matching name '${volume}'`);
    this.volumeOrigins.set(`${pool.uuid}/${volume}`, `upload ${file}`);
  }

  async resizeVolume(poolUuid: string, volume: string, capacity: number): Promise<boolean> {
    const pool = this.activePoolFor("resizeVolume", poolUuid, volume, String(capacity));
    const facts = pool.volumes.get(volume);
    if (!facts) throw new NotFoundError(`Storage volume not found: no storage vol with matching name '${volume}'`);
    if (capacity < facts.capacity) return false; // the adapter: libvirt's "shrink" refusal
    // As QEMU does: a running domain holds the image's write lock; only blockresize may grow it.
    const user = [...this.domains.values()].find((d) => d.running?.disks.some((disk) => disk.pool === pool.def.name && disk.volume === volume));
    if (user) throw new HypervisorError(`Failed to get "write" lock: Is another process using the image [${this.pathOf(pool, volume)}]?`, "other");
    facts.capacity = capacity;
    return true;
  }

  async resizeDiskLive(uuid: string, target: string, capacity: number): Promise<void> {
    const d = this.domainFor("resizeDiskLive", uuid, target, String(capacity));
    const disk = d.running?.disks.find((x) => x.target === target);
    if (!disk?.pool || !disk.volume) throw new HypervisorError(`invalid argument: disk '${target}' not found in domain`, "other");
    const pool = [...this.pools.values()].find((p) => p.def.name === disk.pool);
    const facts = pool?.volumes.get(disk.volume);
    if (!facts) throw new NotFoundError(`Storage volume not found: ${disk.volume}`);
    if (capacity < facts.capacity) throw new HypervisorError("invalid argument: can't shrink a disk", "other");
    facts.capacity = capacity;
  }

  async deleteVolume(poolUuid: string, volume: string): Promise<void> {
    const pool = this.activePoolFor("deleteVolume", poolUuid, volume);
    if (!pool.volumes.delete(volume)) throw new NotFoundError(`Storage volume not found: no storage vol with matching name '${volume}'`);
    this.volumeOrigins.delete(`${pool.uuid}/${volume}`);
  }

  // -------------------------------------------------------------------------------------
  // Networks

  async defineNetwork(xml: string): Promise<void> {
    const facts = parseNetworkXml(xml);
    const uuid = (facts.uuid || randomUUID()).toLowerCase();
    this.mutate(`defineNetwork ${uuid}`, "defineNetwork");
    if (!facts.name) throw new HypervisorError("XML error: missing network name", "other");
    const byName = this.networkByName(facts.name);
    if (byName && byName.uuid !== uuid) throw new ExistsError(`operation failed: network '${facts.name}' already exists with uuid ${byName.uuid}`);
    const existing = this.networks.get(uuid);
    if (existing && existing.config.name !== facts.name) throw new ExistsError(`operation failed: network '${existing.config.name}' is already defined with uuid ${uuid}`);
    facts.uuid = uuid;
    // libvirt picks a bridge name and its MAC at define time for the networks it makes a bridge for.
    if (facts.forwardMode !== "bridge") {
      facts.bridge ??= this.freeBridge(uuid);
      facts.mac ??= this.newMac();
    }
    if (existing) {
      existing.config = facts;
      existing.persistent = true;
    } else {
      this.networks.set(uuid, { uuid, config: facts, autostart: false, persistent: true, leases: [] });
    }
  }

  async updateNetwork(uuid: string, update: NetUpdate, scope: NetworkUpdateScope): Promise<void> {
    const n = this.networkFor("updateNetwork", uuid, update.command, update.section, scope);
    if (scope !== "config" && !n.running) throw new HypervisorError("Requested operation is not valid: network is not running", "other");
    // All or nothing: edited copies replace the definitions only when every edit applied.
    const config = scope === "live" ? undefined : clone(n.config);
    const running = scope === "config" ? undefined : clone(n.running);
    for (const facts of [config, running]) if (facts) applyNetUpdate(facts, update);
    if (config) n.config = config;
    if (running) n.running = running;
  }

  async startNetwork(uuid: string): Promise<void> {
    const n = this.networkFor("startNetwork", uuid);
    if (n.running) throw new ExistsError("Requested operation is not valid: network is already active");
    const running = clone(n.config);
    if (running.forwardMode !== "bridge") {
      running.bridge ??= this.freeBridge(n.uuid);
      running.mac ??= this.newMac();
    }
    n.running = running;
  }

  async destroyNetwork(uuid: string): Promise<void> {
    const n = this.networkFor("destroyNetwork", uuid);
    if (!n.running) throw new HypervisorError("Requested operation is not valid: network is not active", "other");
    const bridge = n.running.bridge;
    n.running = undefined;
    // The bridge goes with the network: the guests' taps are no longer ports of anything.
    if (bridge && n.config.forwardMode !== "bridge") this.tapHost?.bridgeGone(bridge);
    if (!n.persistent) this.networks.delete(n.uuid);
  }

  async undefineNetwork(uuid: string): Promise<void> {
    const n = this.networkFor("undefineNetwork", uuid);
    if (n.running) {
      n.persistent = false;
      n.autostart = false;
      n.config = clone(n.running);
    } else {
      this.networks.delete(n.uuid);
    }
  }

  async setNetworkAutostart(uuid: string, enabled: boolean): Promise<void> {
    const n = this.networkFor("setNetworkAutostart", uuid, enabled ? "on" : "off");
    if (!n.persistent) throw new HypervisorError("Requested operation is not valid: cannot set autostart for transient network", "other");
    n.autostart = enabled;
  }

  async networkLeases(uuid: string): Promise<Lease[] | undefined> {
    const n = this.networks.get(uuidArg(uuid));
    return n && clone(n.leases);
  }

  // -------------------------------------------------------------------------------------
  // Pools

  async definePool(xml: string): Promise<void> {
    const facts = parsePoolXml(xml);
    const uuid = (facts.uuid || randomUUID()).toLowerCase();
    this.mutate(`definePool ${uuid}`, "definePool");
    if (!facts.name) throw new HypervisorError("XML error: missing pool name", "other");
    facts.uuid = uuid;
    const byName = this.poolByName(facts.name);
    if (byName && byName.uuid !== uuid) throw new ExistsError(`operation failed: pool '${facts.name}' already exists with uuid ${byName.uuid}`);
    const existing = this.pools.get(uuid);
    if (existing && existing.def.name !== facts.name) throw new ExistsError(`operation failed: pool '${existing.def.name}' is already defined with uuid ${uuid}`);
    if (existing) {
      // libvirt: an active pool keeps the definition it runs with until it is restarted.
      if (existing.active) existing.newDef = facts;
      else existing.def = facts;
    } else {
      this.pools.set(uuid, { uuid, def: facts, active: false, autostart: false, volumes: new Map() });
    }
  }

  async buildPool(uuid: string, options: { noOverwrite: boolean }): Promise<void> {
    const p = this.poolFor("buildPool", uuid, options.noOverwrite ? "--no-overwrite" : "");
    if (p.active) throw new ExistsError(`Requested operation is not valid: storage pool '${p.def.name}' is already active`);
    const def = p.newDef ?? p.def;
    if (def.type === "logical") {
      // The adapter: with --no-overwrite an existing volume group is fine as it is.
      if (def.volumeGroup && this.hostVolumeGroups.has(def.volumeGroup) && !options.noOverwrite) throw new HypervisorError(`Storage pool already built: volume group ${def.volumeGroup} exists`, "other");
      if (def.volumeGroup) this.hostVolumeGroups.add(def.volumeGroup);
    } else if (def.targetPath) {
      this.hostDirs.add(def.targetPath);
    }
  }

  async startPool(uuid: string): Promise<void> {
    const p = this.poolFor("startPool", uuid);
    if (p.active) throw new ExistsError(`Requested operation is not valid: storage pool '${p.def.name}' is already active`);
    const def = p.newDef ?? p.def;
    if (def.type === "logical") {
      if (!def.volumeGroup || !this.hostVolumeGroups.has(def.volumeGroup)) throw new HypervisorError(`internal error: Failed to find matching source for volume group ${def.volumeGroup ?? "?"}`, "other");
    } else if (!def.targetPath || !this.hostDirs.has(def.targetPath)) {
      throw new HypervisorError(`cannot open directory '${def.targetPath ?? ""}': No such file or directory`, "other");
    }
    p.def = def;
    p.newDef = undefined;
    p.active = true;
  }

  async destroyPool(uuid: string): Promise<void> {
    const p = this.poolFor("destroyPool", uuid);
    if (!p.active) throw new HypervisorError(`Requested operation is not valid: storage pool '${p.def.name}' is not active`, "other");
    p.active = false;
    if (p.newDef) p.def = p.newDef;
    p.newDef = undefined;
  }

  async undefinePool(uuid: string): Promise<void> {
    const p = this.poolFor("undefinePool", uuid);
    if (p.active) throw new HypervisorError(`Requested operation is not valid: storage pool '${p.def.name}' is still active`, "other");
    this.pools.delete(p.uuid);
  }

  async setPoolAutostart(uuid: string, enabled: boolean): Promise<void> {
    const p = this.poolFor("setPoolAutostart", uuid, enabled ? "on" : "off");
    p.autostart = enabled;
  }

  // -------------------------------------------------------------------------------------
  // Internals

  /**
   * A change known to the process, now. The manual clock stands still during a pass, so with
   * kept pictures a change in the same ms as the last reading is stamped 1 ms after it: it
   * happened after the reading, as it would on a real clock.
   */
  private markChanged(domain?: string): void {
    this.lastChangeAt = Math.max(this.clock.now(), this.cachePictures && this.cached ? this.cached.takenAt + 1 : 0);
    if (domain === undefined) this.changedSincePicture = "everything";
    else if (this.changedSincePicture !== "everything") this.changedSincePicture.add(domain);
  }

  /** Records a mutating call (unless by hand) and throws an injected failure for it; `domain`: the one domain (by name) it is about. */
  private mutate(call: string, method: string, domain?: string): void {
    if (this.quiet === 0) {
      this.calls.push(call.trim());
      this.markChanged(domain);
    }
    const failure = this.failures.get(method)?.shift();
    if (failure) throw failure;
  }

  private domainFor(method: string, uuid: string, ...details: string[]): DomainRecord {
    const id = uuidArg(uuid);
    this.mutate(`${method} ${id} ${details.join(" ")}`, method, this.domains.get(id)?.config.name);
    const d = this.domains.get(id);
    if (!d) throw new NotFoundError(`failed to get domain '${uuid}'`);
    return d;
  }

  private networkFor(method: string, uuid: string, ...details: string[]): NetworkRecord {
    const id = uuidArg(uuid);
    this.mutate(`${method} ${id} ${details.join(" ")}`, method);
    const n = this.networks.get(id);
    if (!n) throw new NotFoundError(`failed to get network '${uuid}'`);
    return n;
  }

  private poolFor(method: string, uuid: string, ...details: string[]): PoolRecord {
    const id = uuidArg(uuid);
    this.mutate(`${method} ${id} ${details.join(" ")}`, method);
    const p = this.pools.get(id);
    if (!p) throw new NotFoundError(`failed to get pool '${uuid}'`);
    return p;
  }

  private activePoolFor(method: string, uuid: string, ...details: string[]): PoolRecord {
    const p = this.poolFor(method, uuid, ...details);
    if (!p.active) throw new HypervisorError(`Requested operation is not valid: storage pool '${p.def.name}' is not active`, "other");
    return p;
  }

  private stopDomain(d: DomainRecord, reason: string): void {
    d.running = undefined;
    d.state = "shut off";
    d.reason = reason;
    d.id = undefined;
    if (!d.persistent) this.domains.delete(d.uuid);
  }

  private domainByName(name: string): DomainRecord | undefined {
    return [...this.domains.values()].find((d) => d.config.name === name);
  }

  private networkByName(name: string): NetworkRecord | undefined {
    return [...this.networks.values()].find((n) => n.config.name === name);
  }

  private poolByName(name: string): PoolRecord | undefined {
    return [...this.pools.values()].find((p) => p.def.name === name);
  }

  private pathOf(pool: PoolRecord, volume: string): string {
    return `/fake/${pool.def.name}/${volume}`;
  }

  private newMac(): string {
    const n = this.nextMac++;
    return `52:54:00:${[(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff].map((b) => b.toString(16).padStart(2, "0")).join(":")}`;
  }

  /** The lowest virbrN no other network uses. */
  private freeBridge(uuid: string): string {
    const used = new Set([...this.networks.values()].filter((n) => n.uuid !== uuid).flatMap((n) => [n.config.bridge, n.running?.bridge]));
    for (let i = 0; ; i++) if (!used.has(`virbr${i}`)) return `virbr${i}`;
  }

  private liveDomain(d: DomainRecord): LiveDomain {
    return clone({ config: d.config, ...(d.running ? { running: d.running } : {}), state: d.state, reason: d.reason, autostart: d.autostart, persistent: d.persistent });
  }

  private liveNetwork(n: NetworkRecord): LiveNetwork {
    return clone({ uuid: n.uuid, name: n.config.name, config: n.config, ...(n.running ? { running: n.running } : {}), active: n.running !== undefined, autostart: n.autostart, persistent: n.persistent });
  }

  private livePool(p: PoolRecord): LivePool {
    const allocation = [...p.volumes.values()].reduce((sum, v) => sum + (v.allocation ?? v.capacity), 0);
    const capacity = p.active ? 100 * GiB : 0;
    const facts: PoolFacts = { ...p.def, capacity, allocation: p.active ? allocation : 0, available: p.active ? capacity - allocation : 0 };
    // Volumes are listed only for active pools (the observer's vol-list).
    return clone({ facts, active: p.active, autostart: p.autostart, volumes: p.active ? p.volumes : new Map<string, VolumeFacts>() });
  }
}

/** One `net-update` edit on a network definition, with libvirt's refusals. */
function applyNetUpdate(facts: NetworkFacts, update: NetUpdate): void {
  const ip: IpFacts | undefined = [facts.ipv4, facts.ipv6].find((i) => i?.index === update.parentIndex);
  if (!ip) throw new HypervisorError(`couldn't find an <ip> element with index ${update.parentIndex} in network '${facts.name}'`, "other");
  ip.dhcp ??= { ranges: [], hosts: [] };
  const root = parseXml(update.xml);
  if (update.section === "ip-dhcp-host") {
    const node: XmlNode | undefined = child(root, "host");
    const hostIp = attr(node, "ip");
    if (!node || hostIp === undefined) throw new HypervisorError(`XML error: not a dhcp host: ${update.xml}`, "other");
    const mac = attr(node, "mac")?.toLowerCase();
    const name = attr(node, "name");
    const host: DhcpHostFacts = { ...(mac !== undefined ? { mac } : {}), ip: hostIp, ...(name !== undefined ? { name } : {}) };
    const hosts = ip.dhcp.hosts;
    if (update.command === "add-last") {
      // libvirt refuses a host that shares its MAC, name or address with an existing one.
      const clash = hosts.find((h) => (host.mac !== undefined && h.mac === host.mac) || (host.name !== undefined && h.name === host.name) || h.ip === host.ip);
      if (clash) throw new HypervisorError(`there is an existing dhcp host entry in network '${facts.name}' that matches "${update.xml}"`, "other");
      hosts.push(host);
    } else {
      const index = hosts.findIndex((h) => sameHost(h, host));
      if (index < 0) throw new HypervisorError(`couldn't locate a matching dhcp host entry in network '${facts.name}'`, "other");
      hosts.splice(index, 1);
    }
  } else {
    const node = child(root, "range");
    const start = attr(node, "start");
    const end = attr(node, "end");
    if (start === undefined || end === undefined) throw new HypervisorError(`XML error: not a dhcp range: ${update.xml}`, "other");
    const range = { start, end };
    const ranges = ip.dhcp.ranges;
    if (update.command === "add-last") {
      if (ranges.some((r) => sameRange(r, range))) throw new HypervisorError(`there is an existing dhcp range entry in network '${facts.name}' that matches "${update.xml}"`, "other");
      ranges.push(range);
    } else {
      const index = ranges.findIndex((r) => sameRange(r, range));
      if (index < 0) throw new HypervisorError(`couldn't locate a matching dhcp range entry in network '${facts.name}'`, "other");
      // (The plan adds a new range before it deletes the old one, for this refusal.)
      if (ranges.length === 1) throw new HypervisorError(`cannot delete the last dhcp range of network '${facts.name}'`, "other");
      ranges.splice(index, 1);
    }
  }
}

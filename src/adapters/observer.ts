// One consistent picture of libvirt: every domain, pool, volume and network, read with a
// constant number of virsh processes (filtered lists, then the objects' XML split over a few
// parallel batches, then the volumes' XML likewise). Concurrent requests share one refresh;
// a caller asks for a picture taken after a given time, so an event or an action of its own
// is always reflected. Whether the last picture still holds now is the hypervisor adapter's
// call (./informed.ts): it knows the event streams.
import { parsedOnce, parseDomainXml, parseNetworkXml, parsePoolXml, parseVolumeXml } from "../libvirt/index.js";
import type { LiveDomain, LiveNetwork, LivePool, LiveState } from "../ports/index.js";
import type { Virsh } from "./virsh.js";
import type { DomainRef } from "./informed.js";

export type { LiveDomain, LiveNetwork, LivePool, LiveState } from "../ports/index.js";

const SAFE = /^[A-Za-z0-9_.:+@-]+$/;

// Objects rarely change between passes: their unchanged XML is not parsed again.
const domainFacts = parsedOnce(parseDomainXml);
/** A domain XML's facts, parsed once per distinct text (throws on XML that is not a domain). */
export const domainFactsOf = (xml: string) => domainFacts(xml);
const networkFacts = parsedOnce(parseNetworkXml, 512);
const poolFacts = parsedOnce(parsePoolXml, 512);
const volumeFacts = parsedOnce(parseVolumeXml);

/** What one domain's reading runs: inactive and running XML, state with reason, autostart and persistence. */
const domainReads = (uuid: string): string[][] => [
  ["dumpxml", "--inactive", "--security-info", uuid],
  ["domstate", "--reason", uuid],
  ["dumpxml", uuid],
  ["dominfo", uuid],
];

function domainFromReads([inactiveXml, state, activeXml, info]: (string | undefined)[]): LiveDomain | undefined {
  if (!inactiveXml || !state) return undefined;
  return liveDomain(inactiveXml, state, activeXml, {
    autostart: /^Autostart:\s+enable$/m.test(info ?? ""),
    persistent: !/^Persistent:\s+no$/m.test(info ?? ""),
  });
}

function liveDomain(inactiveXml: string, state: string, activeXml: string | undefined, flags: { autostart: boolean; persistent: boolean }): LiveDomain {
  const [stateText = "", reason = ""] = state.trim().match(/^(.*?)(?: \((.*)\))?$/)?.slice(1) ?? [];
  const active = !["shut off", "crashed"].includes(stateText);
  return {
    config: domainFacts(inactiveXml),
    running: active && activeXml ? domainFacts(activeXml) : undefined,
    state: stateText,
    reason,
    ...flags,
  };
}

/** virsh processes one observation may run side by side. */
const BATCH_LANES = 3;

/** A domain named by a change, as a virsh argument; undefined when virsh could read it as something else (an ID, a UUID). */
function domainArg(ref: DomainRef): string | undefined {
  if ("uuid" in ref) return SAFE.test(ref.uuid) ? ref.uuid : undefined;
  const looksLikeId = /^\d+$/.test(ref.name) || /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(ref.name);
  return SAFE.test(ref.name) && !looksLikeId ? ref.name : undefined;
}

/**
 * What tells the observer which domains changed since its picture was read (the hypervisor
 * adapter, from its change log and event streams), so that a stale picture is brought up to
 * date by reading those alone.
 */
export interface ChangeSource {
  /** The change log's position now: a reading started now reflects every change up to it. */
  mark(): number;
  /**
   * The domains whose reading brings a picture read from `mark` (its whole reading started at
   * `readAt`) up to date; undefined when only a whole reading can (anything else changed, an
   * event stream was not listening throughout, the reading is too old).
   */
  domainsChangedSince(mark: number, readAt: number): DomainRef[] | undefined;
  /** A picture read from `mark` on is current: changes up to it need not be remembered. */
  reflected(mark: number): void;
}

/**
 * Up to this many domains (or 60 % of them, if more) are read alone rather than all again: a
 * whole reading costs ~11 list calls and 2-3 calls per domain, a domain read alone 4.
 */
const PARTIAL_MIN_LIMIT = 10;
const PARTIAL_SHARE = 0.6;

export class Observer {
  private current: LiveState | undefined;
  /** When the current picture's reading started (its takenAt moves when an event is applied; this does not). */
  private currentReadAt = 0;
  /** The change log's position when the current picture's reading (whole or of a few domains) started. */
  private currentMark = 0;
  private inflight: { startedAt: number; whole: boolean; promise: Promise<LiveState> } | undefined;
  /** How many readings were whole and how many read only the domains that changed (benchmarks and tests report it). */
  readonly readings = { whole: 0, partial: 0 };

  constructor(
    private readonly virsh: Virsh,
    private readonly changes?: ChangeSource,
    private readonly onReading?: (scope: "whole" | "changed") => void,
  ) {}

  /**
   * A picture whose reading started at or after `since` (ms epoch). `mend`: when only a few
   * domains changed since the current picture (as `changes` tells), only they are read — for
   * callers that trust the picture for what libvirt sends no event for, as an informer's
   * readers do; others get a whole reading.
   */
  async get(since: number, options: { mend?: boolean } = {}): Promise<LiveState> {
    const joinable = () => this.inflight !== undefined && this.inflight.startedAt >= since && (this.inflight.whole || options.mend === true);
    const fresh = () => this.current !== undefined && this.current.takenAt >= since;
    if (fresh()) return this.current!;
    if (joinable()) return this.inflight!.promise;
    // Wait for older refreshes to end first, then start a new one (or join one someone else started).
    while (this.inflight) {
      await this.inflight.promise.catch(() => undefined);
      if (fresh()) return this.current!;
      if (joinable()) return this.inflight!.promise;
    }
    const startedAt = Date.now();
    const mark = this.changes?.mark() ?? 0;
    const base = this.current;
    const changed = options.mend && base && this.changes ? this.changes.domainsChangedSince(this.currentMark, this.currentReadAt) : undefined;
    // Nothing known to have changed, yet a newer picture asked for: that is a reading's job.
    const partial = base && changed?.length && changed.length <= Math.max(PARTIAL_MIN_LIMIT, base.domains.size * PARTIAL_SHARE) ? { base, changed } : undefined;
    let whole = !partial;
    const reading = async (): Promise<LiveState> => {
      const refreshed = partial ? await this.readChangedDomains(partial.base, partial.changed, startedAt) : undefined;
      if (refreshed) return refreshed;
      whole = true;
      return this.read(startedAt);
    };
    const promise = reading().finally(() => {
      if (this.inflight?.promise === promise) this.inflight = undefined;
    });
    this.inflight = { startedAt, whole, promise };
    this.current = await promise;
    this.currentMark = mark;
    if (whole) this.currentReadAt = startedAt;
    this.readings[whole ? "whole" : "partial"]++;
    this.onReading?.(whole ? "whole" : "changed");
    this.changes?.reflected(mark);
    return this.current;
  }

  /**
   * `base` with the changed domains read again, in one virsh process for a few; undefined when
   * that cannot tell (a domain gone or renamed, a name virsh could read as an ID): the caller
   * reads everything then.
   */
  private async readChangedDomains(base: LiveState, changed: DomainRef[], takenAt: number): Promise<LiveState | undefined> {
    const args = changed.map(domainArg);
    if (args.some((a) => a === undefined)) return undefined;
    const out = await this.virsh.batch(args.flatMap((a) => domainReads(a!)), { lanes: BATCH_LANES });
    const domains = new Map(base.domains);
    const nameOfUuid = new Map([...base.domains].map(([name, d]) => [d.config.uuid, name]));
    for (let i = 0; i < args.length; i++) {
      const domain = domainFromReads(out.slice(i * 4, i * 4 + 4));
      if (!domain) return undefined; // gone (or unreadable): what else went with it shows only in a whole reading
      const { name, uuid } = domain.config;
      // Renamed, or the name reused by another domain: a whole reading sorts that out.
      if ((nameOfUuid.get(uuid) ?? name) !== name || (domains.has(name) && domains.get(name)!.config.uuid !== uuid)) return undefined;
      domains.set(name, domain);
    }
    return { ...base, domains, takenAt };
  }

  /**
   * Applies a domain's stop, reported by a lifecycle event, to the current picture instead of
   * reading everything again (a stop changes no XML of a persistent domain), the way an
   * informer's cache follows its watch. Only when the picture missed nothing else: it was
   * taken after every other change we know of (`knownChangesAt`) and no read is under way.
   * Returns whether it did; if not, the caller treats the event as making the picture stale.
   */
  applyDomainStopped(name: string, reason: string, knownChangesAt: number): boolean {
    const domain = this.current?.domains.get(name);
    if (!domain?.persistent) return false;
    return this.replaceDomain(name, { ...domain, state: "shut off", reason, running: undefined }, knownChangesAt);
  }

  /**
   * Puts a domain as it was read after a command of ours (a start's read-back) into the current
   * picture, which then holds as of now. The caller vouches that nothing but that command
   * changed libvirt since `knownChangesAt`; the picture must have been taken after it, with no
   * reading under way, and must already hold the domain (same name and UUID).
   */
  applyDomainRead(domain: LiveDomain, knownChangesAt: number): boolean {
    const name = domain.config.name;
    if (this.current?.domains.get(name)?.config.uuid !== domain.config.uuid) return false;
    return this.replaceDomain(name, domain, knownChangesAt);
  }

  private replaceDomain(name: string, domain: LiveDomain, knownChangesAt: number): boolean {
    const current = this.current;
    if (!current || this.inflight || current.takenAt < knownChangesAt) return false;
    const domains = new Map(current.domains);
    domains.set(name, domain);
    // A new picture object: readers of the earlier one never see it change under them.
    this.current = { ...current, domains, takenAt: Date.now() };
    return true;
  }

  /**
   * One domain (by UUID) as it is now, in one virsh process: what a reconcile reports in status after
   * its own steps, without re-reading every other object. Undefined when it does not exist.
   */
  async readDomain(uuid: string): Promise<LiveDomain | undefined> {
    if (!SAFE.test(uuid)) throw new Error(`not a UUID: ${JSON.stringify(uuid)}`);
    return domainFromReads(await this.virsh.batch(domainReads(uuid)));
  }

  /** Starts the domain and reads it back in the same virsh process (undefined: the reading failed). */
  async startAndReadDomain(uuid: string): Promise<LiveDomain | undefined> {
    if (!SAFE.test(uuid)) throw new Error(`not a UUID: ${JSON.stringify(uuid)}`);
    return domainFromReads(await this.virsh.runThenRead(["start", uuid], domainReads(uuid), { subject: uuid }));
  }

  /**
   * The domains changed since the current picture was read, when those are all that changed
   * and the picture may be mended by reading them alone (ChangeSource.domainsChangedSince);
   * undefined otherwise, and before the first picture.
   */
  changedSinceLast(): DomainRef[] | undefined {
    return this.current && this.changes ? this.changes.domainsChangedSince(this.currentMark, this.currentReadAt) : undefined;
  }

  /** The last picture, however old (for listing owned objects at start). */
  get last(): LiveState | undefined {
    return this.current;
  }

  /** When the last picture's reading started (ms epoch); undefined before the first. */
  get lastReadAt(): number | undefined {
    return this.current ? this.currentReadAt : undefined;
  }

  private async read(takenAt: number): Promise<LiveState> {
    // Lists with filters answer state, autostart and persistence for every object at once, so
    // the per-object batch holds only what lists cannot tell: XML, and a domain's state reason.
    const lists = await this.virsh.batch([
      ["list", "--all", "--uuid"],
      ["list", "--uuid"],
      ["list", "--all", "--uuid", "--autostart"],
      ["list", "--all", "--uuid", "--transient"],
      ["pool-list", "--all", "--uuid"],
      ["pool-list", "--uuid"],
      ["pool-list", "--all", "--uuid", "--autostart"],
      ["net-list", "--all", "--uuid"],
      ["net-list", "--uuid"],
      ["net-list", "--all", "--uuid", "--autostart"],
      ["net-list", "--all", "--uuid", "--transient"],
    ]);
    const uuids = (text: string | undefined) => (text ?? "").split("\n").map((s) => s.trim()).filter((s) => SAFE.test(s));
    const [domainUuids, activeDomains, autostartDomains, transientDomains, poolUuids, activePools, autostartPools, netUuids, activeNets, autostartNets, transientNets] = lists.map(uuids) as string[][];
    const [isActiveDomain, isAutostartDomain, isTransientDomain, isActivePool, isAutostartPool, isActiveNet, isAutostartNet, isTransientNet] = [activeDomains, autostartDomains, transientDomains, activePools, autostartPools, activeNets, autostartNets, transientNets].map((list) => new Set(list));

    // --security-info: the definition's VNC password, so a changed password file is seen.
    const domainCommands = (u: string) => [["dumpxml", "--inactive", "--security-info", u], ["domstate", "--reason", u], ...(isActiveDomain!.has(u) ? [["dumpxml", u]] : [])];
    const poolCommands = (u: string) => [["pool-dumpxml", u], ...(isActivePool!.has(u) ? [["vol-list", u]] : [])];
    const netCommands = (u: string) => [["net-dumpxml", "--inactive", u], ...(isActiveNet!.has(u) ? [["net-dumpxml", u]] : [])];
    const commands = [...domainUuids!.flatMap(domainCommands), ...poolUuids!.flatMap(poolCommands), ...netUuids!.flatMap(netCommands)];
    const out = await this.virsh.batch(commands, { lanes: BATCH_LANES });
    let i = 0;
    const domains = new Map<string, LiveDomain>();
    for (const uuid of domainUuids!) {
      const [inactiveXml, state, activeXml] = out.slice(i, (i += domainCommands(uuid).length));
      if (!inactiveXml || !state) continue; // vanished meanwhile
      const domain = liveDomain(inactiveXml, state, activeXml, { autostart: isAutostartDomain!.has(uuid), persistent: !isTransientDomain!.has(uuid) });
      domains.set(domain.config.name, domain);
    }
    const pools = new Map<string, LivePool>();
    const volumeCommands: { pool: string; volume: string }[] = [];
    for (const uuid of poolUuids!) {
      const [xml, volList] = out.slice(i, (i += poolCommands(uuid).length));
      if (!xml) continue;
      const facts = poolFacts(xml);
      const active = isActivePool!.has(uuid);
      pools.set(facts.name, { facts, active, autostart: isAutostartPool!.has(uuid), volumes: new Map() });
      if (active && facts.uuid) {
        for (const line of (volList ?? "").split("\n").slice(2)) {
          const name = line.trim().split(/\s+/)[0];
          if (name && SAFE.test(name)) volumeCommands.push({ pool: facts.uuid, volume: name });
        }
      }
    }
    const networks = new Map<string, LiveNetwork>();
    for (const uuid of netUuids!) {
      const [inactiveXml, activeXml] = out.slice(i, (i += netCommands(uuid).length));
      if (!inactiveXml) continue;
      const config = networkFacts(inactiveXml);
      const active = isActiveNet!.has(uuid);
      networks.set(config.name, {
        uuid,
        name: config.name,
        config,
        running: active && activeXml ? networkFacts(activeXml) : undefined,
        active,
        autostart: isAutostartNet!.has(uuid),
        persistent: !isTransientNet!.has(uuid),
      });
    }
    if (volumeCommands.length) {
      const volumeXml = await this.virsh.batch(volumeCommands.map((v) => ["vol-dumpxml", "--pool", v.pool, v.volume]), { lanes: BATCH_LANES });
      volumeCommands.forEach((v, j) => {
        const xml = volumeXml[j];
        if (!xml) return;
        const pool = [...pools.values()].find((p) => p.facts.uuid === v.pool);
        pool?.volumes.set(v.volume, volumeFacts(xml));
      });
    }
    // XML that did not appear in this pass (old versions, removed objects) is forgotten next time.
    for (const cache of [domainFacts, networkFacts, poolFacts, volumeFacts]) cache.sweep();
    return { takenAt, domains, pools, networks };
  }
}

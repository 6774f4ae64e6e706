// The Hypervisor port with virsh: every command the reconcilers issue, addressed by UUID
// (see src/ports/hypervisor.ts for why), its failures turned into typed errors, plus the
// observer (one picture of libvirt for a constant number of virsh processes) and libvirt's
// event streams, which keep that picture honest the way an informer's watch does and say when
// it still holds without reading it again (informedSince), or which few domains to read again
// when it does not (the change log).
import { classifyVirshError, VirshError, type Virsh } from "./virsh.js";
import { EventStreams, type EventStreamOptions } from "./events.js";
import { pictureHoldsForDomain, pictureStillHolds, type DomainRef } from "./informed.js";
import { OwnEchoes, type EchoedCommand } from "./echoes.js";
import { ChangeLog } from "./change-log.js";
import { domainFactsOf, Observer } from "./observer.js";
import { parseVolumeXml, type NetUpdate, type VolumeFacts } from "../libvirt/index.js";
import { hypervisorError, NotFoundError, type Hypervisor, type HypervisorEventHandlers, type Lease, type LiveDomain, type LiveState, type NetworkUpdateScope, type ScratchFiles } from "../ports/index.js";

/** UUIDs as libvirt prints them; anything else never reaches a command line. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function uuidArg(uuid: string): string {
  if (!UUID.test(uuid)) throw hypervisorError("other", `not a UUID: ${JSON.stringify(uuid)}`);
  return uuid;
}

/** `virsh net-dhcp-leases` table → leases (IPv4 and IPv6, address without prefix). */
export function parseLeases(text: string): Lease[] {
  const leases: Lease[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+([0-9a-f:]{17})\s+(ipv[46])\s+(\S+)\s+(\S+)/i.exec(line);
    if (!m) continue;
    const [, expiry, mac, , ip, hostname] = m;
    leases.push({ mac: mac!.toLowerCase(), ip: ip!.split("/")[0]!, ...(hostname && hostname !== "-" ? { hostname } : {}), expiry: expiry! });
  }
  return leases;
}

/** What the hypervisor needs of its event streams (EventStreams; a stand-in in unit tests). */
export interface EventSource {
  start(): void;
  stop(): void;
  listeningSince(): number | undefined;
}

export class VirshHypervisor implements Hypervisor {
  readonly observer: Observer;
  /** When libvirt last told us something changed (an event, a reconnected stream). */
  private lastEventAt = 0;
  private streams: EventSource | undefined;
  /** The events our own domain commands will bring back (./echoes.ts). */
  private readonly echoes = new OwnEchoes();
  /**
   * Names of the domains this process defined or is defining, by UUID: a domain just defined is
   * not in the last picture yet, and a define under way names the domain it is about.
   */
  private readonly definedNames = new Map<string, string>();
  /** What changed since the picture was read (./change-log.ts): events and our own commands, by domain. */
  private readonly changes = new ChangeLog();
  /** How old a whole reading may be for a stale picture to be mended by reading the changed domains alone (watch's maxAgeMs). */
  private partialMaxAgeMs = 0;

  constructor(
    readonly virsh: Virsh,
    private readonly scratch: ScratchFiles,
    private readonly eventSource: (options: EventStreamOptions) => EventSource = (options) => new EventStreams(options),
    onReading?: (scope: "whole" | "changed") => void,
  ) {
    this.observer = new Observer(virsh, {
      mark: () => this.changes.mark(),
      domainsChangedSince: (mark, readAt) => {
        // As for a picture that still holds (./informed.ts): every change since the whole reading
        // sent an event only if every stream listened throughout.
        const listening = this.streams?.listeningSince();
        if (listening === undefined || listening > readAt || Date.now() - readAt > this.partialMaxAgeMs) return undefined;
        return this.changes.domainsSince(mark);
      },
      reflected: (mark) => this.changes.forgetUpTo(mark),
    }, onReading);
    virsh.onMutationEnded = (subject) => (subject === undefined ? this.changes.everything() : this.changes.domain({ uuid: subject }));
  }

  get changedAt(): number {
    return Math.max(this.lastEventAt, this.virsh.lastMutationAt);
  }

  informedSince(maxAgeMs: number, domain?: string): number | undefined {
    const picture = this.observer.last;
    const readAt = this.observer.lastReadAt;
    if (!picture || readAt === undefined) return undefined;
    // Our commands name domains by UUID, events by name: a UUID names this domain when its name is it, or is unknown.
    const isThis = (ref: DomainRef) => ("name" in ref ? ref.name : (this.domainName(ref.uuid) ?? domain)) === domain;
    const holdsForDomain = () => domain !== undefined && Date.now() - readAt <= maxAgeMs && pictureHoldsForDomain(this.observer.changedSinceLast(), this.virsh.domainsBeingChanged()?.map((uuid) => ({ uuid })), isThis);
    // The whole-picture rule first: it is cheap, and the per-domain one walks the change log.
    const holds = pictureStillHolds({
      readAt,
      takenAt: picture.takenAt,
      listeningSince: this.streams?.listeningSince(),
      changedAt: this.changedAt,
      mutationsInFlight: this.virsh.mutationsInFlight,
      now: Date.now(),
      maxAgeMs,
    }) || holdsForDomain();
    return holds ? picture.takenAt : undefined;
  }

  observe(since: number, options: { mend?: boolean } = {}): Promise<LiveState> {
    return this.observer.get(since, options);
  }

  readDomain(uuid: string): Promise<LiveDomain | undefined> {
    return this.observer.readDomain(uuidArg(uuid));
  }

  watch(handlers: HypervisorEventHandlers, options: { maxAgeMs?: number } = {}): { stop(): void } {
    this.partialMaxAgeMs = options.maxAgeMs ?? 0;
    const streams = this.eventSource({
      uri: this.virsh.options.uri,
      onEvent: (event) => {
        // A domain that stopped (destroyed by hand, crashed) is applied to the current picture
        // instead of making it stale, when the picture missed nothing else: most of the time
        // between a stop and the restart is then not spent re-reading libvirt.
        if (event.kind === "domain" && this.echoes.isEcho(event.name, event.detail, Date.now())) {
          // Our own command's echo: the command's end made older pictures stale already, and
          // the reconcile that ran it read its domain afterwards.
          handlers.onEvent({ ...event, echo: true });
          return;
        }
        const stopped = event.kind === "domain" ? /^lifecycle: Stopped (\w+)/.exec(event.detail) : null;
        const followed = stopped !== null && this.observer.applyDomainStopped(event.name, stopped[1]!.toLowerCase(), this.changedAt);
        // "Shutdown Finished" only announces the Stopped event that follows it: it makes
        // nothing stale and wakes nothing by itself, so it cannot spoil that event's shortcut
        // (a reconcile woken by it would start a reading just before the stop arrives).
        const prelude = event.kind === "domain" && event.detail.startsWith("lifecycle: Shutdown");
        if (!followed && !prelude) {
          this.lastEventAt = Date.now();
          if (event.kind === "domain") this.changes.domain({ name: event.name });
          else this.changes.everything(); // a pool's or network's change: pictures of those are read whole
        }
        handlers.onEvent(prelude ? { ...event, prelude } : event);
      },
      onReconnect: (stream) => {
        this.lastEventAt = Date.now();
        this.changes.everything(); // events may have been missed
        handlers.onReconnect(stream);
      },
      onError: handlers.onError,
      onRegistered: (stream, complete) => handlers.onListening?.(stream, complete),
    });
    this.streams = streams;
    streams.start();
    return { stop: () => streams.stop() };
  }

  /**
   * Runs a command; failures become typed HypervisorErrors with the VirshError as cause.
   * `domain`: the UUID of the one domain a changing command is about (else it may change anything).
   */
  private run(args: string[], domain?: string): Promise<string> {
    return this.classified(args[0] ?? "", () => this.virsh.run(args, domain === undefined ? {} : { subject: domain }));
  }

  /** Runs a virsh call with its failure turned into the port's error kinds. */
  private async classified<T>(command: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof VirshError) throw hypervisorError(error.kind, error.message, error);
      throw hypervisorError(classifyVirshError(String(error)), `virsh ${command}: ${String((error as Error).message ?? error)}`, error);
    }
  }

  /** Runs a command that reads the XML it is given from a private scratch file. */
  private async withXmlFile(label: string, xml: string, args: (file: string) => string[], domain?: string): Promise<void> {
    const file = await this.scratch.write(`${label}.xml`, xml);
    try {
      await this.run(args(file), domain);
    } finally {
      await this.scratch.remove(file);
    }
  }

  /** Runs a domain command whose event (./echoes.ts) is expected back, for the domain named `name` if known. */
  private async echoed<T>(name: string | undefined, command: EchoedCommand, action: () => Promise<T>): Promise<T> {
    const ended = name === undefined ? undefined : this.echoes.expect(name, command, Date.now);
    try {
      const result = await action();
      ended?.(true);
      return result;
    } catch (error) {
      ended?.(false);
      throw error;
    }
  }

  /** What tells, after a command of ours, whether anything else changed libvirt while it ran. */
  private quietMark(): { changedAt: number; lastEventAt: number; mutationsEnded: number } {
    return { changedAt: this.changedAt, lastEventAt: this.lastEventAt, mutationsEnded: this.virsh.mutationsEnded };
  }

  /**
   * Whether the one changing command this process ran since `mark` was the only change: no other
   * command of ours ended meanwhile or still runs, no event but its echoes came, and every stream
   * was listening since before the picture was read (so a change by anyone else sent one).
   */
  private onlyOwnCommandSince(mark: ReturnType<VirshHypervisor["quietMark"]>): boolean {
    const listening = this.streams?.listeningSince();
    const readAt = this.observer.lastReadAt;
    if (listening === undefined || readAt === undefined || listening > readAt) return false;
    return this.virsh.mutationsInFlight === 0 && this.virsh.mutationsEnded === mark.mutationsEnded + 1 && this.lastEventAt === mark.lastEventAt;
  }

  /**
   * The name of the domain with this UUID (commands address domains by UUID, events by name): one
   * this process defined, else the one in the last picture. Without the first, the start right
   * after a define had no name, so its Started echo woke the VM for a second reconcile.
   */
  private domainName(uuid: string): string | undefined {
    const defined = this.definedNames.get(uuid);
    if (defined !== undefined) return defined;
    for (const [name, domain] of this.observer.last?.domains ?? []) if (domain.config.uuid === uuid) return name;
    return undefined;
  }

  async defineDomain(xml: string): Promise<void> {
    let facts: { name: string; uuid: string } | undefined;
    try {
      facts = domainFactsOf(xml);
    } catch {
      facts = undefined; // virsh will say what is wrong with it
    }
    const uuid = facts?.uuid && UUID.test(facts.uuid) ? facts.uuid : undefined;
    if (uuid && facts?.name) this.definedNames.set(uuid, facts.name);
    await this.echoed(facts?.name, "define", () => this.withXmlFile("domain", xml, (file) => ["define", file], uuid));
  }

  async startDomain(uuid: string): Promise<LiveDomain | undefined> {
    const mark = this.quietMark();
    const after = await this.echoed(this.domainName(uuid), "start", () => this.classified("start", () => this.observer.startAndReadDomain(uuidArg(uuid))));
    // The read-back is libvirt after the start: when nothing else changed meanwhile, the picture
    // takes it and still holds, so the restart of a guest stopped by hand costs no reading (and
    // the next stop can again be applied in place, rather than wait for a reading under way).
    if (after && this.onlyOwnCommandSince(mark)) this.observer.applyDomainRead(after, mark.changedAt);
    return after;
  }

  async shutdownDomain(uuid: string): Promise<void> {
    await this.run(["shutdown", uuidArg(uuid), "--mode", "acpi"], uuid);
  }

  async destroyDomain(uuid: string): Promise<void> {
    try {
      await this.echoed(this.domainName(uuid), "destroy", () => this.run(["destroy", uuidArg(uuid)], uuid));
    } catch (error) {
      if (!/not running/i.test(String((error as Error).message))) throw error;
    }
  }

  async undefineDomain(uuid: string): Promise<void> {
    await this.echoed(this.domainName(uuid), "undefine", () => this.run(["undefine", uuidArg(uuid), "--nvram", "--managed-save"], uuid));
    this.definedNames.delete(uuid);
  }

  async setDomainAutostart(uuid: string, enabled: boolean): Promise<void> {
    await this.run(["autostart", uuidArg(uuid), ...(enabled ? [] : ["--disable"])], uuid);
  }

  createVolume(poolUuid: string, xml: string): Promise<void> {
    return this.withXmlFile("volume", xml, (file) => ["vol-create", uuidArg(poolUuid), file]);
  }

  createVolumeFrom(poolUuid: string, xml: string, fromPoolUuid: string, fromVolume: string): Promise<void> {
    // vol-create-from (not vol-clone): the copy gets the new volume's format (and, in a logical
    // pool, is a plain LV); libvirt converts with qemu-img as needed.
    return this.withXmlFile("volume", xml, (file) => ["vol-create-from", uuidArg(poolUuid), file, "--inputpool", uuidArg(fromPoolUuid), fromVolume]);
  }

  /** Like run, but undefined when the object does not exist. */
  private async runOrMissing(args: string[]): Promise<string | undefined> {
    try {
      return await this.run(args);
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }

  async readVolume(poolUuid: string, volume: string): Promise<VolumeFacts | undefined> {
    const xml = await this.runOrMissing(["vol-dumpxml", "--pool", uuidArg(poolUuid), volume]);
    return xml === undefined ? undefined : parseVolumeXml(xml);
  }

  async volumePath(poolUuid: string, volume: string): Promise<string> {
    return (await this.run(["vol-path", "--pool", uuidArg(poolUuid), volume])).trim();
  }

  async uploadVolume(poolUuid: string, volume: string, file: string): Promise<void> {
    await this.run(["vol-upload", "--pool", uuidArg(poolUuid), volume, file]);
  }

  async resizeVolume(poolUuid: string, volume: string, capacity: number): Promise<boolean> {
    try {
      await this.run(["vol-resize", "--pool", uuidArg(poolUuid), volume, String(capacity)]);
      return true;
    } catch (error) {
      if (/shrink/i.test(String((error as Error).message))) return false;
      throw error;
    }
  }

  async resizeDiskLive(uuid: string, target: string, capacity: number): Promise<void> {
    if (!/^(vd|sd|hd|xvd)[a-z]{1,2}$/.test(target)) throw hypervisorError("other", `not a disk target: ${JSON.stringify(target)}`);
    // No domain named: the volume under the disk grows too, which a domain's reading does not show.
    await this.run(["blockresize", uuidArg(uuid), target, "--size", `${capacity}B`]);
  }

  async deleteVolume(poolUuid: string, volume: string): Promise<void> {
    await this.run(["vol-delete", "--pool", uuidArg(poolUuid), volume]);
  }

  /**
   * One `net-define` at a time: libvirt picks a free `virbrN` for a network defined without a
   * bridge name, and two defines running at once can both be given the same one (seen here:
   * the second network's start then fails, "error creating bridge interface virbr2: File
   * exists", and its address lands on the first one's bridge).
   */
  defineNetwork(xml: string): Promise<void> {
    const defined = this.networkDefines.then(() => this.withXmlFile("network", xml, (file) => ["net-define", file]));
    this.networkDefines = defined.catch(() => undefined);
    return defined;
  }

  private networkDefines: Promise<unknown> = Promise.resolve();

  async updateNetwork(uuid: string, update: NetUpdate, scope: NetworkUpdateScope): Promise<void> {
    const flags = scope === "both" ? ["--live", "--config"] : [`--${scope}`];
    await this.run(["net-update", uuidArg(uuid), update.command, update.section, update.xml, "--parent-index", String(update.parentIndex), ...flags]);
  }

  async startNetwork(uuid: string): Promise<void> {
    await this.run(["net-start", uuidArg(uuid)]);
  }

  async destroyNetwork(uuid: string): Promise<void> {
    await this.run(["net-destroy", uuidArg(uuid)]);
  }

  async undefineNetwork(uuid: string): Promise<void> {
    await this.run(["net-undefine", uuidArg(uuid)]);
  }

  async setNetworkAutostart(uuid: string, enabled: boolean): Promise<void> {
    await this.run(["net-autostart", uuidArg(uuid), ...(enabled ? [] : ["--disable"])]);
  }

  async networkLeases(uuid: string): Promise<Lease[] | undefined> {
    const table = await this.runOrMissing(["net-dhcp-leases", uuidArg(uuid)]);
    return table === undefined ? undefined : parseLeases(table);
  }

  definePool(xml: string): Promise<void> {
    return this.withXmlFile("pool", xml, (file) => ["pool-define", file]);
  }

  async buildPool(uuid: string, options: { noOverwrite: boolean }): Promise<void> {
    try {
      await this.run(["pool-build", uuidArg(uuid), ...(options.noOverwrite ? ["--no-overwrite"] : [])]);
    } catch (error) {
      // An existing volume group on the devices is fine as it is.
      if (!(options.noOverwrite && /already|existing|exists/i.test(String((error as Error).message)))) throw error;
    }
  }

  async startPool(uuid: string): Promise<void> {
    await this.run(["pool-start", uuidArg(uuid)]);
  }

  async destroyPool(uuid: string): Promise<void> {
    await this.run(["pool-destroy", uuidArg(uuid)]);
  }

  async undefinePool(uuid: string): Promise<void> {
    await this.run(["pool-undefine", uuidArg(uuid)]);
  }

  async setPoolAutostart(uuid: string, enabled: boolean): Promise<void> {
    await this.run(["pool-autostart", uuidArg(uuid), ...(enabled ? [] : ["--disable"])]);
  }

  async close(): Promise<void> {
    this.streams?.stop();
    await this.virsh.close();
    await this.scratch.close();
  }
}

// One consistent picture of libvirt: every domain, pool and volume, read with a constant
// number of virsh processes (list, then one batch of dumpxml/info per object, then one batch
// of volume XML). Concurrent requests share one refresh; a caller asks for a picture taken
// after a given time, so an event or an action of its own is always reflected.
import { parseDomainXml, parseNetworkXml, parsePoolXml, parseVolumeXml, type DomainFacts, type NetworkFacts, type PoolFacts, type VolumeFacts } from "../libvirt/index.js";
import type { Virsh } from "./virsh.js";

export interface LiveDomain {
  /** Persistent (next boot) definition. */
  config: DomainFacts;
  /** Running definition, when active. */
  running?: DomainFacts;
  /** virsh domstate --reason: "running (booted)", "shut off (destroyed)" ... */
  state: string;
  reason: string;
  autostart: boolean;
  persistent: boolean;
}

export interface LivePool {
  facts: PoolFacts;
  active: boolean;
  autostart: boolean;
  /** By volume name; only for active pools. */
  volumes: Map<string, VolumeFacts>;
}

export interface LiveNetwork {
  uuid: string;
  name: string;
  /** Persistent (next start) definition. */
  config: NetworkFacts;
  /** Running definition, when active (the bridge libvirt picked is here). */
  running?: NetworkFacts;
  active: boolean;
  autostart: boolean;
}

export interface LiveState {
  takenAt: number;
  domains: Map<string, LiveDomain>;
  pools: Map<string, LivePool>;
  networks: Map<string, LiveNetwork>;
}

const SAFE = /^[A-Za-z0-9_.:+@-]+$/;

function infoField(text: string | undefined, field: string): string | undefined {
  const match = new RegExp(`^${field}:\\s*(.*)$`, "m").exec(text ?? "");
  return match?.[1]?.trim();
}

export class Observer {
  private current: LiveState | undefined;
  private inflight: { startedAt: number; promise: Promise<LiveState> } | undefined;

  constructor(private readonly virsh: Virsh) {}

  /** A picture whose reading started at or after `since` (ms epoch). */
  async get(since: number): Promise<LiveState> {
    if (this.current && this.current.takenAt >= since) return this.current;
    if (this.inflight && this.inflight.startedAt >= since) return this.inflight.promise;
    // Wait for an older refresh to end first, then start a new one (or join one someone else started).
    if (this.inflight) await this.inflight.promise.catch(() => undefined);
    if (this.current && this.current.takenAt >= since) return this.current;
    if (this.inflight && this.inflight.startedAt >= since) return this.inflight.promise;
    const startedAt = Date.now();
    const promise = this.read(startedAt).finally(() => {
      if (this.inflight?.promise === promise) this.inflight = undefined;
    });
    this.inflight = { startedAt, promise };
    this.current = await promise;
    return this.current;
  }

  /** The last picture, however old (for listing owned objects at start). */
  get last(): LiveState | undefined {
    return this.current;
  }

  private async read(takenAt: number): Promise<LiveState> {
    const [domainList, poolList, netList] = await this.virsh.batch([
      ["list", "--all", "--uuid"],
      ["pool-list", "--all", "--uuid"],
      ["net-list", "--all", "--uuid"],
    ]);
    const uuids = (text: string | undefined) => (text ?? "").split("\n").map((s) => s.trim()).filter((s) => SAFE.test(s));
    const domainUuids = uuids(domainList);
    const poolUuids = uuids(poolList);
    const netUuids = uuids(netList);

    const perDomain = [["dumpxml", "--inactive"], ["dumpxml"], ["domstate", "--reason"], ["dominfo"]];
    const perPool = [["pool-dumpxml"], ["pool-info"], ["vol-list"]];
    const perNet = [["net-dumpxml", "--inactive"], ["net-dumpxml"], ["net-info"]];
    const commands = [
      ...domainUuids.flatMap((u) => perDomain.map(([cmd, ...flags]) => [cmd!, ...flags, u])),
      ...poolUuids.flatMap((u) => perPool.map(([cmd]) => [cmd!, u])),
      ...netUuids.flatMap((u) => perNet.map(([cmd, ...flags]) => [cmd!, ...flags, u])),
    ];
    const out = await this.virsh.batch(commands);
    let i = 0;
    const domains = new Map<string, LiveDomain>();
    for (const _uuid of domainUuids) {
      const [inactiveXml, activeXml, state, info] = out.slice(i, (i += perDomain.length));
      if (!inactiveXml || !state) continue; // vanished meanwhile
      const config = parseDomainXml(inactiveXml);
      const [stateText = "", reason = ""] = state.trim().match(/^(.*?)(?: \((.*)\))?$/)?.slice(1) ?? [];
      const active = !["shut off", "crashed"].includes(stateText);
      domains.set(config.name, {
        config,
        running: active && activeXml ? parseDomainXml(activeXml) : undefined,
        state: stateText,
        reason,
        autostart: infoField(info, "Autostart") === "enable",
        persistent: infoField(info, "Persistent") !== "no",
      });
    }
    const pools = new Map<string, LivePool>();
    const volumeCommands: { pool: string; volume: string }[] = [];
    for (const _uuid of poolUuids) {
      const [xml, info, volList] = out.slice(i, (i += perPool.length));
      if (!xml) continue;
      const facts = parsePoolXml(xml);
      const active = infoField(info, "State") === "running";
      pools.set(facts.name, { facts, active, autostart: infoField(info, "Autostart") === "yes", volumes: new Map() });
      if (active && facts.uuid) {
        for (const line of (volList ?? "").split("\n").slice(2)) {
          const name = line.trim().split(/\s+/)[0];
          if (name && SAFE.test(name)) volumeCommands.push({ pool: facts.uuid, volume: name });
        }
      }
    }
    const networks = new Map<string, LiveNetwork>();
    for (const uuid of netUuids) {
      const [inactiveXml, activeXml, info] = out.slice(i, (i += perNet.length));
      if (!inactiveXml) continue;
      const config = parseNetworkXml(inactiveXml);
      const active = infoField(info, "Active") === "yes";
      networks.set(config.name, {
        uuid,
        name: config.name,
        config,
        running: active && activeXml ? parseNetworkXml(activeXml) : undefined,
        active,
        autostart: infoField(info, "Autostart") === "yes",
      });
    }
    if (volumeCommands.length) {
      const volumeXml = await this.virsh.batch(volumeCommands.map((v) => ["vol-dumpxml", "--pool", v.pool, v.volume]));
      volumeCommands.forEach((v, j) => {
        const xml = volumeXml[j];
        if (!xml) return;
        const pool = [...pools.values()].find((p) => p.facts.uuid === v.pool);
        pool?.volumes.set(v.volume, parseVolumeXml(xml));
      });
    }
    return { takenAt, domains, pools, networks };
  }
}

// The firewall as reconciled state: render every rule the manifests imply, compare with what
// kvmctl's table (or chains) holds, and replace it in one transaction when they differ —
// because a manifest changed or someone flushed, deleted or edited the table by hand.
//
// A singleton (src/controllers/registry.ts): one per controller, woken by every manifest
// change and libvirt event, by the backend's watch of its table (nftables: `nft -j monitor`)
// and every --firewall-check; Networks sync it when they change.
import { createHash } from "node:crypto";
import { countByOwner, renderFirewall, type FirewallInputs, type HostPortGuard, type Rule } from "../../firewall/rules.js";
import type { BackendName, FirewallBackend, FirewallHost, FirewallWatch, LiveState, Observed, Sysctl } from "../../ports/index.js";
import { systemClock, WakeLimiter, type Clock, type Logger } from "../../runtime/index.js";
import type { Snapshot } from "../../store/index.js";
import { bridgeOf } from "../network/plan.js";

export interface FirewallState {
  backend: BackendName | "none";
  /** Rules in the table after the last sync, per owning object. */
  counts: Map<string, number>;
  /** Objects whose rules wait for something (e.g. a bridge name). */
  pending: Map<string, string>;
  /** Objects some of whose port forwards were left out (a reserved or busy host port), and why. */
  refused: Map<string, string>;
  /** Objects whose rules the backend refused (left out of the table, the others applied), and why. */
  failed: Map<string, string>;
  total: number;
  /** Set when the last sync failed. */
  error?: string;
  /** Set when the table differs and was left so (--drift report). */
  drifted?: string;
}

/** What a sync reports (src/metrics): kvmctl_firewall_syncs_total, and drift repairs of a table changed by hand. */
export interface FirewallMetrics {
  synced(backend: BackendName | "none", result: "applied" | "unchanged" | "error"): void;
  /** The table was changed by hand and put back. */
  repaired?(what: "rules"): void;
  /** The table was changed by hand and left so (--drift report). */
  driftReported?(): void;
}

export interface FirewallOptions {
  backend: "auto" | BackendName;
  /** This controller instance: its rules live in its own table or chains. */
  instance: string;
  logger: Logger;
  /** The host's firewall tools: which backend works, and QEMU's uid. */
  host: FirewallHost;
  sysctl: Sysctl;
  /** Host ports no Network forward may take (--reserved-host-ports); default [22]. */
  reservedHostPorts?: readonly number[];
  metrics?: FirewallMetrics;
  /** "report" (--drift report): a table changed by hand is reported, and left as it is. */
  drift?: "repair" | "report";
  /** Paces the syncs the watch asks for (WakeLimiter); default the system clock. */
  clock?: Clock;
}

/**
 * Table changes the watch reports are compared at once, up to WATCH_BURST in a row; beyond
 * that once per WATCH_SPACING_MS. Each repair is itself a change the watch sees (one more
 * comparison, which finds the table as applied): a program rewriting the table in a loop gets
 * about two repairs a second, not a busy loop.
 */
const WATCH_BURST = 20;
/** While a watch listens the table is read only when it reports a change, and at least this often. */
const WATCHED_READ_MS = 60_000;
const WATCH_SPACING_MS = 250;

/** What the rules are rendered from: valid manifests and live facts (bridges, VNC ports). */
export function firewallInputs(snapshot: Snapshot, live: LiveState, uid: number | undefined, hostPorts?: HostPortGuard): FirewallInputs {
  const networks: FirewallInputs["networks"] = [];
  const vms: FirewallInputs["vms"] = [];
  for (const [key, stored] of snapshot.objects) {
    if (stored.kind === "Network") {
      const spec = stored.object.spec;
      networks.push({ key, spec, bridge: spec.mode === "bridge" ? spec.bridge : bridgeOf(live.networks.get(stored.name)) });
    } else if (stored.kind === "VirtualMachine") {
      const running = live.domains.get(stored.name)?.running;
      vms.push({ key, spec: stored.object.spec, vncPort: running?.vnc?.port !== undefined && running.vnc.port > 0 ? running.vnc.port : undefined });
    }
  }
  return { networks, vms, qemuUid: uid, ...(hostPorts ? { hostPorts } : {}) };
}

/** The live facts rules are rendered from (bridges, VNC ports, listening sockets), as one string to compare. */
function liveFactsOf(inputs: FirewallInputs): string {
  return JSON.stringify([inputs.networks.map((n) => n.bridge ?? null), inputs.vms.map((v) => v.vncPort ?? null), inputs.hostPorts?.listening ?? []]);
}

/**
 * kvmctl's table (or chains) from before controller instances holds rules for some objects: the
 * instance whose manifests name every one of them removes it, once its own table holds their
 * rules; anything else leaves it (with one warning), since it may hold another directory's.
 */
async function legacyVerdict(backend: FirewallBackend, snapshot: Snapshot): Promise<{ where: string; others: string[] } | undefined> {
  const legacy = await backend.legacy?.();
  if (!legacy) return undefined;
  const mine = new Set([...snapshot.objects.keys(), ...snapshot.invalid.keys()]);
  return { where: legacy.where, others: [...new Set(legacy.owners.filter((o) => !mine.has(o)))].sort() };
}

export class Firewall {
  private backend: FirewallBackend | undefined;
  private detected = false;
  private applied: { desired: string; fingerprint: string } | undefined;
  /** Rules per owner as last applied: kept for objects whose manifest is invalid right now. */
  private lastRules = new Map<string, Rule[]>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly uid: number | undefined;
  /** What became of kvmctl's table or chains from before instances (see resolveLegacy). */
  private legacy: "unchecked" | "none" | "kept" = "unchecked";
  /** Owners the backend refused, for the rules (by hash) they were refused in. */
  private isolated: { desired: string; failed: Map<string, string> } | undefined;
  state: FirewallState = { backend: "none", counts: new Map(), pending: new Map(), refused: new Map(), failed: new Map(), total: 0 };

  /** The table fingerprint last reported as drift (--drift report). */
  private reportedDrift: string | undefined;

  /** The table as last read, and when (ms epoch): what a sync compares with while the watch vouches for it. */
  private lastRead: { observed: Observed; at: number } | undefined;
  /** The watch listens now (started, not ended since). */
  private watchListening = false;
  /** The watch reported a change to the table since the last read began. */
  private tableChanged = true;

  /** What the last sync that changed nothing compared: the same again needs no render (see syncNow). */
  private unchangedSync: { snapshot: Snapshot; facts: string; fingerprint: string; needsForwarding: boolean } | undefined;

  /** Set by watch(): wakes the manager, paced. */
  private watchWake: WakeLimiter | undefined;
  private watching: FirewallWatch | undefined;
  private watchStopped = false;

  constructor(private readonly options: FirewallOptions) {
    this.uid = options.host.qemuUid();
  }

  /** One sync at a time; callers share the order. */
  sync(snapshot: Snapshot, live: LiveState): Promise<FirewallState> {
    const next = this.queue.then(() => this.syncNow(snapshot, live));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async chooseBackend(): Promise<FirewallBackend | undefined> {
    if (!this.detected) {
      this.backend = await this.options.host.detect(this.options.backend, this.options.instance);
      this.detected = true;
      this.options.logger.info({ backend: this.backend?.name ?? "none", preference: this.options.backend }, this.backend ? `firewall backend: ${this.backend.name}` : "no usable firewall backend (neither nft nor iptables works); firewall rules are not applied");
      this.startWatch();
    }
    return this.backend;
  }

  /**
   * Compares the table as soon as the backend reports a change to it, by calling `wake` (the
   * manager queues the firewall key; paced, see WATCH_BURST). The watch starts once the first
   * sync has picked the backend; a backend that cannot watch (iptables) is left to the periodic
   * check. Changes to other tables never wake. stop() ends the watch and its process.
   */
  watch(wake: () => void): { stop(): Promise<void> } {
    this.watchWake = new WakeLimiter(this.options.clock ?? systemClock, wake, {
      burst: WATCH_BURST,
      spacingMs: WATCH_SPACING_MS,
      onLimited: () => this.options.logger.warn({ spacingMs: WATCH_SPACING_MS }, `the firewall table keeps changing (another program rewriting it, or a second controller with the same --instance?): comparing it at most every ${WATCH_SPACING_MS} ms until it settles`),
    });
    if (this.detected) this.startWatch();
    return {
      stop: async () => {
        this.watchStopped = true;
        this.watchWake?.stop();
        const watching = this.watching;
        this.watching = undefined;
        await watching?.stop();
      },
    };
  }

  private startWatch(): void {
    const backend = this.backend;
    const wake = this.watchWake;
    if (!backend || !wake || this.watching || this.watchStopped) return;
    const log = this.options.logger;
    if (!backend.watch) {
      log.info({ backend: backend.name }, `${backend.name} reports no changes: the firewall is compared with what it should hold every --firewall-check`);
      return;
    }
    this.watching = backend.watch({
      changed: (why) => {
        this.tableChanged = true;
        log.debug({ backend: backend.name, why }, "the firewall table changed: comparing it now");
        wake.wake();
      },
      ignored: (tables) => log.debug({ backend: backend.name, tables: Object.fromEntries(tables) }, "changes to other tables: ignored"),
      started: ({ pid, restart }) => {
        this.watchListening = true;
        log.info({ backend: backend.name, monitorPid: pid }, restart ? "the firewall watch started again" : "watching the firewall table for changes");
      },
      ended: (message, retryInMs) => {
        this.watchListening = false;
        log.warn({ backend: backend.name, message, retryInMs }, `the firewall watch ended (${message}); starting it again in ${retryInMs} ms (--firewall-check compares the table meanwhile)`);
      },
    });
  }

  private async resolveLegacy(backend: FirewallBackend, snapshot: Snapshot): Promise<void> {
    if (this.legacy !== "unchecked") return;
    const verdict = await legacyVerdict(backend, snapshot);
    if (!verdict) {
      this.legacy = "none";
    } else if (verdict.others.length === 0) {
      await backend.removeLegacy?.();
      this.legacy = "none";
      this.options.logger.info({ where: verdict.where }, `removed the firewall rules of an earlier kvmctl (${verdict.where}): this instance's own now hold them`);
    } else {
      this.legacy = "kept";
      this.options.logger.warn({ where: verdict.where, owners: verdict.others }, `the firewall rules of an earlier kvmctl (${verdict.where}) are left alone: they are also for ${verdict.others.join(", ")}, not in this directory; remove them when every controller runs this version`);
    }
  }

  /**
   * The table: read again unless a listening watch vouches that nothing changed since the last
   * read (then that read), as an informer's cache — but at least every WATCHED_READ_MS, the
   * safety net for what a watch could miss. `fresh`: always read (right after an apply, whose
   * own change the watch reports only later).
   */
  private async readTable(backend: FirewallBackend, options: { fresh?: boolean } = {}): Promise<Observed> {
    const now = (this.options.clock ?? systemClock).now();
    const last = this.lastRead;
    if (!options.fresh && last && this.watchListening && !this.tableChanged && now - last.at < WATCHED_READ_MS) return last.observed;
    // Cleared before the read: a change reported while it runs makes the next sync read again.
    this.tableChanged = false;
    const observed = await backend.observe();
    this.lastRead = { observed, at: now };
    return observed;
  }

  /** Routed and NAT networks need IPv4 forwarding: turned on (again) when off, except in report mode. */
  private async keepForwarding(needed: boolean): Promise<void> {
    if (this.options.drift !== "report" && needed && (await this.options.sysctl.ensureIpv4Forwarding())) this.options.logger.info({}, "enabled IPv4 forwarding (net.ipv4.ip_forward=1) for routed and NAT networks");
  }

  private async syncNow(snapshot: Snapshot, live: LiveState): Promise<FirewallState> {
    // What listens on the host now: a forward must not take a port the host itself serves
    // (read only when some Network forwards a port: /proc/net lists every socket).
    const forwards = [...snapshot.objects.values()].some((o) => o.kind === "Network" && o.object.spec.portForwards.length > 0);
    const listening = forwards ? await this.options.host.listening().catch(() => []) : [];
    const inputs = firewallInputs(snapshot, live, this.uid, { reserved: this.options.reservedHostPorts ?? [22], listening });
    const facts = liveFactsOf(inputs);
    const backend = await this.chooseBackend();
    if (!backend) {
      const rendered = renderFirewall(inputs);
      const error = rendered.rules.length ? "no firewall backend: neither nftables nor iptables works on this host" : undefined;
      this.state = { backend: "none", counts: new Map(), pending: rendered.pending, refused: rendered.refused, failed: new Map(), total: 0, ...(error ? { error } : {}) };
      this.options.metrics?.synced("none", error ? "error" : "unchanged");
      return this.state;
    }
    try {
      let observed = await this.readTable(backend);
      // The periodic check, when nothing moved: the same manifests, bridges, VNC ports and
      // listening sockets, and a table that reads as the last sync found it (as it should be).
      // Rendering and comparing again would give the same answer.
      const same = this.unchangedSync;
      if (same && same.snapshot === snapshot && same.facts === facts && same.fingerprint === observed.fingerprint) {
        await this.keepForwarding(same.needsForwarding);
        this.options.metrics?.synced(backend.name, "unchanged");
        return this.state;
      }
      this.unchangedSync = undefined;
      const rendered = renderFirewall(inputs);
      // An object whose manifest is invalid or unreadable keeps the rules it had.
      const held = new Set([...snapshot.invalid.keys(), ...[...snapshot.unreadableFiles.values()].flatMap((u) => u.lastKnownKeys)]);
      const fresh = rendered.rules.filter((r) => !held.has(r.owner));
      const kept = [...held].flatMap((key) => this.lastRules.get(key) ?? []);
      const rules = [...fresh, ...kept];
      const remember = () => (this.unchangedSync = { snapshot, facts, fingerprint: observed.fingerprint, needsForwarding: rendered.needsForwarding });
      await this.keepForwarding(rendered.needsForwarding);
      const desired = createHash("sha256").update(JSON.stringify(rules)).digest("hex");
      // Objects whose own rules the backend refused, while the rules stay as they were: left
      // out, so everyone else's keep working (the firewall is one transaction).
      const failed = this.isolated?.desired === desired ? this.isolated.failed : new Map<string, string>();
      let effective = rules.filter((r) => !failed.has(r.owner));
      // Rules per owner as the backend reports them equal the wanted ones: a cheap check that
      // does not depend on how the backend prints rules back.
      const countsOf = (list: readonly { owner: string }[]) => JSON.stringify([...countByOwner(list)].sort());
      let wanted = countsOf(backend.placed(effective));
      const holdsWanted = (o: Observed) => countsOf(o.rules) === wanted;
      let result: "applied" | "unchanged" = "unchanged";
      if (this.options.drift === "report") {
        // Report-only (--drift report): the table is never changed; a difference is said once per table.
        const drifted = holdsWanted(observed) ? undefined : "the table does not hold the rules the manifests ask for (changed by hand, or never applied)";
        if (drifted && this.reportedDrift !== observed.fingerprint) {
          this.options.logger.warn({ backend: backend.name }, `firewall: ${drifted}; not repaired (--drift report)`);
          this.options.metrics?.driftReported?.();
        }
        this.reportedDrift = drifted ? observed.fingerprint : undefined;
        this.applied = drifted ? undefined : { desired, fingerprint: observed.fingerprint };
        this.state = { backend: backend.name, counts: countByOwner(observed.rules), pending: rendered.pending, refused: rendered.refused, failed: new Map(failed), total: observed.rules.length, ...(drifted ? { drifted } : {}) };
        this.options.metrics?.synced(backend.name, "unchanged");
        remember();
        return this.state;
      }
      if (!this.applied || this.applied.desired !== desired || this.applied.fingerprint !== observed.fingerprint || !holdsWanted(observed)) {
        const reason = !this.applied ? "first sync" : this.applied.desired !== desired ? "manifests changed" : "the table was changed by hand";
        const refused = await this.applyIsolating(backend, effective);
        for (const [owner, message] of refused) {
          failed.set(owner, message);
          this.options.logger.warn({ owner, message }, `the firewall rules of ${owner} were refused by ${backend.name}: left out, the others applied`);
        }
        this.isolated = failed.size ? { desired, failed } : undefined;
        effective = rules.filter((r) => !failed.has(r.owner));
        wanted = countsOf(backend.placed(effective));
        observed = await this.readTable(backend, { fresh: true });
        // A hand edit between our apply and this read must not become the reference the next
        // checks compare with: remember the reading only if it holds what was applied.
        this.applied = holdsWanted(observed) ? { desired, fingerprint: observed.fingerprint } : undefined;
        this.options.logger.info({ backend: backend.name, rules: observed.rules.length, reason }, `firewall ${effective.length ? "applied" : "emptied"} (${reason})`);
        result = "applied";
        if (reason === "the table was changed by hand") this.options.metrics?.repaired?.("rules");
      }
      await this.resolveLegacy(backend, snapshot);
      this.lastRules = new Map();
      for (const rule of effective) this.lastRules.set(rule.owner, [...(this.lastRules.get(rule.owner) ?? []), rule]);
      this.state = { backend: backend.name, counts: countByOwner(observed.rules), pending: rendered.pending, refused: rendered.refused, failed: new Map(failed), total: observed.rules.length };
      this.options.metrics?.synced(backend.name, result);
      // Only a sync that found the table as it should be vouches for the next one.
      if (result === "unchanged") remember();
    } catch (error) {
      this.options.metrics?.synced(backend.name, "error");
      this.unchangedSync = undefined;
      this.applied = undefined;
      this.lastRead = undefined;
      this.state = { ...this.state, backend: backend.name, error: error instanceof Error ? error.message : String(error) };
      throw error;
    }
    return this.state;
  }

  /**
   * Applies `rules` in one transaction. When that fails and the backend can check a
   * transaction, each object's rules are checked alone: those that fail are left out and the
   * rest applied; returns them with the backend's message. Throws when no object is at fault,
   * or every one is (the backend itself fails), or the backend cannot check.
   */
  private async applyIsolating(backend: FirewallBackend, rules: readonly Rule[]): Promise<Map<string, string>> {
    try {
      await backend.apply(rules);
      return new Map();
    } catch (error) {
      if (!backend.check) throw error;
      const refused = new Map<string, string>();
      const owners = new Set(rules.map((r) => r.owner));
      for (const owner of owners) {
        const why = await backend.check(rules.filter((r) => r.owner === owner));
        if (why !== undefined) refused.set(owner, why);
      }
      // Nobody at fault, or everybody (the backend itself is failing): nothing is left out.
      if (refused.size === 0 || refused.size === owners.size) throw error;
      await backend.apply(rules.filter((r) => !refused.has(r.owner)));
      return refused;
    }
  }
}

// Wires the parts into the running controller: the manifest store (watched), libvirt
// (observed and evented), and one work queue over all kinds. Keys are "Kind/name".
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { EventStreams } from "../adapters/events.js";
import { Observer } from "../adapters/observer.js";
import { Virsh } from "../adapters/virsh.js";
import { parseObjectKey, type KindName } from "../api/kind-names.js";
import type { VirtualMachine } from "../api/virtualmachine.js";
import { networkUuid, poolUuid } from "../libvirt/index.js";
import { Controller, markReconciling, markStalled, TerminalError, DependencyNotReadyError, type Condition, type Logger, type ReconcileContext, type ReconcileReport } from "../runtime/index.js";
import { formatProblem, observedFields, type ManifestStore, type Snapshot } from "../store/index.js";
import { Firewall, FIREWALL_KEY } from "./firewall/reconciler.js";
import { reconcileNetwork } from "./network/reconciler.js";
import { reconcileStoragePool } from "./storagepool/reconciler.js";
import type { KindResult, ReconcileInput, ReconcilerDeps } from "./types.js";
import { reconcileVirtualMachine } from "./virtualmachine/reconciler.js";

export interface ManagerOptions {
  store: ManifestStore;
  uri: string;
  logger: Logger;
  defaultDomainType: "kvm" | "qemu";
  concurrency: number;
  resyncMs: number;
  consoleLogDir: string;
  firewallBackend: "auto" | "nftables" | "iptables";
  /** How often the firewall is compared with what it should hold (drift by hand). */
  firewallCheckMs: number;
}

type KindReconciler = (deps: ReconcilerDeps, input: ReconcileInput) => Promise<KindResult>;

const RECONCILERS: Partial<Record<KindName, KindReconciler>> = {
  StoragePool: reconcileStoragePool,
  Network: reconcileNetwork,
  VirtualMachine: reconcileVirtualMachine,
};

/** A picture of libvirt up to this much older than a reconcile request is still good enough. */
const STALE_MS = 2_000;

/** Order of a full pass: what others depend on first. */
export const KIND_ORDER: KindName[] = ["StoragePool", "Network", "VirtualMachine"];

export class Manager {
  readonly virsh: Virsh;
  readonly observer: Observer;
  readonly controller: Controller;
  private snapshot: Snapshot | undefined;
  private readonly deps: ReconcilerDeps;
  private events: EventStreams | undefined;
  private watcher: { close(): Promise<void> | void } | undefined;
  private firewallTimer: NodeJS.Timeout | undefined;
  /** When libvirt last told us something changed (an event, a reconnected stream). */
  private lastEventAt = 0;
  readonly firewall: Firewall;

  constructor(private readonly options: ManagerOptions) {
    this.virsh = new Virsh({ uri: options.uri });
    this.observer = new Observer(this.virsh);
    const scratchDir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-controller-"));
    fs.mkdirSync(options.consoleLogDir, { recursive: true });
    this.firewall = new Firewall({ backend: options.firewallBackend, logger: options.logger });
    this.deps = {
      store: options.store,
      virsh: this.virsh,
      live: (since) => this.observer.get(since),
      readDomain: (name) => this.observer.readDomain(name),
      snapshot: () => this.snapshot!,
      defaultDomainType: options.defaultDomainType,
      consoleLogDir: options.consoleLogDir,
      scratchDir,
      syncFirewall: async (since) => this.firewall.sync(this.snapshot ?? (await this.options.store.read()), await this.observer.get(since)),
    };
    this.controller = new Controller({
      logger: options.logger,
      concurrency: options.concurrency,
      resyncMs: options.resyncMs,
      listKeys: () => this.listKeys(),
      reconcile: (key, ctx) => this.reconcile(key, ctx),
      onReport: (report) => this.recordFailure(report),
    });
  }

  /** Every key worth a look: all manifests, owned libvirt objects whose manifest is gone, kept objects. */
  async listKeys(since = 0): Promise<string[]> {
    const snapshot = this.snapshot ?? (await this.options.store.read());
    const keys = new Set<string>([...snapshot.objects.keys(), ...snapshot.invalid.keys()]);
    const live = await this.observer.get(since);
    for (const domain of live.domains.values()) if (domain.config.owner) keys.add(domain.config.owner.manifest);
    for (const pool of live.pools.values()) if (pool.facts.uuid === poolUuid(pool.facts.name)) keys.add(`StoragePool/${pool.facts.name}`);
    for (const net of live.networks.values()) {
      if (net.config.owner?.manifest === `Network/${net.name}` || net.uuid === networkUuid(net.name)) keys.add(`Network/${net.name}`);
    }
    // A kept object removed by hand meanwhile: its reconcile clears the record.
    for (const record of await this.options.store.listTerminating()) keys.add(`${record.kind}/${record.name}`);
    const rank = (key: string) => KIND_ORDER.indexOf(parseObjectKey(key).kind);
    const sorted = [...keys].filter((k) => k.includes("/")).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    // The firewall last: it renders from every object and the bridges libvirt picked.
    return [...sorted, FIREWALL_KEY];
  }

  /** Networks named by the interfaces of VM manifest `name`. */
  private networksOf(name: string): string[] {
    const vm = this.snapshot?.objects.get(`VirtualMachine/${name}`)?.object as VirtualMachine | undefined;
    return [...new Set((vm?.spec.interfaces ?? []).flatMap((nic) => (nic.network ? [nic.network] : [])))];
  }

  private protectedKeys(snapshot: Snapshot): Set<string> {
    // Objects in files that cannot be read right now are not deleted: they may come back.
    return new Set([...snapshot.unreadableFiles.values()].flatMap((u) => u.lastKnownKeys));
  }

  /**
   * How fresh a picture of libvirt a reconcile needs: taken after the last change we know of
   * (our own virsh commands, libvirt events) and at most STALE_MS before the key was queued.
   * A pass over many objects then shares one observation instead of taking one per group.
   */
  private freshness(queuedAt: number, toleranceMs = STALE_MS): number {
    return Math.min(queuedAt, Math.max(this.lastEventAt, this.virsh.lastMutationAt, queuedAt - toleranceMs));
  }

  private async reconcile(key: string, ctx: ReconcileContext): Promise<KindResult> {
    const { queuedAt, log } = ctx;
    const snapshot = this.snapshot ?? (await this.options.store.read());
    const observe = async (since: number) => {
      const picture = await this.observer.get(since);
      ctx.observedAt = Math.max(ctx.observedAt ?? 0, picture.takenAt);
      return picture;
    };
    if (key === FIREWALL_KEY) {
      // Bridges and VNC ports change only with events or our own commands: no tolerance
      // needed, so the periodic firewall check does not re-read libvirt.
      const live = await observe(this.freshness(queuedAt, Infinity));
      ctx.observedAt = Date.now(); // the table itself is read from here on
      const state = await this.firewall.sync(snapshot, live);
      if (state.error) throw new Error(state.error);
      return { ready: true };
    }
    const { kind, name } = parseObjectKey(key);
    const problems = snapshot.invalid.get(key);
    if (problems) throw new TerminalError(problems.map(formatProblem).join("; "), "InvalidSpec");
    const stored = snapshot.objects.get(key);
    if (!stored && this.protectedKeys(snapshot).has(key)) {
      log.warn({}, "manifest file cannot be read; keeping the object as it is");
      return { ready: false };
    }
    const reconciler = RECONCILERS[kind];
    if (!reconciler) {
      if (stored) throw new TerminalError(`${kind} is not reconciled by this version of kvmctl yet`, "NotImplemented");
      return { ready: true };
    }
    return reconciler({ ...this.deps, live: observe }, { key, name, stored, since: this.freshness(queuedAt), log });
  }

  /** Failures become conditions; the reconcilers write status for successes themselves. */
  private async recordFailure(report: ReconcileReport): Promise<void> {
    if (report.outcome === "ready") return;
    if (report.key === FIREWALL_KEY) return; // logged by the runtime; networks carry it in status
    const snapshot = this.snapshot;
    const stored = snapshot?.objects.get(report.key);
    const message = report.error instanceof Error ? report.error.message : String(report.error);
    const previous = ((stored?.object as { status?: Record<string, unknown> } | undefined)?.status ?? {}) as Record<string, unknown> & { conditions?: Condition[] };
    const generation = stored?.generation ?? 1;
    let conditions: Condition[];
    if (report.error instanceof TerminalError) conditions = markStalled(previous.conditions, generation, report.error.reason, message);
    else if (report.error instanceof DependencyNotReadyError) conditions = markReconciling(previous.conditions, generation, "DependencyNotReady", message);
    else conditions = markReconciling(previous.conditions, generation, "ReconcileFailed", message);
    const phase = report.error instanceof DependencyNotReadyError ? "Pending" : report.error instanceof TerminalError ? "Failed" : previous.phase;
    const status = { ...previous, ...(stored ? observedFields(stored) : {}), conditions, ...(parseObjectKey(report.key).kind === "VirtualMachine" && phase ? { phase } : {}) };
    try {
      await this.options.store.writeStatus(report.key, status);
    } catch (error) {
      this.options.logger.warn({ object: report.key, err: error }, "could not write status");
    }
    if (report.outcome !== "waiting") {
      await this.options.store.recordEvent(report.key, { time: new Date().toISOString(), type: "Warning", reason: report.error instanceof TerminalError ? report.error.reason : "ReconcileFailed", message }).catch(() => undefined);
    }
  }

  /** Runs until stop(): watches manifests and libvirt events, reconciles, resyncs. */
  async start(): Promise<void> {
    this.snapshot = await this.options.store.read();
    for (const problem of this.snapshot.problems) this.options.logger.warn({ problem: formatProblem(problem) }, "manifest problem");
    this.watcher = await this.options.store.watch((change) => {
      this.snapshot = change.snapshot;
      for (const key of change.keys) {
        this.controller.forget(key);
        this.controller.enqueue(key);
      }
      this.controller.enqueue(FIREWALL_KEY);
    });
    this.events = new EventStreams({
      uri: this.options.uri,
      onEvent: (event) => {
        const kind: KindName = event.kind === "domain" ? "VirtualMachine" : event.kind === "pool" ? "StoragePool" : "Network";
        // A domain that stopped (destroyed by hand, crashed) is restarted without a full
        // re-read of libvirt when the picture missed nothing else: that is most of the time
        // between the stop and the start.
        const stopped = event.kind === "domain" ? /^lifecycle: Stopped (\w+)/.exec(event.detail) : null;
        const followed = stopped !== null && this.observer.applyDomainStopped(event.name, stopped[1]!.toLowerCase(), Math.max(this.lastEventAt, this.virsh.lastMutationAt));
        // "Shutdown Finished" only announces the Stopped event that follows it: it makes
        // nothing stale by itself, so it must not spoil that event's shortcut.
        const prelude = event.kind === "domain" && event.detail.startsWith("lifecycle: Shutdown");
        if (!followed && !prelude) this.lastEventAt = Date.now();
        this.options.logger.debug({ event }, "libvirt event");
        this.controller.enqueue(`${kind}/${event.name}`);
        // A guest that starts will take DHCP leases its networks report in status.
        if (event.kind === "domain") for (const network of this.networksOf(event.name)) this.controller.enqueue(`Network/${network}`);
        // VNC ports and bridges appear when domains and networks start.
        this.controller.enqueue(FIREWALL_KEY);
      },
      onReconnect: (stream) => {
        this.lastEventAt = Date.now();
        this.options.logger.info({ stream }, "libvirt event stream reconnected; resyncing");
        void this.listKeys(Date.now()).then((keys) => keys.forEach((k) => this.controller.enqueue(k))).catch(() => undefined);
      },
      onError: (stream, message) => this.options.logger.warn({ stream, message }, "libvirt event stream ended; reconnecting"),
    });
    this.events.start();
    // Nothing reports a table flushed by hand: compare it with what it should hold, often.
    this.firewallTimer = setInterval(() => this.controller.enqueue(FIREWALL_KEY), this.options.firewallCheckMs);
    this.firewallTimer.unref();
    await this.controller.start();
  }

  async stop(): Promise<void> {
    this.events?.stop();
    if (this.firewallTimer) clearInterval(this.firewallTimer);
    await this.watcher?.close();
    await this.controller.stop();
    fs.rmSync(this.deps.scratchDir, { recursive: true, force: true });
  }

  /** One full pass in dependency order; resolves with every key's report. */
  async runOnce(): Promise<ReconcileReport[]> {
    this.snapshot = await this.options.store.read();
    const keys = await this.listKeys(Date.now());
    const groups = [...KIND_ORDER.map((kind) => keys.filter((k) => k !== FIREWALL_KEY && parseObjectKey(k).kind === kind)), [FIREWALL_KEY]];
    const reports = await this.controller.runOnce(groups);
    fs.rmSync(this.deps.scratchDir, { recursive: true, force: true });
    return reports;
  }
}

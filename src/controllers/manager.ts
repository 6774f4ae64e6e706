// Wires the parts into the running controller: the manifest store (watched), the host ports
// (libvirt observed and evented), the registry's kind controllers and singletons, and one work
// queue over all of them. Keys are "Kind/name" (and each singleton's key).
import { isKindName, parseObjectKey } from "../api/index.js";
import type { HypervisorEvent, LiveState, Ports } from "../ports/index.js";
import { Controller, every, TerminalError, type Logger, type ReconcileContext, type ReconcileReport, type ReconcileResult } from "../runtime/index.js";
import { formatProblem, type ManifestStore, type Snapshot, type StoredObject } from "../store/index.js";
import { changedKeys, fingerprints } from "../store/watch.js";
import type { GitCheckout } from "../gitops/checkout.js";
import { PullError, type PullOutcome } from "../gitops/pull.js";
import { writeSource, type PullRecord, type SourceStatus } from "../gitops/source.js";
import type { AnyKindController, ControllerSettings, KindContext, ObjectMemory } from "./kind.js";
import { DEFAULT_HOST_PATHS, hostPathRefusals, type HostPathPolicy } from "./host-path-policy.js";
import { objectRecorder } from "./recorder.js";
import { builtinControllers, createSingletons, type Singleton, type Singletons } from "./registry.js";
import { pruneDecision, type PrunePolicy } from "./prune-policy.js";
import { failureEvent, statusFromDrift, statusFromFailure, statusFromReport, statusWhileSuspended } from "./status.js";
import { objectMode, type DriftHandling } from "./modes.js";
import type { ManagerMetrics } from "./metrics.js";
import { compareText } from "../api/text.js";

export interface ManagerOptions {
  store: ManifestStore;
  ports: Ports;
  logger: Logger;
  settings: ControllerSettings & { consoleLogDir: string };
  concurrency: number;
  resyncMs: number;
  firewallBackend: "auto" | "nftables" | "iptables";
  /** How often the firewall is compared with what it should hold (drift by hand). */
  firewallCheckMs: number;
  /** The kinds reconciled; default every built-in kind (src/controllers/registry.ts). */
  controllers?: readonly AnyKindController[];
  /** When a deleted manifest's objects are pruned (./prune-policy.ts); default 2 s settle, no empty pruning. */
  prune?: Partial<PrunePolicy>;
  /** Full re-read of the manifest directory without file events (ms); default 10 s. */
  rescanMs?: number;
  /** Which host directories manifests may use, per use; default DEFAULT_HOST_PATHS. */
  hostPaths?: HostPathPolicy;
  /** Host ports no Network port forward may take (besides those the host listens on); default [22]. */
  reservedHostPorts?: readonly number[];
  /**
   * The git checkout holding the manifest directory: revisions go into status and events;
   * with `pullIntervalMs` the controller pulls it (src/gitops/pull.ts) on that interval, and
   * always when requestPull() asks (SIGHUP, `kvmctl reconcile --pull`).
   */
  git?: { checkout: GitCheckout; pullIntervalMs?: number; statusFilter: boolean };
  /** `--drift`: repair drift (the default) or only report it; per object, the annotation kvmctl.dev/drift wins. */
  drift?: DriftHandling;
  /** Metrics hooks (./metrics.ts, src/metrics); absent: nothing is counted. */
  metrics?: ManagerMetrics;
}

/** How often an object whose drift is only reported is looked at again (events wake it sooner). */
const DRIFT_RECHECK_MS = 30_000;

/** How often the checkout's HEAD, and the reconciles `kvmctl reconcile` asked for, are looked at. */
const HEAD_CHECK_MS = 1_000;

/** A picture of libvirt up to this much older than a reconcile request is still good enough. */
const STALE_MS = 2_000;

/** How long singletons let the reconciles an event woke go first. */
const SINGLETONS_AFTER_EVENT_MS = 100;

export class Manager {
  readonly controller: Controller;
  readonly services: Singletons["services"];
  private readonly ports: Ports;
  private readonly kinds: Map<string, AnyKindController>;
  private readonly singletons: Map<string, Singleton>;
  private readonly memories = new Map<string, Map<string, unknown>>();
  /** When libvirt last changed for each key (an event about it, its reconcile's own commands). */
  private readonly keyChangedAt = new Map<string, number>();
  /**
   * Keys whose next reconcile reads libvirt afresh whatever the informer holds (`kvmctl
   * reconcile`: a person asked). What libvirt sends no event for (autostart flags, volumes,
   * `setmaxmem --config`) is seen then.
   */
  private readonly lookAfresh = new Set<string>();
  /** The status this manager last wrote for each key, and the snapshot's object it was written over. */
  private snapshot: Snapshot | undefined;
  private watcher: { close(): Promise<void> | void } | undefined;
  private events: { stop(): void } | undefined;
  private timers: (() => void)[] = [];
  /** The singletons' watches of the host (the firewall's `nft monitor`). */
  private singletonWatches: { stop(): Promise<void> }[] = [];
  private readonly prune: PrunePolicy;
  /** When the manifest directory last changed (a watch report); deletions wait for it to settle. */
  private lastStoreChangeAt = 0;
  /** Why the directory as a whole is not pruned right now (unreadable, empty), for one log line per change. */
  private directoryHold: string | undefined;
  /** The revision of the checkout `snapshot` was read from (set with it), when in a git checkout. */
  private revision: string | undefined;
  /** Last revision each object was applied at (for the status of an object that became invalid). */
  private readonly appliedRevisions = new Map<string, string>();
  /** While > 0 (a pull changing the tree), watch reports wait: the next snapshot is the pulled tree, whole. */
  private snapshotHold = 0;
  private readonly heldKeys = new Set<string>();
  /** The read sequence (ManifestStore.readSequence) of the adopted snapshot: older reads are never adopted. */
  private adoptedSequence = 0;
  private adoption: Promise<void> = Promise.resolve();
  private pulling: Promise<PullOutcome | PullError> | undefined;
  private pullQueued: Promise<PullOutcome | PullError> | undefined;
  private source: SourceStatus | undefined;

  constructor(private readonly options: ManagerOptions) {
    this.ports = options.ports;
    this.prune = { settleMs: 2_000, allowEmpty: false, ...options.prune };
    this.kinds = new Map((options.controllers ?? builtinControllers()).map((c) => [c.kind as string, c]));
    const { services, singletons } = createSingletons({
      ports: options.ports,
      logger: options.logger,
      snapshot: async () => this.snapshot ?? (await options.store.read()),
      observe: (since) => options.ports.hypervisor.observe(since),
      firewallBackend: options.firewallBackend,
      firewallCheckMs: options.firewallCheckMs,
      instance: options.settings.instance,
      ...(options.drift ? { drift: options.drift } : {}),
      ...(options.reservedHostPorts ? { reservedHostPorts: options.reservedHostPorts } : {}),
      ...(options.metrics?.firewall ? { firewallMetrics: options.metrics.firewall } : {}), // metrics
    });
    this.services = services;
    this.singletons = new Map(singletons.map((s) => [s.key, s]));
    this.controller = new Controller({
      logger: options.logger,
      concurrency: options.concurrency,
      resyncMs: options.resyncMs,
      clock: options.ports.clock,
      listKeys: (purpose) => (purpose === "resync" ? this.resyncKeys() : this.listKeys()),
      reconcile: (key, ctx) => this.reconcile(key, ctx),
      onReport: (report) => this.recordFailure(report),
      ...(options.metrics?.controller ? { metrics: options.metrics.controller } : {}), // metrics
    });
  }

  /** Kind controllers in full-pass order. */
  private get ordered(): AnyKindController[] {
    return [...this.kinds.values()].sort((a, b) => a.order - b.order);
  }

  /** Every key worth a look: all manifests, owned libvirt objects whose manifest is gone, kept objects; singletons last. */
  async listKeys(since = 0): Promise<string[]> {
    const snapshot = this.snapshot ?? (await this.options.store.read());
    const keys = new Set<string>([...snapshot.objects.keys(), ...snapshot.invalid.keys()]);
    const live = await this.ports.hypervisor.observe(since);
    for (const kind of this.kinds.values()) for (const key of kind.ownedKeys(live, this.options.settings.instance)) keys.add(key);
    // A kept object removed by hand meanwhile: its reconcile clears the record.
    for (const record of await this.options.store.listTerminating()) keys.add(`${record.kind}/${record.name}`);
    const rank = (key: string) => this.kinds.get(parseObjectKey(key).kind)?.order ?? -1;
    const sorted = [...keys].filter((k) => isKindName(k.slice(0, k.indexOf("/")))).sort((a, b) => rank(a) - rank(b) || compareText(a, b));
    // Singletons last: the firewall renders from every object and the bridges libvirt picked.
    return [...sorted, ...this.singletons.keys()];
  }

  /**
   * The current picture's `takenAt` when the hypervisor's informer says it still holds (no
   * change since, the event streams listening throughout, read within the resync period), so
   * that it stands for a reading now. For `key`, only when its last reconcile left it settled
   * (Ready, no later look asked for): objects converging, failing, waiting or polling what
   * libvirt sends no event for (a kept pool's volumes) read libvirt as before.
   */
  private informedSince(key?: string): number | undefined {
    if (key !== undefined && !this.controller.settled(key)) return undefined;
    return this.ports.hypervisor.informedSince(this.options.resyncMs);
  }

  /**
   * The periodic resync's keys: every key, listed from a reading of libvirt started now, which
   * their reconciles share (the newest picture) — what no event reports is seen then.
   */
  private resyncKeys(): Promise<string[]> {
    return this.listKeys(this.ports.clock.now());
  }

  /**
   * How fresh a picture of libvirt a reconcile needs: taken after the last change we know of
   * (our own commands, libvirt events) and at most `toleranceMs` before the key was queued.
   * A pass over many objects then shares one observation instead of taking one per group.
   */
  private freshness(queuedAt: number, toleranceMs = STALE_MS, key?: string): number {
    const shared = Math.min(queuedAt, Math.max(this.ports.hypervisor.changedAt, queuedAt - toleranceMs));
    // But never older than what is known to have changed about this very key since it was
    // queued (a libvirt event about it, its own last reconcile's commands): a reconcile must
    // not act again on what it, or an event, already changed (e.g. undefine a domain twice).
    return Math.max(shared, key ? (this.keyChangedAt.get(key) ?? 0) : 0);
  }

  /**
   * `stored` with the status its manifest holds as far as this manager knows. The snapshot is
   * read again only when a manifest changes (the manager's own status writes are not reported),
   * so until then it holds the status from before the last write: built on that, conditions
   * would get a new lastTransitionTime on every reconcile, and the same status be written again.
   */
  private withWrittenStatus(stored: StoredObject | undefined, snapshot: Snapshot | undefined): StoredObject | undefined {
    const written = stored && snapshot ? this.options.store.statusWritten(stored.key, snapshot) : undefined;
    if (!stored || written === undefined) return stored;
    const { status: _previous, ...rest } = stored.object as Record<string, unknown>;
    return { ...stored, object: written === null ? rest : { ...rest, status: written } } as StoredObject;
  }

  private memoryOf(kind: string): ObjectMemory<unknown> {
    let memory = this.memories.get(kind);
    if (!memory) this.memories.set(kind, (memory = new Map()));
    return memory;
  }

  private async reconcile(key: string, ctx: ReconcileContext): Promise<ReconcileResult & { ready: boolean }> {
    const snapshot = this.snapshot ?? (await this.options.store.read());
    const revision = this.snapshot === snapshot ? this.revision : undefined;
    const fresh = this.lookAfresh.delete(key); // a fresh look asked for is this reconcile's
    // What the reconcile decided on: logged with its outcome (tests wait for it).
    // mend (Hypervisor.observe): only for readers that trust what libvirt sends no event for.
    const observe = async (since: number, mend: boolean): Promise<LiveState> => {
      const picture = await this.ports.hypervisor.observe(since, { mend });
      ctx.observedAt = Math.max(ctx.observedAt ?? 0, picture.takenAt);
      return picture;
    };
    const singleton = this.singletons.get(key);
    if (singleton) {
      return singleton.reconcile({ snapshot, live: (at) => observe(at, singleton.mendsPicture), since: this.freshness(ctx.queuedAt, singleton.staleToleranceMs), observed: (at) => (ctx.observedAt = at), log: ctx.log });
    }
    const { kind, name } = parseObjectKey(key);
    const problems = snapshot.invalid.get(key);
    if (problems) throw new TerminalError(problems.map(formatProblem).join("; "), "InvalidSpec");
    const read = snapshot.objects.get(key);
    const stored = this.withWrittenStatus(read, snapshot);
    const controller = this.kinds.get(kind);
    // A settled object (Ready, no later look asked for) trusts the informer, as informedSince
    // does; so does one whose plan reads only what libvirt sends events for.
    const mends = !fresh && (this.controller.settled(key) || (stored !== undefined && controller?.readsOnlyEventedFacts(stored.object) === true));
    const since = (): number => {
      if (fresh) return this.freshness(ctx.queuedAt, 0, key); // a reading started after the request
      // A domain's own reader also trusts a picture that only other domains' changes made stale.
      const domain = mends ? controller?.domainOf?.(name) : undefined;
      const informed = this.informedSince(key) ?? (domain !== undefined ? this.ports.hypervisor.informedSince(this.options.resyncMs, domain) : undefined);
      if (informed === undefined) return this.freshness(ctx.queuedAt, STALE_MS, key);
      // libvirt is known unchanged since the picture was read: it is as good as a reading now.
      ctx.observedAt = Math.max(ctx.observedAt ?? 0, this.ports.clock.now());
      return Math.max(informed, this.keyChangedAt.get(key) ?? 0);
    };
    const suspension = (await this.options.store.suspended()).get(key);
    if (!stored && suspension) {
      // Suspended on this host: not even pruned until resumed.
      ctx.log.info({ by: "kvmctl suspend" }, "suspended: left alone (its manifest is gone; kvmctl resume lets it be pruned)");
      return { ready: true };
    }
    if (!stored) {
      // Prune only what can be seen to be gone (./prune-policy.ts).
      const asked = snapshot.objects.size === 0 && (await this.options.store.deletionIntents()).has(key);
      const recordedFile = snapshot.unreadableFiles.size ? controller?.recordedFile?.(await observe(since(), false), name) : undefined;
      const decision = pruneDecision(snapshot, key, this.ports.clock.now(), this.lastStoreChangeAt, this.prune, asked, recordedFile);
      if (!decision.prune) {
        if (decision.reason !== "Settling") {
          ctx.log.warn({ reason: decision.reason }, `not pruned: ${decision.message}`);
          const recorder = objectRecorder(this.options.store, key, this.ports.clock, revision);
          if ((await this.options.store.readEvents(key).catch(() => [])).at(-1)?.reason !== decision.reason) await recorder.event("Warning", decision.reason, decision.message).catch(() => undefined);
        }
        return { ready: false, ...(decision.retryAfterMs !== undefined ? { requeueAfterMs: decision.retryAfterMs } : {}) };
      }
    }
    if (!controller) {
      if (stored) throw new TerminalError(`${kind} is not reconciled by this version of kvmctl yet`, "NotImplemented");
      return { ready: true };
    }
    const mode = stored ? objectMode((stored.raw.metadata as { annotations?: Record<string, string> }).annotations, suspension, this.options.drift ?? "repair") : undefined;
    if (stored && mode?.suspended) {
      // Paused on this host or from git: nothing is read or done; status says so.
      const was = (stored.object as { status?: { suspended?: unknown } }).status?.suspended !== undefined;
      await this.options.store.writeStatus(key, statusWhileSuspended(stored, mode.suspended, this.options.settings.instance));
      if (!was) await objectRecorder(this.options.store, key, this.ports.clock, revision).event("Normal", "Suspended", mode.suspended.by === "annotation" ? "suspended by the annotation kvmctl.dev/reconcile: disabled" : "suspended by kvmctl suspend on this host");
      ctx.log.info({ by: mode.suspended.by }, "suspended: left alone");
      return { ready: true };
    }
    if (stored && controller.hostPaths) {
      // Before anything is read or done for the object: a refused path is never touched.
      const refusals = hostPathRefusals(controller.hostPaths(stored.object), this.options.hostPaths ?? DEFAULT_HOST_PATHS, (p) => this.ports.paths.real(p));
      if (refusals.length) throw new TerminalError(refusals.join("; "), "HostPathNotAllowed");
    }
    const kindContext: KindContext<unknown> = {
      ports: this.ports,
      settings: this.options.settings,
      memory: this.memoryOf(kind),
      now: this.ports.clock.now(),
      snapshot,
      live: (at) => observe(at, mends),
      record: objectRecorder(this.options.store, key, this.ports.clock, revision),
      services: this.services,
      log: ctx.log,
    };
    if (stored && mode?.drift === "report") {
      // Report-only: what a reconcile would change is reported as drift, and nothing is done.
      const live = await observe(since(), false);
      const target = { key, name, object: stored.object, specHash: stored.specHash, file: stored.location.file };
      const changes: string[] = controller.changes(controller.plan(await controller.planInput(kindContext, target, live)));
      if (changes.length) {
        const was = (stored.object as { status?: { conditions?: { type: string; message?: string }[] } }).status?.conditions?.find((c) => c.type === "Drifted")?.message;
        await this.options.store.writeStatus(key, statusFromDrift(stored, changes, this.options.settings.instance, new Date(this.ports.clock.now()), revision));
        if (was !== changes.join("; ")) {
          await kindContext.record.event("Warning", "Drifted", `not repaired (drift: report): ${changes.join("; ")}`);
          this.options.metrics?.driftReported?.(kind); // metrics
        }
        ctx.log.warn({ changes }, "drift reported, not repaired (drift: report)");
        return { ready: false, requeueAfterMs: DRIFT_RECHECK_MS };
      }
    }
    const changedBefore = this.ports.hypervisor.changedAt;
    const outcome = await controller.reconcile(kindContext, { key, name, stored, since: since() }).finally(() => {
      // Its own commands (or anyone's meanwhile) changed libvirt: the next reconcile of this key sees that.
      if (this.ports.hypervisor.changedAt > changedBefore) this.keyChangedAt.set(key, this.ports.hypervisor.changedAt);
    });
    this.options.metrics?.reconciled?.({ key, kind, stored, ready: outcome.ready, repairs: outcome.repairs ?? [] }); // metrics: drift repairs
    if (outcome.report && stored) {
      await this.options.store.writeStatus(key, statusFromReport(stored, outcome.ready, outcome.report, this.options.settings.instance, new Date(this.ports.clock.now()), revision));
      if (revision) this.appliedRevisions.set(key, revision);
    }
    return { ready: outcome.ready, requeueAfterMs: outcome.requeueAfterMs };
  }

  // --- metrics: kvmctl_objects ---
  /** Every manifest's kind and Ready as its last reconcile left it (Unknown: not reconciled yet; invalid: False). */
  objectStates(): { kind: string; ready: "True" | "False" | "Unknown" }[] {
    const snapshot = this.snapshot;
    if (!snapshot) return [];
    return [...snapshot.objects.keys(), ...snapshot.invalid.keys()].map((key) => {
      const last = this.controller.outcomeOf(key);
      return { kind: parseObjectKey(key).kind, ready: snapshot.invalid.has(key) ? "False" : last === undefined ? "Unknown" : last.ready ? "True" : "False" };
    });
  }
  // --- end metrics ---

  /** Failures become conditions (status.ts); successes were written by reconcile. */
  private async recordFailure(report: ReconcileReport): Promise<void> {
    if (report.outcome === "ready" || this.singletons.has(report.key)) return; // singletons: logged by the runtime; networks carry the firewall in status
    const { kind, name } = parseObjectKey(report.key);
    const read = this.snapshot?.objects.get(report.key);
    const stored = this.withWrittenStatus(read, this.snapshot);
    const now = new Date(this.ports.clock.now());
    const controller = this.kinds.get(kind);
    try {
      // What libvirt holds stays in status (a shared, usually cached picture): a failure adds its condition, it erases no fact.
      const live = stored && controller?.liveFacts ? await this.ports.hypervisor.observe(this.freshness(this.ports.clock.now(), STALE_MS, report.key)) : undefined;
      const facts = live && stored ? controller!.liveFacts!({ key: report.key, name, object: stored.object, specHash: stored.specHash, file: stored.location.file }, live, this.options.settings.instance) : {};
      // An invalid document has no parsed status to keep: what it was last applied at is remembered here.
      const applied = stored ? {} : this.appliedRevisions.has(report.key) ? { lastAppliedRevision: this.appliedRevisions.get(report.key) } : {};
      const revisions = { ...applied, ...(this.revision ? { lastAttemptedRevision: this.revision } : {}) };
      await this.options.store.writeStatus(report.key, statusFromFailure(stored, report.error, controller?.failurePhase, this.options.settings.instance, now, { ...facts, ...revisions }));
    } catch (error) {
      this.options.logger.warn({ object: report.key, err: error }, "could not write status");
    }
    const event = failureEvent(report.error);
    if (event && report.outcome !== "waiting") {
      await this.options.store.recordEvent(report.key, { time: now.toISOString(), type: "Warning", ...event, ...(this.revision ? { revision: this.revision } : {}) }).catch(() => undefined);
    }
  }

  /** One log line when the directory as a whole stops or starts being prunable (unreadable, empty). */
  private noteDirectoryState(snapshot: Snapshot): void {
    const unreadable = snapshot.unreadableFiles.get(".");
    const hold = unreadable
      ? `the manifest directory cannot be read (${unreadable.problems[0]?.message ?? ""}): nothing is pruned until it is back`
      : !this.prune.allowEmpty && snapshot.objects.size + snapshot.invalid.size + snapshot.unreadableFiles.size === 0
        ? "the manifest directory holds no objects: nothing is pruned but what `kvmctl delete` removed (--allow-empty prunes)"
        : undefined;
    if (hold !== this.directoryHold) {
      if (hold) this.options.logger.warn({ dir: this.options.store.dir }, hold);
      else if (this.directoryHold) this.options.logger.info({ dir: this.options.store.dir }, "the manifest directory is readable and holds objects again: full resync");
    }
    this.directoryHold = hold;
  }

  /** Keys a libvirt event wakes: each kind's, and every singleton. */
  private route(event: HypervisorEvent): void {
    this.options.logger.debug({ event }, "libvirt event");
    if (event.prelude) return; // the event it announces wakes what it concerns
    const snapshot = this.snapshot ?? { objects: new Map() };
    // An echo of our own command does not wake the VM whose reconcile ran it (that reconcile read
    // its domain afterwards); what depends on the domain still looks (its networks: a started
    // guest takes DHCP leases; the singletons, which render from every domain).
    const commandOf = event.echo && event.kind === "domain" ? `VirtualMachine/${event.name}` : undefined;
    let woken = 0;
    for (const kind of this.ordered) {
      for (const key of kind.wakeFor(event, snapshot)) {
        if (key === commandOf) continue;
        // The reconcile it wakes must see libvirt as of the event (or later).
        this.keyChangedAt.set(key, Math.max(this.keyChangedAt.get(key) ?? 0, event.at));
        this.controller.enqueue(key);
        woken++;
      }
    }
    // The objects the event is about go first: a singleton rendering from everything (the
    // firewall) would otherwise share the one thread with, say, the restart of a stopped guest.
    for (const key of this.singletons.keys()) {
      if (woken > 0) this.controller.enqueueAfter(key, SINGLETONS_AFTER_EVENT_MS);
      else this.controller.enqueue(key);
    }
  }

  /** Runs until stop(): watches manifests and libvirt events, reconciles, resyncs (and pulls the checkout, with --git-pull). */
  async start(): Promise<void> {
    for (const file of await this.options.store.removeStaleTempFiles()) this.options.logger.info({ file }, "removed a temporary file a killed kvmctl left behind");
    await this.adopt(await this.options.store.read(), undefined);
    this.lastStoreChangeAt = this.ports.clock.now(); // a directory being changed as we start settles first
    for (const problem of this.snapshot!.problems) this.options.logger.warn({ problem: formatProblem(problem) }, "manifest problem");
    this.noteDirectoryState(this.snapshot!);
    await this.saveSource({});
    const checkout = this.options.git?.checkout;
    this.watcher = await this.options.store.watch(
      (change) => {
        if (this.snapshotHold > 0) {
          for (const key of change.keys) this.heldKeys.add(key);
          return;
        }
        this.adoption = this.adoption.then(() => this.adopt(change.snapshot, change.keys)).catch((error: unknown) => this.options.logger.error({ err: error }, "could not apply a change of the manifest directory"));
      },
      {
        rescanMs: this.options.rescanMs,
        onError: (error) => this.options.logger.error({ err: error }, "could not re-read the manifest directory"),
        ...(checkout ? { settledMark: () => checkout.settledMark() } : {}),
      },
    );
    this.events = this.ports.hypervisor.watch({
      onEvent: (event) => this.route(event),
      onReconnect: (stream) => {
        this.options.logger.info({ stream }, "libvirt event stream reconnected; resyncing");
        // Everything again, at once: what failed while libvirtd was away waits out no backoff.
        void this.listKeys(this.ports.clock.now())
          .then((keys) => keys.forEach((k) => (this.controller.forget(k), this.controller.enqueue(k))))
          .catch(() => undefined);
      },
      onError: (stream, message) => this.options.logger.warn({ stream, message }, "libvirt event stream ended; reconnecting"),
      onListening: (stream, complete) => {
        if (complete) this.options.logger.info({ stream }, "libvirt event stream listening");
        else this.options.logger.warn({ stream }, "libvirtd refused some of this stream's event registrations: the picture of libvirt is read again for every pass, as without events");
      },
    }, { maxAgeMs: this.options.resyncMs });
    for (const singleton of this.singletons.values()) {
      if (singleton.periodMs) this.timers.push(every(this.ports.clock, singleton.periodMs, () => this.controller.enqueue(singleton.key), { keepAlive: false }));
      if (singleton.watch) this.singletonWatches.push(singleton.watch(() => this.controller.enqueue(singleton.key)));
    }
    if (checkout) {
      // HEAD moved with no manifest changing (a commit, a push into the checkout): a new revision.
      let mark = checkout.headMark();
      this.timers.push(
        every(this.ports.clock, HEAD_CHECK_MS, () => {
          const now = checkout.headMark();
          if (now === mark || this.snapshotHold > 0) return;
          mark = now;
          this.adoption = this.adoption.then(() => (this.snapshot ? this.adopt(this.snapshot, []) : undefined)).catch(() => undefined);
        }, { keepAlive: false }),
      );
    }
    // `kvmctl reconcile KIND/NAME` and `kvmctl resume` leave a request in .kvmctl/requests/.
    this.timers.push(
      every(this.ports.clock, HEAD_CHECK_MS, () => {
        void this.options.store.takeReconcileRequests().then((keys) => {
          for (const key of keys) {
            this.options.logger.info({ object: key }, "reconcile requested");
            this.lookAfresh.add(key); // a person asked: what no event reports is looked at too
            this.controller.forget(key);
            this.controller.enqueue(key);
          }
        }, () => undefined);
      }, { keepAlive: false }),
    );
    const pullEvery = this.options.git?.pullIntervalMs;
    if (pullEvery) this.timers.push(every(this.ports.clock, pullEvery, () => void this.requestPull("interval"), { keepAlive: false }));
    await this.controller.start();
    if (pullEvery) void this.requestPull("startup");
  }

  /**
   * Makes `snapshot` the one reconciles decide on, with the checkout's revision, and queues
   * what it changed: `keys` (undefined: everything). A new revision queues every object (each
   * status then names it); a read older than the adopted one is never adopted.
   */
  private async adopt(snapshot: Snapshot, keys: readonly string[] | undefined): Promise<void> {
    const sequence = this.options.store.readSequence(snapshot);
    if (sequence < this.adoptedSequence) {
      for (const key of keys ?? []) this.controller.enqueue(key);
      return;
    }
    const previousRevision = this.revision;
    const revision = await this.revisionOf();
    if (this.options.store.readSequence(snapshot) < this.adoptedSequence) return;
    this.adoptedSequence = sequence;
    const first = this.snapshot === undefined;
    this.snapshot = snapshot;
    this.revision = revision;
    if (revision !== previousRevision && !first) {
      this.options.logger.info({ revision, previous: previousRevision }, "applying revision");
      void this.saveSource({ revision });
    }
    if (first) return;
    this.lastStoreChangeAt = this.ports.clock.now();
    const wasHeld = this.directoryHold !== undefined;
    this.noteDirectoryState(snapshot);
    // Readable (or filled) again, or a new revision: look at everything, not only what the read changed.
    const everything = keys === undefined || (wasHeld && this.directoryHold === undefined) || revision !== previousRevision;
    const changed = new Set(keys ?? []);
    const list = everything ? await this.listKeys(this.informedSince() ?? this.ports.clock.now()) : [...changed];
    for (const key of list) {
      if (changed.has(key) || keys === undefined) this.controller.forget(key);
      this.controller.enqueue(key);
    }
    for (const key of this.singletons.keys()) this.controller.enqueue(key);
  }

  /** The checkout's revision now, or undefined (no checkout, no commit yet, git failing). */
  private async revisionOf(): Promise<string | undefined> {
    const checkout = this.options.git?.checkout;
    if (!checkout) return undefined;
    const exclude = new Set(this.options.store.statusDir ? [this.options.store.statusDir] : []);
    return checkout.revisionString(exclude).catch((error: unknown) => {
      this.options.logger.warn({ err: error }, "could not tell the checkout's revision");
      return undefined;
    });
  }

  /**
   * Pulls the checkout now (one pull at a time: a request during a pull shares it) and applies
   * the pulled tree as one snapshot. A failed pull changes nothing: the last good revision
   * keeps being applied, and the failure is recorded (`.kvmctl/source.json`, the log).
   */
  requestPull(trigger: string): Promise<PullOutcome | PullError> {
    const checkout = this.options.git?.checkout;
    if (!checkout) return Promise.resolve(new PullError("NoUpstream", "the manifest directory is not in a git checkout"));
    // Asked during a pull: one more after it (what was pushed meanwhile may be missing from it).
    if (this.pulling) return (this.pullQueued ??= this.pulling.then(() => ((this.pullQueued = undefined), this.requestPull(trigger))));
    this.pulling = (async (): Promise<PullOutcome | PullError> => {
      const { pullCheckout } = await import("../gitops/pull.js");
      const before = this.snapshot;
      let result: PullOutcome | PullError;
      try {
        result = await pullCheckout({
          checkout,
          store: this.options.store,
          exclusive: async (fn) => {
            this.snapshotHold++;
            try {
              return await this.options.store.exclusive(fn);
            } finally {
              this.snapshotHold--;
            }
          },
        });
      } catch (error) {
        result = error instanceof PullError ? error : new PullError("MergeFailed", error instanceof Error ? error.message : String(error));
      }
      // The pulled tree, whole, and whatever the watcher reported while the pull held it.
      const held = [...this.heldKeys];
      this.heldKeys.clear();
      if ((!(result instanceof PullError) && result.how !== "none") || held.length) {
        const after = await this.options.store.read();
        const keys = new Set([...held, ...(before ? changedKeys(fingerprints(before), fingerprints(after)) : [])]);
        await (this.adoption = this.adoption.then(() => this.adopt(after, [...keys])));
      }
      const time = new Date(this.ports.clock.now()).toISOString();
      const record: PullRecord =
        result instanceof PullError
          ? { time, trigger, ok: false, reason: result.reason, message: result.message }
          : { time, trigger, ok: true, reason: result.how, message: result.how === "none" ? `up to date with ${result.upstream}` : `${result.from.slice(0, 12)}..${result.to.slice(0, 12)} from ${result.upstream} (${result.how}), ${result.files} file(s), ${result.statusesBack} status block(s) put back` };
      this.options.metrics?.gitPulled?.(record.reason); // metrics
      if (result instanceof PullError) this.options.logger.warn({ trigger, reason: result.reason, revision: this.revision }, `git pull failed: ${result.message}`);
      else this.options.logger[result.how === "none" ? "debug" : "info"]({ trigger, how: result.how, from: result.from, to: result.to, revision: this.revision }, "git pull");
      await this.saveSource({ lastPull: record, ...(record.ok ? { lastGoodPull: undefined } : this.source?.lastPull?.ok ? { lastGoodPull: this.source.lastPull } : {}), ...(result instanceof PullError ? {} : { upstream: result.upstream }) });
      return result;
    })().finally(() => (this.pulling = undefined));
    return this.pulling;
  }

  /** Updates `.kvmctl/source.json` (what `get`, `describe` and `kvmctl pull` read). */
  private async saveSource(change: Partial<SourceStatus>): Promise<void> {
    const git = this.options.git;
    if (!git) return;
    this.source = { ...(this.source ?? { checkout: git.checkout.top, statusFilter: git.statusFilter }), ...(git.pullIntervalMs ? { pullIntervalMs: git.pullIntervalMs } : {}), revision: this.revision, ...change };
    if (change.lastGoodPull === undefined && "lastGoodPull" in change) delete this.source.lastGoodPull;
    await writeSource(this.options.store.dataDir, this.options.store.stateRoot, this.source).catch((error: unknown) => this.options.logger.warn({ err: error }, "could not record the checkout's state"));
  }

  /** Everything again now, libvirt read afresh (SIGHUP without a checkout, a resync asked for). */
  async resyncAll(): Promise<void> {
    for (const key of await this.resyncKeys()) {
      this.controller.forget(key);
      this.controller.enqueue(key);
    }
  }

  async stop(): Promise<void> {
    this.events?.stop();
    for (const stop of this.timers) stop();
    await Promise.all(this.singletonWatches.splice(0).map((watch) => watch.stop()));
    await this.watcher?.close();
    await this.controller.stop();
  }

  /** One full pass in dependency order (kinds by order, then singletons); resolves with every key's report. */
  async runOnce(): Promise<ReconcileReport[]> {
    this.snapshot = undefined;
    await this.adopt(await this.options.store.read(), undefined);
    const keys = (await this.listKeys(this.informedSince() ?? this.ports.clock.now())).filter((key) => !this.singletons.has(key));
    // One group per kind order (keys come sorted by it): a group runs after the one before.
    const groups = new Map<number, string[]>();
    for (const key of keys) {
      const order = this.kinds.get(parseObjectKey(key).kind)?.order ?? -1;
      groups.set(order, [...(groups.get(order) ?? []), key]);
    }
    return this.controller.runOnce([...groups.values(), [...this.singletons.keys()]]);
  }
}

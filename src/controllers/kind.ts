// The contract every kind's controller fulfils (src/controllers/registry.ts lists them), after
// controller-runtime's Reconciler: the manager hands a reconcile one object's request and a
// context of ports; the reconcile observes, plans (pure), acts through the ports and returns
// an outcome — it never writes status itself: src/controllers/status.ts turns every outcome
// (and every failure the runtime classifies: retry, waiting, terminal) into the one status
// write. See docs/architecture.md for the layers and how to add a kind.
import type { KindName, ObjectOfKind, StatusOf } from "../api/index.js";
import type { HypervisorEvent, LiveState, Ports } from "../ports/index.js";
import type { Logger } from "../runtime/index.js";
import type { Snapshot, StoredObject } from "../store/index.js";
import type { FirewallState } from "./firewall/controller.js";
import type { HostPathRef } from "./host-path-policy.js";
import type { ImportClaims } from "./virtualmachine/import-claims.js";

/** What this controller instance was started with, for every kind to read. */
export interface ControllerSettings {
  /** This controller instance (one per manifest directory): whose objects are whose (./ownership.ts). */
  instance: string;
  /** For VMs that set no domainType. */
  defaultDomainType: "kvm" | "qemu";
  /** Where serial console logs go; undefined outside the controller (kvmctl diff). */
  consoleLogDir: string | undefined;
  /**
   * Where cloud-init seed media are built: `<seedDir>/<instance>/<vm>/seed.img`. Undefined:
   * /var/lib/kvmctl/seeds. A directory only root writes and QEMU's user can pass through.
   */
  seedDir?: string;
}

/** What a kind remembers per object between reconciles in this process (lost on restart, harmlessly). */
export interface ObjectMemory<M> {
  get(key: string): M | undefined;
  set(key: string, value: M): void;
  delete(key: string): void;
}

/** What a reconcile records on its object besides status: events and the kept-object record. */
export interface ObjectRecorder {
  /** One event on the object (`kvmctl describe` shows them), stamped now. */
  event(type: "Normal" | "Warning", reason: string, message: string): Promise<void>;
  /**
   * The manifest's deletion is handled: one Deleted event saying what happened (also "nothing
   * to remove"), which `kvmctl delete --wait` waits for; a repeated look adds no second one.
   */
  deleted(message: string): Promise<void>;
  /**
   * The manifest is gone but the libvirt object must stay for now (a pool holding volumes, a
   * network guests use): shown as kept by get/describe/wait, one DeletionBlocked event per change.
   */
  kept(state: { phase: string; reason: string; message: string }): Promise<void>;
  /** The object is no longer kept (removed, or its manifest is back). */
  notKept(): Promise<void>;
}

/** The host-wide singletons a kind may use (src/controllers/registry.ts builds them). */
export interface SharedServices {
  firewall: { sync(since: number): Promise<FirewallState> };
  /** The base-image imports under way in this controller (one per target at a time). */
  baseImports: ImportClaims;
}

/** What the pure plan of a kind is computed from, besides the live state. */
export interface PlanContext<M> {
  ports: Pick<Ports, "secrets" | "qemuConfig">;
  settings: ControllerSettings;
  memory: ObjectMemory<M>;
  now: number;
}

export interface KindContext<M> extends PlanContext<M> {
  ports: Ports;
  snapshot: Snapshot;
  /** A picture of libvirt taken at or after `since` (recorded as what this reconcile decided on). */
  live(since: number): Promise<LiveState>;
  record: ObjectRecorder;
  services: SharedServices;
  log: Logger;
}

/** The object a plan is for: a manifest in the directory, or an `apply -f` input (kvmctl diff). */
export interface PlanTarget<K extends KindName> {
  key: string;
  name: string;
  object: ObjectOfKind<K>;
  specHash: string;
  /** Its manifest file; undefined for diff input (the plan then takes the one libvirt records). */
  file: string | undefined;
}

export interface KindRequest<K extends KindName> {
  key: string;
  name: string;
  /** Undefined when the manifest is gone: prune what it owned. */
  stored: StoredObject<K> | undefined;
  /** Observe libvirt as of this time or later. */
  since: number;
}

/** The status fields a kind reports besides observedGeneration and conditions. */
export type StatusFacts<K extends KindName> = Omit<StatusOf<K>, "conditions" | "observedGeneration" | "observedSpecHash" | "instance">;

/** A condition besides Ready/Reconciling/Stalled (e.g. RestartRequired), set while `present`. */
export interface ExtraCondition {
  type: string;
  present: boolean;
  reason: string;
  message: string;
}

/** What one reconcile of a present manifest reports: Ready or not, why, and the kind's facts. */
export interface ObjectReport<K extends KindName> {
  reason: string;
  message: string;
  facts: StatusFacts<K>;
  extraConditions?: ExtraCondition[];
}

export interface KindOutcome<K extends KindName> {
  ready: boolean;
  /** Look again after this long even if nothing happens. */
  requeueAfterMs?: number;
  /** The status to write; absent when the manifest is gone (nothing to write into). */
  report?: ObjectReport<K>;
  /**
   * What this reconcile changed (its plan's step types, e.g. "start", "define"): the manager
   * counts those of an object that was already Ready for its spec as drift repairs
   * (kvmctl_drift_repairs_total{kind,what}). Omitted: nothing changed.
   */
  repairs?: readonly string[];
}

export interface KindController<K extends KindName, Input = unknown, Plan = unknown, Memory = unknown> {
  readonly kind: K;
  /** Position in a full pass: what others depend on goes first (pools, networks, then VMs). */
  readonly order: number;
  /** Keys of the libvirt objects this instance's manifests made, manifest or not (pruning finds them here). */
  ownedKeys(live: LiveState, instance: string): string[];
  /** The manifest file the libvirt object of `name` records it was made from (its owner metadata), if any. */
  recordedFile?(live: LiveState, name: string): string | undefined;
  /** The keys a libvirt event wakes (the object of the same name, and objects that depend on it). */
  wakeFor(event: HypervisorEvent, snapshot: Pick<Snapshot, "objects">): string[];
  /**
   * The host paths the object's spec makes the controller read, write or hand to libvirt: the
   * manager refuses the object (Stalled, HostPathNotAllowed) before any step when one is outside
   * the controller's host-path policy (./host-path-policy.ts). Omitted: the kind names none.
   */
  hostPaths?(object: ObjectOfKind<K>): HostPathRef[];
  /**
   * Whether everything the object's plan reads from libvirt is what libvirt sends events for (no
   * volumes, pool usage, leases or network edits): then, even while it converges, a picture made
   * stale by other domains' changes may be mended by reading those alone (Hypervisor.observe's
   * mend) rather than read whole. Objects left Ready mend regardless, as the informer trusts them.
   */
  readsOnlyEventedFacts(object: ObjectOfKind<K>): boolean;
  /**
   * The libvirt domain the object of `name` is, when the kind's plans read no other domain (a
   * VirtualMachine: its own): a picture made stale only by other domains' changes then still
   * holds for it (Hypervisor.informedSince's `domain`), so a converge's reconciles do not wait
   * for readings of the guests started before them. Omitted: the kind is no domain.
   */
  domainOf?(name: string): string;
  /** The status phase a failed reconcile writes: waiting for a dependency, or stalled. */
  readonly failurePhase?: { waiting: string; terminal: string };
  /** Gathers what the pure plan needs (reads through ports, changes nothing). */
  planInput(ctx: PlanContext<Memory>, target: PlanTarget<K>, live: LiveState): Promise<Input>;
  /** Pure: what to do, from the input alone. */
  plan(input: Input): Plan;
  /** The plan's changes in words, for `kvmctl diff` (empty: nothing would change). */
  changes(plan: Plan): string[];
  /**
   * What status says of the object as libvirt holds it, without a reconcile: written with a
   * failed reconcile's conditions, so a failure never erases the live facts (a running VM
   * stays Running with its domain and disks while a step fails).
   */
  liveFacts?(target: PlanTarget<K>, live: LiveState, instance: string): Partial<StatusFacts<K>>;
  /** Observes, plans, acts through ctx.ports; throws TerminalError / DependencyNotReadyError / anything (retried). */
  reconcile(ctx: KindContext<Memory>, request: KindRequest<K>): Promise<KindOutcome<K>>;
}

/** Any kind's controller, as the registry and the manager hold them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyKindController = KindController<any, any, any, any>;

/** An action a plan asks for, with a message for logs and events. */
export interface Step<A> {
  action: A;
  message: string;
}

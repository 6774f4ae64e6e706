// What every kind's reconciler shares: the inputs a reconcile sees and what it returns.
import type { Virsh } from "../adapters/virsh.js";
import type { LiveDomain, LiveState } from "../adapters/observer.js";
import type { FirewallState } from "./firewall/reconciler.js";
import type { Logger } from "../runtime/index.js";
import type { ManifestStore, Snapshot, StoredObject } from "../store/index.js";

export interface ReconcilerDeps {
  store: ManifestStore;
  virsh: Virsh;
  /** A picture of libvirt taken at or after `since`. */
  live(since: number): Promise<LiveState>;
  /** One domain as it is now (cheaper than a new picture of everything). */
  readDomain(name: string): Promise<LiveDomain | undefined>;
  snapshot(): Snapshot;
  defaultDomainType: "kvm" | "qemu";
  consoleLogDir: string;
  /** Files written for virsh define etc. */
  scratchDir: string;
  /** Brings the firewall in line with the manifests and libvirt as seen at or after `since`. */
  syncFirewall?(since: number): Promise<FirewallState>;
}

export interface ReconcileInput {
  key: string;
  name: string;
  /** Undefined when the manifest is gone: prune what it owned. */
  stored: StoredObject | undefined;
  since: number;
  log: Logger;
}

export interface KindResult {
  ready: boolean;
  requeueAfterMs?: number;
}

/** An action a plan asks for, with a message for logs and events. */
export interface Step<A> {
  action: A;
  message: string;
}

/** Status values as YAML will hold them: absent rather than undefined. */
export function withoutUndefined<T extends Record<string, unknown>>(value: T): Record<string, unknown> {
  return JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
}

/** One event on the object's record (`kvmctl describe` shows them), stamped now. */
export function recordEvent(deps: ReconcilerDeps, key: string, type: "Normal" | "Warning", reason: string, message: string): Promise<void> {
  return deps.store.recordEvent(key, { time: new Date().toISOString(), type, reason, message });
}

/**
 * The manifest of `key` is gone but its libvirt object must stay for now (a pool holding
 * volumes, a network guests use): record it so get/describe/wait show it as kept, with one
 * DeletionBlocked event per change rather than one per look.
 */
export async function markKept(deps: ReconcilerDeps, key: string, kept: { phase: string; reason: string; message: string }): Promise<void> {
  if (await deps.store.setTerminating(key, kept)) {
    await recordEvent(deps, key, "Warning", "DeletionBlocked", kept.message);
  }
}

/**
 * The manifest's deletion is handled: one Deleted event saying what happened, even when
 * libvirt held nothing to remove (or nothing kvmctl owns): `kvmctl delete --wait` waits for it.
 * A repeated look at the same deletion adds no second event.
 */
export async function recordDeleted(deps: ReconcilerDeps, key: string, message: string): Promise<void> {
  if ((await deps.store.readEvents(key)).at(-1)?.reason === "Deleted") return;
  await recordEvent(deps, key, "Normal", "Deleted", message);
}

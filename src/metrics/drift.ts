// Which of a reconcile's changes were drift repairs: the object had been Ready for this very
// spec (in this process, or as its status on disk says), so what the reconcile changed had
// drifted — by hand, a crash, a libvirt restart — rather than being asked for by a new spec.
// Changes made while converging to a new (or first) spec are not drift.
import type { ReconciledObject } from "../controllers/metrics.js";

interface StatusLike {
  observedSpecHash?: string;
  conditions?: { type: string; status: string }[];
}

function statusReadyFor(stored: ReconciledObject["stored"]): boolean {
  const status = (stored?.object as { status?: StatusLike } | undefined)?.status;
  return status?.observedSpecHash === stored?.specHash && status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
}

export class DriftTracker {
  /** The spec hash each key was last Ready for. */
  private readonly readyFor = new Map<string, string>();

  /** The repairs of this reconcile that count as drift repairs (empty for a new spec or a prune). */
  drift(object: ReconciledObject): readonly string[] {
    const { key, stored } = object;
    if (!stored) {
      this.readyFor.delete(key);
      return [];
    }
    const before = this.readyFor.get(key) ?? (statusReadyFor(stored) ? stored.specHash : undefined);
    if (object.ready) this.readyFor.set(key, stored.specHash);
    return before === stored.specHash ? object.repairs : [];
  }
}

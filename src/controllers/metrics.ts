// What the manager reports besides the runtime's metrics (src/runtime/metrics.ts): plain
// interfaces, implemented by src/metrics/registry.ts and by fakes in tests. Absent: nothing counted.
import type { ControllerMetrics } from "../runtime/index.js";
import type { StoredObject } from "../store/index.js";
import type { FirewallMetrics } from "./firewall/controller.js";

/** One reconcile of a kind's object, as the manager saw it end (drift repairs are counted from these). */
export interface ReconciledObject {
  key: string;
  kind: string;
  /** The manifest reconciled; undefined when it is gone (a prune). */
  stored: StoredObject | undefined;
  ready: boolean;
  /** What the reconcile changed in libvirt or on the host (its plan's step types; KindOutcome.repairs). */
  repairs: readonly string[];
}

export interface ManagerMetrics {
  /** Reconcile and work-queue metrics, handed to the runtime's Controller. */
  controller?: ControllerMetrics;
  /** Firewall syncs (the firewall singleton). */
  firewall?: FirewallMetrics;
  /** After each kind reconcile that ran to its end. */
  reconciled?(object: ReconciledObject): void;
  /** After each pull of the git checkout: how it went (none, fast-forward, merge, rebase) or why it failed (PullError's reason). */
  gitPulled?(result: string): void;
  /** Drift found and left as it is (drift: report), once per new finding. */
  driftReported?(kind: string): void;
}

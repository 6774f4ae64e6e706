// How the controller treats one object, besides its spec: paused on this host (`kvmctl
// suspend`, or the annotation `kvmctl.dev/reconcile: disabled` from git, as Flux's
// `suspend`), and whether drift is repaired or only reported (`--drift`, or the annotation
// `kvmctl.dev/drift: report|repair`). Pure.

import { DRIFT_ANNOTATION, RECONCILE_ANNOTATION } from "../api/common.js";

export type DriftHandling = "repair" | "report";

export interface ObjectMode {
  /** Why nothing is done for it now: the annotation, or `kvmctl suspend` (with when). */
  suspended?: { by: "annotation" | "kvmctl suspend"; since?: string };
  drift: DriftHandling;
}

/** The mode of an object with these annotations, this host's suspension record, and the controller's --drift. */
export function objectMode(annotations: Readonly<Record<string, string>> | undefined, suspension: { since: string } | undefined, controllerDrift: DriftHandling): ObjectMode {
  const drift = annotations?.[DRIFT_ANNOTATION] === "report" ? "report" : annotations?.[DRIFT_ANNOTATION] === "repair" ? "repair" : controllerDrift;
  if (annotations?.[RECONCILE_ANNOTATION] === "disabled") return { suspended: { by: "annotation" }, drift };
  if (suspension) return { suspended: { by: "kvmctl suspend", ...(suspension.since ? { since: suspension.since } : {}) }, drift };
  return { drift };
}

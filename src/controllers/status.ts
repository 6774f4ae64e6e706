// The one place a reconcile's outcome becomes the object's status (Flux's "one status patch
// per reconcile"): the kind's facts plus kstatus conditions for success and progress, and for
// the failures the runtime classifies — retry (ReconcileFailed), waiting (DependencyNotReady),
// terminal (Stalled with the error's reason). Pure; the manager writes the result.
import type { Condition } from "../api/index.js";
import { DependencyNotReadyError, markReady, markReconciling, markStalled, removeCondition, setCondition, setExtraCondition, TerminalError } from "../runtime/index.js";
import { observedFields, type StoredObject } from "../store/index.js";
import type { ObjectReport } from "./kind.js";

type PreviousStatus = Record<string, unknown> & { conditions?: Condition[]; phase?: string };

function previousStatus(stored: StoredObject | undefined): PreviousStatus {
  return ((stored?.object as { status?: PreviousStatus } | undefined)?.status ?? {}) as PreviousStatus;
}

/** Status values as YAML will hold them: absent rather than undefined. */
function withoutUndefined(value: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
}

/**
 * The status after a reconcile that ran to its end: Ready when `ready`, else Reconciling with
 * the report's reason; extra conditions set or cleared; the kind's facts as reported (a fact
 * the report leaves out is no longer true, so the whole status is replaced). `revision`: the
 * checkout's revision the spec was read at (src/gitops), when the directory is a git checkout.
 */
export function statusFromReport(stored: StoredObject, ready: boolean, report: ObjectReport<never>, instance: string, now = new Date(), revision?: string): Record<string, unknown> {
  const previous = previousStatus(stored);
  let conditions = ready
    ? markReady(previous.conditions, stored.generation, report.reason, report.message, now)
    : markReconciling(previous.conditions, stored.generation, report.reason, report.message, now);
  // A full reconcile ran: whatever drift was reported is repaired, or was not there.
  conditions = setExtraCondition(conditions, "Drifted", false, stored.generation, "", "", now);
  for (const extra of report.extraConditions ?? []) {
    conditions = setExtraCondition(conditions, extra.type, extra.present, stored.generation, extra.reason, extra.message, now);
  }
  const { phase, ...facts } = report.facts as Record<string, unknown>;
  // The revision of the checkout this spec came from (Flux's lastAppliedRevision): it ran to its end.
  const revisions = revision ? { lastAppliedRevision: revision, lastAttemptedRevision: revision } : {};
  return withoutUndefined({ ...observedFields(stored), instance, ...revisions, phase, conditions, ...facts });
}

/**
 * The status after a reconcile that failed: the last facts stay (they still describe libvirt),
 * the conditions say what failed; `failurePhase` (a kind's) sets the phase for waiting/terminal.
 * `stored` is undefined for a document that is invalid (it has no parsed status to keep).
 * `liveFacts`: the kind's facts as libvirt holds them now (KindController.liveFacts), over the last ones.
 */
export function statusFromFailure(stored: StoredObject | undefined, error: unknown, failurePhase: { waiting: string; terminal: string } | undefined, instance: string, now = new Date(), liveFacts: Record<string, unknown> = {}): Record<string, unknown> {
  // The phase libvirt's state says, when the kind could tell one; else what the failure says.
  const { phase: livePhase, ...facts } = liveFacts as { phase?: string };
  const previous = { ...previousStatus(stored), ...facts } as PreviousStatus;
  const generation = stored?.generation ?? 1;
  const message = error instanceof Error ? error.message : String(error);
  let conditions: Condition[];
  let phase = livePhase ?? previous.phase;
  if (error instanceof TerminalError) {
    conditions = markStalled(previous.conditions, generation, error.reason, message, now);
    phase = livePhase ?? failurePhase?.terminal ?? phase;
  } else if (error instanceof DependencyNotReadyError) {
    conditions = markReconciling(previous.conditions, generation, "DependencyNotReady", message, now);
    phase = livePhase ?? failurePhase?.waiting ?? phase;
  } else {
    conditions = markReconciling(previous.conditions, generation, "ReconcileFailed", message, now);
  }
  return withoutUndefined({ ...previous, ...(stored ? observedFields(stored) : {}), instance, conditions, ...(phase ? { phase } : {}) });
}

/** The event a failure records (none while waiting: waiting is not a failure). */
export function failureEvent(error: unknown): { reason: string; message: string } | undefined {
  if (error instanceof DependencyNotReadyError) return undefined;
  return { reason: error instanceof TerminalError ? error.reason : "ReconcileFailed", message: error instanceof Error ? error.message : String(error) };
}

/** The status of a suspended object: as it was, saying it is suspended (cleared by the next full reconcile). */
export function statusWhileSuspended(stored: StoredObject, suspended: { by: string; since?: string }, instance: string): Record<string, unknown> {
  return withoutUndefined({ ...previousStatus(stored), instance, suspended });
}

/**
 * The status of an object in report-only drift mode whose libvirt state differs from its spec:
 * the facts as they were, Ready=False and Drifted=True saying what differs (nothing was changed).
 */
export function statusFromDrift(stored: StoredObject, changes: readonly string[], instance: string, now = new Date(), revision?: string): Record<string, unknown> {
  const previous = previousStatus(stored);
  const message = `not repaired (drift: report): ${changes.join("; ")}`;
  // Not Reconciling: nothing is being done about it.
  let conditions = removeCondition(setCondition(previous.conditions, { type: "Ready", status: "False", reason: "Drifted", message, observedGeneration: stored.generation }, now), "Reconciling");
  conditions = setExtraCondition(conditions, "Drifted", true, stored.generation, "DriftDetected", changes.join("; "), now);
  const { suspended: _suspended, ...rest } = previous;
  void _suspended;
  return withoutUndefined({ ...rest, ...observedFields(stored), instance, ...(revision ? { lastAttemptedRevision: revision } : {}), conditions });
}

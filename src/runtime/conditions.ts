// kstatus conditions, Flux-style helpers: Ready is always present; Reconciling and Stalled
// are present only while True. lastTransitionTime moves only when a status flips.
// The Condition type is the API schema's (src/api/common.ts): status blocks hold exactly that.
import type { Condition } from "../api/common.js";
import { compareText } from "../api/text.js";

export type { Condition, ConditionStatus } from "../api/common.js";

export function getCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Returns a new list with `type` set; keeps lastTransitionTime unless the status changed. */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: Omit<Condition, "lastTransitionTime">,
  now: Date = new Date(),
): Condition[] {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === next.type);
  const previous = index >= 0 ? list[index] : undefined;
  const lastTransitionTime = previous && previous.status === next.status ? previous.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, "Z");
  const condition: Condition = { ...next, lastTransitionTime };
  if (index >= 0) list[index] = condition;
  else list.push(condition);
  return list;
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

const ORDER = ["Ready", "Reconciling", "Stalled"];
const sorted = (list: Condition[]) =>
  list.sort((a, b) => (ORDER.indexOf(a.type) + 1 || 99) - (ORDER.indexOf(b.type) + 1 || 99) || compareText(a.type, b.type));

/** Everything converged. */
export function markReady(conditions: readonly Condition[] | undefined, generation: number, reason = "Succeeded", message = "", now?: Date): Condition[] {
  let list = setCondition(conditions, { type: "Ready", status: "True", reason, message, observedGeneration: generation }, now);
  list = removeCondition(removeCondition(list, "Reconciling"), "Stalled");
  return sorted(list);
}

/** Work in progress, or waiting (dependency, retry): Ready=False, Reconciling=True. */
export function markReconciling(conditions: readonly Condition[] | undefined, generation: number, reason: string, message: string, now?: Date): Condition[] {
  let list = setCondition(conditions, { type: "Ready", status: "False", reason, message, observedGeneration: generation }, now);
  list = setCondition(list, { type: "Reconciling", status: "True", reason, message, observedGeneration: generation }, now);
  return sorted(removeCondition(list, "Stalled"));
}

/** Cannot make progress until the spec changes: Ready=False, Stalled=True. */
export function markStalled(conditions: readonly Condition[] | undefined, generation: number, reason: string, message: string, now?: Date): Condition[] {
  let list = setCondition(conditions, { type: "Ready", status: "False", reason, message, observedGeneration: generation }, now);
  list = setCondition(list, { type: "Stalled", status: "True", reason, message, observedGeneration: generation }, now);
  return sorted(removeCondition(list, "Reconciling"));
}

/** An extra condition (e.g. RestartRequired) set or removed without touching the others. */
export function setExtraCondition(conditions: readonly Condition[] | undefined, type: string, present: boolean, generation: number, reason: string, message: string, now?: Date): Condition[] {
  return sorted(present ? setCondition(conditions, { type, status: "True", reason, message, observedGeneration: generation }, now) : removeCondition(conditions, type));
}

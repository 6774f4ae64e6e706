// Pieces every kind shares: apiVersion, metadata, byte quantities, conditions and the
// status fields that track which spec version a status describes.
import { z } from "zod";
import { dnsLabel, labelKey, labelValue } from "./names.js";
import { parseQuantity } from "./quantity.js";

export { API_GROUP, API_VERSION } from "./kind-names.js";

const MAX_ANNOTATION_BYTES = 256 * 1024;

/** The annotations kvmctl reads (src/controllers/modes.ts), and the values each may take. */
export const RECONCILE_ANNOTATION = "kvmctl.dev/reconcile";
export const DRIFT_ANNOTATION = "kvmctl.dev/drift";
const KVMCTL_ANNOTATIONS: Readonly<Record<string, readonly string[]>> = {
  [RECONCILE_ANNOTATION]: ["enabled", "disabled"],
  [DRIFT_ANNOTATION]: ["repair", "report"],
};

export const objectMeta = z.strictObject({
  name: dnsLabel.meta({ description: "DNS-1123 label; also the libvirt object's name." }),
  labels: z.record(labelKey, labelValue).optional(),
  // Kubernetes' limit on all of an object's annotations together: they end up in status
  // output and events, not in libvirt.
  annotations: z
    .record(labelKey, z.string())
    .refine((a) => Object.entries(a).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0) <= MAX_ANNOTATION_BYTES, {
      error: `annotations must total at most ${MAX_ANNOTATION_BYTES / 1024} KiB (keys and values), as in Kubernetes`,
    })
    .check((ctx) => {
      // kvmctl's own annotations (src/controllers/modes.ts): a misspelt value must not pass silently.
      for (const [key, allowed] of Object.entries(KVMCTL_ANNOTATIONS)) {
        const value = ctx.value[key];
        if (value !== undefined && !allowed.includes(value)) ctx.issues.push({ code: "custom", input: value, path: [key], message: `must be ${allowed.join(" or ")}` });
      }
    })
    .optional(),
});
export type ObjectMeta = z.infer<typeof objectMeta>;

/** A byte quantity ("512Mi", "2Gi", "20GiB"), parsed to a number of bytes. */
export const quantity = z
  .union([z.string(), z.number()])
  .transform((value, ctx) => {
    const parsed = parseQuantity(value);
    if (parsed.ok) return parsed.bytes;
    ctx.issues.push({ code: "custom", message: parsed.message, input: value });
    return z.NEVER;
  })
  .meta({ description: 'Bytes with a unit: Kubernetes ("512Mi", "2Gi") or libvirt ("512MiB", "20GB") spelling.' });

export const conditionStatus = z.enum(["True", "False", "Unknown"]);

const conditionFields = z.object({
  type: z.string(),
  status: conditionStatus,
  reason: z.string(),
  message: z.string().default(""),
  lastTransitionTime: z.string(),
  observedGeneration: z.number().int().optional(),
});
/** A kstatus condition; read leniently (a field kvmctl does not know is kept). */
export const condition = z.looseObject(conditionFields.shape);
export type Condition = z.output<typeof conditionFields>;
export type ConditionStatus = z.infer<typeof conditionStatus>;

/**
 * Status fields common to every kind. Status is written by the controller only, so it is
 * parsed leniently (unknown fields kept): a hand-edited status must never block a spec.
 */
export const statusBase = {
  observedGeneration: z.number().int().min(0).optional(),
  /** Hash of the spec `observedGeneration` refers to; a different hash means a newer generation. */
  observedSpecHash: z.string().optional(),
  conditions: z.array(condition).optional(),
  /** The controller instance that wrote this status (one per manifest directory). */
  instance: z.string().optional(),
  /** Set while the controller leaves the object alone: `kvmctl suspend`, or the annotation kvmctl.dev/reconcile: disabled. */
  suspended: z.looseObject({ by: z.string(), since: z.string().optional() }).optional(),
  /** The git revision (`<branch>@sha1:<commit>[+dirty]`) of the spec last reconciled to its end. */
  lastAppliedRevision: z.string().optional(),
  /** The git revision last reconciled, whatever the outcome. */
  lastAttemptedRevision: z.string().optional(),
};

/** Adds an issue at the second and later occurrence of each repeated value. */
export function reportDuplicates(
  ctx: { issues: unknown[]; value: unknown },
  values: string[],
  pathOf: (index: number) => (string | number)[],
  what: string,
): void {
  const seen = new Map<string, number>();
  values.forEach((value, index) => {
    const first = seen.get(value);
    if (first === undefined) seen.set(value, index);
    else ctx.issues.push({ code: "custom", input: ctx.value, path: pathOf(index), message: `duplicate ${what} "${value}" (also at index ${first})` });
  });
}

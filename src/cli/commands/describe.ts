// `kvmctl describe KIND NAME`: what the manifest asks for, what the controller last saw,
// its conditions and recent events — kubectl describe's layout.
import type { Condition } from "../../api/common.js";
import { kindNames, parseObjectKey } from "../../api/kind-names.js";
import type { ManifestProblem, ObjectEvent, StoredObject, TerminatingRecord } from "../../store/index.js";
import { formatLocation, formatProblem, isError } from "../../store/index.js";
import type { CliContext } from "../context.js";
import { shortRevision } from "../../gitops/revision.js";
import { formatAge } from "../duration.js";
import { CliError, UsageError } from "../errors.js";
import { renderTable } from "../output.js";
import { warnAboutSource } from "../problems.js";
import { kindsFor, select, unreadableCondition, unreadableObjects, unreadablePlaces, type UnreadableObject } from "./get.js";


function indent(text: string, by: string): string {
  return text
    .trimEnd()
    .split("\n")
    .map((line) => by + line)
    .join("\n");
}

/** A status as describe shows it: conditions, generation and phase apart, the kind's facts as the rest (the spec hash is internal). */
function statusParts(status: Record<string, unknown> | undefined): { conditions?: Condition[]; observedGeneration?: number; phase?: string; facts: Record<string, unknown> } {
  const { conditions, observedGeneration, observedSpecHash, phase, status: nested, ...facts } = (status ?? {}) as {
    conditions?: Condition[];
    observedGeneration?: number;
    observedSpecHash?: string;
    phase?: string;
    status?: unknown;
  } & Record<string, unknown>;
  void observedSpecHash;
  void nested;
  return { conditions, observedGeneration, phase, facts };
}

export async function describeObject(stored: StoredObject, events: ObjectEvent[], now = Date.now()): Promise<string> {
  const { stringify } = await import("yaml");
  const { conditions, observedGeneration, phase, facts } = statusParts((stored.object as { status?: Record<string, unknown> }).status);
  const metadata = stored.raw.metadata as { labels?: Record<string, string>; annotations?: Record<string, string> };
  const lines: string[] = [];
  const field = (name: string, value: string) => lines.push(`${(name + ":").padEnd(20)}${value}`);
  field("Name", stored.name);
  field("Kind", stored.kind);
  field("File", formatLocation(stored.location));
  field("Labels", metadata.labels ? Object.entries(metadata.labels).map(([k, v]) => `${k}=${v}`).join(", ") : "<none>");
  field("Annotations", metadata.annotations ? Object.entries(metadata.annotations).map(([k, v]) => `${k}=${v}`).join(", ") : "<none>");
  field("Created", `${stored.createdAt.toISOString()} (${formatAge(stored.createdAt, now)} ago)`);
  const seen = observedGeneration === undefined ? "not yet reconciled" : observedGeneration === stored.generation ? "up to date" : `status describes generation ${observedGeneration}`;
  field("Generation", `${stored.generation} (${seen})`);
  const { lastAppliedRevision: applied, lastAttemptedRevision: attempted } = facts as { lastAppliedRevision?: string; lastAttemptedRevision?: string };
  const { suspended } = facts as { suspended?: { by?: string; since?: string } };
  if (suspended) field("Suspended", `yes, by ${suspended.by ?? "kvmctl suspend"}${suspended.since ? ` since ${suspended.since}` : ""}: the controller leaves it alone (kvmctl resume)`);
  if (applied || attempted) field("Revision", `${applied ?? "<none applied>"}${attempted && attempted !== applied ? ` (last attempted: ${attempted})` : ""}`);
  if (phase) field("Phase", phase);
  lines.push("Spec:");
  lines.push(indent(stringify(stored.raw.spec ?? {}, { lineWidth: 0 }), "  "));
  lines.push("Status:");
  lines.push(Object.keys(facts).length ? indent(stringify(facts, { lineWidth: 0 }), "  ") : "  <none>");
  lines.push(...conditionsAndEvents(conditions, events, now));
  return lines.join("\n") + "\n";
}

function conditionsAndEvents(conditions: Condition[] | undefined, events: ObjectEvent[], now: number): string[] {
  const lines = ["Conditions:"];
  if (conditions?.length) {
    const rows = conditions.map((c) => [
      c.type,
      c.status,
      c.reason ?? "",
      c.lastTransitionTime ? formatAge(new Date(c.lastTransitionTime), now) : "",
      c.message ?? "",
    ]);
    lines.push(indent(renderTable(["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], rows), "  "));
  } else lines.push("  <none>");
  lines.push("Events:");
  if (events.length) {
    // Aggregated like kubectl's: identical events are one row with their count, first and last seen.
    const shown = [...events].sort((a, b) => Date.parse(a.time) - Date.parse(b.time)).slice(-15);
    // The revision column only where the directory is a git checkout (events then name one).
    const revisions = shown.some((e) => e.revision);
    const rows = shown.map((e) => [e.type, e.reason, String(e.count ?? 1), formatAge(new Date(e.firstTime ?? e.time), now), formatAge(new Date(e.time), now), ...(revisions ? [e.revision ? shortRevision(e.revision) : ""] : []), e.message]);
    lines.push(indent(renderTable(["TYPE", "REASON", "COUNT", "FIRST SEEN", "LAST SEEN", ...(revisions ? ["REVISION"] : []), "MESSAGE"], rows), "  "));
  } else lines.push("  <none>");
  return lines;
}

/**
 * An object whose document is invalid (snapshot.invalid): its problems, the document's spec as
 * written (when it parses), and what the controller last recorded — the status block still in
 * the document (or the status directory), its conditions and events. The controller leaves the
 * object as it is in libvirt until the document is fixed.
 */
export async function describeInvalid(
  key: string,
  problems: ManifestProblem[],
  document: { file: string; document?: Record<string, unknown>; status?: Record<string, unknown> } | undefined,
  events: ObjectEvent[],
  now = Date.now(),
): Promise<string> {
  const { stringify } = await import("yaml");
  const { kind, name } = parseObjectKey(key);
  const { conditions, observedGeneration, phase, facts } = statusParts(document?.status);
  const lines: string[] = [];
  const field = (label: string, value: string) => lines.push(`${(label + ":").padEnd(20)}${value}`);
  field("Name", name);
  field("Kind", kind);
  field("File", document?.file ?? (problems[0] ? formatLocation(problems[0].location) : "<unknown>"));
  field("Phase", "Invalid (the controller leaves it as it is until the manifest is fixed)");
  lines.push("Problems:");
  for (const problem of problems) lines.push(`  ${isError(problem) ? "error" : "warning"}: ${formatProblem(problem).replace(/\s*\n\s*/g, " ")}`);
  if (typeof observedGeneration === "number") field("Observed", `generation ${observedGeneration} (the last status the controller wrote)`);
  if (phase) field("Last phase", phase);
  lines.push("Spec:");
  const spec = document?.document?.spec;
  lines.push(spec === undefined ? "  <none>" : indent(stringify(spec, { lineWidth: 0 }), "  "));
  lines.push("Status:");
  lines.push(Object.keys(facts).length ? indent(stringify(facts, { lineWidth: 0 }), "  ") : "  <none>");
  lines.push(...conditionsAndEvents(conditions, events, now));
  return lines.join("\n") + "\n";
}

/** An object whose manifest is gone but which the controller keeps in libvirt for now. */
export function describeTerminating(record: TerminatingRecord, events: ObjectEvent[], now = Date.now()): string {
  const lines: string[] = [];
  const field = (name: string, value: string) => lines.push(`${(name + ":").padEnd(20)}${value}`);
  field("Name", record.name);
  field("Kind", record.kind);
  field("File", "<deleted>");
  field("Deleted", `${record.since} (${formatAge(new Date(record.since), now)} ago); kept in libvirt`);
  field("Phase", record.phase);
  lines.push(...conditionsAndEvents(record.conditions, events, now));
  return lines.join("\n") + "\n";
}

/**
 * An object whose manifest file cannot be read now: what is known of it (where it was at the
 * last good read, and why it cannot be read), no spec or status. `dir` names the manifest directory (".").
 */
export function describeUnreadable(object: UnreadableObject, events: ObjectEvent[], dir: string, now = Date.now()): string {
  const lines: string[] = [];
  const field = (name: string, value: string) => lines.push(`${(name + ":").padEnd(20)}${value}`);
  field("Name", object.name);
  field("Kind", object.kind);
  field("File", `${unreadablePlaces(object, dir)} (cannot be read; it held this object at its last good read)`);
  field("Phase", "Unreadable");
  object.problems.forEach((problem, i) => field(i === 0 ? "Problem" : "", formatProblem(problem)));
  lines.push("Spec:", "  <unknown until the file can be read again; the controller leaves the object as it is>");
  lines.push(...conditionsAndEvents([{ ...unreadableCondition(object), lastTransitionTime: "" }], events, now));
  return lines.join("\n") + "\n";
}

export async function runDescribe(ctx: CliContext, kindArg: string, names: string[]): Promise<void> {
  const kinds = kindsFor(kindArg);
  if (kinds.length !== 1) throw new UsageError(`describe needs one kind, not "${kindArg}"`);
  const kind = kinds[0]!;
  const store = await ctx.openStore("read");
  const snapshot = await store.read();
  const { found, missing } = select(snapshot, kind, names);
  warnAboutSource(store.dataDir);
  const out: string[] = [];
  for (const stored of found) out.push(await describeObject(stored, await store.readEvents(stored.key)));
  process.stdout.write(out.join("\n"));
  const errors: string[] = [];
  const unreadable = unreadableObjects(snapshot);
  for (const name of missing) {
    const key = `${kind}/${name}`;
    const problems = snapshot.invalid.get(key);
    const unread = problems ? undefined : unreadable.get(key);
    const kept = problems || unread ? undefined : await store.readTerminating(key);
    if (problems) {
      // Shown whole (its problems, its last status and events); still an error, as `get NAME` says.
      process.stdout.write((out.length ? "\n" : "") + (await describeInvalid(key, problems, await store.readInvalidDocument(key), await store.readEvents(key))));
      out.push("");
      errors.push(`${kindNames(kind).plural} "${name}" is invalid (its problems are listed above)`);
    } else if (unread) {
      // It exists (its file does), it just cannot be shown whole: say why, exit 0 as `get` does.
      process.stdout.write((out.length ? "\n" : "") + describeUnreadable(unread, await store.readEvents(key), store.dir));
      out.push("");
    } else if (kept) {
      process.stdout.write((out.length ? "\n" : "") + describeTerminating(kept, await store.readEvents(key)));
      out.push("");
    } else errors.push(`${kindNames(kind).plural} "${name}" not found in ${store.dir}`);
  }
  if (errors.length) throw new CliError(errors.join("\nerror: "));
}

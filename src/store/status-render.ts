// Renders status as a block-style YAML mapping with a fixed key order, so the same status
// always produces the same bytes (and an unchanged status is recognised and not rewritten).
import { Document } from "yaml";

const STATUS_ORDER = ["observedGeneration", "observedSpecHash", "phase", "conditions"];
const CONDITION_ORDER = ["type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"];

/** Drops undefined, turns Dates into strings: what YAML would give back when read. */
export function toPlain<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

function ordered(record: Record<string, unknown>, first: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of first) if (key in record) out[key] = record[key];
  for (const key of Object.keys(record).filter((k) => !first.includes(k)).sort()) out[key] = record[key];
  return out;
}

/** observedGeneration, observedSpecHash, phase, conditions, then the rest alphabetically; condition fields in kstatus order. */
export function orderStatus(status: Record<string, unknown>): Record<string, unknown> {
  const plain = toPlain(status);
  const out = ordered(plain, STATUS_ORDER);
  if (Array.isArray(out.conditions)) {
    out.conditions = out.conditions.map((c) => (c && typeof c === "object" && !Array.isArray(c) ? ordered(c as Record<string, unknown>, CONDITION_ORDER) : c));
  }
  return out;
}

const RENDER = { indent: 2, lineWidth: 0, minContentWidth: 0 } as const;

function withLineEnding(text: string, eol: "\n" | "\r\n"): string {
  return eol === "\n" ? text : text.replace(/\n/g, "\r\n");
}

/** "status:\n  observedGeneration: 3\n  ..." ending with a line break. */
export function renderStatusBlock(status: Record<string, unknown>, eol: "\n" | "\r\n" = "\n"): string {
  return withLineEnding(new Document({ status: orderStatus(status) }).toString(RENDER), eol);
}

/** A whole document (e.g. for the status directory), block style, ending with a line break. */
export function renderDocument(value: Record<string, unknown>, eol: "\n" | "\r\n" = "\n"): string {
  return withLineEnding(new Document(value).toString(RENDER), eol);
}

// Validates one parsed YAML document against its kind's schema and turns zod's issues
// into (path, message) pairs the store can point at a line and column.
import { closest, distance } from "fastest-levenshtein";
import type { z } from "zod";
import { API_GROUP, API_VERSION } from "./common.js";
import { isKindName, kindInfo, kindNameList, type KvmObject } from "./kinds.js";
import { escapeText, quoteText } from "./text.js";

export type FieldPath = (string | number)[];

export interface ValidationIssue {
  path: FieldPath;
  message: string;
}

export type ValidationResult = { ok: true; object: KvmObject } | { ok: false; issues: ValidationIssue[] };

export function validateDocument(raw: unknown): ValidationResult {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    return fail([], "a manifest must be a mapping with apiVersion, kind, metadata and spec");
  }
  const doc = raw as Record<string, unknown>;
  if (doc.kind === undefined) return fail(["kind"], `kind is required (one of ${kindNameList().join(", ")})`);
  if (!isKindName(doc.kind)) {
    const hint = typeof doc.kind === "string" ? closeMatch(doc.kind, kindNameList()) : undefined;
    return fail(["kind"], `unknown kind ${quoteText(doc.kind)}; expected one of ${kindNameList().join(", ")}${hint ? `; did you mean "${hint}"?` : ""}`);
  }
  if (doc.apiVersion !== API_VERSION) {
    const what = doc.apiVersion === undefined ? "apiVersion is required" : `wrong apiVersion ${quoteText(doc.apiVersion)}`;
    const group = typeof doc.apiVersion === "string" && doc.apiVersion.startsWith(`${API_GROUP}/`) ? " (this kvmctl serves only v1alpha1)" : "";
    return fail(["apiVersion"], `${what}; expected ${API_VERSION}${group}`);
  }
  const schema = kindInfo(doc.kind).schema;
  // reportInput: an issue then says what was there, so a wrong type is not taken for a missing field.
  const parsed = schema.safeParse(raw, { reportInput: true });
  if (parsed.success) return { ok: true, object: parsed.data as KvmObject };
  return { ok: false, issues: parsed.error.issues.flatMap((issue) => describeIssue(schema, issue)) };
}

function fail(path: FieldPath, message: string): ValidationResult {
  return { ok: false, issues: [{ path, message }] };
}

/** zod's issues in kvmctl's words (a wrong type is not "required", user text quoted and escaped). */
export function describeIssues(schema: z.ZodType, issues: readonly z.core.$ZodIssue[]): ValidationIssue[] {
  return issues.flatMap((issue) => describeIssue(schema, issue));
}

function describeIssue(schema: z.ZodType, issue: z.core.$ZodIssue): ValidationIssue[] {
  const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
  if (issue.code === "unrecognized_keys") {
    const known = knownKeysAt(schema, path);
    return issue.keys.map((key) => ({
      path: [...path, key],
      message: `unknown field ${quoteText(key)}${didYouMean(key, known)}`,
    }));
  }
  if (issue.code === "invalid_type") {
    if (issue.input === undefined) return [{ path, message: `${String(path.at(-1) ?? "value")} is required` }];
    const shown = issue.input !== null && typeof issue.input !== "object" ? ` ${quoteText(issue.input, 40)}` : "";
    return [{ path, message: `expected ${issue.expected}, got ${typeOf(issue.input)}${shown}` }];
  }
  if (issue.code === "invalid_value" && "values" in issue) {
    return [{ path, message: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}` }];
  }
  return [{ path, message: escapeText(issue.message) }];
}

/** What a manifest value is, in the words a YAML author knows. */
function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return typeof value === "string" ? "text" : typeof value;
}

/** The candidate `word` is a likely typo of, if any. */
function closeMatch(word: string, candidates: string[]): string | undefined {
  if (candidates.length === 0) return undefined;
  const best = closest(word, candidates);
  const limit = Math.max(2, Math.floor(best.length / 3));
  return distance(word.toLowerCase(), best.toLowerCase()) <= limit ? best : undefined;
}

function didYouMean(word: string, candidates: string[]): string {
  if (candidates.length === 0) return "";
  const best = closeMatch(word, candidates);
  return best ? `; did you mean "${best}"?` : `; expected one of ${candidates.join(", ")}`;
}

/** Walks the schema along `path` and lists the keys an object there may have. */
export function knownKeysAt(schema: z.ZodType, path: FieldPath): string[] {
  let nodes: unknown[] = [schema];
  for (const segment of [...path, null]) {
    const objects = nodes.flatMap(unwrap);
    if (segment === null) {
      return [...new Set(objects.flatMap((n) => (def(n).type === "object" ? Object.keys(def(n).shape as object) : [])))];
    }
    nodes = objects.flatMap((n) => {
      const d = def(n);
      if (typeof segment === "number") return d.type === "array" ? [d.element] : [];
      if (d.type === "object") return (d.shape as Record<string, unknown>)[segment] ? [(d.shape as Record<string, unknown>)[segment]] : [];
      if (d.type === "record") return [d.valueType];
      return [];
    });
  }
  return [];
}

// zod 4 keeps a schema's structure in `_zod.def`; wrappers (optional, default, pipe,
// union ...) are peeled off to reach objects and arrays.
type Def = Record<string, unknown> & { type: string };
function def(node: unknown): Def {
  return (node as { _zod: { def: Def } })._zod.def;
}
function unwrap(node: unknown): unknown[] {
  const d = def(node);
  switch (d.type) {
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "readonly":
    case "catch":
      return unwrap(d.innerType);
    case "pipe":
      return [...unwrap(d.in), ...unwrap(d.out)];
    case "union":
      return (d.options as unknown[]).flatMap(unwrap);
    default:
      return [node];
  }
}

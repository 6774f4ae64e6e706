// Parses and validates the documents of one manifest file, attaching positions to every
// problem. This is the only module of the read path that needs zod and yaml, so the reader
// imports it lazily: a CLI run whose files are all in the disk cache never loads them.
import type { z } from "zod";
import { describeIssues, DNS_LABEL, isKindName, kindInfo, objectKey, specHash, validateDocument, type FieldPath, type KindName } from "../api/index.js";
import type { DocumentEntry, FileEntry, StatusFileEntry } from "./entries.js";
import { documentStart, locatePath, toPosition } from "./locate.js";
import { parseYamlText, type ParsedYaml, type ParsedYamlDocument } from "./parse.js";
import type { ManifestProblem } from "./types.js";

export { parseYamlText };

/** Reads kind, name and key from a document, if it says them well enough to identify an object. */
export function identify(value: unknown): { kind?: KindName; name?: string; key?: string } {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return {};
  const doc = value as Record<string, unknown>;
  const kind = isKindName(doc.kind) ? doc.kind : undefined;
  const metadata = doc.metadata as Record<string, unknown> | undefined;
  const rawName = metadata && typeof metadata === "object" ? metadata.name : undefined;
  // An invalid name (../x, a;b) never becomes a key: keys end up in file names and libvirt names.
  const name = typeof rawName === "string" && rawName.length <= 63 && DNS_LABEL.test(rawName) ? rawName : undefined;
  return { kind, name, key: kind && name ? objectKey(kind, name) : undefined };
}

export function checkManifestText(text: string, file: string, hash?: string): FileEntry {
  const parsed = parseYamlText(text, file);
  if (parsed.errors.length > 0) return { rel: file, hash, unreadable: parsed.errors, documents: [] };
  return { rel: file, hash, documents: checkDocuments(parsed, file) };
}

export function checkDocuments(parsed: ParsedYaml, file: string): DocumentEntry[] {
  const entries: DocumentEntry[] = [];
  for (const document of parsed.documents) {
    if (document.value === undefined) continue; // empty document: nothing to manage
    entries.push(checkDocument(document, parsed, file));
  }
  return entries;
}

function checkDocument(document: ParsedYamlDocument, parsed: ParsedYaml, file: string): DocumentEntry {
  const { doc, index, value } = document;
  const start = toPosition(parsed.lineCounter, documentStart(doc));
  const id = identify(value);
  const entry: DocumentEntry = { index, line: start.line, column: start.column, ...id, problems: [] };
  const at = (path: FieldPath, message: string, severity?: "warning"): ManifestProblem => {
    // src/api words unknown fields as `unknown field "x"...`: those point at the key.
    const pos = locatePath(doc, parsed.lineCounter, path, message.startsWith("unknown field"));
    const problem: ManifestProblem = { location: { file, document: index, line: pos.line, column: pos.column }, path, message };
    if (id.key) problem.key = id.key;
    if (severity) problem.severity = severity;
    return problem;
  };

  if (document.refused.length) {
    // Aliases, tags, directives: the object is invalid (its kind and name still identify it).
    entry.problems = document.refused.map((p) => (id.key ? { ...p, key: id.key } : p));
    return entry;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    const result = validateDocument(value);
    entry.problems = result.ok ? [] : result.issues.map((issue) => at(issue.path, issue.message));
    return entry;
  }
  const { status, ...raw } = value as Record<string, unknown>;
  if (id.key) {
    const pos = locatePath(doc, parsed.lineCounter, ["metadata", "name"]);
    entry.nameLine = pos.line;
    entry.nameColumn = pos.column;
  }
  const result = validateDocument(raw);
  if (!result.ok) {
    entry.problems = result.issues.map((issue) => at(issue.path, issue.message));
    return entry;
  }
  entry.object = result.object;
  entry.raw = raw;
  entry.specHash = specHash(raw.spec);
  if (status !== undefined && status !== null && entry.kind) {
    const checked = validateStatus(entry.kind, status);
    if (checked.ok) entry.status = checked.status;
    else entry.problems = checked.issues.map((issue) => at(["status", ...issue.path], `status ignored: ${issue.message}`, "warning"));
  }
  return entry;
}

/** Status is written by the controller and parsed leniently; a malformed one is ignored, never blocking the spec. */
export function validateStatus(
  kind: KindName,
  status: unknown,
): { ok: true; status: Record<string, unknown> } | { ok: false; issues: { path: FieldPath; message: string }[] } {
  const schema = (kindInfo(kind).schema as unknown as { shape: { status: z.ZodType } }).shape.status;
  const parsed = schema.safeParse(status, { reportInput: true });
  if (parsed.success && parsed.data && typeof parsed.data === "object") return { ok: true, status: parsed.data as Record<string, unknown> };
  if (parsed.success) return { ok: false, issues: [{ path: [], message: "must be a mapping" }] };
  return { ok: false, issues: describeIssues(schema, parsed.error.issues) };
}

/**
 * A file of the status directory: documents with apiVersion, kind, metadata.name and status.
 * Anything unreadable there only costs the status (a warning), never the object.
 */
export function checkStatusText(text: string, file: string, hash?: string): StatusFileEntry {
  const parsed = parseYamlText(text, file);
  const entry: StatusFileEntry = { hash, statuses: {}, problems: parsed.errors.map((p) => ({ ...p, severity: "warning" as const })) };
  if (parsed.errors.length > 0) return entry;
  for (const document of parsed.documents) {
    if (document.value === undefined) continue;
    const id = identify(document.value);
    const status = (document.value as Record<string, unknown>).status;
    const pos = toPosition(parsed.lineCounter, documentStart(document.doc));
    const location = { file, document: document.index, line: pos.line, column: pos.column };
    if (!id.kind || !id.key) {
      entry.problems.push({ location, severity: "warning", message: "status document without a valid kind and metadata.name; ignored" });
      continue;
    }
    if (status === undefined || status === null) continue;
    const checked = validateStatus(id.kind, status);
    if (checked.ok) entry.statuses[id.key] = checked.status;
    else {
      for (const issue of checked.issues) {
        const at = locatePath(document.doc, parsed.lineCounter, ["status", ...issue.path]);
        entry.problems.push({
          location: { file, document: document.index, line: at.line, column: at.column },
          path: ["status", ...issue.path],
          key: id.key,
          severity: "warning",
          message: `status ignored: ${issue.message}`,
        });
      }
    }
  }
  return entry;
}

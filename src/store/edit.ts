// Text edits behind `kvmctl apply` and `kvmctl delete`: parse input documents keeping their
// source text, replace one document's text in a file, append a document, remove a document.
// Like the status writer, every edit is verified by parsing the result before it is used.
import type { Document, LineCounter } from "yaml";
import { canonicalJson } from "../api/hash.js";
import type { FieldPath } from "../api/validate.js";
import { checkDocuments } from "./check-documents.js";
import { locatePath, type Position } from "./locate.js";
import { parseYamlText } from "./parse.js";
import { renderDocument, renderStatusBlock } from "./status-render.js";
import type { ParsedSource, SourceDocument } from "./types.js";
import { findStatusBlock, lineEnding, NotEditableError, parseRegions, type DocumentRegion } from "./yaml-regions.js";

const positions = new WeakMap<SourceDocument, { doc: Document.Parsed; lineCounter: LineCounter }>();

/** Input for `apply -f FILE|DIR|-`: the same parsing, validation and positions as the directory. */
export function parseManifestSource(text: string, label: string): ParsedSource {
  const parsed = parseYamlText(text, label);
  if (parsed.errors.length > 0) return { documents: [], problems: parsed.errors };
  // Status in the input is dropped (the controller owns it), so complaints about it are noise.
  const entries = checkDocuments(parsed, label).map((e) => ({ ...e, problems: e.problems.filter((p) => !(p.severity === "warning" && p.path?.[0] === "status")) }));
  const regions = parseRegions(text).regions;
  const documents: SourceDocument[] = entries.map((entry) => {
    const region = regions[entry.index - 1]!;
    const source: SourceDocument = {
      location: { file: label, document: entry.index, line: entry.line, column: entry.column },
      text: entry.raw ? sourceTextWithoutStatus(text, region, entry.raw) : "",
      problems: entry.problems,
    };
    if (entry.key) source.key = entry.key;
    if (entry.kind) source.kind = entry.kind;
    if (entry.name) source.name = entry.name;
    if (entry.object) source.object = entry.object;
    if (entry.raw) source.raw = entry.raw;
    positions.set(source, { doc: region.doc, lineCounter: parsed.lineCounter });
    return source;
  });
  return { documents, problems: entries.flatMap((e) => e.problems) };
}

/** Position of a field in an input document, for problems found after parsing (cross-object conflicts). */
export function locateInSource(source: SourceDocument, path: FieldPath): Position {
  const found = positions.get(source);
  if (!found) return { line: source.location.line ?? 1, column: source.location.column ?? 1 };
  return locatePath(found.doc, found.lineCounter, path);
}

/**
 * The document's own text with its status block cut out and "\n" line ends: comments and
 * layout kept. A document that cannot be cut line-wise (flow style) is rendered from its value.
 */
function sourceTextWithoutStatus(text: string, region: DocumentRegion, raw: Record<string, unknown>): string {
  let body: string;
  try {
    const block = findStatusBlock(region, text);
    body = block ? text.slice(region.bodyStart, block.start) + text.slice(block.end, region.bodyEnd) : text.slice(region.bodyStart, region.bodyEnd);
  } catch (error) {
    // Not block style at column 1: a status block could not be appended later, so write it out afresh.
    if (!(error instanceof NotEditableError)) throw error;
    body = renderDocument(raw);
  }
  body = body.replace(/^\uFEFF/, "").replace(/\r\n/g, "\n");
  return body.endsWith("\n") ? body : `${body}\n`;
}

function withEol(text: string, eol: "\n" | "\r\n"): string {
  return eol === "\n" ? text : text.replace(/\r?\n/g, "\r\n");
}

function valueWithoutStatus(value: unknown): string {
  const { status: _status, ...rest } = (value ?? {}) as Record<string, unknown>;
  return canonicalJson(rest);
}

function statusOf(value: unknown): string {
  return canonicalJson(((value ?? {}) as Record<string, unknown>).status ?? null);
}

export interface DocumentUpdate {
  key: string;
  /** New document text ("\n" line ends, no status). */
  text: string;
  /** What that text must read as (without status), checked after the edit. */
  raw: Record<string, unknown>;
}

/** Replaces the text of each updated document, keeping each one's existing status block. */
export function replaceDocuments(text: string, updates: DocumentUpdate[]): string {
  const parsed = parseRegions(text);
  if (parsed.hasErrors) throw new NotEditableError("the file has YAML errors");
  const eol = lineEnding(text);
  const edits: { start: number; end: number; replacement: string }[] = [];
  const targets = new Map<DocumentRegion, DocumentUpdate>();
  for (const update of updates) {
    const matches = parsed.regions.filter((r) => r.key === update.key);
    if (matches.length !== 1) throw new NotEditableError(matches.length ? `${update.key} is defined more than once` : `${update.key} is no longer in this file`);
    const region = matches[0]!;
    targets.set(region, update);
    let statusText = "";
    try {
      const block = findStatusBlock(region, text);
      if (block) statusText = text.slice(block.start, block.end);
    } catch (error) {
      if (!(error instanceof NotEditableError)) throw error;
      const status = (region.value as Record<string, unknown>).status;
      if (status && typeof status === "object") statusText = renderStatusBlock(status as Record<string, unknown>, eol);
    }
    if (statusText && !statusText.endsWith("\n")) statusText += eol;
    const start = region.editable ? region.bodyStart : region.markerStart!;
    const prefix = region.editable ? "" : `---${eol}`;
    edits.push({ start, end: region.bodyEnd, replacement: prefix + withEol(update.text, eol) + statusText });
  }
  let next = text;
  for (const edit of edits.sort((a, b) => b.start - a.start)) next = next.slice(0, edit.start) + edit.replacement + next.slice(edit.end);

  const after = parseRegions(next);
  const fail = (why: string): never => {
    throw new NotEditableError(`cannot update safely: ${why}; the file was not changed`);
  };
  if (after.hasErrors) fail("the result would not parse");
  if (after.regions.length !== parsed.regions.length) fail("the result would have a different number of documents");
  parsed.regions.forEach((old, i) => {
    const now = after.regions[i]!;
    const update = targets.get(old);
    if (!update) {
      if (canonicalJson(old.value ?? null) !== canonicalJson(now.value ?? null)) fail(`document ${old.index} would change`);
    } else {
      if (valueWithoutStatus(now.value) !== canonicalJson(update.raw)) fail(`document ${old.index} would not read as applied`);
      if (statusOf(now.value) !== statusOf(old.value)) fail(`document ${old.index} would lose its status`);
    }
  });
  return next;
}

/** Appends a document to a file's text (or starts the file). */
export function appendDocument(existing: string | undefined, body: string, raw: Record<string, unknown>): string {
  if (existing === undefined || existing.trim() === "") return body;
  const before = parseRegions(existing);
  if (before.hasErrors) throw new NotEditableError("the file has YAML errors");
  const eol = lineEnding(existing);
  const next = `${existing}${existing.endsWith("\n") ? "" : eol}---${eol}${withEol(body, eol)}`;
  const after = parseRegions(next);
  const added = after.regions.filter((r) => r.value !== undefined).at(-1);
  if (after.hasErrors || !added || valueWithoutStatus(added.value) !== canonicalJson(raw)) {
    throw new NotEditableError("cannot append the document safely; the file was not changed");
  }
  return next;
}

/** Removes `key`'s document; null when no other document is left (the file should go). */
export function removeDocument(text: string, key: string): { result: "missing" } | { result: "removed"; text: string | null } {
  const parsed = parseRegions(text);
  if (parsed.hasErrors) throw new NotEditableError("the file has YAML errors");
  const matches = parsed.regions.filter((r) => r.key === key);
  if (matches.length === 0) return { result: "missing" };
  if (matches.length > 1) throw new NotEditableError(`${key} is defined more than once in this file`);
  const region = matches[0]!;
  const others = parsed.regions.filter((r) => r !== region && r.value !== undefined);
  if (others.length === 0) return { result: "removed", text: null };
  const next = text.slice(0, region.markerStart ?? region.bodyStart) + text.slice(region.end);
  const after = parseRegions(next);
  const remaining = after.regions.filter((r) => r.value !== undefined);
  if (
    after.hasErrors ||
    remaining.length !== others.length ||
    remaining.some((r, i) => canonicalJson(r.value) !== canonicalJson(others[i]!.value))
  ) {
    throw new NotEditableError(`cannot remove document ${region.index} safely; the file was not changed`);
  }
  return { result: "removed", text: next };
}

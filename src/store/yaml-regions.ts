// Byte ranges inside a YAML file, for edits that must leave every other byte alone: where
// each document's text lies (between its `---` line and the next document or `...`), where
// its top-level `status:` block lies, and where a new one would go. Anything that cannot be
// edited line-wise with certainty (flow style, content on the `---` line, an indented
// top-level mapping) raises NotEditableError instead of guessing.
import { Composer, isMap, isScalar, LineCounter, Parser, type Document, type Node, type Pair } from "yaml";
import type { CST } from "yaml";
import { identify } from "./check-documents.js";

export class NotEditableError extends Error {
  override name = "NotEditableError";
}

export interface DocumentRegion {
  /** 1-based. */
  index: number;
  doc: Document.Parsed;
  /** Offset of the `---` marker, when the document has one. */
  markerStart?: number;
  /** The document's own text: after its `---` line (or the start of the file), up to `...` or the next document. */
  bodyStart: number;
  bodyEnd: number;
  /** Past its `...` line when it has one, else bodyEnd. */
  end: number;
  /** False when content sits on the `---` line itself: such a document is not edited. */
  editable: boolean;
  /** The plain value; undefined for an empty document. */
  value: unknown;
  key?: string;
}

export interface ParsedRegions {
  regions: DocumentRegion[];
  lineCounter: LineCounter;
  hasErrors: boolean;
}

export function parseRegions(text: string): ParsedRegions {
  const lineCounter = new LineCounter();
  const tokens = Array.from(new Parser(lineCounter.addNewLine).parse(text));
  const docs = Array.from(new Composer({ uniqueKeys: true, logLevel: "error" }).compose(tokens));
  const regions: DocumentRegion[] = [];
  let hasErrors = false;
  let docIndex = 0;
  tokens.forEach((token, i) => {
    if (token.type !== "document") return;
    const doc = docs[docIndex];
    docIndex += 1;
    if (!doc) return;
    if (doc.errors.length) hasErrors = true;
    const next = tokens[i + 1];
    const after = tokens.slice(i + 1).find((t) => t.type !== "doc-end");
    const bodyEnd = next ? next.offset : text.length;
    const end = next?.type === "doc-end" ? (after ? after.offset : text.length) : bodyEnd;
    const { markerStart, bodyStart, editable } = bodyStartOf(token, docIndex, text);
    let value: unknown;
    try {
      value = doc.errors.length ? undefined : (doc.toJS({ maxAliasCount: 100 }) ?? undefined);
    } catch {
      hasErrors = true;
    }
    const region: DocumentRegion = { index: docIndex, doc, bodyStart, bodyEnd, end, editable, value };
    if (markerStart !== undefined) region.markerStart = markerStart;
    const key = identify(value).key;
    if (key) region.key = key;
    regions.push(region);
  });
  return { regions, lineCounter, hasErrors };
}

function bodyStartOf(token: CST.Document, index: number, text: string): { markerStart?: number; bodyStart: number; editable: boolean } {
  const marker = token.start.find((t) => t.type === "doc-start");
  if (!marker) return { bodyStart: index === 1 ? 0 : token.offset, editable: true };
  const newline = token.start.find((t) => t.type === "newline" && t.offset > marker.offset);
  if (!newline) {
    // `--- {a: 1}` or `--- !tag` with content on the same line.
    const lineEnd = endOfLine(text, marker.offset);
    return { markerStart: marker.offset, bodyStart: lineEnd, editable: false };
  }
  // Only `---` and an optional comment may share the marker line.
  const between = token.start.filter((t) => t.offset > marker.offset && t.offset < newline.offset);
  const editable = between.every((t) => t.type === "space" || t.type === "comment");
  return { markerStart: marker.offset, bodyStart: newline.offset + newline.source.length, editable };
}

/** Offset just past the line containing `offset` (past its "\n"). */
export function endOfLine(text: string, offset: number): number {
  const nl = text.indexOf("\n", offset);
  return nl === -1 ? text.length : nl + 1;
}

function startOfLine(text: string, offset: number): number {
  return text.lastIndexOf("\n", offset - 1) + 1;
}

/** True when `offset` is the first column of its line (a byte order mark does not count). */
function atColumnOne(text: string, offset: number): boolean {
  return startOfLine(text, offset) === offset || (offset === 1 && text.startsWith("\uFEFF"));
}

/** The top-level block mapping of a document that may be edited line-wise. */
function topLevelMap(region: DocumentRegion, text: string): { items: Pair[] } {
  const contents = region.doc.contents as Node | null;
  if (!region.editable) throw new NotEditableError("content on the `---` line");
  if (!isMap(contents)) throw new NotEditableError("the document is not a mapping");
  if (contents.flow) throw new NotEditableError("the document is written in flow style ({...})");
  const first = contents.items[0];
  const firstKey = first?.key as Node | undefined;
  if (!firstKey?.range || !atColumnOne(text, firstKey.range[0])) {
    throw new NotEditableError("the top-level mapping is not at column 1");
  }
  return contents;
}

/** End of a top-level pair's text: past the last line of its value. */
function pairEnd(pair: Pair, text: string): number {
  const key = pair.key as Node;
  const value = pair.value as Node | null;
  const last = Math.max(key.range?.[1] ?? 0, value?.range?.[1] ?? 0);
  return endOfLine(text, Math.max(last - 1, key.range?.[0] ?? 0));
}

/** Extends a block over following indented comment lines (and blank lines between them): they read as part of it. */
function extendOverIndentedComments(text: string, end: number, limit: number): number {
  let cursor = end;
  let result = end;
  while (cursor < limit) {
    const lineEnd = Math.min(endOfLine(text, cursor), limit);
    const line = text.slice(cursor, lineEnd);
    if (/^[ \t]+#/.test(line)) result = lineEnd;
    else if (line.trim() !== "") break;
    cursor = lineEnd;
  }
  return result;
}

export interface StatusBlock {
  pair: Pair;
  start: number;
  end: number;
}

/** The document's top-level `status:` block, or undefined when it has none. */
export function findStatusBlock(region: DocumentRegion, text: string): StatusBlock | undefined {
  const map = topLevelMap(region, text);
  const pair = map.items.find((p) => isScalar(p.key) && p.key.value === "status");
  if (!pair) return undefined;
  const key = pair.key as Node;
  const start = key.range![0];
  if (!atColumnOne(text, start)) throw new NotEditableError("the status key is not at column 1");
  const end = extendOverIndentedComments(text, pairEnd(pair, text), region.bodyEnd);
  if (end > region.bodyEnd) throw new NotEditableError("the status block runs past its document");
  return { pair, start, end };
}

/** Where a new top-level block goes: after the last line of the mapping's last value (before trailing comments). */
export function appendPoint(region: DocumentRegion, text: string): number {
  const map = topLevelMap(region, text);
  const last = map.items.at(-1)!;
  return extendOverIndentedComments(text, pairEnd(last, text), region.bodyEnd);
}

/** "\r\n" when the file's first line ends that way. */
export function lineEnding(text: string): "\n" | "\r\n" {
  const nl = text.indexOf("\n");
  return nl > 0 && text[nl - 1] === "\r" ? "\r\n" : "\n";
}

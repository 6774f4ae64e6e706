// What a fuzz test expects of a case, worked out without kvmctl's own code: which objects a
// file names (kind + a usable metadata.name), whether it is readable at all, and where a field
// sits. Uses the same YAML library (yaml@2) as the store, with its own options.
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Node } from "yaml";
import type { FieldPath } from "./bases.js";

const KINDS = new Set(["VirtualMachine", "Network", "StoragePool"]);
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8.decode(bytes);
  } catch {
    return undefined;
  }
}

export interface FileView {
  /** UTF-8 text, or undefined when the bytes are not UTF-8. */
  text?: string;
  /** False when the file cannot be read as YAML at all (not UTF-8, a syntax error, an alias error, over 2 MiB). */
  readable: boolean;
  /** "Kind/name" of each document that names an object (a readable file only). */
  keys: string[];
  /** Per document (1-based index - 1): the key it names, if any. */
  documents: { key?: string }[];
}

export const MAX_FILE_SIZE = 2 * 1024 * 1024;

/**
 * kvmctl's rule for line ends (docs/store.md): a bare CR, NEL, U+2028 or U+2029 that YAML would
 * take as a line break — one outside a quoted scalar — makes the file unreadable (an editor shows
 * lines the YAML parser does not see). Worked out per "\n"-line: a quote opened before it and
 * not closed means it is inside a quoted scalar.
 */
export function hasForeignLineEnd(text: string): boolean {
  for (const line of text.split("\n")) {
    for (const match of line.matchAll(/\r(?!$)|\r$(?<!\r\r$)|[\u0085\u2028\u2029]/g)) {
      if (match[0] === "\r" && match.index === line.length - 1) continue; // CRLF
      const before = line.slice(0, match.index);
      const open = (q: string) => (before.split(q).length - 1) % 2 === 1;
      if (!open('"') && !open("'")) return true;
    }
  }
  return false;
}

export function viewFile(bytes: Uint8Array): FileView {
  const text = decodeUtf8(bytes);
  if (text === undefined || bytes.length > MAX_FILE_SIZE) return { ...(text !== undefined ? { text } : {}), readable: false, keys: [], documents: [] };
  if (hasForeignLineEnd(text)) return { text, readable: false, keys: [], documents: [] };
  const docs = parseAllDocuments(text, { uniqueKeys: true, logLevel: "error" }); // yaml's warnings (collection keys) are not the test's output
  const list = Array.isArray(docs) ? docs : [];
  const keys: string[] = [];
  const documents: { key?: string }[] = [];
  for (const doc of list) {
    if (doc.errors.length > 0) return { text, readable: false, keys: [], documents: [] };
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch {
      return { text, readable: false, keys: [], documents: [] };
    }
    documents.push({});
    if (!value || typeof value !== "object" || Array.isArray(value)) continue;
    const v = value as { kind?: unknown; metadata?: unknown };
    const meta = v.metadata && typeof v.metadata === "object" && !Array.isArray(v.metadata) ? (v.metadata as Record<string, unknown>) : undefined;
    const name = meta && Object.prototype.hasOwnProperty.call(meta, "name") ? meta.name : undefined;
    if (typeof v.kind === "string" && KINDS.has(v.kind) && typeof name === "string" && name.length <= 63 && DNS_LABEL.test(name)) {
      keys.push(`${v.kind}/${name}`);
      documents[documents.length - 1]!.key = `${v.kind}/${name}`;
    }
  }
  return { text, readable: true, keys, documents };
}

/** Lines as an editor numbers them for kvmctl's purposes: split on "\n". */
export function lineLengths(text: string): number[] {
  return text.split("\n").map((l) => l.length);
}

/**
 * The 1-based lines the node at `target` (in document `document`) spans, key included; for
 * a path that does not exist, the span of its deepest existing ancestor.
 */
export function spanOf(text: string, document: number, target: FieldPath): { from: number; to: number } | undefined {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc });
  const doc = Array.isArray(docs) ? docs[document - 1] : undefined;
  if (!doc) return undefined;
  let node = doc.contents as Node | null;
  let keyStart: number | undefined;
  for (const segment of target) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) break;
      keyStart = (pair.key as Node).range?.[0];
      node = (pair.value as Node | null) ?? null;
      if (!node) break;
    } else if (isSeq(node) && typeof segment === "number" && node.items[segment]) {
      node = node.items[segment] as Node;
      keyStart = undefined;
    } else break;
  }
  const start = keyStart ?? node?.range?.[0];
  const end = node?.range?.[1] ?? start;
  if (start === undefined || end === undefined) return undefined;
  return { from: lc.linePos(start).line, to: lc.linePos(Math.max(start, end - 1)).line };
}

/** True when one path is a prefix of the other (a problem about a field, its parent or a child of it). */
export function related(a: FieldPath, b: FieldPath): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (String(a[i]) !== String(b[i])) return false;
  return true;
}

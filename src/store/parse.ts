// YAML text → documents, with syntax errors as located problems. yaml@2's Documents keep
// node ranges, which locate.ts turns into line:column for any field path.
import { isAlias, isMap, isNode, isPair, isSeq, LineCounter, parseAllDocuments, visit, type Document } from "yaml";
import type { ManifestProblem } from "./types.js";

export interface ParsedYamlDocument {
  /** 1-based. */
  index: number;
  doc: Document.Parsed;
  /** The plain JS value; undefined for an empty document (only comments or `---`). */
  value: unknown;
  /**
   * What this document uses that manifests may not (aliases, explicit tags, directives): the
   * document is invalid for it, the file's other documents are read as usual.
   */
  refused: ManifestProblem[];
}

export interface ParsedYaml {
  documents: ParsedYamlDocument[];
  lineCounter: LineCounter;
  /** YAML syntax errors. Any error makes the whole file unreadable: its document boundaries are not trustworthy. */
  errors: ManifestProblem[];
}

/** Tags a manifest may spell out: YAML's own scalar types. Anything else (!!omap, !!set, custom) is refused. */
const ALLOWED_TAGS = new Set(["str", "int", "float", "bool", "null"].map((t) => `tag:yaml.org,2002:${t}`));
/** Flow collections nested deeper than this are refused before parsing (a million `[` would block for seconds). */
const MAX_FLOW_DEPTH = 256;

/**
 * What the parser must never be given: line ends YAML would not see as such (a bare CR, NEL,
 * U+2028/U+2029: the file would read as one comment line, every object in it gone) and flow
 * nesting deeper than any manifest needs. Returns the problem at its position, or undefined.
 */
function refusedText(text: string, file: string): ManifestProblem | undefined {
  let line = 1;
  let column = 1;
  let depth = 0;
  let quote: string | undefined;
  const at = (message: string): ManifestProblem => ({ location: { file, document: 1, line, column }, message });
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    // Outside quotes only: inside a quoted scalar they are the string's own characters.
    if (quote === undefined && c === "\r" && text[i + 1] !== "\n") return at("a bare carriage return (CR) line end: save the file with LF (or CRLF) line ends");
    if (quote === undefined && (c === "\u0085" || c === "\u2028" || c === "\u2029")) return at(`a ${c === "\u0085" ? "NEL" : c === "\u2028" ? "line separator (U+2028)" : "paragraph separator (U+2029)"} character as a line end: save the file with LF line ends`);
    if (quote === undefined && (c === '"' || c === "'")) quote = c;
    else if (quote !== undefined && c === quote && text[i - 1] !== "\\") quote = undefined;
    else if (quote === undefined && (c === "[" || c === "{") && ++depth > MAX_FLOW_DEPTH) return at(`flow collections nested more than ${MAX_FLOW_DEPTH} deep`);
    else if (quote === undefined && (c === "]" || c === "}")) depth = Math.max(0, depth - 1);
    if (c === "\n") {
      line++;
      column = 1;
      quote = undefined; // a flow scalar spanning lines is rare; depth alone bounds the cost
    } else column++;
  }
  return undefined;
}

export function parseYamlText(text: string, file: string): ParsedYaml {
  const lineCounter = new LineCounter();
  const refused = refusedText(text, file);
  if (refused) return { documents: [], lineCounter, errors: [refused] };
  // logLevel error: yaml's warnings (e.g. a collection as a key) go to stderr otherwise.
  const parsed = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: true, logLevel: "error" });
  const docs: Document.Parsed[] = Array.isArray(parsed) ? parsed : [];
  const documents: ParsedYamlDocument[] = [];
  const errors: ManifestProblem[] = [];
  docs.forEach((doc, i) => {
    const index = i + 1;
    for (const error of doc.errors) {
      const pos = error.linePos?.[0] ?? lineCounter.linePos(error.pos[0]);
      errors.push({
        location: { file, document: index, line: pos.line, column: pos.col },
        message: `invalid YAML: ${firstLine(error.message)}`,
      });
    }
    // Aliases (*a), explicit tags, directives, collection keys: manifests need none of them. An alias can make
    // a value that contains itself or expands a small file into gigabytes; a tag or %YAML 1.1
    // changes what a value means (kvmctl reads and writes YAML 1.2's core schema).
    const refused: ManifestProblem[] = [];
    const refuse = (offset: number, message: string) => {
      const pos = lineCounter.linePos(offset);
      refused.push({ location: { file, document: index, line: pos.line, column: pos.col }, message });
    };
    const directive = directiveBefore(text, doc.range[0]);
    if (directive !== undefined) refuse(directive, "YAML directives (%YAML, %TAG) are not supported in manifests: remove the line");
    if (doc.errors.length === 0) {
      visit(doc, (_key, node) => {
        const start = isNode(node) ? (node.range?.[0] ?? 0) : 0;
        if (isAlias(node)) {
          refuse(start, `YAML aliases (*${node.source}) are not allowed in manifests: write the value out`);
          return visit.BREAK;
        }
        if (isPair(node) && (isMap(node.key) || isSeq(node.key))) {
          refuse(isNode(node.key) ? (node.key.range?.[0] ?? 0) : 0, "a mapping key must be a plain value, not a list or a mapping");
          return visit.BREAK;
        }
        const tag = isNode(node) ? (node as { tag?: string }).tag : undefined;
        if (tag && !ALLOWED_TAGS.has(tag)) {
          refuse(start, `the YAML tag ${tag.replace("tag:yaml.org,2002:", "!!")} is not supported in manifests`);
          return visit.BREAK;
        }
        return undefined;
      });
    }
    let value: unknown;
    if (doc.errors.length === 0) {
      try {
        // Bounded: a refused document's aliases still expand only this far (its kind and name are read).
        value = doc.toJS({ maxAliasCount: 100 });
      } catch (error) {
        // Unresolved or excessive aliases surface only here.
        const pos = lineCounter.linePos(doc.contents?.range?.[0] ?? doc.range[0]);
        errors.push({
          location: { file, document: index, line: pos.line, column: pos.col },
          message: `invalid YAML: ${error instanceof Error ? error.message : String(error)}`,
        });
      }
    }
    documents.push({ index, doc, value: value === null ? undefined : value, refused });
  });
  return { documents, lineCounter, errors };
}

/** The offset of a `%` directive line between the previous document and `start`, if any. */
function directiveBefore(text: string, start: number): number | undefined {
  const before = text.slice(0, start);
  const from = Math.max(before.lastIndexOf("\n---"), before.lastIndexOf("\n..."), 0);
  const match = /(?:^|\n)(%[^\n]*)/.exec(text.slice(from, start));
  return match ? from + match.index + (match[0].startsWith("\n") ? 1 : 0) : undefined;
}

/** yaml's pretty messages repeat the source with a caret below; the position is reported separately. */
function firstLine(message: string): string {
  return message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
}

// YAML text → documents, with syntax errors as located problems. yaml@2's Documents keep
// node ranges, which locate.ts turns into line:column for any field path.
import { LineCounter, parseAllDocuments, type Document } from "yaml";
import type { ManifestProblem } from "./types.js";

export interface ParsedYamlDocument {
  /** 1-based. */
  index: number;
  doc: Document.Parsed;
  /** The plain JS value; undefined for an empty document (only comments or `---`). */
  value: unknown;
}

export interface ParsedYaml {
  documents: ParsedYamlDocument[];
  lineCounter: LineCounter;
  /** YAML syntax errors. Any error makes the whole file unreadable: its document boundaries are not trustworthy. */
  errors: ManifestProblem[];
}

export function parseYamlText(text: string, file: string): ParsedYaml {
  const lineCounter = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: true });
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
    let value: unknown;
    if (doc.errors.length === 0) {
      try {
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
    documents.push({ index, doc, value: value === null ? undefined : value });
  });
  return { documents, lineCounter, errors };
}

/** yaml's pretty messages repeat the source with a caret below; the position is reported separately. */
function firstLine(message: string): string {
  return message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
}

// Field path → line:column in a parsed YAML document. Unknown fields point at their key
// (the word the user must change); bad values point at the value; a missing field points
// at the deepest part of the path that exists (usually the parent's key).
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from "yaml";
import type { FieldPath } from "../api/validate.js";

export interface Position {
  line: number;
  column: number;
}

interface Found {
  node: Node | null | undefined;
  keyNode?: Node | undefined;
  complete: boolean;
}

function walk(doc: Document.Parsed, path: FieldPath): Found {
  let node = doc.contents as Node | null;
  let keyNode: Node | undefined;
  for (const segment of path) {
    if (isAlias(node)) node = node.resolve(doc) ?? null;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) return { node, keyNode, complete: false };
      keyNode = pair.key as Node;
      node = (pair.value as Node | null) ?? null;
    } else if (isSeq(node) && typeof segment === "number") {
      const item = node.items[segment] as Node | undefined;
      if (!item) return { node, keyNode, complete: false };
      node = item;
      keyNode = undefined;
    } else {
      return { node, keyNode, complete: false };
    }
  }
  return { node, keyNode, complete: true };
}

/** Position of `path` in `doc`; `pointAtKey` for problems about the key itself (unknown fields). */
export function locatePath(doc: Document.Parsed, lineCounter: LineCounter, path: FieldPath, pointAtKey = false): Position {
  const found = walk(doc, path);
  let offset: number | undefined;
  if (found.complete) {
    const valueStart = found.node?.range?.[0];
    // An empty value (`name:`) has no useful position of its own: use the key.
    const emptyValue = found.node == null || (isScalar(found.node) && found.node.value === null);
    offset = pointAtKey || emptyValue ? (found.keyNode?.range?.[0] ?? valueStart) : valueStart;
  } else {
    offset = found.keyNode?.range?.[0] ?? found.node?.range?.[0];
  }
  return toPosition(lineCounter, offset ?? documentStart(doc));
}

/** Where the document's content begins (after `---` and comments). */
export function documentStart(doc: Document.Parsed): number {
  return (doc.contents as Node | null)?.range?.[0] ?? doc.range[0];
}

export function toPosition(lineCounter: LineCounter, offset: number): Position {
  const pos = lineCounter.linePos(offset);
  return { line: pos.line, column: pos.col };
}

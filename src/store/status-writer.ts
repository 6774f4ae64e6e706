// Status write-back into a manifest file: replaces only the object's top-level `status:`
// block (or appends one to its document, or removes it), leaving every other byte as it was.
// The edit is verified by parsing the result: if anything but the status would change, the
// file is not written.
import { canonicalJson } from "../api/hash.js";
import { orderStatus, renderStatusBlock, toPlain } from "./status-render.js";
import { appendPoint, findStatusBlock, lineEnding, NotEditableError, parseRegions, type DocumentRegion } from "./yaml-regions.js";

export type StatusEdit = { result: "written"; text: string } | { result: "unchanged" } | { result: "missing" };

/** Pure: the new text of a manifest file with `key`'s status set to `status` (null removes it). */
export function editStatusInText(text: string, key: string, status: Record<string, unknown> | null): StatusEdit {
  const parsed = parseRegions(text);
  if (parsed.hasErrors) throw new NotEditableError("the file has YAML errors");
  const matches = parsed.regions.filter((r) => r.key === key);
  if (matches.length === 0) return { result: "missing" };
  if (matches.length > 1) throw new NotEditableError(`${key} is defined more than once in this file`);
  const region = matches[0]!;
  const where = `document ${region.index}`;
  let block;
  let at: number | undefined;
  try {
    block = findStatusBlock(region, text);
    if (!block && status !== null) at = appendPoint(region, text);
  } catch (error) {
    if (error instanceof NotEditableError) throw new NotEditableError(`${where}: cannot edit status safely: ${error.message}`);
    throw error;
  }
  const existing = (region.value as Record<string, unknown>).status;
  let next: string;
  if (status === null) {
    if (!block) return { result: "unchanged" };
    next = text.slice(0, block.start) + text.slice(block.end);
  } else {
    const wanted = orderStatus(status);
    const rendered = renderStatusBlock(wanted, lineEnding(text));
    if (block) {
      if (text.slice(block.start, block.end) === rendered || canonicalJson(existing ?? null) === canonicalJson(wanted)) return { result: "unchanged" };
      next = text.slice(0, block.start) + rendered + text.slice(block.end);
    } else {
      const point = at!;
      const needsBreak = point > 0 && text[point - 1] !== "\n";
      next = text.slice(0, point) + (needsBreak ? lineEnding(text) : "") + rendered + text.slice(point);
    }
  }
  verifyOnlyStatusChanged(parsed.regions, next, region, status === null ? undefined : toPlain(status));
  return { result: "written", text: next };
}

/** Parses the edited text and checks that every document reads as before, except the one status. */
function verifyOnlyStatusChanged(before: DocumentRegion[], text: string, target: DocumentRegion, status: Record<string, unknown> | undefined): void {
  const after = parseRegions(text);
  const fail = (why: string) => {
    throw new NotEditableError(`document ${target.index}: cannot edit status safely: ${why}; the file was not changed`);
  };
  if (after.hasErrors) fail("the result would not parse");
  if (after.regions.length !== before.length) fail("the result would have a different number of documents");
  before.forEach((old, i) => {
    const now = after.regions[i]!;
    if (old !== target) {
      if (canonicalJson(old.value ?? null) !== canonicalJson(now.value ?? null)) fail(`document ${old.index} would change`);
      return;
    }
    const { status: _old, ...oldRest } = (old.value ?? {}) as Record<string, unknown>;
    const { status: newStatus, ...newRest } = (now.value ?? {}) as Record<string, unknown>;
    if (canonicalJson(oldRest) !== canonicalJson(newRest)) fail("fields outside status would change");
    if (canonicalJson(newStatus ?? null) !== canonicalJson(status ?? null)) fail("the status would not read back as written");
  });
}

/**
 * Pure: `text` without any document's top-level `status:` block, every other byte as it was —
 * what git sees through kvmctl's clean filter (`kvmctl git-setup`), so status written back
 * into a checkout is never a change to commit, diff or merge. A text that cannot be parsed
 * (conflict markers, a syntax error) or whose status cannot be cut out safely comes back
 * unchanged: a clean filter must never lose a byte git would store.
 */
export function withoutStatusBlocks(text: string): string {
  const parsed = parseRegions(text);
  if (parsed.hasErrors) return text;
  let out = text;
  try {
    for (const region of [...parsed.regions].reverse()) {
      const block = findStatusBlock(region, text);
      if (block) out = out.slice(0, block.start) + out.slice(block.end);
    }
  } catch (error) {
    if (error instanceof NotEditableError) return text;
    throw error;
  }
  return out;
}

/** Pure: each identified document's status (as data) in `text`; empty when it does not parse. */
export function statusesInText(text: string): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  const parsed = parseRegions(text);
  if (parsed.hasErrors) return out;
  for (const region of parsed.regions) {
    const status = (region.value as { status?: unknown } | null)?.status;
    if (region.key && status && typeof status === "object" && !Array.isArray(status)) out.set(region.key, toPlain(status) as Record<string, unknown>);
  }
  return out;
}

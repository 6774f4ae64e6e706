// The status directory (`--status-dir`, for read-only checkouts): status lives in
// `<statusDir>/<same relative path as the manifest>`, one document per object holding only
// apiVersion, kind, metadata.name and status. kvmctl owns these files and rewrites them whole.
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { API_VERSION } from "../api/common.js";
import { canonicalJson } from "../api/hash.js";
import { orderStatus, renderDocument } from "./status-render.js";

export function statusFilePath(statusDir: string, rel: string): string {
  return path.join(statusDir, ...rel.split("/"));
}

interface StatusDoc {
  kind: string;
  name: string;
  status: Record<string, unknown>;
}

function readStatusDocs(text: string | undefined): StatusDoc[] {
  if (text === undefined) return [];
  const docs: StatusDoc[] = [];
  for (const doc of parseAllDocuments(text, { logLevel: "error" })) {
    if (doc.errors.length) return []; // damaged: it only held status, which the controller rewrites
    const value = doc.toJS() as Record<string, unknown> | null;
    const metadata = value?.metadata as Record<string, unknown> | undefined;
    if (typeof value?.kind === "string" && typeof metadata?.name === "string" && value.status && typeof value.status === "object") {
      docs.push({ kind: value.kind, name: metadata.name, status: value.status as Record<string, unknown> });
    }
  }
  return docs;
}

/** New text of a status file with `kind/name`'s status set (null removes it; a file left empty becomes null). */
export function editStatusFileText(
  text: string | undefined,
  kind: string,
  name: string,
  status: Record<string, unknown> | null,
): { result: "unchanged" } | { result: "written"; text: string | null } {
  const docs = readStatusDocs(text);
  const i = docs.findIndex((d) => d.kind === kind && d.name === name);
  const current = i === -1 ? undefined : docs[i]!.status;
  const wanted = status === null ? undefined : orderStatus(status);
  if (canonicalJson(current ?? null) === canonicalJson(wanted ?? null) && text !== undefined) return { result: "unchanged" };
  if (wanted === undefined) {
    if (i === -1) return { result: "unchanged" };
    docs.splice(i, 1);
  } else if (i === -1) docs.push({ kind, name, status: wanted });
  else docs[i] = { kind, name, status: wanted };
  if (docs.length === 0) return { result: "written", text: null };
  const rendered = docs.map((d) => renderDocument({ apiVersion: API_VERSION, kind: d.kind, metadata: { name: d.name }, status: orderStatus(d.status) }));
  return { result: "written", text: rendered.join("---\n") };
}

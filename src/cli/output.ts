// Rendering for `get` and friends: kubectl-style tables, and documents as YAML or JSON.
import type { StoredObject } from "../store/index.js";

export const OUTPUT_FORMATS = ["table", "wide", "yaml", "json", "name"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Left-aligned columns separated by three spaces, like kubectl. */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join("   ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

/** The document a user sees: the manifest as written (no defaults filled in) plus its status. */
export function documentOf(stored: StoredObject): Record<string, unknown> {
  const status = (stored.object as { status?: unknown }).status;
  return status === undefined ? { ...stored.raw } : { ...stored.raw, status };
}

export async function renderDocuments(documents: Record<string, unknown>[], format: "yaml" | "json", single: boolean): Promise<string> {
  const value = single && documents.length === 1 ? documents[0] : { apiVersion: "v1", kind: "List", items: documents };
  if (format === "json") return JSON.stringify(value, null, 2) + "\n";
  const { stringify } = await import("yaml");
  return stringify(value, { lineWidth: 0 });
}

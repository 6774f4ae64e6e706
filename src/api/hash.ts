// A stable hash of a spec as written (keys sorted), so a status can say which spec it
// describes and a later edit makes that status visibly stale.
import { createHash } from "node:crypto";

/** Keys sorted, undefined left out; throws (plainly) for a value that contains itself. */
export function canonicalJson(value: unknown, within: Set<unknown> = new Set()): string {
  if (value !== null && typeof value === "object") {
    if (within.has(value)) throw new Error("a value that contains itself (a recursive YAML alias) cannot be used");
    within.add(value);
    try {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v, within)).join(",")}]`;
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v, within)}`).join(",")}}`;
    } finally {
      within.delete(value);
    }
  }
  return JSON.stringify(value) ?? "null";
}

export function specHash(spec: unknown): string {
  return createHash("sha256").update(canonicalJson(spec ?? {})).digest("hex").slice(0, 16);
}

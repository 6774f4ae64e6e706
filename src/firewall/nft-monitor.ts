// What `nft -j monitor` prints, sorted for the firewall watch (src/adapters/nft-monitor.ts).
// nftables 1.0.6 prints one JSON object a line for every change anyone commits:
// `{"add"|"delete": {"table"|"chain"|"rule"|"set"|"element"|...: {"family": ..., ...}}}`, the
// table named by `name` for a table and by `table` for everything in one. A line about this
// instance's table means "compare it now"; lines about other tables (an admin's, another
// instance's, a table of the same name in another family) are left alone. Anything else it
// prints (its "# ERROR: We lost some netlink events!" when the socket overflowed) may hide a
// change to our table: it counts as one. Captured output: test/fixtures/nft-1.0.6/monitor.json.

export interface NftTableRef {
  family: string;
  name: string;
}

export type MonitorLine =
  /** A change to one object of `table` (`verb`: add, delete; `object`: table, chain, rule, ...). */
  | { kind: "change"; verb: string; object: string; table: NftTableRef }
  /** Not an event we can place: it may stand for a change to any table. */
  | { kind: "unknown"; text: string };

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value);
const onlyEntry = (value: Json): [string, unknown] | undefined => {
  const entries = Object.entries(value);
  return entries.length === 1 ? entries[0] : undefined;
};

/** One line of `nft -j monitor` output; undefined for a blank line. */
export function parseMonitorLine(line: string): MonitorLine | undefined {
  const text = line.trim();
  if (text === "") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: "unknown", text };
  }
  const command = isObject(parsed) ? onlyEntry(parsed) : undefined;
  const target = command && isObject(command[1]) ? onlyEntry(command[1]) : undefined;
  const body = target && isObject(target[1]) ? target[1] : undefined;
  const name = target?.[0] === "table" ? body?.name : body?.table;
  if (!command || !target || typeof body?.family !== "string" || typeof name !== "string") return { kind: "unknown", text };
  return { kind: "change", verb: command[0], object: target[0], table: { family: body.family, name } };
}

export interface MonitorBatch {
  /** Lines about `own`, the table being watched. */
  ours: number;
  /** Lines about other tables, per "family name". */
  ignored: Map<string, number>;
  /** Lines that could not be placed (each may be a change to `own`). */
  unknown: string[];
}

/** Sorts a run of monitor lines by whether they concern the table `own`. */
export function sortMonitorLines(lines: readonly string[], own: NftTableRef): MonitorBatch {
  const batch: MonitorBatch = { ours: 0, ignored: new Map(), unknown: [] };
  for (const line of lines) {
    const parsed = parseMonitorLine(line);
    if (!parsed) continue;
    if (parsed.kind === "unknown") batch.unknown.push(parsed.text);
    else if (parsed.table.family === own.family && parsed.table.name === own.name) batch.ours++;
    else {
      const key = `${parsed.table.family} ${parsed.table.name}`;
      batch.ignored.set(key, (batch.ignored.get(key) ?? 0) + 1);
    }
  }
  return batch;
}

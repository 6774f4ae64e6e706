// The status page's data (GET /api/objects on the metrics address, rendered by ./page-assets.ts):
// every object with its Ready condition, phase, the MESSAGE `kvmctl get -o wide` prints, and its
// recent aggregated events. Only those: no spec field (a spec can name secret files), no other
// status field, no problem text of an invalid manifest (it can quote spec values). Events are
// secret-free by contract (src/store/events.ts).
import { MESSAGE, READY, conditionOf } from "../cli/columns.js";
import { eventCount, eventFirstTime } from "../store/events.js";
import type { ObjectEvent, Snapshot, StoredObject } from "../store/index.js";

/** What the page reads: the controller's ManifestStore (its last snapshot and the events files). */
export interface PageSource {
  readonly snapshot: Snapshot | undefined;
  readAllEvents(): Promise<Map<string, ObjectEvent[]>>;
  /** The status the controller wrote after the snapshot was read, if any (ManifestStore.statusWritten). */
  statusWritten?(key: string, snapshot: Snapshot): Record<string, unknown> | null | undefined;
}

export interface PageEvent {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
  count: number;
  firstSeen: string;
  lastSeen: string;
}

export interface PageObject {
  kind: string;
  name: string;
  ready: { status: "True" | "False" | "Unknown"; reason: string | null };
  phase: string | null;
  /** As `kvmctl get -o wide`'s MESSAGE column ("-" when there is none). */
  message: string;
  /** Newest first, at most PAGE_EVENTS. */
  events: PageEvent[];
}

export interface PageData {
  generatedAt: string;
  /** Whether the controller's first full pass is done (/readyz). */
  controllerReady: boolean;
  /** False until the controller has read the manifest directory. */
  loaded: boolean;
  objects: PageObject[];
}

/** Recent events shown per object. */
export const PAGE_EVENTS = 10;

const READY_STATUSES = new Set(["True", "False", "Unknown"]);
const text = (value: unknown): string | null => (typeof value === "string" && value !== "" ? value : null);

function pageEvents(events: readonly ObjectEvent[] | undefined): PageEvent[] {
  return (events ?? [])
    .slice(-PAGE_EVENTS)
    .reverse()
    .map((e) => ({
      type: e.type === "Warning" ? "Warning" : "Normal",
      reason: String(e.reason),
      message: typeof e.message === "string" ? e.message : "",
      count: eventCount(e),
      firstSeen: eventFirstTime(e),
      lastSeen: e.time,
    }));
}

function objectOf(stored: StoredObject, now: number, events: readonly ObjectEvent[] | undefined): PageObject {
  const ready = conditionOf(stored, "Ready");
  const status = READY.cell(stored, now);
  const phase = (stored.object as { status?: { phase?: unknown } }).status?.phase;
  return {
    kind: stored.kind,
    name: stored.name,
    ready: { status: (READY_STATUSES.has(status) ? status : "Unknown") as PageObject["ready"]["status"], reason: text(ready?.reason) },
    phase: text(phase),
    message: MESSAGE.cell(stored, now),
    events: pageEvents(events),
  };
}

/** `stored` with the status the controller wrote since the snapshot was read: the page does not wait for the next rescan. */
function withWrittenStatus(source: PageSource, snapshot: Snapshot, key: string, stored: StoredObject): StoredObject {
  const written = source.statusWritten?.(key, snapshot);
  if (written === undefined) return stored;
  const object = { ...(stored.object as Record<string, unknown>) };
  if (written === null) delete object.status;
  else object.status = written;
  return { ...stored, object } as StoredObject;
}

/** The page's JSON: built from the store's last snapshot (no read of its own) and the events files. */
export async function pageData(source: PageSource, options: { now?: number; ready?: boolean } = {}): Promise<PageData> {
  const now = options.now ?? Date.now();
  const snapshot = source.snapshot;
  const events = snapshot ? await source.readAllEvents().catch(() => new Map<string, ObjectEvent[]>()) : new Map<string, ObjectEvent[]>();
  const objects: PageObject[] = [];
  if (snapshot) {
    for (const [key, stored] of snapshot.objects) objects.push(objectOf(withWrittenStatus(source, snapshot, key, stored), now, events.get(key)));
    for (const [key, problems] of snapshot.invalid) {
      if (snapshot.objects.has(key)) continue;
      const slash = key.indexOf("/");
      objects.push({
        kind: key.slice(0, slash),
        name: key.slice(slash + 1),
        ready: { status: "False", reason: "InvalidSpec" },
        phase: null,
        message: `InvalidSpec: the manifest has ${problems.length} problem${problems.length === 1 ? "" : "s"} (kvmctl describe ${key} shows them)`,
        events: pageEvents(events.get(key)),
      });
    }
  }
  objects.sort((a, b) => (a.kind === b.kind ? (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) : a.kind < b.kind ? -1 : 1));
  return { generatedAt: new Date(now).toISOString(), controllerReady: options.ready === true, loaded: snapshot !== undefined, objects };
}

/**
 * JSON safe to serve whatever it holds: `<`, `>`, `&` and the line separators as \u escapes, so
 * even a client that sniffed it as HTML (nosniff forbids it) would find no markup in it.
 */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

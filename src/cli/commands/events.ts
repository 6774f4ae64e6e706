// `kvmctl events [KIND/NAME] [-w]`: the recorded events like `kubectl events` — one line per
// (aggregated) event, LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, oldest first; an event seen
// more than once reads "2m (x5 over 1h)". With -w, new and updated events follow, one line
// each, until interrupted (the events directory is watched, and polled as a safety net).
import fs from "node:fs";
import { kindNames, type KindName } from "../../api/kind-names.js";
import type { ManifestStore, ObjectEvent } from "../../store/index.js";
import type { CliContext } from "../context.js";
import { formatAge } from "../duration.js";
import { UsageError } from "../errors.js";
import { kindsFor } from "./get.js";
import { parseTargets } from "./wait.js";
import { compareText } from "../../api/text.js";

export interface EventsOptions {
  watch?: boolean;
}

/** Where output goes and when watching ends: a test's, or the process's. */
export interface EventsIo {
  out(text: string): void;
  err(text: string): void;
  now(): number;
  /** Aborted: -w stops (else SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** How often -w re-reads without a file event (ms). */
  pollMs?: number;
}

export interface EventRow {
  key: string;
  event: ObjectEvent;
}

export const EVENT_HEADERS = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"];

/** What `events` shows: every object, one kind, or one object. */
export interface EventsFilter {
  kind?: KindName;
  name?: string;
}

export function parseEventsTarget(args: string[]): EventsFilter {
  if (args.length === 0) return {};
  if (args.length === 1 && !args[0]!.includes("/")) {
    const kinds = kindsFor(args[0]!);
    if (kinds.length !== 1) throw new UsageError(`events: expected one kind, not "${args[0]}"`);
    return { kind: kinds[0]! };
  }
  const keys = parseTargets(args);
  if (keys.length !== 1) throw new UsageError("events: expected one KIND/NAME");
  const [kind, name] = [keys[0]!.slice(0, keys[0]!.indexOf("/")), keys[0]!.slice(keys[0]!.indexOf("/") + 1)];
  return { kind: kind as KindName, name };
}

/** The rows of `all` that `filter` selects, oldest last-seen first (ties: by object). */
export function eventRows(all: ReadonlyMap<string, readonly ObjectEvent[]>, filter: EventsFilter = {}): EventRow[] {
  const rows: EventRow[] = [];
  for (const [key, events] of all) {
    const slash = key.indexOf("/");
    if (filter.kind && key.slice(0, slash) !== filter.kind) continue;
    if (filter.name !== undefined && key.slice(slash + 1) !== filter.name) continue;
    for (const event of events) rows.push({ key, event });
  }
  return rows.sort((a, b) => Date.parse(a.event.time) - Date.parse(b.event.time) || compareText(a.key, b.key));
}

function age(time: string, now: number): string {
  const at = Date.parse(time);
  return Number.isFinite(at) ? formatAge(new Date(at), now) : "<unknown>";
}

/** LAST SEEN as kubectl events prints it: "45s", or "45s (x3 over 10m)" for an aggregated event. */
export function lastSeen(event: ObjectEvent, now: number): string {
  const count = typeof event.count === "number" && event.count > 1 ? event.count : 1;
  return count > 1 ? `${age(event.time, now)} (x${count} over ${age(event.firstTime ?? event.time, now)})` : age(event.time, now);
}

export function eventCells(row: EventRow, now: number): string[] {
  return [lastSeen(row.event, now), row.event.type, row.event.reason, row.key, row.event.message.replace(/\s*\n\s*/g, " ")];
}

/** Aligned lines: each column at least as wide as `widths` says (grown to fit; the last column is never padded). */
export function alignRows(rows: string[][], widths: number[]): string {
  return rows
    .map((cells) =>
      cells
        .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("   ")
        .trimEnd(),
    )
    .map((line) => line + "\n")
    .join("");
}

export function columnWidths(rows: string[][]): number[] {
  return EVENT_HEADERS.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
}

/** The table `kvmctl events` prints (header included), or "" when there are no rows. */
export function renderEvents(rows: EventRow[], now: number): string {
  if (rows.length === 0) return "";
  const cells = rows.map((r) => eventCells(r, now));
  return alignRows([EVENT_HEADERS, ...cells], columnWidths(cells));
}

/** One identity per aggregated event, and what makes it new again (its count and last time). */
const identity = (row: EventRow) => JSON.stringify([row.key, row.event.type, row.event.reason, row.event.message]);
const version = (row: EventRow) => `${row.event.count ?? 1}@${row.event.time}`;

async function readRows(store: ManifestStore, filter: EventsFilter): Promise<EventRow[]> {
  if (filter.kind && filter.name !== undefined) {
    const key = `${filter.kind}/${filter.name}`;
    return eventRows(new Map([[key, await store.readEvents(key)]]), filter);
  }
  return eventRows(await store.readAllEvents(), filter);
}

const processIo = (): EventsIo => ({ out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), now: () => Date.now() });

export async function runEvents(ctx: CliContext, args: string[], options: EventsOptions, io: EventsIo = processIo()): Promise<void> {
  const filter = parseEventsTarget(args);
  if (filter.kind && filter.name !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(filter.name)) {
    throw new UsageError(`${kindNames(filter.kind).singular} name ${JSON.stringify(filter.name)} is not a valid object name`);
  }
  const store = await ctx.openStore("read");
  const rows = await readRows(store, filter);
  const now = io.now();
  if (rows.length) io.out(renderEvents(rows, now));
  else io.err(`No events found${filter.kind ? ` for ${filter.name !== undefined ? `${filter.kind}/${filter.name}` : kindNames(filter.kind).plural}` : ""}.\n`);
  if (!options.watch) return;

  let widths = columnWidths(rows.map((r) => eventCells(r, now)));
  let header = rows.length > 0;
  const seen = new Map(rows.map((r) => [identity(r), version(r)]));
  await watchEvents(store, io, async () => {
    const fresh = (await readRows(store, filter)).filter((r) => seen.get(identity(r)) !== version(r));
    if (!fresh.length) return;
    for (const r of fresh) seen.set(identity(r), version(r));
    const cells = fresh.map((r) => eventCells(r, io.now()));
    if (!header) {
      // the first events: with their header, as kubectl prints it
      header = true;
      widths = columnWidths(cells);
      io.out(alignRows([EVENT_HEADERS, ...cells], widths));
    } else io.out(alignRows(cells, widths));
  });
}

/** Calls `check` on every change of the events directory (fs.watch where it exists) and every pollMs, until interrupted. */
async function watchEvents(store: ManifestStore, io: EventsIo, check: () => Promise<void>): Promise<void> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  const signal = io.signal;
  if (signal) signal.addEventListener("abort", stop, { once: true });
  else {
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  }
  let watcher: fs.FSWatcher | undefined;
  let wake: (() => void) | undefined;
  const watchDir = () => {
    if (watcher) return;
    try {
      watcher = fs.watch(store.eventsDir, { persistent: false }, () => wake?.());
      watcher.on("error", () => {
        watcher?.close();
        watcher = undefined;
      });
    } catch {
      watcher = undefined; // not there yet: polled until it is
    }
  };
  try {
    while (!controller.signal.aborted) {
      watchDir();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, io.pollMs ?? 1_000);
        const done = () => {
          clearTimeout(timer);
          wake = undefined;
          controller.signal.removeEventListener("abort", done);
          resolve();
        };
        // a burst of writes: one look a moment later
        wake = () => setTimeout(done, 50);
        controller.signal.addEventListener("abort", done, { once: true });
      });
      if (controller.signal.aborted) break;
      await check().catch((error: unknown) => io.err(`error: could not read events: ${error instanceof Error ? error.message : String(error)}\n`));
    }
  } finally {
    watcher?.close();
    if (signal) signal.removeEventListener("abort", stop);
    else {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
  }
}

// Recent events per object (what `kvmctl describe` and `kvmctl events` show), kept in
// `<stateRoot>/.kvmctl/events/<Kind>-<name>.jsonl`, trimmed to the last 50. Identical events
// (same type, reason and message) aggregate as Kubernetes's do: one line with a `count`,
// `firstTime` (first seen) and `time` (last seen), moved to the end, instead of a new line.
// Lines written before aggregation (no count) read as seen once.
import fs from "node:fs";
import { isKindName } from "../api/kind-names.js";
import path from "node:path";
import { ensureDataDir } from "./disk-cache.js";
import type { FileWriter } from "./file-writer.js";
import type { ObjectEvent } from "./types.js";

export const MAX_EVENTS = 50;
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** `<Kind>-<name>`, the file name stem of a key's data; refuses anything that is not a registered Kind/dns-label (no path tricks). */
export function keyFileStem(key: string): string {
  const slash = key.indexOf("/");
  const [kind, name] = [key.slice(0, slash), key.slice(slash + 1)];
  if (slash < 0 || !isKindName(kind) || name.length > 63 || !NAME.test(name)) throw new Error(`not an object key: ${JSON.stringify(key)}`);
  return `${kind}-${name}`;
}

/** The key a file name stem stands for (kinds hold no "-"), or undefined when it is not one of keyFileStem's. */
export function keyOfFileStem(stem: string): string | undefined {
  const dash = stem.indexOf("-");
  if (dash <= 0) return undefined;
  const key = `${stem.slice(0, dash)}/${stem.slice(dash + 1)}`;
  try {
    return keyFileStem(key) === stem ? key : undefined;
  } catch {
    return undefined;
  }
}

/** The events file of a key. */
export function eventsFile(dataDir: string, key: string): string {
  return path.join(dataDir, "events", `${keyFileStem(key)}.jsonl`);
}

/** How often an event was seen (1 for a line without a count). */
export function eventCount(event: ObjectEvent): number {
  return typeof event.count === "number" && Number.isInteger(event.count) && event.count > 0 ? event.count : 1;
}

/** When an event was first seen. */
export function eventFirstTime(event: ObjectEvent): string {
  return typeof event.firstTime === "string" ? event.firstTime : event.time;
}

const sameEvent = (a: ObjectEvent, b: ObjectEvent) => a.type === b.type && a.reason === b.reason && a.message === b.message;

/** `event` added to `events` (oldest first): merged into an identical one (moved to the end), else appended; the last MAX_EVENTS kept. */
export function aggregateEvent(events: readonly ObjectEvent[], event: ObjectEvent): ObjectEvent[] {
  const index = events.findIndex((e) => sameEvent(e, event));
  if (index < 0) return [...events, event].slice(-MAX_EVENTS);
  const old = events[index]!;
  const times = [eventFirstTime(old), old.time, eventFirstTime(event), event.time].sort();
  const revision = event.revision ?? old.revision; // the revision it was last seen at
  const merged: ObjectEvent = { time: times.at(-1)!, type: old.type, reason: old.reason, message: old.message, count: eventCount(old) + eventCount(event), firstTime: times[0]!, ...(revision ? { revision } : {}) };
  return [...events.slice(0, index), ...events.slice(index + 1), merged].slice(-MAX_EVENTS);
}

function parseEvents(text: string): ObjectEvent[] {
  const events: ObjectEvent[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const event = JSON.parse(line) as ObjectEvent;
      if (typeof event.reason === "string" && typeof event.time === "string") events.push(event);
    } catch {
      // a torn or hand-edited line costs only that event
    }
  }
  return events.slice(-MAX_EVENTS);
}

export async function readEvents(dataDir: string, key: string): Promise<ObjectEvent[]> {
  let text: string;
  try {
    // Read synchronously (a few KB): the controller records an event in most reconciles, and on
    // cores busy with guests every hop through libuv's thread pool waits for a CPU.
    text = fs.readFileSync(eventsFile(dataDir, key), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  return parseEvents(text);
}

/** Every object's events (`kvmctl events`): key → events, oldest first; files that are not an object's are skipped. */
export async function readAllEvents(dataDir: string): Promise<Map<string, ObjectEvent[]>> {
  let names: string[];
  try {
    names = await fs.promises.readdir(path.join(dataDir, "events"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return new Map();
    throw error;
  }
  const all = new Map<string, ObjectEvent[]>();
  for (const name of names.sort()) {
    const key = name.endsWith(".jsonl") ? keyOfFileStem(name.slice(0, -".jsonl".length)) : undefined;
    if (!key) continue;
    const events = await readEvents(dataDir, key).catch(() => []);
    if (events.length) all.set(key, events);
  }
  return all;
}

export async function recordEvent(writer: FileWriter, dataDir: string, key: string, event: ObjectEvent): Promise<void> {
  const file = eventsFile(dataDir, key);
  await writer.run(file, async () => {
    ensureDataDir(path.dirname(dataDir), "events");
    const events = aggregateEvent(await readEvents(dataDir, key), event);
    await writer.write(file, events.map((e) => JSON.stringify(e)).join("\n") + "\n", {});
  });
}

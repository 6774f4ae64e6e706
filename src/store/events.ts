// Recent events per object (what `kvmctl describe` shows), kept in
// `<stateRoot>/.kvmctl/events/<Kind>-<name>.jsonl`, trimmed to the last 50.
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

/** The events file of a key. */
export function eventsFile(dataDir: string, key: string): string {
  return path.join(dataDir, "events", `${keyFileStem(key)}.jsonl`);
}

export async function readEvents(dataDir: string, key: string): Promise<ObjectEvent[]> {
  let text: string;
  try {
    text = await fs.promises.readFile(eventsFile(dataDir, key), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
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

export async function recordEvent(writer: FileWriter, dataDir: string, key: string, event: ObjectEvent): Promise<void> {
  const file = eventsFile(dataDir, key);
  await writer.run(file, async () => {
    ensureDataDir(path.dirname(dataDir), "events");
    const events = [...(await readEvents(dataDir, key)), event].slice(-MAX_EVENTS);
    await writer.write(file, events.map((e) => JSON.stringify(e)).join("\n") + "\n", {});
  });
}

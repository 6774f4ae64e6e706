// Objects whose manifest is gone but whose libvirt object is kept for now: a pool that still
// holds volumes, a network that running guests use. Kubernetes shows such an object as
// Terminating, with a condition saying why, until its finalizer lets go; kvmctl keeps that
// record in `<stateRoot>/.kvmctl/terminating/<Kind>-<name>.json` so `get`, `describe` and
// `wait --for=delete` can show it. The controller removes it once the object is gone or its
// manifest is back.
import fs from "node:fs";
import path from "node:path";
import type { Condition } from "../api/common.js";
import { isKindName } from "../api/kind-names.js";
import { ensureDataDir } from "./disk-cache.js";
import { keyFileStem } from "./events.js";
import type { FileWriter } from "./file-writer.js";

export interface TerminatingRecord {
  kind: string;
  name: string;
  /** When the manifest was found gone (RFC 3339). */
  since: string;
  phase: string;
  /** kstatus conditions, as a status block would hold them: Ready=False with the reason. */
  conditions: Condition[];
}

function recordFile(dataDir: string, key: string): string {
  return path.join(dataDir, "terminating", `${keyFileStem(key)}.json`);
}

// Checked by hand, not with zod: `kvmctl get` reads these records, and zod would cost every
// CLI start whose manifests are all in the parse cache.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const isString = (value: unknown): value is string => typeof value === "string";
const CONDITION_FIELDS = ["type", "status", "reason", "message", "lastTransitionTime"] as const;

function isRecord(value: unknown): value is TerminatingRecord {
  if (!value || typeof value !== "object" || Array.isArray(value)) return false;
  const r = value as Record<string, unknown>;
  return (
    isKindName(r.kind) &&
    isString(r.name) &&
    DNS_LABEL.test(r.name) &&
    isString(r.since) &&
    isString(r.phase) &&
    Array.isArray(r.conditions) &&
    r.conditions.every((c) => c && typeof c === "object" && CONDITION_FIELDS.every((f) => isString((c as Record<string, unknown>)[f])))
  );
}

/**
 * The record of `key`, or undefined when there is none — or when it is not one kvmctl wrote
 * for that key (torn, edited by hand, another key's): such a file never becomes a key.
 */
export async function readTerminating(dataDir: string, key: string): Promise<TerminatingRecord | undefined> {
  let raw: unknown;
  try {
    raw = JSON.parse(await fs.promises.readFile(recordFile(dataDir, key), "utf8"));
  } catch {
    return undefined; // missing, or not JSON
  }
  return isRecord(raw) && `${raw.kind}/${raw.name}` === key ? raw : undefined;
}

export async function listTerminating(dataDir: string): Promise<TerminatingRecord[]> {
  let names: string[];
  try {
    names = await fs.promises.readdir(path.join(dataDir, "terminating"));
  } catch {
    return [];
  }
  const records: TerminatingRecord[] = [];
  for (const file of names.filter((n) => n.endsWith(".json")).sort()) {
    const match = /^([A-Za-z]+)-(.+)\.json$/.exec(file);
    const record = match ? await readTerminating(dataDir, `${match[1]}/${match[2]}`) : undefined;
    if (record) records.push(record);
  }
  return records;
}

/**
 * Writes the record (keeping `since` and the transition time while the reason stays), or
 * removes it. Returns whether anything changed.
 */
export async function setTerminating(writer: FileWriter, dataDir: string, key: string, state: { phase: string; reason: string; message: string } | undefined): Promise<boolean> {
  const file = recordFile(dataDir, key);
  return writer.run(file, async () => {
    const previous = await readTerminating(dataDir, key);
    if (!state) {
      if (!previous && !fs.existsSync(file)) return false;
      await writer.remove(file, {});
      return true;
    }
    const now = new Date().toISOString();
    const [kind, name] = key.split("/") as [string, string];
    const kept = previous?.conditions[0]?.reason === state.reason ? previous.conditions[0].lastTransitionTime : now;
    const record: TerminatingRecord = {
      kind,
      name,
      since: previous?.since ?? now,
      phase: state.phase,
      conditions: [{ type: "Ready", status: "False", reason: state.reason, message: state.message, lastTransitionTime: kept }],
    };
    if (JSON.stringify(record) === JSON.stringify(previous)) return false;
    ensureDataDir(path.dirname(dataDir), "terminating");
    await writer.write(file, JSON.stringify(record, null, 2) + "\n", {});
    return true;
  });
}

// The columns `kvmctl get` prints per kind (`-o wide` adds the second set).
import { formatBytes, formatBytesApprox } from "../api/quantity.js";
import type { KindName } from "../api/kind-names.js";
import type { StoredObject } from "../store/index.js";
import { formatAge } from "./duration.js";

interface ConditionLike {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}
type Status = Record<string, unknown> & { conditions?: ConditionLike[]; phase?: string };

export interface Columns {
  headers: string[];
  wideHeaders: string[];
  row(stored: StoredObject, now: number): { cells: string[]; wide: string[] };
}

function statusOf(stored: StoredObject): Status {
  return ((stored.object as { status?: Status }).status ?? {}) as Status;
}

export function conditionOf(stored: StoredObject, type: string): ConditionLike | undefined {
  return statusOf(stored).conditions?.find((c) => c.type === type);
}

/** READY as kubectl-for-Flux prints it; "Unknown" until the controller has written status. */
function ready(stored: StoredObject): string {
  return conditionOf(stored, "Ready")?.status ?? "Unknown";
}

/** Why it is (not) ready, with a hint when the status describes an older spec. */
function reason(stored: StoredObject): string {
  const status = statusOf(stored);
  const observed = typeof status.observedGeneration === "number" ? status.observedGeneration : undefined;
  const stale = observed !== undefined && observed < stored.generation;
  const condition = conditionOf(stored, "Stalled") ?? conditionOf(stored, "Ready");
  const text = condition ? `${condition.reason ?? ""}${condition.message ? `: ${condition.message}` : ""}`.replace(/\s+/g, " ") : "";
  return stale ? `(stale: generation ${stored.generation}) ${text}`.trim() : text;
}

const dash = (value: unknown): string => (value === undefined || value === null || value === "" ? "-" : String(value));

const spec = (stored: StoredObject): Record<string, unknown> => (stored.object as { spec: Record<string, unknown> }).spec;

export const COLUMNS: Record<KindName, Columns> = {
  VirtualMachine: {
    headers: ["NAME", "READY", "STATUS", "CPUS", "MEMORY", "AGE"],
    wideHeaders: ["RUNSTRATEGY", "DOMAIN", "SSH", "MESSAGE"],
    row(stored, now) {
      const s = spec(stored);
      const status = statusOf(stored);
      const ssh = status.ssh as { host: string; port: number } | undefined;
      const domain = status.domain as { state?: string } | undefined;
      return {
        cells: [stored.name, ready(stored), dash(status.phase ?? "Pending"), dash(s.cpus), formatBytes(Number(s.memory)), formatAge(stored.createdAt, now)],
        wide: [dash(s.runStrategy), dash(domain?.state), ssh ? `${ssh.host}:${ssh.port}` : "-", dash(reason(stored))],
      };
    },
  },
  Network: {
    headers: ["NAME", "READY", "MODE", "BRIDGE", "SUBNET", "AGE"],
    wideHeaders: ["ACTIVE", "LEASES", "MESSAGE"],
    row(stored, now) {
      const s = spec(stored);
      const status = statusOf(stored);
      const ipv4 = s.ipv4 as { address: string; prefix: number } | undefined;
      const leases = status.leases as unknown[] | undefined;
      return {
        cells: [stored.name, ready(stored), dash(s.mode), dash(status.bridge ?? s.bridge), ipv4 ? `${ipv4.address}/${ipv4.prefix}` : "-", formatAge(stored.createdAt, now)],
        wide: [dash(status.active), leases ? String(leases.length) : "-", dash(reason(stored))],
      };
    },
  },
  StoragePool: {
    headers: ["NAME", "READY", "PHASE", "TYPE", "TARGET", "AGE"],
    wideHeaders: ["CAPACITY", "AVAILABLE", "VOLUMES", "MESSAGE"],
    row(stored, now) {
      const s = spec(stored);
      const status = statusOf(stored);
      const target = s.type === "logical" ? `vg:${String(s.volumeGroup)}` : dash(s.path);
      const bytes = (v: unknown) => (typeof v === "number" ? formatBytesApprox(v) : "-");
      return {
        cells: [stored.name, ready(stored), dash(status.phase), dash(s.type), target, formatAge(stored.createdAt, now)],
        wide: [bytes(status.capacity), bytes(status.available), dash(status.volumes), dash(reason(stored))],
      };
    },
  },
};

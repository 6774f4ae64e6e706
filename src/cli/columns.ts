// The columns `kvmctl get` prints per kind (`-o wide` adds the wide ones), and the CRD's
// printer columns (scripts/crds.ts) from the same list. A kind without columns here does not
// compile. Every table is NAME, READY, the kind's own columns, AGE; -o wide adds the kind's
// wide columns, REVISION and MESSAGE.
import type { Condition } from "../api/common.js";
import type { KindName } from "../api/kind-names.js";
import { formatBytes, formatBytesApprox } from "../api/quantity.js";
import type { StoredObject } from "../store/index.js";
import { shortRevision } from "../gitops/revision.js";
import { formatAge } from "./duration.js";

export interface Column {
  header: string;
  /** Shown only with -o wide (a printer column of priority 1). */
  wide?: boolean;
  /** As a CRD printer column: its name, type and the field it shows (absent: computed, not in the CRD). */
  printer?: { name: string; type: "string" | "integer" | "date"; jsonPath: string };
  cell(stored: StoredObject, now: number): string;
}

type Status = Record<string, unknown> & { conditions?: Condition[]; phase?: string };

function statusOf(stored: StoredObject): Status {
  return ((stored.object as { status?: Status }).status ?? {}) as Status;
}

export function conditionOf(stored: StoredObject, type: string): Condition | undefined {
  return statusOf(stored).conditions?.find((c) => c.type === type);
}

/** Why it is (not) ready, with a hint when the status describes an older spec. */
function reason(stored: StoredObject): string {
  const status = statusOf(stored);
  const observed = typeof status.observedGeneration === "number" ? status.observedGeneration : undefined;
  const stale = observed !== undefined && observed < stored.generation;
  const condition = conditionOf(stored, "Stalled") ?? conditionOf(stored, "Ready");
  const text = condition ? `${condition.reason ?? ""}${condition.message ? `: ${condition.message}` : ""}`.replace(/\s+/g, " ") : "";
  const suspended = status.suspended as { by?: string } | undefined;
  const prefix = `${suspended ? `(suspended by ${suspended.by ?? "kvmctl suspend"}) ` : ""}${stale ? `(stale: generation ${stored.generation}) ` : ""}`;
  return `${prefix}${text}`.trim();
}

const dash = (value: unknown): string => (value === undefined || value === null || value === "" ? "-" : String(value));
const spec = (stored: StoredObject): Record<string, unknown> => (stored.object as { spec: Record<string, unknown> }).spec;
const bytes = (v: unknown) => (typeof v === "number" ? formatBytesApprox(v) : "-");

export const NAME: Column = { header: "NAME", cell: (stored) => stored.name };
/** READY as kubectl-for-Flux prints it; "Unknown" until the controller has written status. */
export const READY: Column = { header: "READY", printer: { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' }, cell: (stored) => conditionOf(stored, "Ready")?.status ?? "Unknown" };
export const AGE: Column = { header: "AGE", printer: { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" }, cell: (stored, now) => formatAge(stored.createdAt, now) };
/** The git revision the object was last applied at (directories in a git checkout), shortened. */
export const REVISION: Column = {
  header: "REVISION",
  wide: true,
  printer: { name: "Revision", type: "string", jsonPath: ".status.lastAppliedRevision" },
  cell: (stored) => {
    const revision = statusOf(stored).lastAppliedRevision;
    return typeof revision === "string" ? shortRevision(revision) : "-";
  },
};
export const MESSAGE: Column = { header: "MESSAGE", wide: true, cell: (stored) => dash(reason(stored)) };

/** Each kind's own columns, between READY and AGE (and, wide ones, before MESSAGE). */
export const KIND_COLUMNS: Record<KindName, Column[]> = {
  VirtualMachine: [
    { header: "STATUS", printer: { name: "Status", type: "string", jsonPath: ".status.phase" }, cell: (s) => dash(statusOf(s).phase ?? "Pending") },
    { header: "CPUS", printer: { name: "CPUs", type: "integer", jsonPath: ".spec.cpus" }, cell: (s) => dash(spec(s).cpus) },
    { header: "MEMORY", printer: { name: "Memory", type: "string", jsonPath: ".spec.memory" }, cell: (s) => formatBytes(Number(spec(s).memory)) },
    { header: "RUNSTRATEGY", wide: true, cell: (s) => dash(spec(s).runStrategy) },
    { header: "DOMAIN", wide: true, cell: (s) => dash((statusOf(s).domain as { state?: string } | undefined)?.state) },
    {
      header: "SSH",
      wide: true,
      cell: (s) => {
        const ssh = statusOf(s).ssh as { host: string; port: number } | undefined;
        return ssh ? `${ssh.host}:${ssh.port}` : "-";
      },
    },
  ],
  Network: [
    { header: "MODE", printer: { name: "Mode", type: "string", jsonPath: ".spec.mode" }, cell: (s) => dash(spec(s).mode) },
    { header: "BRIDGE", printer: { name: "Bridge", type: "string", jsonPath: ".status.bridge" }, cell: (s) => dash(statusOf(s).bridge ?? spec(s).bridge) },
    {
      header: "SUBNET",
      cell: (s) => {
        const ipv4 = spec(s).ipv4 as { address: string; prefix: number } | undefined;
        return ipv4 ? `${ipv4.address}/${ipv4.prefix}` : "-";
      },
    },
    { header: "ACTIVE", wide: true, cell: (s) => dash(statusOf(s).active) },
    {
      header: "LEASES",
      wide: true,
      cell: (s) => {
        const leases = statusOf(s).leases as unknown[] | undefined;
        return leases ? String(leases.length) : "-";
      },
    },
  ],
  StoragePool: [
    { header: "PHASE", printer: { name: "Phase", type: "string", jsonPath: ".status.phase" }, cell: (s) => dash(statusOf(s).phase) },
    { header: "TYPE", printer: { name: "Type", type: "string", jsonPath: ".spec.type" }, cell: (s) => dash(spec(s).type) },
    { header: "TARGET", printer: { name: "Path", type: "string", jsonPath: ".status.path" }, cell: (s) => (spec(s).type === "logical" ? `vg:${String(spec(s).volumeGroup)}` : dash(spec(s).path)) },
    { header: "CAPACITY", wide: true, cell: (s) => bytes(statusOf(s).capacity) },
    { header: "AVAILABLE", wide: true, cell: (s) => bytes(statusOf(s).available) },
    { header: "VOLUMES", wide: true, cell: (s) => dash(statusOf(s).volumes) },
  ],
};

/** A kind's whole table: NAME, READY, its columns, AGE; then its wide columns and MESSAGE. */
export function columnsOf(kind: KindName): { columns: Column[]; wideColumns: Column[] } {
  const own = KIND_COLUMNS[kind] ?? [];
  return { columns: [NAME, READY, ...own.filter((c) => !c.wide), AGE], wideColumns: [...own.filter((c) => c.wide), REVISION, MESSAGE] };
}

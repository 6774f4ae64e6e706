// Turns per-file results into one Snapshot: finds duplicates, applies cross-object checks,
// merges status (from the manifests or the status directory) and derives generation.
import type { KvmObject } from "../api/index.js";
import { hasErrors, type DocumentEntry, type FileEntry } from "./entries.js";
import { compareProblems, fileProblem } from "./problems.js";
import type { ScanProblem } from "./scan.js";
import type { ManifestProblem, Snapshot, StoredObject } from "./types.js";

/** A valid, unique document that takes part in cross-object checks. */
export interface Candidate {
  key: string;
  file: string;
  entry: DocumentEntry;
  object: KvmObject;
}

export interface AssembleInput {
  files: FileEntry[];
  /** Birth (or modification) time of each file, for createdAt. */
  fileTimes: Map<string, Date>;
  /** Status by key from the status directory; when given, statuses inside manifests are ignored. */
  statusOverlay?: Map<string, Record<string, unknown>>;
  /** Problems of the status directory (warnings). */
  statusProblems?: ManifestProblem[];
  scanProblems: ScanProblem[];
  /** Keys a file held at its last good read, for unreadable files. */
  lastKnownKeys: (rel: string) => string[];
  /** Cross-object findings for the candidates, as located problems carrying `key`. */
  crossCheck: (candidates: Candidate[]) => Promise<ManifestProblem[]>;
}

export async function assembleSnapshot(input: AssembleInput): Promise<Snapshot> {
  const problems: ManifestProblem[] = [];
  const invalid = new Map<string, ManifestProblem[]>();
  const unreadableFiles: Snapshot["unreadableFiles"] = new Map();
  const addInvalid = (key: string, list: ManifestProblem[]) => invalid.set(key, [...(invalid.get(key) ?? []), ...list]);

  for (const scan of input.scanProblems) {
    const problem = fileProblem(scan.rel, scan.message);
    if (scan.warning) {
      problems.push({ ...problem, severity: "warning" });
      continue;
    }
    problems.push(problem);
    unreadableFiles.set(scan.rel, { problems: [problem], lastKnownKeys: input.lastKnownKeys(scan.directory ? `${scan.rel}/` : scan.rel) });
  }

  // Every document that names an object, by key, to find duplicates (valid or not).
  const byKey = new Map<string, { file: string; entry: DocumentEntry }[]>();
  for (const file of input.files) {
    if (file.unreadable) {
      problems.push(...file.unreadable);
      unreadableFiles.set(file.rel, { problems: file.unreadable, lastKnownKeys: input.lastKnownKeys(file.rel) });
      continue;
    }
    for (const entry of file.documents) {
      problems.push(...entry.problems);
      if (entry.key) byKey.set(entry.key, [...(byKey.get(entry.key) ?? []), { file: file.rel, entry }]);
    }
  }

  const candidates: Candidate[] = [];
  for (const [key, places] of byKey) {
    if (places.length > 1) {
      for (const place of places) {
        const others = places.filter((p) => p !== place).map((p) => `${p.file} document ${p.entry.index}`);
        const problem: ManifestProblem = {
          location: { file: place.file, document: place.entry.index, line: place.entry.nameLine ?? place.entry.line, column: place.entry.nameColumn ?? place.entry.column },
          path: ["metadata", "name"],
          key,
          message: `${key} is defined more than once (also in ${others.join(", ")}); each object must be defined once`,
        };
        problems.push(problem);
        addInvalid(key, [problem]);
      }
      continue;
    }
    const { file, entry } = places[0]!;
    if (hasErrors(entry) || !entry.object) addInvalid(key, entry.problems.filter((p) => p.severity !== "warning"));
    else candidates.push({ key, file, entry, object: entry.object });
  }

  const conflicts = await input.crossCheck(candidates);
  problems.push(...conflicts);
  for (const problem of conflicts) if (problem.key) addInvalid(problem.key, [problem]);
  if (input.statusProblems) problems.push(...input.statusProblems);

  const objects = new Map<string, StoredObject>();
  for (const candidate of candidates) {
    if (invalid.has(candidate.key)) continue;
    objects.set(candidate.key, storedObject(candidate, input));
  }
  problems.sort(compareProblems);
  return { objects, invalid, unreadableFiles, problems };
}

function storedObject({ key, file, entry, object }: Candidate, input: AssembleInput): StoredObject {
  const status = input.statusOverlay ? input.statusOverlay.get(key) : entry.status;
  const hash = entry.specHash!;
  // kind and object agree by construction (validateDocument dispatched on the kind).
  return {
    key,
    kind: object.kind,
    name: object.metadata.name,
    object: (status ? { ...object, status } : object) as KvmObject,
    raw: entry.raw!,
    location: { file, document: entry.index, line: entry.line, column: entry.column },
    specHash: hash,
    generation: deriveGeneration(status, hash),
    createdAt: createdAt(status, input.fileTimes.get(file)),
  } as StoredObject;
}

/** See StoredObject.generation: nothing outside status is ever written, so generation is derived. */
export function deriveGeneration(status: Record<string, unknown> | undefined, specHash: string): number {
  const observed = status?.observedGeneration;
  if (typeof observed !== "number" || !Number.isInteger(observed) || observed < 0) return 1;
  if (status?.observedSpecHash === specHash) return Math.max(1, observed);
  return observed + 1;
}

function createdAt(status: Record<string, unknown> | undefined, fileTime: Date | undefined): Date {
  if (typeof status?.createdAt === "string") {
    const recorded = new Date(status.createdAt);
    if (!Number.isNaN(recorded.getTime())) return recorded;
  }
  return fileTime ?? new Date(0);
}

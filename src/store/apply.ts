// `kvmctl apply`: plans where each input document goes (update in place or a new file),
// validates the whole resulting set first, and only then writes. If anything is invalid,
// nothing is written.
import path from "node:path";
import { canonicalJson } from "../api/hash.js";
import { kindNames, validateObjectSet, type KvmObject } from "../api/index.js";
import { ManifestEditError } from "./errors.js";
import { appendDocument, locateInSource, replaceDocuments, type DocumentUpdate } from "./edit.js";
import type { FileWriter } from "./file-writer.js";
import { isError } from "./problems.js";
import type { ManifestReader } from "./reader.js";
import type { ApplyOutcome, ApplyResult, ManifestProblem, Snapshot, SourceDocument } from "./types.js";

export interface ApplyContext {
  dir: string;
  maxFileSize?: number;
  reader: ManifestReader;
  writer: FileWriter;
  read(): Promise<Snapshot>;
}

interface Planned {
  source: SourceDocument & { key: string; object: KvmObject; raw: Record<string, unknown> };
  outcome: ApplyOutcome;
}

export async function applyDocuments(ctx: ApplyContext, documents: SourceDocument[], options: { dryRun?: boolean } = {}): Promise<ApplyResult> {
  const problems: ManifestProblem[] = documents.flatMap((d) => d.problems.filter(isError));
  const fail = (list: ManifestProblem[]): ApplyResult => ({ ok: false, outcomes: [], problems: list });
  if (problems.length) return fail(problems);
  const sources = documents.filter((d): d is Planned["source"] => !!d.key && !!d.object && !!d.raw);

  const seenKeys = new Map<string, SourceDocument>();
  for (const source of sources) {
    const first = seenKeys.get(source.key);
    if (first) {
      const where = `${first.location.file} document ${first.location.document}`;
      problems.push(at(source, ["metadata", "name"], `${source.key} appears more than once in the input (also ${where})`));
    } else seenKeys.set(source.key, source);
  }
  if (problems.length) return fail(problems);

  const snapshot = await ctx.read();
  const planned: Planned[] = [];
  for (const source of sources) {
    const places = ctx.reader.placesOf(source.key);
    const unreadable = [...snapshot.unreadableFiles].find(([, u]) => u.lastKnownKeys.includes(source.key));
    if (places.length > 1) {
      const list = places.map((p) => `${p.file} document ${p.index}`).join(", ");
      problems.push(at(source, ["metadata", "name"], `${source.key} is defined more than once in the manifest directory (${list}); fix that first`));
      continue;
    }
    if (places.length === 0 && unreadable) {
      problems.push(at(source, ["metadata", "name"], `${source.key} was last seen in ${unreadable[0]}, which cannot be read now; fix that file first`));
      continue;
    }
    if (places.length === 1) {
      const existing = snapshot.objects.get(source.key);
      const same = existing !== undefined && existing.location.file === places[0]!.file && canonicalJson(existing.raw) === canonicalJson(source.raw);
      planned.push({ source, outcome: { key: source.key, action: same ? "unchanged" : "configured", file: places[0]!.file } });
    } else {
      const file = `${kindNames(source.object.kind).plural}/${source.object.metadata.name}.yaml`;
      const blocked = snapshot.unreadableFiles.get(file);
      if (blocked) problems.push(at(source, ["metadata", "name"], `would go to ${file}, which cannot be read now: ${blocked.problems[0]?.message ?? ""}`));
      planned.push({ source, outcome: { key: source.key, action: "created", file } });
    }
  }
  if (problems.length) return fail(problems);

  // The set as it would be: everything in the directory, with the applied objects replacing theirs.
  const applied = new Set(planned.map((p) => p.source.key));
  const others = ctx.reader.schemaValidObjects().filter((o) => !applied.has(o.key));
  const issues = validateObjectSet([...others.map((o) => o.object), ...planned.map((p) => p.source.object)]);
  for (const issue of issues) {
    const plan = planned.find((p) => p.source.key === issue.key);
    if (plan) problems.push(at(plan.source, issue.path, issue.message));
  }
  if (problems.length) return fail(problems);

  const outcomes = planned.map((p) => p.outcome);
  if (options.dryRun) return { ok: true, outcomes, problems: [] };
  await writePlan(ctx, planned.filter((p) => p.outcome.action !== "unchanged"));
  return { ok: true, outcomes, problems: [] };
}

function at(source: SourceDocument, fieldPath: (string | number)[], message: string): ManifestProblem {
  const pos = locateInSource(source, fieldPath);
  const problem: ManifestProblem = { location: { ...source.location, line: pos.line, column: pos.column }, path: fieldPath, message };
  if (source.key) problem.key = source.key;
  return problem;
}

async function writePlan(ctx: ApplyContext, plan: Planned[]): Promise<void> {
  const byFile = new Map<string, Planned[]>();
  for (const p of plan) byFile.set(p.outcome.file, [...(byFile.get(p.outcome.file) ?? []), p]);
  for (const [rel, items] of byFile) {
    const abs = path.join(ctx.dir, ...rel.split("/"));
    const updates: DocumentUpdate[] = items
      .filter((p) => p.outcome.action === "configured")
      .map((p) => ({ key: p.source.key, text: p.source.text, raw: p.source.raw }));
    const created = items.filter((i) => i.outcome.action === "created");
    // Written only over the version read: a status write (or anything else) landing meanwhile
    // makes the edit run again on the newer text, so neither side is lost.
    await ctx.writer.run(abs, () =>
      ctx.writer.update(abs, (current) => {
        if (current.unreadable) throw new ManifestEditError(`${rel}: cannot update: ${current.unreadable}`);
        let text = current.text;
        try {
          if (updates.length) {
            if (text === undefined) throw new ManifestEditError(`the file disappeared`);
            text = replaceDocuments(text, updates);
          }
          for (const p of created) text = appendDocument(text, p.source.text, p.source.raw);
        } catch (error) {
          throw new ManifestEditError(`${rel}: ${error instanceof Error ? error.message : String(error)}`);
        }
        return { write: text!, result: undefined };
      }),
    );
  }
}

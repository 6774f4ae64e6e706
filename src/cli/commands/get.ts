// `kvmctl get KIND [NAME...]`: list objects from the manifest directory with their status.
import { API_VERSION, kindChoicesText, kindNames, resolveKind, type KindName } from "../../api/kind-names.js";
import type { Snapshot, StoredObject, TerminatingRecord } from "../../store/index.js";
import { formatAge } from "../duration.js";
import { columnsOf } from "../columns.js";
import type { CliContext } from "../context.js";
import { CliError, UsageError } from "../errors.js";
import { documentOf, OUTPUT_FORMATS, renderDocuments, renderTable, type OutputFormat } from "../output.js";
import { printProblems } from "../problems.js";

export interface GetOptions {
  output: string;
}

export function parseOutputFormat(value: string): OutputFormat {
  if (!(OUTPUT_FORMATS as readonly string[]).includes(value)) {
    throw new UsageError(`--output: unknown format "${value}" (expected one of ${OUTPUT_FORMATS.join(", ")})`);
  }
  return value as OutputFormat;
}

/** A kept object as `-o yaml|json` shows it: no spec (the manifest is gone), its status. */
function terminatingDocument(record: TerminatingRecord): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind: record.kind,
    metadata: { name: record.name, deletionTimestamp: record.since },
    status: { phase: record.phase, conditions: record.conditions },
  };
}

export function kindsFor(alias: string): KindName[] {
  const kinds = resolveKind(alias);
  if (!kinds) {
    throw new UsageError(`unknown kind "${alias}" (expected ${kindChoicesText()}, or all)`);
  }
  return kinds;
}

/** Objects of `kind` named `names` (all when empty); missing names are errors. */
export function select(snapshot: Snapshot, kind: KindName, names: string[]): { found: StoredObject[]; missing: string[] } {
  const all = [...snapshot.objects.values()].filter((o) => o.kind === kind).sort((a, b) => a.name.localeCompare(b.name));
  if (names.length === 0) return { found: all, missing: [] };
  const found: StoredObject[] = [];
  const missing: string[] = [];
  for (const name of names) {
    const object = snapshot.objects.get(`${kind}/${name}`);
    if (object) found.push(object);
    else missing.push(name);
  }
  return { found, missing };
}

export async function runGet(ctx: CliContext, kindArg: string, names: string[], options: GetOptions): Promise<void> {
  const format = parseOutputFormat(options.output);
  const kinds = kindsFor(kindArg);
  if (kinds.length > 1 && names.length > 0) throw new UsageError(`a name cannot be given with "all"`);
  const store = await ctx.openStore();
  const snapshot = await store.read();
  // Problems elsewhere in the directory do not stop `get`, but the user hears of them.
  printProblems(snapshot.problems);

  // Objects whose manifest is gone but which the controller keeps in libvirt for now.
  const terminating = new Map((await store.listTerminating()).map((r) => [`${r.kind}/${r.name}`, r]));
  const now = Date.now();
  const out: string[] = [];
  const documents: Record<string, unknown>[] = [];
  const missingErrors: string[] = [];
  for (const kind of kinds) {
    const { found, missing } = select(snapshot, kind, names);
    const invalid = [...snapshot.invalid.keys()].filter((key) => key.startsWith(`${kind}/`)).map((key) => key.slice(kind.length + 1));
    const kept = (names.length ? missing : [...terminating.values()].filter((r) => r.kind === kind).map((r) => r.name))
      .map((name) => terminating.get(`${kind}/${name}`))
      .filter((r): r is TerminatingRecord => r !== undefined && !snapshot.objects.has(`${kind}/${r.name}`) && !invalid.includes(r.name));
    for (const name of missing) {
      if (invalid.includes(name)) missingErrors.push(`${kindNames(kind).plural} "${name}" is invalid (see the errors above)`);
      else if (!terminating.has(`${kind}/${name}`)) missingErrors.push(`${kindNames(kind).plural} "${name}" not found in ${store.dir}`);
    }
    if (format === "yaml" || format === "json") {
      documents.push(...found.map(documentOf), ...kept.map(terminatingDocument));
    } else if (format === "name") {
      out.push(...[...found, ...kept].map((o) => `${kindNames(kind).singular}/${o.name}\n`));
    } else {
      const { columns, wideColumns } = columnsOf(kind);
      const wide = format === "wide";
      const shown = wide ? [...columns, ...wideColumns] : columns;
      const rows = found.map((o) => shown.map((column) => column.cell(o, now)));
      // Invalid objects are listed too, so nothing in the directory is silently hidden.
      if (names.length === 0) {
        for (const name of invalid.sort()) rows.push([name, "False", "Invalid", ...Array<string>(shown.length - 3).fill("-")]);
      }
      // Kept objects too, as kubectl lists a Terminating one: the reason is in MESSAGE (-o wide) and describe.
      for (const record of kept) {
        const cells = [record.name, "False", record.phase, ...Array<string>(columns.length - 4).fill("-"), formatAge(new Date(record.since), now)];
        rows.push(wide ? [...cells, ...Array<string>(wideColumns.length - 1).fill("-"), record.conditions[0]?.message ?? ""] : cells);
      }
      if (rows.length === 0) continue;
      const headers = shown.map((column) => column.header);
      if (kinds.length > 1) {
        // `get all` prefixes names with the kind, as kubectl does.
        for (const row of rows) row[0] = `${kindNames(kind).singular}/${row[0]}`;
      }
      out.push(renderTable(headers, rows));
    }
  }
  if (format === "yaml" || format === "json") {
    const single = names.length === 1 && kinds.length === 1;
    if (documents.length > 0 || !single) out.push(await renderDocuments(documents, format, single));
  } else if ((format === "table" || format === "wide") && out.length === 0 && missingErrors.length === 0) {
    process.stderr.write(`No resources found in ${store.dir}.\n`);
  }
  process.stdout.write(out.join(kinds.length > 1 && (format === "table" || format === "wide") ? "\n" : ""));
  if (missingErrors.length > 0) throw new CliError(missingErrors.join("\nerror: "));
}

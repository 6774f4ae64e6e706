// `kvmctl get KIND [NAME...]`: list objects from the manifest directory with their status.
import { API_VERSION, isKindName, kindChoicesText, kindNames, resolveKind, type KindName } from "../../api/kind-names.js";
import type { ManifestProblem, ManifestStore, Snapshot, StoredObject, TerminatingRecord } from "../../store/index.js";
import { formatProblem } from "../../store/index.js";
import { formatAge } from "../duration.js";
import { columnsOf } from "../columns.js";
import type { CliContext } from "../context.js";
import { CliError, UsageError } from "../errors.js";
import { documentOf, OUTPUT_FORMATS, renderDocuments, renderTable, type OutputFormat } from "../output.js";
import { printProblems, warnAboutSource } from "../problems.js";
import { compareText } from "../../api/text.js";

export interface GetOptions {
  output: string;
  /** -w: after the list, one line (or document) per change until SIGINT/SIGTERM. */
  watch?: boolean;
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

/**
 * An object known only from the last good read of a file (or directory) that cannot be read
 * now: the store keeps it (the controller leaves it alone), but its spec and status are unknown.
 */
export interface UnreadableObject {
  key: string;
  kind: KindName;
  name: string;
  /** The unreadable files or directories that held it at their last good read ("." is the manifest directory). */
  files: string[];
  problems: ManifestProblem[];
}

/**
 * Every object held by a file that cannot be read now (snapshot.unreadableFiles, from the keys
 * it held at its last good read), by key. An object also defined in a readable file, valid or
 * invalid, is that one and not listed here.
 */
export function unreadableObjects(snapshot: Snapshot): Map<string, UnreadableObject> {
  const found = new Map<string, UnreadableObject>();
  for (const [file, { problems, lastKnownKeys }] of snapshot.unreadableFiles) {
    for (const key of lastKnownKeys) {
      if (snapshot.objects.has(key) || snapshot.invalid.has(key)) continue;
      const slash = key.indexOf("/");
      const kind = key.slice(0, slash);
      if (!isKindName(kind)) continue;
      let entry = found.get(key);
      if (!entry) found.set(key, (entry = { key, kind, name: key.slice(slash + 1), files: [], problems: [] }));
      if (entry.files.includes(file)) continue;
      entry.files.push(file);
      entry.problems.push(...problems);
    }
  }
  return found;
}

/** Where an unreadable object was last seen, for messages: its files, "." named as the manifest directory `dir`. */
export function unreadablePlaces(object: UnreadableObject, dir: string): string {
  return object.files.map((file) => (file === "." ? dir : file)).join(", ");
}

/** Why an unreadable object cannot be shown: each problem as printed on stderr ("vms/web.yaml: ..."). */
export function unreadableMessage(object: UnreadableObject): string {
  return object.problems.map((p) => formatProblem(p).replace(/\s+/g, " ")).join("; ");
}

/** The condition an unreadable object is shown with: Ready=False, ManifestUnreadable. */
export function unreadableCondition(object: UnreadableObject): { type: "Ready"; status: "False"; reason: "ManifestUnreadable"; message: string } {
  return { type: "Ready", status: "False", reason: "ManifestUnreadable", message: unreadableMessage(object) };
}

/** An unreadable object as `-o yaml|json` shows it: no spec (it cannot be read), a Ready=False status saying why. */
function unreadableDocument(object: UnreadableObject): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind: object.kind,
    metadata: { name: object.name },
    status: { conditions: [unreadableCondition(object)] },
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
  const all = [...snapshot.objects.values()].filter((o) => o.kind === kind).sort((a, b) => compareText(a.name, b.name));
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

/** One row of a kind's table, with the object it shows. */
export interface GetRow {
  key: string;
  cells: string[];
}

/** What `get` shows for one read of the directory: per kind a table, or documents, or names. */
export interface GetView {
  tables: { kind: KindName; headers: string[]; rows: GetRow[] }[];
  documents: { key: string; document: Record<string, unknown> }[];
  names: { key: string; line: string }[];
  missingErrors: string[];
}

export async function getView(store: ManifestStore, snapshot: Snapshot, kinds: KindName[], names: string[], format: OutputFormat, now: number): Promise<GetView> {
  // Objects whose manifest is gone but which the controller keeps in libvirt for now.
  const terminating = new Map((await store.listTerminating()).map((r) => [`${r.kind}/${r.name}`, r]));
  // Objects whose file cannot be read now: listed from its last good read, never hidden.
  const unreadable = unreadableObjects(snapshot);
  const view: GetView = { tables: [], documents: [], names: [], missingErrors: [] };
  for (const kind of kinds) {
    const { found, missing } = select(snapshot, kind, names);
    const invalid = [...snapshot.invalid.keys()].filter((key) => key.startsWith(`${kind}/`)).map((key) => key.slice(kind.length + 1));
    // An object whose file cannot be read is shown as Unreadable (and exits 0 when named: it
    // exists, the problem is on stderr), not as a kept one: its manifest is still there.
    const unread = names.length
      ? missing.map((name) => unreadable.get(`${kind}/${name}`)).filter((u): u is UnreadableObject => u !== undefined)
      : [...unreadable.values()].filter((u) => u.kind === kind).sort((a, b) => compareText(a.name, b.name));
    const kept = (names.length ? missing : [...terminating.values()].filter((r) => r.kind === kind).map((r) => r.name))
      .map((name) => terminating.get(`${kind}/${name}`))
      .filter((r): r is TerminatingRecord => r !== undefined && !snapshot.objects.has(`${kind}/${r.name}`) && !invalid.includes(r.name) && !unreadable.has(`${kind}/${r.name}`));
    for (const name of missing) {
      if (invalid.includes(name)) view.missingErrors.push(`${kindNames(kind).plural} "${name}" is invalid (see the errors above)`);
      else if (!terminating.has(`${kind}/${name}`) && !unreadable.has(`${kind}/${name}`)) view.missingErrors.push(`${kindNames(kind).plural} "${name}" not found in ${store.dir}`);
    }
    const keyOf = (name: string) => `${kind}/${name}`;
    if (format === "yaml" || format === "json") {
      view.documents.push(
        ...found.map((o) => ({ key: o.key, document: documentOf(o) })),
        ...unread.map((u) => ({ key: u.key, document: unreadableDocument(u) })),
        ...kept.map((r) => ({ key: keyOf(r.name), document: terminatingDocument(r) })),
      );
    } else if (format === "name") {
      view.names.push(...[...found, ...unread, ...kept].map((o) => ({ key: keyOf(o.name), line: `${kindNames(kind).singular}/${o.name}\n` })));
    } else {
      const { columns, wideColumns } = columnsOf(kind);
      const wide = format === "wide";
      const shown = wide ? [...columns, ...wideColumns] : columns;
      const rows: GetRow[] = found.map((o) => ({ key: o.key, cells: shown.map((column) => column.cell(o, now)) }));
      // Invalid objects are listed too, so nothing in the directory is silently hidden.
      if (names.length === 0) {
        for (const name of invalid.sort()) rows.push({ key: keyOf(name), cells: [name, "False", "Invalid", ...Array<string>(shown.length - 3).fill("-")] });
      }
      // Unreadable ones as well, their problem in MESSAGE (-o wide): they are kept, not gone.
      for (const object of unread) {
        const cells = [object.name, "False", "Unreadable", ...Array<string>(columns.length - 3).fill("-")];
        rows.push({ key: object.key, cells: wide ? [...cells, ...Array<string>(wideColumns.length - 1).fill("-"), unreadableMessage(object)] : cells });
      }
      // Kept objects too, as kubectl lists a Terminating one: the reason is in MESSAGE (-o wide) and describe.
      for (const record of kept) {
        const cells = [record.name, "False", record.phase, ...Array<string>(columns.length - 4).fill("-"), formatAge(new Date(record.since), now)];
        rows.push({ key: keyOf(record.name), cells: wide ? [...cells, ...Array<string>(wideColumns.length - 1).fill("-"), record.conditions[0]?.message ?? ""] : cells });
      }
      if (kinds.length > 1) {
        // `get all` prefixes names with the kind, as kubectl does.
        for (const row of rows) row.cells[0] = `${kindNames(kind).singular}/${row.cells[0]}`;
      }
      view.tables.push({ kind, headers: shown.map((column) => column.header), rows });
    }
  }
  return view;
}

export async function runGet(ctx: CliContext, kindArg: string, names: string[], options: GetOptions): Promise<void> {
  const format = parseOutputFormat(options.output);
  const kinds = kindsFor(kindArg);
  if (kinds.length > 1 && names.length > 0) throw new UsageError(`a name cannot be given with "all"`);
  const store = await ctx.openStore("read");
  const snapshot = await store.read();
  warnAboutSource(store.dataDir);
  // Problems elsewhere in the directory do not stop `get`, but the user hears of them.
  printProblems(snapshot.problems);
  const view = await getView(store, snapshot, kinds, names, format, Date.now());
  if (options.watch) {
    // As kubectl: a name that is not there is an error, before anything is watched.
    if (view.missingErrors.length > 0) throw new CliError(view.missingErrors.join("\nerror: "));
    const { watchGet } = await import("./get-watch.js");
    return watchGet(store, snapshot, view, { kinds, names, format });
  }
  const out: string[] = [];
  if (format === "yaml" || format === "json") {
    const single = names.length === 1 && kinds.length === 1;
    if (view.documents.length > 0 || !single) out.push(await renderDocuments(view.documents.map((d) => d.document), format, single));
  } else if (format === "name") {
    out.push(...view.names.map((n) => n.line));
  } else {
    for (const table of view.tables) {
      if (table.rows.length > 0) out.push(renderTable(table.headers, table.rows.map((r) => r.cells)));
    }
    if (out.length === 0 && view.missingErrors.length === 0) process.stderr.write(`No resources found in ${store.dir}.\n`);
  }
  process.stdout.write(out.join(kinds.length > 1 && (format === "table" || format === "wide") ? "\n" : ""));
  if (view.missingErrors.length > 0) throw new CliError(view.missingErrors.join("\nerror: "));
}

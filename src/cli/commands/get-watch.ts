// `kvmctl get KIND [NAME...] -w`: the list, then one line per change, as `kubectl get -w`
// prints them: the same columns, the header not repeated, each line padded to the widths of
// the first table. A change is any rendered cell other than AGE changing (spec, status
// written by the controller, validity, readability, a kept object's record); an object that
// is gone is printed once more with its last state, as kubectl prints a DELETED watch event's
// object. With -o json|yaml every change prints the whole object as one document (YAML
// documents separated by ---), with -o name its name. Runs until SIGINT or SIGTERM (exit 0).
import type { KindName } from "../../api/kind-names.js";
import { formatProblem, isError, type ManifestProblem, type ManifestStore, type Snapshot } from "../../store/index.js";
import type { OutputFormat } from "../output.js";
import { watchLoop } from "../watch.js";
import { getView, type GetView } from "./get.js";

export interface WatchGetIo {
  out(text: string): void;
  err(text: string): void;
  now(): number;
  /** Stops watching (else SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** How often the directory is re-read without a file event (ms). */
  pollMs?: number;
}

const processIo = (): WatchGetIo => ({ out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), now: () => Date.now() });

/** What was last printed for an object: what a change is measured against, and what a deletion prints again. */
interface Shown {
  kind?: KindName;
  compare: string;
  text: string[] | string;
}

/** Lines padded to `widths` (a longer cell pushes the rest along; the last column is never padded). */
function line(cells: string[], widths: number[]): string {
  return (
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("   ")
      .trimEnd() + "\n"
  );
}

export async function watchGet(
  store: ManifestStore,
  firstSnapshot: Snapshot,
  first: GetView,
  query: { kinds: KindName[]; names: string[]; format: OutputFormat },
  io: WatchGetIo = processIo(),
): Promise<void> {
  const { kinds, names, format } = query;
  const { stringify } = await import("yaml");
  let documentsPrinted = 0;
  const renderDocument = (document: Record<string, unknown>): string => {
    if (format === "json") return JSON.stringify(document, null, 2) + "\n";
    return (documentsPrinted++ > 0 ? "---\n" : "") + stringify(document, { lineWidth: 0 });
  };
  // Per kind: its header and the widths its lines are padded to (from the first table it printed).
  const tables = new Map<KindName, { headers: string[]; widths: number[] | undefined }>();
  const shown = new Map<string, Shown>();

  const compareCells = (kind: KindName, cells: string[]): string => {
    const age = tables.get(kind)?.headers.indexOf("AGE") ?? -1;
    return JSON.stringify(cells.filter((_, i) => i !== age));
  };

  /** The rows, documents or names of `view` as [key, what to print, what a change is measured by]. */
  const entries = (view: GetView): { key: string; shown: Shown }[] => {
    if (format === "yaml" || format === "json") {
      return view.documents.map(({ key, document }) => ({ key, shown: { compare: JSON.stringify(document), text: JSON.stringify(document) } }));
    }
    if (format === "name") return view.names.map(({ key, line: text }) => ({ key, shown: { compare: text, text } }));
    return view.tables.flatMap((table) => {
      if (!tables.has(table.kind)) tables.set(table.kind, { headers: table.headers, widths: undefined });
      return table.rows.map((row) => ({ key: row.key, shown: { kind: table.kind, compare: compareCells(table.kind, row.cells), text: row.cells } }));
    });
  };

  /** Prints one entry: a row (with its kind's header first, the first time), a document or a name. */
  const print = (entry: Shown) => {
    if (typeof entry.text === "string") {
      io.out(format === "yaml" || format === "json" ? renderDocument(JSON.parse(entry.text) as Record<string, unknown>) : entry.text);
      return;
    }
    const table = tables.get(entry.kind!)!;
    if (!table.widths) {
      table.widths = table.headers.map((h, i) => Math.max(h.length, (entry.text as string[])[i]?.length ?? 0));
      io.out(line(table.headers, table.widths));
    }
    io.out(line(entry.text, table.widths));
  };

  // The first listing: each kind's table as `get` prints it (its widths kept for what follows).
  const initial = entries(first);
  if (format === "table" || format === "wide") {
    const blocks: string[] = [];
    for (const table of first.tables) {
      if (table.rows.length === 0) continue;
      const widths = table.headers.map((h, i) => Math.max(h.length, ...table.rows.map((r) => (r.cells[i] ?? "").length)));
      tables.set(table.kind, { headers: table.headers, widths });
      blocks.push([line(table.headers, widths), ...table.rows.map((r) => line(r.cells, widths))].join(""));
    }
    if (blocks.length) io.out(blocks.join(kinds.length > 1 ? "\n" : ""));
    else io.err(`No resources found in ${store.dir}.\n`);
  } else {
    for (const entry of initial) print(entry.shown);
  }
  for (const entry of initial) shown.set(entry.key, entry.shown);

  // Problems are printed when they first appear, not again on every change.
  const reported = new Set(firstSnapshot.problems.map((p) => formatProblem(p)));
  const reportNew = (problems: ManifestProblem[]) => {
    for (const problem of problems) {
      const text = formatProblem(problem);
      if (reported.has(text)) continue;
      reported.add(text);
      io.err(`${isError(problem) ? "error" : "warning"}: ${text}\n`);
    }
  };

  const dirs = [store.dir, ...(store.statusDir ? [store.statusDir] : [])];
  await watchLoop(
    { dirs, pollMs: io.pollMs, signal: io.signal, onError: (error) => io.err(`error: could not read ${store.dir}: ${error instanceof Error ? error.message : String(error)}\n`) },
    async () => {
      const snapshot = await store.read();
      reportNew(snapshot.problems);
      const view = await getView(store, snapshot, kinds, names, format, io.now());
      const current = entries(view);
      const present = new Set(current.map((e) => e.key));
      for (const entry of current) {
        if (shown.get(entry.key)?.compare === entry.shown.compare) continue;
        shown.set(entry.key, entry.shown);
        print(entry.shown);
      }
      // Gone (deleted, or no longer kept): its last state once more, as kubectl prints a deletion.
      for (const [key, last] of shown) {
        if (present.has(key)) continue;
        shown.delete(key);
        print(last);
      }
    },
  );
}

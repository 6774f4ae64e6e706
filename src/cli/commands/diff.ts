// `kvmctl diff -f FILE`: what applying would change. Exit 0 no changes, 1 changes, >1 error
// (DESIGN.md §3, like `kubectl diff`). The manifest part compares documents as data, so a
// comment or formatting edit is not a change.
import { kindNames } from "../../api/kind-names.js";
import type { SourceDocument, StoredObject } from "../../store/index.js";
import type { CliContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import { readInputs } from "../input.js";

export const EXIT_DIFF_ERROR = 2;

export interface DiffOptions {
  filename?: string[];
  live?: boolean;
}

/** Renders one object's manifest diff; empty when nothing changes. */
export async function manifestDiff(source: SourceDocument, stored: StoredObject | undefined): Promise<string> {
  const [{ stringify }, { createTwoFilesPatch }] = await Promise.all([import("yaml"), import("diff")]);
  const before = stored ? stringify(stored.raw, { lineWidth: 0, sortMapEntries: false }) : "";
  const after = stringify(source.raw ?? {}, { lineWidth: 0, sortMapEntries: false });
  if (before === after) return "";
  const { kind, name } = source.object ? { kind: source.object.kind, name: source.object.metadata.name } : { kind: undefined, name: "?" };
  const label = kind ? `${kindNames(kind).plural}/${name}` : name;
  return createTwoFilesPatch(stored ? `a/${label} (${stored.location.file})` : "/dev/null", `b/${label}`, before, after, "", "", { context: 3 });
}

export async function runDiff(ctx: CliContext, options: DiffOptions): Promise<void> {
  let changed = false;
  try {
    const documents = await readInputs(options.filename, true);
    const store = await ctx.openStore("read");
    const snapshot = await store.read();
    for (const source of documents) {
      if (!source.key) continue;
      const patch = await manifestDiff(source, snapshot.objects.get(source.key));
      if (patch) {
        changed = true;
        process.stdout.write(patch);
      }
    }
    if (options.live !== false) {
      const { liveDiff } = await import("../live-diff.js");
      const live = await liveDiff(ctx, documents);
      if (live) {
        changed = true;
        process.stdout.write(live);
      }
    }
  } catch (error) {
    // diff reserves exit 1 for "there are changes"; every failure is > 1.
    if (error instanceof CliError && error.exitCode === 1) throw new CliError(error.message, EXIT_DIFF_ERROR);
    throw error;
  }
  if (changed) throw new ExitCode(1);
}

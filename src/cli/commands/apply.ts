// `kvmctl apply -f FILE|DIR|-`: validate everything, then create or update objects in the
// manifest directory (status kept). Nothing is written when anything is invalid.
import { kindNames, parseObjectKey } from "../../api/kind-names.js";
import type { CliContext } from "../context.js";
import { parseDuration } from "../duration.js";
import { CliError } from "../errors.js";
import { readInputs } from "../input.js";
import { printProblems } from "../problems.js";
import { waitForCondition } from "./wait.js";

export interface ApplyOptions {
  filename?: string[];
  dryRun?: boolean;
  wait?: boolean;
  timeout: string;
}

export async function runApply(ctx: CliContext, options: ApplyOptions): Promise<void> {
  const timeoutMs = parseDuration(options.timeout, "--timeout");
  const documents = await readInputs(options.filename, true);
  const store = await ctx.openStore();
  const result = await store.applyDocuments(documents, { dryRun: options.dryRun });
  if (!result.ok) {
    printProblems(result.problems);
    throw new CliError(`no changes made to ${store.dir}`);
  }
  const suffix = options.dryRun ? " (dry run)" : "";
  for (const outcome of result.outcomes) {
    const { kind, name } = parseObjectKey(outcome.key);
    process.stdout.write(`${kindNames(kind).singular}/${name} ${outcome.action}${suffix}\n`);
  }
  if (options.wait && !options.dryRun) {
    // One line per object each time its phase or Ready condition changes (for the applied spec).
    const progress = (line: string) => process.stdout.write(`${line}\n`);
    await Promise.all(result.outcomes.map((o) => waitForCondition(ctx, o.key, "Ready", timeoutMs, "True", { progress })));
  }
}

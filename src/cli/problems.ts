// Printing manifest problems: one line each, naming file, document, line:column and field.
import type { ManifestProblem } from "../store/index.js";
import { formatProblem, isError } from "../store/index.js";
import { readSource, sourceWarning } from "../gitops/source.js";

export function printProblems(problems: ManifestProblem[], stream: NodeJS.WritableStream = process.stderr): void {
  for (const problem of problems) stream.write(`${isError(problem) ? "error" : "warning"}: ${formatProblem(problem)}\n`);
}

export function errorsIn(problems: ManifestProblem[]): ManifestProblem[] {
  return problems.filter(isError);
}

/** A failed git pull is a condition of the whole directory (.kvmctl/source.json): `get` and `describe` say it first. */
export function warnAboutSource(dataDir: string): void {
  const warning = sourceWarning(readSource(dataDir));
  if (warning) process.stderr.write(`warning: ${warning}\n`);
}

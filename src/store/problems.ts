// How manifest problems are built and printed. One format everywhere, so the CLI, the
// controller's log and the tests agree on what "file, document, line:column, field" looks like.
import { escapeText, quoteText } from "../api/text.js";
import type { FieldPath } from "../api/validate.js";
import type { ManifestProblem, SourceLocation } from "./types.js";

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** ["spec", "disks", 0, "size"] → "spec.disks[0].size"; odd keys are quoted: labels["app.kubernetes.io/name"]. */
export function formatFieldPath(path: FieldPath): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (IDENTIFIER.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${quoteText(segment, 64)}]`;
  }
  return out;
}

/** "vms/web1.yaml: document 1, line 7:5" (parts that are unknown are left out). */
export function formatLocation(location: SourceLocation): string {
  const parts: string[] = [];
  if (location.document > 0) parts.push(`document ${location.document}`);
  if (location.line !== undefined) parts.push(location.column !== undefined ? `line ${location.line}:${location.column}` : `line ${location.line}`);
  return parts.length ? `${location.file}: ${parts.join(", ")}` : location.file;
}

/** `vms/web1.yaml: document 1, line 7:5: spec.cpu: unknown field "cpu"; did you mean "cpus"?` */
export function formatProblem(problem: ManifestProblem): string {
  const field = problem.path && problem.path.length > 0 ? `${formatFieldPath(problem.path)}: ` : "";
  const warning = problem.severity === "warning" ? "warning: " : "";
  // Escaped as a whole: a file name or a message quoting a manifest cannot forge terminal output.
  return escapeText(`${formatLocation(problem.location)}: ${warning}${field}${problem.message}`);
}

export function isError(problem: ManifestProblem): boolean {
  return problem.severity !== "warning";
}

/** A problem with the file as a whole (document 0): unreadable, too large, a symlink loop. */
export function fileProblem(file: string, message: string): ManifestProblem {
  return { location: { file, document: 0 }, message };
}

/** Orders problems by file, document, line and column, for stable printing. */
export function compareProblems(a: ManifestProblem, b: ManifestProblem): number {
  const la = a.location;
  const lb = b.location;
  if (la.file !== lb.file) return la.file < lb.file ? -1 : 1;
  return la.document - lb.document || (la.line ?? 0) - (lb.line ?? 0) || (la.column ?? 0) - (lb.column ?? 0);
}

// `apply -f FILE|DIR`: reads input files with the same rules as the manifest directory
// (.yaml/.yml, dot-paths skipped, size limit, UTF-8) and parses them with positions.
import fs from "node:fs";
import path from "node:path";
import { parseManifestSource } from "./edit.js";
import { compareProblems, fileProblem } from "./problems.js";
import { readManifestText } from "./read-text.js";
import { scanManifestDir } from "./scan.js";
import type { ParsedSource } from "./types.js";

/** Reads a file or a directory of manifests. Problems name files as `target` joined with their relative path. */
export function readManifestInput(target: string, maxFileSize?: number): ParsedSource {
  const result: ParsedSource = { documents: [], problems: [] };
  let isDir: boolean;
  try {
    isDir = fs.statSync(target).isDirectory();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    result.problems.push(fileProblem(target, code === "ENOENT" ? "no such file or directory" : `cannot read: ${(error as Error).message}`));
    return result;
  }
  const files = isDir ? scanManifestDir(target) : { files: [{ rel: path.basename(target), abs: target }], problems: [] };
  const label = (rel: string) => (isDir ? path.join(target, rel) : target);
  for (const problem of files.problems) if (!problem.warning) result.problems.push(fileProblem(label(problem.rel), problem.message));
  for (const file of files.files) {
    const read = readManifestText(file.abs, maxFileSize);
    if (!read.ok) {
      const problem = fileProblem(label(file.rel), read.message);
      if (read.line !== undefined) Object.assign(problem.location, { document: read.document ?? 0, line: read.line, column: read.column });
      result.problems.push(problem);
      continue;
    }
    const parsed = parseManifestSource(read.text, label(file.rel));
    result.documents.push(...parsed.documents);
    result.problems.push(...parsed.problems);
  }
  result.problems.sort(compareProblems);
  return result;
}

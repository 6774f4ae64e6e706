// Reading `-f FILE|DIR|-` for apply, delete and diff: parsed and validated with positions.
import fs from "node:fs";
import type { ParsedSource, SourceDocument } from "../store/index.js";
import { CliError, UsageError } from "./errors.js";
import { errorsIn, printProblems } from "./problems.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Reads every `-f` source. With `requireValid`, any error is printed (file, document,
 * line:column, field) and the command fails before anything is written.
 */
export async function readInputs(files: string[] | undefined, requireValid: boolean): Promise<SourceDocument[]> {
  if (!files || files.length === 0) throw new UsageError("-f FILE|DIR|- is required");
  const { parseManifestSource, readManifestInput } = await import("../store/index.js");
  const sources: ParsedSource[] = [];
  for (const file of files) {
    if (file === "-") {
      sources.push(await parseManifestSource(await readStdin(), "<stdin>"));
    } else {
      if (!fs.existsSync(file)) throw new CliError(`${file}: no such file or directory`);
      sources.push(await readManifestInput(file));
    }
  }
  const problems = sources.flatMap((s) => s.problems);
  const documents = sources.flatMap((s) => s.documents);
  if (requireValid && errorsIn(problems).length > 0) {
    printProblems(problems);
    throw new CliError(`no changes made: ${errorsIn(problems).length} error(s) in the input`);
  }
  if (documents.length === 0 && problems.length === 0) throw new CliError(`no objects found in ${files.join(", ")}`);
  return documents;
}

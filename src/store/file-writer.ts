// Every write the store makes goes through here: one at a time per file in this process, never
// over someone else's edit (./safe-write.ts: compare-before-rename under a lock the CLI and the
// controller share), and remembered by content hash so the watcher can tell the store's own
// writes from the user's.
import path from "node:path";
import { contentHash, readManifestText, DEFAULT_MAX_FILE_SIZE } from "./read-text.js";
import { removeFile, replaceFile, resolveTarget, versionOf, type Expectation, type ReplaceOptions } from "./safe-write.js";

/** Runs tasks one at a time per id, in call order. */
export class KeyedQueue {
  private queues = new Map<string, Promise<unknown>>();

  run<T>(id: string, task: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(id) ?? Promise.resolve();
    const result = previous.then(task, task);
    const settled = result.catch(() => undefined);
    this.queues.set(id, settled);
    void settled.then(() => {
      if (this.queues.get(id) === settled) this.queues.delete(id);
    });
    return result;
  }
}

/** What an edit of a file decides: the new text, null to remove the file, or undefined to leave it; plus its result. */
export interface EditDecision<R> {
  write?: string | null;
  result: R;
}

/** The file as an edit sees it: its text, or undefined when there is no file. */
export type EditInput = { text: string; unreadable?: undefined } | { text: undefined; unreadable?: string };

/** How often an edit is redone when the file keeps changing under it before giving up. */
const MAX_ATTEMPTS = 20;

export class FileConflictError extends Error {
  constructor(readonly file: string) {
    super(`${file} kept changing while kvmctl tried to update it (${MAX_ATTEMPTS} attempts); nothing was written`);
    this.name = "FileConflictError";
  }
}

export class FileWriter {
  private queue = new KeyedQueue();
  private written = new Map<string, string>();

  constructor(private readonly options: ReplaceOptions & { maxFileSize?: number } = {}) {}

  /** Runs `task` after every earlier task for the same file has finished (call order). */
  run<T>(file: string, task: () => Promise<T>): Promise<T> {
    return this.queue.run(path.resolve(file), task);
  }

  /**
   * Read-modify-write that never loses a concurrent edit: `edit` gets the file as it is now and
   * decides; the write happens only if the file is still that version, else `edit` runs again on
   * the newer one. Call inside run(). A file that disappeared is never recreated unless `edit`
   * (seeing no text) asks for it.
   */
  async update<R>(file: string, edit: (current: EditInput) => EditDecision<R> | Promise<EditDecision<R>>, options: ReplaceOptions = this.options): Promise<R> {
    // The file itself, or the manifest a symlink allowed by `options` points to.
    const abs = resolveTarget(file, options);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const read = readManifestText(abs, this.options.maxFileSize ?? DEFAULT_MAX_FILE_SIZE, { noFollow: true });
      let input: EditInput;
      let expect: Expectation;
      if (read.ok) {
        input = { text: read.text };
        expect = { version: versionOf(read.stat, read.hash) };
      } else if (read.missing) {
        input = { text: undefined };
        expect = { absent: true };
      } else {
        input = { text: undefined, unreadable: read.message };
        expect = { absent: true };
      }
      const decision = await edit(input);
      if (decision.write === undefined) return decision.result;
      const outcome = decision.write === null ? await this.removeExpected(abs, expect, options) : await this.replaceExpected(abs, decision.write, expect, options);
      if (outcome !== "conflict") return decision.result;
    }
    throw new FileConflictError(abs);
  }

  /** Replaces the file whatever it holds (kvmctl's own data files); call inside run(). */
  async write(file: string, text: string, options: ReplaceOptions = this.options): Promise<void> {
    await this.replaceExpected(path.resolve(file), text, { any: true }, options);
  }

  async remove(file: string, options: ReplaceOptions = this.options): Promise<void> {
    await this.removeExpected(path.resolve(file), { any: true }, options);
  }

  private async replaceExpected(abs: string, text: string, expect: Expectation, options: ReplaceOptions): Promise<"written" | "conflict"> {
    const bytes = Buffer.from(text, "utf8");
    const previous = this.written.get(abs);
    this.written.set(abs, contentHash(bytes));
    try {
      const outcome = await replaceFile(abs, bytes, expect, options);
      if (outcome === "conflict") this.restore(abs, previous);
      return outcome;
    } catch (error) {
      this.restore(abs, previous);
      throw error;
    }
  }

  private async removeExpected(abs: string, expect: Expectation, options: ReplaceOptions): Promise<"removed" | "conflict" | "absent"> {
    const outcome = await removeFile(abs, expect, options);
    if (outcome !== "conflict") this.written.delete(abs);
    return outcome;
  }

  private restore(abs: string, previous: string | undefined): void {
    if (previous === undefined) this.written.delete(abs);
    else this.written.set(abs, previous);
  }

  /** True when the file's current content is exactly what this store last wrote there. */
  isOwnWrite(file: string, hash: string | undefined): boolean {
    return hash !== undefined && this.written.get(path.resolve(file)) === hash;
  }

  /** The file changed in a way we did not make: stop recognising our old content. */
  forgetWrite(file: string): void {
    this.written.delete(path.resolve(file));
  }

  hasWritten(file: string): boolean {
    return this.written.has(path.resolve(file));
  }
}

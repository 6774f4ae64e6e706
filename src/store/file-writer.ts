// Every write the store makes goes through here: atomic (temp file + rename, keeping the
// file's mode), one at a time per file, and remembered by content hash so the watcher can
// tell the store's own writes from the user's.
import fs from "node:fs";
import path from "node:path";
import { contentHash } from "./read-text.js";

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

export class FileWriter {
  private queue = new KeyedQueue();
  private written = new Map<string, string>();

  /** Runs `task` after every earlier task for the same file has finished (call order). */
  run<T>(file: string, task: () => Promise<T>): Promise<T> {
    return this.queue.run(path.resolve(file), task);
  }

  /** Writes atomically, creating parent directories; call inside run(). */
  async write(file: string, text: string): Promise<void> {
    const abs = path.resolve(file);
    await fs.promises.mkdir(path.dirname(abs), { recursive: true });
    const bytes = Buffer.from(text, "utf8");
    this.written.set(abs, contentHash(bytes));
    try {
      // Loaded here, not at startup: read-only CLI commands never need it.
      const { default: writeFileAtomic } = await import("write-file-atomic");
      await writeFileAtomic(abs, bytes);
    } catch (error) {
      this.written.delete(abs);
      throw error;
    }
  }

  async remove(file: string): Promise<void> {
    const abs = path.resolve(file);
    this.written.delete(abs);
    await fs.promises.rm(abs, { force: true });
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

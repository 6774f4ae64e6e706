// The loop behind `kvmctl get -w`: calls `check` whenever something under the watched
// directories changes (fs.watch, recursive where the platform has it) and every `pollMs`
// as a safety net (a watch that misses an event, a directory not there yet), until SIGINT or
// SIGTERM (or `signal`). Status writes by the controller are file changes like any other, so
// they wake it too; kvmctl's own data (`.kvmctl/`, the parse cache a read writes) does not,
// except the records of kept objects.
import fs from "node:fs";
import path from "node:path";

export interface WatchLoopOptions {
  /** Directories to watch (missing ones are polled until they exist). */
  dirs: string[];
  /** Re-check this often without a file event (ms). Default 1000. */
  pollMs?: number;
  /** Stops the loop; without it SIGINT/SIGTERM do. */
  signal?: AbortSignal;
  /** Called when `check` throws; the loop goes on. */
  onError?(error: unknown): void;
}

/**
 * Whether a file event names kvmctl's own data (a read's parse cache, events, locks): not a
 * change of the objects by itself. Kept-object records (`.kvmctl/terminating/`) are shown by `get`.
 */
function ownData(filename: string | Buffer | null): boolean {
  if (filename === null) return false;
  const [first, second] = String(filename).split(path.sep);
  return first === ".kvmctl" && second !== "terminating";
}

export async function watchLoop(options: WatchLoopOptions, check: () => Promise<void>): Promise<void> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  const signal = options.signal;
  if (signal) signal.addEventListener("abort", stop, { once: true });
  else {
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  }
  const watchers = new Map<string, fs.FSWatcher>();
  let wake: (() => void) | undefined;
  const attach = () => {
    for (const dir of options.dirs) {
      if (watchers.has(dir)) continue;
      const onEvent = (_event: string, filename: string | Buffer | null) => {
        if (!ownData(filename)) wake?.();
      };
      let watcher: fs.FSWatcher | undefined;
      try {
        watcher = fs.watch(dir, { persistent: false, recursive: true }, onEvent);
      } catch {
        try {
          // No recursive watch here: the top level, and the poll for the rest.
          watcher = fs.watch(dir, { persistent: false }, onEvent);
        } catch {
          continue; // not there yet: polled until it is
        }
      }
      watcher.on("error", () => {
        watcher?.close();
        watchers.delete(dir);
      });
      watchers.set(dir, watcher);
    }
  };
  try {
    while (!controller.signal.aborted) {
      attach();
      await new Promise<void>((resolve) => {
        let burst: NodeJS.Timeout | undefined;
        const timer = setTimeout(() => done(), options.pollMs ?? 1_000);
        const done = () => {
          clearTimeout(timer);
          if (burst) clearTimeout(burst);
          wake = undefined;
          controller.signal.removeEventListener("abort", done);
          resolve();
        };
        // a burst of writes (a write and its rename): one look a moment later
        wake = () => {
          burst ??= setTimeout(done, 50);
        };
        controller.signal.addEventListener("abort", done, { once: true });
      });
      if (controller.signal.aborted) break;
      try {
        await check();
      } catch (error) {
        options.onError?.(error);
      }
    }
  } finally {
    for (const watcher of watchers.values()) watcher.close();
    if (signal) signal.removeEventListener("abort", stop);
    else {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
  }
}

// The manifest store: reads the manifest directory into snapshots, writes status back,
// watches for changes and edits manifests for the CLI. See docs/store.md.
import path from "node:path";
import { ManifestReader } from "./reader.js";
import type { Snapshot, StoreOptions } from "./types.js";

export * from "./types.js";
export { compareProblems, formatFieldPath, formatLocation, formatProblem, isError } from "./problems.js";
export { deriveGeneration } from "./snapshot.js";
export { DEFAULT_MAX_FILE_SIZE } from "./read-text.js";

export class ManifestStore {
  readonly dir: string;
  readonly statusDir: string | undefined;
  /** Where kvmctl keeps its own data (`.kvmctl/`): the status directory if any, else the manifest directory. */
  readonly stateRoot: string;
  private readonly reader: ManifestReader;
  private lastSnapshot: Snapshot | undefined;

  constructor(readonly options: StoreOptions) {
    this.dir = path.resolve(options.dir);
    this.statusDir = options.statusDir === undefined ? undefined : path.resolve(options.statusDir);
    this.stateRoot = this.statusDir ?? this.dir;
    this.reader = new ManifestReader({
      dir: this.dir,
      statusDir: this.statusDir,
      stateRoot: this.stateRoot,
      maxFileSize: options.maxFileSize,
      diskCache: options.diskCache,
    });
  }

  /** Reads the directory. Never throws for bad manifests: they are in `problems`. */
  async read(): Promise<Snapshot> {
    this.lastSnapshot = await this.reader.read();
    return this.lastSnapshot;
  }

  /** The snapshot of the last read(), if any. */
  get snapshot(): Snapshot | undefined {
    return this.lastSnapshot;
  }

  /** `<stateRoot>/.kvmctl`: kvmctl's own data (events, cache, the controller's lock). */
  get dataDir(): string {
    return path.join(this.stateRoot, ".kvmctl");
  }
}

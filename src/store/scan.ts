// Walks the manifest directory and lists the YAML files in it. Dot-files and dot-directories
// are skipped (kvmctl keeps its own data in `.kvmctl/`); symlinks are followed, but a
// directory is read once: a symlink back into a directory being read is a loop and is reported.
// Synchronous on purpose: for hundreds of small entries it is several times faster than
// fs/promises, and the CLI's whole run has a tight time budget.
import fs from "node:fs";
import path from "node:path";

export interface ScannedFile {
  /** Relative to the manifest directory, '/'-separated. */
  rel: string;
  abs: string;
}

/** A path that could not be walked: the whole subtree (or file) is unreadable this time. */
export interface ScanProblem {
  rel: string;
  message: string;
  /** True for a directory: every file previously known under `rel/` is affected. */
  directory: boolean;
  /** Only worth a word: nothing was lost (a directory reached twice through symlinks). */
  warning?: boolean;
}

export interface ScanResult {
  files: ScannedFile[];
  problems: ScanProblem[];
}

export function isManifestFileName(name: string): boolean {
  return !name.startsWith(".") && (name.endsWith(".yaml") || name.endsWith(".yml"));
}

/** Describes an fs error for a user: "permission denied" rather than "EACCES: ...". */
export function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "ENOENT":
      return "disappeared while being read (will be read again on the next change)";
    case "ELOOP":
      return "symlink loop (the link points back to itself)";
    case "ENOTDIR":
      return "not a directory";
    default:
      return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Lists manifest files under `dir`, sorted by relative path. `excludeReal` holds real paths
 * of directories to leave out (a status directory placed inside the manifest directory).
 */
export function scanManifestDir(dir: string, excludeReal: ReadonlySet<string> = new Set()): ScanResult {
  const files: ScannedFile[] = [];
  const problems: ScanProblem[] = [];
  const visited = new Map<string, string>(); // real path → rel path it was first read under

  const walk = (abs: string, rel: string, ancestors: string[]): void => {
    let real: string;
    let entries: fs.Dirent[];
    try {
      real = fs.realpathSync(abs);
      if (excludeReal.has(real)) return;
      const seen = visited.get(real);
      if (seen !== undefined) {
        const loop = ancestors.includes(real);
        problems.push({
          rel,
          directory: true,
          warning: !loop,
          message: loop
            ? `symlink loop: leads back to ${seen === "" ? "the manifest directory" : `"${seen}"`}, which is already being read; skipped`
            : `same directory as "${seen}" (reached through a symlink); read only once, skipped here`,
        });
        return;
      }
      visited.set(real, rel);
      entries = fs.readdirSync(abs, { withFileTypes: true });
    } catch (error) {
      // The top directory itself missing is the caller's business (an empty store), not a problem.
      if (rel === "" && (error as NodeJS.ErrnoException).code === "ENOENT") return;
      problems.push({ rel: rel === "" ? "." : rel, directory: true, message: `cannot read directory: ${describeFsError(error)}` });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith(".")) continue;
      const childAbs = path.join(abs, entry.name);
      const childRel = rel === "" ? entry.name : `${rel}/${entry.name}`;
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        try {
          const target = fs.statSync(childAbs);
          isDir = target.isDirectory();
          isFile = target.isFile();
        } catch (error) {
          // A dangling link is only worth a word when it looks like a manifest.
          if (isManifestFileName(entry.name)) {
            const broken = (error as NodeJS.ErrnoException).code === "ENOENT";
            problems.push({ rel: childRel, directory: false, message: broken ? "broken symlink: its target does not exist" : `cannot read: ${describeFsError(error)}` });
          }
          continue;
        }
      }
      if (isDir) walk(childAbs, childRel, [...ancestors, real]);
      else if (isFile && isManifestFileName(entry.name)) files.push({ rel: childRel, abs: childAbs });
    }
  };

  walk(path.resolve(dir), "", []);
  return { files, problems };
}

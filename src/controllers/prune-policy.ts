// When a manifest that is gone may be pruned (issue 12: prune only what you can see). Pure.
// A key without a manifest is pruned only when all of these hold:
// - the file that held it is readable (else it may come back: ManifestUnreadable);
// - the directory holds something, or `kvmctl delete` asked for this deletion: a directory in
//   which everything vanished is one emptied by accident (a checkout being replaced, a wrong
//   --dir, rm -r) until shown otherwise (--allow-empty, after Argo CD's allowEmpty);
// - the directory has been quiet for the settle time, so a document moved from one file to
//   another is never a delete followed by a create.
import type { Snapshot } from "../store/index.js";

export interface PrunePolicy {
  /** Quiet time after the last change to the directory before a deletion is acted on (ms). */
  settleMs: number;
  /** Prune even when the directory holds no objects at all. */
  allowEmpty: boolean;
}

export type PruneDecision =
  | { prune: true }
  | { prune: false; reason: "ManifestUnreadable" | "DirectoryEmpty" | "Settling"; message: string; retryAfterMs?: number };

/**
 * Whether `key`, absent from `snapshot`, may be pruned now. `lastChangeAt`: the directory's last
 * change; `asked`: `kvmctl delete` recorded this deletion; `recordedFile`: the manifest file the
 * libvirt object records it was made from, if it says.
 */
export function pruneDecision(snapshot: Snapshot, key: string, now: number, lastChangeAt: number, policy: PrunePolicy, asked: boolean, recordedFile?: string): PruneDecision {
  for (const [file, unreadable] of snapshot.unreadableFiles) {
    // The keys it held at its last good read, or the file the libvirt object says it came from
    // (which holds when no read of it was ever good: a fresh checkout, a cache removed).
    const held = recordedFile !== undefined && (recordedFile === file || file === "." || recordedFile.startsWith(`${file}/`));
    if (unreadable.lastKnownKeys.includes(key) || held) {
      return { prune: false, reason: "ManifestUnreadable", message: `its manifest ${file === "." ? "directory" : file} cannot be read (${unreadable.problems[0]?.message ?? "unreadable"}); kept as it is until it can` };
    }
  }
  if (!policy.allowEmpty && !asked && snapshot.objects.size + snapshot.invalid.size + snapshot.unreadableFiles.size === 0) {
    return { prune: false, reason: "DirectoryEmpty", message: "the manifest directory holds no objects at all; nothing is pruned (delete with `kvmctl delete`, or run the controller with --allow-empty)" };
  }
  const quietFor = now - lastChangeAt;
  if (quietFor < policy.settleMs) {
    return { prune: false, reason: "Settling", message: "the manifest directory changed just now; the deletion waits until it is quiet", retryAfterMs: policy.settleMs - quietFor };
  }
  return { prune: true };
}

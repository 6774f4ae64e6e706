// Which base-image imports the reconciles of this controller are running now: two VMs naming
// the same image may be reconciled at once, and only one of them may import the shared base
// volume (the other waits for it). In memory, one per manager (src/controllers/registry.ts):
// a restarted controller starts with none, and an import cut short by the restart is redone
// (the download adapter's import record says whether an import ran to its end).

/** A target is `<poolUuid>/<volume>`. */
export class ImportClaims {
  private readonly held = new Set<string>();

  /** Claims the import into `target`: a release function, or undefined while another reconcile holds it. */
  claim(target: string): (() => void) | undefined {
    if (this.held.has(target)) return undefined;
    this.held.add(target);
    let released = false;
    return () => {
      // A second call must not free a claim another reconcile took since.
      if (released) return;
      released = true;
      this.held.delete(target);
    };
  }

  /** Whether a reconcile is importing into `target` now. */
  importing(target: string): boolean {
    return this.held.has(target);
  }
}

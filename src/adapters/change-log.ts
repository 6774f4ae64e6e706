// Which libvirt objects changed since a picture was read, as far as this process knows: the
// domains named by libvirt's events and by this process's own domain commands, and whether
// anything else changed (a pool, a network, a volume, a stream reconnected, a command of ours
// not about one domain). A stale picture whose changes since were only to a few domains is
// brought up to date by reading those domains alone, the way an informer's cache applies each
// watch event to one entry, instead of reading all of libvirt again. Pure: the hypervisor
// adapter (./virsh-hypervisor.ts) feeds it; unit tests drive it directly.

import type { DomainRef } from "./informed.js";

export class ChangeLog {
  private sequence = 0;
  /** The sequence number of each domain's last change. */
  private readonly domains = new Map<string, { ref: DomainRef; at: number }>();
  /** The sequence number of the last change not confined to one known domain. */
  private everythingAt = 0;

  /** The current position: a reading started now reflects every change up to it. */
  mark(): number {
    return this.sequence;
  }

  /** One domain changed (an event about it arrived, or a command of ours on it ended). */
  domain(ref: DomainRef): void {
    const key = "uuid" in ref ? `uuid:${ref.uuid}` : `name:${ref.name}`;
    this.domains.set(key, { ref, at: ++this.sequence });
  }

  /** Something changed that a few domains' reading would not show. */
  everything(): void {
    this.everythingAt = ++this.sequence;
  }

  /**
   * The domains changed after `mark`, when those are all that changed; undefined when anything
   * else changed too (then only a whole reading tells).
   */
  domainsSince(mark: number): DomainRef[] | undefined {
    if (this.everythingAt > mark) return undefined;
    return [...this.domains.values()].filter((d) => d.at > mark).map((d) => d.ref);
  }

  /** Forgets what a picture read from `mark` on reflects (keeps the log as small as the changes since). */
  forgetUpTo(mark: number): void {
    for (const [key, d] of this.domains) if (d.at <= mark) this.domains.delete(key);
  }
}

// When the last picture of libvirt still holds now, without reading it again: an informer's
// cache. Pure: the adapter (./virsh-hypervisor.ts) and the unit tests' fake hypervisor feed it.
//
// libvirt sends an event for every change of an object's existence and state, of a definition
// replaced (`virsh define`, what `virsh edit` does) and of metadata, but none for some facts:
// autostart flags, volumes (created, deleted, filled, resized), pool usage, DHCP leases, and
// definition edits through other calls (`setmaxmem --config`, `setvcpus --config`,
// `net-update`), measured on libvirt 11.3. Those are trusted only up to `maxAgeMs` after the
// reading; the periodic resync reads them anyway.

export interface PictureFacts {
  /** When the picture's last full reading started (ms epoch); an event applied in place does not move it. */
  readAt: number;
  /** As of when the picture describes libvirt (a reading's start, or an event applied to it since); ≥ readAt. */
  takenAt: number;
  /** Since when every event stream has been registered and up without a break; undefined while one is not. */
  listeningSince: number | undefined;
  /** The last change this process knows of: an event received, or one of its own changing commands ending. */
  changedAt: number;
  /** Changing commands of this process still running: their change may be done, their end not yet seen. */
  mutationsInFlight: number;
  now: number;
  /** How old a reading may be for the facts libvirt sends no event for. */
  maxAgeMs: number;
}

/**
 * Whether libvirt still holds what the picture says: every stream was listening before the
 * picture was read (so any change since has sent an event), nothing changed since as far as
 * this process knows (no event, no own command, none running), and the reading is at most
 * `maxAgeMs` old. A stream down or reconnected since means no.
 */
export function pictureStillHolds(facts: PictureFacts): boolean {
  const { readAt, takenAt, listeningSince, changedAt, mutationsInFlight, now, maxAgeMs } = facts;
  if (listeningSince === undefined || listeningSince > readAt) return false;
  if (changedAt > takenAt || mutationsInFlight > 0) return false;
  return now - readAt <= maxAgeMs;
}

/** A domain as a change names it: by UUID (this process's commands) or by name (libvirt's events). */
export type DomainRef = { uuid: string } | { name: string };

/**
 * Whether the picture still holds for one domain, though others changed since it was read (a
 * converge's defines and starts of other guests): every change since is known to be about
 * domains (`changed`: undefined when anything else changed, a stream was not listening
 * throughout or the reading is too old), and neither those nor the changing commands running
 * now (`running`: undefined when one may change anything) can be about this one. `isThis`
 * tells whether a reference can name this domain, and must answer yes when it cannot tell (a
 * UUID it knows no name for). Only for readers whose plan reads nothing but the domain itself
 * and what libvirt sends events for (the informer's readers, Hypervisor.observe's mend).
 */
export function pictureHoldsForDomain(changed: DomainRef[] | undefined, running: DomainRef[] | undefined, isThis: (ref: DomainRef) => boolean): boolean {
  if (changed === undefined || running === undefined) return false;
  return !changed.some(isThis) && !running.some(isThis);
}

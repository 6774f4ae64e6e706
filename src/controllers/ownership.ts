// Whose a libvirt object is (issue 12: ownership by instance). Pure. A controller changes and
// prunes only its own instance's objects; another instance's are left byte-for-byte alone and
// reported when a manifest names them; objects of an earlier kvmctl (no instance recorded) are
// adopted by the first controller whose manifests name them, and pruned by nobody before that.
import { networkUuid, poolUuid, type OwnerMetadata } from "../libvirt/index.js";

/**
 * - mine: made by this instance for this manifest;
 * - legacy: made by kvmctl for this manifest before instances existed (adoptable);
 * - other-instance: made by another controller instance (`by` names it);
 * - foreign: not made by kvmctl for this manifest at all.
 */
export type Ownership = { of: "mine" } | { of: "legacy" } | { of: "other-instance"; by: string } | { of: "foreign" };

/** Ownership from `<kvmctl:owner>` metadata (domains, networks). */
export function ownershipOf(owner: OwnerMetadata | undefined, key: string, instance: string): Ownership {
  if (!owner || owner.manifest !== key) return { of: "foreign" };
  if (owner.instance === undefined) return { of: "legacy" };
  return owner.instance === instance ? { of: "mine" } : { of: "other-instance", by: owner.instance };
}

/** A network's: its metadata, else the UUID kvmctl derives (the metadata edited away by hand). */
export function networkOwnership(live: { uuid: string; config: { owner?: OwnerMetadata } }, key: string, name: string, instance: string): Ownership {
  if (live.config.owner) return ownershipOf(live.config.owner, key, instance);
  if (live.uuid === networkUuid(name, instance)) return { of: "mine" };
  if (live.uuid === networkUuid(name)) return { of: "legacy" };
  return { of: "foreign" };
}

/**
 * A pool's, from its UUID alone (pools have no <metadata>): this instance's derived UUID, or
 * the one earlier versions derived from the name alone. Another instance's pool is
 * indistinguishable from a foreign one here.
 */
export function poolOwnership(uuid: string, name: string, instance: string): Ownership {
  if (uuid === poolUuid(name, instance)) return { of: "mine" };
  if (uuid === poolUuid(name)) return { of: "legacy" };
  return { of: "foreign" };
}

/** Words for a Stalled condition when a manifest names an object that is not this instance's. */
export function notOursMessage(ownership: Ownership, what: string, instance: string): { reason: string; message: string } {
  if (ownership.of === "other-instance") {
    return { reason: "OwnedByOtherInstance", message: `${what} was made by the kvmctl controller instance "${ownership.by}" (this one is "${instance}"); it is left alone: give the manifest another name, or delete it in that instance's directory` };
  }
  return { reason: "NotOwned", message: `${what} exists and was not created by kvmctl for this manifest; it is left alone (rename the manifest or remove the object by hand)` };
}

/** Why a deleted manifest's object stays: it is not this instance's to prune. */
export function leftAloneMessage(ownership: Ownership, what: string): string {
  if (ownership.of === "other-instance") return `${what} belongs to the controller instance "${ownership.by}": left alone`;
  if (ownership.of === "legacy") return `${what} was made by an earlier kvmctl and never adopted by this instance: left alone`;
  return `${what} was not created by kvmctl: left alone`;
}

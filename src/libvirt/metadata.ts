// Ownership: every libvirt object kvmctl creates carries <kvmctl:owner> in its <metadata>
// (domains, networks). Storage pools have no <metadata>, so an owned pool's UUID is derived
// from its name (UUIDv5 in kvmctl's namespace): a pool someone else defined never matches.
import { createHash } from "node:crypto";
import { attr, child, children, type XmlNode } from "./xml.js";

export const KVMCTL_XMLNS = "https://kvmctl.dev/xmlns/owner/v1";
export const OWNER_ELEMENT = "kvmctl:owner";

export interface OwnerMetadata {
  /** "Kind/name" of the manifest object. */
  manifest: string;
  /**
   * The controller instance (one per manifest directory) whose manifest made it; absent on
   * objects made by kvmctl before instances existed (adopted by the first instance naming them).
   */
  instance?: string;
  /** Manifest file it came from, relative to the manifest directory. */
  file: string;
  specHash: string;
  deletionPolicy?: "Retain" | "Delete";
  /** Volumes kvmctl created for this object ("pool/volume"): the only ones it may ever delete. */
  createdVolumes?: string[];
}

export function ownerMetadataNode(owner: OwnerMetadata): XmlNode {
  return {
    [OWNER_ELEMENT]: {
      "@_xmlns:kvmctl": KVMCTL_XMLNS,
      "@_manifest": owner.manifest,
      ...(owner.instance ? { "@_instance": owner.instance } : {}),
      "@_file": owner.file,
      "@_specHash": owner.specHash,
      ...(owner.deletionPolicy ? { "@_deletionPolicy": owner.deletionPolicy } : {}),
      ...(owner.createdVolumes?.length ? { "kvmctl:volume": owner.createdVolumes.map((v) => ({ "@_name": v })) } : {}),
    },
  };
}

/** The owner element under a parsed <metadata>, or undefined when kvmctl does not own it. */
export function parseOwnerMetadata(metadata: XmlNode | undefined): OwnerMetadata | undefined {
  const owner = child(metadata, OWNER_ELEMENT);
  if (!owner || attr(owner, "xmlns:kvmctl") !== KVMCTL_XMLNS) return undefined;
  const manifest = attr(owner, "manifest");
  const specHash = attr(owner, "specHash");
  if (!manifest || !specHash) return undefined;
  const policy = attr(owner, "deletionPolicy");
  const instance = attr(owner, "instance");
  return {
    manifest,
    ...(instance ? { instance } : {}),
    file: attr(owner, "file") ?? "",
    specHash,
    deletionPolicy: policy === "Delete" || policy === "Retain" ? policy : undefined,
    createdVolumes: children(owner, "kvmctl:volume").map((v) => attr(v, "name")).filter((v): v is string => !!v),
  };
}

// A fixed namespace UUID for kvmctl's name-based UUIDs (random, chosen once).
const NAMESPACE = Buffer.from("6b766d63-746c-4f77-8e65-722d706f6f6c".replace(/-/g, ""), "hex");

/**
 * RFC 4122 UUIDv5 of `[instance/]kind/name` in kvmctl's namespace. With an instance, two
 * controllers' objects of the same name get different UUIDs (how a pool, which has no
 * <metadata>, says which instance made it); without, the UUID earlier versions gave.
 */
export function ownedUuid(kind: string, name: string, instance?: string): string {
  const hash = createHash("sha1").update(NAMESPACE).update(instance ? `${instance}/${kind}/${name}` : `${kind}/${name}`).digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50;
  hash[8] = (hash[8]! & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

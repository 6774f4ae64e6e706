// Storage pool and volume XML. Pools carry no <metadata>; ownership is their UUID
// (see metadata.ts ownedUuid).
import type { StoragePoolSpec } from "../api/storagepool.js";
import { ownedUuid } from "./metadata.js";
import { attr, buildXml, bytesOf, child, children, parseXml, textOf } from "./xml.js";

/** The UUID kvmctl gives a pool: derived from its name and the controller instance (none: an earlier version's). */
export function poolUuid(name: string, instance?: string): string {
  return ownedUuid("StoragePool", name, instance);
}

/** The volume group of a logical pool: its own field, else the pool's name. */
export function volumeGroupOf(name: string, spec: Pick<StoragePoolSpec, "volumeGroup">): string {
  return spec.volumeGroup ?? name;
}

export function poolTargetPath(name: string, spec: Pick<StoragePoolSpec, "type" | "path" | "volumeGroup">): string {
  return spec.type === "logical" ? `/dev/${volumeGroupOf(name, spec)}` : spec.path!;
}

/** The pool's definition; `uuid` is the existing pool's, or the one kvmctl gives a new one. */
export function buildPoolXml(name: string, spec: StoragePoolSpec, uuid = poolUuid(name)): string {
  const source =
    spec.type === "logical"
      ? { source: { name: volumeGroupOf(name, spec), ...(spec.sourceDevices?.length ? { device: spec.sourceDevices.map((p) => ({ "@_path": p })) } : {}), format: { "@_type": "lvm2" } } }
      : {};
  return buildXml({
    pool: {
      "@_type": spec.type,
      name,
      uuid,
      ...source,
      target: { path: poolTargetPath(name, spec) },
    },
  });
}

export interface PoolFacts {
  name: string;
  uuid: string;
  type: string;
  targetPath?: string;
  volumeGroup?: string;
  capacity?: number;
  allocation?: number;
  available?: number;
}

export function parsePoolXml(xml: string): PoolFacts {
  const pool = child(parseXml(xml), "pool");
  if (!pool) throw new Error("not a <pool> document");
  return {
    name: textOf(pool, "name") ?? "",
    uuid: textOf(pool, "uuid") ?? "",
    type: attr(pool, "type") ?? "",
    targetPath: textOf(child(pool, "target"), "path"),
    volumeGroup: textOf(child(pool, "source"), "name"),
    capacity: bytesOf(child(pool, "capacity")),
    allocation: bytesOf(child(pool, "allocation")),
    available: bytesOf(child(pool, "available")),
  };
}

/** What the manifest sets that differs from the live pool; empty when converged. */
export function comparePool(name: string, spec: StoragePoolSpec, live: PoolFacts): string[] {
  const diffs: string[] = [];
  if (live.type !== spec.type) diffs.push(`type: ${live.type} → ${spec.type}`);
  const target = poolTargetPath(name, spec);
  if (live.targetPath !== target) diffs.push(`target path: ${live.targetPath ?? "-"} → ${target}`);
  const group = volumeGroupOf(name, spec);
  if (spec.type === "logical" && live.volumeGroup !== group) diffs.push(`volume group: ${live.volumeGroup ?? "-"} → ${group}`);
  return diffs;
}

/**
 * A new volume. In a logical pool the volume is a plain LV: no format (the bytes are the
 * disk), fully allocated (a smaller allocation would make libvirt create a thin snapshot
 * LV), and an empty <target/>, which the schema still requires.
 */
export function buildVolumeXml(name: string, capacityBytes: number, format: "qcow2" | "raw", poolType = "dir"): string {
  const logical = poolType === "logical";
  return buildXml({
    volume: {
      name,
      capacity: { "@_unit": "bytes", "#text": String(capacityBytes) },
      allocation: { "@_unit": "bytes", "#text": logical ? String(capacityBytes) : "0" },
      target: logical ? {} : { format: { "@_type": format } },
    },
  });
}

export interface VolumeFacts {
  name: string;
  path?: string;
  capacity: number;
  allocation?: number;
  format?: string;
}

export function parseVolumeXml(xml: string): VolumeFacts {
  const volume = child(parseXml(xml), "volume");
  if (!volume) throw new Error("not a <volume> document");
  return {
    name: textOf(volume, "name") ?? "",
    path: textOf(child(volume, "target"), "path"),
    capacity: bytesOf(child(volume, "capacity")) ?? 0,
    allocation: bytesOf(child(volume, "allocation")),
    format: attr(child(child(volume, "target"), "format"), "type"),
  };
}

export { children };

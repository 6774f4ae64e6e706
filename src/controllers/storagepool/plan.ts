// What to do about one StoragePool: pure, from the manifest and the live pool.
import type { StoragePoolSpec } from "../../api/storagepool.js";
import { buildPoolXml, comparePool, poolTargetPath, poolUuid } from "../../libvirt/index.js";
import type { LivePool } from "../../ports/index.js";
import type { Step } from "../kind.js";
import { notOursMessage, poolOwnership } from "../ownership.js";

/**
 * Steps on the pool, each naming it by UUID: an owned pool's UUID is derived from its name
 * (libvirt/pool.ts), so it is known before the pool exists and never resolved from a name.
 */
export type PoolAction =
  | { type: "define"; xml: string }
  | { type: "build"; uuid: string; noOverwrite: boolean }
  | { type: "start"; uuid: string }
  | { type: "autostart"; uuid: string; enabled: boolean }
  | { type: "destroy"; uuid: string }
  | { type: "undefine"; uuid: string };

export type PoolPlan =
  | { kind: "converge"; steps: Step<PoolAction>[]; drift: string[] }
  | { kind: "notOwned"; reason: string; message: string }
  | { kind: "prune"; steps: Step<PoolAction>[] }
  | { kind: "keep"; message: string };

export function planPool(name: string, spec: StoragePoolSpec, live: LivePool | undefined, instance: string): PoolPlan {
  const ownership = live ? poolOwnership(live.facts.uuid, name, instance) : { of: "mine" as const };
  if (ownership.of !== "mine" && ownership.of !== "legacy") {
    const { reason, message } = notOursMessage(ownership, `a storage pool named "${name}"`, instance);
    return { kind: "notOwned", reason, message };
  }
  const steps: Step<PoolAction>[] = [];
  // An earlier kvmctl's pool keeps its UUID (libvirt cannot change it without an undefine).
  const uuid = live?.facts.uuid ?? poolUuid(name, instance);
  const drift = live ? comparePool(name, spec, live.facts) : [];
  if (!live || drift.length) steps.push({ action: { type: "define", xml: buildPoolXml(name, spec, uuid) }, message: live ? `redefine (${drift.join(", ")})` : "define" });
  // A running pool keeps its old definition until it is restarted (what the observer reads is
  // the running one): without a restart the new target never takes effect.
  const restart = live?.active === true && drift.length > 0;
  if (restart) steps.push({ action: { type: "destroy", uuid }, message: `stop, to move to ${poolTargetPath(name, spec)}` });
  // dir: creates the directory. logical: builds the volume group only when the manifest
  // names devices for it, and never over existing data (--no-overwrite).
  // A stopped dir pool is built too: one defined but never built (a controller killed in
  // between, the directory removed by hand) cannot start, and building an existing directory
  // changes nothing. A stopped logical pool is not: its volume group may already hold data.
  const build = !live || drift.length > 0;
  if ((build || !live?.active) && spec.type === "dir") steps.push({ action: { type: "build", uuid, noOverwrite: false }, message: `create directory ${spec.path}` });
  if (build && spec.type === "logical" && spec.sourceDevices?.length) steps.push({ action: { type: "build", uuid, noOverwrite: true }, message: `build volume group on ${spec.sourceDevices.join(", ")}` });
  if (!live?.active || restart) steps.push({ action: { type: "start", uuid }, message: "start" });
  // A new pool starts with autostart off: only turning it on costs a command then.
  if (live ? live.autostart !== spec.autostart : spec.autostart) steps.push({ action: { type: "autostart", uuid, enabled: spec.autostart }, message: `autostart ${spec.autostart ? "on" : "off"}` });
  return { kind: "converge", steps, drift };
}

/**
 * Manifest deleted: remove the pool if this instance made it and it holds no volumes. An
 * earlier kvmctl's pool is never pruned (its UUID cannot record who adopted it).
 */
export function planPoolDeletion(name: string, live: LivePool | undefined, instance: string): PoolPlan {
  if (!live || poolOwnership(live.facts.uuid, name, instance).of !== "mine") return { kind: "prune", steps: [] };
  if (live.volumes.size > 0) {
    return { kind: "keep", message: `pool still holds ${live.volumes.size} volume(s) (${[...live.volumes.keys()].slice(0, 5).join(", ")}); kept until they are removed` };
  }
  const steps: Step<PoolAction>[] = [];
  const uuid = live.facts.uuid;
  if (live.active) steps.push({ action: { type: "destroy", uuid }, message: "stop" });
  steps.push({ action: { type: "undefine", uuid }, message: "undefine" });
  return { kind: "prune", steps };
}

// StoragePool: observe → plan (pure) → act through virsh → status.
import fs from "node:fs";
import path from "node:path";
import type { StoragePool } from "../../api/storagepool.js";
import { observedFields } from "../../store/index.js";
import { markReady, markReconciling, TerminalError } from "../../runtime/index.js";
import type { Condition } from "../../runtime/index.js";
import { markKept, recordDeleted, recordEvent, withoutUndefined, type KindResult, type ReconcileInput, type ReconcilerDeps } from "../types.js";
import { poolPhaseFor } from "./lifecycle.js";
import { isOwnedPool, planPool, planPoolDeletion, type PoolAction } from "./plan.js";

async function act(deps: ReconcilerDeps, name: string, action: PoolAction): Promise<void> {
  switch (action.type) {
    case "define": {
      const file = path.join(deps.scratchDir, `pool-${name}.xml`);
      fs.writeFileSync(file, action.xml);
      await deps.virsh.run(["pool-define", file]);
      return;
    }
    case "build":
      await deps.virsh.run(["pool-build", name, ...(action.noOverwrite ? ["--no-overwrite"] : [])]).catch(async (error: unknown) => {
        // An existing volume group on the devices is fine as it is.
        if (!(action.noOverwrite && /already|existing|exists/i.test(String((error as Error).message)))) throw error;
      });
      return;
    case "start":
      await deps.virsh.run(["pool-start", name]);
      return;
    case "autostart":
      await deps.virsh.run(["pool-autostart", name, ...(action.enabled ? [] : ["--disable"])]);
      return;
    case "destroy":
      await deps.virsh.run(["pool-destroy", name]);
      return;
    case "undefine":
      await deps.virsh.run(["pool-undefine", name]);
      return;
  }
}

export async function reconcileStoragePool(deps: ReconcilerDeps, input: ReconcileInput): Promise<KindResult> {
  const { name, log } = input;
  const live = (await deps.live(input.since)).pools.get(name);
  if (!input.stored) {
    const plan = planPoolDeletion(name, live);
    if (plan.kind === "keep") {
      const phase = poolPhaseFor({ deleting: true, holdsVolumes: true, defining: false, starting: false, active: live?.active });
      log.warn({ reason: "PoolNotEmpty", phase }, plan.message);
      await markKept(deps, input.key, { phase, reason: "PoolNotEmpty", message: plan.message });
      // Volumes come and go without pool events: look again now and then.
      return { ready: false, requeueAfterMs: 10_000 };
    }
    if (plan.kind === "prune") {
      for (const step of plan.steps) {
        log.info({ step: step.action.type, phase: poolPhaseFor({ deleting: true, defining: false, starting: false, active: live?.active }) }, step.message);
        await act(deps, name, step.action);
      }
    }
    const owned = live !== undefined && isOwnedPool(name, live);
    await recordDeleted(deps, input.key, owned ? "pool removed from libvirt" : live ? `storage pool "${name}" was not created by kvmctl: left alone` : "no pool in libvirt to remove");
    await deps.store.setTerminating(input.key, undefined);
    return { ready: true };
  }
  const stored = input.stored;
  await deps.store.setTerminating(input.key, undefined); // the manifest is back
  const spec = (stored.object as StoragePool).spec;
  const plan = planPool(name, spec, live);
  if (plan.kind === "notOwned") throw new TerminalError(plan.message, "NotOwned");
  if (plan.kind !== "converge") return { ready: true };
  const steps = plan.steps.map((s) => s.action.type);
  const phase = poolPhaseFor({ defining: steps.includes("define") || steps.includes("build"), starting: steps.includes("start"), active: live?.active });
  for (const step of plan.steps) {
    log.info({ step: step.action.type, phase }, step.message);
    await act(deps, name, step.action);
  }
  if (plan.steps.length) {
    await recordEvent(deps, input.key, "Normal", "Converged", plan.steps.map((s) => s.message).join("; "));
  }
  const after = plan.steps.length ? (await deps.live(Date.now())).pools.get(name) : live;
  const previous = ((stored.object as StoragePool).status?.conditions ?? []) as Condition[];
  const ok = after?.active === true;
  const conditions = ok
    ? markReady(previous, stored.generation, "Succeeded", `pool is active at ${after.facts.targetPath ?? ""}`)
    : markReconciling(previous, stored.generation, "Progressing", "pool is not active yet");
  await deps.store.writeStatus(input.key, withoutUndefined({
    ...observedFields(stored),
    conditions,
    // The phase describes the pool after this reconcile's steps.
    phase: poolPhaseFor({ defining: false, starting: false, active: after?.active }),
    uuid: after?.facts.uuid,
    state: after ? (after.active ? "running" : "inactive") : "undefined",
    path: after?.facts.targetPath,
    capacity: after?.facts.capacity,
    allocation: after?.facts.allocation,
    available: after?.facts.available,
    volumes: after?.volumes.size,
  }));
  return { ready: ok, requeueAfterMs: ok ? undefined : 2_000 };
}

// StoragePool: observe → plan (pure, ./plan.ts) → act through the ports → report.
import { TerminalError } from "../../runtime/index.js";
import type { StoragePoolSpec } from "../../api/index.js";
import type { LivePool, Ports } from "../../ports/index.js";
import type { KindController, KindOutcome } from "../kind.js";
import { poolPhaseFor } from "./lifecycle.js";
import { leftAloneMessage, poolOwnership } from "../ownership.js";
import { planPool, planPoolDeletion, type PoolAction, type PoolPlan } from "./plan.js";

async function act(ports: Ports, action: PoolAction): Promise<void> {
  const hv = ports.hypervisor;
  switch (action.type) {
    case "define":
      return hv.definePool(action.xml);
    case "build":
      return hv.buildPool(action.uuid, { noOverwrite: action.noOverwrite });
    case "start":
      return hv.startPool(action.uuid);
    case "autostart":
      return hv.setPoolAutostart(action.uuid, action.enabled);
    case "destroy":
      return hv.destroyPool(action.uuid);
    case "undefine":
      return hv.undefinePool(action.uuid);
  }
}

/** Volumes come and go without pool events: a kept pool is looked at again this often. */
const KEPT_POLL_MS = 10_000;

/** What a pool's plan is computed from. */
export interface PoolPlanInput {
  name: string;
  instance: string;
  spec: StoragePoolSpec;
  live: LivePool | undefined;
}

export const storagePoolController: KindController<"StoragePool", PoolPlanInput, PoolPlan> = {
  kind: "StoragePool",
  readsOnlyEventedFacts: () => false, // volumes and usage send no event
  order: 10,

  hostPaths(object) {
    const spec = object.spec;
    return [
      ...(spec.path ? [{ use: "pool" as const, field: "spec.path", path: spec.path }] : []),
      ...(spec.sourceDevices ?? []).map((device, i) => ({ use: "device" as const, field: `spec.sourceDevices[${i}]`, path: device })),
    ];
  },

  ownedKeys(live, instance) {
    return [...live.pools.values()].flatMap((pool) => (poolOwnership(pool.facts.uuid, pool.facts.name, instance).of === "mine" ? [`StoragePool/${pool.facts.name}`] : []));
  },

  wakeFor(event) {
    return event.kind === "pool" ? [`StoragePool/${event.name}`] : [];
  },

  async planInput(ctx, target, live) {
    return { name: target.name, instance: ctx.settings.instance, spec: target.object.spec, live: live.pools.get(target.name) };
  },

  plan: (input) => planPool(input.name, input.spec, input.live, input.instance),

  changes(plan) {
    return plan.kind === "converge" || plan.kind === "prune" ? plan.steps.map((s) => s.message) : [plan.message];
  },

  async reconcile(ctx, { key, name, stored, since }): Promise<KindOutcome<"StoragePool">> {
    const live = (await ctx.live(since)).pools.get(name);
    if (!stored) {
      const plan = planPoolDeletion(name, live, ctx.settings.instance);
      if (plan.kind === "keep") {
        const phase = poolPhaseFor({ deleting: true, holdsVolumes: true, defining: false, starting: false, active: live?.active });
        ctx.log.warn({ reason: "PoolNotEmpty", phase }, plan.message);
        await ctx.record.kept({ phase, reason: "PoolNotEmpty", message: plan.message });
        return { ready: false, requeueAfterMs: KEPT_POLL_MS };
      }
      if (plan.kind === "prune") {
        for (const step of plan.steps) {
          ctx.log.info({ step: step.action.type, phase: poolPhaseFor({ deleting: true, defining: false, starting: false, active: live?.active }) }, step.message);
          await act(ctx.ports, step.action);
        }
      }
      const ownership = live ? poolOwnership(live.facts.uuid, name, ctx.settings.instance) : undefined;
      await ctx.record.deleted(ownership?.of === "mine" ? "pool removed from libvirt" : ownership ? leftAloneMessage(ownership, `storage pool "${name}"`) : "no pool in libvirt to remove");
      await ctx.record.notKept();
      return { ready: true };
    }

    await ctx.record.notKept(); // the manifest is back
    const plan = planPool(name, stored.object.spec, live, ctx.settings.instance);
    if (plan.kind === "notOwned") throw new TerminalError(plan.message, plan.reason);
    if (plan.kind !== "converge") return { ready: true };
    const steps = plan.steps.map((s) => s.action.type);
    const phase = poolPhaseFor({ defining: steps.includes("define") || steps.includes("build"), starting: steps.includes("start"), active: live?.active });
    for (const step of plan.steps) {
      ctx.log.info({ step: step.action.type, phase }, step.message);
      await act(ctx.ports, step.action);
    }
    if (plan.steps.length) await ctx.record.event("Normal", "Converged", plan.steps.map((s) => s.message).join("; "));
    const after = plan.steps.length ? (await ctx.live(ctx.ports.clock.now())).pools.get(name) : live;
    const ok = after?.active === true;
    return {
      ready: ok,
      repairs: steps,
      requeueAfterMs: ok ? undefined : 2_000,
      report: {
        reason: ok ? "Succeeded" : "Progressing",
        message: ok ? `pool is active at ${after.facts.targetPath ?? ""}` : "pool is not active yet",
        facts: {
          // The phase describes the pool after this reconcile's steps.
          phase: poolPhaseFor({ defining: false, starting: false, active: after?.active }),
          uuid: after?.facts.uuid,
          state: after ? (after.active ? "running" : "inactive") : "undefined",
          path: after?.facts.targetPath,
          capacity: after?.facts.capacity,
          allocation: after?.facts.allocation,
          available: after?.facts.available,
          volumes: after?.volumes.size,
        },
      },
    };
  },
};

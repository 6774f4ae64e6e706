// docs/architecture.md's "how to add a kind", done for real: a test-only kind, Widget (a
// volume of a given size in a pool), is registered at run time (registerKind: its names and
// schemas), its KindController is handed to a Manager together with the built-in ones, and the
// manager — over a real manifest directory and fake ports (no libvirt) — reads its manifest,
// reconciles it, writes its status into the file and prunes it when the manifest goes.
// Nothing in src/ names Widget.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { z } from "zod";
import { API_VERSION, objectMeta, quantity, registerKind, statusBase, type KindName } from "../../../src/api/index.js";
import type { KindController } from "../../../src/controllers/kind.js";
import { builtinControllers } from "../../../src/controllers/registry.js";
import { buildVolumeXml } from "../../../src/libvirt/index.js";
import type { LivePool } from "../../../src/ports/index.js";
import { DependencyNotReadyError } from "../../../src/runtime/index.js";
import { ManifestStore } from "../../../src/store/index.js";
import { tempDir } from "../store/helpers.js";
import { fakePorts, testManager } from "../helpers/fake-ports.js";

// 1. The API: the schema and the status fields the controller writes.
const widgetStatusFields = z.object({ ...statusBase, volume: z.string().optional(), capacity: z.number().optional() });
const widget = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal("Widget"),
  metadata: objectMeta,
  spec: z.strictObject({ size: quantity, pool: z.string().default("default") }),
  status: z.looseObject(widgetStatusFields.shape).optional(),
});
type Widget = z.output<typeof widget>;
registerKind({ kind: "Widget", singular: "widget", plural: "widgets", shortNames: ["wd"], schema: widget, statusFields: widgetStatusFields });

// 2. The plan (pure) and the controller (acts through the ports).
interface WidgetPlanInput {
  name: string;
  spec: Widget["spec"];
  pool: LivePool | undefined;
}
type WidgetPlan = { waitingFor: string } | { steps: ({ type: "create"; capacity: number } | { type: "grow"; capacity: number })[]; volume: string };
const volumeOf = (name: string) => `widget-${name}`;

function planWidget({ name, spec, pool }: WidgetPlanInput): WidgetPlan {
  if (!pool?.active) return { waitingFor: `pool ${spec.pool}` };
  const existing = pool.volumes.get(volumeOf(name));
  if (!existing) return { volume: volumeOf(name), steps: [{ type: "create", capacity: spec.size }] };
  return { volume: volumeOf(name), steps: existing.capacity < spec.size ? [{ type: "grow", capacity: spec.size }] : [] };
}

const WIDGET = "Widget" as KindName; // a run-time kind: not in the built-in KindName union
const widgetController: KindController<KindName, WidgetPlanInput, WidgetPlan> = {
  kind: WIDGET,
  order: 40,
  readsOnlyEventedFacts: () => false,
  ownedKeys: (live) => // (a test kind: every widget volume is this instance's)
    [...(live.pools.get("default")?.volumes.keys() ?? [])].filter((v) => v.startsWith("widget-")).map((v) => `Widget/${v.slice("widget-".length)}`),
  wakeFor: () => [],
  async planInput(_ctx, target, live) {
    const spec = (target.object as unknown as Widget).spec;
    return { name: target.name, spec, pool: live.pools.get(spec.pool) };
  },
  plan: planWidget,
  changes: (plan) => ("waitingFor" in plan ? [`waiting for ${plan.waitingFor}`] : plan.steps.map((s) => `${s.type} ${s.capacity}`)),
  async reconcile(ctx, { key, name, stored, since }) {
    const live = await ctx.live(since);
    const pool = live.pools.get("default");
    if (!stored) {
      if (pool?.volumes.has(volumeOf(name))) await ctx.ports.hypervisor.deleteVolume(pool.facts.uuid, volumeOf(name));
      await ctx.record.deleted(`volume ${volumeOf(name)} deleted`);
      return { ready: true };
    }
    const input = await widgetController.planInput(ctx, { key, name, object: stored.object, specHash: stored.specHash, file: stored.location.file }, live);
    const plan = planWidget(input);
    if ("waitingFor" in plan) throw new DependencyNotReadyError(`waiting for ${plan.waitingFor}`);
    for (const step of plan.steps) {
      if (step.type === "create") await ctx.ports.hypervisor.createVolume(input.pool!.facts.uuid, buildVolumeXml(plan.volume, step.capacity, "raw"));
      else await ctx.ports.hypervisor.resizeVolume(input.pool!.facts.uuid, plan.volume, step.capacity);
    }
    if (plan.steps.length) await ctx.record.event("Normal", "Converged", plan.steps.map((s) => s.type).join(", "));
    const volume = (await ctx.live(ctx.ports.clock.now())).pools.get("default")?.volumes.get(plan.volume);
    return { ready: true, report: { reason: "Succeeded", message: `volume ${plan.volume} is there`, facts: { volume: plan.volume, capacity: volume?.capacity } as never } };
  },
};

test("a kind added outside src/ runs through the manager: read, reconciled, status written, pruned", async () => {
  const dir = await tempDir("kvmctl-widget-");
  fs.mkdirSync(path.join(dir, "widgets"));
  const file = path.join(dir, "widgets", "w1.yaml");
  const manifest = `# a test-only kind\napiVersion: kvmctl.dev/v1alpha1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 4Mi\n`;
  fs.writeFileSync(file, manifest);
  const ports = fakePorts();
  await ports.hypervisor.addForeignPool("default", { path: "/var/lib/libvirt/images" });
  const store = new ManifestStore({ dir, diskCache: false });
  const manager = testManager(store, ports, { concurrency: 2, controllers: [...builtinControllers(), widgetController] });

  // Reconciled after the built-in kinds, before the firewall singleton.
  const reports = await manager.runOnce();
  assert.deepEqual(reports.map((r) => [r.key, r.outcome]), [["Widget/w1", "ready"], ["Firewall/host", "ready"]]);
  assert.deepEqual(ports.hypervisor.calls, [`createVolume ${ports.hypervisor.uuidOf("pool", "default")} widget-w1`]);
  const text = fs.readFileSync(file, "utf8");
  assert.ok(text.startsWith(manifest), "nothing outside the status block changed");
  const status = (parse(text) as { status: { observedGeneration: number; volume: string; capacity: number; conditions: { type: string; status: string; reason: string }[] } }).status;
  assert.equal(status.observedGeneration, 1);
  assert.equal(status.volume, "widget-w1");
  assert.equal(status.capacity, 4 * 1024 ** 2);
  assert.deepEqual(status.conditions.map((c) => [c.type, c.status, c.reason]), [["Ready", "True", "Succeeded"]]);
  assert.equal((await store.readEvents("Widget/w1")).at(-1)?.reason, "Converged", "its events are kept like any kind's");

  // A second pass changes nothing.
  ports.hypervisor.clearCalls();
  await manager.runOnce();
  assert.deepEqual(ports.hypervisor.calls, []);

  // Removed by hand as the last manifest: an emptied directory is not pruned (prune-policy.ts).
  fs.rmSync(file);
  const held = await manager.runOnce();
  assert.ok(held.some((r) => r.key === "Widget/w1" && r.ready === false));
  assert.deepEqual(ports.hypervisor.calls, [], "nothing pruned from an emptied directory");
  assert.equal((await store.readEvents("Widget/w1")).at(-1)?.reason, "DirectoryEmpty");

  // `kvmctl delete` (deleteObject) says it is meant: the manager finds the object through ownedKeys and prunes it.
  fs.writeFileSync(file, manifest);
  await manager.runOnce();
  assert.ok(await store.deleteObject("Widget/w1"));
  const afterDelete = await manager.runOnce();
  assert.ok(afterDelete.some((r) => r.key === "Widget/w1" && r.outcome === "ready"));
  assert.deepEqual(ports.hypervisor.calls, [`deleteVolume ${ports.hypervisor.uuidOf("pool", "default")} widget-w1`]);
  assert.equal((await store.readEvents("Widget/w1")).at(-1)?.reason, "Deleted");
});

test("a failing reconcile of a test-only kind gets its status from the one status writer", async () => {
  const dir = await tempDir("kvmctl-widget-wait-");
  const file = path.join(dir, "w2.yaml");
  fs.writeFileSync(file, `apiVersion: kvmctl.dev/v1alpha1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 1Mi}\n`);
  const ports = fakePorts(); // no pool "default": the widget waits
  const manager = testManager(new ManifestStore({ dir, diskCache: false }), ports, { controllers: [widgetController] });
  const [report] = await manager.runOnce();
  assert.equal(report?.outcome, "waiting");
  const status = (parse(fs.readFileSync(file, "utf8")) as { status: { conditions: { type: string; status: string; reason: string; message: string }[] } }).status;
  assert.deepEqual(status.conditions.map((c) => [c.type, c.status, c.reason]), [["Ready", "False", "DependencyNotReady"], ["Reconciling", "True", "DependencyNotReady"]]);
  assert.match(status.conditions[0]!.message, /waiting for pool default/);
});

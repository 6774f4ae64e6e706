// The manager's hooks (src/controllers/metrics.ts) wired to the real registry, over a real
// manifest directory and fake ports: objects by Ready, reconcile totals, drift repairs counted
// only for an object already Ready for its spec, firewall syncs, and the first full pass.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { hostPathPolicy } from "../../../src/controllers/host-path-policy.js";
import { KvmctlMetrics } from "../../../src/metrics/registry.js";
import { ManifestStore } from "../../../src/store/index.js";
import { fakePorts, testManager } from "../helpers/fake-ports.js";
import { tempDir } from "../store/helpers.js";

async function value(metrics: KvmctlMetrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    for (const v of metric.values as { metricName?: string; labels: Record<string, string | number>; value: number }[]) {
      if ((v.metricName ?? metric.name) === name && Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l)) return v.value;
    }
  }
  return undefined;
}

test("a pool stopped by hand after it was Ready is one drift repair; its first convergence is none", async () => {
  const dir = await tempDir("kvmctl-metrics-");
  const poolDir = await tempDir("kvmctl-metrics-pool-");
  fs.writeFileSync(path.join(dir, "pool.yaml"), `apiVersion: kvmctl.dev/v1alpha1\nkind: StoragePool\nmetadata:\n  name: data\nspec:\n  type: dir\n  path: ${poolDir}\n`);
  fs.writeFileSync(path.join(dir, "bad.yaml"), `apiVersion: kvmctl.dev/v1alpha1\nkind: Network\nmetadata:\n  name: bad\nspec:\n  mode: nonsense\n`);
  const ports = fakePorts();
  const metrics = new KvmctlMetrics();
  const store = new ManifestStore({ dir, diskCache: false });
  const manager = testManager(store, ports, { metrics: metrics.manager, hostPaths: hostPathPolicy([`pool=${path.dirname(poolDir)}`]) });
  metrics.setObjectSource(() => manager.objectStates());

  const first = await manager.runOnce();
  assert.equal(first.find((r) => r.key === "StoragePool/data")?.outcome, "ready", JSON.stringify(first));
  assert.equal(await value(metrics, "kvmctl_objects", { kind: "StoragePool", ready: "True" }), 1);
  assert.equal(await value(metrics, "kvmctl_objects", { kind: "Network", ready: "False" }), 1, "an invalid manifest is not Ready");
  assert.equal(await value(metrics, "controller_runtime_reconcile_total", { controller: "StoragePool", result: "success" }), 1);
  assert.equal(await value(metrics, "controller_runtime_reconcile_total", { controller: "Network", result: "error" }), 1);
  assert.equal(await value(metrics, "controller_runtime_reconcile_total", { controller: "Firewall/host", result: "success" }), 1);
  assert.equal(await value(metrics, "kvmctl_drift_repairs_total", { kind: "StoragePool", what: "start" }), undefined, "converging to a new spec is not drift");
  assert.ok((await value(metrics, "kvmctl_firewall_syncs_total", { result: "applied" })) ?? (await value(metrics, "kvmctl_firewall_syncs_total", { result: "unchanged" })));

  await ports.hypervisor.destroyPool(ports.hypervisor.uuidOf("pool", "data")!); // by hand
  await manager.runOnce();
  assert.equal(await value(metrics, "kvmctl_drift_repairs_total", { kind: "StoragePool", what: "start" }), 1);
  await manager.runOnce();
  assert.equal(await value(metrics, "kvmctl_drift_repairs_total", { kind: "StoragePool", what: "start" }), 1, "nothing drifted since");
});

test("the controller's first full pass: every key listed at start reconciled once", async () => {
  const dir = await tempDir("kvmctl-metrics-");
  const ports = fakePorts();
  const manager = testManager(new ManifestStore({ dir, diskCache: false }), ports, { metrics: new KvmctlMetrics().manager });
  let done = false;
  void manager.controller.firstPass.then(() => (done = true));
  await manager.start();
  for (let i = 0; i < 200 && !done; i++) await new Promise((r) => setTimeout(r, 5));
  await manager.stop();
  assert.ok(done, "only the firewall singleton: done after it");
});

// Metrics, health and events on the real stack: a controller with --metrics-address on a port
// the kernel picks serves /healthz at once and /readyz once its first full pass is done;
// /metrics counts reconciles, virsh processes and objects by Ready; a pool destroyed by hand
// is started again and counted as a drift repair; `kvmctl events` lists what happened.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ResultPromise } from "execa";
import { assertInTestEnv, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, virsh } from "./harness.js";

const pool = testName("metrics");
let run: E2eDirs;
let controller: ResultPromise | undefined;

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-metrics");
});

after(async () => {
  if (controller && controller.exitCode === null) controller.kill("SIGKILL");
  await virsh("pool-destroy", pool);
  await virsh("pool-undefine", pool);
  run?.cleanUp();
});

const sample = (text: string, series: string): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

test("metrics, health and events of a running controller", async (t) => {
  fs.writeFileSync(path.join(run.dir, "pool.yaml"), `apiVersion: kvmctl.dev/v1alpha1\nkind: StoragePool\nmetadata:\n  name: ${pool}\nspec:\n  type: dir\n  path: ${path.join(run.root, "images")}\n`);
  const startedAt = Date.now();
  controller = run.startController(["--metrics-address", "127.0.0.1:0"]);
  const serving = await run.waitForLog("the metrics server", (l) => typeof l.msg === "string" && l.msg.startsWith("serving ") && l.msg.includes("/metrics") && l.time >= startedAt);
  const url = String((serving as { url?: unknown }).url);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const metrics = async () => (await fetch(`${url}/metrics`)).text();

  await t.test("/healthz at once; /readyz after the first full pass", async () => {
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    await run.waitUntil("/readyz 200", async () => (await fetch(`${url}/readyz`)).status === 200, 60_000);
    assert.ok(run.logLines().some((l) => l.msg === "first full pass done: ready" && l.time >= startedAt));
  });

  await t.test("/metrics: reconciles, virsh processes, objects by Ready", async () => {
    await run.waitUntil("the pool Ready in kvmctl_objects", async () => sample(await metrics(), 'kvmctl_objects{kind="StoragePool",ready="True"}') === 1, 60_000);
    const text = await metrics();
    assert.ok(sample(text, 'controller_runtime_reconcile_total{controller="StoragePool",result="success"}')! >= 1, text);
    assert.ok(sample(text, 'controller_runtime_reconcile_total{controller="Firewall/host",result="success"}')! >= 1, text);
    assert.ok(sample(text, 'kvmctl_virsh_commands_total{command="pool-define"}')! >= 1, text);
    assert.ok(sample(text, 'kvmctl_virsh_commands_total{command="batch"}')! >= 1, text);
    assert.ok(sample(text, 'workqueue_adds_total{name="StoragePool"}')! >= 1, text);
    assert.equal(sample(text, 'kvmctl_drift_repairs_total{kind="StoragePool",what="start"}'), undefined, "its creation is no drift");
    assert.doesNotMatch(text, new RegExp(pool), "no object names in labels");
  });

  await t.test("pool-destroy by hand: started again, one drift repair", async () => {
    assert.equal((await virsh("pool-destroy", pool)).exitCode, 0);
    await run.waitUntil("the drift repair counted", async () => (sample(await metrics(), 'kvmctl_drift_repairs_total{kind="StoragePool",what="start"}') ?? 0) >= 1, 60_000);
    assert.match(String((await virsh("pool-info", pool)).stdout), /^State:\s+running$/m);
  });

  await t.test("kvmctl events lists what happened", async () => {
    const events = await kvmctl(["--dir", run.dir, "events", `pool/${pool}`]);
    assert.equal(events.exitCode, 0, events.stderr);
    const lines = events.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^LAST SEEN +TYPE +REASON +OBJECT +MESSAGE$/);
    assert.ok(lines.slice(1).every((l) => l.includes(`StoragePool/${pool}`)), events.stdout);
    assert.ok(lines.some((l) => /Normal +Converged/.test(l)), events.stdout);
  });

  await t.test("SIGTERM: the server stops with the controller, exit 0", async () => {
    controller!.kill("SIGTERM");
    const result = await controller!;
    assert.equal(result.exitCode, 0, run.logTail());
    await assert.rejects(fetch(`${url}/healthz`));
  });
});

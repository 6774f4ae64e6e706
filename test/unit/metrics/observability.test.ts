// The controller command's wiring of metrics and health (src/cli/commands/controller-metrics.ts):
// --metrics-address parsed up front, /readyz turning 200 when the manager's first full pass is
// done, kvmctl_objects read from the manager, an explicit address that is taken refused.
import assert from "node:assert/strict";
import { test } from "node:test";
import { prepareObservability } from "../../../src/cli/commands/controller-metrics.js";
import { CliError, UsageError } from "../../../src/cli/errors.js";
import type { Manager } from "../../../src/controllers/manager.js";
import { startMetricsServer } from "../../../src/metrics/server.js";

const logged: string[] = [];
const logger = { info: (_: object, m?: string) => void logged.push(`info ${m}`), warn: (_: object, m?: string) => void logged.push(`warn ${m}`), error() {}, debug() {}, child() { return logger; } };

function fakeManager(): { manager: Manager; passDone: () => void } {
  let passDone!: () => void;
  const firstPass = new Promise<void>((resolve) => (passDone = resolve));
  const manager = { controller: { firstPass }, objectStates: () => [{ kind: "VirtualMachine", ready: "True" }] } as unknown as Manager;
  return { manager, passDone };
}

test("served on an explicit loopback address: /readyz 503 until the first pass, objects from the manager", async () => {
  const env = process.env.NOTIFY_SOCKET;
  delete process.env.NOTIFY_SOCKET;
  const observability = await prepareObservability("127.0.0.1:0", false);
  assert.ok(observability.metrics);
  const { manager, passDone } = fakeManager();
  await observability.start(manager, logger);
  assert.ok(logged.some((l) => l.startsWith("info serving")), logged.join("\n"));
  const url = observability.url!;
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal((await fetch(`${url}/healthz`)).status, 200);
  assert.equal((await fetch(`${url}/readyz`)).status, 503);
  passDone();
  for (let i = 0; i < 100 && !logged.includes("info first full pass done: ready"); i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal((await fetch(`${url}/readyz`)).status, 200);
  const text = await (await fetch(`${url}/metrics`)).text();
  assert.match(text, /^kvmctl_objects\{kind="VirtualMachine",ready="True"\} 1$/m);
  await observability.stop(logger);
  if (env !== undefined) process.env.NOTIFY_SOCKET = env;
});

test("0 turns it off, --once serves nothing, a bad address is a usage error, an explicit address taken is an error", async () => {
  assert.equal((await prepareObservability("0", false)).metrics, undefined);
  assert.equal((await prepareObservability(undefined, true)).metrics, undefined);
  await assert.rejects(prepareObservability("9630", false), UsageError);
  const other = await startMetricsServer({ host: "127.0.0.1", port: 0, metrics: async () => ({ contentType: "text/plain", body: "" }), ready: () => true });
  try {
    const observability = await prepareObservability(`127.0.0.1:${other.port}`, false);
    await assert.rejects(observability.start(fakeManager().manager, logger), (error) => error instanceof CliError && /EADDRINUSE/.test(error.message));
  } finally {
    await other.close();
  }
});

test("with the manager's store, the status page is served: its objects from the store's last snapshot", async () => {
  const { pageFixture } = await import("./page-fixture.js");
  const { store, cleanup } = await pageFixture();
  const observability = await prepareObservability("127.0.0.1:0", false);
  try {
    await observability.start(fakeManager().manager, logger, store);
    assert.ok(logged.some((l) => l.startsWith("info serving the status page")), logged.join("\n"));
    const page = await fetch(`${observability.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    const data = (await (await fetch(`${observability.url}/api/objects`)).json()) as { controllerReady: boolean; objects: { kind: string; name: string }[] };
    assert.equal(data.controllerReady, false);
    assert.deepEqual(data.objects.map((o) => `${o.kind}/${o.name}`), ["Network/lan", "StoragePool/images", "VirtualMachine/web1"]);
  } finally {
    await observability.stop(logger);
    cleanup();
  }
});

// The metrics and health endpoints over real HTTP on 127.0.0.1 (a port the kernel picks), and
// --metrics-address parsing.
import assert from "node:assert/strict";
import http from "node:http";
import { test } from "node:test";
import { DEFAULT_METRICS_ADDRESS, MetricsAddressError, parseMetricsAddress } from "../../../src/metrics/address.js";
import { KvmctlMetrics } from "../../../src/metrics/registry.js";
import { startMetricsServer } from "../../../src/metrics/server.js";

function request(url: string, method = "GET"): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"] ?? ""), body }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("/metrics, /healthz and /readyz (503 until the first full pass, then 200) over HTTP", async () => {
  const metrics = new KvmctlMetrics();
  metrics.controller.reconcileStarted("VirtualMachine/web1");
  metrics.controller.reconcileFinished("VirtualMachine/web1", "success", 12, false);
  metrics.virsh("dumpxml", 5);
  let ready = false;
  const server = await startMetricsServer({ host: "127.0.0.1", port: 0, metrics: () => metrics.render(), ready: () => ready });
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(server.port > 0);
    const scrape = await request(`${server.url}/metrics`);
    assert.equal(scrape.status, 200);
    assert.match(scrape.type, /^text\/plain; version=0\.0\.4/);
    assert.match(scrape.body, /^controller_runtime_reconcile_total\{controller="VirtualMachine",result="success"\} 1$/m);
    assert.match(scrape.body, /^controller_runtime_reconcile_time_seconds_count\{controller="VirtualMachine"\} 1$/m);
    assert.match(scrape.body, /^kvmctl_virsh_commands_total\{command="dumpxml"\} 1$/m);
    for (const name of ["controller_runtime_reconcile_errors_total", "controller_runtime_active_workers", "controller_runtime_max_concurrent_reconciles", "workqueue_depth", "workqueue_adds_total", "workqueue_retries_total", "workqueue_queue_duration_seconds", "workqueue_work_duration_seconds", "kvmctl_objects", "kvmctl_drift_repairs_total", "kvmctl_virsh_command_duration_seconds", "kvmctl_firewall_syncs_total", "kvmctl_git_pulls_total"]) {
      assert.match(scrape.body, new RegExp(`^# HELP ${name} `, "m"), name);
    }
    assert.doesNotMatch(scrape.body, /web1/, "no object names");
    assert.deepEqual(await request(`${server.url}/healthz`), { status: 200, type: "text/plain; charset=utf-8", body: "ok\n" });
    assert.equal((await request(`${server.url}/readyz`)).status, 503);
    ready = true;
    assert.equal((await request(`${server.url}/readyz?verbose`)).status, 200);
    assert.equal((await request(`${server.url}/readyz`, "HEAD")).body, "");
    assert.equal((await request(`${server.url}/`)).status, 404);
    assert.equal((await request(`${server.url}/metrics`, "POST")).status, 405);
  } finally {
    await server.close();
  }
  await assert.rejects(request(`${server.url}/healthz`), "closed");
});

test("a port in use is an error at start", async () => {
  const first = await startMetricsServer({ host: "127.0.0.1", port: 0, metrics: async () => ({ contentType: "text/plain", body: "" }), ready: () => true });
  try {
    await assert.rejects(startMetricsServer({ host: "127.0.0.1", port: first.port, metrics: async () => ({ contentType: "text/plain", body: "" }), ready: () => true }), /EADDRINUSE/);
  } finally {
    await first.close();
  }
});

test("--metrics-address: loopback by default, 0 turns it off, explicit addresses as given", () => {
  assert.deepEqual(parseMetricsAddress(DEFAULT_METRICS_ADDRESS), { host: "127.0.0.1", port: 9630, loopback: true });
  assert.equal(parseMetricsAddress("0"), undefined);
  assert.deepEqual(parseMetricsAddress("[::1]:9630"), { host: "::1", port: 9630, loopback: true });
  assert.deepEqual(parseMetricsAddress("localhost:8080"), { host: "localhost", port: 8080, loopback: true });
  assert.deepEqual(parseMetricsAddress("192.0.2.7:9630"), { host: "192.0.2.7", port: 9630, loopback: false });
  assert.deepEqual(parseMetricsAddress(":9630"), { host: undefined, port: 9630, loopback: false });
  assert.deepEqual(parseMetricsAddress("127.0.0.1:0"), { host: "127.0.0.1", port: 0, loopback: true });
  for (const bad of ["9630", "127.0.0.1", "127.0.0.1:70000", "example.com:9630", "::1:9630", "[127.0.0.1]:9630", "1.2.3.4:x"]) {
    assert.throws(() => parseMetricsAddress(bad), MetricsAddressError, bad);
  }
});

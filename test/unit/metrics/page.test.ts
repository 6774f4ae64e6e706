// The status page's data and serving (src/metrics/page.ts, page-assets.ts, server.ts): every
// object with its Ready condition, phase, the MESSAGE `get -o wide` prints and its aggregated
// events; no spec field; markup from manifests and events only ever as escaped JSON text; the
// page's files under a Content-Security-Policy that allows only this server.
import assert from "node:assert/strict";
import { test } from "node:test";
import { MESSAGE } from "../../../src/cli/columns.js";
import { pageData, safeJson, type PageData } from "../../../src/metrics/page.js";
import { PAGE_CSS, PAGE_HTML, PAGE_JS } from "../../../src/metrics/page-assets.js";
import { startMetricsServer } from "../../../src/metrics/server.js";
import { HOSTILE_CONDITION, HOSTILE_EVENT, pageFixture, SECRET_PATH } from "./page-fixture.js";

const NOW = Date.parse("2026-01-01T10:05:00.000Z");

test("pageData: each object's Ready, phase, get -o wide's MESSAGE and its events, newest first and aggregated", async () => {
  const { store, cleanup } = await pageFixture();
  try {
    const data = await pageData(store, { now: NOW, ready: true });
    assert.equal(data.generatedAt, "2026-01-01T10:05:00.000Z");
    assert.equal(data.controllerReady, true);
    assert.equal(data.loaded, true);
    assert.deepEqual(
      data.objects.map((o) => [o.kind, o.name, o.ready.status, o.ready.reason, o.phase]),
      [
        ["Network", "lan", "False", "ReconcileFailed", null],
        ["StoragePool", "images", "Unknown", null, null],
        ["VirtualMachine", "web1", "True", "Running", "Running"],
      ],
    );
    for (const object of data.objects) {
      const stored = store.snapshot!.objects.get(`${object.kind}/${object.name}`)!;
      assert.equal(object.message, MESSAGE.cell(stored, NOW), "the same text as get -o wide's MESSAGE");
    }
    const web1 = data.objects.find((o) => o.name === "web1")!;
    assert.equal(web1.message, "Running: the domain is running");
    assert.deepEqual(web1.events, [
      { type: "Normal", reason: "Started", message: "started the domain web1", count: 2, firstSeen: "2026-01-01T10:00:05.000Z", lastSeen: "2026-01-01T10:01:05.000Z" },
      { type: "Normal", reason: "Defined", message: "defined the domain web1", count: 1, firstSeen: "2026-01-01T10:00:00.000Z", lastSeen: "2026-01-01T10:00:00.000Z" },
    ]);
    assert.equal(data.objects.find((o) => o.name === "images")!.message, "-");
    assert.deepEqual(data.objects.find((o) => o.name === "images")!.events, []);
    assert.equal(data.objects.find((o) => o.name === "lan")!.events[0]!.message, HOSTILE_EVENT);
  } finally {
    cleanup();
  }
});

test("pageData: a status the controller wrote after the last read shows at once (no wait for a rescan)", async () => {
  const { store, cleanup } = await pageFixture();
  try {
    const snapshot = store.snapshot;
    const status = { phase: "Stopped", conditions: [{ type: "Ready", status: "False", reason: "Stopped", message: "the domain is shut off", lastTransitionTime: "2026-01-01T10:04:00Z" }] };
    assert.equal(await store.writeStatus("VirtualMachine/web1", status), true);
    assert.equal(store.snapshot, snapshot, "no read since: the snapshot still has the old status");
    const web1 = (await pageData(store, { now: NOW })).objects.find((o) => o.name === "web1")!;
    assert.deepEqual([web1.ready.status, web1.ready.reason, web1.phase, web1.message], ["False", "Stopped", "Stopped", "Stopped: the domain is shut off"]);
  } finally {
    cleanup();
  }
});

test("pageData: no spec field, no status field but Ready, phase and MESSAGE's", async () => {
  const { store, cleanup } = await pageFixture();
  try {
    const text = JSON.stringify(await pageData(store, { now: NOW }));
    assert.ok(!text.includes(SECRET_PATH), "a secret file's path in the spec is never served");
    for (const spec of ["passwordSecretFile", "0.0.0.0", "kvbr-lan", "192.168.150", "/var/lib/kvmctl/images", "2Gi", "lastTransitionTime", "ssh"]) {
      assert.ok(!text.includes(spec), `${spec} is not served`);
    }
    const object = (await pageData(store, { now: NOW })).objects[0]!;
    assert.deepEqual(Object.keys(object).sort(), ["events", "kind", "message", "name", "phase", "ready"]);
  } finally {
    cleanup();
  }
});

test("pageData before the controller's first read, and for an invalid manifest (its problems not quoted)", async () => {
  const none = await pageData({ snapshot: undefined, readAllEvents: async () => new Map() }, { now: NOW });
  assert.deepEqual(none, { generatedAt: "2026-01-01T10:05:00.000Z", controllerReady: false, loaded: false, objects: [] });
  const invalid = await pageData(
    {
      snapshot: { objects: new Map(), invalid: new Map([["VirtualMachine/bad", [{ location: { file: "bad.yaml", document: 1 }, message: `spec.consoles.vnc.passwordSecretFile: ${SECRET_PATH} is not allowed` }]]]), unreadableFiles: new Map(), problems: [] },
      readAllEvents: async () => new Map([["VirtualMachine/bad", [{ time: "2026-01-01T10:00:00Z", type: "Warning", reason: "InvalidSpec", message: "the spec is invalid" }]]]),
    },
    { now: NOW },
  );
  assert.equal(invalid.objects.length, 1);
  const bad = invalid.objects[0]!;
  assert.deepEqual([bad.kind, bad.name, bad.ready, bad.phase], ["VirtualMachine", "bad", { status: "False", reason: "InvalidSpec" }, null]);
  assert.match(bad.message, /^InvalidSpec: the manifest has 1 problem \(kvmctl describe VirtualMachine\/bad shows them\)$/);
  assert.equal(bad.events[0]!.reason, "InvalidSpec");
  assert.ok(!JSON.stringify(invalid).includes(SECRET_PATH));
});

test("safeJson: markup and line separators escaped, the value unchanged", () => {
  const value = { name: "</script><script>alert(1)</script>", message: "a & b > c\u2028d" };
  const text = safeJson(value);
  assert.doesNotMatch(text, /[<>&\u2028\u2029]/);
  assert.match(text, /\\u003c\/script\\u003e\\u003cscript\\u003e/);
  assert.deepEqual(JSON.parse(text), value);
});

test("the page's files hold no manifest data and build the DOM with textContent only", () => {
  for (const sink of ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute(\"on", "srcdoc"]) {
    assert.ok(!PAGE_JS.includes(sink), `app.js uses no ${sink}`);
  }
  assert.match(PAGE_JS, /textContent/);
  assert.match(PAGE_JS, /fetch\("api\/objects"/);
  assert.doesNotMatch(PAGE_HTML, /<script>|<style>|\sstyle=|\son[a-z]+=|https?:\/\//i, "no inline script or style, nothing from elsewhere");
  assert.match(PAGE_HTML, /<script src="app\.js" defer><\/script>/);
  assert.doesNotMatch(PAGE_CSS, /url\(|@import/);
});

test("served over HTTP: /, /app.js, /app.css and /api/objects with CSP and nosniff; markup only escaped; loopback Host names only", async () => {
  const { store, cleanup } = await pageFixture();
  const server = await startMetricsServer({ host: "127.0.0.1", port: 0, metrics: async () => ({ contentType: "text/plain", body: "" }), ready: () => true, pageData: () => pageData(store, { ready: true }) });
  try {
    const page = await fetch(`${server.url}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    const csp = page.headers.get("content-security-policy") ?? "";
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) assert.ok(csp.includes(directive), `${directive} in ${csp}`);
    assert.equal(page.headers.get("x-content-type-options"), "nosniff");
    assert.equal(await page.text(), PAGE_HTML);
    const js = await fetch(`${server.url}/app.js`);
    assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(await js.text(), PAGE_JS);
    assert.equal((await fetch(`${server.url}/app.css`)).headers.get("content-type"), "text/css; charset=utf-8");

    const api = await fetch(`${server.url}/api/objects`);
    assert.equal(api.status, 200);
    assert.equal(api.headers.get("content-type"), "application/json; charset=utf-8");
    assert.equal(api.headers.get("x-content-type-options"), "nosniff");
    const body = await api.text();
    assert.doesNotMatch(body, /[<>]/, "no markup in the JSON as sent");
    assert.ok(!body.includes("<script>") && !body.includes("<img"));
    const data = JSON.parse(body) as PageData;
    assert.equal(data.objects.find((o) => o.name === "lan")!.message, `ReconcileFailed: ${HOSTILE_CONDITION}`, "the text itself arrives intact");
    assert.ok(!body.includes(SECRET_PATH));

    const rebound = await new Promise<number>((resolve, reject) => {
      import("node:http").then((http) => {
        const req = http.request(`${server.url}/api/objects`, { headers: { host: "attacker.example:9630" }, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      }, reject);
    });
    assert.equal(rebound, 403, "a DNS-rebound Host name is refused on a loopback address");
    assert.equal((await fetch(`${server.url.replace("127.0.0.1", "localhost")}/healthz`)).status, 200);
    assert.equal((await fetch(`${server.url}/nope`)).status, 404);
    assert.equal((await fetch(`${server.url}/api/objects`, { method: "POST" })).status, 405);
    assert.equal((await fetch(`${server.url}/metrics`)).headers.get("x-content-type-options"), "nosniff");
  } finally {
    await server.close();
    cleanup();
  }
});

test("a failing provider is a 500 with text, the server goes on", async () => {
  const server = await startMetricsServer({ host: "127.0.0.1", port: 0, metrics: async () => ({ contentType: "text/plain", body: "" }), ready: () => true, pageData: async () => Promise.reject(new Error("boom")) });
  try {
    const response = await fetch(`${server.url}/api/objects`);
    assert.equal(response.status, 500);
    assert.match(await response.text(), /boom/);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  } finally {
    await server.close();
  }
});

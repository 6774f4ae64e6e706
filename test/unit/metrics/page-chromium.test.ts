// The status page in a real browser: headless Chromium (Debian's `chromium`, installed by
// testenv/provision.ts) loads / from the real server over a real ManifestStore, runs app.js
// under the page's Content-Security-Policy, polls /api/objects and renders the table. The test
// asserts on the DOM Chromium dumps and on its screenshot. Chromium is required: when it is
// missing the test fails, it is not skipped. Its traffic stays on loopback: every host name but
// 127.0.0.1 resolves to nothing, no proxy, no background networking.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { pageData, type PageObject } from "../../../src/metrics/page.js";
import { startMetricsServer } from "../../../src/metrics/server.js";
import { HOSTILE_CONDITION, HOSTILE_EVENT, pageFixture, SECRET_PATH } from "./page-fixture.js";

const CHROMIUM = "chromium";
/** Names cannot hold markup (they are DNS labels), so this one is added to the provider's data: the page must render any text as text. */
const HOSTILE_NAME = `<script>document.title="pwned-name"</script><i>x</i>`;

async function chromium(profile: string, args: string[]): Promise<string> {
  const home = path.join(profile, "home");
  fs.mkdirSync(home, { recursive: true });
  try {
    const result = await execa(
      CHROMIUM,
      [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        `--user-data-dir=${path.join(profile, "data")}`,
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-domain-reliability",
        "--no-pings",
        "--no-proxy-server",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--disable-dev-shm-usage",
        ...args,
      ],
      {
        env: { HOME: home, XDG_CONFIG_HOME: path.join(home, ".config"), XDG_CACHE_HOME: path.join(home, ".cache"), LANG: "C.UTF-8" },
        extendEnv: true,
        timeout: 90_000,
        stdin: "ignore",
      },
    );
    return result.stdout;
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") {
      throw new Error(`${CHROMIUM} is not installed: this test needs Debian's chromium (apt-get install -y --no-install-recommends chromium; testenv/provision.ts installs it)`);
    }
    throw error;
  }
}

/** The <tbody> Chromium rendered for one object. */
function objectBody(dom: string, key: string): string {
  const start = dom.indexOf(`data-key="${key}"`);
  assert.ok(start >= 0, `the page shows ${key}`);
  const end = dom.indexOf("</tbody>", dom.indexOf("</table>", start) + 1);
  return dom.slice(start, end);
}

test("headless Chromium renders every object, its Ready status and events, markup as text; a screenshot", { timeout: 240_000 }, async () => {
  const { store, cleanup } = await pageFixture();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-chromium-"));
  const hostile: PageObject = {
    kind: "VirtualMachine",
    name: HOSTILE_NAME,
    ready: { status: "False", reason: "Stalled" },
    phase: "Failed",
    message: HOSTILE_CONDITION,
    events: [{ type: "Warning", reason: "Stalled", message: HOSTILE_EVENT, count: 3, firstSeen: "2026-01-01T10:00:00Z", lastSeen: "2026-01-01T10:03:00Z" }],
  };
  let served = 0;
  const server = await startMetricsServer({
    host: "127.0.0.1",
    port: 0,
    metrics: async () => ({ contentType: "text/plain", body: "" }),
    ready: () => true,
    pageData: async () => {
      // From the second poll on, an event the first did not have: the page must show it (live refresh).
      if (++served === 2) await store.recordEvent("StoragePool/images", { time: new Date().toISOString(), type: "Normal", reason: "Polled", message: "recorded after the first poll" });
      const data = await pageData(store, { ready: true });
      return { ...data, objects: [...data.objects, hostile] };
    },
  });
  try {
    const url = `${server.url}/`;
    const dom = await chromium(path.join(profile, "dom"), ["--dump-dom", "--virtual-time-budget=5000", url]);
    assert.ok(served >= 2, `the page polled /api/objects again (${served} fetches)`);
    assert.match(dom, /<title>kvmctl status<\/title>/, "the title is the page's own (no injected script ran)");
    assert.doesNotMatch(dom, /pwned-[a-z]+<\/title>/);
    assert.match(dom, /id="summary">4 objects, 1 ready; first full pass done</);

    for (const [key, status, reason] of [
      ["VirtualMachine/web1", "True", "Running"],
      ["Network/lan", "False", "ReconcileFailed"],
      ["StoragePool/images", "Unknown", "-"],
    ] as const) {
      const body = objectBody(dom, key);
      assert.ok(body.includes(`<td class="name">${key.split("/")[1]}</td>`), `${key}: its name`);
      assert.ok(body.includes(`<span class="ready ready-${status}">${status}</span>`), `${key}: Ready ${status}`);
      assert.ok(body.includes(`<td class="reason">${reason}</td>`), `${key}: reason ${reason}`);
    }
    const web1 = objectBody(dom, "VirtualMachine/web1");
    assert.ok(web1.includes(`<td class="phase">Running</td>`));
    assert.ok(web1.includes(`<td class="message">Running: the domain is running</td>`));
    assert.ok(web1.includes(`<td class="event-message">started the domain web1</td>`), "an event message");
    assert.ok(web1.includes(`<td class="event-count">2</td>`), "aggregated: count 2");
    assert.ok(objectBody(dom, "StoragePool/images").includes(`<td class="event-message">recorded after the first poll</td>`), "refreshed: an event recorded after the first poll");

    // Markup from a condition message, an event message and a name: text, never elements.
    const escaped = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
    assert.ok(dom.includes(`<td class="message">ReconcileFailed: ${escaped(HOSTILE_CONDITION)}</td>`), "the condition message as text");
    assert.ok(dom.includes(`<td class="event-message">${escaped(HOSTILE_EVENT)}</td>`), "the event message as text");
    assert.ok(dom.includes(`<td class="name">${escaped(HOSTILE_NAME)}</td>`), "the name as text");
    assert.ok(!dom.includes("<script>document.title"), "no <script> element from the data");
    assert.ok(!dom.includes("<img"), "no <img> element from the data");
    assert.ok(!dom.includes("<b>bridge busy</b>") && !dom.includes("<i>x</i>"), "no markup from the data");
    assert.ok(!dom.includes(SECRET_PATH), "no spec field");

    const png = path.join(profile, "page.png");
    await chromium(path.join(profile, "shot"), [`--screenshot=${png}`, "--window-size=1200,800", "--hide-scrollbars", "--virtual-time-budget=5000", url]);
    assert.ok(fs.existsSync(png), "the screenshot was written");
    const bytes = fs.readFileSync(png);
    assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "a PNG");
    assert.equal(bytes.readUInt32BE(16), 1200, "1200 pixels wide");
    assert.equal(bytes.readUInt32BE(20), 800, "800 pixels high");
    assert.ok(bytes.length > 5 * 1024, `not a blank page: ${bytes.length} bytes`);
    const keep = process.env.KVMCTL_PAGE_SCREENSHOT;
    if (keep) fs.copyFileSync(png, keep);
  } finally {
    await server.close();
    cleanup();
    fs.rmSync(profile, { recursive: true, force: true });
  }
});

// The nft monitor process (src/adapters/nft-monitor.ts) around a stand-in for `nft -j monitor`
// (a node process printing lines nft printed, test/fixtures/nft-1.0.6/monitor.json): lines cut
// across writes, own and foreign changes told apart, a start reported (with a change) only once
// the process listens, a process that ends started again, stop() ending it by its handle; and
// the reading of /proc/net/netlink that tells when nft listens.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { NftMonitor, subscribedToNftables } from "../../../src/adapters/nft-monitor.js";
import type { FirewallWatchHandlers } from "../../../src/ports/index.js";

const fixture = JSON.parse(fs.readFileSync(new URL("../../fixtures/nft-1.0.6/monitor.json", import.meta.url), "utf8")) as { own: { family: string; name: string }; steps: { step: string; lines: string[] }[] };
const lineOf = (step: RegExp) => fixture.steps.find((s) => step.test(s.step))!.lines[0]!;
const OWN_FLUSH = lineOf(/flush table inet <own>/);
const ADMIN_TABLE = lineOf(/an admin adds a table/);

type Report = { kind: "changed"; why: string } | { kind: "ignored"; tables: Record<string, number> } | { kind: "started"; pid: number | undefined; restart: boolean } | { kind: "ended"; message: string; retryInMs: number };

/** Handlers that record every report, and a way to wait for one. */
function recorder() {
  const reports: Report[] = [];
  const waiters: { match: (r: Report) => boolean; resolve: (r: Report) => void }[] = [];
  const push = (report: Report) => {
    reports.push(report);
    for (const w of [...waiters]) if (w.match(report)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(report));
  };
  const handlers: FirewallWatchHandlers = {
    changed: (why) => push({ kind: "changed", why }),
    ignored: (tables) => push({ kind: "ignored", tables: Object.fromEntries(tables) }),
    started: ({ pid, restart }) => push({ kind: "started", pid, restart }),
    ended: (message, retryInMs) => push({ kind: "ended", message, retryInMs }),
  };
  const next = (match: (r: Report) => boolean) => {
    const seen = reports.find(match);
    return seen ? Promise.resolve(seen) : new Promise<Report>((resolve) => waiters.push({ match, resolve }));
  };
  return { reports, handlers, next };
}

/**
 * A stand-in for `nft -j monitor`: on its first run it prints a foreign line and the start of
 * an own line, waits until the test has seen it listen (the file `listened`), prints the rest
 * of the line and exits 3 (with a message on stderr); on later runs it prints nothing and keeps
 * running.
 */
function standIn(dir: string): [string, ...string[]] {
  const script = `
    const fs = require("node:fs");
    const [dir, foreign, own] = process.argv.slice(1);
    const runs = dir + "/runs";
    const n = fs.existsSync(runs) ? Number(fs.readFileSync(runs, "utf8")) : 0;
    fs.writeFileSync(runs, String(n + 1));
    if (n > 0) setInterval(() => {}, 1000);
    else {
      process.stdout.write(foreign + "\\n" + own.slice(0, 40));
      const rest = setInterval(() => {
        if (!fs.existsSync(dir + "/listened")) return;
        clearInterval(rest);
        process.stdout.write(own.slice(40) + "\\n", () => { process.stderr.write("netlink: Error: gone\\n"); process.exit(3); });
      }, 10);
    }
  `;
  return [process.execPath, "-e", script, dir, ADMIN_TABLE, OWN_FLUSH];
}

test("own and foreign lines told apart, a line cut across writes read whole; ended → started again with a change; stop() ends it", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-nft-monitor-"));
  const { reports, handlers, next } = recorder();
  // The first time it is asked, the stand-in does not listen yet; then it does.
  let asked = 0;
  const listening = async () => {
    if (asked++ === 0) return false;
    fs.writeFileSync(path.join(dir, "listened"), "");
    return true;
  };
  const monitor = new NftMonitor({ table: fixture.own, handlers, command: standIn(dir), listening }).start();
  try {
    const first = await next((r) => r.kind === "started");
    assert.deepEqual({ ...first, pid: undefined }, { kind: "started", pid: undefined, restart: false });
    assert.ok(asked >= 2, "reported once it listened");
    await next((r) => r.kind === "changed" && /the watch listens:/.test(r.why));
    const ended = await next((r) => r.kind === "ended");
    assert.deepEqual(ended, { kind: "ended", message: "netlink: Error: gone", retryInMs: 250 });
    const restarted = (await next((r) => r.kind === "started" && r.restart)) as Extract<Report, { kind: "started" }>;
    await next((r) => r.kind === "changed" && /listens again/.test(r.why));
    // Before the end: the foreign line ignored, the cut line read whole as one own change.
    const beforeEnd = reports.slice(0, reports.indexOf(ended));
    assert.deepEqual(beforeEnd.filter((r) => r.kind === "ignored" || (r.kind === "changed" && !/listens/.test(r.why))), [
      { kind: "ignored", tables: { "inet kvt-fx-admin": 1 } },
      { kind: "changed", why: `1 change(s) to inet ${fixture.own.name}` },
    ]);
    assert.ok(restarted.pid && restarted.pid !== (first as { pid?: number }).pid);
    process.kill(restarted.pid, 0); // running
    await monitor.stop();
    assert.throws(() => process.kill(restarted.pid!, 0), /ESRCH/, "stop() ended the process");
    assert.equal(reports.filter((r) => r.kind === "ended").length, 1, "a stopped monitor is not reported as ended");
    assert.equal(reports.filter((r) => r.kind === "started").length, 2);
  } finally {
    await monitor.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a command that cannot start is retried with growing delays", async () => {
  const { handlers, next, reports } = recorder();
  const monitor = new NftMonitor({ table: fixture.own, handlers, command: ["/nonexistent/kvt-nft"], listening: async () => true }).start();
  try {
    await next((r) => r.kind === "ended" && r.retryInMs === 500);
    const ended = reports.filter((r): r is Extract<Report, { kind: "ended" }> => r.kind === "ended");
    assert.deepEqual(ended.map((r) => r.retryInMs), [250, 500]);
    assert.match(ended[0]!.message, /ENOENT|kvt-nft/);
    assert.equal(reports.filter((r) => r.kind === "started").length, 0, "never started");
  } finally {
    await monitor.stop();
  }
});

test("nft listens once /proc/net/netlink shows its netfilter socket in the nftables group", () => {
  // Captured in the test namespace while `nft -j monitor` (pid 28821) started: first its socket
  // reading the ruleset (Dump 1, no group), then joined to NFNLGRP_NFTABLES and NFNLGRP_NFTRACE (0x140).
  const header = "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode";
  const others = ["00000000f04f4c79 0   0          00000000 0        0        0     2        0        4       ", "000000003d5699ac 7   0          00000000 0        0        0     2        0        174     "];
  const reading = "0000000066a307b5 12  28821      00000000 33024    0        1     2        0        3994231";
  const joined = "0000000066a307b5 12  28821      00000140 0        0        0     2        0        3994231";
  assert.equal(subscribedToNftables([header, ...others, reading, ""].join("\n"), 28821), false);
  assert.equal(subscribedToNftables([header, ...others, joined, ""].join("\n"), 28821), true);
  assert.equal(subscribedToNftables([header, joined].join("\n"), 28822), false, "another process's socket");
  assert.equal(subscribedToNftables([header, joined.replace(" 12  ", " 0   ")].join("\n"), 28821), false, "not a netfilter socket");
  assert.equal(subscribedToNftables([header, joined.replace("00000140", "00000100")].join("\n"), 28821), false, "only the trace group");
});

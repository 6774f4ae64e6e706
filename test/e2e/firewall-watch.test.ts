// The firewall watch on the real stack (issue 16): a controller with `--firewall-check 10m`, so
// the periodic check cannot be what repairs anything here, and a NAT network with port
// forwards. kvmctl's table flushed by hand comes back (`nft -j monitor` saw it), and the
// repair's own change is compared once and left; an admin's table changed meanwhile is seen and
// ignored; the monitor process killed is started again and still watches; SIGTERM ends it.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { execa, type ResultPromise } from "execa";
import { assertInTestEnv, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, virsh, type LogLine } from "./harness.js";
import { freePort } from "./ssh.js";

const nft = (...args: string[]) => execa("nft", args, { reject: false, timeout: 30_000 });
const network = testName("fw-watch");
const adminTable = testName("fwadmin");
let run: E2eDirs;
let controller: ResultPromise | undefined;

/** Rules in this instance's table; 0 when it is missing. */
async function ruleCount(): Promise<number> {
  const listed = await nft("-j", "list", "table", "inet", run.nftTable);
  if (listed.exitCode !== 0) return 0;
  return (JSON.parse(String(listed.stdout)).nftables as { rule?: unknown }[]).filter((item) => item.rule).length;
}

const since = (time: number, match: (l: LogLine) => boolean) => run.logLines().filter((l) => l.time >= time && match(l));
const watchWoke = (l: LogLine) => l.msg === "the firewall table changed: comparing it now";
const repaired = (l: LogLine) => l.reason === "the table was changed by hand";
const firewallReconcile = (l: LogLine) => l.msg === "reconcile finished" && l.object === "Firewall/host";
/** The admin table's lines the controller saw and ignored since `time`. */
const ignoredAdminLines = (time: number) => since(time, (l) => l.msg === "changes to other tables: ignored").reduce((n, l) => n + ((l.tables as Record<string, number>)[`inet ${adminTable}`] ?? 0), 0);

/** Waits until the controller's nft monitor reports a change to the admin's table: the watch is listening. */
async function adminChangeSeen(): Promise<void> {
  const at = Date.now();
  assert.equal((await nft("add", "table", "inet", adminTable)).exitCode, 0);
  await run.waitUntil("the admin's table change seen and ignored", async () => ignoredAdminLines(at) >= 1, 30_000);
}

/** Flushes kvmctl's table by hand and waits for its rules to be back; returns when the flush was done. */
async function flushAndWaitForRepair(expected: number): Promise<number> {
  const flushedAt = Date.now();
  assert.equal((await nft("flush", "table", "inet", run.nftTable)).exitCode, 0);
  await run.waitForLog("the repair of the flushed table", (l) => l.time >= flushedAt && repaired(l), 30_000);
  await run.waitUntil("the flushed table refilled", async () => (await ruleCount()) === expected, 30_000);
  return flushedAt;
}

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-fw-watch");
  const [a, b] = [await freePort(), await freePort()];
  const file = path.join(run.root, "network.yaml");
  fs.writeFileSync(file, `apiVersion: kvmctl.dev/v1alpha1
kind: Network
metadata:
  name: ${network}
spec:
  mode: nat
  ipv4: {address: 198.19.42.1, prefix: 24}
  portForwards:
    - {hostPort: ${a}, guestAddress: 198.19.42.10, guestPort: 22}
    - {hostPort: ${b}, guestAddress: 198.19.42.11, guestPort: 80}
`);
  const applied = await kvmctl(["--dir", run.dir, "apply", "-f", file]);
  assert.equal(applied.exitCode, 0, applied.stderr);
});

after(async () => {
  if (controller && controller.exitCode === null) controller.kill("SIGKILL");
  await virsh("net-destroy", network);
  await virsh("net-undefine", network);
  await nft("delete", "table", "inet", adminTable);
  await nft("delete", "table", "inet", run.nftTable);
  run?.cleanUp();
});

test("the nftables table is watched: a hand flush repaired with no periodic check; an admin's table ignored; the monitor restarted when killed", async (t) => {
  controller = run.startController(["--firewall-check", "10m"]);
  const ready = await kvmctl(["--dir", run.dir, "wait", `network/${network}`, "--for=condition=Ready", "--timeout=120s"]);
  assert.equal(ready.exitCode, 0, ready.stderr);
  const watching = await run.waitForLog("the watch to start", (l) => l.msg === "watching the firewall table for changes");
  const expected = await ruleCount();
  assert.ok(expected >= 4, `the table holds the forwards' rules (${expected})`);

  await t.test("flushed by hand: the rules come back; the repair's own change is compared once and left", async () => {
    const flushedAt = await flushAndWaitForRepair(expected);
    assert.ok(since(flushedAt, watchWoke).length >= 1, "the monitor's report is what woke the firewall");
    const repair = since(flushedAt, repaired)[0]!;
    // nft monitor reports the repair too, and the firewall is compared once more (queued again
    // if the report came while the repair was still running): it finds the table as applied.
    await run.waitForReconciles("Firewall/host", { after: repair.time });
    assert.ok(since(flushedAt, watchWoke).length >= 2, "the monitor reported the flush and the repair");
    assert.equal(since(flushedAt, repaired).length, 1, "one repair, no loop on its own write");
    assert.equal(await ruleCount(), expected);
  });

  await t.test("an admin's table changed: seen and ignored, no firewall sync until kvmctl's own table changes", async () => {
    const changedAt = Date.now();
    const adminBefore = await nft("list", "table", "inet", adminTable);
    assert.notEqual(adminBefore.exitCode, 0, "no admin table yet");
    for (const args of [["add", "table", "inet", adminTable], ["add", "chain", "inet", adminTable, "input", "{ type filter hook input priority 10 ; policy accept ; }"], ["add", "rule", "inet", adminTable, "input", "tcp", "dport", "9", "accept", "comment", `"not ${run.nftTable}"`]]) {
      assert.equal((await nft(...args)).exitCode, 0, args.join(" "));
    }
    const adminText = String((await nft("list", "table", "inet", adminTable)).stdout);
    // The positive signal: the monitor's lines about all three changes, logged as ignored.
    await run.waitUntil("the admin's three changes seen and ignored", async () => ignoredAdminLines(changedAt) >= 3, 30_000);
    // Then a change to kvmctl's own table: the monitor reads lines in order, so by the time it
    // wakes the firewall for this one, a wake for the admin's would have come before it.
    const flushedAt = await flushAndWaitForRepair(expected);
    const woken = run.logLines().filter((l) => (watchWoke(l) && l.time >= changedAt && l.time < flushedAt) || (firewallReconcile(l) && (l.startedAt as number) >= changedAt && (l.startedAt as number) < flushedAt));
    assert.deepEqual(woken.map((l) => l.msg), [], "the admin's changes woke the firewall");
    assert.equal(String((await nft("list", "table", "inet", adminTable)).stdout), adminText, "kvmctl touched the admin's table");
    assert.equal((await nft("delete", "table", "inet", adminTable)).exitCode, 0);
  });

  await t.test("the monitor process killed: started again (a comparison follows), and it still watches", async () => {
    const pid = watching.monitorPid as number;
    assert.equal(fs.readFileSync(`/proc/${pid}/cmdline`, "utf8"), "nft\0-j\0monitor\0", "the pid logged is the controller's nft monitor");
    const killedAt = Date.now();
    process.kill(pid, "SIGKILL");
    await run.waitForLog("the end of the watch logged", (l) => l.time >= killedAt && l.msg?.startsWith("the firewall watch ended") === true);
    const restarted = await run.waitForLog("the watch started again", (l) => l.time >= killedAt && l.msg === "the firewall watch started again");
    assert.notEqual(restarted.monitorPid, pid);
    await run.waitForReconciles("Firewall/host", { after: restarted.time });
    await adminChangeSeen(); // the new process is listening
    await flushAndWaitForRepair(expected);
    assert.equal((await nft("delete", "table", "inet", adminTable)).exitCode, 0);
  });

  await t.test("SIGTERM: the controller exits 0 and its nft monitor with it", async () => {
    const current = run.logLines().filter((l) => l.msg === "the firewall watch started again").at(-1)!.monitorPid as number;
    controller!.kill("SIGTERM");
    assert.equal((await controller!).exitCode, 0);
    const cmdline = fs.existsSync(`/proc/${current}/cmdline`) ? fs.readFileSync(`/proc/${current}/cmdline`, "utf8") : "";
    assert.notEqual(cmdline, "nft\0-j\0monitor\0", "the nft monitor outlived the controller");
  });
});

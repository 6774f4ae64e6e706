// The fuzz corpus against a running controller on real libvirt: a directory holds a dir pool
// and an isolated network, both Ready; 300 malformed manifests (test/fuzz/generate.ts, seed 1)
// appear in it at once (a git checkout); then the two valid objects are edited. The
// controller must stay up, take the edits to libvirt, keep every malformed object Invalid
// (never in libvirt), lose no byte of any file outside the status blocks it writes, and log
// no uncaught exception.
//
// Cases the schema accepts (a legal manifest came out of the mutation, or a valid document
// sits next to the bad one) are left out: the controller would build them in libvirt.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ResultPromise } from "execa";
import { assertInTestEnv, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { CANARY, generateCorpus, SHAPES, writeCorpus, type FuzzCase } from "../fuzz/generate.js";
import { decodeUtf8, viewFile } from "../fuzz/oracle.js";
import { checkManifestText } from "../../src/store/check-documents.js";
import { E2eDirs, virsh, type LogLine } from "./harness.js";

const pool = testName("fz-pool");
const net = testName("fz-net");
/** Corpus objects are named `${PREFIX}N`: sweepable (kvt-), and easy to look for in libvirt. */
const PREFIX = `${testName("fz")}-c`;
const NET_IP = "198.18.90.1"; // /24; no other test uses 198.18.90.0/24
const SEED = 1;
const COUNT = 300;

let run: E2eDirs; // set in before(); after() runs even when before() failed
let controller: ResultPromise | undefined;
let poolPath = "";

const poolManifest = (autostart: boolean) => `# the valid pool next to the corpus
apiVersion: kvmctl.dev/v1alpha1
kind: StoragePool
metadata:
  name: ${pool}
spec:
  type: dir
  path: ${poolPath}
  autostart: ${autostart}
`;

const netManifest = (dhcp: boolean) => `apiVersion: kvmctl.dev/v1alpha1
kind: Network
metadata:
  name: ${net}
spec:
  mode: isolated
  ipv4:
    address: ${NET_IP}
    prefix: 24
${dhcp ? "    dhcp: {start: 198.18.90.100, end: 198.18.90.150}\n" : ""}`;

const readyWait = (key: string) => kvmctl(["--dir", run.dir, "wait", key, "--for=condition=Ready", "--timeout=180s"]);

/** The text without its top-level status blocks (what the controller may write), per document. */
function withoutStatus(text: string): string {
  const lines = text.split("\n");
  const out: string[] = [];
  let inStatus = false;
  for (const line of lines) {
    if (/^status:[ \t]*\r?$/.test(line) || /^status: *[{[]/.test(line)) {
      inStatus = true;
      continue;
    }
    if (inStatus && (/^[ \t]/.test(line) || /^\r?$/.test(line))) continue;
    inStatus = false;
    out.push(line);
  }
  return out.join("\n").replace(/[\r\n]+$/, "");
}

/** Libvirt objects (domains, networks, pools) whose name starts with `prefix`. */
async function libvirtObjects(prefix: string): Promise<string[]> {
  const found: string[] = [];
  for (const [list, kind] of [["list", "domain"], ["net-list", "network"], ["pool-list", "pool"]] as const) {
    const names = String((await virsh(list, "--all", "--name")).stdout).split("\n").map((n) => n.trim());
    for (const name of names) if (name.startsWith(prefix)) found.push(`${kind} ${name}`);
  }
  return found;
}

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-fuzz");
  poolPath = path.join(run.root, "pool");
});

after(async () => {
  if (controller && controller.exitCode === null) {
    controller.kill("SIGTERM");
    await Promise.race([controller, new Promise((r) => setTimeout(r, 30_000).unref())]);
    if (controller.exitCode === null) controller.kill("SIGKILL");
  }
  await virsh("pool-destroy", pool);
  await virsh("pool-undefine", pool);
  await virsh("net-destroy", net);
  await virsh("net-undefine", net);
  // Nothing of the corpus should be there; remove it if it is (the test has failed then).
  for (const entry of await libvirtObjects(PREFIX)) {
    const [kind, name] = entry.split(" ") as [string, string];
    if (kind === "domain") await virsh("destroy", name).then(() => virsh("undefine", name, "--nvram"));
    if (kind === "network") await virsh("net-destroy", name).then(() => virsh("net-undefine", name));
    if (kind === "pool") await virsh("pool-destroy", name).then(() => virsh("pool-undefine", name));
  }
  run?.cleanUp();
});

test("a controller survives 300 malformed manifests dropped into its directory, and keeps converging the valid ones", async (t) => {
  const { dir } = run;
  fs.mkdirSync(path.join(dir, "good"));
  fs.writeFileSync(path.join(dir, "good", "pool.yaml"), poolManifest(false));
  fs.writeFileSync(path.join(dir, "good", "network.yaml"), netManifest(false));
  controller = run.startController();
  for (const key of [`pool/${pool}`, `network/${net}`]) {
    const ready = await readyWait(key);
    assert.equal(ready.exitCode, 0, `${key}: ${ready.stderr}`);
  }
  assert.match(String((await virsh("pool-info", pool)).stdout), /^Autostart:\s+no$/m);
  assert.doesNotMatch(String((await virsh("net-dumpxml", net)).stdout), /<range /);

  // The corpus, less what the schema accepts (see the header).
  const all = generateCorpus(SEED, COUNT, { namePrefix: PREFIX });
  const accepted = (c: FuzzCase) => {
    const text = decodeUtf8(c.bytes);
    return text !== undefined && c.bytes.length <= 2 * 1024 * 1024 && checkManifestText(text, c.name).documents.some((d) => d.object && !d.problems.some((p) => p.severity !== "warning"));
  };
  const cases = all.filter((c) => !accepted(c));
  const shapes = new Set(cases.map((c) => c.shape));
  t.diagnostic(`${cases.length} of ${all.length} cases dropped in (${all.length - cases.length} valid ones left out); shapes: ${shapes.size} of ${SHAPES.length}`);
  // bad-status cases are valid objects by design (an ignored status); every other shape is here.
  assert.deepEqual(SHAPES.filter((s) => !shapes.has(s) && s !== "bad-status"), [], "shapes with no case left");

  // All at once, as a checkout would: written elsewhere, then renamed into the directory.
  const staging = path.join(run.root, "staging");
  writeCorpus(staging, cases, false);
  const droppedAt = Date.now();
  fs.renameSync(staging, path.join(dir, "fuzz"));
  const views = new Map(cases.map((c) => [c.name, viewFile(c.bytes)]));
  const keyed = [...new Set(cases.flatMap((c) => views.get(c.name)!.keys))];

  await t.test("the controller takes in the corpus: one reconcile of every key it names, each Invalid", async () => {
    const started = Date.now();
    await run.waitUntil(`a reconcile of each of the ${keyed.length} keys the corpus names`, async () => {
      const done = new Set(run.logLines().filter((l) => l.msg === "reconcile finished" && typeof l.startedAt === "number" && l.startedAt >= droppedAt).map((l) => l.object));
      return keyed.every((k) => done.has(k));
    }, 180_000, 500);
    t.diagnostic(`${keyed.length} keys reconciled ${Date.now() - started} ms after the drop`);
    assert.equal(controller!.exitCode, null, "the controller exited");
  });

  await t.test("edits to the valid neighbours reach libvirt, and both are Ready for their new generation", async () => {
    const editedAt = Date.now();
    for (const [file, from, to] of [["pool.yaml", "  autostart: false\n", "  autostart: true\n"], ["network.yaml", "    prefix: 24\n", "    prefix: 24\n    dhcp: {start: 198.18.90.100, end: 198.18.90.150}\n"]] as const) {
      const full = path.join(dir, "good", file);
      const text = fs.readFileSync(full, "utf8");
      assert.ok(text.includes(from), `${file} lacks ${JSON.stringify(from)}`);
      fs.writeFileSync(full, text.replace(from, to));
    }
    await run.waitForReconciles(`StoragePool/${pool}`, { after: editedAt, changed: "manifests", timeoutMs: 120_000 });
    await run.waitForReconciles(`Network/${net}`, { after: editedAt, changed: "manifests", timeoutMs: 120_000 });
    for (const key of [`pool/${pool}`, `network/${net}`]) {
      const ready = await readyWait(key);
      assert.equal(ready.exitCode, 0, `${key}: ${ready.stderr}`);
      assert.equal((await run.getJson(key)).status.observedGeneration, 2, `${key} is not Ready for generation 2`);
    }
    assert.match(String((await virsh("pool-info", pool)).stdout), /^Autostart:\s+yes$/m, "the pool's autostart did not reach libvirt");
    assert.match(String((await virsh("net-dumpxml", net)).stdout), /<range start='198\.18\.90\.100' end='198\.18\.90\.150'/, "the DHCP range did not reach libvirt");
    assert.equal(controller!.exitCode, null, "the controller exited");
  });

  await t.test("every malformed file is reported: its objects Invalid, the file named", async () => {
    const got = await kvmctl(["--dir", dir, "get", "all"]);
    assert.ok(got.exitCode === 0 || got.exitCode === 1, `exit ${got.exitCode}`);
    const rows = new Map(got.stdout.split("\n").map((l) => [l.split(/\s+/)[0]!, l] as const));
    const unlisted: string[] = [];
    const unnamed: string[] = [];
    for (const c of cases) {
      for (const key of views.get(c.name)!.keys) {
        const [kind, name] = key.split("/") as [string, string];
        if (!/^\S+\s+False\s+Invalid\b/.test(rows.get(`${kind.toLowerCase()}/${name}`) ?? "")) unlisted.push(`${c.name}: ${key}`);
      }
      // A file that must be refused is named by a problem (legal-but-odd ones may hold nothing at all).
      if (c.expect === "invalid" && !got.stderr.includes(`: fuzz/${c.name}: `)) unnamed.push(`${c.name} [${c.detail.slice(0, 100)}]`);
    }
    assert.deepEqual(unlisted.slice(0, 20), [], "objects of the corpus not listed as Invalid");
    assert.deepEqual(unnamed.slice(0, 20), [], "files no problem names");
    for (const key of [`storagepool/${pool}`, `network/${net}`]) assert.match(rows.get(key) ?? "", /\sTrue\s/, `${key}: ${rows.get(key)}`);
  });

  await t.test("nothing of the corpus reached libvirt, no shell ran, no byte outside a status block changed", async () => {
    assert.deepEqual(await libvirtObjects(PREFIX), []);
    assert.ok(!fs.existsSync(CANARY), `${CANARY} exists: something ran a shell`);
    const changed: string[] = [];
    let withStatus = 0;
    for (const c of cases) {
      const now = fs.readFileSync(path.join(dir, "fuzz", c.name));
      if (Buffer.compare(now, Buffer.from(c.bytes)) === 0) continue;
      withStatus += 1;
      const before = decodeUtf8(c.bytes);
      const after = decodeUtf8(now);
      if (before === undefined || after === undefined || !views.get(c.name)!.readable) changed.push(`${c.name}: an unreadable file was written`);
      else if (withoutStatus(after) !== withoutStatus(before)) changed.push(`${c.name} [${c.detail.slice(0, 80)}]: changed outside its status blocks`);
    }
    t.diagnostic(`${withStatus} corpus files got a status block`);
    assert.deepEqual(changed.slice(0, 20), []);
  });

  await t.test("the controller is alive and logged no uncaught exception, fatal line or stack trace", async () => {
    assert.equal(controller!.exitCode, null, "the controller exited");
    const text = fs.readFileSync(run.logFile, "utf8");
    const lines = run.logLines();
    const fatal = lines.filter((l: LogLine) => (l.level ?? 0) >= 60 || /uncaught|unhandled/i.test(`${l.msg ?? ""}`));
    assert.deepEqual(fatal.map((l) => JSON.stringify(l).slice(0, 300)), []);
    const raw = text.split("\n").filter((l) => l !== "" && !l.startsWith("{"));
    assert.deepEqual(raw.filter((l) => /^\s+at \S|Error:|fatal|uncaught/i.test(l)).slice(0, 10), [], "stack traces or errors outside the JSON log");
    const errors = lines.filter((l) => (l.level ?? 0) >= 50);
    t.diagnostic(`log: ${lines.length} JSON lines, ${errors.length} at level error, ${raw.length} other lines${raw.length ? ` (first: ${raw[0]!.slice(0, 160)})` : ""}`);
    for (const l of errors.slice(0, 5)) t.diagnostic(`error line: ${JSON.stringify(l).slice(0, 300)}`);
    // Status the controller could not write (a document it may not edit line-wise, or whose check failed).
    const unwritten = lines.filter((l) => l.msg === "could not write status");
    for (const l of unwritten) t.diagnostic(`could not write status of ${l.object}: ${String((l.err as { message?: string } | undefined)?.message ?? "").slice(0, 160)}`);
  });
});

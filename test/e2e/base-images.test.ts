// Base images from a URL on the real stack: an HTTP server on 127.0.0.1 inside the test
// namespace (this process runs in it) serves small qcow2 images; two VMs naming the same URL
// and sha256 share one download and one base volume in their pool; a wrong checksum is
// Stalled (ChecksumMismatch) with no file left; a download whose connection is cut midway is
// resumed with a Range request and completes; a second controller instance (another manifest
// directory, its own download directory) naming the same image in the same pool imports its
// own base and neither instance deletes, rewrites or clones the other's, while the first one's
// VM keeps running on its disk. No traffic leaves loopback.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, test } from "node:test";
import { execa, type ResultPromise } from "execa";
import { assertInTestEnv, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, testGuestVm, virsh } from "./harness.js";

const pool = testName("bases");
const vmA = testName("base-a");
const vmB = testName("base-b");
const vmWrong = testName("base-bad");
const vmCut = testName("base-cut");
const vmRun = testName("base-run");
const vmLater = testName("base-later");
const vmOther = testName("base-other");
let run: E2eDirs;
/** The second controller instance's manifest directory, and its controller. */
let other: E2eDirs | undefined;
let otherController: ResultPromise | undefined;
let root = "";
let dir = "";
let controller: ResultPromise | undefined;
let server: http.Server | undefined;
let baseUrl = "";
const images = new Map<string, Buffer>();
/** Every request: its path, its Range header, and whether the whole response was sent. */
const served: { path: string; range?: string; completed: boolean }[] = [];
let cutNext = true;

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const volumes = async () =>
  String((await virsh("vol-list", pool)).stdout)
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n): n is string => !!n)
    .sort();

function manifests(shared: string, cut: string): string {
  const vm = (name: string, url: string, sum: string) => `---
apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: ${name}
spec:
  runStrategy: Halted
  memory: 128Mi
  disks:
    - {name: root, pool: ${pool}, from: {url: "${url}", sha256: "${sum}"}, size: 32Mi}
`;
  return `apiVersion: kvmctl.dev/v1alpha1
kind: StoragePool
metadata:
  name: ${pool}
spec:
  type: dir
  path: ${path.join(root, "images")}
${vm(vmA, `${baseUrl}/shared.qcow2`, shared)}${vm(vmB, `${baseUrl}/shared.qcow2`, shared)}${vm(vmWrong, `${baseUrl}/wrong.qcow2`, "0".repeat(64))}${vm(vmCut, `${baseUrl}/cut.qcow2`, cut)}`;
}

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-base-images");
  ({ root, dir } = run);
  for (const [name, size] of [["shared", "16M"], ["cut", "24M"]] as const) {
    const file = path.join(root, `${name}.qcow2`);
    await execa("qemu-img", ["create", "-q", "-f", "qcow2", file, size]);
    // Padding after the image makes the cut land inside the body; qemu-img ignores it.
    images.set(`/${name}.qcow2`, Buffer.concat([fs.readFileSync(file), Buffer.alloc(512 * 1024)]));
  }
  // The shared image's bytes under another path, for the VM whose manifest has the wrong sum
  // (its own download, so the shared URL's GETs count only the shared download).
  images.set("/wrong.qcow2", images.get("/shared.qcow2")!);
  server = http.createServer((req, res) => {
    const body = images.get(req.url ?? "");
    const entry: (typeof served)[number] = { path: req.url ?? "", ...(req.headers.range ? { range: req.headers.range } : {}), completed: false };
    served.push(entry);
    if (!body) return void res.writeHead(404).end();
    res.on("finish", () => (entry.completed = true));
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (range && Number(range[1]) < body.length) {
      const start = Number(range[1]);
      res.writeHead(206, { "content-length": body.length - start, "content-range": `bytes ${start}-${body.length - 1}/${body.length}` }).end(body.subarray(start));
      return;
    }
    res.writeHead(200, { "content-length": body.length });
    if (req.url === "/cut.qcow2" && cutNext) {
      cutNext = false;
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => res.socket?.destroy(), 100));
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  for (const c of [controller, otherController]) if (c && c.exitCode === null) c.kill("SIGKILL");
  for (const vm of [vmA, vmB, vmWrong, vmCut, vmRun, vmLater, vmOther]) {
    await virsh("destroy", vm);
    await virsh("undefine", vm, "--nvram");
  }
  for (const volume of await volumes()) await virsh("vol-delete", "--pool", pool, volume);
  await virsh("pool-destroy", pool);
  await virsh("pool-undefine", pool);
  server?.closeAllConnections();
  server?.close();
  run?.cleanUp();
  other?.cleanUp();
});

test("base images from a URL: one shared download, a wrong checksum refused, a cut download completed", async (t) => {
  const shared = sha(images.get("/shared.qcow2")!);
  const cut = sha(images.get("/cut.qcow2")!);
  const downloadRoot = path.join(root, "downloads");
  // The controller downloads into a directory of its instance below the one it is given.
  const downloadDir = path.join(downloadRoot, run.instance);
  fs.writeFileSync(path.join(root, "all.yaml"), manifests(shared, cut));
  const applied = await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "all.yaml")]);
  assert.equal(applied.exitCode, 0, applied.stderr);
  controller = run.startController([], { KVMCTL_DOWNLOAD_DIR: downloadRoot });

  await t.test("two VMs from the same URL and sha256: one download, one base volume, a clone each", async () => {
    for (const vm of [vmA, vmB]) {
      const ready = await kvmctl(["--dir", dir, "wait", `vm/${vm}`, "--for=condition=Ready", "--timeout=120s"]);
      assert.equal(ready.exitCode, 0, `${ready.stderr}\n${run.logTail()}`);
    }
    const gets = served.filter((s) => s.path === "/shared.qcow2");
    assert.equal(gets.filter((s) => s.completed).length, 1, JSON.stringify(served));
    const base = `kvmctl-base-${run.instance}-${shared.slice(0, 16)}.qcow2`;
    const vols = await volumes();
    for (const v of [base, `${vmA}-root.qcow2`, `${vmB}-root.qcow2`]) assert.ok(vols.includes(v), vols.join(" "));
    assert.ok(!vols.some((v) => v.endsWith(".part")), "no partial file in the pool");
    const a = await run.getJson(`vm/${vmA}`);
    assert.equal(a.status.disks[0].base, base);
    assert.ok(a.status.disks[0].capacity >= 32 * 1024 * 1024);
    const described = await kvmctl(["--dir", dir, "describe", "vm", vmA]);
    assert.match(described.stdout + described.stderr, /DownloadStarted|DownloadCompleted/);
    assert.ok(fs.existsSync(path.join(downloadDir, shared)), "the verified image is kept in the download directory");
  });

  await t.test("a wrong checksum: Stalled with ChecksumMismatch naming both sums, no file left", async () => {
    let message = "";
    await run.waitUntil(`${vmWrong} Stalled`, async () => {
      const conditions: { type: string; status: string; reason: string; message: string }[] = (await run.getJson(`vm/${vmWrong}`)).status?.conditions ?? [];
      const stalled = conditions.find((c) => c.type === "Stalled" && c.status === "True");
      message = stalled?.reason === "ChecksumMismatch" ? stalled.message : "";
      return message !== "";
    }, 120_000, 500);
    assert.match(message, new RegExp(`${shared}, not the expected ${"0".repeat(64)}`));
    assert.ok(!fs.readdirSync(downloadDir).some((f) => f.startsWith("0".repeat(64))), fs.readdirSync(downloadDir).join(" "));
    assert.equal(String((await virsh("domuuid", vmWrong)).stdout).trim(), "", "no domain defined");
  });

  await t.test("a download cut midway is resumed with a Range request and completes", async () => {
    const ready = await kvmctl(["--dir", dir, "wait", `vm/${vmCut}`, "--for=condition=Ready", "--timeout=120s"]);
    assert.equal(ready.exitCode, 0, `${ready.stderr}\n${run.logTail()}`);
    const gets = served.filter((s) => s.path === "/cut.qcow2");
    assert.equal(gets[0]?.completed, false, JSON.stringify(gets));
    assert.match(gets[1]?.range ?? "", /^bytes=\d+-$/, JSON.stringify(gets));
    assert.ok(gets[1]?.completed);
    assert.ok((await volumes()).includes(`kvmctl-base-${run.instance}-${cut.slice(0, 16)}.qcow2`));
  });

  await t.test("another instance naming the same image in the same pool: its own base; neither touches the other's, the running VM keeps its disk", async () => {
    const volumeFile = (volume: string) => path.join(root, "images", volume);
    /** What must not change of a volume: its file (inode, mtime) and its bytes. */
    const fingerprint = (volume: string) => {
      const st = fs.statSync(volumeFile(volume));
      return { ino: st.ino, mtimeMs: st.mtimeMs, size: st.size, sha256: sha(fs.readFileSync(volumeFile(volume))) };
    };
    const baseOf = (instance: string) => `kvmctl-base-${instance}-${shared.slice(0, 16)}.qcow2`;
    const mine = baseOf(run.instance);

    // This instance: a running VM whose data disk is copied from its base.
    const disk = `  disks:\n    - {name: data, pool: ${pool}, from: {url: "${baseUrl}/shared.qcow2", sha256: "${shared}"}, size: 32Mi}\n`;
    fs.writeFileSync(path.join(root, "run.yaml"), testGuestVm(vmRun, disk));
    assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "run.yaml")])).exitCode, 0);
    const running = await kvmctl(["--dir", dir, "wait", `vm/${vmRun}`, "--for=condition=Ready", "--timeout=120s"]);
    assert.equal(running.exitCode, 0, `${running.stderr}\n${run.logTail()}`);
    assert.equal((await run.getJson(`vm/${vmRun}`)).status.disks[0].base, mine);
    const domid = String((await virsh("domid", vmRun)).stdout).trim();
    assert.match(domid, /^\d+$/, "running");
    const before = { base: fingerprint(mine), disk: fingerprint(`${vmRun}-data.qcow2`) };

    // Another manifest directory with its own instance (so no record of this instance's import),
    // its VM naming this pool by name and the same URL and sha256.
    other = E2eDirs.create("e2e-base-images-other");
    const otherInstance = `${run.instance}x`;
    fs.writeFileSync(
      path.join(other.root, "vm.yaml"),
      `apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata: {name: ${vmOther}}\nspec:\n  runStrategy: Halted\n  memory: 128Mi\n  disks:\n    - {name: root, pool: ${pool}, from: {url: "${baseUrl}/shared.qcow2", sha256: "${shared}"}}\n`,
    );
    assert.equal((await kvmctl(["--dir", other.dir, "apply", "-f", path.join(other.root, "vm.yaml")])).exitCode, 0);
    // The same download directory: each instance downloads below it into a directory of its own.
    otherController = other.startController(["--instance", otherInstance], { KVMCTL_DOWNLOAD_DIR: downloadRoot });
    const otherReady = await kvmctl(["--dir", other.dir, "wait", `vm/${vmOther}`, "--for=condition=Ready", "--timeout=120s"]);
    assert.equal(otherReady.exitCode, 0, `${otherReady.stderr}\n${other.logTail()}`);

    assert.ok(fs.existsSync(path.join(downloadRoot, otherInstance, shared)), "its own download, beside this instance's");
    // It imported a base of its own and copied its disk from that one.
    const theirs = baseOf(otherInstance);
    assert.equal((await other.getJson(`vm/${vmOther}`)).status.disks[0].base, theirs);
    const vols = await volumes();
    for (const v of [mine, theirs, `${vmOther}-root.qcow2`]) assert.ok(vols.includes(v), vols.join(" "));
    const theirSteps = other.logLines().filter((l) => typeof l.step === "string").map((l) => `${l.step}: ${l.msg}`);
    assert.ok(theirSteps.some((s) => s.startsWith("importBase") && s.includes(theirs)), theirSteps.join("\n"));
    assert.ok(!theirSteps.some((s) => s.includes(mine) || s.startsWith("deleteVolume")), `the other instance never named this one's base:\n${theirSteps.join("\n")}`);
    // This instance's base and its running VM's disk: the same files, the same bytes; the VM still runs.
    assert.deepEqual({ base: fingerprint(mine), disk: fingerprint(`${vmRun}-data.qcow2`) }, before);
    assert.equal(String((await virsh("domid", vmRun)).stdout).trim(), domid, "the VM kept running (same domain id)");

    // And the other way: this instance's next VM is copied from its own base, imported once; the
    // other instance's base stays as it is.
    const theirsBefore = fingerprint(theirs);
    const later = Date.now();
    fs.writeFileSync(
      path.join(root, "later.yaml"),
      `apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata: {name: ${vmLater}}\nspec:\n  runStrategy: Halted\n  memory: 128Mi\n  disks:\n    - {name: root, pool: ${pool}, from: {url: "${baseUrl}/shared.qcow2", sha256: "${shared}"}}\n`,
    );
    assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "later.yaml")])).exitCode, 0);
    const laterReady = await kvmctl(["--dir", dir, "wait", `vm/${vmLater}`, "--for=condition=Ready", "--timeout=120s"]);
    assert.equal(laterReady.exitCode, 0, `${laterReady.stderr}\n${run.logTail()}`);
    assert.equal((await run.getJson(`vm/${vmLater}`)).status.disks[0].base, mine);
    const mySteps = run.logLines().filter((l) => l.time >= later && typeof l.step === "string").map((l) => `${l.step}: ${l.msg}`);
    assert.ok(mySteps.some((s) => s.startsWith("cloneVolume") && s.includes(mine)), mySteps.join("\n"));
    assert.ok(!mySteps.some((s) => s.includes(theirs) || s.startsWith("importBase") || s.startsWith("deleteVolume")), mySteps.join("\n"));
    assert.deepEqual(fingerprint(theirs), theirsBefore);
    assert.deepEqual(fingerprint(mine), before.base);
  });
});

// The status directory alternative: manifests are never written, status lives in
// <statusDir>/<same relative path>, and reading merges it. Also: where status is read from.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { formatProblem, ManifestStore } from "../../../src/store/index.js";
import { NET, posOf, tempDir, treeState, VM, writeTree } from "./helpers.js";

const STATUS = { observedGeneration: 1, observedSpecHash: "abc", conditions: [{ type: "Ready", status: "True", reason: "Succeeded", message: "", lastTransitionTime: "2024-05-01T10:00:00Z" }] };

const PAIR = `${VM("web1")}status:\n  phase: FromManifest\n---\n${NET("lan")}`;

describe("status directory", () => {
  it("kvmctl's data there is private even in a world-readable status directory: .kvmctl 0700, its files 0600", async () => {
    const dir = await tempDir(); // 0700, as a checkout holding a cloud-init password would be
    const statusDir = await tempDir("kvmctl-status-");
    fs.chmodSync(statusDir, 0o755);
    writeTree(dir, { "all/pair.yaml": `${VM("web1")}---\n${NET("lan")}` });
    const store = new ManifestStore({ dir, statusDir });
    await store.read(); // writes the parse cache: every manifest's content
    assert.equal(await store.writeStatus("Network/lan", STATUS), true);
    await store.recordEvent("Network/lan", { time: "2024-05-01T10:00:00Z", type: "Normal", reason: "Created", message: "network defined" });
    const data = path.join(statusDir, ".kvmctl");
    assert.equal(fs.statSync(data).mode & 0o777, 0o700);
    const files = fs.readdirSync(data, { recursive: true, encoding: "utf8" }).map((f) => path.join(data, f));
    assert.ok(files.some((f) => f.endsWith("read.json")) && files.some((f) => f.endsWith(".jsonl")), files.join(", "));
    for (const file of files) assert.equal(fs.statSync(file).mode & 0o077, 0, `${file} is open to others: ${(fs.statSync(file).mode & 0o777).toString(8)}`);
  });

  it("inside the manifest directory, made by the first status write, it is never read as manifests", async () => {
    const dir = await tempDir();
    writeTree(dir, { "all/pair.yaml": `${VM("web1")}---\n${NET("lan")}` });
    const statusDir = path.join(dir, "status");
    for (const fresh of [false, true]) {
      const store = new ManifestStore({ dir, statusDir, diskCache: fresh });
      const first = await store.read();
      assert.equal(await store.writeStatus("VirtualMachine/web1", { ...STATUS, phase: "Running" }), true);
      assert.ok(fs.existsSync(path.join(statusDir, "all/pair.yaml")), "the status file is inside --dir");
      const again = await store.read();
      assert.deepEqual([...again.objects.keys()].sort(), [...first.objects.keys()].sort());
      assert.deepEqual(again.problems.map(formatProblem), [], "its status files are no manifests");
      assert.equal(again.objects.get("VirtualMachine/web1")?.object.status?.phase, "Running");
    }
  });

  it("writes status beside, never into, the manifests; reading merges it", async () => {
    const dir = await tempDir();
    const statusDir = await tempDir("kvmctl-status-");
    writeTree(dir, { "all/pair.yaml": PAIR });
    const before = treeState(dir);
    const store = new ManifestStore({ dir, statusDir });
    const first = await store.read();
    assert.equal(first.objects.get("VirtualMachine/web1")?.object.status, undefined, "a status inside the manifest is not used in this mode");

    assert.equal(await store.writeStatus("VirtualMachine/web1", { ...STATUS, phase: "Running" }), true);
    assert.equal(await store.writeStatus("Network/lan", STATUS), true);
    await store.recordEvent("Network/lan", { time: "2024-05-01T10:00:00Z", type: "Normal", reason: "Created", message: "network defined" });

    assert.deepEqual(treeState(dir), before, "the manifest directory is untouched");
    assert.ok(!fs.existsSync(path.join(dir, ".kvmctl")), "kvmctl's own data goes to the status directory");
    assert.ok(fs.existsSync(path.join(statusDir, ".kvmctl/events/Network-lan.jsonl")));

    const written = fs.readFileSync(path.join(statusDir, "all/pair.yaml"), "utf8");
    assert.equal(
      written,
      `apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: web1
status:
  observedGeneration: 1
  observedSpecHash: abc
  phase: Running
  conditions:
    - type: Ready
      status: "True"
      reason: Succeeded
      message: ""
      lastTransitionTime: 2024-05-01T10:00:00Z
---
apiVersion: kvmctl.dev/v1alpha1
kind: Network
metadata:
  name: lan
status:
  observedGeneration: 1
  observedSpecHash: abc
  conditions:
    - type: Ready
      status: "True"
      reason: Succeeded
      message: ""
      lastTransitionTime: 2024-05-01T10:00:00Z
`,
    );

    const snapshot = await new ManifestStore({ dir, statusDir }).read();
    assert.equal(snapshot.objects.get("VirtualMachine/web1")?.object.status?.phase, "Running");
    assert.equal(snapshot.objects.get("Network/lan")?.object.status?.observedSpecHash, "abc");
  });

  it("removing status drops the document, and the file when it is empty", async () => {
    const dir = await tempDir();
    const statusDir = await tempDir("kvmctl-status-");
    writeTree(dir, { "all/pair.yaml": PAIR });
    const store = new ManifestStore({ dir, statusDir });
    await store.writeStatus("VirtualMachine/web1", STATUS);
    await store.writeStatus("Network/lan", STATUS);
    await store.writeStatus("VirtualMachine/web1", null);
    const text = fs.readFileSync(path.join(statusDir, "all/pair.yaml"), "utf8");
    assert.ok(!text.includes("web1") && text.includes("name: lan"));
    await store.writeStatus("Network/lan", null);
    assert.ok(!fs.existsSync(path.join(statusDir, "all/pair.yaml")));
  });

  it("returns false for an object that is gone, and writes nothing", async () => {
    const dir = await tempDir();
    const statusDir = await tempDir("kvmctl-status-");
    writeTree(dir, { "nets/lan.yaml": NET("lan") });
    const store = new ManifestStore({ dir, statusDir });
    await store.read();
    fs.rmSync(path.join(dir, "nets/lan.yaml"));
    assert.equal(await store.writeStatus("Network/lan", STATUS), false);
    assert.ok(!fs.existsSync(path.join(statusDir, "nets/lan.yaml")));
  });

  it("a status directory inside the manifest directory is not read as manifests", async () => {
    const dir = await tempDir();
    writeTree(dir, { "nets/lan.yaml": NET("lan") });
    const store = new ManifestStore({ dir, statusDir: path.join(dir, "status") });
    await store.writeStatus("Network/lan", STATUS);
    assert.ok(fs.existsSync(path.join(dir, "status/nets/lan.yaml")));
    const snapshot = await new ManifestStore({ dir, statusDir: path.join(dir, "status") }).read();
    assert.deepEqual(snapshot.problems.map(formatProblem), []);
    assert.deepEqual([...snapshot.objects.keys()], ["Network/lan"]);
    assert.equal(snapshot.objects.get("Network/lan")?.object.status?.observedGeneration, 1);
  });

  it("a damaged status file costs the status (a warning), never the object", async () => {
    const dir = await tempDir();
    const statusDir = await tempDir("kvmctl-status-");
    writeTree(dir, { "nets/lan.yaml": NET("lan") });
    writeTree(statusDir, { "nets/lan.yaml": "kind: Network\nmetadata: {name: lan}\nstatus: [\n" });
    const snapshot = await new ManifestStore({ dir, statusDir }).read();
    assert.ok(snapshot.objects.has("Network/lan"));
    assert.equal(snapshot.objects.get("Network/lan")?.object.status, undefined);
    const lines = snapshot.problems.map(formatProblem);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, new RegExp(`^${statusDir}/nets/lan\\.yaml: document 1, line 4:1: warning: invalid YAML`));
  });
});

describe("status in the manifest", () => {
  it("is read into object.status; a malformed one is ignored with a warning at its field", async () => {
    const dir = await tempDir();
    const text = `${VM("web1")}status:\n  observedGeneration: "three"\n  phase: Running\n`;
    writeTree(dir, { "web1.yaml": text, "ok.yaml": `${NET("lan")}status:\n  observedGeneration: 2\n` });
    const snapshot = await new ManifestStore({ dir }).read();
    assert.equal(snapshot.objects.get("Network/lan")?.object.status?.observedGeneration, 2);
    const web = snapshot.objects.get("VirtualMachine/web1");
    assert.ok(web, "a bad status never makes the object invalid");
    assert.equal(web.object.status, undefined);
    const [problem] = snapshot.problems;
    assert.equal(problem?.severity, "warning");
    assert.ok(formatProblem(problem!).startsWith(`web1.yaml: document 1, line ${posOf(text, '"three"')}: warning: status.observedGeneration: status ignored: `));
  });
});

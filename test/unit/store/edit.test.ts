// apply/delete for the CLI: input parsed like the directory, everything validated before any
// write, updates in place keeping comments and status, other documents byte-for-byte.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import type { VirtualMachine } from "../../../src/api/index.js";
import { formatProblem, ManifestStore, parseManifestSource, readManifestInput } from "../../../src/store/index.js";
import { NET, posOf, tempDir, treeState, VM, writeTree } from "./helpers.js";

const EXISTING = `# shared file
${NET("lan")}---
# the web server
${VM("web1")}status:
  observedGeneration: 1
  phase: Running
---
${NET("dmz")}`;

const INPUT = `# web1, bigger now
apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: web1   # keep this comment
spec:
  cpus: 4
  memory: 4Gi
status:
  phase: Ignored
`;

async function store(files: Record<string, string>) {
  const dir = await tempDir();
  writeTree(dir, files);
  return { dir, store: new ManifestStore({ dir }), file: (rel: string) => path.join(dir, rel) };
}

describe("parseManifestSource", () => {
  it("validates with positions under the given label and keeps the source text without status", async () => {
    const text = `${INPUT}---\n${VM("web2", "  cpu: 1\n")}`;
    const parsed = await parseManifestSource(text, "<stdin>");
    assert.deepEqual(parsed.problems.map(formatProblem), [`<stdin>: document 2, line ${posOf(text, "cpu:")}: spec.cpu: unknown field "cpu"; did you mean "cpus"?`]);
    const [web1, web2] = parsed.documents;
    assert.equal(web1?.key, "VirtualMachine/web1");
    assert.equal(web1?.text, INPUT.slice(0, INPUT.indexOf("status:")));
    assert.equal(web2?.object, undefined);
  });

  it("reports YAML errors under the label", async () => {
    const parsed = await parseManifestSource("kind: [\n", "web.yaml");
    assert.equal(parsed.documents.length, 0);
    assert.match(formatProblem(parsed.problems[0]!), /^web\.yaml: document 1, line 2:1: invalid YAML/);
  });
});

describe("readManifestInput", () => {
  it("reads a file or a directory with the directory's rules, labelling problems with the path given", async () => {
    const dir = await tempDir();
    const bad = VM("b", "  cpu: 1\n");
    writeTree(dir, { "in/a.yaml": NET("a"), "in/sub/b.yml": bad, "in/.hidden.yaml": NET("hidden"), "in/notes.txt": "x" });
    writeTree(dir, { "in/latin1.yaml": Buffer.from([0x6b, 0x3a, 0x20, 0xe9, 0x0a]) });
    const input = path.join(dir, "in");
    const parsed = await readManifestInput(input);
    assert.deepEqual(parsed.documents.map((d) => d.key), ["Network/a", "VirtualMachine/b"]);
    assert.deepEqual(parsed.problems.map(formatProblem), [
      `${input}/latin1.yaml: document 1, line 1:4: not UTF-8 text: invalid byte 0xe9 (save the file as UTF-8)`,
      `${input}/sub/b.yml: document 1, line ${posOf(bad, "cpu:")}: spec.cpu: unknown field "cpu"; did you mean "cpus"?`,
    ]);
    const one = await readManifestInput(path.join(input, "a.yaml"));
    assert.equal(one.documents[0]?.location.file, path.join(input, "a.yaml"));
    assert.deepEqual((await readManifestInput(path.join(dir, "missing.yaml"))).problems.map(formatProblem), [`${path.join(dir, "missing.yaml")}: no such file or directory`]);
  });
});

describe("applyDocuments", () => {
  it("creates a new object in <plural>/<name>.yaml from the input's text", async () => {
    const s = await store({});
    const parsed = await parseManifestSource(INPUT, "web1.yaml");
    const result = await s.store.applyDocuments(parsed.documents);
    assert.deepEqual(result, { ok: true, problems: [], outcomes: [{ key: "VirtualMachine/web1", action: "created", file: "virtualmachines/web1.yaml" }] });
    assert.equal(fs.readFileSync(s.file("virtualmachines/web1.yaml"), "utf8"), INPUT.slice(0, INPUT.indexOf("status:")));
  });

  it("updates an object in place: its text replaced, its status kept, the other documents byte-for-byte", async () => {
    const s = await store({ "shared.yaml": EXISTING });
    const result = await s.store.applyDocuments((await parseManifestSource(INPUT, "in.yaml")).documents);
    assert.deepEqual(result.outcomes, [{ key: "VirtualMachine/web1", action: "configured", file: "shared.yaml" }]);
    const start = EXISTING.indexOf("# the web server");
    const end = EXISTING.indexOf("---\n", start);
    const statusBlock = "status:\n  observedGeneration: 1\n  phase: Running\n";
    assert.equal(fs.readFileSync(s.file("shared.yaml"), "utf8"), EXISTING.slice(0, start) + INPUT.slice(0, INPUT.indexOf("status:")) + statusBlock + EXISTING.slice(end));
    const web1 = (await s.store.read()).objects.get("VirtualMachine/web1");
    assert.equal((web1?.object as VirtualMachine | undefined)?.spec.cpus, 4);
    assert.equal(web1?.object.status?.phase, "Running");
  });

  it("reports unchanged objects and leaves their file alone", async () => {
    const s = await store({ "shared.yaml": EXISTING });
    const before = fs.statSync(s.file("shared.yaml"));
    const same = `# a different comment does not count\n${NET("lan")}`;
    const result = await s.store.applyDocuments((await parseManifestSource(same, "in.yaml")).documents);
    assert.deepEqual(result.outcomes, [{ key: "Network/lan", action: "unchanged", file: "shared.yaml" }]);
    const after = fs.statSync(s.file("shared.yaml"));
    assert.equal(after.ino, before.ino);
    assert.equal(after.mtimeMs, before.mtimeMs);
  });

  it("writes nothing when any input document is invalid", async () => {
    const s = await store({ "shared.yaml": EXISTING });
    const before = treeState(s.dir);
    const text = `${NET("new1")}---\n${VM("web1", "  memory: -2Gi\n")}`;
    const result = await s.store.applyDocuments((await parseManifestSource(text, "in.yaml")).documents);
    assert.equal(result.ok, false);
    assert.deepEqual(result.problems.map(formatProblem), [`in.yaml: document 2, line ${posOf(text, "-2Gi")}: spec.memory: "-2Gi" is negative; a size must be positive`]);
    assert.deepEqual(treeState(s.dir), before);
  });

  it("checks conflicts with objects already in the directory before writing anything", async () => {
    const portVm = (name: string, port: number) =>
      VM(name, `  interfaces:\n    - user:\n        portForwards:\n          - {hostPort: ${port}, guestPort: 22}\n`);
    const s = await store({ "vms/a.yaml": portVm("a", 5001) });
    const before = treeState(s.dir);
    const text = `${NET("fine")}---\n${portVm("b", 5001)}`;
    const result = await s.store.applyDocuments((await parseManifestSource(text, "in.yaml")).documents);
    assert.equal(result.ok, false);
    assert.deepEqual(result.problems.map(formatProblem), [
      `in.yaml: document 2, line ${posOf(text, "5001")}: spec.interfaces[0].user.portForwards[0].hostPort: host port tcp/5001 is also used by VirtualMachine/a`,
    ]);
    assert.deepEqual(treeState(s.dir), before, "not even the valid Network was written");
  });

  it("dry run plans without writing; duplicates in the input are refused", async () => {
    const s = await store({ "shared.yaml": EXISTING });
    const before = treeState(s.dir);
    const dry = await s.store.applyDocuments((await parseManifestSource(`${INPUT}---\n${NET("new")}`, "in.yaml")).documents, { dryRun: true });
    assert.deepEqual(dry.outcomes, [
      { key: "VirtualMachine/web1", action: "configured", file: "shared.yaml" },
      { key: "Network/new", action: "created", file: "networks/new.yaml" },
    ]);
    const text = `${NET("x")}---\n${NET("x")}`;
    const twice = await s.store.applyDocuments((await parseManifestSource(text, "in.yaml")).documents);
    assert.equal(twice.ok, false);
    assert.equal(formatProblem(twice.problems[0]!), `in.yaml: document 2, line ${posOf(text, "x\n", 2)}: metadata.name: Network/x appears more than once in the input (also in.yaml document 1)`);
    assert.deepEqual(treeState(s.dir), before);
  });

  it("fixes an invalid object in place and keeps CRLF line ends", async () => {
    const crlf = `${VM("web1", "  cpu: 2\n")}`.replace(/\n/g, "\r\n");
    const s = await store({ "web1.yaml": crlf });
    assert.ok((await s.store.read()).invalid.has("VirtualMachine/web1"));
    const fixed = VM("web1", "  cpus: 2\n");
    const result = await s.store.applyDocuments((await parseManifestSource(fixed, "in.yaml")).documents);
    assert.deepEqual(result.outcomes, [{ key: "VirtualMachine/web1", action: "configured", file: "web1.yaml" }]);
    assert.equal(fs.readFileSync(s.file("web1.yaml"), "utf8"), fixed.replace(/\n/g, "\r\n"));
  });
});

describe("deleteObject", () => {
  it("removes one document and keeps the others' bytes", async () => {
    const s = await store({ "shared.yaml": EXISTING });
    assert.equal(await s.store.deleteObject("VirtualMachine/web1"), true);
    const start = EXISTING.indexOf("---\n# the web server");
    const end = EXISTING.indexOf("---\n", start + 4);
    assert.equal(fs.readFileSync(s.file("shared.yaml"), "utf8"), EXISTING.slice(0, start) + EXISTING.slice(end));
    assert.deepEqual([...(await s.store.read()).objects.keys()].sort(), ["Network/dmz", "Network/lan"]);
  });

  it("removes the first document, then the file with its last document; false when not found", async () => {
    const s = await store({ "shared.yaml": EXISTING, "other.yaml": NET("solo") });
    assert.equal(await s.store.deleteObject("Network/lan"), true);
    assert.equal(fs.readFileSync(s.file("shared.yaml"), "utf8"), EXISTING.slice(EXISTING.indexOf("---\n# the web server")));
    assert.equal(await s.store.deleteObject("Network/solo"), true);
    assert.ok(!fs.existsSync(s.file("other.yaml")));
    assert.equal(await s.store.deleteObject("Network/solo"), false);
  });
});

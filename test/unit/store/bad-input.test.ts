// Bad manifests never crash the store: each becomes a problem naming file, document,
// line:column and field, the other files keep working, and reading changes nothing.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { formatProblem, ManifestStore, type Snapshot } from "../../../src/store/index.js";
import { readManifestText } from "../../../src/store/read-text.js";
import { NET, posOf, tempDir, treeState, VM, writeTree } from "./helpers.js";

const GOOD = { "good/web.yaml": VM("web") };

/** Reads a directory holding GOOD plus `files`; checks the good object survives and nothing changed. */
async function readWith(files: Record<string, string | Uint8Array>, setup?: (dir: string) => void): Promise<{ snapshot: Snapshot; lines: string[]; dir: string }> {
  const dir = await tempDir();
  writeTree(dir, { ...GOOD, ...files });
  setup?.(dir);
  const before = treeState(dir);
  const snapshot = await new ManifestStore({ dir }).read();
  assert.deepEqual(treeState(dir), before, "reading must not change the directory");
  assert.ok(snapshot.objects.has("VirtualMachine/web"), "the good file keeps working");
  return { snapshot, lines: snapshot.problems.map(formatProblem), dir };
}

function assertLine(lines: string[], expected: string): void {
  assert.ok(
    lines.some((l) => l.startsWith(expected)),
    `expected a problem starting with\n  ${expected}\ngot\n  ${lines.join("\n  ")}`,
  );
}

describe("bad input", () => {
  it("invalid YAML: line:column from the parser, in the right document; the file is unreadable", async () => {
    const text = `${NET("lan")}---\n${VM("a", "  cpus: 2\n  cpus: 3\n")}`;
    const { lines, snapshot } = await readWith({ "vms/bad.yaml": text });
    assertLine(lines, `vms/bad.yaml: document 2, line ${posOf(text, "cpus", 2)}: invalid YAML: Map keys must be unique`);
    assert.ok(snapshot.unreadableFiles.has("vms/bad.yaml"));
    assert.ok(!snapshot.objects.has("Network/lan"), "nothing from a file whose structure is in doubt");
  });

  it("aliases, explicit tags and directives make their document invalid (named, located); the file's other documents count", async () => {
    const alias = `${NET("lan")}---\napiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata: {name: a}\nspec: &s {cpus: 1, self: *s}\n`;
    const tagged = `${VM("b").replace("spec:", "spec: !!omap")}`;
    const directive = `%YAML 1.1\n---\n${VM("c")}`;
    const { lines, snapshot } = await readWith({ "alias.yaml": alias, "tag.yaml": tagged, "directive.yaml": directive });
    assertLine(lines, `alias.yaml: document 2, line ${posOf(alias, "*s")}: YAML aliases (*s) are not allowed in manifests`);
    assertLine(lines, "tag.yaml: document 1, line");
    assert.ok(lines.some((l) => l.includes("the YAML tag !!omap is not supported")), lines.join("\n"));
    assertLine(lines, "directive.yaml: document 1, line 1:1: YAML directives (%YAML, %TAG) are not supported in manifests");
    assert.ok(snapshot.objects.has("Network/lan"), "the valid document next to it still counts");
    for (const key of ["VirtualMachine/a", "VirtualMachine/b", "VirtualMachine/c"]) assert.ok(snapshot.invalid.has(key), `${key} is invalid, not gone`);
  });

  it("line ends YAML would not see (a bare CR, NEL) make the file unreadable, its objects kept: never read as empty", async () => {
    const crOnly = NET("mac").replace(/\n/g, "\r");
    const { lines, snapshot } = await readWith({ "mac.yaml": crOnly, "quoted.yaml": VM("q", '  boot: {kernel: /k, cmdline: "a\rb"}\n') });
    assertLine(lines, "mac.yaml: document 1, line 1:");
    assert.ok(lines.some((l) => l.includes("bare carriage return (CR) line end")), lines.join("\n"));
    assert.ok(snapshot.unreadableFiles.has("mac.yaml"));
    assert.ok(snapshot.objects.has("VirtualMachine/q"), "a CR inside a quoted string is the string's own");
  });

  it("messages escape control, C1 and bidi characters from the manifest (no forged terminal output)", async () => {
    const text = VM("e", "  cpu\u001b[2K\u202e: 2\n");
    const { lines } = await readWith({ "esc.yaml": text });
    const line = lines.find((l) => l.startsWith("esc.yaml"))!;
    assert.match(line, /unknown field "cpu\\u001b\[2K\\u202e"/);
    assert.doesNotMatch(line, /[\u0000-\u001f\u202e]/);
  });

  it("a wrong type is said as such, never as a missing field", async () => {
    const text = VM("t", '  cpus: "two"\n');
    const { lines } = await readWith({ "type.yaml": text });
    assertLine(lines, `type.yaml: document 1, line ${posOf(text, '"two"')}: spec.cpus: expected number, got text "two"`);
  });

  it("a document that is not a mapping", async () => {
    const text = `${NET("lan")}---\n- a\n- b\n`;
    const { lines, snapshot } = await readWith({ "x.yaml": text });
    assertLine(lines, `x.yaml: document 2, line ${posOf(text, "- a")}: a manifest must be a mapping`);
    assert.ok(snapshot.objects.has("Network/lan"), "the valid document next to it still counts");
  });

  it("unknown kind, with a suggestion", async () => {
    const text = VM("k1").replace("kind: VirtualMachine", "kind: VirtualMachin");
    const { lines } = await readWith({ "k.yaml": text });
    assertLine(lines, `k.yaml: document 1, line ${posOf(text, "VirtualMachin")}: kind: unknown kind "VirtualMachin"`);
    assert.ok(lines.some((l) => l.includes('did you mean "VirtualMachine"?')));
  });

  it("wrong apiVersion", async () => {
    const text = VM("v1").replace("kvmctl.dev/v1alpha1", "kvmctl.dev/v1");
    const { lines } = await readWith({ "v.yaml": text });
    assertLine(lines, `v.yaml: document 1, line ${posOf(text, "kvmctl.dev/v1")}: apiVersion: wrong apiVersion "kvmctl.dev/v1"`);
  });

  it("missing and invalid names: Web_1, ../x, a;b, 64 characters; none of them becomes a key", async () => {
    const long = "a".repeat(64);
    const docs = ["Web_1", "../x", '"a;b"', long].map((n) => NET(n));
    const text = `${docs.join("---\n")}---\napiVersion: kvmctl.dev/v1alpha1\nkind: Network\nmetadata: {labels: {}}\nspec: {mode: isolated}\n`;
    const { lines, snapshot } = await readWith({ "nets/names.yaml": text });
    assertLine(lines, `nets/names.yaml: document 1, line ${posOf(text, "Web_1")}: metadata.name: must be a DNS-1123 label`);
    assertLine(lines, `nets/names.yaml: document 2, line ${posOf(text, "../x")}: metadata.name: must be a DNS-1123 label`);
    assertLine(lines, `nets/names.yaml: document 3, line ${posOf(text, '"a;b"')}: metadata.name: must be a DNS-1123 label`);
    assertLine(lines, `nets/names.yaml: document 4, line ${posOf(text, long)}: metadata.name: must be at most 63 characters`);
    assertLine(lines, `nets/names.yaml: document 5, line ${posOf(text, "metadata: {labels")}: metadata.name: name is required`);
    assert.equal(snapshot.invalid.size, 0, "an unusable name never becomes a key");
    assert.deepEqual([...snapshot.objects.keys()], ["VirtualMachine/web"]);
  });

  it("unknown field: points at the key and suggests the right one", async () => {
    const text = VM("web2", "  cpu: 2\n  memory: 1Gi\n");
    const { lines, snapshot } = await readWith({ "vms/web2.yaml": text });
    const expected = `vms/web2.yaml: document 1, line ${posOf(text, "cpu:")}: spec.cpu: unknown field "cpu"; did you mean "cpus"?`;
    assert.ok(lines.includes(expected), `expected\n  ${expected}\ngot\n  ${lines.join("\n  ")}`);
    assert.deepEqual(snapshot.invalid.get("VirtualMachine/web2")?.map((p) => p.path), [["spec", "cpu"]]);
  });

  it("negative and unitless memory; array indexes in field paths", async () => {
    const text = `${VM("m1", "  memory: -1Gi\n")}---\n${VM("m2", "  memory: 512\n")}---\n${VM("m3", "  disks:\n    - name: root\n      size: 20\n")}`;
    const { lines } = await readWith({ "mem.yaml": text });
    assertLine(lines, `mem.yaml: document 1, line ${posOf(text, "-1Gi")}: spec.memory: "-1Gi" is negative`);
    assertLine(lines, `mem.yaml: document 2, line ${posOf(text, "512")}: spec.memory: 512 has no unit`);
    assertLine(lines, `mem.yaml: document 3, line ${posOf(text, "20\n")}: spec.disks[0].size: 20 has no unit`);
  });

  it("duplicate name: an error on both places, the key invalid", async () => {
    const text = NET("lan");
    const { lines, snapshot } = await readWith({ "a.yaml": text, "b/c.yaml": `# another copy\n${text}` });
    assertLine(lines, `a.yaml: document 1, line ${posOf(text, "lan")}: metadata.name: Network/lan is defined more than once (also in b/c.yaml document 1)`);
    assertLine(lines, `b/c.yaml: document 1, line ${posOf(`# another copy\n${text}`, "lan")}: metadata.name: Network/lan is defined more than once (also in a.yaml document 1)`);
    assert.equal(snapshot.invalid.get("Network/lan")?.length, 2);
    assert.ok(!snapshot.objects.has("Network/lan"));
  });

  it("a file that is not UTF-8: where the bad byte is", async () => {
    const head = `${NET("lan")}---\napiVersion: kvmctl.dev/v1alpha1\nkind: Network\nmetadata:\n  name: caf`;
    const bytes = Buffer.concat([Buffer.from(head), Buffer.from([0xe9]), Buffer.from("\nspec: {}\n")]);
    const { lines, snapshot } = await readWith({ "latin1.yaml": bytes });
    assertLine(lines, `latin1.yaml: document 2, line ${posOf(`${head}X`, "X")}: not UTF-8 text: invalid byte 0xe9`);
    assert.ok(snapshot.unreadableFiles.has("latin1.yaml"));
  });

  it("a 10 MB file is refused from its size, unread", async () => {
    const { lines, snapshot } = await readWith({}, (dir) => {
      // A sparse file: reading it whole would hand the parser 10 MB of NUL characters.
      fs.writeFileSync(path.join(dir, "big.yaml"), "");
      fs.truncateSync(path.join(dir, "big.yaml"), 10 * 1024 * 1024);
    });
    assert.ok(lines.includes("big.yaml: file is 10.0 MiB, over the 2.0 MiB limit for a manifest; not read"), lines.join("\n"));
    assert.ok(snapshot.unreadableFiles.has("big.yaml"));
  });

  it("the size limit is configurable and checked on the bytes read", async () => {
    const dir = await tempDir();
    const file = path.join(dir, "x.yaml");
    fs.writeFileSync(file, "a: 1\n".repeat(100));
    const result = readManifestText(file, 64);
    assert.equal(result.ok, false);
    assert.match(!result.ok ? result.message : "", /file is 500 bytes, over the 64 bytes limit/);
    assert.equal(readManifestText(file, 500).ok, true);
  });

  it("a symlink loop is reported at the looping path; the rest is read", async () => {
    const { lines, snapshot } = await readWith({ "sub/net.yaml": NET("lan") }, (dir) => {
      fs.symlinkSync("..", path.join(dir, "sub", "loop"));
      fs.symlinkSync(".", path.join(dir, "self"));
    });
    assertLine(lines, "sub/loop: symlink loop: leads back to the manifest directory");
    assertLine(lines, "self: symlink loop");
    assert.ok(snapshot.objects.has("Network/lan"), "files next to the loop are read");
    assert.ok(snapshot.unreadableFiles.has("sub/loop"));
  });

  it("a file that disappears: its last known keys are protected, not deleted", async () => {
    const dir = await tempDir();
    writeTree(dir, { ...GOOD, "nets/lan.yaml": NET("lan") });
    const store = new ManifestStore({ dir });
    assert.ok((await store.read()).objects.has("Network/lan"));
    // Listed by the directory but gone when read: a link whose target vanished behaves the same.
    fs.renameSync(path.join(dir, "nets/lan.yaml"), path.join(dir, "nets/.moved"));
    fs.symlinkSync(".moved-away", path.join(dir, "nets/lan.yaml"));
    const snapshot = await store.read();
    assert.deepEqual(snapshot.unreadableFiles.get("nets/lan.yaml")?.lastKnownKeys, ["Network/lan"]);
    assert.ok(snapshot.problems.map(formatProblem).includes("nets/lan.yaml: broken symlink: its target does not exist"));
    assert.ok(snapshot.objects.has("VirtualMachine/web"));
    // And a plain read of a path that is gone says so instead of throwing.
    const gone = readManifestText(path.join(dir, "nets/never.yaml"));
    assert.deepEqual(gone, { ok: false, missing: true, message: "cannot read: disappeared while being read (will be read again on the next change)" });
  });

  it("permission denied on a file and on a directory", async () => {
    const dir = await tempDir();
    writeTree(dir, { ...GOOD, "secret.yaml": NET("secret"), "locked/inner.yaml": NET("inner") });
    fs.chmodSync(dir, 0o755);
    for (const d of ["good", "locked"]) fs.chmodSync(path.join(dir, d), 0o755);
    fs.chmodSync(path.join(dir, "good/web.yaml"), 0o644);
    fs.chmodSync(path.join(dir, "secret.yaml"), 0o000);
    fs.chmodSync(path.join(dir, "locked"), 0o000);
    const before = treeState(dir);
    let result: { objects: string[]; problems: string[] };
    const child = fileURLToPath(new URL("./read-child.ts", import.meta.url));
    // root reads anything: run the reader as an unprivileged user then.
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    result = JSON.parse(execFileSync(process.execPath, ["--import", "tsx", child, dir], { ...asUser, encoding: "utf8", cwd: process.cwd() }));
    assert.deepEqual(result.objects, ["VirtualMachine/web"]);
    assert.ok(result.problems.includes("secret.yaml: cannot read: permission denied"), result.problems.join("\n"));
    assert.ok(result.problems.includes("locked: cannot read directory: permission denied"), result.problems.join("\n"));
    assert.deepEqual(treeState(dir), before);
  });
});

// Status write-back changes only the object's `status:` block: every other byte of the file
// stays as it was, for insert, replace and remove, with LF or CRLF line ends.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it, mock } from "node:test";
import { ManifestEditError, ManifestStore } from "../../../src/store/index.js";
import { RACY_MARGIN_MS } from "../../../src/store/file-stamp.js";
import { withoutStatusBlocks } from "../../../src/store/status-writer.js";
import { NET, tempDir, VM, writeTree } from "./helpers.js";

const FLEET = `# Fleet of web servers
# maintained by ops

apiVersion: kvmctl.dev/v1alpha1   # api
kind: VirtualMachine
metadata:
  name: web1
  labels: {tier: "front"}   # flow inside block is fine
spec:
  cpus: 2
  memory: '2Gi'     # quoted on purpose
  disks:
    - name: root
      size: 20Gi

# between documents
---
# second document
apiVersion: kvmctl.dev/v1alpha1
kind: Network
metadata:
  name: lan
status:
  phase: Old
  # an indented comment in status
spec:
  mode: isolated   # status above spec, on purpose
---
apiVersion: kvmctl.dev/v1alpha1
kind: StoragePool
metadata:
  name: default
spec:
  type: dir
  path: /var/lib/kvmctl/pools/default
...
`;

// Keys deliberately out of order: the writer orders them.
const STATUS = {
  conditions: [{ lastTransitionTime: "2024-05-01T10:00:00Z", message: "all good", reason: "Succeeded", status: "True", type: "Ready" }],
  phase: "Running",
  observedSpecHash: "0123456789abcdef",
  observedGeneration: 1,
  domain: { uuid: "8d3c0c5e-1111-2222-3333-444455556666", state: "running" },
};

// Written by hand, not by the code under test.
const STATUS_BLOCK = `status:
  observedGeneration: 1
  observedSpecHash: 0123456789abcdef
  phase: Running
  conditions:
    - type: Ready
      status: "True"
      reason: Succeeded
      message: all good
      lastTransitionTime: 2024-05-01T10:00:00Z
  domain:
    uuid: 8d3c0c5e-1111-2222-3333-444455556666
    state: running
`;

async function fleet(text = FLEET, file = "fleet.yaml"): Promise<{ dir: string; abs: string; store: ManifestStore }> {
  const dir = await tempDir();
  writeTree(dir, { [file]: text });
  const store = new ManifestStore({ dir });
  const snapshot = await store.read();
  assert.deepEqual(snapshot.problems, []);
  return { dir, abs: path.join(dir, file), store };
}

const after = (text: string, marker: string) => {
  const i = text.indexOf(marker);
  assert.ok(i >= 0, `fixture lacks ${marker}`);
  return i + marker.length;
};

describe("writeStatus in the manifest file", () => {
  it("inserts a status block after the document's last field, nothing else changes", async () => {
    const { abs, store } = await fleet();
    assert.equal(await store.writeStatus("VirtualMachine/web1", STATUS), true);
    const at = after(FLEET, "      size: 20Gi\n");
    assert.equal(fs.readFileSync(abs, "utf8"), FLEET.slice(0, at) + STATUS_BLOCK + FLEET.slice(at));
  });

  it("remembers the status it wrote for snapshots read before the write, not for those read after", async () => {
    const { store } = await fleet();
    const before = await store.read();
    assert.equal(store.statusWritten("Network/lan", before), undefined, "nothing written yet");
    await store.writeStatus("Network/lan", STATUS);
    assert.deepEqual(store.statusWritten("Network/lan", before), STATUS, "the older snapshot lacks it");
    const after = await store.read();
    assert.equal(store.statusWritten("Network/lan", after), undefined, "a later read holds it (or an edit made since)");
    assert.deepEqual((after.objects.get("Network/lan")!.object as { status?: unknown }).status, STATUS);
    await store.writeStatus("Network/lan", null);
    assert.equal(store.statusWritten("Network/lan", after), null, "removed since that read");
  });

  it("replaces an existing block (with its indented comment) in the middle of a document", async () => {
    const { abs, store } = await fleet();
    assert.equal(await store.writeStatus("Network/lan", STATUS), true);
    const start = FLEET.indexOf("status:\n  phase: Old");
    const end = after(FLEET, "  # an indented comment in status\n");
    assert.equal(fs.readFileSync(abs, "utf8"), FLEET.slice(0, start) + STATUS_BLOCK + FLEET.slice(end));
  });

  it("removes the block with status null", async () => {
    const { abs, store } = await fleet();
    assert.equal(await store.writeStatus("Network/lan", null), true);
    const start = FLEET.indexOf("status:\n  phase: Old");
    const end = after(FLEET, "  # an indented comment in status\n");
    assert.equal(fs.readFileSync(abs, "utf8"), FLEET.slice(0, start) + FLEET.slice(end));
  });

  it("inserts before a document end marker `...`", async () => {
    const { abs, store } = await fleet();
    await store.writeStatus("StoragePool/default", STATUS);
    const at = after(FLEET, "  path: /var/lib/kvmctl/pools/default\n");
    assert.equal(fs.readFileSync(abs, "utf8"), FLEET.slice(0, at) + STATUS_BLOCK + FLEET.slice(at));
  });

  it("insert, replace and remove in turn give back the original bytes", async () => {
    const { abs, store } = await fleet();
    await store.writeStatus("VirtualMachine/web1", STATUS);
    await store.writeStatus("VirtualMachine/web1", { ...STATUS, phase: "Stopped" });
    assert.match(fs.readFileSync(abs, "utf8"), /phase: Stopped/);
    await store.writeStatus("VirtualMachine/web1", null);
    assert.equal(fs.readFileSync(abs, "utf8"), FLEET);
  });

  it("keeps CRLF line ends and writes the block with them", async () => {
    const crlf = FLEET.replace(/\n/g, "\r\n");
    const { abs, store } = await fleet(crlf);
    await store.writeStatus("VirtualMachine/web1", STATUS);
    const at = after(crlf, "      size: 20Gi\r\n");
    assert.equal(fs.readFileSync(abs, "utf8"), crlf.slice(0, at) + STATUS_BLOCK.replace(/\n/g, "\r\n") + crlf.slice(at));
  });

  it("keeps a trailing `---`, a missing final newline, and a byte order mark", async () => {
    const trailing = `${VM("a")}---\n`;
    const t = await fleet(trailing);
    await t.store.writeStatus("VirtualMachine/a", STATUS);
    assert.equal(fs.readFileSync(t.abs, "utf8"), `${VM("a")}${STATUS_BLOCK}---\n`);

    const noNewline = VM("b").trimEnd();
    const n = await fleet(noNewline);
    await n.store.writeStatus("VirtualMachine/b", STATUS);
    assert.equal(fs.readFileSync(n.abs, "utf8"), `${noNewline}\n${STATUS_BLOCK}`);

    const bom = `\uFEFF${NET("c")}`;
    const b = await fleet(bom);
    await b.store.writeStatus("Network/c", STATUS);
    assert.deepEqual(fs.readFileSync(b.abs).subarray(0, 3), Buffer.from([0xef, 0xbb, 0xbf]));
    assert.equal(fs.readFileSync(b.abs, "utf8"), `${bom}${STATUS_BLOCK}`);
  });

  it("refuses a flow-style document with a clear error and leaves the file alone", async () => {
    const text = `# flow\n{apiVersion: kvmctl.dev/v1alpha1, kind: Network, metadata: {name: flow}, spec: {mode: isolated}}\n`;
    const { abs, store } = await fleet(text);
    await assert.rejects(store.writeStatus("Network/flow", STATUS), (error: unknown) => {
      assert.ok(error instanceof ManifestEditError);
      assert.match(error.message, /^fleet\.yaml: document 1: cannot edit status safely: the document is written in flow style/);
      return true;
    });
    assert.equal(fs.readFileSync(abs, "utf8"), text);
  });

  it("skips the write when the status is unchanged (same inode, same mtime)", async () => {
    const { abs, store } = await fleet();
    await store.writeStatus("Network/lan", STATUS);
    const first = fs.statSync(abs);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(await store.writeStatus("Network/lan", { ...STATUS }), true);
    const second = fs.statSync(abs);
    assert.equal(second.ino, first.ino);
    assert.equal(second.mtimeMs, first.mtimeMs);
  });

  it("an unchanged status skips even the read; the file changed behind its back (status edited by hand), it is written again", async () => {
    const { abs, store } = await fleet();
    await store.writeStatus("Network/lan", STATUS); // written
    await store.writeStatus("Network/lan", { ...STATUS }); // found in place
    const tooNew = mock.method(fs, "openSync");
    try {
      await store.writeStatus("Network/lan", { ...STATUS });
      assert.ok(tooNew.mock.calls.some((call) => call.arguments[0] === abs), "written just now: too new for its stamp to vouch, read again");
    } finally {
      tooNew.mock.restore();
    }
    await new Promise((resolve) => setTimeout(resolve, RACY_MARGIN_MS + 200));
    await store.writeStatus("Network/lan", { ...STATUS }); // found in place, and now the stamp vouches
    const inPlace = fs.readFileSync(abs, "utf8");
    const opens = mock.method(fs, "openSync");
    try {
      assert.equal(await store.writeStatus("Network/lan", { ...STATUS }), true);
      assert.equal(opens.mock.calls.filter((call) => call.arguments[0] === abs).length, 0, "the file was not opened");
    } finally {
      opens.mock.restore();
    }
    const edited = inPlace.replace("phase: Running", "phase: Edited");
    assert.notEqual(edited, inPlace);
    fs.writeFileSync(abs, edited); // same size class, in place: its stamp changes
    assert.equal(await store.writeStatus("Network/lan", { ...STATUS }), true);
    assert.equal(fs.readFileSync(abs, "utf8"), inPlace, "written again over the hand edit");
    assert.equal(await store.writeStatus("VirtualMachine/web1", { phase: "Pending" }), true);
    assert.equal(await store.writeStatus("Network/lan", { ...STATUS }), true, "another document of the file written: lan's block still in place");
    assert.match(fs.readFileSync(abs, "utf8"), /phase: Running/);
  });

  it("returns false when the object is gone; follows an object that moved to another file", async () => {
    const { dir, abs, store } = await fleet();
    fs.writeFileSync(abs, FLEET.slice(FLEET.indexOf("---\n") + 4)); // web1 removed behind the store's back
    fs.writeFileSync(path.join(dir, "moved.yaml"), NET("elsewhere"));
    const before = fs.readFileSync(abs, "utf8");
    assert.equal(await store.writeStatus("VirtualMachine/web1", STATUS), false);
    assert.equal(fs.readFileSync(abs, "utf8"), before);

    fs.writeFileSync(abs, before.replace("name: lan", "name: lan2"));
    fs.appendFileSync(path.join(dir, "moved.yaml"), `---\n${NET("lan")}`);
    assert.equal(await store.writeStatus("Network/lan", STATUS), true);
    assert.match(fs.readFileSync(path.join(dir, "moved.yaml"), "utf8"), /name: lan\nspec:\n  mode: isolated\nstatus:\n  observedGeneration: 1/);
  });

  it("keeps the file's mode", async () => {
    const { abs, store } = await fleet();
    fs.chmodSync(abs, 0o640);
    await store.writeStatus("Network/lan", STATUS);
    assert.equal(fs.statSync(abs).mode & 0o777, 0o640);
  });

  it("serializes concurrent writes to one file: none is lost", async () => {
    const { abs, store } = await fleet();
    const keys = ["VirtualMachine/web1", "Network/lan", "StoragePool/default"];
    const { phase: _vmPhase, ...common } = STATUS; // phases differ per kind
    await Promise.all(keys.flatMap((key, i) => [1, 2, 3].map((round) => store.writeStatus(key, { ...common, note: `P${i}r${round}` }))));
    const snapshot = await store.read();
    assert.deepEqual(snapshot.problems, []);
    keys.forEach((key, i) => assert.equal(snapshot.objects.get(key)?.object.status?.["note" as never], `P${i}r3`));
  });

  it("round-trips awkward strings", async () => {
    const { store } = await fleet();
    const message = 'line one\nline two: "quoted" # not a comment\n  indented';
    await store.writeStatus("Network/lan", { ...STATUS, conditions: [{ ...STATUS.conditions[0]!, message }], note: "yes", zero: "012" });
    const status = (await store.read()).objects.get("Network/lan")?.object.status as Record<string, unknown>;
    assert.equal((status.conditions as { message: string }[])[0]!.message, message);
    assert.equal(status.note, "yes");
    assert.equal(status.zero, "012");
  });
});

describe("withoutStatusBlocks (git's view through kvmctl's clean filter)", () => {
  const FLEET_WITHOUT_STATUS = FLEET.replace("status:\n  phase: Old\n  # an indented comment in status\n", "");

  it("gives back the file as it was before status was written, byte for byte", async () => {
    const { abs, store } = await fleet(FLEET_WITHOUT_STATUS);
    for (const key of ["VirtualMachine/web1", "Network/lan", "StoragePool/default"]) assert.equal(await store.writeStatus(key, STATUS), true);
    const written = fs.readFileSync(abs, "utf8");
    assert.notEqual(written, FLEET_WITHOUT_STATUS);
    assert.equal(withoutStatusBlocks(written), FLEET_WITHOUT_STATUS);
    assert.equal(withoutStatusBlocks(FLEET_WITHOUT_STATUS), FLEET_WITHOUT_STATUS, "no status: unchanged");
    // A block written by hand, with its indented comment, goes too; CRLF files keep their ends.
    assert.equal(withoutStatusBlocks(FLEET), FLEET_WITHOUT_STATUS);
    const crlf = (t: string) => t.replace(/\n/g, "\r\n");
    assert.equal(withoutStatusBlocks(crlf(FLEET)), crlf(FLEET_WITHOUT_STATUS));
  });

  it("a file it cannot cut safely comes back unchanged: a filter never loses a byte", () => {
    const conflicted = `${VM("web1")}<<<<<<< HEAD\n  cpus: 2\n=======\n  cpus: 4\n>>>>>>> upstream\n${STATUS_BLOCK}`;
    assert.equal(withoutStatusBlocks(conflicted), conflicted);
    const flow = `{apiVersion: kvmctl.dev/v1alpha1, kind: Network, metadata: {name: lan}, status: {phase: x}}\n`;
    assert.equal(withoutStatusBlocks(flow), flow);
    assert.equal(withoutStatusBlocks(""), "");
  });
});

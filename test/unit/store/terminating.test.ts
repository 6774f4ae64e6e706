// Kept objects (manifest gone, libvirt object kept): records under .kvmctl/terminating.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { ManifestStore } from "../../../src/store/index.js";
import { tempDir } from "./helpers.js";

describe("terminating records", () => {
  it("are written once per change, listed, read back and cleared", async () => {
    const dir = await tempDir();
    const store = new ManifestStore({ dir });
    const kept = { phase: "Retained", reason: "PoolNotEmpty", message: "pool still holds 1 volume(s) (a.qcow2)" };
    assert.equal(await store.setTerminating("StoragePool/images", kept), true);
    assert.equal(await store.setTerminating("StoragePool/images", kept), false, "the same state again changes nothing");
    const record = await store.readTerminating("StoragePool/images");
    assert.equal(record?.kind, "StoragePool");
    assert.equal(record?.name, "images");
    assert.deepEqual(record?.conditions.map((c) => [c.type, c.status, c.reason, c.message]), [["Ready", "False", "PoolNotEmpty", kept.message]]);
    const since = record!.since;

    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(await store.setTerminating("StoragePool/images", { ...kept, message: "pool still holds 2 volume(s) (a.qcow2, b.qcow2)" }), true);
    const updated = await store.readTerminating("StoragePool/images");
    assert.equal(updated?.since, since, "since stays: the manifest went away once");
    assert.equal(updated?.conditions[0]?.lastTransitionTime, record!.conditions[0]!.lastTransitionTime, "same reason: no new transition");

    await store.setTerminating("Network/lan", { phase: "Terminating", reason: "NetworkInUse", message: "in use" });
    assert.deepEqual((await store.listTerminating()).map((r) => `${r.kind}/${r.name}`), ["Network/lan", "StoragePool/images"]);

    assert.equal(await store.setTerminating("StoragePool/images", undefined), true);
    assert.equal(await store.setTerminating("StoragePool/images", undefined), false);
    assert.equal(await store.readTerminating("StoragePool/images"), undefined);
    assert.equal(fs.existsSync(path.join(dir, ".kvmctl/terminating/StoragePool-images.json")), false);
    // Another process (a new controller) sees what is on disk.
    assert.deepEqual((await new ManifestStore({ dir }).listTerminating()).map((r) => r.name), ["lan"]);
  });

  it("refuses keys that are not Kind/name, and survives a torn record", async () => {
    const dir = await tempDir();
    const store = new ManifestStore({ dir });
    await assert.rejects(store.setTerminating("StoragePool/../../etc", { phase: "Retained", reason: "x", message: "x" }), /not an object key/);
    fs.mkdirSync(path.join(dir, ".kvmctl/terminating"), { recursive: true });
    fs.writeFileSync(path.join(dir, ".kvmctl/terminating/Network-lan.json"), "{ torn");
    assert.deepEqual(await store.listTerminating(), []);
    assert.equal(await store.setTerminating("Network/lan", undefined), false, "unknown to this store: nothing to clear");
  });

  it("a record edited by hand into something kvmctl never writes is no record: it never becomes a key", async () => {
    const dir = await tempDir();
    const store = new ManifestStore({ dir });
    await store.setTerminating("Network/good", { phase: "Terminating", reason: "NetworkInUse", message: "in use" });
    const records = path.join(dir, ".kvmctl/terminating");
    const valid = JSON.parse(fs.readFileSync(path.join(records, "Network-good.json"), "utf8"));
    const planted: Record<string, unknown> = {
      "VirtualMachine-web.json": { ...valid, kind: "VirtualMachine", name: { evil: true } },
      "Widget-w.json": { ...valid, kind: "Widget", name: "w" },
      "Network-other.json": { ...valid, name: "lan" }, // says another key than its file
      "Network-bad.json": { ...valid, name: "bad", conditions: "none" },
      "Network-upper.json": { ...valid, name: "Upper" },
      "StoragePool-null.json": null,
      "StoragePool-list.json": [1, 2],
    };
    for (const [file, value] of Object.entries(planted)) fs.writeFileSync(path.join(records, file), JSON.stringify(value));
    assert.deepEqual((await store.listTerminating()).map((r) => `${r.kind}/${r.name}`), ["Network/good"]);
    assert.equal(await store.readTerminating("Network/other"), undefined);
  });
});

// Object events: appended per object under .kvmctl/events, trimmed to the last 50.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { ManifestStore, type ObjectEvent } from "../../../src/store/index.js";
import { tempDir } from "./helpers.js";

const event = (i: number): ObjectEvent => ({ time: new Date(Date.UTC(2024, 0, 1, 0, 0, i)).toISOString(), type: i % 2 ? "Warning" : "Normal", reason: `R${i}`, message: `event ${i}` });

describe("events", () => {
  it("keeps the last 50 per object, oldest first", async () => {
    const dir = await tempDir();
    const store = new ManifestStore({ dir });
    for (let i = 0; i < 60; i++) await store.recordEvent("VirtualMachine/web1", event(i));
    await store.recordEvent("Network/lan", event(100));
    const events = await store.readEvents("VirtualMachine/web1");
    assert.equal(events.length, 50);
    assert.deepEqual(events[0], event(10));
    assert.deepEqual(events.at(-1), event(59));
    const file = path.join(dir, ".kvmctl/events/VirtualMachine-web1.jsonl");
    assert.equal(fs.readFileSync(file, "utf8").trimEnd().split("\n").length, 50);
    assert.deepEqual(await store.readEvents("Network/lan"), [event(100)]);
    assert.deepEqual(await store.readEvents("StoragePool/none"), []);
  });

  it("loses nothing when recorded concurrently, and skips a torn line", async () => {
    const dir = await tempDir();
    const store = new ManifestStore({ dir });
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.recordEvent("Network/lan", event(i))));
    assert.deepEqual((await store.readEvents("Network/lan")).map((e) => e.reason), Array.from({ length: 20 }, (_, i) => `R${i}`));
    fs.appendFileSync(path.join(dir, ".kvmctl/events/Network-lan.jsonl"), '{"time": "2024-');
    assert.equal((await store.readEvents("Network/lan")).length, 20);
  });

  it("refuses keys that are not Kind/name", async () => {
    const store = new ManifestStore({ dir: await tempDir() });
    for (const key of ["VirtualMachine/../../etc", "Pod/web", "VirtualMachine/Web_1", "VirtualMachine"]) {
      await assert.rejects(store.recordEvent(key, event(1)), /not an object key/);
    }
  });
});

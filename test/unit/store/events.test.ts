// Object events: kept per object under .kvmctl/events, trimmed to the last 50; identical ones aggregate.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { aggregateEvent, eventCount, eventFirstTime, keyOfFileStem } from "../../../src/store/events.js";
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

  it("aggregates identical events (type, reason, message): a count, first and last seen, moved to the end", async () => {
    const dir = await tempDir();
    const store = new ManifestStore({ dir });
    const at = (s: number) => new Date(Date.UTC(2024, 0, 1, 0, 0, s)).toISOString();
    await store.recordEvent("VirtualMachine/web1", { time: at(1), type: "Warning", reason: "ReconcileFailed", message: "virsh: busy" });
    await store.recordEvent("VirtualMachine/web1", { time: at(2), type: "Normal", reason: "Started", message: "start domain" });
    await store.recordEvent("VirtualMachine/web1", { time: at(3), type: "Warning", reason: "ReconcileFailed", message: "virsh: busy" });
    await store.recordEvent("VirtualMachine/web1", { time: at(4), type: "Warning", reason: "ReconcileFailed", message: "virsh: busy" });
    await store.recordEvent("VirtualMachine/web1", { time: at(5), type: "Warning", reason: "ReconcileFailed", message: "virsh: gone" });
    await store.recordEvent("VirtualMachine/web1", { time: at(6), type: "Normal", reason: "ReconcileFailed", message: "virsh: gone" });
    assert.deepEqual(await store.readEvents("VirtualMachine/web1"), [
      { time: at(2), type: "Normal", reason: "Started", message: "start domain" },
      { time: at(4), type: "Warning", reason: "ReconcileFailed", message: "virsh: busy", count: 3, firstTime: at(1) },
      { time: at(5), type: "Warning", reason: "ReconcileFailed", message: "virsh: gone" },
      { time: at(6), type: "Normal", reason: "ReconcileFailed", message: "virsh: gone" },
    ]);
    assert.equal(fs.readFileSync(path.join(dir, ".kvmctl/events/VirtualMachine-web1.jsonl"), "utf8").trimEnd().split("\n").length, 4, "one line each");
    // 500 repeats stay one line.
    for (let i = 0; i < 500; i++) await store.recordEvent("Network/lan", { ...event(1), time: at(10) });
    const lan = await store.readEvents("Network/lan");
    assert.equal(lan.length, 1);
    assert.equal(lan[0]!.count, 500);
  });

  it("reads lines written before aggregation (no count) as seen once, and counts on from them", () => {
    const old: ObjectEvent = { time: "2024-01-01T00:00:00.000Z", type: "Normal", reason: "Converged", message: "define" };
    assert.equal(eventCount(old), 1);
    assert.equal(eventFirstTime(old), old.time);
    assert.equal(eventCount({ ...old, count: -3 }), 1, "a hand-edited count");
    const merged = aggregateEvent([old, event(7)], { ...old, time: "2024-01-01T00:05:00.000Z" });
    assert.deepEqual(merged, [event(7), { ...old, time: "2024-01-01T00:05:00.000Z", count: 2, firstTime: old.time }]);
    // An event recorded late (an older time) widens the span, it does not move last seen back.
    assert.deepEqual(aggregateEvent(merged, { ...old, time: "2023-12-31T23:00:00.000Z" }).at(-1), { ...old, time: "2024-01-01T00:05:00.000Z", count: 3, firstTime: "2023-12-31T23:00:00.000Z" });
  });

  it("lists every object's events, skipping files that are not an object's", async () => {
    const dir = await tempDir();
    const store = new ManifestStore({ dir });
    await store.recordEvent("VirtualMachine/web-1", event(1));
    await store.recordEvent("Network/lan", event(2));
    fs.writeFileSync(path.join(dir, ".kvmctl/events/notes.txt"), "x");
    fs.writeFileSync(path.join(dir, ".kvmctl/events/Pod-x.jsonl"), JSON.stringify(event(3)) + "\n");
    assert.deepEqual([...(await store.readAllEvents()).keys()], ["Network/lan", "VirtualMachine/web-1"]);
    assert.equal(keyOfFileStem("VirtualMachine-web-1"), "VirtualMachine/web-1");
    assert.equal(keyOfFileStem("VirtualMachine-Web"), undefined);
    assert.deepEqual(await new ManifestStore({ dir: await tempDir() }).readAllEvents(), new Map());
  });
});

// `kvmctl events` (in process, on a real events directory) and describe's aggregated table.
import assert from "node:assert/strict";
import { test } from "node:test";
import { describeTerminating } from "../../../src/cli/commands/describe.js";
import { lastSeen, runEvents, type EventsIo } from "../../../src/cli/commands/events.js";
import type { CliContext } from "../../../src/cli/context.js";
import { UsageError } from "../../../src/cli/errors.js";
import { ManifestStore, type ObjectEvent } from "../../../src/store/index.js";
import { tempDir } from "../store/helpers.js";

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const ago = (seconds: number) => new Date(NOW - seconds * 1000).toISOString();

async function setup(): Promise<{ ctx: CliContext; store: ManifestStore }> {
  const dir = await tempDir("kvmctl-events-");
  const store = new ManifestStore({ dir });
  const ctx: CliContext = { dir, connect: "test:///default", statusDir: undefined, openStore: async () => store };
  await store.recordEvent("VirtualMachine/web1", { time: ago(3600), type: "Normal", reason: "Started", message: "define domain; start domain" });
  for (const s of [900, 600, 30]) await store.recordEvent("VirtualMachine/web1", { time: ago(s), type: "Warning", reason: "ReconcileFailed", message: "virsh start: busy" });
  await store.recordEvent("Network/lan", { time: ago(300), type: "Normal", reason: "Converged", message: "define network;\nstart network" });
  return { ctx, store };
}

function capture(signal?: AbortSignal): EventsIo & { stdout: string; stderr: string } {
  const io = { stdout: "", stderr: "", out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t), now: () => NOW, pollMs: 20, ...(signal ? { signal } : {}) };
  return io;
}

test("lists every object's events like kubectl events: oldest first, aggregated ones as (xN over AGE)", async () => {
  const { ctx } = await setup();
  const io = capture();
  await runEvents(ctx, [], {}, io);
  assert.equal(
    io.stdout,
    [
      "LAST SEEN           TYPE      REASON            OBJECT                MESSAGE",
      "60m                 Normal    Started           VirtualMachine/web1   define domain; start domain",
      "5m                  Normal    Converged         Network/lan           define network; start network",
      "30s (x3 over 15m)   Warning   ReconcileFailed   VirtualMachine/web1   virsh start: busy",
      "",
    ].join("\n"),
  );
  assert.equal(io.stderr, "");
});

test("one object (vm/web1 or vm web1), one kind, and nothing found", async () => {
  const { ctx } = await setup();
  for (const args of [["vm/web1"], ["vm", "web1"], ["VirtualMachine/web1"]]) {
    const io = capture();
    await runEvents(ctx, args, {}, io);
    assert.deepEqual(io.stdout.trimEnd().split("\n").map((l) => l.split(/\s{3,}/)[2]), ["REASON", "Started", "ReconcileFailed"], args.join(" "));
  }
  const kind = capture();
  await runEvents(ctx, ["net"], {}, kind);
  assert.match(kind.stdout, /Network\/lan/);
  assert.doesNotMatch(kind.stdout, /web1/);
  const none = capture();
  await runEvents(ctx, ["pool/data"], {}, none);
  assert.equal(none.stdout, "");
  assert.equal(none.stderr, "No events found for StoragePool/data.\n");
  await assert.rejects(runEvents(ctx, ["vm/Bad_Name"], {}, capture()), UsageError);
  await assert.rejects(runEvents(ctx, ["pod/x"], {}, capture()), UsageError);
});

test("-w prints the table, then a line per new or updated event, until interrupted", async () => {
  const { ctx, store } = await setup();
  const abort = new AbortController();
  const io = capture(abort.signal);
  const running = runEvents(ctx, ["vm/web1"], { watch: true }, io);
  const waitFor = async (pattern: RegExp) => {
    for (let i = 0; i < 200 && !pattern.test(io.stdout); i++) await new Promise((r) => setTimeout(r, 10));
    assert.match(io.stdout, pattern);
  };
  await waitFor(/ReconcileFailed/);
  const before = io.stdout;
  await store.recordEvent("VirtualMachine/web1", { time: ago(5), type: "Warning", reason: "ReconcileFailed", message: "virsh start: busy" });
  await waitFor(/x4 over/);
  await store.recordEvent("VirtualMachine/web1", { time: ago(1), type: "Normal", reason: "Started", message: "start domain" });
  await store.recordEvent("Network/lan", { time: ago(1), type: "Normal", reason: "Converged", message: "other object" });
  await waitFor(/start domain\n$/);
  abort.abort();
  await running;
  const added = io.stdout.slice(before.length).trimEnd().split("\n");
  assert.equal(added.length, 2, io.stdout);
  assert.match(added[0]!, /^5s \(x4 over 15m\) +Warning +ReconcileFailed +VirtualMachine\/web1 +virsh start: busy$/);
  assert.match(added[1]!, /^1s +Normal +Started +VirtualMachine\/web1 +start domain$/);
  assert.equal(added[1]!.indexOf("Normal"), before.split("\n")[0]!.indexOf("TYPE"), "aligned with the table");
});

test("-w with no events yet prints the header with the first one", async () => {
  const dir = await tempDir("kvmctl-events-");
  const store = new ManifestStore({ dir });
  const abort = new AbortController();
  const io = capture(abort.signal);
  const running = runEvents({ dir, connect: "", statusDir: undefined, openStore: async () => store }, [], { watch: true }, io);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(io.stderr, "No events found.\n");
  await store.recordEvent("Network/lan", { time: ago(2), type: "Normal", reason: "Converged", message: "define network" });
  for (let i = 0; i < 200 && !io.stdout.includes("Converged"); i++) await new Promise((r) => setTimeout(r, 10));
  abort.abort();
  await running;
  assert.equal(io.stdout, "LAST SEEN   TYPE     REASON      OBJECT        MESSAGE\n2s          Normal   Converged   Network/lan   define network\n");
});

test("LAST SEEN of an event seen once, and of one seen many times", () => {
  const event: ObjectEvent = { time: ago(90), type: "Normal", reason: "R", message: "m" };
  assert.equal(lastSeen(event, NOW), "90s");
  assert.equal(lastSeen({ ...event, count: 1 }, NOW), "90s");
  assert.equal(lastSeen({ ...event, count: 12, firstTime: ago(7200) }, NOW), "90s (x12 over 2h)");
});

test("describe's Events: one row per aggregated event with its count, first and last seen", () => {
  const events: ObjectEvent[] = [
    { time: ago(60), type: "Normal", reason: "Started", message: "start domain" },
    { time: ago(10), type: "Warning", reason: "ReconcileFailed", message: "busy", count: 7, firstTime: ago(3600) },
  ];
  const text = describeTerminating({ kind: "VirtualMachine", name: "web1", since: ago(100), phase: "Terminating", reason: "R", message: "m", conditions: [] } as never, events, NOW);
  const table = text.slice(text.indexOf("Events:\n") + "Events:\n".length).trimEnd().split("\n");
  assert.deepEqual(table, [
    "  TYPE      REASON            COUNT   FIRST SEEN   LAST SEEN   MESSAGE",
    "  Normal    Started           1       60s          60s         start domain",
    "  Warning   ReconcileFailed   7       60m          10s         busy",
  ]);
});

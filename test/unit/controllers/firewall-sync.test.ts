// The firewall's drift check, against an in-memory table: what it remembers after an apply,
// and that a hand edit landing between its apply and its read-back is still repaired.
import assert from "node:assert/strict";
import { test } from "node:test";
import pino from "pino";
import type { LiveState } from "../../../src/ports/index.js";
import { MemoryTable } from "../helpers/fake-ports.js";
import { validateDocument, type Network } from "../../../src/api/index.js";
import { Firewall } from "../../../src/controllers/firewall/controller.js";
import type { Snapshot, StoredObject } from "../../../src/store/index.js";

// An isolated network with an egress rule: rules without forwarding (nothing written to /proc).
function snapshotWith(name: string): Snapshot {
  const result = validateDocument({ apiVersion: "kvmctl.dev/v1alpha1", kind: "Network", metadata: { name }, spec: { mode: "isolated", ipv4: { address: "192.0.2.1", prefix: 24 }, egress: [{ action: "deny", to: ["203.0.113.0/24"] }] } });
  assert.ok(result.ok);
  const stored = { key: `Network/${name}`, kind: "Network", name, object: result.object as Network } as unknown as StoredObject;
  return { objects: new Map([[stored.key, stored]]), invalid: new Map(), unreadableFiles: new Map() } as unknown as Snapshot;
}

const live = (bridge: string): LiveState => ({
  takenAt: 0,
  domains: new Map(),
  pools: new Map(),
  networks: new Map([["lan", { uuid: "u", name: "lan", config: { name: "lan", forwardMode: "none", bridge }, active: true, autostart: true, persistent: true }]]),
});

function setUp() {
  const table = new MemoryTable();
  const firewall = new Firewall({
    backend: "auto",
    instance: "t1",
    logger: pino({ level: "silent" }),
    host: { detect: async () => table, qemuUid: () => 64055 },
    sysctl: { ensureIpv4Forwarding: async () => false },
  });
  return { table, firewall };
}

test("applied once, then left alone while the table holds what was applied", async () => {
  const { table, firewall } = setUp();
  const state = await firewall.sync(snapshotWith("lan"), live("virbr5"));
  assert.equal(state.total, 2);
  assert.equal(table.applies, 1);
  await firewall.sync(snapshotWith("lan"), live("virbr5"));
  assert.equal(table.applies, 1, "no change, no apply");
});

test("flushed by hand: applied again", async () => {
  const { table, firewall } = setUp();
  await firewall.sync(snapshotWith("lan"), live("virbr5"));
  table.rules = [];
  await firewall.sync(snapshotWith("lan"), live("virbr5"));
  assert.equal(table.applies, 2);
  assert.equal(table.rules.length, 2);
});

test("a flush between the apply and its read-back is not taken for the applied table", async () => {
  const { table, firewall } = setUp();
  table.afterNextApply = () => (table.rules = []);
  await firewall.sync(snapshotWith("lan"), live("virbr5"));
  assert.equal(table.rules.length, 0, "the race happened");
  await firewall.sync(snapshotWith("lan"), live("virbr5"));
  assert.equal(table.rules.length, 2, "the next check repairs it");
});

test("the bridge moved: the rules follow it", async () => {
  const { table, firewall } = setUp();
  await firewall.sync(snapshotWith("lan"), live("virbr5"));
  await firewall.sync(snapshotWith("lan"), live("virbr6"));
  assert.equal(table.applies, 2);
  assert.ok(table.rules.every((r) => r.iif === "virbr6"));
});

test("an earlier kvmctl's table is removed by the instance whose manifests own all its rules, else left alone", async () => {
  for (const [owners, removed] of [[["Network/lan"], true], [["Network/lan", "Network/elsewhere"], false]] as const) {
    const table = new MemoryTable();
    let legacy: string[] | undefined = [...owners];
    Object.assign(table, {
      legacy: async () => (legacy ? { where: "nftables table inet kvmctl", owners: legacy } : undefined),
      removeLegacy: async () => void (legacy = undefined),
    });
    const firewall = new Firewall({ backend: "auto", instance: "t1", logger: pino({ level: "silent" }), host: { detect: async () => table, qemuUid: () => 64055 }, sysctl: { ensureIpv4Forwarding: async () => false } });
    await firewall.sync(snapshotWith("lan"), live("virbr5"));
    assert.equal(legacy === undefined, removed, `legacy owners ${owners.join(", ")}`);
    assert.equal(table.rules.length, 2, "this instance's own table holds the rules");
  }
});

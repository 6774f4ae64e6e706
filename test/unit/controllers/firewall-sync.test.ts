// The firewall's drift check, against an in-memory table: what it remembers after an apply,
// and that a hand edit landing between its apply and its read-back is still repaired.
import assert from "node:assert/strict";
import { test } from "node:test";
import pino from "pino";
import type { LiveState } from "../../../src/ports/index.js";
import type { Rule } from "../../../src/firewall/rules.js";
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
    host: { detect: async () => table, qemuUid: () => 64055, listening: async () => [] },
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

test("a check that finds nothing moved renders nothing; a hand edit or a moved bridge under the same manifests is still repaired", async () => {
  const { table, firewall } = setUp();
  let renders = 0; // placed() is asked for the rendered rules on every full comparison
  const placed = table.placed.bind(table);
  table.placed = (rules) => (renders++, placed(rules));
  const snapshot = snapshotWith("lan"); // the manager hands the same snapshot while no manifest changes
  await firewall.sync(snapshot, live("virbr5"));
  await firewall.sync(snapshot, live("virbr5")); // finds the table as applied
  const before = renders;
  const state = await firewall.sync(snapshot, live("virbr5"));
  assert.equal(renders, before, "the same manifests, live facts and table: not rendered again");
  assert.equal(state.total, 2);
  table.rules = table.rules.slice(1); // one rule deleted by hand, unwatched (as with iptables)
  await firewall.sync(snapshot, live("virbr5"));
  assert.equal(table.applies, 2, "the table moved: compared and repaired");
  assert.equal(table.rules.length, 2);
  await firewall.sync(snapshot, live("virbr5"));
  await firewall.sync(snapshot, live("virbr6"));
  assert.equal(table.applies, 3, "the bridge moved: compared and applied");
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
    const firewall = new Firewall({ backend: "auto", instance: "t1", logger: pino({ level: "silent" }), host: { detect: async () => table, qemuUid: () => 64055, listening: async () => [] }, sysctl: { ensureIpv4Forwarding: async () => false } });
    await firewall.sync(snapshotWith("lan"), live("virbr5"));
    assert.equal(legacy === undefined, removed, `legacy owners ${owners.join(", ")}`);
    assert.equal(table.rules.length, 2, "this instance's own table holds the rules");
  }
});

test("a forward on a reserved port or one the host listens on stays out of the table until the port is free", async () => {
  const spec = { mode: "nat", ipv4: { address: "192.0.2.1", prefix: 24 }, portForwards: [8080, 2222, 9090].map((hostPort) => ({ hostPort, guestAddress: "192.0.2.10", guestPort: 80 })) };
  const result = validateDocument({ apiVersion: "kvmctl.dev/v1alpha1", kind: "Network", metadata: { name: "lan" }, spec });
  assert.ok(result.ok);
  const stored = { key: "Network/lan", kind: "Network", name: "lan", object: result.object as Network } as unknown as StoredObject;
  const snapshot = { objects: new Map([[stored.key, stored]]), invalid: new Map(), unreadableFiles: new Map() } as unknown as Snapshot;
  const table = new MemoryTable();
  let listening = [{ protocol: "tcp" as const, address: "0.0.0.0", port: 8080 }];
  const firewall = new Firewall({
    backend: "auto",
    instance: "t1",
    logger: pino({ level: "silent" }),
    host: { detect: async () => table, qemuUid: () => 64055, listening: async () => listening },
    sysctl: { ensureIpv4Forwarding: async () => false },
    reservedHostPorts: [2222],
  });
  const forwarded = () => [...new Set(table.rules.filter((r) => r.verdict.type === "dnat").map((r) => r.dports![0]))].sort();
  const state = await firewall.sync(snapshot, live("virbr5"));
  assert.deepEqual(forwarded(), [9090]);
  assert.match(state.refused.get("Network/lan")!, /tcp\/8080 is in use on this host.*tcp\/2222 is reserved|tcp\/2222 is reserved.*tcp\/8080 is in use/);
  listening = [];
  const freed = await firewall.sync(snapshot, live("virbr5"));
  assert.deepEqual(forwarded(), [8080, 9090], "the port let go of: its forward applied");
  assert.match(freed.refused.get("Network/lan")!, /^host port tcp\/2222 is reserved/);
});

/** A table whose backend refuses the rules of some objects, as nft refuses a rule it cannot hold. */
class PickyTable extends MemoryTable {
  readonly refuse = new Set<string>();
  checks = 0;
  override async apply(rules: readonly Rule[]): Promise<void> {
    const bad = rules.find((r) => this.refuse.has(r.owner));
    this.applies++;
    if (bad) throw new Error(`Error: Could not process rule of ${bad.owner}`);
    this.rules = [...rules];
  }
  async check(rules: readonly Rule[]): Promise<string | undefined> {
    this.checks++;
    const bad = rules.find((r) => this.refuse.has(r.owner));
    return bad ? `Error: Could not process rule of ${bad.owner}` : undefined;
  }
}

function twoNetworks(): Snapshot {
  const [a, b] = [snapshotWith("lan"), snapshotWith("dmz")];
  return { ...a, objects: new Map([...a.objects, ...b.objects]) } as Snapshot;
}

test("one object's rules the backend refuses are left out; the others' are applied, once", async () => {
  const table = new PickyTable();
  table.refuse.add("Network/dmz");
  const firewall = new Firewall({ backend: "auto", instance: "t1", logger: pino({ level: "silent" }), host: { detect: async () => table, qemuUid: () => 64055, listening: async () => [] }, sysctl: { ensureIpv4Forwarding: async () => false } });
  const lives: LiveState = { ...live("virbr5"), networks: new Map([...live("virbr5").networks, ["dmz", { ...live("virbr6").networks.get("lan")!, name: "dmz", config: { name: "dmz", forwardMode: "none", bridge: "virbr6" } }]]) };
  const state = await firewall.sync(twoNetworks(), lives);
  assert.equal(state.error, undefined);
  assert.deepEqual([...new Set(table.rules.map((r) => r.owner))], ["Network/lan"]);
  assert.match(state.failed.get("Network/dmz")!, /Could not process rule of Network\/dmz/);
  assert.equal(state.failed.has("Network/lan"), false);
  // The same rules again: no failing transaction every check, the table is left as it is.
  const applies = table.applies;
  await firewall.sync(twoNetworks(), lives);
  assert.equal(table.applies, applies);
  // The backend takes them now (the rules changed: here, it stops refusing): all applied.
  table.refuse.clear();
  await firewall.sync(snapshotWith("lan"), lives);
  const fixed = await firewall.sync(twoNetworks(), lives);
  assert.deepEqual([...new Set(table.rules.map((r) => r.owner))].sort(), ["Network/dmz", "Network/lan"]);
  assert.equal(fixed.failed.size, 0);
  // When every object's rules fail, the backend is at fault: the sync fails, nothing is left out.
  table.refuse.add("Network/lan").add("Network/dmz");
  const before = JSON.stringify(table.rules);
  await assert.rejects(firewall.sync(snapshotWith("lan"), lives), /Could not process rule/);
  assert.equal(JSON.stringify(table.rules), before, "the table kept what it held");
});

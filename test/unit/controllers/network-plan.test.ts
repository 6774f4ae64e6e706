// Network XML and the Network plan, without a host: what is defined, what a live DHCP change
// becomes (net-update, no restart), what needs a restart, ownership, and deletion while in use.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { LiveNetwork } from "../../../src/ports/index.js";
import { validateDocument, type Network } from "../../../src/api/index.js";
import { buildNetworkXml, compareNetwork, networkUuid, parseNetworkXml, planNetworkUpdates } from "../../../src/libvirt/index.js";
import { guestMacsWithoutLease } from "../../../src/controllers/network/controller.js";
import { parseLeases } from "../../../src/adapters/virsh-hypervisor.js";
import type { DomainFacts } from "../../../src/libvirt/index.js";
import { planNetwork, planNetworkDeletion, tapsOffBridge, type NetworkPlanInput } from "../../../src/controllers/network/plan.js";

function net(spec: Record<string, unknown>, name = "public"): Network {
  const result = validateDocument({ apiVersion: "kvmctl.dev/v1alpha1", kind: "Network", metadata: { name }, spec });
  assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
  return result.object as Network;
}

const publicSpec = {
  mode: "nat",
  ipv4: { address: "192.0.2.1", prefix: 24, dhcp: { start: "192.0.2.100", end: "192.0.2.200", hosts: [{ mac: "52:54:00:00:0A:01", ip: "192.0.2.10", name: "web" }] } },
};
/** The controller instance these plans are for. */
const I = "t1";
const owner = { manifest: "Network/public", instance: I, file: "networks/public.yaml", specHash: "h1" };

/** What libvirt would report for an owned network defined from `spec` (plus its own additions). */
function liveFrom(spec: Record<string, unknown>, opts: { active?: boolean; autostart?: boolean; specHash?: string; persistent?: boolean } = {}): LiveNetwork {
  const xml = buildNetworkXml("public", net(spec).spec, { ...owner, specHash: opts.specHash ?? "h1" });
  // libvirt adds a bridge name, a MAC and DNS defaults: none of them is drift.
  const withAdditions = xml.replace("</network>", "  <bridge name='virbr7' stp='on' delay='0'/>\n  <mac address='52:54:00:aa:bb:cc'/>\n</network>");
  const config = parseNetworkXml(withAdditions);
  return { uuid: networkUuid("public", I), name: "public", config, running: opts.active === false ? undefined : config, active: opts.active ?? true, autostart: opts.autostart ?? true, persistent: opts.persistent ?? true };
}

function input(spec: Record<string, unknown>, live: LiveNetwork | undefined, overrides: Partial<NetworkPlanInput> = {}): NetworkPlanInput {
  return { key: "Network/public", name: "public", instance: I, file: "networks/public.yaml", specHash: "h1", spec: net(spec).spec, live, users: [], ...overrides };
}

test("nat is defined as libvirt's open mode (kvmctl's table does the NAT), with owner metadata and a name-derived UUID", () => {
  const xml = buildNetworkXml("public", net(publicSpec).spec, owner);
  assert.match(xml, /<forward mode="open"/);
  assert.match(xml, /<kvmctl:owner [^>]*manifest="Network\/public"/);
  assert.match(xml, /<host mac="52:54:00:00:0a:01" name="web" ip="192.0.2.10"/);
  const facts = parseNetworkXml(xml);
  assert.equal(facts.uuid, networkUuid("public", I));
  assert.deepEqual(facts.ipv4?.dhcp?.ranges, [{ start: "192.0.2.100", end: "192.0.2.200" }]);
  assert.equal(parseNetworkXml(buildNetworkXml("private", net({ mode: "isolated", ipv4: { address: "198.18.0.1", prefix: 24 } }, "private").spec)).forwardMode, "none");
});

test("user values are escaped, never spliced into XML", () => {
  const xml = buildNetworkXml("public", net(publicSpec).spec, { ...owner, file: `a"<b>&.yaml` });
  assert.match(xml, /file="a&quot;&lt;b&gt;&amp;.yaml"/);
});

test("libvirt's additions are not drift; an equal network plans nothing", () => {
  const live = liveFrom(publicSpec);
  assert.deepEqual(compareNetwork(parseNetworkXml(buildNetworkXml("public", net(publicSpec).spec)), live.config), []);
  const plan = planNetwork(input(publicSpec, live));
  assert.equal(plan.kind, "converge");
  assert.deepEqual(plan.kind === "converge" && plan.steps, []);
});

test("a new static DHCP host on a running network is a live net-update, not a restart", () => {
  const live = liveFrom(publicSpec);
  const changed = structuredClone(publicSpec);
  changed.ipv4.dhcp.hosts.push({ mac: "52:54:00:00:0a:02", ip: "192.0.2.11", name: "db" });
  const updates = planNetworkUpdates(parseNetworkXml(buildNetworkXml("public", net(changed).spec)), live.config);
  assert.deepEqual(updates?.map((u) => [u.command, u.section, u.parentIndex]), [["add-last", "ip-dhcp-host", 0]]);
  const plan = planNetwork(input(changed, live, { specHash: "h2" }));
  assert.equal(plan.kind, "converge");
  const types = plan.kind === "converge" ? plan.steps.map((s) => s.action.type) : [];
  assert.ok(!types.includes("destroy"), `no restart: ${types.join(", ")}`);
  assert.ok(types.includes("update"));
  assert.ok(types.includes("define"), "the definition is refreshed for the new spec hash");
  // The define already carries the new host: the edit must touch the running network only
  // (libvirt refuses a --config add of an entry the definition already has).
  const update = plan.kind === "converge" ? plan.steps.find((s) => s.action.type === "update")?.action : undefined;
  assert.equal(update?.type === "update" && update.scope, "live");
});

test("a moved address needs a restart, which waits while guests use the network", () => {
  const live = liveFrom(publicSpec);
  const moved = { ...publicSpec, ipv4: { ...publicSpec.ipv4, address: "192.0.2.2" } };
  const busy = planNetwork(input(moved, live, { specHash: "h2", users: ["web"] }));
  assert.equal(busy.kind, "converge");
  if (busy.kind !== "converge") return;
  assert.match(busy.restartRequired ?? "", /192\.0\.2\.2.*web use it/);
  assert.deepEqual(busy.steps.map((s) => s.action.type), ["define"]);
  const idle = planNetwork(input(moved, live, { specHash: "h2" }));
  assert.deepEqual(idle.kind === "converge" && idle.steps.map((s) => s.action.type), ["define", "destroy", "start"]);
});

test("drift: a stopped network is started, an undefined one defined and started, autostart restored", () => {
  const stopped = planNetwork(input(publicSpec, liveFrom(publicSpec, { active: false, autostart: false })));
  assert.deepEqual(stopped.kind === "converge" && stopped.steps.map((s) => s.action.type), ["start", "autostart"]);
  const gone = planNetwork(input(publicSpec, undefined));
  assert.deepEqual(gone.kind === "converge" && gone.steps.map((s) => s.action.type), ["define", "start", "autostart"]);
  // net-undefine on the running network leaves it transient: defined again, not restarted.
  const transient = planNetwork(input(publicSpec, liveFrom(publicSpec, { persistent: false, autostart: false })));
  assert.deepEqual(transient.kind === "converge" && transient.steps.map((s) => s.action.type), ["define", "autostart"]);
  assert.match(transient.kind === "converge" ? transient.steps[0]!.message : "", /undefined by hand/);
});

test("a network kvmctl does not own is never touched", () => {
  const foreign = liveFrom(publicSpec);
  const notOurs: LiveNetwork = { ...foreign, uuid: "11111111-2222-3333-4444-555555555555", config: { ...foreign.config, owner: undefined } };
  assert.equal(planNetwork(input(publicSpec, notOurs)).kind, "notOwned");
  assert.equal(planNetworkDeletion("Network/public", "public", notOurs, [], [], I).kind, "notOwned");
});

test("deletion waits for running guests and VM manifests, then stops and undefines", () => {
  const live = liveFrom(publicSpec);
  const blocked = planNetworkDeletion("Network/public", "public", live, ["web"], ["VirtualMachine/web"], I);
  assert.equal(blocked.kind, "blocked");
  assert.match(blocked.kind === "blocked" ? blocked.message : "", /running domain web/);
  const byManifest = planNetworkDeletion("Network/public", "public", live, [], ["VirtualMachine/db"], I);
  assert.match(byManifest.kind === "blocked" ? byManifest.message : "", /manifest VirtualMachine\/db/);
  const free = planNetworkDeletion("Network/public", "public", live, [], [], I);
  assert.deepEqual(free.kind === "prune" && free.steps.map((s) => s.action.type), ["destroy", "undefine"]);
});

test("mode user has nothing in libvirt", () => {
  const spec = { mode: "user", egress: [{ action: "deny", to: ["10.0.0.0/8"] }] };
  assert.equal(planNetwork(input(spec, undefined)).kind, "firewallOnly");
});

test("net-dhcp-leases output is read into leases", () => {
  const text = ` Expiry Time           MAC address         Protocol   IP address      Hostname   Client ID or DUID
-------------------------------------------------------------------------------------------------------
 2026-11-23 06:05:31   52:54:00:00:0A:01   ipv4       192.0.2.10/24   web        01:52:54:00:00:0a:01
 2026-11-23 06:05:40   52:54:00:00:0a:02   ipv4       192.0.2.150/24  -          -
`;
  assert.deepEqual(parseLeases(text), [
    { mac: "52:54:00:00:0a:01", ip: "192.0.2.10", hostname: "web", expiry: "2026-11-23 06:05:31" },
    { mac: "52:54:00:00:0a:02", ip: "192.0.2.150", expiry: "2026-11-23 06:05:40" },
  ]);
});

test("running guests on the network without a lease are found by MAC, in any case", () => {
  const nic = (source: string, mac: string) => ({ type: "network", source, mac, model: "virtio" });
  const domain = (name: string, nics: ReturnType<typeof nic>[], running = true) => {
    const facts = { name, interfaces: nics } as unknown as DomainFacts;
    return { config: facts, running: running ? facts : undefined, state: running ? "running" : "shut off", reason: "", autostart: false, persistent: true };
  };
  const domains = [
    domain("web", [nic("public", "52:54:00:00:0A:01"), nic("private", "52:54:00:00:0b:01")]),
    domain("db", [nic("public", "52:54:00:00:0a:02")]),
    domain("off", [nic("public", "52:54:00:00:0a:03")], false),
  ];
  const leases = [{ mac: "52:54:00:00:0a:01", ip: "192.0.2.10", expiry: "x" }];
  assert.deepEqual(guestMacsWithoutLease("public", domains, leases), ["52:54:00:00:0a:02"]);
  assert.deepEqual(guestMacsWithoutLease("public", domains, [...leases, { mac: "52:54:00:00:0A:02", ip: "192.0.2.11", expiry: "x" }]), []);
  assert.deepEqual(guestMacsWithoutLease("private", domains, leases), ["52:54:00:00:0b:01"]);
});

test("taps of running owned guests that are off the network's bridge are found; foreign guests are not", () => {
  const nic = (source: string, target: string) => ({ type: "network", source, target, model: "virtio" });
  const domain = (name: string, nics: ReturnType<typeof nic>[], owned = true) => {
    const facts = { name, interfaces: nics, ...(owned ? { owner: { manifest: `VirtualMachine/${name}` } } : {}) } as unknown as DomainFacts;
    return { config: facts, running: facts, state: "running", reason: "", autostart: false, persistent: true };
  };
  const domains = [domain("web", [nic("public", "vnet0"), nic("private", "vnet1")]), domain("db", [nic("public", "vnet2")]), domain("foreign", [nic("public", "vnet3")], false)];
  const masters: Record<string, string> = { vnet0: "virbr1", vnet1: "virbr2" };
  assert.deepEqual(tapsOffBridge("public", "virbr1", domains, (dev) => masters[dev]), [{ domain: "db", device: "vnet2" }]);
  assert.deepEqual(tapsOffBridge("private", "virbr2", domains, (dev) => masters[dev]), []);
});

test("a redefinition keeps the bridge name and MAC libvirt chose, so guests keep their gateway's MAC", () => {
  const live = liveFrom(publicSpec);
  const changed = structuredClone(publicSpec);
  changed.ipv4.dhcp.hosts.push({ mac: "52:54:00:00:0a:02", ip: "192.0.2.11", name: "db" });
  const plan = planNetwork(input(changed, live, { specHash: "h2" }));
  const define = plan.kind === "converge" ? plan.steps.find((s) => s.action.type === "define")?.action : undefined;
  assert.ok(define?.type === "define");
  const facts = parseNetworkXml(define.xml);
  assert.equal(facts.bridge, "virbr7");
  assert.equal(facts.mac, "52:54:00:aa:bb:cc");
  // A new network leaves both to libvirt.
  const fresh = planNetwork(input(changed, undefined));
  const first = fresh.kind === "converge" ? fresh.steps[0]?.action : undefined;
  assert.ok(first?.type === "define");
  assert.equal(parseNetworkXml(first.xml).mac, undefined);
  assert.equal(parseNetworkXml(first.xml).bridge, undefined);
});

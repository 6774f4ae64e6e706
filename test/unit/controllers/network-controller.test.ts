// The Network reconciler against an in-memory libvirt (test/unit/helpers/fake-hypervisor.ts):
// create, DHCP drift repaired in place (net-update, no restart), converged networks left alone,
// foreign networks never touched, every call by kvmctl's own UUID, and deletion that waits for
// the guests and VM manifests that use the network.
import assert from "node:assert/strict";
import { test } from "node:test";
import { networkUuid, ownedUuid } from "../../../src/libvirt/index.js";
import { TerminalError } from "../../../src/runtime/index.js";
import { UUID_RE } from "../helpers/fake-hypervisor.js";
import { ControllerHarness, TEST_INSTANCE } from "../helpers/fake-ports.js";

const LAN = networkUuid("lan", TEST_INSTANCE);
const WEB_HOST = { mac: "52:54:00:00:0a:01", ip: "10.20.0.10", name: "web" };
const lanSpec = (hosts: Record<string, string>[] = [WEB_HOST]) => ({
  mode: "nat",
  ipv4: { address: "10.20.0.1", prefix: 24, dhcp: { start: "10.20.0.100", end: "10.20.0.200", hosts } },
});

/** Network "lan" converged; calls cleared. */
async function runningLan(spec: Record<string, unknown> = lanSpec()): Promise<ControllerHarness> {
  const h = new ControllerHarness();
  h.apply("Network", "lan", spec);
  await h.converge("Network/lan");
  h.hv.clearCalls();
  return h;
}

test("create: defined, started and set to autostart in one reconcile, Ready on the bridge libvirt chose", async () => {
  const h = new ControllerHarness();
  h.apply("Network", "lan", lanSpec());
  const outcome = await h.reconcile("Network/lan");

  assert.deepEqual(h.hv.calls, [`defineNetwork ${LAN}`, `startNetwork ${LAN}`, `setNetworkAutostart ${LAN} on`]);
  assert.equal(outcome.ready, true);
  assert.equal(outcome.report?.reason, "Succeeded");
  assert.deepEqual(outcome.report?.facts, { uuid: LAN, bridge: "virbr0", active: true, libvirtForwardMode: "open", leases: [], firewall: { backend: "nftables", rules: 0 } });
  const live = h.hv.network("lan")!;
  assert.equal(live.config.owner?.manifest, "Network/lan");
  assert.deepEqual(live.running?.ipv4?.dhcp?.hosts, [WEB_HOST]);
  assert.equal(live.autostart, true);
  assert.equal(h.firewallSyncs.length, 1, "the firewall follows the new bridge");
  assert.deepEqual(h.recorder("Network/lan").events.map((e) => e.reason), ["Converged"]);
  assert.equal((h.status("Network/lan", outcome).conditions as { type: string; status: string }[])[0]?.status, "True");

  h.hv.clearCalls();
  await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, [], "converged: the bridge and MAC libvirt added are not drift");
});

test("create: autostart false is left as libvirt defines it", async () => {
  const h = await runningLan({ ...lanSpec(), autostart: false });
  assert.equal(h.hv.network("lan")?.autostart, false);
  await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, []);
});

test("drift: a DHCP host changed by hand is put back with net-update on both definitions, no restart", async () => {
  const h = await runningLan();
  h.hv.editNetwork("lan", (facts) => (facts.ipv4!.dhcp!.hosts = [{ ...WEB_HOST, ip: "10.20.0.99" }]));
  const outcome = await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, [`updateNetwork ${LAN} delete ip-dhcp-host both`, `updateNetwork ${LAN} add-last ip-dhcp-host both`]);
  const live = h.hv.network("lan")!;
  assert.deepEqual(live.running?.ipv4?.dhcp?.hosts, [WEB_HOST]);
  assert.deepEqual(live.config.ipv4?.dhcp?.hosts, [WEB_HOST]);
  assert.equal(outcome.ready, true);
  h.hv.clearCalls();
  await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, []);
});

test("drift: a DHCP range changed by hand in the next-start definition only is edited there only", async () => {
  const h = await runningLan();
  h.hv.editNetwork("lan", (facts) => (facts.ipv4!.dhcp!.ranges = [{ start: "10.20.0.50", end: "10.20.0.60" }]), "config");
  await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, [`updateNetwork ${LAN} add-last ip-dhcp-range config`, `updateNetwork ${LAN} delete ip-dhcp-range config`], "the new range first: libvirt keeps at least one");
  assert.deepEqual(h.hv.network("lan")?.config.ipv4?.dhcp?.ranges, [{ start: "10.20.0.100", end: "10.20.0.200" }]);
});

test("a new DHCP host in the spec: redefined (new spec) and added to the running network only", async () => {
  const h = await runningLan();
  const db = { mac: "52:54:00:00:0a:02", ip: "10.20.0.11", name: "db" };
  h.apply("Network", "lan", lanSpec([WEB_HOST, db]));
  await h.reconcile("Network/lan");
  // The define carries the host already: a --config add would be refused as a duplicate.
  assert.deepEqual(h.hv.calls, [`defineNetwork ${LAN}`, `updateNetwork ${LAN} add-last ip-dhcp-host live`]);
  assert.deepEqual(h.hv.network("lan")?.running?.ipv4?.dhcp?.hosts, [WEB_HOST, db]);
  assert.equal(h.hv.network("lan")?.running?.bridge, "virbr0", "the bridge libvirt chose is kept");
});

test("drift: a network stopped by hand is started; undefined by hand while running, defined again without a restart", async () => {
  const h = await runningLan();
  await h.hv.byHand((hv) => hv.destroyNetwork(LAN));
  await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, [`startNetwork ${LAN}`]);

  h.hv.clearCalls();
  await h.hv.byHand((hv) => hv.undefineNetwork(LAN));
  assert.equal(h.hv.network("lan")?.persistent, false);
  await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, [`defineNetwork ${LAN}`, `setNetworkAutostart ${LAN} on`], "undefine turned autostart off");
  assert.equal(h.hv.network("lan")?.persistent, true);
  assert.equal(h.hv.network("lan")?.active, true);

  h.hv.clearCalls();
  await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, []);
});

test("drift: owner metadata edited away by hand: still kvmctl's (its UUID says so), the metadata is put back", async () => {
  const h = await runningLan();
  h.hv.editNetwork("lan", (facts) => (facts.owner = undefined), "config");
  await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, [`defineNetwork ${LAN}`]);
  assert.equal(h.hv.network("lan")?.config.owner?.manifest, "Network/lan");
});

test("a change that needs a restart waits while a guest uses the network (RestartRequired), then restarts it", async () => {
  const h = await runningLan();
  const guest = await h.hv.addForeignDomain("guest", { network: "lan" });
  h.apply("Network", "lan", { ...lanSpec(), ipv4: { ...lanSpec().ipv4, address: "10.20.0.2" } });
  const busy = await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, [`defineNetwork ${LAN}`], "the next-start definition only");
  const status = h.status("Network/lan", busy);
  const restart = (status.conditions as { type: string; status: string; reason: string; message: string }[]).find((c) => c.type === "RestartRequired");
  assert.equal(restart?.reason, "NetworkInUse");
  assert.match(restart?.message ?? "", /guest/);

  await h.hv.byHand((hv) => hv.destroyDomain(guest));
  h.hv.clearCalls();
  await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, [`destroyNetwork ${LAN}`, `startNetwork ${LAN}`]);
  assert.equal(h.hv.network("lan")?.running?.ipv4?.address, "10.20.0.2");
});

test("a network restarted by hand: kvmctl's running guests' taps are plugged back into the bridge", async () => {
  const h = new ControllerHarness();
  h.apply("Network", "lan", lanSpec());
  h.apply("VirtualMachine", "web", { interfaces: [{ network: "lan" }] });
  await h.converge("Network/lan");
  await h.converge("VirtualMachine/web");
  const tap = h.hv.domain("web")!.running!.interfaces[0]!.target!;
  assert.equal(h.ports.netdev.bridgeOf(tap), "virbr0");
  await h.hv.byHand(async (hv) => {
    await hv.destroyNetwork(LAN);
    await hv.startNetwork(LAN);
  });
  assert.equal(h.ports.netdev.bridgeOf(tap), undefined, "libvirt does not plug guests back");
  h.hv.clearCalls();
  await h.reconcile("Network/lan");
  assert.deepEqual(h.ports.netdev.attached, [{ device: tap, bridge: "virbr0" }]);
  assert.deepEqual(h.hv.calls, []);
  assert.ok(h.recorder("Network/lan").events.some((e) => e.reason === "Reconnected"));
});

test("leases are reported; a running guest without one makes the network look again soon", async () => {
  const h = await runningLan();
  h.apply("VirtualMachine", "web", { interfaces: [{ network: "lan" }] });
  await h.converge("VirtualMachine/web");
  const mac = h.hv.domain("web")!.running!.interfaces[0]!.mac!;
  const waiting = await h.reconcile("Network/lan");
  assert.equal(waiting.ready, true);
  assert.equal(waiting.requeueAfterMs, 5_000);
  h.hv.setLeases("lan", [{ mac, ip: "10.20.0.150", hostname: "web", expiry: "2026-01-01 01:00:00" }]);
  const leased = await h.reconcile("Network/lan");
  assert.deepEqual(leased.report?.facts.leases, [{ mac, ip: "10.20.0.150", hostname: "web", expiry: "2026-01-01 01:00:00" }]);
  assert.equal(leased.requeueAfterMs, undefined);
});

test("a firewall that fails: not Ready, reason FirewallFailed", async () => {
  const h = await runningLan();
  h.firewallState = { ...h.firewallState, error: "nft: Operation not permitted" };
  const outcome = await h.reconcile("Network/lan");
  assert.equal(outcome.ready, false);
  assert.equal(outcome.report?.reason, "FirewallFailed");
  assert.match(outcome.report?.message ?? "", /Operation not permitted/);
});

test("a forward the host port guard left out: not Ready, reason HostPortConflict, looked at again in 10 s", async () => {
  const h = await runningLan();
  h.firewallState = { ...h.firewallState, refused: new Map([["Network/lan", "host port tcp/22 is reserved on this host"]]) };
  const outcome = await h.reconcile("Network/lan");
  assert.equal(outcome.ready, false);
  assert.equal(outcome.report?.reason, "HostPortConflict");
  assert.match(outcome.report?.message ?? "", /tcp\/22 is reserved/);
  assert.equal(outcome.requeueAfterMs, 10_000);
});

test("mode user is not a libvirt network: nothing is defined, Ready once its rules are applied", async () => {
  const h = new ControllerHarness();
  h.apply("Network", "passt", { mode: "user", egress: [{ action: "deny", to: ["203.0.113.0/24"] }] });
  h.firewallState = { ...h.firewallState, counts: new Map([["Network/passt", 1]]) };
  const outcome = await h.reconcile("Network/passt");
  assert.deepEqual(h.hv.calls, []);
  assert.equal(outcome.ready, true);
  assert.deepEqual(outcome.report?.facts, { uuid: undefined, bridge: undefined, active: undefined, libvirtForwardMode: undefined, leases: undefined, firewall: { backend: "nftables", rules: 1 } });
});

test("a foreign network with the manifest's name: TerminalError NotOwned, no call touches it; deleting the manifest leaves it alone", async () => {
  const h = new ControllerHarness();
  const foreign = await h.hv.addForeignNetwork("lan");
  const before = h.hv.dump("network", foreign);
  h.apply("Network", "lan", lanSpec());
  const error = await h.rejection("Network/lan");
  assert.ok(error instanceof TerminalError);
  assert.equal(error.reason, "NotOwned");
  assert.deepEqual(h.hv.calls, []);
  assert.equal(h.hv.dump("network", foreign), before);
  assert.deepEqual((h.failureStatus("Network/lan", error).conditions as { type: string; reason: string }[]).map((c) => [c.type, c.reason]), [["Ready", "NotOwned"], ["Stalled", "NotOwned"]]);

  h.remove("Network/lan");
  const outcome = await h.reconcile("Network/lan");
  assert.equal(outcome.ready, true);
  assert.deepEqual(h.hv.calls, []);
  assert.equal(h.hv.dump("network", foreign), before);
  assert.deepEqual(h.recorder("Network/lan").deleted, [`libvirt network "lan" was not created by kvmctl: left alone`]);
});

test("UUID addressing: a Network named like a foreign network's UUID is created and deleted by its own UUID; the foreign one is unchanged", async () => {
  const h = new ControllerHarness();
  const foreign = await h.hv.addForeignNetwork("legacy", { uuid: "3f2504e0-4f89-41d3-9a0c-0305e82c3301", address: "192.168.50.1" });
  const before = h.hv.dump("network", foreign);
  const name = foreign; // a valid DNS label
  const own = networkUuid(name, TEST_INSTANCE);

  h.apply("Network", name, lanSpec());
  const created = await h.converge(`Network/${name}`);
  assert.equal(created.report?.facts.uuid, own);
  assert.equal(created.report?.facts.bridge, "virbr1", "its own bridge, not the foreign network's");
  h.remove(`Network/${name}`);
  await h.reconcile(`Network/${name}`);

  assert.equal(h.hv.network(name), undefined, "kvmctl's network is gone");
  assert.equal(h.hv.dump("network", foreign), before, "the foreign network is as it was: active, persistent, autostart on");
  for (const call of h.hv.calls) assert.match(call.split(" ")[1] ?? "", UUID_RE, call);
  assert.deepEqual(h.hv.uuidsTouched(), [own]);
});

test("delete: the owned network is stopped and undefined, and the firewall synced", async () => {
  const h = await runningLan();
  const syncs = h.firewallSyncs.length;
  h.remove("Network/lan");
  const outcome = await h.reconcile("Network/lan");
  assert.equal(outcome.ready, true);
  assert.deepEqual(h.hv.calls, [`destroyNetwork ${LAN}`, `undefineNetwork ${LAN}`]);
  assert.equal(h.hv.network("lan"), undefined);
  assert.deepEqual(h.recorder("Network/lan").deleted, ["network removed from libvirt"]);
  assert.equal(h.firewallSyncs.length, syncs + 1, "its rules go");
});

test("delete: kept while a running guest uses it (NetworkInUse), removed once the guest stops", async () => {
  const h = await runningLan();
  const guest = await h.hv.addForeignDomain("guest", { network: "lan" });
  h.remove("Network/lan");
  for (let i = 0; i < 2; i++) {
    const kept = await h.reconcile("Network/lan");
    assert.equal(kept.ready, false);
    assert.equal(kept.requeueAfterMs, 5_000);
  }
  assert.deepEqual(h.hv.calls, []);
  const record = h.recorder("Network/lan");
  assert.equal(record.keptNow?.reason, "NetworkInUse");
  assert.equal(record.keptNow?.phase, "Terminating");
  assert.match(record.keptNow?.message ?? "", /running domain guest/);
  assert.equal(record.events.filter((e) => e.reason === "DeletionBlocked").length, 1, "one event while nothing changes");

  await h.hv.byHand((hv) => hv.destroyDomain(guest));
  await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, [`destroyNetwork ${LAN}`, `undefineNetwork ${LAN}`]);
  assert.equal(record.keptNow, undefined);
  assert.deepEqual(record.deleted, ["network removed from libvirt"]);
});

test("delete: kept while a VM manifest names it, even with the VM stopped", async () => {
  const h = await runningLan();
  h.apply("VirtualMachine", "web", { runStrategy: "Halted", interfaces: [{ network: "lan" }] });
  h.remove("Network/lan");
  await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, []);
  assert.equal(h.recorder("Network/lan").keptNow?.reason, "NetworkInUse");
  assert.match(h.recorder("Network/lan").keptNow?.message ?? "", /manifest VirtualMachine\/web/);

  // The manifest comes back: no longer kept, and nothing to change.
  h.apply("Network", "lan", lanSpec());
  await h.reconcile("Network/lan");
  assert.equal(h.recorder("Network/lan").keptNow, undefined);
  assert.deepEqual(h.hv.calls, []);
});

test("delete of a network undefined by hand while running (transient): stopped, gone, no error", async () => {
  const h = await runningLan();
  await h.hv.byHand((hv) => hv.undefineNetwork(LAN));
  h.remove("Network/lan");
  const attempt = await h.attempt("Network/lan");
  assert.equal(attempt.error, undefined);
  assert.equal(h.hv.network("lan"), undefined);
});

test("VM manifests and guests of other networks do not block a deletion", async () => {
  const h = await runningLan();
  h.apply("VirtualMachine", "web", { interfaces: [{ network: "other" }] });
  await h.hv.addForeignDomain("guest", { running: true });
  h.remove("Network/lan");
  await h.reconcile("Network/lan");
  assert.deepEqual(h.hv.calls, [`destroyNetwork ${LAN}`, `undefineNetwork ${LAN}`]);
  assert.ok(!h.hv.uuidsTouched().includes(ownedUuid("VirtualMachine", "web")));
});

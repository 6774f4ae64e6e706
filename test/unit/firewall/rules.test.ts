// The firewall rendered from manifests, without a host: which rules each object implies, the
// nftables JSON transaction, and the iptables-restore input and iptables-save reading.
import assert from "node:assert/strict";
import { test } from "node:test";
import { validateDocument, type Network, type VirtualMachine } from "../../../src/api/index.js";
import { IPT_CHAINS, iptablesChains, iptablesPrefixFor, readIptablesSave, restoreInput, ruleArgs, rulesFor } from "../../../src/firewall/iptables.js";
import { nftTableFor, nftTransaction, readNftTable } from "../../../src/firewall/nftables.js";
import { countByOwner, renderFirewall, type FirewallInputs } from "../../../src/firewall/rules.js";

function object<T>(kind: string, name: string, spec: Record<string, unknown>): T {
  const result = validateDocument({ apiVersion: "kvmctl.dev/v1alpha1", kind, metadata: { name }, spec });
  assert.ok(result.ok, JSON.stringify(!result.ok && result.issues));
  return result.object as T;
}

const publicNet = object<Network>("Network", "public", {
  mode: "nat",
  ipv4: { address: "192.0.2.1", prefix: 24 },
  portForwards: [{ hostPort: 2222, guestAddress: "192.0.2.10", guestPort: 22 }],
  egress: [{ action: "deny", to: ["203.0.113.0/24"], ports: [25] }],
});
const userNet = object<Network>("Network", "passt", { mode: "user", egress: [{ action: "deny", to: ["10.0.0.0/8", "fd00::/8"] }] });
const vm = object<VirtualMachine>("VirtualMachine", "web", {
  memory: "256Mi",
  interfaces: [{ user: { portForwards: [{ hostPort: 5001, guestPort: 22 }] } }],
  consoles: { vnc: { listen: "127.0.0.1" } },
});

const inputs = (over: Partial<FirewallInputs> = {}): FirewallInputs => ({
  networks: [
    { key: "Network/public", spec: publicNet.spec, bridge: "virbr7" },
    { key: "Network/passt", spec: userNet.spec },
  ],
  vms: [{ key: "VirtualMachine/web", spec: vm.spec, vncPort: 5903 }],
  qemuUid: 64055,
  ...over,
});

test("a NAT network with a port forward: DNAT from outside and from the host, masquerade, forward accept", () => {
  const { rules, pending, needsForwarding } = renderFirewall(inputs());
  assert.equal(pending.size, 0);
  assert.ok(needsForwarding);
  const mine = rules.filter((r) => r.owner === "Network/public");
  const dnat = mine.filter((r) => r.verdict.type === "dnat");
  assert.deepEqual(dnat.map((r) => r.chain).sort(), ["output-nat", "prerouting"]);
  assert.ok(dnat.every((r) => r.daddrLocal && r.dports?.[0] === 2222 && r.verdict.type === "dnat" && r.verdict.addr === "192.0.2.10" && r.verdict.port === 22));
  assert.equal(dnat.find((r) => r.chain === "output-nat")?.notDaddr, "127.0.0.0/8", "loopback is not forwarded");
  assert.ok(mine.some((r) => r.chain === "postrouting" && r.verdict.type === "masquerade" && r.saddr === "192.0.2.0/24" && r.notDaddr === "192.0.2.0/24"));
  assert.ok(mine.some((r) => r.chain === "forward" && r.oif === "virbr7" && r.dnatted));
  // Egress with ports and no protocol: tcp and udp, after the established-accept.
  const egress = mine.filter((r) => r.chain === "forward" && r.iif === "virbr7");
  assert.deepEqual(egress.map((r) => [r.established ?? false, r.protocol, r.verdict.type]), [[true, undefined, "accept"], [false, "tcp", "drop"], [false, "udp", "drop"]]);
});

test("passt egress sits on the output hook, matched by the QEMU user, loopback and replies first", () => {
  const { rules } = renderFirewall(inputs());
  const mine = rules.filter((r) => r.owner === "Network/passt");
  assert.ok(mine.every((r) => r.chain === "output" && r.skuid === 64055));
  assert.deepEqual(mine.map((r) => [r.oif, r.established, r.daddr, r.family, r.verdict.type]), [
    ["lo", undefined, undefined, undefined, "accept"],
    [undefined, true, undefined, undefined, "accept"],
    [undefined, undefined, "10.0.0.0/8", "ip", "drop"],
    [undefined, undefined, "fd00::/8", "ip6", "drop"],
  ]);
  const unknownUser = renderFirewall(inputs({ qemuUid: undefined }));
  assert.match(unknownUser.pending.get("Network/passt") ?? "", /QEMU user/);
});

test("VMs: input rules for passt forwards and the VNC port libvirt allocated", () => {
  const { rules } = renderFirewall(inputs());
  const mine = rules.filter((r) => r.owner === "VirtualMachine/web");
  assert.deepEqual(mine.map((r) => [r.chain, r.daddr, r.dports]), [["input", "127.0.0.1", [5001]], ["input", "127.0.0.1", [5903]]]);
});

test("no bridge yet: the network's rules wait, and say why", () => {
  const { rules, pending } = renderFirewall(inputs({ networks: [{ key: "Network/public", spec: publicNet.spec }] }));
  assert.equal(rules.filter((r) => r.owner === "Network/public").length, 0);
  assert.match(pending.get("Network/public") ?? "", /bridge/);
});

test("nftables: one transaction replacing the instance's table; empty rules delete it", () => {
  const { rules } = renderFirewall(inputs());
  assert.equal(nftTableFor("k1a2b3c4d"), "kvmctl-k1a2b3c4d");
  const tx = nftTransaction(rules, "kvmctl-t1").nftables as Record<string, Record<string, Record<string, unknown>>>[];
  assert.deepEqual(tx.slice(0, 3).map((c) => Object.keys(c)[0]), ["add", "delete", "add"]);
  const added = tx.filter((c) => c.add?.rule).map((c) => c.add!.rule!);
  assert.equal(added.length, rules.length);
  assert.ok(added.every((r) => r.family === "inet" && r.table === "kvmctl-t1"));
  assert.ok(tx.every((c) => Object.values(c)[0]!.table === undefined || JSON.stringify(Object.values(c)[0]).includes("kvmctl-t1")), "no other table named");
  const dnat = added.find((r) => JSON.stringify(r.expr).includes('"dnat"'));
  assert.deepEqual((dnat!.expr as unknown[]).at(-1), { dnat: { family: "ip", addr: "192.0.2.10", port: 22 } });
  assert.deepEqual((nftTransaction([], "kvmctl-t1").nftables as Record<string, unknown>[]).map((c) => Object.keys(c)[0]), ["add", "delete"]);
});

test("nftables: a listing is read without handles, and counted per owner", () => {
  const listing = (handle: number) =>
    JSON.stringify({ nftables: [{ metainfo: { version: "1.0.6" } }, { table: { family: "inet", name: "kvmctl", handle } }, { rule: { chain: "input", handle: handle + 1, comment: "VirtualMachine/web", expr: [] } }] });
  const a = readNftTable(listing(1));
  const b = readNftTable(listing(9));
  assert.equal(a.fingerprint, b.fingerprint);
  assert.deepEqual(countByOwner(a.rules), new Map([["VirtualMachine/web", 1]]));
  assert.equal(readNftTable(undefined).present, false);
});

test("iptables: own chains, jumps inserted once, rules with comments; IPv6 gets no NAT", () => {
  const { rules } = renderFirewall(inputs());
  const empty = readIptablesSave("nat", "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n");
  const nat = restoreInput("nat", rulesFor(rules, "ip"), empty);
  assert.match(nat, /^\*nat\n:KVMCTL-PREROUTING - \[0:0\]/);
  assert.match(nat, /-I PREROUTING 1 -j KVMCTL-PREROUTING/);
  assert.match(nat, /-A KVMCTL-PREROUTING -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 2222 -m comment --comment Network\/public -j DNAT --to-destination 192\.0\.2\.10:22/);
  const saved = readIptablesSave("nat", "*nat\n:KVMCTL-PREROUTING - [0:0]\n-A PREROUTING -j KVMCTL-PREROUTING\n-A KVMCTL-PREROUTING -p tcp -m comment --comment Network/public -j DNAT --to-destination 192.0.2.10:22\n-A POSTROUTING -j LIBVIRT_PRT\nCOMMIT\n");
  assert.deepEqual([...saved.jumps], ["nat/PREROUTING"]);
  assert.equal(saved.lines.length, 1);
  assert.doesNotMatch(restoreInput("nat", rulesFor(rules, "ip"), saved), /-I PREROUTING/);
  assert.match(restoreInput("nat", [], saved), /-D PREROUTING -j KVMCTL-PREROUTING\n:KVMCTL-PREROUTING - \[0:0\]\n-X KVMCTL-PREROUTING/);
  const v6 = rulesFor(rules, "ip6");
  assert.ok(v6.every((r) => IPT_CHAINS[r.chain].table === "filter"));
  assert.ok(v6.some((r) => r.daddr === "fd00::/8"));
  assert.deepEqual(ruleArgs({ chain: "output", owner: "Network/passt", skuid: 64055, oif: "lo", verdict: { type: "accept" } }), ["-o", "lo", "-m", "owner", "--uid-owner", "64055", "-m", "comment", "--comment", "Network/passt", "-j", "ACCEPT"]);
});

test("iptables: each instance has its own chains and sees only its own jumps", () => {
  const { rules } = renderFirewall(inputs());
  assert.equal(iptablesPrefixFor("k1a2b3c4d"), "KVMCTL-k1a2b3c4d");
  assert.match(iptablesPrefixFor("a-much-longer-instance-name"), /^KVMCTL-[0-9a-f]{9}$/, "kept under iptables' 28 characters");
  assert.ok(Object.values(iptablesChains(iptablesPrefixFor("k1a2b3c4d"))).every((c) => c.name.length <= 28));
  const mine = iptablesChains("KVMCTL-t1");
  const theirs = "*nat\n:KVMCTL-t2-PREROUTING - [0:0]\n-A PREROUTING -j KVMCTL-t2-PREROUTING\n-A KVMCTL-t2-PREROUTING -p tcp -m comment --comment Network/theirs -j DNAT --to-destination 192.0.2.20:22\nCOMMIT\n";
  const observed = readIptablesSave("nat", theirs, mine);
  assert.deepEqual([...observed.jumps], [], "another instance's jump is not ours");
  assert.deepEqual(observed.lines, []);
  const input = restoreInput("nat", rulesFor(rules, "ip"), observed, mine);
  assert.match(input, /-I PREROUTING 1 -j KVMCTL-t1-PREROUTING/);
  assert.doesNotMatch(input, /KVMCTL-t2/, "nothing of t2's is declared, flushed or removed");
  assert.doesNotMatch(restoreInput("nat", [], observed, mine), /KVMCTL-t2/);
});


test("host ports: a forward never takes a reserved port or one the host listens on; the network's other rules stay", () => {
  const net = object<Network>("Network", "fw", {
    mode: "nat",
    ipv4: { address: "192.0.2.1", prefix: 24 },
    portForwards: [
      { hostPort: 22, guestAddress: "192.0.2.10", guestPort: 22 },
      { hostPort: 8080, guestAddress: "192.0.2.10", guestPort: 80 },
      { hostPort: 5353, protocol: "udp", guestAddress: "192.0.2.10", guestPort: 53 },
      { hostPort: 9000, hostAddress: "198.51.100.7", guestAddress: "192.0.2.10", guestPort: 9000 },
      { hostPort: 9001, guestAddress: "192.0.2.10", guestPort: 9001 },
      { hostPort: 9002, hostAddress: "198.51.100.7", guestAddress: "192.0.2.10", guestPort: 9002 },
    ],
  });
  const render = (listening: { protocol: "tcp" | "udp"; address: string; port: number }[], reserved = [22]) =>
    renderFirewall({ networks: [{ key: "Network/fw", spec: net.spec, bridge: "virbr9" }], vms: [], hostPorts: { reserved, listening } });
  const dnatPorts = (r: ReturnType<typeof render>) => [...new Set(r.rules.filter((x) => x.verdict.type === "dnat").map((x) => `${x.protocol}/${x.dports![0]}`))].sort();

  const quiet = render([]);
  assert.deepEqual(dnatPorts(quiet), ["tcp/8080", "tcp/9000", "tcp/9001", "tcp/9002", "udp/5353"]);
  assert.match(quiet.refused.get("Network/fw")!, /^host port tcp\/22 is reserved on this host \(the controller's --reserved-host-ports\)/);
  assert.equal(render([], []).refused.size, 0, "nothing reserved, nothing listening: every forward");

  const busy = render([
    { protocol: "tcp", address: "0.0.0.0", port: 8080 }, // every address: always the host's
    { protocol: "tcp", address: "127.0.0.1", port: 5353 }, // another protocol
    { protocol: "udp", address: "127.0.0.1", port: 9001 }, // another protocol
    { protocol: "tcp", address: "127.0.0.1", port: 9001 }, // loopback only: a forward never takes loopback traffic
    { protocol: "tcp", address: "203.0.113.9", port: 9000 }, // another address than the forward's
    { protocol: "tcp", address: "198.51.100.7", port: 9002 }, // the forward's own address
  ]);
  assert.deepEqual(dnatPorts(busy), ["tcp/9000", "tcp/9001", "udp/5353"]);
  const why = busy.refused.get("Network/fw")!;
  assert.match(why, /host port tcp\/8080 is in use on this host \(a socket listens on 0\.0\.0\.0:8080\): a forward would take its traffic/);
  assert.match(why, /host port tcp\/9002 is in use on this host \(a socket listens on 198\.51\.100\.7:9002\)/);
  assert.match(render([{ protocol: "tcp", address: "::", port: 9001 }]).refused.get("Network/fw")!, /\[::\]:9001/);
  // A listener on another local address takes a forward to every local address.
  assert.ok(!dnatPorts(render([{ protocol: "tcp", address: "203.0.113.9", port: 9001 }])).includes("tcp/9001"));
  // The network's masquerade and the forward-accept for the forwards left stay.
  assert.ok(busy.rules.some((r) => r.verdict.type === "masquerade") && busy.rules.some((r) => r.chain === "forward" && r.dnatted));
  const none = renderFirewall({ networks: [{ key: "Network/fw", spec: { ...net.spec, portForwards: [net.spec.portForwards[0]!] }, bridge: "virbr9" }], vms: [], hostPorts: { reserved: [22], listening: [] } });
  assert.ok(!none.rules.some((r) => r.dnatted), "no forward left: no forward-accept rule");
});

// Networks and the firewall on the real stack (issue 5's proof), inside the sealed namespace:
// seed 001's public (NAT, port forward) and private (isolated) networks with the test guest on
// both, its address from a static DHCP host. SSH through the forwarded port; the table flushed
// or deleted by hand and `virsh net-destroy` are repaired; a DHCP host is added without a
// restart; deletion while in use is refused; deleting everything leaves no rule; invalid
// networks change nothing. Traffic comes from the outside namespace and guests' egress goes
// there. Without nft, the iptables backend does the same job.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { execa, type ResultPromise } from "execa";
import { VETH_GUEST_SIDE } from "../../testenv/config.js";
import { assertInTestEnv, testGuest, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, testGuestVm, virsh } from "./harness.js";
import { connectFromGuest, firstLineFromOutside, OUTSIDE, startOutsideServer } from "./outside.js";
import { freePort, guestShell, sshWhenReady } from "./ssh.js";

const HOST_ADDRESS = VETH_GUEST_SIDE.address.split("/")[0]!;
const nft = (...args: string[]) => execa("nft", args, { reject: false, timeout: 30_000 });
const publicNet = testName("net-public");
const privateNet = testName("net-private");
const extraNet = testName("net-extra");
const vm = testName("net-vm");
const MAC = "52:54:00:00:0a:01";
let root = "";
let dir = "";
let run: E2eDirs; // set in before(); after() runs even when before() failed
let port = 0;
let controller: ResultPromise | undefined;

/** Rules of this controller instance's table (inet kvmctl-<instance>) by owner comment; undefined when it does not exist. */
async function kvmctlRules(): Promise<Map<string, number> | undefined> {
  const listed = await nft("-j", "list", "table", "inet", run.nftTable);
  if (listed.exitCode !== 0) return undefined;
  const counts = new Map<string, number>();
  for (const item of JSON.parse(String(listed.stdout)).nftables as { rule?: { comment?: string } }[]) {
    if (item.rule) counts.set(item.rule.comment ?? "", (counts.get(item.rule.comment ?? "") ?? 0) + 1);
  }
  return counts;
}

const mine = (counts: Map<string, number> | undefined) => [...(counts ?? new Map<string, number>()).entries()].filter(([owner]) => [publicNet, privateNet, extraNet, vm].some((n) => owner.endsWith(`/${n}`)));
const netActive = async (name: string) => /^Active:\s+yes/m.test(String((await virsh("net-info", name)).stdout));

function networks(extraHost = ""): string {
  return `apiVersion: kvmctl.dev/v1alpha1
kind: Network
metadata:
  name: ${publicNet}
spec:
  mode: nat
  ipv4:
    address: 192.0.2.1
    prefix: 24
    dhcp:
      start: 192.0.2.100
      end: 192.0.2.200
      hosts:
        - {mac: "${MAC}", ip: 192.0.2.10, name: web}
${extraHost}  portForwards:
    - {hostPort: ${port}, guestAddress: 192.0.2.10, guestPort: 22}
  egress:
    - {action: deny, to: [${OUTSIDE.deniedRange}]}
---
apiVersion: kvmctl.dev/v1alpha1
kind: Network
metadata:
  name: ${privateNet}
spec:
  mode: isolated
  ipv4: {address: 198.18.0.1, prefix: 24}
`;
}

const vmManifest = () => testGuestVm(vm, `  interfaces:\n    - {network: ${publicNet}, mac: "${MAC}"}\n    - {network: ${privateNet}}\n`);

/**
 * Every file of the manifest directory with its content, to prove "nothing changed". Status
 * blocks are left out: the running controller writes them at any time.
 */
function dirContent(): string {
  const walk = (d: string): string[] =>
    fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? (e.name === ".kvmctl" ? [] : walk(path.join(d, e.name))) : [`${path.join(d, e.name)}\n${fs.readFileSync(path.join(d, e.name), "utf8").replace(/^status:\n(?:[ \t].*\n|\n)*/gm, "")}`]));
  return walk(dir).sort().join("\n");
}

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-network");
  ({ root, dir } = run);
  port = await freePort();
});

after(async () => {
  if (controller && controller.exitCode === null) controller.kill("SIGKILL");
  await virsh("destroy", vm);
  await virsh("undefine", vm);
  for (const name of [publicNet, privateNet, extraNet]) {
    await virsh("net-destroy", name);
    await virsh("net-undefine", name);
  }
  await nft("delete", "table", "inet", "kvt-admin");
  run?.cleanUp();
});

test("seed 001 as manifests: NAT public with a port forward, isolated private, a guest on both", async (t) => {
  fs.writeFileSync(path.join(root, "networks.yaml"), networks());
  fs.writeFileSync(path.join(root, "vm.yaml"), vmManifest());
  for (const file of ["networks.yaml", "vm.yaml"]) {
    const applied = await kvmctl(["--dir", dir, "apply", "-f", path.join(root, file)]);
    assert.equal(applied.exitCode, 0, applied.stderr);
  }
  controller = run.startController(["--firewall-check", "1s"]);

  await t.test("networks and VM Ready; the guest's address comes from its static DHCP host", async () => {
    for (const key of [`network/${publicNet}`, `network/${privateNet}`, `vm/${vm}`]) {
      const ready = await kvmctl(["--dir", dir, "wait", key, "--for=condition=Ready", "--timeout=120s"]);
      assert.equal(ready.exitCode, 0, `${key}: ${ready.stderr}`);
    }
    const addr = await sshWhenReady({ host: HOST_ADDRESS, port, key: testGuest().sshKey }, ["ip", "-4", "-o", "addr", "show", "eth0"]);
    assert.match(addr, /inet 192\.0\.2\.10\/24/, "the static DHCP host's address");
    const status = (await run.getJson(`network/${publicNet}`)).status;
    assert.equal(status.active, true);
    assert.match(status.bridge, /^virbr\d+$/);
    assert.equal(status.firewall.backend, "nftables");
    assert.equal(status.firewall.rules, (await kvmctlRules())?.get(`Network/${publicNet}`), "status counts the rules the table holds");
    await run.waitUntil("the lease in status", async () => ((await run.getJson(`network/${publicNet}`)).status.leases ?? []).some((l: { ip: string; mac: string }) => l.ip === "192.0.2.10" && l.mac === MAC));
    const xml = String((await virsh("net-dumpxml", publicNet)).stdout);
    assert.match(xml, /<forward mode='open'\/>/, "libvirt writes no NAT rules of its own for it");
    assert.match(xml, /kvmctl:owner/);
  });

  await t.test("from outside the host the forwarded port reaches the guest's sshd; egress is masqueraded, and denied where the rules say", async () => {
    // prerouting: a connection arriving on the host's link to the outside namespace.
    const banner = await firstLineFromOutside(OUTSIDE.hostAddress, port);
    assert.ok(banner.ok, banner.error);
    assert.match(banner.line, /^SSH-2\.0-dropbear/);
    const server = await startOutsideServer();
    try {
      const guest = (commandLine: string) => guestShell({ host: HOST_ADDRESS, port, key: testGuest().sshKey }, commandLine, 30_000);
      // Allowed: leaves through the host, masqueraded to the host's address on that link.
      assert.equal(await guest(connectFromGuest(OUTSIDE.allowed, server)), `outside saw ${OUTSIDE.hostAddress}`);
      // Denied by the network's egress rule: the same server, its other address.
      assert.equal(await guest(connectFromGuest(OUTSIDE.denied, server)), "refused-or-dropped");
    } finally {
      await server.stop();
    }
  });

  await t.test("invalid networks are rejected with clear errors and change nothing", async () => {
    const before = dirContent();
    const rulesBefore = JSON.stringify([...((await kvmctlRules()) ?? new Map())]);
    const cases: [string, RegExp][] = [
      [`spec:\n  mode: nat\n  ipv4: {address: 192.0.2.129, prefix: 25}\n`, /overlaps Network\/kvt-/],
      [`spec:\n  mode: nat\n  ipv4: {address: 198.19.0.1, prefix: 24, dhcp: {start: 198.19.1.10, end: 198.19.1.20}}\n`, /spec\.ipv4\.dhcp\.start.*outside 198\.19\.0\.0\/24/s],
      [`spec:\n  mode: nat\n  ipv4: {address: 198.19.0.1, prefix: 24}\n  portForwards:\n    - {hostPort: ${port}, guestAddress: 198.19.0.5, guestPort: 80}\n`, /host port tcp\/\d+ is also used by Network\/kvt-/],
    ];
    for (const [spec, message] of cases) {
      const file = path.join(root, "bad.yaml");
      fs.writeFileSync(file, `apiVersion: kvmctl.dev/v1alpha1\nkind: Network\nmetadata:\n  name: ${extraNet}\n${spec}`);
      const result = await kvmctl(["--dir", dir, "apply", "-f", file]);
      assert.equal(result.exitCode, 1, result.stdout);
      assert.match(result.stderr, message);
      assert.match(result.stderr, /bad\.yaml/);
    }
    // Refused, nothing reached the directory, so nothing queues a Network: the firewall check
    // (every second here) is what looks, twice, at the table after the refusals.
    await run.waitForReconciles("Firewall/host", { after: Date.now(), count: 2 });
    assert.equal(dirContent(), before, "the manifest directory changed");
    assert.equal((await virsh("net-info", extraNet)).exitCode === 0, false, "an invalid network reached libvirt");
    assert.equal(JSON.stringify([...((await kvmctlRules()) ?? new Map())]), rulesBefore, "the firewall changed");
  });

  await t.test("an overlapping network dropped into the directory (a git checkout) is held with its neighbour: nothing changes, the controller keeps running", async (t) => {
    const rulesBefore = JSON.stringify([...((await kvmctlRules()) ?? new Map())]);
    const xmlBefore = String((await virsh("net-dumpxml", "--inactive", publicNet)).stdout);
    const overlap = path.join(dir, "overlap.yaml");
    fs.writeFileSync(overlap, `apiVersion: kvmctl.dev/v1alpha1\nkind: Network\nmetadata:\n  name: ${extraNet}\nspec:\n  mode: nat\n  ipv4: {address: 192.0.2.129, prefix: 25}\n`);
    const droppedAt = Date.now();
    t.after(() => fs.rmSync(overlap, { force: true })); // the later steps need it gone
    const listed = await kvmctl(["--dir", dir, "get", "networks"]);
    assert.match(listed.stdout, new RegExp(`${extraNet}\\s+False\\s+Invalid`));
    assert.match(listed.stdout, new RegExp(`${publicNet}\\s+False\\s+Invalid`));
    assert.match(listed.stderr, /overlap\.yaml: document 1, line 7:19: spec\.ipv4\.address: ipv4 subnet 192\.0\.2\.129\/25 overlaps Network\/kvt-/);
    assert.match(listed.stderr, new RegExp(`${publicNet}\\.yaml: document 1, line \\d+:\\d+: spec\\.ipv4\\.address: .*overlaps Network/${extraNet}`));
    // The controller marks the held network Stalled in its manifest's status.
    await run.waitUntil("public Stalled with InvalidSpec", async () => /reason: InvalidSpec/.test(fs.readFileSync(path.join(dir, "networks", `${publicNet}.yaml`), "utf8")), 30_000);
    // The overlapping network's own reconcile (stalled without touching libvirt), then two
    // firewall checks of the table after the held network was marked.
    await run.waitForReconciles(`Network/${extraNet}`, { after: droppedAt });
    await run.waitForReconciles("Firewall/host", { after: Date.now(), count: 2 });
    assert.equal(JSON.stringify([...((await kvmctlRules()) ?? new Map())]), rulesBefore, "the held network's rules changed");
    assert.equal(String((await virsh("net-dumpxml", "--inactive", publicNet)).stdout), xmlBefore);
    assert.notEqual((await virsh("net-info", extraNet)).exitCode, 0, "the overlapping network reached libvirt");
    assert.match(String((await virsh("domstate", vm)).stdout), /running/);
    assert.equal(controller!.exitCode, null, "the controller exited");
    fs.rmSync(overlap);
    // `kvmctl wait` gives up on a Stalled object, so first let the controller take the file's removal in.
    await run.waitUntil("public no longer Stalled", async () => !/reason: InvalidSpec/.test(fs.readFileSync(path.join(dir, "networks", `${publicNet}.yaml`), "utf8")), 30_000);
    const ready = await kvmctl(["--dir", dir, "wait", `network/${publicNet}`, "--for=condition=Ready", "--timeout=60s"]);
    assert.equal(ready.exitCode, 0, ready.stderr);
  });

  await t.test("a static DHCP host added to the running network, then removed: net-update, no restart", async () => {
    const uuid = (await run.getJson(`network/${publicNet}`)).status.uuid;
    fs.writeFileSync(path.join(root, "networks.yaml"), networks(`        - {mac: "52:54:00:00:0a:02", ip: 192.0.2.11, name: db}\n`));
    assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "networks.yaml")])).exitCode, 0);
    await run.waitUntil("the new host in the live network", async () => /ip='192\.0\.2\.11'/.test(String((await virsh("net-dumpxml", publicNet)).stdout)));
    assert.match(String((await virsh("net-dumpxml", "--inactive", publicNet)).stdout), /ip='192\.0\.2\.11'/);
    assert.equal((await run.getJson(`network/${publicNet}`)).status.uuid, uuid);
    // The guest kept its link: a restart would have cut it off the bridge.
    // And removed again, the same way.
    fs.writeFileSync(path.join(root, "networks.yaml"), networks());
    assert.equal((await kvmctl(["--dir", dir, "apply", "-f", path.join(root, "networks.yaml")])).exitCode, 0);
    await run.waitUntil("the host gone from the live network", async () => !/ip='192\.0\.2\.11'/.test(String((await virsh("net-dumpxml", publicNet)).stdout)));
    assert.doesNotMatch(String((await virsh("net-dumpxml", "--inactive", publicNet)).stdout), /ip='192\.0\.2\.11'/);
    assert.equal((await run.getJson(`network/${publicNet}`)).status.uuid, uuid);
    const still = await sshWhenReady({ host: HOST_ADDRESS, port, key: testGuest().sshKey }, ["echo", "ok"], 20_000);
    assert.equal(still.trim(), "ok");
  });

  await t.test("the kvmctl table edited, flushed, then deleted, by hand: repaired; the admin's own table is never touched", async () => {
    const expected = (await kvmctlRules())!.get(`Network/${publicNet}`);
    assert.ok(expected && expected > 0);
    // An admin's table next to ours, with a rule at the same hook.
    const adminTable = ["table", "inet", "kvt-admin"];
    assert.equal((await nft("add", ...adminTable)).exitCode, 0);
    assert.equal((await nft("add", "chain", "inet", "kvt-admin", "input", "{ type filter hook input priority 10 ; policy accept ; }")).exitCode, 0);
    assert.equal((await nft("add", "rule", "inet", "kvt-admin", "input", "tcp", "dport", "9", "accept", "comment", '"the admin\'s"')).exitCode, 0);
    const adminBefore = String((await nft("list", ...adminTable)).stdout);
    const tableText = async () => String((await nft("list", "table", "inet", run.nftTable)).stdout);
    const original = await tableText();
    // Edited by hand: one of kvmctl's rules deleted, a stranger's rule added to its chain.
    const listed = JSON.parse(String((await nft("-j", "-a", "list", "chain", "inet", run.nftTable, "forward")).stdout)).nftables as { rule?: { handle: number } }[];
    const handle = listed.find((item) => item.rule)!.rule!.handle;
    const editedAt = Date.now();
    assert.equal((await nft("delete", "rule", "inet", run.nftTable, "forward", "handle", String(handle))).exitCode, 0);
    assert.equal((await nft("add", "rule", "inet", run.nftTable, "input", "tcp", "dport", "7", "accept")).exitCode, 0);
    // The controller may repair the table before the test reads it back: its log line is the
    // proof it saw the hand edit (and not just an unchanged table).
    await run.waitForLog("the controller to notice the hand edit", (line) => line.time >= editedAt && line.reason === "the table was changed by hand");
    const editMs = await run.waitUntil("the edited table to be restored", async () => (await tableText()) === original, 30_000);
    assert.equal((await nft("flush", "table", "inet", run.nftTable)).exitCode, 0);
    const flushMs = await run.waitUntil("the flushed table to be refilled", async () => (await kvmctlRules())?.get(`Network/${publicNet}`) === expected, 30_000);
    assert.equal((await nft("delete", "table", "inet", run.nftTable)).exitCode, 0);
    const deleteMs = await run.waitUntil("the deleted table to come back", async () => (await kvmctlRules())?.get(`Network/${publicNet}`) === expected, 30_000);
    process.stdout.write(`# firewall repaired after an edit in ${editMs} ms, a flush in ${flushMs} ms, a delete in ${deleteMs} ms\n`);
    assert.equal(await tableText(), original);
    assert.equal(String((await nft("list", ...adminTable)).stdout), adminBefore, "kvmctl touched the admin's table");
    assert.equal((await nft("delete", ...adminTable)).exitCode, 0);
    const still = await sshWhenReady({ host: HOST_ADDRESS, port, key: testGuest().sshKey }, ["echo", "ok"], 20_000);
    assert.equal(still.trim(), "ok");
  });

  await t.test("virsh net-destroy by hand: the network is started again, the rules follow its bridge, the guest is plugged back in", async () => {
    assert.equal((await virsh("net-destroy", privateNet)).exitCode, 0);
    const ms = await run.waitUntil("the private network to be active again", () => netActive(privateNet), 30_000);
    process.stdout.write(`# net-destroy → active: ${ms} ms\n`);
    assert.equal((await virsh("net-destroy", publicNet)).exitCode, 0);
    await run.waitUntil("the public network to be active again", () => netActive(publicNet), 30_000);
    await run.waitUntil("the forward rule on the public network's current bridge", async () => {
      const bridge = /<bridge name='([^']+)'/.exec(String((await virsh("net-dumpxml", publicNet)).stdout))?.[1];
      const listed = String((await nft("list", "chain", "inet", run.nftTable, "forward")).stdout);
      return !!bridge && listed.includes(`oifname "${bridge}" ct status dnat accept`);
    }, 30_000);
    // libvirt leaves the guest's taps off the new bridge: kvmctl plugs them back in. The
    // redefinitions above kept the bridge's MAC, so the guest's ARP entry for its gateway holds.
    const started = Date.now();
    const still = await sshWhenReady({ host: HOST_ADDRESS, port, key: testGuest().sshKey }, ["echo", "ok"], 20_000);
    assert.equal(still.trim(), "ok");
    process.stdout.write(`# guest reachable again ${Date.now() - started} ms after the rules followed the bridge\n`);
  });

  await t.test("deleting a Network the VM uses is refused; removed by hand it is kept, shown as Terminating", async () => {
    const before = dirContent();
    const refused = await kvmctl(["--dir", dir, "delete", "network", publicNet]);
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, new RegExp(`network "${publicNet}" is in use by VirtualMachine/${vm}`));
    assert.equal(dirContent(), before, "the refused delete changed the directory");
    // A git checkout can drop the file anyway: the controller keeps the network under the guest.
    const forced = await kvmctl(["--dir", dir, "delete", "network", privateNet, "--force"]);
    assert.equal(forced.exitCode, 0, forced.stderr);
    const events = path.join(dir, ".kvmctl", "events", `Network-${privateNet}.jsonl`);
    await run.waitUntil("a DeletionBlocked event", async () => fs.existsSync(events) && fs.readFileSync(events, "utf8").includes("DeletionBlocked"), 30_000);
    assert.match(fs.readFileSync(events, "utf8"), new RegExp(`still used by running domain ${vm}`));
    assert.ok(await netActive(privateNet), "the network was torn down under a running guest");
    // Shown as kubectl shows an object waiting on a finalizer.
    const listed = await kvmctl(["--dir", dir, "get", "networks", "-o", "wide"]);
    assert.match(listed.stdout, new RegExp(`${privateNet}\\s+False\\s+Terminating.*still used by running domain ${vm}`));
    assert.match((await kvmctl(["--dir", dir, "describe", "network", privateNet])).stdout, /Ready\s+False\s+NetworkInUse/);
  });

  await t.test("deleting the VM and the networks removes every rule and both networks", async () => {
    const deleted = await kvmctl(["--dir", dir, "delete", "-f", path.join(root, "networks.yaml"), path.join(root, "vm.yaml"), "--ignore-not-found", "--wait", "--timeout=120s"]);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    await run.waitUntil("both networks gone", async () => (await virsh("net-info", publicNet)).exitCode !== 0 && (await virsh("net-info", privateNet)).exitCode !== 0, 60_000);
    await run.waitUntil("no rule left for them", async () => mine(await kvmctlRules()).length === 0, 30_000);
    assert.notEqual((await virsh("domstate", vm)).exitCode, 0, "the VM is gone");
  });

  await t.test("SIGTERM: the controller exits 0", async () => {
    controller!.kill("SIGTERM");
    assert.equal((await controller!).exitCode, 0);
  });
});

test("without nft the iptables backend is chosen: its own chains carry the same forwards and egress rules, repaired and removed", async () => {
  const iptablesLines = async () => {
    const out = [];
    for (const table of ["nat", "filter"]) out.push(...String((await execa("iptables-save", ["-t", table])).stdout).split("\n").filter((l) => l.includes(run.iptPrefix)));
    return out;
  };
  // A host without nftables' tool: PATH without /usr/sbin, the iptables tools linked in.
  const bin = path.join(root, "bin-without-nft");
  fs.mkdirSync(bin);
  for (const tool of ["iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"]) fs.symlinkSync(`/usr/sbin/${tool}`, path.join(bin, tool));
  const guestMac = "52:54:00:00:0a:05";
  const file = path.join(root, "iptables.yaml");
  fs.writeFileSync(file, `apiVersion: kvmctl.dev/v1alpha1
kind: Network
metadata:
  name: ${extraNet}
spec:
  mode: nat
  ipv4:
    address: 198.19.0.1
    prefix: 24
    dhcp: {start: 198.19.0.100, end: 198.19.0.150, hosts: [{mac: "${guestMac}", ip: 198.19.0.5}]}
  portForwards:
    - {hostPort: ${port}, guestAddress: 198.19.0.5, guestPort: 22}
  egress:
    - {action: deny, to: [${OUTSIDE.deniedRange}]}
---
${testGuestVm(vm, `  interfaces:\n    - {network: ${extraNet}, mac: "${guestMac}"}\n`)}`);
  assert.equal((await kvmctl(["--dir", dir, "apply", "-f", file])).exitCode, 0);
  const daemon = run.startController(["--firewall-check", "1s"], { PATH: `${bin}:/usr/bin:/bin` });
  try {
    for (const key of [`network/${extraNet}`, `vm/${vm}`]) {
      const ready = await kvmctl(["--dir", dir, "wait", key, "--for=condition=Ready", "--timeout=120s"]);
      assert.equal(ready.exitCode, 0, `${key}: ${ready.stderr}`);
    }
    assert.match(fs.readFileSync(run.logFile, "utf8"), /firewall backend: iptables/, "the log names the backend");
    assert.equal((await run.getJson(`network/${extraNet}`)).status.firewall.backend, "iptables");
    const lines = await iptablesLines();
    assert.ok(lines.includes(`-A PREROUTING -j ${run.iptPrefix}-PREROUTING`), lines.join("\n"));
    assert.ok(lines.some((l) => l.startsWith(`-A ${run.iptPrefix}-PREROUTING`) && l.includes(`--dport ${port}`) && l.includes("--to-destination 198.19.0.5:22")), lines.join("\n"));

    // The same traffic as with nftables: from outside to the guest's sshd, egress allowed and denied.
    const guest = (commandLine: string) => guestShell({ host: HOST_ADDRESS, port, key: testGuest().sshKey }, commandLine, 90_000);
    assert.equal(await guest("echo booted"), "booted"); // Ready is the domain running, not the guest up
    const banner = await firstLineFromOutside(OUTSIDE.hostAddress, port);
    assert.ok(banner.ok, banner.error);
    assert.match(banner.line, /^SSH-2\.0-dropbear/);
    const server = await startOutsideServer();
    try {
      assert.equal(await guest(connectFromGuest(OUTSIDE.allowed, server)), `outside saw ${OUTSIDE.hostAddress}`);
      assert.equal(await guest(connectFromGuest(OUTSIDE.denied, server)), "refused-or-dropped");
    } finally {
      await server.stop();
    }

    // Flushed by hand: refilled, with no duplicate rule or jump.
    const flushedAt = Date.now();
    assert.equal((await execa("iptables", ["-t", "nat", "-F", `${run.iptPrefix}-PREROUTING`], { reject: false })).exitCode, 0);
    await run.waitForLog("the controller to notice the flush", (line) => line.time >= flushedAt && line.reason === "the table was changed by hand");
    await run.waitUntil("the flushed chain refilled", async () => JSON.stringify(await iptablesLines()) === JSON.stringify(lines), 30_000);
    // No later check adds a duplicate: two that read the chains after the refill.
    await run.waitForReconciles("Firewall/host", { after: Date.now(), count: 2 });
    assert.deepEqual(await iptablesLines(), lines);

    const deleted = await kvmctl(["--dir", dir, "delete", "-f", file, "--wait", "--timeout=120s"]);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    await run.waitUntil("kvmctl's chains and jumps gone", async () => (await iptablesLines()).length === 0, 30_000);
    assert.notEqual((await virsh("net-info", extraNet)).exitCode, 0);
    daemon.kill("SIGTERM");
    assert.equal((await daemon).exitCode, 0);
  } finally {
    if (daemon.exitCode === null) daemon.kill("SIGKILL");
  }
});

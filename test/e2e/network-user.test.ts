// Seed 002 on the real stack (issue 5): a guest on passt user networking, whose traffic to the
// world is the QEMU user's own sockets, restricted by a `mode: user` Network's egress rules on
// the output hook (matched by that user); the input rules its forwarded and VNC ports need.
// The outside namespace's server answers on two addresses: one allowed, one denied.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { execa, type ResultPromise } from "execa";
import { assertInTestEnv, testGuest, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, testGuestVm, virsh } from "./harness.js";
import { connectFromGuest, firstLineAsUser, OUTSIDE, startOutsideServer, type OutsideServer } from "./outside.js";
import { freePort, guestShell } from "./ssh.js";

const egressNet = testName("user-egress");
const vm = testName("user-vm");
let run: E2eDirs;
let controller: ResultPromise | undefined;
let server: OutsideServer | undefined;
let port = 0;

const nftChain = async (chain: string) => String((await execa("nft", ["list", "chain", "inet", run.nftTable, chain], { reject: false })).stdout);

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-network-user");
  port = await freePort();
  server = await startOutsideServer();
});

after(async () => {
  if (controller && controller.exitCode === null) controller.kill("SIGKILL");
  await server?.stop();
  await virsh("destroy", vm);
  await virsh("undefine", vm);
  run?.cleanUp();
});

test("passt egress rules on the output hook, by the QEMU user; input rules for its forward and VNC", async (t) => {
  const networkFile = path.join(run.root, "network.yaml");
  fs.writeFileSync(networkFile, `apiVersion: kvmctl.dev/v1alpha1
kind: Network
metadata: {name: ${egressNet}}
spec:
  mode: user
  egress:
    - {action: deny, to: [${OUTSIDE.deniedRange}]}
`);
  const vmFile = path.join(run.root, "vm.yaml");
  fs.writeFileSync(vmFile, testGuestVm(vm, `  interfaces:
    - user: {portForwards: [{hostPort: ${port}, guestPort: 22}]}
  consoles:
    vnc: {listen: 127.0.0.1}
`));
  for (const file of [networkFile, vmFile]) assert.equal((await kvmctl(["--dir", run.dir, "apply", "-f", file])).exitCode, 0);
  controller = run.startController(["--firewall-check", "1s"]);
  const guest = { port, key: testGuest().sshKey };
  const reach = (address: string) => guestShell(guest, connectFromGuest(address, server!), 30_000);

  await t.test("Ready; the egress rules match the QEMU user's sockets on the output hook", async () => {
    for (const key of [`network/${egressNet}`, `vm/${vm}`]) {
      const ready = await kvmctl(["--dir", run.dir, "wait", key, "--for=condition=Ready", "--timeout=120s"]);
      assert.equal(ready.exitCode, 0, `${key}: ${ready.stderr}`);
    }
    const qemuUid = Number(String((await execa("id", ["-u", "libvirt-qemu"])).stdout).trim());
    const output = await nftChain("output");
    assert.match(output, new RegExp(`ip daddr ${OUTSIDE.deniedRange.replace(/\./g, "\\.")} meta skuid ${qemuUid} drop comment "Network/${egressNet}"`), output);
    const status = (await run.getJson(`network/${egressNet}`)).status;
    assert.equal(status.firewall.backend, "nftables");
    assert.equal(status.firewall.rules, output.split("\n").filter((l) => l.includes(`"Network/${egressNet}"`)).length);
  });

  await t.test("the forwarded port and the VNC port the domain got have input rules", async () => {
    const vncPort = Number(/:(\d+)$/.exec(String((await virsh("vncdisplay", vm)).stdout).trim())?.[1]) + 5900;
    const input = await nftChain("input");
    for (const dport of [port, vncPort]) assert.match(input, new RegExp(`ip daddr 127\\.0\\.0\\.1 tcp dport ${dport} accept comment "VirtualMachine/${vm}"`), input);
  });

  await t.test("through passt the guest reaches the allowed address, not the denied one", async () => {
    // Ready is the domain running, not the guest up: its boot gets the full SSH wait first, so
    // the reach checks below time only the connections through passt.
    assert.equal(await guestShell(guest, "echo booted"), "booted");
    // The connection is passt's own, from the host's address on the link to the outside.
    assert.equal(await reach(OUTSIDE.allowed), `outside saw ${OUTSIDE.hostAddress}`);
    assert.equal(await reach(OUTSIDE.denied), "refused-or-dropped");
    // The same rule stops any socket of the QEMU user on the host.
    const probe = await firstLineAsUser("libvirt-qemu", OUTSIDE.denied, server!.port);
    assert.equal(probe.ok, false, probe.line);
  });

  await t.test("the Network deleted: its rules go, and the QEMU user reaches the denied address again", async () => {
    assert.equal((await kvmctl(["--dir", run.dir, "delete", "network", egressNet, "--wait", "--timeout=60s"])).exitCode, 0);
    await run.waitUntil("no output rule left", async () => !(await nftChain("output")).includes(`Network/${egressNet}`), 30_000);
    // Checked as the QEMU user on the host: passt itself does not always connect again to an
    // address it was once refused (seen in 2 of 4 CI runs), so the guest is not asked.
    const probe = await firstLineAsUser("libvirt-qemu", OUTSIDE.denied, server!.port);
    assert.equal(probe.line, `outside saw ${OUTSIDE.hostAddress}`, probe.error);
  });

  await t.test("the VM deleted: no rule of kvmctl's left; SIGTERM exits 0", async () => {
    assert.equal((await kvmctl(["--dir", run.dir, "delete", "vm", vm, "--wait", "--timeout=60s"])).exitCode, 0);
    await run.waitUntil("the table gone", async () => (await execa("nft", ["list", "table", "inet", run.nftTable], { reject: false })).exitCode !== 0, 30_000);
    controller!.kill("SIGTERM");
    assert.equal((await controller!).exitCode, 0);
  });
});

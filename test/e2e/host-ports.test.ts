// A Network's port forwards never take the host's own ports (issue 13), on the real stack: a
// NAT network forwards port 22 (reserved by default), a port a server of this test listens on,
// and a free port. Only the free port's DNAT reaches the firewall; the Network says why
// (Ready False, HostPortConflict); a connection to the busy port still reaches the host's own
// server; once that server is gone, its forward is applied.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";
import { execa, type ResultPromise } from "execa";
import { VETH_GUEST_SIDE } from "../../testenv/config.js";
import { assertInTestEnv, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, virsh } from "./harness.js";
import { freePort } from "./ssh.js";
import fs from "node:fs";
import path from "node:path";

const network = testName("hport-net");
/** An address of the test namespace (its veth), so the traffic goes through the nat hooks. */
const HOST_ADDRESS = VETH_GUEST_SIDE.address.split("/")[0]!;
const nft = (...args: string[]) => execa("nft", args, { reject: false, timeout: 30_000 });

let run: E2eDirs; // set in before(); after() runs even when before() failed
let controller: ResultPromise | undefined;
let hostServer: net.Server | undefined;
let busyPort = 0;
let freeHostPort = 0;

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-host-ports");
  // The host's own service on busyPort, on every address: it answers "host".
  hostServer = net.createServer((socket) => socket.end("host\n"));
  await new Promise<void>((resolve) => hostServer!.listen(0, "0.0.0.0", resolve));
  busyPort = (hostServer.address() as net.AddressInfo).port;
  freeHostPort = await freePort();
});

after(async () => {
  if (controller && controller.exitCode === null) {
    controller.kill("SIGTERM");
    await Promise.race([controller, new Promise((r) => setTimeout(r, 30_000).unref())]);
    if (controller.exitCode === null) controller.kill("SIGKILL");
  }
  hostServer?.close();
  await virsh("net-destroy", network);
  await virsh("net-undefine", network);
  run?.cleanUp();
});

/** The host ports the instance's table DNATs to the guest. */
async function dnatPorts(): Promise<number[]> {
  const listed = String((await nft("list", "chain", "inet", run.nftTable, "prerouting")).stdout);
  return [...listed.matchAll(/dport (\d+) dnat/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
}

async function readyCondition(): Promise<{ status: string; reason: string; message: string } | undefined> {
  const conditions = ((await run.getJson(`network/${network}`)).status?.conditions ?? []) as { type: string; status: string; reason: string; message: string }[];
  return conditions.find((c) => c.type === "Ready");
}

/** What a TCP connection to the host address on `port` reads, or "no answer". */
function connect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST_ADDRESS, port, timeout: 3_000 });
    let data = "";
    socket.on("data", (chunk) => (data += chunk.toString()));
    socket.on("end", () => resolve(data.trim()));
    socket.on("timeout", () => (socket.destroy(), resolve("no answer")));
    socket.on("error", () => resolve("no answer"));
  });
}

test("a Network's forwards leave the host's reserved and listening ports alone", async (t) => {
  fs.writeFileSync(
    path.join(run.dir, "net.yaml"),
    `apiVersion: kvmctl.dev/v1alpha1
kind: Network
metadata: {name: ${network}}
spec:
  mode: nat
  ipv4: {address: 198.18.92.1, prefix: 24}
  portForwards:
    - {hostPort: 22, guestAddress: 198.18.92.10, guestPort: 22}
    - {hostPort: ${busyPort}, guestAddress: 198.18.92.10, guestPort: 80}
    - {hostPort: ${freeHostPort}, guestAddress: 198.18.92.10, guestPort: 8080}
`,
  );
  controller = run.startController();

  await t.test("only the free port is forwarded; the Network says which were left out and why", async () => {
    let ready: Awaited<ReturnType<typeof readyCondition>>;
    await run.waitUntil("the Network to report HostPortConflict", async () => (ready = await readyCondition())?.reason === "HostPortConflict", 60_000);
    assert.equal(ready!.status, "False");
    assert.match(ready!.message, /host port tcp\/22 is reserved on this host/);
    assert.match(ready!.message, new RegExp(`host port tcp/${busyPort} is in use on this host \\(a socket listens on 0\\.0\\.0\\.0:${busyPort}\\)`));
    assert.deepEqual(await dnatPorts(), [freeHostPort]);
    assert.equal((await virsh("net-info", network)).exitCode, 0, "the network itself is defined");
  });

  await t.test("the busy port still reaches the host's own server", async () => {
    assert.equal(await connect(busyPort), "host");
  });

  await t.test("once the host lets go of the port, its forward is applied; 22 stays out", async () => {
    await new Promise<void>((resolve) => hostServer!.close(() => resolve()));
    hostServer = undefined;
    await run.waitUntil("the freed port's forward in the table", async () => (await dnatPorts()).includes(busyPort), 60_000);
    assert.deepEqual(await dnatPorts(), [busyPort, freeHostPort].sort((a, b) => a - b));
    await run.waitUntil("the Network's message to drop the freed port", async () => !((await readyCondition())?.message ?? "").includes(`tcp/${busyPort}`), 60_000);
    const ready = await readyCondition();
    assert.equal(ready?.reason, "HostPortConflict");
    assert.match(ready!.message, /^host port tcp\/22 is reserved/);
  });

  await t.test("deleted: the network and its rules go", async () => {
    const deleted = await kvmctl(["--dir", run.dir, "delete", "network", network, "--wait", "--timeout=120s"]);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    assert.notEqual((await virsh("net-info", network)).exitCode, 0);
    assert.deepEqual(await dnatPorts(), []);
  });
});

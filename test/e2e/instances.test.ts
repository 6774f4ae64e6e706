// Trust between controllers (issue 12), on the real stack: two controllers on two manifest
// directories over one libvirt, each with a VM, a NAT network with a port forward and a pool.
// Whatever happens to one — restarted, a `--once` pass on an empty third directory, its
// manifests deleted, its directory moved away and back, emptied at once — the other's domain
// (same ID), definitions, volumes and firewall rules stay byte-for-byte as they were.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { execa, type ResultPromise } from "execa";
import { assertInTestEnv, testName } from "../../testenv/env.js";
import { freePort } from "./ssh.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, testGuestVm, virsh } from "./harness.js";

interface Side {
  label: "a" | "b";
  run: E2eDirs;
  instance: string;
  vm: string;
  net: string;
  pool: string;
  port: number;
  controller?: ResultPromise;
}

const sides: Side[] = [];
const nftTable = (side: Side) => `kvmctl-${side.instance}`;

function manifests(side: Side, subnet: string): string {
  const poolPath = path.join(side.run.root, "pool");
  return `apiVersion: kvmctl.dev/v1alpha1
kind: StoragePool
metadata: {name: ${side.pool}}
spec: {type: dir, path: ${poolPath}}
---
apiVersion: kvmctl.dev/v1alpha1
kind: Network
metadata: {name: ${side.net}}
spec:
  mode: nat
  ipv4: {address: ${subnet}.1, prefix: 24}
  portForwards:
    - {hostPort: ${side.port}, guestAddress: ${subnet}.10, guestPort: 22}
---
${testGuestVm(side.vm, `  deletionPolicy: Delete\n  disks:\n    - {name: data, pool: ${side.pool}, size: 8Mi}\n  interfaces:\n    - {network: ${side.net}}\n`)}`;
}

function startController(side: Side, extra: string[] = []): void {
  side.controller = side.run.startController(["--instance", side.instance, "--rescan", "1s", ...extra]);
}

async function stopController(side: Side): Promise<void> {
  const child = side.controller;
  if (!child || child.exitCode !== null) return;
  child.kill("SIGTERM");
  await child;
}

async function ready(side: Side, timeout = "180s"): Promise<void> {
  for (const target of [`pool/${side.pool}`, `network/${side.net}`, `vm/${side.vm}`]) {
    const waited = await kvmctl(["--dir", side.run.dir, "wait", target, "--for=condition=Ready", `--timeout=${timeout}`]);
    assert.equal(waited.exitCode, 0, `${target}: ${waited.stderr}`);
  }
}

/** Everything of one side that another controller must never change, as text. */
interface Fingerprint {
  domid: string;
  state: string;
  domain: string;
  network: string;
  pool: string;
  volumes: string;
  rules: string;
}

async function fingerprint(side: Side): Promise<Fingerprint> {
  const nft = await execa("nft", ["-j", "list", "table", "inet", nftTable(side)], { reject: false });
  const rules = nft.exitCode === 0 ? (JSON.parse(String(nft.stdout)).nftables as Record<string, { handle?: number; comment?: string; expr?: unknown }>[]).flatMap((i) => (i.rule ? [JSON.stringify({ ...i.rule, handle: undefined })] : [])) : ["<no table>"];
  return {
    domid: String((await virsh("domid", side.vm)).stdout).trim(),
    state: String((await virsh("domstate", side.vm)).stdout).trim(),
    domain: String((await virsh("dumpxml", "--inactive", side.vm)).stdout),
    network: String((await virsh("net-dumpxml", "--inactive", side.net)).stdout),
    pool: String((await virsh("pool-dumpxml", side.pool)).stdout),
    volumes: String((await virsh("vol-list", side.pool)).stdout),
    rules: rules.sort().join("\n"),
  };
}

before(async () => {
  await assertInTestEnv();
  for (const [label, subnet] of [["a", "198.18.30"], ["b", "198.18.31"]] as const) {
    const side: Side = { label, run: E2eDirs.create(`e2e-instances-${label}`), instance: `i${label}${process.pid.toString(36)}`.slice(0, 9), vm: testName(`inst-vm-${label}`), net: testName(`inst-net-${label}`), pool: testName(`inst-pool-${label}`), port: await freePort() };
    fs.writeFileSync(path.join(side.run.root, "all.yaml"), manifests(side, subnet));
    const applied = await kvmctl(["--dir", side.run.dir, "apply", "-f", path.join(side.run.root, "all.yaml")]);
    assert.equal(applied.exitCode, 0, applied.stderr);
    sides.push(side);
  }
  for (const side of sides) startController(side);
  for (const side of sides) await ready(side);
});

after(async () => {
  for (const side of sides) await stopController(side);
  for (const side of sides) {
    await virsh("destroy", side.vm);
    await virsh("undefine", side.vm, "--nvram");
    for (const vol of String((await virsh("vol-list", side.pool, "--name")).stdout).split("\n").map((v) => v.trim()).filter(Boolean)) await virsh("vol-delete", vol, "--pool", side.pool);
    await virsh("pool-destroy", side.pool);
    await virsh("pool-undefine", side.pool);
    await virsh("net-destroy", side.net);
    await virsh("net-undefine", side.net);
    await execa("nft", ["delete", "table", "inet", nftTable(side)], { reject: false });
    side.run.cleanUp();
  }
});

test("two controllers on two directories: neither touches the other's objects or rules", async (t) => {
  const [a, b] = sides as [Side, Side];

  await t.test("each instance holds its own objects and its own firewall table", async () => {
    for (const side of sides) {
      const vm = (await side.run.getJson(`vm/${side.vm}`)).status;
      assert.equal(vm.instance, side.instance, "status names the instance");
      assert.match(String((await virsh("dumpxml", "--inactive", side.vm)).stdout), new RegExp(`instance="${side.instance}"`));
      const fp = await fingerprint(side);
      assert.match(fp.rules, new RegExp(`Network/${side.net}`), `${nftTable(side)} holds ${side.label}'s port forward`);
      assert.doesNotMatch(fp.rules, new RegExp(`Network/${(side === a ? b : a).net}`), "and nothing of the other's");
    }
  });

  await t.test("a restarted controller, and --once on an empty third directory, change nothing of the other", async () => {
    const before = await fingerprint(b);
    await stopController(a);
    const restartedAt = Date.now();
    startController(a);
    await a.run.waitForReconciles("Firewall/host", { after: restartedAt });
    await ready(a, "60s");
    const empty = E2eDirs.create("e2e-instances-empty");
    try {
      const once = await kvmctl(["--dir", empty.dir, "controller", "--once", "--instance", "iempty", "--default-domain-type", "qemu"]);
      assert.equal(once.exitCode, 0, once.stderr);
    } finally {
      empty.cleanUp();
    }
    assert.deepEqual(await fingerprint(b), before);
    await b.run.waitForReconciles("Firewall/host", { after: Date.now() });
    assert.deepEqual(await fingerprint(b), before, "not even after b's next firewall check");
  });

  await t.test("a directory moved away and back: nothing destroyed, the controller follows it again", async () => {
    const before = await fingerprint(b);
    const away = `${b.run.dir}.away`;
    const movedAt = Date.now();
    fs.renameSync(b.run.dir, away);
    await b.run.waitForLog("the controller to notice the directory is gone", (l) => l.time >= movedAt && /manifest directory cannot be read/.test(String(l.msg)));
    await b.run.waitForLog("a deletion held back", (l) => l.time >= movedAt && l.object === `VirtualMachine/${b.vm}` && /not pruned/.test(String(l.msg)));
    await new Promise((resolve) => setTimeout(resolve, 30_000)); // the outage itself (the issue's 30 s), not a wait for a check
    assert.deepEqual(await fingerprint(b), before, "0 objects destroyed while it was away");
    const backAt = Date.now();
    fs.renameSync(away, b.run.dir);
    await b.run.waitForLog("the directory seen again", (l) => l.time >= backAt && /readable and holds objects again/.test(String(l.msg)));
    // An edit after it came back reaches libvirt: the watcher is attached to it again.
    const file = path.join(b.run.dir, "virtualmachines", `${b.vm}.yaml`);
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("terminationGracePeriodSeconds: 10", "terminationGracePeriodSeconds: 10\n  autostart: true"));
    await b.run.waitUntil("the edit in libvirt", async () => /^Autostart:\s+enable/m.test(String((await virsh("dominfo", b.vm)).stdout)), 60_000);
    const after = await fingerprint(b);
    assert.equal(after.domid, before.domid, "the same running domain");
    assert.equal(after.volumes, before.volumes);
    assert.equal(after.rules, before.rules);
  });

  await t.test("a directory emptied at once prunes nothing without --allow-empty", async () => {
    const before = await fingerprint(b);
    // Every manifest moved out at once (a checkout being replaced); kvmctl's .kvmctl/ stays.
    const saved = path.join(b.run.root, "saved");
    fs.mkdirSync(saved);
    const entries = fs.readdirSync(b.run.dir).filter((e) => e !== ".kvmctl");
    const emptiedAt = Date.now();
    for (const entry of entries) fs.renameSync(path.join(b.run.dir, entry), path.join(saved, entry));
    await b.run.waitForLog("the emptied directory noticed", (l) => l.time >= emptiedAt && /holds no objects/.test(String(l.msg)));
    await b.run.waitForLog("the VM's deletion held back", (l) => l.time >= emptiedAt && l.object === `VirtualMachine/${b.vm}` && /not pruned/.test(String(l.msg)));
    await b.run.waitForReconciles("Firewall/host", { after: Date.now() });
    const during = await fingerprint(b);
    assert.equal(during.domid, before.domid, "the VM still runs");
    assert.equal(during.domain, before.domain);
    assert.equal(during.volumes, before.volumes);
    // Put back: Ready again, still the same domain.
    for (const entry of entries) fs.renameSync(path.join(saved, entry), path.join(b.run.dir, entry));
    await ready(b, "60s");
    assert.equal((await fingerprint(b)).domid, before.domid);
  });

  await t.test("one directory's manifests deleted: its objects go, the other's stay byte-for-byte", async () => {
    const before = await fingerprint(b);
    const deleted = await kvmctl(["--dir", a.run.dir, "delete", "-f", path.join(a.run.root, "all.yaml"), "--wait", "--timeout=120s"]);
    assert.equal(deleted.exitCode, 0, deleted.stderr);
    assert.notEqual((await virsh("domstate", a.vm)).exitCode, 0, "a's VM is gone");
    assert.notEqual((await virsh("net-info", a.net)).exitCode, 0, "a's network is gone");
    assert.notEqual((await virsh("pool-info", a.pool)).exitCode, 0, "a's pool is gone (its VM's disk was deletionPolicy: Delete)");
    await b.run.waitForReconciles("Firewall/host", { after: Date.now() });
    assert.deepEqual(await fingerprint(b), before);
  });
});

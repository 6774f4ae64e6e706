// kvmctl addresses libvirt objects it owns unambiguously. virsh resolves a domain argument as
// an ID first, then a UUID, then a name; a network or pool argument as a UUID, then a name.
// A manifest name is a DNS-1123 label, so "7" or a lower-case UUID are valid names: a VM named
// after a running foreign domain's ID, a Network or StoragePool named after a foreign one's
// UUID, each goes through its whole lifecycle (created, Ready, stopped where it applies,
// deleted) while the foreign object stays byte-for-byte as it was, running/active, persistent,
// with its autostart flag unchanged.
//
// The kvmctl objects here cannot carry the sweeper prefix (their names ARE the collision), so
// every case removes them itself, by UUID, and never by the ambiguous name.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ResultPromise } from "execa";
import { assertInTestEnv, testGuest, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, testGuestVm, virsh } from "./harness.js";

const foreignDomain = testName("addr-dom");
const foreignNetwork = testName("addr-net");
const foreignPool = testName("addr-pool");
const FOREIGN_NET_IP = "198.18.77.1"; // /24; kvmctl's own network takes 198.18.78.1/24
const OWN_NET_IP = "198.18.78.1";

let run: E2eDirs; // set in before(); after() runs even when before() failed
let controller: ResultPromise | undefined;
/** Idempotent removals, run at the end of each case and again after the controller is gone. */
const cleanups: (() => Promise<void>)[] = [];

type Kind = "domain" | "network" | "pool";
const LIST: Record<Kind, string> = { domain: "list", network: "net-list", pool: "pool-list" };
const NAME_OF: Record<Kind, string> = { domain: "domname", network: "net-name", pool: "pool-name" };

async function must(...args: string[]): Promise<string> {
  const result = await virsh(...args);
  assert.equal(result.exitCode, 0, `virsh ${args.join(" ")}: ${String(result.stderr).trim()}`);
  return String(result.stdout);
}

/** UUIDs of the objects of `kind` whose name is exactly `name` (looked up by UUID only). */
async function uuidsNamed(kind: Kind, name: string): Promise<string[]> {
  const uuids = String((await virsh(LIST[kind], "--all", "--uuid")).stdout).split("\n").map((s) => s.trim()).filter(Boolean);
  const found: string[] = [];
  for (const uuid of uuids) {
    const got = await virsh(NAME_OF[kind], uuid);
    if (got.exitCode === 0 && String(got.stdout).trim() === name) found.push(uuid);
  }
  return found;
}

/** The one object of `kind` named `name` that is not `foreignUuid`: kvmctl's, found by UUID. */
async function ownUuid(kind: Kind, name: string, foreignUuid: string): Promise<string | undefined> {
  const uuids = (await uuidsNamed(kind, name)).filter((u) => u !== foreignUuid);
  assert.ok(uuids.length <= 1, `more than one ${kind} named "${name}": ${uuids.join(", ")}`);
  return uuids[0];
}

const infoField = (info: string, field: string) => new RegExp(`^${field}:\\s*(.*)$`, "m").exec(info)?.[1]?.trim();

interface ForeignState {
  xml: string;
  /** running / active, persistent, autostart: what libvirt says besides the XML. */
  flags: Record<string, string | undefined>;
}

/** A foreign object as libvirt holds it, read by UUID. */
async function foreignState(kind: Kind, uuid: string): Promise<ForeignState> {
  if (kind === "domain") {
    const info = await must("dominfo", uuid);
    return { xml: await must("dumpxml", "--inactive", uuid), flags: { state: infoField(info, "State"), persistent: infoField(info, "Persistent"), autostart: infoField(info, "Autostart"), id: infoField(info, "Id") } };
  }
  if (kind === "network") {
    const info = await must("net-info", uuid);
    return { xml: await must("net-dumpxml", "--inactive", uuid), flags: { name: infoField(info, "Name"), active: infoField(info, "Active"), persistent: infoField(info, "Persistent"), autostart: infoField(info, "Autostart"), bridge: infoField(info, "Bridge") } };
  }
  const info = await must("pool-info", uuid);
  return { xml: await must("pool-dumpxml", "--inactive", uuid), flags: { name: infoField(info, "Name"), state: infoField(info, "State"), persistent: infoField(info, "Persistent"), autostart: infoField(info, "Autostart") } };
}

/** Asserts the foreign object is still there and exactly as it was. */
async function assertUntouched(kind: Kind, uuid: string, before: ForeignState, when: string): Promise<void> {
  const exists = await virsh(kind === "domain" ? "dominfo" : kind === "network" ? "net-info" : "pool-info", uuid);
  assert.equal(exists.exitCode, 0, `${when}: the foreign ${kind} ${uuid} is gone (${String(exists.stderr).trim()})`);
  const now = await foreignState(kind, uuid);
  assert.deepEqual(now.flags, before.flags, `${when}: the foreign ${kind}'s state/persistence/autostart changed`);
  assert.equal(now.xml, before.xml, `${when}: the foreign ${kind}'s inactive XML changed`);
}

async function removeDomain(uuid: string): Promise<void> {
  await virsh("destroy", uuid);
  await virsh("undefine", uuid, "--nvram", "--managed-save");
}
async function removeNetwork(uuid: string): Promise<void> {
  await virsh("net-destroy", uuid);
  await virsh("net-undefine", uuid);
}
async function removePool(uuid: string): Promise<void> {
  await virsh("pool-destroy", uuid);
  await virsh("pool-undefine", uuid);
}
const REMOVE: Record<Kind, (uuid: string) => Promise<void>> = { domain: removeDomain, network: removeNetwork, pool: removePool };

/** Registers (and returns) the cleanup of one case: its manifest, kvmctl's object by UUID, the foreign object. */
function cleanupFor(kind: Kind, manifestKind: string, name: () => string | undefined, foreignUuid: string): () => Promise<void> {
  const cleanup = async () => {
    const own = name();
    if (own !== undefined) {
      await kvmctl(["--dir", run.dir, "delete", manifestKind, own]).catch(() => undefined);
      for (const uuid of await uuidsNamed(kind, own)) if (uuid !== foreignUuid) await REMOVE[kind](uuid);
    }
    await REMOVE[kind](foreignUuid);
  };
  cleanups.push(cleanup);
  return cleanup;
}

const logTail = () => (fs.existsSync(run.logFile) ? fs.readFileSync(run.logFile, "utf8").split("\n").slice(-15).join("\n") : "");

/** Fails at once, with the log's tail, when the controller is gone (a crash would otherwise look like a timeout). */
function assertControllerAlive(when: string): void {
  assert.ok(controller && controller.exitCode === null, `${when}: the controller is not running (exit ${controller?.exitCode}); log tail:\n${logTail()}`);
}

const apply = async (file: string, text: string) => {
  fs.writeFileSync(file, text);
  const applied = await kvmctl(["--dir", run.dir, "apply", "-f", file]);
  assert.equal(applied.exitCode, 0, `apply ${path.basename(file)}: ${applied.stderr}`);
};
const waitReady = async (target: string, timeout: string) => {
  assertControllerAlive(`waiting for ${target} Ready`);
  const ready = await kvmctl(["--dir", run.dir, "wait", target, "--for=condition=Ready", `--timeout=${timeout}`]);
  assert.equal(ready.exitCode, 0, `${target} did not become Ready: ${ready.stderr.trim()}`);
};
const deleteWait = async (kind: string, name: string, timeout: string) => {
  assertControllerAlive(`deleting ${kind}/${name}`);
  const deleted = await kvmctl(["--dir", run.dir, "delete", kind, name, "--wait", `--timeout=${timeout}`]);
  assert.equal(deleted.exitCode, 0, `delete ${kind}/${name} --wait: ${deleted.stderr.trim()}`);
};

/**
 * One step of a case: `body` (kvmctl's side of the lifecycle), then, whatever became of it,
 * the foreign object checked against `before`. Both failures are reported when both fail.
 */
async function step(kind: Kind, foreignUuid: string, before: ForeignState, when: string, body: () => Promise<void>): Promise<void> {
  const failures: string[] = [];
  try {
    await body();
  } catch (error) {
    failures.push(error instanceof Error ? error.message : String(error));
  }
  try {
    await assertUntouched(kind, foreignUuid, before, when);
  } catch (error) {
    failures.push(error instanceof Error ? error.message : String(error));
  }
  if (failures.length) throw new Error(failures.join("\n--- and ---\n"));
}

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-addressing");
  controller = run.startController();
  // Started, and still up a moment later (a controller that cannot load its code dies at once).
  await run.waitUntil("the controller to start", async () => {
    assertControllerAlive("starting");
    return fs.existsSync(run.logFile) && fs.readFileSync(run.logFile, "utf8").includes('"msg":"controller starting"');
  }, 60_000);
  // Its first full pass reached the firewall singleton, the last key: it runs and reconciles.
  await run.waitForReconciles("Firewall/host", { after: 0 });
  assertControllerAlive("started");
});

after(async () => {
  if (controller && controller.exitCode === null) {
    controller.kill("SIGTERM");
    const stopped = await Promise.race([controller.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 15_000))]);
    if (!stopped) controller.kill("SIGKILL");
  }
  for (const cleanup of cleanups) await cleanup().catch(() => undefined);
  run?.cleanUp();
});


test("a VM named after a running foreign domain's ID leaves that domain alone", async (t) => {
  const guest = testGuest();
  const foreignUuid = randomUUID();
  const xmlFile = path.join(run.root, "foreign-domain.xml");
  // Known values only (a fresh UUID, the test's own name and the guest's paths).
  fs.writeFileSync(
    xmlFile,
    `<domain type='qemu'>
  <name>${foreignDomain}</name>
  <uuid>${foreignUuid}</uuid>
  <memory unit='MiB'>160</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>${guest.kernel}</kernel>
    <initrd>${guest.initrd}</initrd>
    <cmdline>console=ttyS0 quiet</cmdline>
  </os>
  <devices>
    <serial type='pty'/>
    <memballoon model='none'/>
  </devices>
</domain>
`,
  );
  let name: string | undefined;
  const cleanup = cleanupFor("domain", "vm", () => name, foreignUuid);
  try {
    await must("define", xmlFile);
    await must("start", foreignUuid);
    const id = (await must("domid", foreignUuid)).trim();
    assert.match(id, /^[1-9][0-9]*$/, "the foreign domain has a numeric ID");
    name = id; // the collision: kvmctl's VM is named after the running foreign domain's ID
    const vm = name;
    const before = await foreignState("domain", foreignUuid);
    assert.equal(before.flags.state, "running");
    assert.equal(before.flags.autostart, "disable");
    process.stdout.write(`# foreign domain ${foreignDomain} (${foreignUuid}) runs with ID ${id}: the VM manifest is named "${vm}"\n`);

    const file = path.join(run.root, "vm.yaml");
    // Quoted: an unquoted 7 is a YAML number. autostart: true has kvmctl run `autostart` as well.
    const manifest = (runStrategy: string) => testGuestVm(JSON.stringify(vm), `  runStrategy: ${runStrategy}\n  autostart: true\n`);
    const ownState = async () => {
      const uuid = await ownUuid("domain", vm, foreignUuid);
      return uuid === undefined ? undefined : String((await virsh("domstate", uuid)).stdout).trim();
    };
    const check = (when: string, body: () => Promise<void>) => step("domain", foreignUuid, before, when, body);
    await apply(file, manifest("Always"));

    await t.test("runStrategy Always: kvmctl's VM is defined, started (autostart on) and Ready", () =>
      check("after the VM was created and started", async () => {
        await waitReady(`vm/${vm}`, "60s");
        const uuid = await ownUuid("domain", vm, foreignUuid);
        assert.ok(uuid, `no domain named "${vm}" besides the foreign one`);
        const info = await must("dominfo", uuid);
        const status = (await run.getJson(`vm/${vm}`)).status;
        assert.deepEqual(
          { state: infoField(info, "State"), autostart: infoField(info, "Autostart"), statusUuid: status.domain?.uuid },
          { state: "running", autostart: "enable", statusUuid: uuid },
          "kvmctl's own domain (state and autostart in libvirt, status.domain.uuid)",
        );
      }));

    await t.test("runStrategy Halted: kvmctl's VM shuts off, the foreign one keeps running", () =>
      check("after runStrategy Halted", async () => {
        await apply(file, manifest("Halted"));
        await run.waitUntil(`kvmctl's domain "${vm}" shut off`, async () => (await ownState()) === "shut off", 60_000);
        await waitReady(`vm/${vm}`, "30s");
        const status = (await run.getJson(`vm/${vm}`)).status;
        assert.equal(status.phase, "Stopped");
        assert.equal(status.domain?.uuid, await ownUuid("domain", vm, foreignUuid), "status.domain.uuid is not kvmctl's own domain");
      }));

    await t.test("runStrategy Always again: kvmctl's VM runs again", () =>
      check("after runStrategy Always again", async () => {
        await apply(file, manifest("Always"));
        await run.waitUntil(`kvmctl's domain "${vm}" running`, async () => (await ownState()) === "running", 60_000);
        await waitReady(`vm/${vm}`, "60s");
      }));

    await t.test("manifest deleted (--wait): kvmctl's domain destroyed and undefined, the foreign one untouched", () =>
      check("after the manifest was deleted", async () => {
        await deleteWait("vm", vm, "60s");
        assert.deepEqual(await uuidsNamed("domain", vm), [], `a domain named "${vm}" is still defined`);
      }));
  } finally {
    await cleanup();
  }
});

test("a Network named after a foreign network's UUID leaves that network alone", async (t) => {
  const foreignUuid = randomUUID();
  const name = foreignUuid; // lower-case hex and '-': a DNS-1123 label
  const xmlFile = path.join(run.root, "foreign-network.xml");
  fs.writeFileSync(xmlFile, `<network>\n  <name>${foreignNetwork}</name>\n  <uuid>${foreignUuid}</uuid>\n  <ip address='${FOREIGN_NET_IP}' prefix='24'/>\n</network>\n`);
  const cleanup = cleanupFor("network", "network", () => name, foreignUuid);
  try {
    await must("net-define", xmlFile);
    await must("net-start", foreignUuid);
    const before = await foreignState("network", foreignUuid);
    assert.equal(before.flags.active, "yes");
    assert.equal(before.flags.autostart, "no");
    const check = (when: string, body: () => Promise<void>) => step("network", foreignUuid, before, when, body);

    const file = path.join(run.root, "network.yaml");
    const manifest = (hosts: string) =>
      `apiVersion: kvmctl.dev/v1alpha1\nkind: Network\nmetadata: {name: "${name}"}\nspec:\n  mode: isolated\n  ipv4:\n    address: ${OWN_NET_IP}\n    prefix: 24\n    dhcp: {start: 198.18.78.100, end: 198.18.78.150, hosts: [${hosts}]}\n`;
    await apply(file, manifest(""));

    await t.test("kvmctl's network is defined, started (autostart on) and Ready", () =>
      check("after the network was created", async () => {
        await waitReady(`network/${name}`, "45s");
        const uuid = await ownUuid("network", name, foreignUuid);
        assert.ok(uuid, `no network named "${name}" besides the foreign one`);
        const info = await must("net-info", uuid);
        assert.deepEqual(
          { active: infoField(info, "Active"), autostart: infoField(info, "Autostart"), ownAddress: (await must("net-dumpxml", uuid)).includes(`address='${OWN_NET_IP}'`), statusUuid: (await run.getJson(`network/${name}`)).status.uuid },
          { active: "yes", autostart: "yes", ownAddress: true, statusUuid: uuid },
          "kvmctl's own network (active, autostart, its address, status.uuid)",
        );
      }));

    await t.test("a DHCP host added (net-update): it lands in kvmctl's network", () =>
      check("after the DHCP host was added", async () => {
        await apply(file, manifest(`{mac: "52:54:00:00:0c:01", ip: 198.18.78.10}`));
        const uuid = await ownUuid("network", name, foreignUuid);
        assert.ok(uuid, `no network named "${name}" besides the foreign one`);
        const host = "<host mac='52:54:00:00:0c:01' ip='198.18.78.10'/>";
        await run.waitUntil("the DHCP host in kvmctl's network (live and next start)", async () => (await must("net-dumpxml", uuid)).includes(host) && (await must("net-dumpxml", "--inactive", uuid)).includes(host), 30_000);
        await waitReady(`network/${name}`, "30s");
      }));

    await t.test("manifest deleted (--wait): kvmctl's network removed, the foreign one untouched", () =>
      check("after the manifest was deleted", async () => {
        await deleteWait("network", name, "45s");
        assert.deepEqual(await uuidsNamed("network", name), [], `a network named "${name}" is still defined`);
      }));
  } finally {
    await cleanup();
  }
});

test("a StoragePool named after a foreign pool's UUID leaves that pool alone", async (t) => {
  const foreignUuid = randomUUID();
  const name = foreignUuid;
  const vm = testName("addr-disk");
  const foreignPath = path.join(run.root, "foreign-pool");
  const ownPath = path.join(run.root, "own-pool");
  fs.mkdirSync(foreignPath);
  const xmlFile = path.join(run.root, "foreign-pool.xml");
  fs.writeFileSync(xmlFile, `<pool type='dir'>\n  <name>${foreignPool}</name>\n  <uuid>${foreignUuid}</uuid>\n  <target><path>${foreignPath}</path></target>\n</pool>\n`);
  const removeVm = async () => {
    await kvmctl(["--dir", run.dir, "delete", "vm", vm]).catch(() => undefined);
    for (const uuid of await uuidsNamed("domain", vm)) await removeDomain(uuid);
  };
  cleanups.push(removeVm);
  const cleanup = cleanupFor("pool", "pool", () => name, foreignUuid);
  try {
    await must("pool-define", xmlFile);
    await must("pool-start", foreignUuid);
    const before = await foreignState("pool", foreignUuid);
    assert.equal(before.flags.state, "running");
    assert.equal(before.flags.autostart, "no");
    const foreignVolumes = async () => String((await virsh("vol-list", foreignUuid)).stdout).split("\n").map((l) => l.trim()).filter(Boolean);
    const check = (when: string, body: () => Promise<void>) =>
      step("pool", foreignUuid, before, when, async () => {
        try {
          await body();
        } finally {
          assert.deepEqual(await foreignVolumes(), [], `${when}: volumes appeared in the foreign pool`);
        }
      });

    const file = path.join(run.root, "pool.yaml");
    await apply(file, `apiVersion: kvmctl.dev/v1alpha1\nkind: StoragePool\nmetadata: {name: "${name}"}\nspec:\n  type: dir\n  path: ${ownPath}\n`);

    let own: string | undefined;
    await t.test("kvmctl's pool is defined, built, started (autostart on) and Ready", () =>
      check("after the pool was created", async () => {
        await waitReady(`pool/${name}`, "45s");
        own = await ownUuid("pool", name, foreignUuid);
        assert.ok(own, `no pool named "${name}" besides the foreign one`);
        const info = await must("pool-info", own);
        assert.deepEqual(
          {
            state: infoField(info, "State"),
            autostart: infoField(info, "Autostart"),
            ownPath: (await must("pool-dumpxml", own)).includes(`<path>${ownPath}</path>`),
            built: fs.existsSync(ownPath) && fs.statSync(ownPath).isDirectory(),
            statusUuid: (await run.getJson(`pool/${name}`)).status.uuid,
          },
          { state: "running", autostart: "yes", ownPath: true, built: true, statusUuid: own },
          "kvmctl's own pool (state, autostart, its path, its directory, status.uuid)",
        );
      }));

    await t.test("a VM disk in that pool (vol-create, vol-delete): created and deleted in kvmctl's pool", () =>
      check("after a disk was created and deleted in kvmctl's pool", async () => {
        const volume = `${vm}-data.qcow2`;
        await apply(path.join(run.root, "disk-vm.yaml"), testGuestVm(vm, `  runStrategy: Halted\n  deletionPolicy: Delete\n  disks:\n    - {name: data, pool: "${name}", size: 8Mi}\n`));
        await waitReady(`vm/${vm}`, "45s");
        assert.ok(own, "kvmctl's pool was not found");
        assert.equal((await virsh("vol-info", "--pool", own, volume)).exitCode, 0, `the disk ${volume} is not in kvmctl's pool`);
        await deleteWait("vm", vm, "45s");
        assert.notEqual((await virsh("vol-info", "--pool", own, volume)).exitCode, 0, `the disk ${volume} is still in kvmctl's pool (deletionPolicy: Delete)`);
      }));

    await t.test("manifest deleted (--wait): kvmctl's pool removed, the foreign one untouched", () =>
      check("after the manifest was deleted", async () => {
        await deleteWait("pool", name, "45s");
        assert.deepEqual(await uuidsNamed("pool", name), [], `a pool named "${name}" is still defined`);
      }));
  } finally {
    await removeVm();
    await cleanup();
  }
});

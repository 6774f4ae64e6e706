// spec.cloudInit through the VirtualMachine reconciler, on the fakes: the pinned host key made
// once, the NoCloud seed built before the definition that attaches it and rebuilt only when
// its inputs change (also across a controller restart), status.cloudInit, the seed and key
// removed on deletion — and no secret (user-data from a secret file, the private host key) in
// status, events, logs, errors, libvirt calls or the definition.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ownedUuid } from "../../../src/libvirt/index.js";
import { DependencyNotReadyError, TerminalError, type Logger } from "../../../src/runtime/index.js";
import { ControllerHarness, TEST_INSTANCE } from "../helpers/fake-ports.js";

const WEB = ownedUuid("VirtualMachine", "web");
const KEY = "VirtualMachine/web";
const SEED = `/var/lib/kvmctl/seeds/${TEST_INSTANCE}/web/seed.img`;
const AUTHORIZED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA alice@example";
const MARKER = "MARKER-SECRET-7f3a9c";

async function scene(): Promise<ControllerHarness> {
  const h = new ControllerHarness();
  h.apply("StoragePool", "default", { path: "/var/lib/kvmctl/default" });
  await h.converge("StoragePool/default");
  h.hv.clearCalls();
  return h;
}

function web(cloudInit: Record<string, unknown>, spec: Record<string, unknown> = {}): Record<string, unknown> {
  return { memory: "1Gi", disks: [{ name: "root", size: "1Gi" }], cloudInit, ...spec };
}

/** A logger that keeps every line it is given (message and fields). */
function capturingLogger(lines: string[]): Logger {
  const log = (fields: unknown, message?: string) => void lines.push(JSON.stringify([fields, message]));
  const logger: Logger = { info: log, warn: log, error: log, debug: log, child: () => logger } as Logger;
  return logger;
}

test("create: the host key is made, the seed built, then the domain defined with the seed as a read-only SCSI CD-ROM", async () => {
  const h = await scene();
  h.apply("VirtualMachine", "web", web({ sshAuthorizedKeys: [AUTHORIZED] }));
  const outcome = await h.reconcile(KEY);
  assert.equal(outcome.ready, true);
  assert.equal(h.ports.hostKeys.generated, 1);
  assert.deepEqual(h.ports.seedMedia.builds, [{ target: SEED, format: "iso" }]);
  assert.ok(h.ports.seedMedia.dirs.has(`/var/lib/kvmctl/seeds/${TEST_INSTANCE}/web`));
  const medium = h.ports.seedMedia.media.get(SEED)!;
  assert.deepEqual(medium.files.map((f) => f.name), ["meta-data", "user-data"]);
  assert.match(medium.files[0]!.content, new RegExp(`instance-id: iid-${WEB}\\nlocal-hostname: web\\n`));
  assert.ok(medium.files[1]!.content.includes(AUTHORIZED));
  assert.ok(medium.files[1]!.content.includes("ssh_keys:"), "the pinned host key goes in through ssh_keys");

  const domain = h.hv.domain("web")!;
  assert.deepEqual(domain.config.seed, { device: "cdrom", target: "sda", bus: "scsi", file: SEED, readOnly: true, instanceId: `iid-${WEB}` });
  assert.deepEqual(domain.config.disks.map((d) => d.target), ["vda"], "the seed is not one of the manifest's disks");
  assert.equal(domain.state, "running");

  const status = h.status(KEY, outcome);
  const cloudInit = status.cloudInit as Record<string, string>;
  assert.deepEqual(Object.keys(cloudInit).sort(), ["format", "instanceId", "medium", "seedHash"]);
  assert.equal(cloudInit.instanceId, `iid-${WEB}`);
  assert.match(cloudInit.seedHash!, /^[0-9a-f]{16}$/);
  assert.match(h.recorder(KEY).events[0]!.message, /^create default\/web-root\.qcow2 \(\d+ bytes\); build the cloud-init seed \(iso on a cdrom, instance-id iid-[0-9a-f-]+\); define; start$/);

  // Converged: nothing is built or called again.
  h.hv.clearCalls();
  const again = await h.reconcile(KEY);
  assert.deepEqual(h.hv.calls, []);
  assert.equal(h.ports.seedMedia.builds.length, 1);
  assert.equal(h.ports.hostKeys.generated, 1);
  assert.deepEqual(h.status(KEY, again).cloudInit, cloudInit);
});

test("a restarted controller (no memory) finds the seed built: no rebuild, no new key", async () => {
  const h = await scene();
  h.apply("VirtualMachine", "web", web({ userData: "#cloud-config\nhostname: web\n" }));
  await h.converge(KEY);
  const restarted = new ControllerHarness(h.ports);
  restarted.snapshot = h.snapshot;
  h.hv.clearCalls();
  await restarted.converge(KEY);
  assert.deepEqual(h.hv.calls, []);
  assert.equal(h.ports.seedMedia.builds.length, 1);
  assert.equal(h.ports.hostKeys.generated, 1);
  // A medium that lost its record (or was replaced by hand) is rebuilt.
  h.ports.seedMedia.recorded.delete(SEED);
  await restarted.reconcile(KEY);
  assert.equal(h.ports.seedMedia.builds.length, 2);
  assert.deepEqual(h.hv.calls, [], "the definition did not change");
});

test("changed user-data: the seed is rebuilt, the running guest is not restarted and the message says cloud-init will not re-provision", async () => {
  const h = await scene();
  h.apply("VirtualMachine", "web", web({ userData: "#cloud-config\nwrite_files: [{path: /etc/a, content: one}]\n" }));
  await h.converge(KEY);
  h.hv.clearCalls();
  h.apply("VirtualMachine", "web", web({ userData: "#cloud-config\nwrite_files: [{path: /etc/a, content: two}]\n" }));
  const outcome = await h.reconcile(KEY);
  assert.equal(h.ports.seedMedia.builds.length, 2);
  assert.deepEqual(h.hv.calls, [`defineDomain ${WEB}`], "only the owner metadata's spec hash: the seed's path and instance-id are the same");
  assert.equal(h.hv.domain("web")?.state, "running");
  assert.equal(outcome.ready, true);
  assert.match(outcome.report!.message, /the cloud-init seed changed: the guest reads it at its next boot, but cloud-init re-runs its per-instance modules .* only for a new instance-id/);
  const restart = (h.status(KEY, outcome).conditions as { type: string }[]).find((c) => c.type === "RestartRequired");
  assert.equal(restart, undefined);
});

test("a new instanceId: seed rebuilt and the definition changed for the next boot, RestartRequired (allowRestart restarts it)", async () => {
  const h = await scene();
  h.apply("VirtualMachine", "web", web({}));
  await h.converge(KEY);
  h.apply("VirtualMachine", "web", web({ instanceId: "web-2" }));
  const outcome = await h.reconcile(KEY);
  assert.equal(h.ports.seedMedia.builds.length, 2);
  assert.match(h.ports.seedMedia.media.get(SEED)!.files[0]!.content, /instance-id: web-2\n/);
  assert.equal(h.hv.domain("web")?.config.seed?.instanceId, "web-2");
  assert.equal(h.hv.domain("web")?.running?.seed?.instanceId, `iid-${WEB}`, "the running guest booted with the old one");
  const restart = (h.status(KEY, outcome).conditions as { type: string; status: string; message: string }[]).find((c) => c.type === "RestartRequired");
  assert.equal(restart?.status, "True");
  assert.match(restart!.message, /changes need a restart: cloudInit\.instanceId/);

  h.apply("VirtualMachine", "web", web({ instanceId: "web-3" }, { allowRestart: true }));
  await h.converge(KEY, 10);
  assert.equal(h.hv.domain("web")?.running?.seed?.instanceId, "web-3", "restarted with the new seed");
});

test("seedMedium disk: a read-only virtio disk after the manifest's own (vfat)", async () => {
  const h = await scene();
  h.apply("VirtualMachine", "web", web({ seedMedium: "disk", seedFormat: "vfat" }, { disks: [{ name: "root", size: "1Gi" }, { name: "data", size: "1Gi" }] }));
  await h.converge(KEY);
  assert.deepEqual(h.ports.seedMedia.builds, [{ target: SEED, format: "vfat" }]);
  const config = h.hv.domain("web")!.config;
  assert.deepEqual(config.disks.map((d) => d.target), ["vda", "vdb"]);
  assert.deepEqual(config.seed, { device: "disk", target: "vdc", bus: "virtio", file: SEED, readOnly: true, instanceId: `iid-${WEB}` });
});

test("the seed CD-ROM's target follows the manifest's own SCSI/SATA disks (they keep theirs)", async () => {
  const h = await scene();
  h.apply("VirtualMachine", "web", web({}, { machine: "pc", disks: [{ name: "root", size: "1Gi", bus: "sata" }, { name: "data", size: "1Gi", bus: "scsi" }] }));
  await h.converge(KEY);
  assert.deepEqual(h.hv.domain("web")!.config.disks.map((d) => d.target), ["sda", "sdb"]);
  assert.deepEqual(h.hv.domain("web")!.config.seed?.target, "sdc");
  assert.deepEqual(h.hv.domain("web")!.config.seed?.bus, "scsi");
});

test("user-data from a secret file: in the seed only — not in status, events, logs, errors, libvirt's definition or calls", async () => {
  const h = await scene();
  const logs: string[] = [];
  h.logger = capturingLogger(logs);
  h.ports.secrets.files.set("/etc/kvmctl/web.user-data", `#cloud-config\npassword: ${MARKER}\n`);
  h.apply("VirtualMachine", "web", web({ userDataSecretFile: "/etc/kvmctl/web.user-data" }));
  const outcome = await h.reconcile(KEY);
  assert.ok(h.ports.seedMedia.media.get(SEED)!.files[1]!.content.includes(MARKER), "the guest gets it");
  const privateKey = (await h.ports.hostKeys.ensure("web")).privateKey;
  const privateBody = privateKey.split("\n")[1]!;
  assert.ok(h.ports.seedMedia.media.get(SEED)!.files[1]!.content.includes(privateBody), "and its pinned host key");

  // A changed secret file rebuilds the seed; a secret file that cannot be a seed is refused without quoting it.
  h.ports.secrets.files.set("/etc/kvmctl/web.user-data", `#cloud-config\npassword: ${MARKER}-2\n`);
  await h.reconcile(KEY);
  assert.equal(h.ports.seedMedia.builds.length, 2);
  h.ports.secrets.files.set("/etc/kvmctl/web.user-data", `#cloud-boothook\necho ${MARKER}\n`);
  const refused = await h.rejection(KEY);
  assert.ok(refused instanceof TerminalError && refused.reason === "InvalidCloudInit");
  assert.match(refused.message, /^spec\.cloudInit\.userDataSecretFile: user-data from \/etc\/kvmctl\/web\.user-data is neither #cloud-config YAML nor a script/);
  h.ports.secrets.files.set("/etc/kvmctl/web.user-data", `#cloud-config\nssh_keys: {x: ${MARKER}}\n`);
  const unpinning = await h.rejection(KEY);
  assert.match((unpinning as Error).message, /sets ssh_keys/);

  const everything = JSON.stringify([
    h.status(KEY, outcome),
    h.failureStatus(KEY, refused),
    h.failureStatus(KEY, unpinning),
    (refused as Error).message,
    (unpinning as Error).message,
    h.recorder(KEY).events,
    logs,
    h.hv.calls,
    h.hv.domain("web"),
    [...h.ports.seedMedia.recorded.values()],
  ]);
  assert.ok(!everything.includes(MARKER), "the user-data secret leaked");
  assert.ok(!everything.includes(privateBody), "the private host key leaked");
  assert.ok(!everything.includes("PRIVATE KEY"), "the private host key leaked");
});

test("an unreadable user-data file is waited for: no seed, no definition", async () => {
  const h = await scene();
  h.apply("VirtualMachine", "web", web({ userDataSecretFile: "/etc/kvmctl/missing" }));
  const error = await h.rejection(KEY);
  assert.ok(error instanceof DependencyNotReadyError);
  assert.match((error as Error).message, /cannot read the user-data file \/etc\/kvmctl\/missing/);
  assert.deepEqual(h.hv.calls, []);
  assert.equal(h.ports.seedMedia.builds.length, 0);
});

test("a foreign domain with the VM's name: no host key made, no seed built", async () => {
  const h = await scene();
  await h.hv.addForeignDomain("web");
  h.hv.clearCalls();
  h.apply("VirtualMachine", "web", web({}));
  const error = await h.rejection(KEY);
  assert.ok(error instanceof TerminalError);
  assert.equal(h.ports.hostKeys.generated, 0);
  assert.equal(h.ports.seedMedia.builds.length, 0);
});

test("delete with deletionPolicy Delete removes the seed and the pinned host key; Retain keeps the key", async () => {
  const h = await scene();
  h.apply("VirtualMachine", "web", web({}, { deletionPolicy: "Delete" }));
  await h.converge(KEY);
  h.remove(KEY);
  h.hv.clearCalls();
  await h.reconcile(KEY);
  assert.equal(h.hv.domain("web"), undefined);
  assert.equal(h.ports.seedMedia.media.size, 0);
  assert.deepEqual(h.ports.seedMedia.removedDirs, [`/var/lib/kvmctl/seeds/${TEST_INSTANCE}/web`]);
  assert.equal(h.ports.hostKeys.keys.size, 0);
  assert.match(h.recorder(KEY).deleted[0]!, /remove the pinned SSH host key \(deletionPolicy: Delete\); undefine .*; remove the cloud-init seed$/);

  const r = await scene();
  r.apply("VirtualMachine", "web", web({}));
  await r.converge(KEY);
  const pin = (await r.ports.hostKeys.ensure("web")).publicKey;
  r.remove(KEY);
  await r.reconcile(KEY);
  assert.equal(r.ports.seedMedia.media.size, 0, "the seed is derived: it goes whatever the policy");
  assert.equal(await r.ports.hostKeys.publicKey("web"), pin, "Retain: a retained disk's guest keeps its pinned key");
  // The manifest comes back: the same key is pinned again.
  r.apply("VirtualMachine", "web", web({}));
  await r.converge(KEY);
  assert.equal(r.ports.hostKeys.generated, 1);
});

test("cloudInit removed from the spec: the seed is detached and its directory removed; the key stays", async () => {
  const h = await scene();
  h.apply("VirtualMachine", "web", web({}, { runStrategy: "Halted" }));
  await h.converge(KEY);
  h.apply("VirtualMachine", "web", { memory: "1Gi", disks: [{ name: "root", size: "1Gi" }], runStrategy: "Halted" });
  const outcome = await h.reconcile(KEY);
  assert.equal(h.hv.domain("web")!.config.seed, undefined);
  assert.equal(h.ports.seedMedia.media.size, 0);
  assert.equal(h.status(KEY, outcome).cloudInit, undefined);
  assert.equal(h.ports.hostKeys.keys.size, 1);
});

test("kvmctl diff (the plan with the secrets port only): no key made or read, no seed built, the seed dir taken from the domain", async () => {
  const h = await scene();
  h.settings = { ...h.settings, seedDir: "/srv/seeds" };
  h.apply("VirtualMachine", "web", web({}));
  await h.converge(KEY);
  assert.equal(h.hv.domain("web")?.config.seed?.file, `/srv/seeds/${TEST_INSTANCE}/web/seed.img`);
  const { previewChanges } = await import("../../../src/controllers/registry.js");
  const stored = h.snapshot.objects.get(KEY)!;
  const target = { key: KEY, name: "web", object: stored.object as never, specHash: stored.specHash, file: undefined };
  const ctx = { ports: { secrets: h.ports.secrets, qemuConfig: h.ports.qemuConfig }, settings: { instance: TEST_INSTANCE, defaultDomainType: "kvm" as const, consoleLogDir: undefined }, memory: new Map(), now: 0 };
  const live = await h.hv.observe(0);
  assert.deepEqual(await previewChanges("VirtualMachine", ctx, target, live), [], "converged: the controller's --seed-dir is not drift");
  const changed = { ...target, object: { ...stored.object, spec: { ...(stored.object.spec as object), cloudInit: { ...(stored.object.spec as { cloudInit: object }).cloudInit, instanceId: "web-9" } } } as never };
  assert.deepEqual(await previewChanges("VirtualMachine", ctx, changed, live), ["redefine: cloudInit.instanceId changed", "changes need a restart: cloudInit.instanceId (set allowRestart: true, or restart the VM)"]);
  assert.equal(h.ports.hostKeys.generated, 1, "only the controller's reconcile made the key");
});

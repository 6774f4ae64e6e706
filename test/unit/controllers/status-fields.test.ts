// Every status field a reconcile writes is one the kind's status schema lists
// (kindInfo(kind).statusFields, src/api/kinds.ts): the statuses the manager would write
// (statusFromReport / statusFromFailure) after reconciles against the fake libvirt — converged,
// progressing and failed — are checked field by field, nested objects and array items included.
import assert from "node:assert/strict";
import { test } from "node:test";
import { statusFromDrift, statusWhileSuspended } from "../../../src/controllers/status.js";
import { z } from "zod";
import { kindInfo, type KindName } from "../../../src/api/index.js";
import { ControllerHarness } from "../helpers/fake-ports.js";

type Def = Record<string, unknown> & { type: string };
const def = (schema: unknown): Def => (schema as { _zod: { def: Def } })._zod.def;

/** Paths in `value` that `schema` does not list (wrappers peeled; objects, arrays and their items followed). */
export function unlistedFields(schema: unknown, value: unknown, path = "status"): string[] {
  const d = def(schema);
  switch (d.type) {
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "readonly":
    case "catch":
      return unlistedFields(d.innerType, value, path);
    case "pipe":
      return unlistedFields(d.in, value, path);
    case "array":
      return Array.isArray(value) ? value.flatMap((item, i) => unlistedFields(d.element, item, `${path}[${i}]`)) : [];
    case "object": {
      if (value === null || typeof value !== "object" || Array.isArray(value)) return [];
      const shape = d.shape as Record<string, unknown>;
      return Object.entries(value).flatMap(([key, v]) => (key in shape ? unlistedFields(shape[key], v, `${path}.${key}`) : [`${path}.${key}`]));
    }
    default:
      return [];
  }
}

/** Asserts that `status` holds only fields `kind`'s schema lists, with the types it gives them. */
function assertListed(kind: KindName, status: Record<string, unknown>, what: string): void {
  const fields = kindInfo(kind).statusFields;
  assert.deepEqual(unlistedFields(fields, status), [], `${kind} ${what}: fields the status schema does not list`);
  const parsed = fields.strict().safeParse(status);
  assert.ok(parsed.success, `${kind} ${what}: ${JSON.stringify(!parsed.success && parsed.error.issues)}`);
}

const LAN = { mode: "nat", ipv4: { address: "10.20.0.1", prefix: 24, dhcp: { start: "10.20.0.100", end: "10.20.0.200", hosts: [{ mac: "52:54:00:00:0a:01", ip: "10.20.0.10", name: "web" }] } } };

/** Pool and network converged; a VM that uses every status-bearing feature applied. */
async function scene(): Promise<ControllerHarness> {
  const h = new ControllerHarness();
  h.apply("StoragePool", "default", { path: "/var/lib/kvmctl/default" });
  h.apply("Network", "lan", LAN);
  await h.converge("StoragePool/default");
  await h.converge("Network/lan");
  h.ports.secrets.files.set("/etc/kvmctl/vnc", "pw");
  h.ports.secrets.files.set("/etc/kvmctl/Autounattend.xml", "<unattend/>");
  h.apply("VirtualMachine", "web", {
    runStrategy: "Once",
    disks: [{ name: "root", size: "1Gi" }],
    interfaces: [{ network: "lan" }, { user: { portForwards: [{ hostPort: 2222, guestPort: 22 }] } }],
    consoles: { serial: true, vnc: { passwordSecretFile: "/etc/kvmctl/vnc" } },
    cloudInit: { sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA test"] },
    unattend: { secretFile: "/etc/kvmctl/Autounattend.xml" },
  });
  return h;
}

test("the checker itself: a field the schema does not list is reported, at any depth", () => {
  const fields = kindInfo("Network").statusFields;
  const status = { uuid: "u", libvirtForwardMode: "open", leases: [{ mac: "m", ip: "i", lifetime: 3 }] };
  assert.deepEqual(unlistedFields(fields, status), ["status.leases[0].lifetime"]);
  assert.deepEqual(unlistedFields(fields.omit({ libvirtForwardMode: true }), status), ["status.libvirtForwardMode", "status.leases[0].lifetime"]);
  assert.equal(fields.omit({ libvirtForwardMode: true }).strict().safeParse({ libvirtForwardMode: "open" }).success, false);
});

test("VirtualMachine: every status it writes — created, converged, restart required, stopping, stopped, failed — is listed", async () => {
  const h = await scene();
  h.revision = "main@sha1:0123456789abcdef0123456789abcdef01234567+dirty"; // as in a git checkout
  const key = "VirtualMachine/web";
  const created = await h.reconcile(key);
  assertListed("VirtualMachine", h.status(key, created), "after create");
  const converged = await h.reconcile(key);
  const status = h.status(key, converged);
  assertListed("VirtualMachine", status, "converged");
  // Every fact a VM can report is in this status, so the check covers them all.
  const reported = Object.keys(status).sort();
  assert.deepEqual(reported, ["cloudInit", "conditions", "consoleLog", "disks", "domain", "instance", "interfaces", "lastAppliedRevision", "lastAttemptedRevision", "observedGeneration", "observedSpecHash", "phase", "ssh", "startedOnce", "unattend", "vnc"]);
  // Written by the manager itself: while suspended, and when drift is only reported.
  const suspended = statusWhileSuspended(h.snapshot.objects.get(key)!, { by: "kvmctl suspend", since: "2026-12-01T00:00:00Z" }, "i");
  assertListed("VirtualMachine", suspended, "suspended");
  assertListed("VirtualMachine", statusFromDrift(h.snapshot.objects.get(key)!, ["redefine: memory changed"], "i"), "drifted");
  reported.push("suspended");
  const unwritten = Object.keys(kindInfo("VirtualMachine").statusFields.shape).filter((f) => !reported.includes(f));
  assert.deepEqual(unwritten, [], "no listed field is left unexercised");
  h.writeStatus(key, status);

  h.apply("VirtualMachine", "web", { ...(h.snapshot.objects.get(key)!.raw.spec as object), cpus: 2 });
  assertListed("VirtualMachine", h.status(key, await h.reconcile(key)), "restart required");

  h.hv.acpiIgnored = true;
  h.apply("VirtualMachine", "web", { ...(h.snapshot.objects.get(key)!.raw.spec as object), runStrategy: "Halted", terminationGracePeriodSeconds: 5 });
  assertListed("VirtualMachine", h.status(key, await h.reconcile(key)), "stopping");
  await h.clock.advance(5_000);
  assertListed("VirtualMachine", h.status(key, await h.reconcile(key)), "forced off");
  const stopped = h.status(key, await h.reconcile(key));
  assert.equal(stopped.phase, "Stopped");
  assertListed("VirtualMachine", stopped, "stopped");

  h.writeStatus(key, stopped);
  h.apply("VirtualMachine", "web", { disks: [{ name: "root", pool: "missing", size: "1Gi" }] }, { status: stopped });
  const waiting = await h.attempt(key);
  assertListed("VirtualMachine", h.failureStatus(key, waiting.error), "waiting for a dependency");
  const sha256 = "ab".repeat(32);
  h.apply("VirtualMachine", "web", { disks: [{ name: "root", from: { url: "https://example.org/a.img", sha256 } }] }, { status: stopped });
  await h.reconcile(key);
  h.ports.downloads.progress(sha256, 1024, 4096);
  assertListed("VirtualMachine", h.status(key, await h.reconcile(key)), "downloading a base image");
  h.ports.downloads.corrupt(sha256, "cd".repeat(32));
  const terminal = await h.attempt(key);
  assertListed("VirtualMachine", h.failureStatus(key, terminal.error), "terminal");
});

test("Network: every status it writes — created, converged with leases, restart required, firewall failed, user mode, not owned — is listed", async () => {
  const h = await scene();
  await h.converge("VirtualMachine/web");
  const key = "Network/lan";
  const mac = h.hv.domain("web")!.running!.interfaces[0]!.mac!;
  h.hv.setLeases("lan", [{ mac, ip: "10.20.0.150", hostname: "web", expiry: "2026-01-01 01:00:00" }]);
  const status = h.status(key, await h.reconcile(key));
  assertListed("Network", status, "converged with leases");
  assert.deepEqual(Object.keys(status).sort(), ["active", "bridge", "conditions", "firewall", "instance", "leases", "libvirtForwardMode", "observedGeneration", "observedSpecHash", "uuid"]);
  h.writeStatus(key, status);

  h.apply("Network", "lan", { ...LAN, ipv4: { ...LAN.ipv4, prefix: 16 } }, { status });
  assertListed("Network", h.status(key, await h.reconcile(key)), "restart required while a guest uses it");
  h.firewallState = { ...h.firewallState, error: "nft failed" };
  assertListed("Network", h.status(key, await h.reconcile(key)), "firewall failed");

  h.apply("Network", "passt", { mode: "user" });
  assertListed("Network", h.status("Network/passt", await h.reconcile("Network/passt")), "mode user");

  await h.hv.addForeignNetwork("theirs", { address: "192.168.9.1" });
  h.apply("Network", "theirs", LAN);
  const notOwned = await h.attempt("Network/theirs");
  assertListed("Network", h.failureStatus("Network/theirs", notOwned.error), "not owned");
});

test("StoragePool: every status it writes — created, converged, stopped by hand, not owned — is listed", async () => {
  const h = new ControllerHarness();
  h.revision = "main@sha1:0123456789abcdef0123456789abcdef01234567";
  const key = "StoragePool/fast";
  h.apply("StoragePool", "fast", { path: "/var/lib/kvmctl/fast" });
  assertListed("StoragePool", h.status(key, await h.reconcile(key)), "after create");
  h.hv.addVolume("fast", "a.qcow2", 1024);
  const status = h.status(key, await h.reconcile(key));
  assertListed("StoragePool", status, "converged");
  assert.deepEqual(Object.keys(status).sort(), ["allocation", "available", "capacity", "conditions", "instance", "lastAppliedRevision", "lastAttemptedRevision", "observedGeneration", "observedSpecHash", "path", "phase", "state", "uuid", "volumes"]);
  h.writeStatus(key, status);
  h.hv.failNext("startPool", new Error("cannot open directory"));
  await h.hv.byHand((hv) => hv.destroyPool(h.hv.uuidOf("pool", "fast")!));
  const failed = await h.attempt(key);
  assertListed("StoragePool", h.failureStatus(key, failed.error), "start failed");

  await h.hv.addForeignPool("theirs");
  h.apply("StoragePool", "theirs", { path: "/srv/theirs" });
  const notOwned = await h.attempt("StoragePool/theirs");
  assertListed("StoragePool", h.failureStatus("StoragePool/theirs", notOwned.error), "not owned");
});

test("a status field only the report knows about would fail the check (the schema is the contract)", async () => {
  const h = new ControllerHarness();
  h.apply("StoragePool", "fast", { path: "/var/lib/kvmctl/fast" });
  const outcome = await h.reconcile("StoragePool/fast");
  const extra = { ...outcome, report: { ...outcome.report!, facts: { ...outcome.report!.facts, mountedAt: "/mnt" } } };
  assert.deepEqual(unlistedFields(kindInfo("StoragePool").statusFields, h.status("StoragePool/fast", extra)), ["status.mountedAt"]);
  assert.equal(z.strictObject(kindInfo("StoragePool").statusFields.shape).safeParse(h.status("StoragePool/fast", extra)).success, false);
});

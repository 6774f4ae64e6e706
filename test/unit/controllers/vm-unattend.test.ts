// spec.unattend (Windows unattend media, seed 004) through the VirtualMachine reconciler, on the
// fakes: the medium built once before the definition that attaches it (a SATA CD-ROM on q35,
// a floppy on fdc on pc), rebuilt only when the answer file changes (also across a controller
// restart), floppy refused on q35, ejected after the first boot (definition and host file,
// no restart), removed with spec.unattend — and the answer file in no status, event, log,
// error, libvirt call, definition or `kvmctl diff` output.
import assert from "node:assert/strict";
import { test } from "node:test";
import { XMLParser } from "fast-xml-parser";
import { virtualMachineController } from "../../../src/controllers/virtualmachine/controller.js";
import { TerminalError, type Logger } from "../../../src/runtime/index.js";
import { ControllerHarness, TEST_INSTANCE } from "../helpers/fake-ports.js";

const KEY = "VirtualMachine/win";
const VM_DIR = `/var/lib/kvmctl/seeds/${TEST_INSTANCE}/win`;
const MEDIUM = `${VM_DIR}/unattend/unattend.img`;
const SECRET = "/etc/kvmctl/win/Autounattend.xml";
const MARKER = "UNATTEND-MARKER-SECRET-5d21e8";
const ANSWERS = `<?xml version="1.0" encoding="utf-8"?>\n<unattend xmlns="urn:schemas-microsoft-com:unattend"><!-- ${MARKER} --><Password><Value>${MARKER}</Value></Password></unattend>\n`;

async function scene(): Promise<{ h: ControllerHarness; xmls: string[]; lines: string[] }> {
  const h = new ControllerHarness();
  h.apply("StoragePool", "default", { path: "/var/lib/kvmctl/default" });
  await h.converge("StoragePool/default");
  h.hv.clearCalls();
  h.ports.secrets.files.set(SECRET, ANSWERS);
  const xmls: string[] = [];
  const define = h.hv.defineDomain.bind(h.hv);
  h.hv.defineDomain = async (xml: string) => {
    xmls.push(xml);
    return define(xml);
  };
  const lines: string[] = [];
  const log = (fields: unknown, message?: string) => void lines.push(JSON.stringify([fields, message]));
  const logger: Logger = { info: log, warn: log, error: log, debug: log, child: () => logger } as Logger;
  h.logger = logger;
  return { h, xmls, lines };
}

function win(unattend: Record<string, unknown>, spec: Record<string, unknown> = {}): Record<string, unknown> {
  return { memory: "2Gi", disks: [{ name: "root", size: "40Gi" }], unattend: { secretFile: SECRET, ...unattend }, ...spec };
}

type Node = Record<string, unknown>;
/** The <disk> elements of a definition, parsed with fast-xml-parser. */
function disksOf(xml: string): Node[] {
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "@", isArray: (name) => name === "disk" || name === "controller" }).parse(xml) as { domain: { devices: { disk: Node[]; controller?: Node[] } } };
  return doc.domain.devices.disk;
}

function unattendDisk(xml: string): Node | undefined {
  return disksOf(xml).find((d) => (d.alias as Node | undefined)?.["@name"] === "ua-kvmctl-unattend");
}

test("cdrom (default) on q35: built once before the definition, attached read-only as a SATA CD-ROM after the disks; converged, nothing again", async () => {
  const { h, xmls } = await scene();
  h.apply("VirtualMachine", "win", win({}));
  const outcome = await h.reconcile(KEY);
  assert.equal(outcome.ready, true);
  assert.deepEqual(h.ports.unattendMedia.builds, [{ path: MEDIUM, medium: "cdrom" }]);
  assert.equal(h.ports.unattendMedia.media.get(MEDIUM)!.content.toString("utf8"), ANSWERS, "the exact bytes");

  const disk = unattendDisk(xmls.at(-1)!)!;
  assert.equal(disk["@type"], "file");
  assert.equal(disk["@device"], "cdrom");
  assert.deepEqual(disk.source, { "@file": MEDIUM });
  assert.deepEqual(disk.target, { "@dev": "sda", "@bus": "sata" });
  assert.equal(disk.readonly, "");
  assert.deepEqual(disk.driver, { "@name": "qemu", "@type": "raw" });
  assert.equal(disksOf(xmls.at(-1)!).length, 2, "the root disk and the medium");

  const events = h.recorder(KEY).events.map((e) => e.message);
  assert.match(events[0]!, /build the unattend medium \(Autounattend\.xml on a cdrom\); define; start$/);
  assert.deepEqual(h.status(KEY, outcome).unattend, { medium: "cdrom", attached: true });
  assert.deepEqual(h.hv.domain("win")!.config.unattend, { device: "cdrom", target: "sda", bus: "sata", file: MEDIUM, readOnly: true });

  h.hv.clearCalls();
  await h.reconcile(KEY);
  assert.deepEqual(h.hv.calls, []);
  assert.equal(h.ports.unattendMedia.builds.length, 1);
});

test("rebuilt only when the answer file's content changes, also after a controller restart; the running guest is told it has the old one", async () => {
  const { h } = await scene();
  h.apply("VirtualMachine", "win", win({}));
  await h.converge(KEY);
  const restarted = new ControllerHarness(h.ports);
  restarted.snapshot = h.snapshot;
  await restarted.converge(KEY);
  assert.equal(h.ports.unattendMedia.builds.length, 1, "same content, new controller: no rebuild");

  h.ports.secrets.files.set(SECRET, ANSWERS.replace("utf-8", "UTF-8"));
  const outcome = await h.reconcile(KEY);
  assert.equal(h.ports.unattendMedia.builds.length, 2);
  assert.match(h.recorder(KEY).events.at(-1)!.message, /^rebuild the unattend medium \(Autounattend\.xml on a cdrom\)$/);
  assert.match(outcome.report!.message, /the unattend medium changed: the running guest has the old one until its next boot/);
  assert.equal(h.hv.domain("win")!.state, "running", "no restart for a new answer file");
  await h.reconcile(KEY);
  assert.equal(h.ports.unattendMedia.builds.length, 2);
});

test("floppy on pc: a FAT12 floppy on the fdc bus (fda), after the disks and the cloud-init seed", async () => {
  const { h, xmls } = await scene();
  h.apply("VirtualMachine", "win", win({ medium: "floppy" }, { machine: "pc", cloudInit: {} }));
  await h.converge(KEY);
  assert.deepEqual(h.ports.unattendMedia.builds, [{ path: MEDIUM, medium: "floppy" }]);
  const disks = disksOf(xmls.at(-1)!);
  assert.deepEqual(disks.map((d) => [d["@device"], (d.target as Node)["@dev"], (d.target as Node)["@bus"]]), [
    ["disk", "vda", "virtio"],
    ["cdrom", "sda", "scsi"],
    ["floppy", "fda", "fdc"],
  ]);
  assert.deepEqual(unattendDisk(xmls.at(-1)!)!.source, { "@file": MEDIUM });
});

test("cdrom on pc: IDE (Windows Setup has no virtio-scsi driver)", async () => {
  const { h, xmls } = await scene();
  h.apply("VirtualMachine", "win", win({}, { machine: "pc-i440fx-9.2" }));
  await h.converge(KEY);
  assert.deepEqual(unattendDisk(xmls.at(-1)!)!.target, { "@dev": "hda", "@bus": "ide" });
});

test("floppy on q35 is refused with a condition that says q35 has no floppy controller; nothing read, built or defined", async () => {
  const { h } = await scene();
  for (const machine of ["q35", "pc-q35-9.2"]) {
    h.apply("VirtualMachine", "win", win({ medium: "floppy" }, { machine }));
    const error = await h.rejection(KEY);
    assert.ok(error instanceof TerminalError);
    const status = h.failureStatus(KEY, error);
    const ready = (status.conditions as { type: string; reason: string; message: string }[]).find((c) => c.type === "Ready")!;
    assert.equal(ready.reason, "FloppyUnsupported");
    assert.match(ready.message, /spec\.unattend\.medium floppy needs a machine with a floppy controller, and .*q35.* has none: use medium: cdrom, or machine: pc/);
    assert.equal(status.phase, "Failed");
  }
  assert.equal(h.ports.unattendMedia.builds.length, 0);
  assert.equal(h.ports.unattendMedia.keys.size, 0, "no digest key made");
  assert.equal(h.hv.domain("win"), undefined);
});

test("ejectAfterFirstBoot: once the domain has run, the medium leaves the definition and the host, without a restart; not rebuilt after", async () => {
  const { h, xmls } = await scene();
  h.apply("VirtualMachine", "win", win({ ejectAfterFirstBoot: true }));
  const first = await h.reconcile(KEY);
  assert.ok(unattendDisk(xmls.at(-1)!), "the first boot has it");
  assert.deepEqual(h.status(KEY, first).unattend, { medium: "cdrom", attached: true });
  assert.equal(h.hv.domain("win")!.state, "running");

  const second = await h.reconcile(KEY);
  assert.equal(unattendDisk(xmls.at(-1)!), undefined, "redefined without it");
  assert.equal(h.hv.domain("win")!.config.unattend, undefined);
  assert.deepEqual(h.ports.unattendMedia.removed, [MEDIUM]);
  assert.equal(h.ports.unattendMedia.media.size, 0);
  assert.equal(h.hv.domain("win")!.state, "running", "not stopped or restarted");
  assert.equal(h.hv.calls.some((c) => c.startsWith("shutdownDomain") || c.startsWith("destroyDomain")), false);
  assert.equal(second.ready, true);
  assert.equal(second.report!.reason, "Succeeded", "no RestartRequired for the ejected medium");
  assert.match(h.recorder(KEY).events.at(-1)!.message, /redefine: unattend changed; remove the unattend medium from the host \(ejectAfterFirstBoot/);
  const status = h.status(KEY, second);
  assert.deepEqual(status.unattend, { medium: "cdrom", attached: false });

  // Converged; a controller restart (status says startedOnce) does not bring it back, nor does a new answer file.
  h.hv.clearCalls();
  h.writeStatus(KEY, status);
  h.ports.secrets.files.set(SECRET, `${ANSWERS}<!-- changed -->`);
  const restarted = new ControllerHarness(h.ports);
  restarted.snapshot = h.snapshot;
  await restarted.reconcile(KEY);
  h.hv.guestStopped("win", "shutdown");
  await restarted.reconcile(KEY);
  assert.equal(h.ports.unattendMedia.builds.length, 1);
  assert.equal(h.hv.domain("win")!.config.unattend, undefined);
});

test("spec.unattend removed: the medium goes from the definition and the host (the cloud-init seed stays)", async () => {
  const { h } = await scene();
  h.apply("VirtualMachine", "win", win({}, { cloudInit: {} }));
  await h.converge(KEY);
  h.apply("VirtualMachine", "win", { memory: "2Gi", disks: [{ name: "root", size: "40Gi" }], cloudInit: {}, allowRestart: true });
  await h.converge(KEY);
  assert.equal(h.ports.unattendMedia.media.size, 0);
  assert.equal(h.ports.unattendMedia.keys.size, 0);
  assert.equal(h.ports.seedMedia.media.size, 1);
  assert.equal(h.hv.domain("win")!.config.unattend, undefined);
});

test("an unreadable answer file is waited for; the message names the file only", async () => {
  const { h } = await scene();
  h.ports.secrets.files.delete(SECRET);
  h.apply("VirtualMachine", "win", win({}));
  const error = (await h.rejection(KEY)) as Error;
  assert.match(error.message, new RegExp(`cannot read the unattend file ${SECRET}`));
  h.ports.secrets.files.set(SECRET, "");
  assert.match(((await h.rejection(KEY)) as Error).message, /is empty/);
});

test("the host-path policy sees spec.unattend.secretFile as a secret", () => {
  const { h } = { h: new ControllerHarness() };
  const stored = h.apply("VirtualMachine", "win", win({}));
  assert.deepEqual(
    virtualMachineController.hostPaths!(stored.object as never).filter((r) => r.field.startsWith("spec.unattend")),
    [{ use: "secret", field: "spec.unattend.secretFile", path: SECRET }],
  );
});

test("the answer file is in no status, event, log line, error, libvirt call, definition or kvmctl diff output", async () => {
  const { h, xmls, lines } = await scene();
  h.apply("VirtualMachine", "win", win({ ejectAfterFirstBoot: true }, { machine: "pc" }));
  const seen: string[] = [];
  const outcome = await h.reconcile(KEY);
  seen.push(JSON.stringify(h.status(KEY, outcome)));
  h.ports.unattendMedia.failNext = "mkfs.vfat exited 1 building the unattend medium";
  h.ports.secrets.files.set(SECRET, ANSWERS + " ");
  h.apply("VirtualMachine", "win", win({ medium: "floppy" }, { machine: "pc" }));
  const error = await h.rejection(KEY);
  seen.push(String(error), JSON.stringify(h.failureStatus(KEY, error)));
  const again = await h.reconcile(KEY);
  seen.push(JSON.stringify(h.status(KEY, again)));

  const { previewChanges } = await import("../../../src/controllers/registry.js");
  const stored = h.snapshot.objects.get(KEY)!;
  const target = { key: KEY, name: "win", object: stored.object as never, specHash: stored.specHash, file: undefined };
  const ctx = { ports: { secrets: h.ports.secrets, qemuConfig: h.ports.qemuConfig }, settings: { instance: TEST_INSTANCE, defaultDomainType: "kvm" as const, consoleLogDir: undefined }, memory: new Map(), now: 0 };
  const live = await h.hv.observe(0);
  seen.push(...(await previewChanges("VirtualMachine", ctx, target, live)));
  const changed = { ...target, object: { ...stored.object, spec: { ...(stored.object.spec as object), cpus: 4 } } as never };
  const diff = await previewChanges("VirtualMachine", ctx, changed, live);
  assert.ok(diff.length > 0);
  seen.push(...diff);

  seen.push(...h.recorder(KEY).events.map((e) => JSON.stringify(e)), ...lines, ...h.hv.calls, ...xmls, JSON.stringify(h.hv.domain("win")));
  for (const text of seen) assert.ok(!text.includes(MARKER), `the answer file leaked: ${text.slice(0, 300)}`);
  assert.ok(lines.length > 0 && xmls.length > 0);
});

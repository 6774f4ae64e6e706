// The cloud-init seed in the domain XML, checked by structure (fast-xml-parser), not by text:
// a read-only raw <disk type="file"> — a CD-ROM on a virtio-scsi controller, or a virtio disk —
// with a target after the manifest's disks, kvmctl's alias, and the instance-id in kvmctl's
// metadata; parsed back into facts and compared (a new instance-id needs a boot).
import assert from "node:assert/strict";
import test from "node:test";
import { XMLParser } from "fast-xml-parser";
import { virtualMachineSpec } from "../../../src/api/virtualmachine.js";
import { buildDomainXml, compareDomain, parseDomainXml, type ResolvedDisk, type SeedAttachment } from "../../../src/libvirt/index.js";

const owner = { manifest: "VirtualMachine/web", file: "vms.yaml", specHash: "h" };
const root: ResolvedDisk = { name: "root", pool: "default", volume: "web-root.qcow2", format: "qcow2", bus: "virtio", readOnly: false };
const sata: ResolvedDisk = { name: "data", pool: "default", volume: "web-data.qcow2", format: "qcow2", bus: "sata", readOnly: false };
const seed: SeedAttachment = { file: "/var/lib/kvmctl/seeds/t1/web/seed.img", device: "cdrom", instanceId: "iid-1" };

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "@", isArray: (name) => name === "disk" });

function xml(spec: Record<string, unknown>, disks: ResolvedDisk[], attachment: SeedAttachment | null = seed): string {
  return buildDomainXml({ name: "web", spec: virtualMachineSpec.parse({ memory: "256Mi", ...spec }), domainType: "qemu", disks, owner, seed: attachment ?? undefined });
}

function disksOf(text: string): Record<string, unknown>[] {
  return parser.parse(text).domain.devices.disk;
}

test("the seed is a read-only SCSI CD-ROM on a virtio-scsi controller, its target after the manifest's sd* disks, with kvmctl's alias", () => {
  const text = xml({}, [root, sata]);
  const disks = disksOf(text);
  assert.equal(disks.length, 3);
  assert.deepEqual(disks[2], {
    "@type": "file",
    "@device": "cdrom",
    driver: { "@name": "qemu", "@type": "raw" },
    source: { "@file": "/var/lib/kvmctl/seeds/t1/web/seed.img" },
    target: { "@dev": "sdb", "@bus": "scsi" },
    readonly: "",
    alias: { "@name": "ua-kvmctl-seed" },
  });
  assert.deepEqual(disks.map((d) => (d.target as Record<string, string>)["@dev"]), ["vda", "sda", "sdb"], "no target collides");
  assert.deepEqual(parser.parse(text).domain.devices.controller, { "@type": "scsi", "@index": "0", "@model": "virtio-scsi" }, "not lsilogic: cloud kernels lack it (and AHCI)");
  const owned = parser.parse(text).domain.metadata["kvmctl:owner"];
  assert.deepEqual(owned["kvmctl:cloudInit"], { "@instanceId": "iid-1" });
});

test("pc: the CD-ROM on SCSI too; seedMedium disk: a read-only virtio disk after vda, no controller added", () => {
  assert.deepEqual(disksOf(xml({ machine: "pc" }, [root]))[1]!.target, { "@dev": "sda", "@bus": "scsi" });
  const text = xml({}, [root], { ...seed, device: "disk" });
  assert.equal(parser.parse(text).domain.devices.controller, undefined);
  const disk = disksOf(text)[1]!;
  assert.equal(disk["@device"], "disk");
  assert.deepEqual(disk.target, { "@dev": "vdb", "@bus": "virtio" });
  assert.equal(disk.readonly, "");
});

test("no seed: no extra <disk>, no cloudInit metadata", () => {
  const text = xml({}, [root], null);
  assert.equal(disksOf(text).length, 1);
  assert.equal(parser.parse(text).domain.metadata["kvmctl:owner"]["kvmctl:cloudInit"], undefined);
});

test("facts: the seed is apart from the disks; a changed instance-id or medium is drift that needs a boot", () => {
  const facts = parseDomainXml(xml({}, [root]));
  assert.deepEqual(facts.disks.map((d) => d.target), ["vda"]);
  assert.deepEqual(facts.seed, { device: "cdrom", target: "sda", bus: "scsi", file: seed.file, readOnly: true, instanceId: "iid-1" });
  assert.deepEqual(compareDomain(facts, parseDomainXml(xml({}, [root]))), []);
  const bumped = compareDomain(parseDomainXml(xml({}, [root], { ...seed, instanceId: "iid-2" })), facts);
  assert.deepEqual(bumped.map((d) => [d.field, d.needsRestart]), [["cloudInit.instanceId", true]]);
  const detached = compareDomain(parseDomainXml(xml({}, [root], null)), facts);
  assert.deepEqual(detached.map((d) => d.field), ["cloudInit.seed", "cloudInit.instanceId"]);
});

// The two domains of seed 002, written as kvmctl manifests, build XML equivalent to the
// seed's hand-written XML (compared as parsed facts, field by field).
import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import { parse } from "yaml";
import { validateDocument, type VirtualMachine } from "../../../src/api/index.js";
import { buildDomainXml, compareDomain, parseDomainXml } from "../../../src/libvirt/index.js";

// Copied verbatim from ../shared/seeds/002_e9554abf16550f11.txt (CI has only this repository).
const seedDomains = ["domain-1.xml", "domain-2.xml"].map((f) => fs.readFileSync(`test/fixtures/seed-002/${f}`, "utf8"));

function example(name: string): VirtualMachine {
  const docs = fs.readFileSync("examples/seed-002/vms.yaml", "utf8").split(/^---$/m).map((d) => parse(d));
  const result = validateDocument(docs.find((d) => d.metadata.name === name));
  assert.ok(result.ok);
  return result.object as VirtualMachine;
}

function build(vm: VirtualMachine): string {
  const disks = vm.spec.disks.map((d) => ({ name: d.name, pool: d.pool, volume: d.volume!, format: d.format!, bus: d.bus, cache: d.cache, io: d.io, readOnly: d.readOnly }));
  return buildDomainXml({ name: vm.metadata.name, spec: vm.spec, domainType: "kvm", disks, owner: { manifest: `VirtualMachine/${vm.metadata.name}`, file: "vms.yaml", specHash: "x" } });
}

test("the seed holds the two domains", () => assert.equal(seedDomains.length, 2));

for (const [index, name, volume, port] of [[0, "vmname1", "vmname1.qcow2", 5001], [1, "vmname2", "vmname2.qcow2", 5002]] as const) {
  test(`${name}: kvmctl's XML matches the seed's`, () => {
    // The seed reuses vmname1's name and volume in its BIOS example; our example names the second VM vmname2.
    const seedXml = seedDomains[index]!.replace(/vmname1/g, name).replace("vmname1.qcow2", volume).replace(/start='500\d'/, `start='${port}'`);
    const theirs = parseDomainXml(seedXml);
    const ours = parseDomainXml(build(example(name)));
    const differences = compareDomain(theirs, ours).filter((d) => !(d.field === "consoles.serial" || d.field === "rng"));
    assert.deepEqual(differences, []);
    assert.equal(ours.firmware, index === 0 ? "uefi-secure" : "bios");
    assert.equal(ours.memoryBytes, 6 * 1024 ** 3);
    assert.deepEqual(ours.interfaces[0]!.portForwards, [{ protocol: "tcp", address: "0.0.0.0", hostPort: port, guestPort: 22 }]);
    assert.deepEqual(ours.interfaces[0]!.ip, { address: "100.80.60.1", prefix: 24 });
    assert.equal(ours.interfaces[0]!.backend, "passt");
  });
}

test("user values are escaped, never spliced into XML", () => {
  const vm = example("vmname1");
  const xml = buildDomainXml({ name: "vmname1", spec: { ...vm.spec, boot: { kernel: "/k<&\"'>", cmdline: "a</cmdline><evil/>" } }, domainType: "kvm", disks: [], owner: { manifest: "VirtualMachine/x<y>", file: "a&b.yaml", specHash: "h" } });
  assert.ok(!xml.includes("<evil/>"));
  const facts = parseDomainXml(xml);
  assert.equal(facts.cmdline, "a</cmdline><evil/>");
  assert.equal(facts.owner?.manifest, "VirtualMachine/x<y>");
});

test("libvirt's own additions are not drift", () => {
  const vm = example("vmname1");
  const desired = parseDomainXml(build(vm));
  const live = build(vm)
    .replace("<type arch=\"x86_64\" machine=\"q35\">", "<type arch=\"x86_64\" machine=\"pc-q35-10.0\">")
    .replace("<devices>", "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator><controller type='pci' index='0' model='pcie-root'/>")
    .replace("<interface type=\"user\">", "<interface type=\"user\"><mac address='52:54:00:12:34:56'/><alias name='net0'/><address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>");
  assert.deepEqual(compareDomain(desired, parseDomainXml(live)), []);
  const changed = parseDomainXml(build({ ...vm, spec: { ...vm.spec, cpus: 4 } }));
  assert.deepEqual(compareDomain(changed, desired).map((d) => [d.field, d.needsRestart]), [["cpus", true]]);
});

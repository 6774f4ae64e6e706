// The VNC password: compared through a digest, never carried in facts or diffs.
import assert from "node:assert/strict";
import test from "node:test";
import { virtualMachineSpec } from "../../../src/api/virtualmachine.js";
import { buildDomainXml, compareDomain, parseDomainXml } from "../../../src/libvirt/index.js";

const spec = virtualMachineSpec.parse({ memory: "256Mi", consoles: { vnc: { passwordSecretFile: "/etc/kvmctl/vnc" } } });
const facts = (vncPassword?: string) =>
  parseDomainXml(buildDomainXml({ name: "web1", spec, domainType: "qemu", disks: [], vncPassword, owner: { manifest: "VirtualMachine/web1", file: "vms.yaml", specHash: "h" } }));

test("a changed VNC password is drift; the password itself is in no fact and no difference", () => {
  const before = facts("old-pw");
  const after = facts("new-pw");
  assert.deepEqual(compareDomain(before, facts("old-pw")), [], "the same password: no drift");
  const diffs = compareDomain(after, before);
  assert.deepEqual(diffs.map((d) => d.field), ["consoles.vnc"]);
  const shown = JSON.stringify([before, after, diffs]);
  assert.doesNotMatch(shown, /old-pw|new-pw/);
  assert.equal(compareDomain(facts(undefined), before).length, 1, "a password removed is drift too");
});

test("libvirt's dumpxml without --security-info hides the password: that reads as no password", () => {
  const xml = buildDomainXml({ name: "web1", spec, domainType: "qemu", disks: [], vncPassword: "pw", owner: { manifest: "VirtualMachine/web1", file: "vms.yaml", specHash: "h" } });
  const hidden = parseDomainXml(xml.replace(/ passwd="pw"| passwd='pw'/, ""));
  assert.equal(hidden.vnc?.passwordDigest, undefined);
  assert.ok(facts("pw").vnc?.passwordDigest, "with the password, a digest");
});

// Pool and volume XML: pure.
import assert from "node:assert/strict";
import test from "node:test";
import { storagePoolSpec } from "../../../src/api/storagepool.js";
import { buildPoolXml, buildVolumeXml, comparePool, parsePoolXml, parseVolumeXml, poolUuid } from "../../../src/libvirt/index.js";

test("a volume in a dir pool has its format and grows on demand (allocation 0)", () => {
  const xml = buildVolumeXml("web-root.qcow2", 2 * 1024 ** 3, "qcow2");
  assert.deepEqual(parseVolumeXml(xml), { name: "web-root.qcow2", path: undefined, capacity: 2 * 1024 ** 3, allocation: 0, format: "qcow2" });
});

test("a volume in a logical pool is a plain, fully allocated LV with an empty <target/>", () => {
  const xml = buildVolumeXml("web-data", 1024 ** 3, "raw", "logical");
  assert.match(xml, /<target\/>|<target><\/target>/, "storagevol.rng requires <target>; a format would be refused");
  const facts = parseVolumeXml(xml);
  assert.equal(facts.format, undefined);
  assert.equal(facts.allocation, 1024 ** 3, "a smaller allocation makes libvirt create a thin snapshot LV");
});

test("volume names are escaped, never spliced into the XML", () => {
  const xml = buildVolumeXml("a<b>&c", 1, "raw");
  assert.equal(parseVolumeXml(xml).name, "a<b>&c");
});

test("pool XML: owned UUID, dir target, logical source; compare reports only what the manifest sets", () => {
  const dir = parsePoolXml(buildPoolXml("images", storagePoolSpec.parse({ type: "dir", path: "/srv/images" })));
  assert.deepEqual([dir.uuid, dir.type, dir.targetPath], [poolUuid("images"), "dir", "/srv/images"]);
  const lvmSpec = storagePoolSpec.parse({ type: "logical", volumeGroup: "vg0", sourceDevices: ["/dev/loop7"] });
  const lvm = parsePoolXml(buildPoolXml("fast", lvmSpec));
  assert.deepEqual([lvm.type, lvm.volumeGroup, lvm.targetPath], ["logical", "vg0", "/dev/vg0"]);
  assert.deepEqual(comparePool("fast", lvmSpec, { ...lvm, capacity: 5, allocation: 1, available: 4 }), [], "sizes libvirt adds are not drift");
  assert.deepEqual(comparePool("fast", lvmSpec, { ...lvm, volumeGroup: "vg1", targetPath: "/dev/vg1" }), ["target path: /dev/vg1 → /dev/vg0", "volume group: vg1 → vg0"]);
});

// The host-path policy (src/controllers/host-path-policy.ts): whoever writes manifests cannot
// make the controller use host paths outside the directories its own flags allow. The pure
// rules, then the manager over a real manifest directory and fake ports: a refused object is
// Stalled (HostPathNotAllowed) naming its field, and libvirt hears nothing about it.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { DEFAULT_HOST_PATHS, hostPathPolicy, hostPathRefusals, HostPathFlagError, isWithin } from "../../../src/controllers/host-path-policy.js";
import { ManifestStore } from "../../../src/store/index.js";
import { tempDir } from "../store/helpers.js";
import { fakePorts, testManager } from "../helpers/fake-ports.js";

test("within: the directory itself and what is under it, never a sibling with the same prefix", () => {
  assert.ok(isWithin("/var/lib/kvmctl", "/var/lib/kvmctl"));
  assert.ok(isWithin("/var/lib/kvmctl/images/a.qcow2", "/var/lib/kvmctl"));
  assert.ok(!isWithin("/var/lib/kvmctl-evil/a.qcow2", "/var/lib/kvmctl"));
  assert.ok(!isWithin("/var/lib", "/var/lib/kvmctl"));
  assert.ok(!isWithin("/etc/shadow", "/var/lib/kvmctl"));
});

test("the defaults reach none of /, /etc, /dev, /proc, /sys, /boot, /root, /run, and no device", () => {
  for (const [use, roots] of Object.entries(DEFAULT_HOST_PATHS)) {
    for (const sensitive of ["/", "/etc/shadow", "/dev/sda", "/proc/self/environ", "/sys/kernel", "/boot/vmlinuz", "/root/.ssh/id_ed25519", "/run/secrets/x"]) {
      assert.ok(!roots.some((root) => isWithin(sensitive, root)), `${use} reaches ${sensitive}`);
    }
  }
  assert.deepEqual(DEFAULT_HOST_PATHS.device, []);
});

test("--allow-host-path adds to a use's defaults; `none` drops them; bad values are refused", () => {
  const policy = hostPathPolicy(["pool=/srv/vm", "device=/dev/sdb", "kernel=/srv/boot/"]);
  assert.deepEqual(policy.pool, [...DEFAULT_HOST_PATHS.pool, "/srv/vm"]);
  assert.deepEqual(policy.device, ["/dev/sdb"]);
  assert.deepEqual(policy.kernel, [...DEFAULT_HOST_PATHS.kernel, "/srv/boot"]);
  assert.deepEqual(policy.image, DEFAULT_HOST_PATHS.image);
  assert.deepEqual(hostPathPolicy(["none", "image=/srv/img"]), { pool: [], device: [], image: ["/srv/img"], kernel: [], secret: [] });
  for (const bad of ["pool", "disk=/srv", "pool=relative/dir", "pool=/srv/../etc", "image=/", "image=//"]) {
    assert.throws(() => hostPathPolicy([bad]), HostPathFlagError, bad);
  }
});

test("refusals follow symlinks, name the field and say how to allow it; an unresolvable path is refused", () => {
  const policy = hostPathPolicy(["none", "image=/srv/img"]);
  const links = new Map([["/srv/img/escape", "/etc"]]);
  const real = (p: string) => {
    if (p.startsWith("/srv/img/loop")) throw new Error("ELOOP: too many symbolic links");
    for (const [link, target] of links) if (p === link || p.startsWith(`${link}/`)) return target + p.slice(link.length);
    return p;
  };
  const refs = (p: string) => [{ use: "image" as const, field: "spec.disks[0].from.image", path: p }];
  assert.deepEqual(hostPathRefusals(refs("/srv/img/base.qcow2"), policy, real), []);
  const [escaped] = hostPathRefusals(refs("/srv/img/escape/shadow"), policy, real);
  assert.match(escaped!, /^spec\.disks\[0\]\.from\.image: "\/srv\/img\/escape\/shadow" \(really "\/etc\/shadow"\) is outside the host paths this controller allows for disk images to import \(only \/srv\/img is allowed; the controller's --allow-host-path image=DIR adds one\)$/);
  assert.match(hostPathRefusals(refs("/srv/img/loop/x"), policy, real)[0]!, /cannot be resolved \(ELOOP/);
  assert.match(hostPathRefusals([{ use: "device", field: "spec.sourceDevices[0]", path: "/dev/sdb" }], policy, real)[0]!, /source devices \(none is allowed;/);
});

const VM = (name: string, extra: string) => `---
apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata: {name: ${name}}
spec:
  cpus: 1
  memory: 256Mi
  runStrategy: Halted
${extra}`;

const POOL = (name: string, spec: string) => `---
apiVersion: kvmctl.dev/v1alpha1
kind: StoragePool
metadata: {name: ${name}}
spec: ${spec}
`;

test("the manager refuses objects that name host paths outside the policy, before libvirt hears of them", async () => {
  const dir = await tempDir("kvmctl-host-paths-");
  const manifests: Record<string, string> = {
    "good.yaml": POOL("good", "{type: dir, path: /srv/pools/good}") + VM("okvm", "  boot: {kernel: /srv/boot/vmlinuz}\n  disks:\n    - {name: root, pool: good, from: {image: /srv/img/base.qcow2}}\n"),
    "etc-pool.yaml": POOL("etcpool", "{type: dir, path: /etc}"),
    "linked-pool.yaml": POOL("linked", "{type: dir, path: /srv/pools/link/sub}"),
    "device-pool.yaml": POOL("wiper", "{type: logical, sourceDevices: [/dev/sda]}"),
    "kernel.yaml": VM("kernelvm", "  boot: {kernel: /srv/boot/vmlinuz, initrd: /boot/initrd.img}\n"),
    "image.yaml": VM("shadowvm", "  disks:\n    - {name: root, pool: good, from: {image: /etc/shadow}}\n"),
    "secret.yaml": VM("vncvm", "  consoles: {vnc: {passwordSecretFile: /root/.vnc}}\n"),
    "user-data.yaml": VM("udvm", "  cloudInit: {userDataSecretFile: /root/user-data}\n"),
    "backing.yaml": VM("backedvm", "  disks:\n    - {name: root, pool: good, from: {image: /srv/img/backed.qcow2}}\n"),
  };
  for (const [file, text] of Object.entries(manifests)) fs.writeFileSync(path.join(dir, file), text);
  const ports = fakePorts();
  ports.paths.links.set("/srv/pools/link", "/etc");
  ports.images.images.set("/srv/img/base.qcow2", { format: "qcow2", virtualSize: 1 << 30 });
  ports.images.images.set("/srv/img/backed.qcow2", { format: "qcow2", virtualSize: 1 << 30, backingFile: "/etc/shadow" });
  const manager = testManager(new ManifestStore({ dir, diskCache: false }), ports, {
    hostPaths: hostPathPolicy(["none", "pool=/srv/pools", "image=/srv/img", "kernel=/srv/boot"]),
  });
  const reports = new Map((await manager.runOnce()).map((r) => [r.key, r]));
  const expected: Record<string, RegExp> = {
    "StoragePool/etcpool": /^spec\.path: "\/etc" is outside the host paths this controller allows for storage pool directories/,
    "StoragePool/linked": /^spec\.path: "\/srv\/pools\/link\/sub" \(really "\/etc\/sub"\) is outside/,
    "StoragePool/wiper": /^spec\.sourceDevices\[0\]: "\/dev\/sda" is outside the host paths this controller allows for logical pools' source devices \(none is allowed/,
    "VirtualMachine/kernelvm": /^spec\.boot\.initrd: "\/boot\/initrd\.img" is outside the host paths this controller allows for kernels and initrds/,
    "VirtualMachine/shadowvm": /^spec\.disks\[0\]\.from\.image: "\/etc\/shadow" is outside/,
    "VirtualMachine/vncvm": /^spec\.consoles\.vnc\.passwordSecretFile: "\/root\/\.vnc" is outside the host paths this controller allows for secret files \(none is allowed/,
    "VirtualMachine/udvm": /^spec\.cloudInit\.userDataSecretFile: "\/root\/user-data" is outside the host paths this controller allows for secret files/,
    "VirtualMachine/backedvm": /^the image \/srv\/img\/backed\.qcow2 reads another file \("\/etc\/shadow", a backing or data file\): refused/,
  };
  for (const [key, message] of Object.entries(expected)) {
    const report = reports.get(key);
    assert.equal(report?.outcome, "terminal", key);
    assert.match((report!.error as Error).message, message, key);
    const file = Object.keys(manifests).find((f) => manifests[f]!.includes(`name: ${key.split("/")[1]}}`))!;
    const docs = fs.readFileSync(path.join(dir, file), "utf8").split(/^---$/m).filter((d) => d.includes(`name: ${key.split("/")[1]}}`));
    const status = (parse(docs[0]!) as { status: { conditions: { type: string; status: string; reason: string }[] } }).status;
    assert.deepEqual(status.conditions.find((c) => c.type === "Stalled")?.reason, "HostPathNotAllowed", `${key}: ${JSON.stringify(status)}`);
  }
  assert.equal(reports.get("StoragePool/good")?.outcome, "ready");
  assert.equal(reports.get("VirtualMachine/okvm")?.outcome, "ready");
  // libvirt heard only of the allowed pool and VM.
  const named = ports.hypervisor.calls.join("\n");
  for (const refused of ["etcpool", "linked", "wiper", "kernelvm", "shadowvm", "vncvm", "udvm", "backedvm"]) {
    assert.ok(!named.includes(refused), `${refused} reached libvirt:\n${named}`);
    assert.equal(ports.hypervisor.uuidOf(refused.endsWith("vm") ? "domain" : "pool", refused), undefined, `${refused} was defined`);
  }
  assert.ok(ports.hypervisor.uuidOf("pool", "good") && ports.hypervisor.uuidOf("domain", "okvm"));
  assert.deepEqual(ports.images.conversions, []);
});

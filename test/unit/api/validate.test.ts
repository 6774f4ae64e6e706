// validateDocument (src/api/validate.ts) over the three kinds: every refusal names the field
// path, unknown fields get a suggestion, and a valid document comes back with defaults.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { knownKeysAt, validateDocument, virtualMachine, type Network, type StoragePool, type VirtualMachine } from "../../../src/api/index.js";
import { API, assertIssue, issues, net, pool, valid, vm } from "./helpers.js";

const lan = (ipv4: Record<string, unknown>, extra: Record<string, unknown> = {}) => net("lan", { mode: "nat", ipv4: { address: "10.1.0.1", prefix: 24, ...ipv4 }, ...extra });

describe("document shape", () => {
  it("kind: required, and unknown kinds get a suggestion", () => {
    assertIssue({ apiVersion: API, metadata: { name: "a" } }, "kind", /kind is required/);
    assertIssue({ apiVersion: API, kind: "VirtualMachin", metadata: { name: "a" } }, "kind", /did you mean "VirtualMachine"\?/);
  });

  it("apiVersion: required and only v1alpha1", () => {
    assertIssue({ kind: "Network", metadata: { name: "a" } }, "apiVersion", /apiVersion is required; expected kvmctl\.dev\/v1alpha1/);
    assertIssue({ apiVersion: "kvmctl.dev/v1", kind: "Network", metadata: { name: "a" } }, "apiVersion", /only v1alpha1/);
  });

  it("a document that is not a mapping", () => {
    assert.deepEqual(issues(["a"]), [": a manifest must be a mapping with apiVersion, kind, metadata and spec"]);
  });

  it("unknown top-level fields", () => {
    assertIssue({ ...vm("a"), specs: {} }, "specs", /unknown field "specs"; did you mean "spec"\?/);
  });
});

describe("metadata", () => {
  it("annotations total at most 256 KiB, as in Kubernetes", () => {
    const withAnnotations = (annotations: Record<string, string>) => ({ apiVersion: API, kind: "VirtualMachine", metadata: { name: "a", annotations } });
    valid(withAnnotations({ note: "x".repeat(200 * 1024) }));
    assertIssue(withAnnotations({ a: "x".repeat(200 * 1024), b: "y".repeat(60 * 1024) }), "metadata.annotations", /annotations must total at most 256 KiB/);
  });
});

describe("unknown fields", () => {
  it('`cpu: 2` says "cpus", at spec.cpu', () => {
    assert.deepEqual(issues(vm("a", { cpu: 2 })), ['spec.cpu: unknown field "cpu"; did you mean "cpus"?']);
  });

  it("nested: in a disk, an interface's port forward, a network's DHCP host", () => {
    assertIssue(vm("a", { disks: [{ name: "root", size: "1Gi", sise: "2Gi" }] }), "spec.disks.0.sise", /did you mean "size"\?/);
    assertIssue(vm("a", { interfaces: [{ user: { portForwards: [{ hostPort: 1, guestPort: 2, hostport: 3 }] } }] }), "spec.interfaces.0.user.portForwards.0.hostport", /did you mean "hostPort"\?/);
    assertIssue(lan({ dhcp: { start: "10.1.0.10", end: "10.1.0.20", hosts: [{ ip: "10.1.0.5", hostname: "x" }] } }), "spec.ipv4.dhcp.hosts.0.hostname", /unknown field "hostname"/);
  });

  it("far from any known field: lists the known ones", () => {
    assertIssue(pool("p", { type: "dir", path: "/srv", zzzzzzzz: 1 }), "spec.zzzzzzzz", /expected one of type, path, volumeGroup, sourceDevices, autostart/);
  });

  it("knownKeysAt walks through defaults, arrays and preprocessing", () => {
    assert.deepEqual(knownKeysAt(virtualMachine, ["spec", "interfaces", 0, "user"]), ["portForwards", "ip"]);
  });
});

describe("VirtualMachine", () => {
  it("defaults: runStrategy, cpus, memory, machine, firmware, consoles, disk pool and bus, interface model", () => {
    const obj = valid<VirtualMachine>(vm("a", { disks: [{ name: "root", size: "1Gi" }], interfaces: [{ network: "lan" }] }));
    const { disks, interfaces, ...rest } = obj.spec;
    assert.deepEqual(rest, {
      runStrategy: "Always",
      cpus: 1,
      memory: 1024 ** 3,
      machine: "q35",
      firmware: "bios",
      tpm: false,
      consoles: { serial: true },
      rng: true,
      autostart: false,
      deletionPolicy: "Retain",
      terminationGracePeriodSeconds: 60,
      allowRestart: false,
    });
    assert.deepEqual(disks, [{ name: "root", pool: "default", size: 1024 ** 3, bus: "virtio", readOnly: false }]);
    assert.deepEqual(interfaces, [{ network: "lan", model: "virtio" }]);
  });

  it("a VNC console off loopback needs a password file", () => {
    assertIssue(vm("a", { consoles: { vnc: { listen: "0.0.0.0" } } }), "spec.consoles.vnc.passwordSecretFile", /a VNC console listening on 0\.0\.0\.0 \(not loopback\) needs passwordSecretFile or auth: sasl/);
    assertIssue(vm("a", { consoles: { vnc: { listen: "2001:db8::5" } } }), "spec.consoles.vnc.passwordSecretFile", /listening on 2001:db8::5/);
    for (const listen of ["127.0.0.1", "127.0.0.2", "::1"]) valid(vm("a", { consoles: { vnc: { listen } } }));
    valid(vm("a", { consoles: { vnc: { listen: "0.0.0.0", passwordSecretFile: "/var/lib/kvmctl/secrets/vnc" } } }));
    valid(vm("a", { consoles: { vnc: { listen: "0.0.0.0", auth: "sasl" } } }));
  });

  it("VNC auth: password needs its file; sasl takes none (QEMU lets a password win over SASL)", () => {
    assertIssue(vm("a", { consoles: { vnc: { auth: "password" } } }), "spec.consoles.vnc.passwordSecretFile", /auth: password needs passwordSecretFile/);
    assertIssue(vm("a", { consoles: { vnc: { auth: "sasl", passwordSecretFile: "/etc/kvmctl/vnc" } } }), "spec.consoles.vnc.passwordSecretFile", /auth: sasl takes no passwordSecretFile \(QEMU offers one auth type and a VNC password wins over SASL\)/);
    assertIssue(vm("a", { consoles: { vnc: { auth: "kerberos" } } }), "spec.consoles.vnc.auth", /password|sasl/);
    valid(vm("a", { consoles: { vnc: { auth: "password", passwordSecretFile: "/etc/kvmctl/vnc" } } }));
  });

  it("host paths: absolute, no control characters, no trailing whitespace, no '..'", () => {
    const boot = (kernel: string) => vm("a", { boot: { kernel } });
    assertIssue(boot("vmlinuz"), "spec.boot.kernel", /must be an absolute path/);
    assertIssue(boot("/srv/boot/vmlinuz "), "spec.boot.kernel", /must not end in whitespace/);
    assertIssue(boot("/srv/boot/vmlinuz\n"), "spec.boot.kernel", /must not end in whitespace|control characters/);
    for (const control of ["\u0007", "\u001b[31m", "\u0085", "\u007f"]) assertIssue(boot(`/srv/boot/vm${control}linuz`), "spec.boot.kernel", /must not contain control characters/);
    assertIssue(boot("/srv/../etc/shadow"), "spec.boot.kernel", /must not contain '\.\.'/);
    valid(boot("/srv/boot/vmlinuz-6.1 (old)"));
  });

  it("IPv6 addresses carry no %zone (no rule could hold one)", () => {
    assertIssue(vm("a", { consoles: { vnc: { listen: "fe80::1%eth0", passwordSecretFile: "/x" } } }), "spec.consoles.vnc.listen", /without a %zone/);
  });

  it("no spec at all is a VM with every default", () => {
    const obj = valid<VirtualMachine>({ apiVersion: API, kind: "VirtualMachine", metadata: { name: "a" } });
    assert.equal(obj.spec.runStrategy, "Always");
    assert.deepEqual(obj.spec.disks, []);
  });

  it("user port forwards default to 127.0.0.1 and tcp; `user:` left empty means {}", () => {
    const obj = valid<VirtualMachine>(vm("a", { interfaces: [{ user: { portForwards: [{ hostPort: 5001, guestPort: 22 }] } }, { user: null }] }));
    assert.deepEqual(obj.spec.interfaces[0]!.user!.portForwards, [{ hostPort: 5001, guestPort: 22, address: "127.0.0.1", protocol: "tcp" }]);
    assert.deepEqual(obj.spec.interfaces[1]!.user, { portForwards: [] });
  });

  it("a disk needs size or from", () => {
    assert.deepEqual(issues(vm("a", { disks: [{ name: "root" }] })), ["spec.disks.0: a disk needs size or from (or both)"]);
    valid(vm("a", { disks: [{ name: "root", from: { image: "/srv/base.qcow2" } }] }));
  });

  it("from needs exactly one source; pool only with volume", () => {
    assertIssue(vm("a", { disks: [{ name: "root", from: { image: "/a.qcow2", url: "https://x/y.qcow2" } }] }), "spec.disks.0.from", /exactly one of volume, image or url/);
    assertIssue(vm("a", { disks: [{ name: "root", from: { image: "/a.qcow2", pool: "images" } }] }), "spec.disks.0.from.pool", /pool only goes with volume/);
    assertIssue(vm("a", { disks: [{ name: "root", from: { url: "ftp://x/y" } }] }), "spec.disks.0.from.url", /http\(s\) URL/);
  });

  it("io: native needs cache none or directsync", () => {
    assertIssue(vm("a", { disks: [{ name: "root", size: "1Gi", io: "native" }] }), "spec.disks.0.io", /needs cache: none or directsync/);
    valid(vm("a", { disks: [{ name: "root", size: "1Gi", io: "native", cache: "none" }] }));
  });

  it("an interface needs exactly one of network, bridge, user", () => {
    assertIssue(vm("a", { interfaces: [{}] }), "spec.interfaces.0", /exactly one of network, bridge or user/);
    assertIssue(vm("a", { interfaces: [{ network: "lan", bridge: "br0" }] }), "spec.interfaces.0", /not network and bridge/);
  });

  it("uefi-secure needs a q35 machine", () => {
    assertIssue(vm("a", { firmware: "uefi-secure", machine: "pc" }), "spec.machine", /uefi-secure needs a q35 machine/);
    valid(vm("a", { firmware: "uefi-secure", machine: "pc-q35-8.2" }));
  });

  it("enums list the allowed values", () => {
    assertIssue(vm("a", { runStrategy: "Sometimes" }), "spec.runStrategy", /must be one of "Always", "RerunOnFailure", "Manual", "Halted", "Once"/);
  });

  it("duplicate disk names and a host port twice within one VM", () => {
    assertIssue(vm("a", { disks: [{ name: "d", size: "1Gi" }, { name: "d", size: "1Gi" }] }), "spec.disks.1.name", /duplicate disk name "d" \(also at index 0\)/);
    const pf = { hostPort: 5001, guestPort: 22 };
    assertIssue(vm("a", { interfaces: [{ user: { portForwards: [pf] } }, { user: { portForwards: [pf] } }] }), "spec.interfaces.1.user.portForwards.0.hostPort", /duplicate host port "tcp\/5001"/);
  });

  it("ssh keys must be public key lines", () => {
    assertIssue(vm("a", { cloudInit: { sshAuthorizedKeys: ["not a key"] } }), "spec.cloudInit.sshAuthorizedKeys.0", /OpenSSH public key/);
    valid(vm("a", { cloudInit: { sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIReplaceWithYourOwnPublicKey user@example"] } }));
  });

  it("cloudInit: the seed is an ISO on a CD-ROM by default; VFAT only on a disk; one source of user-data; a sane instance-id", () => {
    const defaults = valid<VirtualMachine>(vm("a", { cloudInit: {} })).spec.cloudInit;
    assert.equal(defaults?.seedMedium, "cdrom");
    assert.equal(defaults?.seedFormat, "iso");
    valid(vm("a", { cloudInit: { seedMedium: "disk", seedFormat: "vfat" } }));
    valid(vm("a", { cloudInit: { seedMedium: "disk", seedFormat: "iso" } }));
    assertIssue(vm("a", { cloudInit: { seedFormat: "vfat" } }), "spec.cloudInit.seedFormat", /vfat seed needs seedMedium: disk \(cloud-init does not find VFAT on a CD-ROM/);
    assertIssue(vm("a", { cloudInit: { userData: "#cloud-config\n", userDataSecretFile: "/etc/kvmctl/web.user-data" } }), "spec.cloudInit.userDataSecretFile", /userData or userDataSecretFile, not both/);
    assertIssue(vm("a", { cloudInit: { userDataSecretFile: "secrets/web" } }), "spec.cloudInit.userDataSecretFile", /absolute path/);
    valid(vm("a", { cloudInit: { instanceId: "web-2026-12-01.2" } }));
    assertIssue(vm("a", { cloudInit: { instanceId: "web 2" } }), "spec.cloudInit.instanceId", /1-128 characters/);
    assertIssue(vm("a", { cloudInit: { instanceId: "" } }), "spec.cloudInit.instanceId", /1-128 characters/);
  });

  it("cpus range", () => {
    assertIssue(vm("a", { cpus: 0 }), "spec.cpus", /.+/);
    assertIssue(vm("a", { cpus: 1.5 }), "spec.cpus", /.+/);
  });
});

describe("Network", () => {
  it("defaults: nat, autostart, no port forwards or egress rules, DHCP hosts []", () => {
    const obj = valid<Network>(lan({ dhcp: { start: "10.1.0.100", end: "10.1.0.200" } }));
    assert.deepEqual(obj.spec, {
      mode: "nat",
      ipv4: { address: "10.1.0.1", prefix: 24, dhcp: { start: "10.1.0.100", end: "10.1.0.200", hosts: [] } },
      portForwards: [],
      egress: [],
      autostart: true,
    });
  });

  it("a port forward's hostAddress is IPv4 (the DNAT goes to the guest's IPv4 address), never with a %zone", () => {
    for (const hostAddress of ["2001:db8::1", "fe80::1%eth0"]) {
      assertIssue(lan({}, { portForwards: [{ hostPort: 2222, hostAddress, guestAddress: "10.1.0.10", guestPort: 22 }] }), "spec.portForwards.0.hostAddress", /must be an IPv4 address/);
    }
    assertIssue(lan({}, { ipv6: { address: "fe80::1%eth0", prefix: 64 } }), "spec.ipv6.address", /without a %zone/);
  });

  it("a DHCP range outside the prefix is rejected at its start/end", () => {
    assertIssue(lan({ dhcp: { start: "10.1.1.10", end: "10.1.0.20" } }), "spec.ipv4.dhcp.start", /10\.1\.1\.10 is outside 10\.1\.0\.0\/24/);
    assertIssue(lan({ dhcp: { start: "10.1.0.10", end: "10.2.0.20" } }), "spec.ipv4.dhcp.end", /10\.2\.0\.20 is outside 10\.1\.0\.0\/24/);
  });

  it("a DHCP range that ends before it starts, or covers the gateway or broadcast", () => {
    assertIssue(lan({ dhcp: { start: "10.1.0.20", end: "10.1.0.10" } }), "spec.ipv4.dhcp.end", /ends \(10\.1\.0\.10\) before it starts/);
    assertIssue(lan({ dhcp: { start: "10.1.0.1", end: "10.1.0.10" } }), "spec.ipv4.dhcp.start", /network's own address/);
    assertIssue(lan({ dhcp: { start: "10.1.0.10", end: "10.1.0.255" } }), "spec.ipv4.dhcp.end", /network or broadcast address/);
  });

  it("static DHCP hosts: inside the subnet, unique, with mac or name", () => {
    const dhcp = (hosts: unknown[]) => lan({ dhcp: { start: "10.1.0.100", end: "10.1.0.200", hosts } });
    assertIssue(dhcp([{ mac: "52:54:00:00:00:01", ip: "10.9.0.5" }]), "spec.ipv4.dhcp.hosts.0.ip", /outside 10\.1\.0\.0\/24/);
    assertIssue(dhcp([{ mac: "52:54:00:00:00:01", ip: "10.1.0.5" }, { mac: "52:54:00:00:00:02", ip: "10.1.0.5" }]), "spec.ipv4.dhcp.hosts.1.ip", /duplicate DHCP host address/);
    assertIssue(dhcp([{ mac: "52:54:00:00:00:01", ip: "10.1.0.5" }, { mac: "52:54:00:00:00:01", ip: "10.1.0.6" }]), "spec.ipv4.dhcp.hosts.1.mac", /duplicate DHCP host MAC/);
    assertIssue(dhcp([{ ip: "10.1.0.5" }]), "spec.ipv4.dhcp.hosts.0", /needs mac or name/);
  });

  it("the gateway address may not be the network or broadcast address", () => {
    assertIssue(net("lan", { ipv4: { address: "10.1.0.0", prefix: 24 } }), "spec.ipv4.address", /is the network address/);
  });

  it("mode rules: nat needs ipv4, bridge needs a bridge and takes no addresses, forwards need nat", () => {
    assertIssue(net("lan", {}), "spec.mode", /mode nat needs ipv4/);
    assertIssue(net("lan", { mode: "bridge" }), "spec.bridge", /needs the name of an existing host bridge/);
    assertIssue(net("lan", { mode: "bridge", bridge: "br0", ipv4: { address: "10.1.0.1", prefix: 24 } }), "spec.ipv4", /takes no ipv4/);
    assertIssue(net("lan", { mode: "isolated", ipv4: { address: "10.1.0.1", prefix: 24 }, portForwards: [{ hostPort: 80, guestAddress: "10.1.0.5", guestPort: 80 }] }), "spec.portForwards", /need a nat network, not isolated/);
  });

  it("port forwards: guest inside the subnet, host ports unique", () => {
    assertIssue(lan({}, { portForwards: [{ hostPort: 80, guestAddress: "10.9.0.5", guestPort: 80 }] }), "spec.portForwards.0.guestAddress", /outside 10\.1\.0\.0\/24/);
    const pf = { hostPort: 80, guestAddress: "10.1.0.5", guestPort: 80 };
    assertIssue(lan({}, { portForwards: [pf, { ...pf, guestPort: 81 }] }), "spec.portForwards.1.hostPort", /duplicate host port "tcp\/80"/);
  });

  it("DHCPv6 needs a /64 and a range inside it", () => {
    assertIssue(net("v6", { mode: "isolated", ipv6: { address: "fd00::1", prefix: 48, dhcp: { start: "fd00::10", end: "fd00::20" } } }), "spec.ipv6.prefix", /\/64/);
    assertIssue(net("v6", { mode: "isolated", ipv6: { address: "fd00::1", prefix: 64, dhcp: { start: "fd01::10", end: "fd00::20" } } }), "spec.ipv6.dhcp.start", /outside/);
  });

  it("malformed addresses and prefixes are reported, not thrown (the cross-field checks skip them)", () => {
    assert.deepEqual(issues(lan({ address: "10.1.0.300" })), ["spec.ipv4.address: must be an IPv4 address like 10.0.0.1"]);
    assertIssue(lan({ prefix: -1 }), "spec.ipv4.prefix", /.+/);
    assert.deepEqual(issues(lan({ dhcp: { start: "10.1.0.x", end: "10.1.0.20" } })), ["spec.ipv4.dhcp.start: must be an IPv4 address like 10.0.0.1"]);
    assert.deepEqual(issues(lan({}, { portForwards: [{ hostPort: 80, guestAddress: "nope", guestPort: 80 }] })), ["spec.portForwards.0.guestAddress: must be an IPv4 address like 10.0.0.1"]);
    assertIssue(lan({}, { egress: [{ action: "deny", to: ["10.0.0.0/33"] }] }), "spec.egress.0.to.0", /CIDR/);
  });
});

describe("StoragePool", () => {
  it("defaults: dir, autostart", () => {
    assert.deepEqual(valid<StoragePool>(pool("p", { path: "/srv/images" })).spec, { type: "dir", path: "/srv/images", autostart: true });
  });

  it("dir pools need path and take no LVM fields", () => {
    assertIssue(pool("p", {}), "spec.path", /a dir pool needs path/);
    assertIssue(pool("p", { path: "/srv", volumeGroup: "vg0" }), "spec.volumeGroup", /only goes with type: logical/);
  });

  it("logical pools take volumeGroup, not path", () => {
    valid(pool("p", { type: "logical", volumeGroup: "vg0", sourceDevices: ["/dev/sdb"] }));
    assertIssue(pool("p", { type: "logical", path: "/dev/vg0" }), "spec.path", /set volumeGroup instead/);
  });

  it("paths must be absolute", () => {
    assertIssue(pool("p", { path: "images" }), "spec.path", /absolute path/);
  });
});

describe("status", () => {
  it("is parsed leniently: unknown status fields are kept, never an error", () => {
    const result = validateDocument({ ...vm("a"), status: { phase: "Running", futureField: 1 } });
    assert.ok(result.ok);
    assert.equal((result.object.status as Record<string, unknown>).futureField, 1);
  });
});

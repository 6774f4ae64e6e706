// kvmctl's comparisons against what libvirt 11 really reports (test/fixtures/libvirt-11,
// captured by testenv/capture-fixtures.ts): for every case the desired XML is rebuilt from
// the fixture manifest as the controller builds it, and neither the inactive nor the running
// definition libvirt gave back (with its PCI addresses, aliases, controllers, generated MACs,
// bridge names, pool capacities ...) may count as drift; whole plans over the real XML are
// no-ops. Then single fields of the real XML are changed, and exactly that field must be
// reported: a comparison that saw nothing would fail here. No libvirt needed.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import type { Network, StoragePool, VirtualMachine } from "../../../src/api/index.js";
import { planNetwork, type NetworkPlanInput } from "../../../src/controllers/network/plan.js";
import { planPool } from "../../../src/controllers/storagepool/plan.js";
import { planVm, type VmPlanInput } from "../../../src/controllers/virtualmachine/plan.js";
import type { LiveDomain, LiveNetwork, LivePool } from "../../../src/ports/index.js";
import {
  buildDhcpHostXml,
  compareDomain,
  compareNetwork,
  comparePool,
  networkUuid,
  ownedUuid,
  parseDomainXml,
  parseNetworkXml,
  parsePoolXml,
  parseVolumeXml,
  planNetworkUpdates,
  poolUuid,
  type DomainFacts,
  type OwnerMetadata,
} from "../../../src/libvirt/index.js";
import {
  CASES,
  CONSOLE_LOG_DIR,
  DEFAULT_DOMAIN_TYPE,
  DIR_POOL_PATH,
  FIXTURE_DIR,
  FIXTURE_INSTANCE,
  NAMES,
  desiredDomain,
  desiredNetwork,
  desiredPool,
  loadManifest,
  poolTypesOf,
  type FixtureCase,
} from "../../../testenv/capture-fixtures.js";


const fixture = (file: string) => fs.readFileSync(path.join(FIXTURE_DIR, file), "utf8");
const hasFixture = (file: string) => fs.existsSync(path.join(FIXTURE_DIR, file));
const caseById = (id: string) => CASES.find((c) => c.id === id)!;

const pools = CASES.filter((c) => c.kind === "StoragePool").map((c) => ({ c, m: loadManifest<StoragePool>(fixture(`${c.id}.yaml`)) }));
const nets = CASES.filter((c) => c.kind === "Network").map((c) => ({ c, m: loadManifest<Network>(fixture(`${c.id}.yaml`)) }));
const vms = CASES.filter((c) => c.kind === "VirtualMachine").map((c) => ({ c, m: loadManifest<VirtualMachine>(fixture(`${c.id}.yaml`)) }));
const poolTypes = poolTypesOf(pools.map((p) => p.m));

/** The real XML of a case: inactive, and running when libvirt could start it. */
function realXml(c: FixtureCase): { inactive: string; running?: string; variants: [string, string][] } {
  const inactive = fixture(`${c.id}.inactive.xml`);
  const running = hasFixture(`${c.id}.running.xml`) ? fixture(`${c.id}.running.xml`) : undefined;
  const extra = hasFixture(`${c.id}.inactive-while-running.xml`) ? [["inactive-while-running", fixture(`${c.id}.inactive-while-running.xml`)] as [string, string]] : [];
  return { inactive, running, variants: [["inactive", inactive], ...extra, ...(running ? [["running", running] as [string, string]] : [])] };
}

/** Owner metadata in one shape (parsing yields createdVolumes [] and deletionPolicy undefined when absent). */
const ownerShape = (o: OwnerMetadata | undefined) => (o ? { manifest: o.manifest, file: o.file, specHash: o.specHash, deletionPolicy: o.deletionPolicy ?? null, createdVolumes: o.createdVolumes ?? [] } : o);

/** `text` with every `from` replaced; fails when `from` is not there (the mutation would prove nothing). */
function mutate(text: string, from: string | RegExp, to: string): string {
  const found = typeof from === "string" ? text.includes(from) : from.test(text);
  assert.ok(found, `fixture text has no ${String(from)}`);
  const out = typeof from === "string" ? text.replaceAll(from, to) : text.replace(new RegExp(from.source, from.flags.includes("g") ? from.flags : `${from.flags}g`), to);
  assert.notEqual(out, text);
  return out;
}

// ---------------------------------------------------------------------------------------
// What the observer would hold, from the real XML

function livePools(): Map<string, LivePool> {
  const volumes = new Map<string, Map<string, ReturnType<typeof parseVolumeXml>>>();
  for (const { c, m } of vms) {
    // One volume per disk, in the same order.
    const { disks } = desiredDomain(m, poolTypes);
    for (const disk of disks) {
      const facts = parseVolumeXml(fixture(`${c.id}.vol-${disk.name}.xml`));
      if (!volumes.has(disk.pool)) volumes.set(disk.pool, new Map());
      volumes.get(disk.pool)!.set(facts.name, facts);
    }
  }
  return new Map(pools.map(({ c, m }) => [c.name, { facts: parsePoolXml(fixture(`${c.id}.running.xml`)), active: true, autostart: m.object.spec.autostart, volumes: volumes.get(c.name) ?? new Map() }]));
}

function liveNetwork(c: FixtureCase, autostart: boolean): LiveNetwork {
  const config = parseNetworkXml(fixture(`${c.id}.inactive.xml`));
  const running = parseNetworkXml(fixture(`${c.id}.running.xml`));
  return { uuid: config.uuid!, name: c.name, config, running, active: true, autostart, persistent: true };
}

const liveNetworks = () => new Map(nets.map(({ c, m }) => [c.name, liveNetwork(c, m.object.spec.autostart)]));

function vmInput(v: (typeof vms)[number], overrides: Partial<VmPlanInput>): VmPlanInput {
  return {
    key: v.m.key, name: v.m.name, instance: FIXTURE_INSTANCE, file: v.m.file, spec: v.m.object.spec, specHash: v.m.specHash, live: undefined,
    pools: livePools(), networks: liveNetworks(), defaultDomainType: DEFAULT_DOMAIN_TYPE, consoleLogDir: CONSOLE_LOG_DIR,
    restartPending: false, startedOnce: true, now: Date.now(), ...overrides,
  };
}

function liveDomain(c: FixtureCase, config: string, running: string | undefined): LiveDomain {
  return { config: parseDomainXml(config), running: running ? parseDomainXml(running) : undefined, state: running ? "running" : "shut off", reason: running ? "booted" : "destroyed", autostart: false, persistent: true };
}

// ---------------------------------------------------------------------------------------
// The fixtures are libvirt's, for the cases the capture says

test("the fixtures hold every case, and they are libvirt's XML, not kvmctl's own", () => {
  for (const c of CASES) {
    assert.ok(hasFixture(`${c.id}.yaml`) && hasFixture(`${c.id}.inactive.xml`) && hasFixture(`${c.id}.defined.xml`), c.id);
    if (c.kind !== "VirtualMachine") assert.ok(hasFixture(`${c.id}.running.xml`), c.id);
  }
  assert.ok(hasFixture("vm-web.running.xml"), "the VM with disks and NICs really started");
  assert.match(fixture("README.md"), /libvirt 11\.\d+\.\d+/);
  const web = realXml(caseById("vm-web"));
  for (const [variant, xml] of web.variants) {
    assert.match(xml, /<address type='pci' domain='0x0000' bus='0x\w+' slot='0x\w+' function='0x\w'/, `${variant}: PCI addresses`);
    assert.match(xml, /<controller type='pci' index='1' model='pcie-root-port'>/, `${variant}: controllers`);
    assert.match(xml, /<emulator>/, variant);
    assert.match(xml, /machine='pc-q35-[\d.]+'/, `${variant}: q35 expanded to a versioned machine`);
    assert.match(xml, /<interface type='user'>\s*<mac address='52:54:00:[0-9a-f:]+'\/>/, `${variant}: a MAC generated for the passt NIC`);
    assert.match(xml, /<cpu mode='custom'/, `${variant}: a CPU model the manifest does not set`);
  }
  assert.match(web.running!, /<source network='kvt-fx-nat' portid='[0-9a-f-]+' bridge='virbr\d+'\/>/, "running: port id and bridge on the network NIC");
  assert.match(web.running!, /<target dev='vnet\d+'\/>/);
  assert.match(web.running!, /<alias name='net0'\/>/);
  assert.match(web.running!, /<graphics type='vnc' port='59\d\d' autoport='yes'/, "running: the VNC port libvirt allocated");
  assert.match(web.running!, /<source pool='kvt-fx-dir' volume='kvt-fx-web-root.qcow2' index='\d+'\/>\s*<backingStore\/>/);
  assert.doesNotMatch(fixture("vm-web.defined.xml"), /<address |<controller /);
  const secure = fixture("vm-secure.inactive.xml");
  assert.match(secure, /<loader readonly='yes' secure='yes' type='pflash'[^>]*>[^<]*OVMF[^<]*<\/loader>/, "firmware autoselection filled in the loader");
  assert.match(secure, /<nvram [^>]*>[^<]+<\/nvram>/);
  for (const { c } of nets) {
    for (const [variant, xml] of realXml(c).variants) {
      assert.match(xml, /<bridge name='virbr\d+' stp='on' delay='0'\/>/, `${c.id} ${variant}: the bridge libvirt picked`);
      assert.match(xml, /<mac address='52:54:00:[0-9a-f:]+'\/>/, `${c.id} ${variant}: the bridge MAC libvirt picked`);
    }
    assert.doesNotMatch(fixture(`${c.id}.defined.xml`), /<bridge |<mac /);
  }
  for (const { c } of pools) assert.match(fixture(`${c.id}.running.xml`), /<capacity unit='bytes'>\d+<\/capacity>/);
});

// ---------------------------------------------------------------------------------------
// Domains

for (const v of vms) {
  const { c, m } = v;
  const desired = desiredDomain(m, poolTypes);
  const desiredFacts = parseDomainXml(desired.xml);
  const real = realXml(c);

  test(`${c.id}: the controller's plan defines exactly the XML the fixture was captured from`, () => {
    const plan = planVm(vmInput(v, { live: undefined, startedOnce: false, pools: new Map([...livePools()].map(([k, p]) => [k, { ...p, volumes: new Map() }])) }));
    const define = plan.steps.find((s) => s.action.type === "define")?.action as { xml: string } | undefined;
    assert.equal(define?.xml, desired.xml);
    const creates = plan.steps.flatMap((s) => (s.action.type === "createVolume" ? [s.action] : []));
    assert.deepEqual(
      creates.map(({ pool, poolType, volume, capacity, format }) => ({ pool, poolType, volume, capacity, format })),
      desired.volumes.map(({ pool, poolType, volume, capacity, format }) => ({ pool, poolType, volume, capacity, format })),
    );
    // The fixture's defined XML says the same (compared as facts, so a cosmetic builder change needs no recapture).
    const defined = parseDomainXml(fixture(`${c.id}.defined.xml`));
    assert.deepEqual(compareDomain(desiredFacts, defined), [], "the fixtures are stale: regenerate them (see test/fixtures/libvirt-11/README.md)");
    assert.deepEqual(ownerShape(defined.owner), ownerShape(desired.owner));
  });

  test(`${c.id}: libvirt's inactive and running XML show no drift, and the owner metadata parses back`, () => {
    for (const [variant, xml] of real.variants) {
      const live = parseDomainXml(xml);
      assert.deepEqual(compareDomain(desiredFacts, live), [], variant);
      assert.deepEqual(ownerShape(live.owner), ownerShape(desired.owner), `${variant}: owner metadata`);
      assert.equal(live.name, m.name);
      assert.equal(live.uuid, ownedUuid("VirtualMachine", m.name));
      // The facts are really read (a parser that returned nothing would compare equal to nothing).
      assert.equal(live.memoryBytes, m.object.spec.memory, variant);
      assert.equal(live.vcpus, m.object.spec.cpus, variant);
      assert.equal(live.firmware, m.object.spec.firmware, variant);
      assert.equal(live.tpm, m.object.spec.tpm, variant);
      assert.equal(live.kernel, m.object.spec.boot?.kernel, variant);
      assert.deepEqual(live.disks.map((d) => `${d.pool}/${d.volume}`), desired.disks.map((d) => `${d.pool}/${d.volume}`), variant);
      assert.equal(live.interfaces.length, m.object.spec.interfaces.length, variant);
      assert.equal(live.consoleLog, `${CONSOLE_LOG_DIR}/${m.name}.log`, variant);
    }
  });

  test(`${c.id}: over the real XML the VM plan has nothing to do`, () => {
    const config = real.running && hasFixture(`${c.id}.inactive-while-running.xml`) ? fixture(`${c.id}.inactive-while-running.xml`) : real.inactive;
    const plan = planVm(vmInput(v, { live: liveDomain(c, config, real.running) }));
    if (real.running) {
      assert.deepEqual(plan.steps, []);
      assert.deepEqual(plan.restartRequired, []);
      assert.equal(plan.ready, true);
      assert.equal(plan.reason, "Succeeded");
    } else {
      assert.deepEqual(plan.steps.map((s) => s.action.type), ["start"], "not started by the capture: only a start is missing");
    }
  });
}

test("vm-web: the real volumes are what the plan asked for (no create, no resize)", () => {
  const { c, m } = vms.find((v) => v.c.id === "vm-web")!;
  const desired = desiredDomain(m, poolTypes);
  assert.equal(desired.volumes.length, 2);
  for (const disk of desired.disks) {
    const vol = desired.volumes.find((x) => x.volume === disk.volume)!;
    const facts = parseVolumeXml(fixture(`${c.id}.vol-${disk.name}.xml`));
    assert.equal(facts.name, vol.volume);
    assert.equal(facts.capacity, vol.capacity);
    assert.equal(facts.format, vol.format);
    assert.equal(facts.path, `${DIR_POOL_PATH}/${vol.volume}`);
    const defined = parseVolumeXml(fixture(`${c.id}.vol-${disk.name}.defined.xml`));
    assert.deepEqual(defined, parseVolumeXml(vol.xml));
  }
  assert.deepEqual(desired.volumes.map((x) => x.format), ["qcow2", "raw"]);
});

// Mutations: one field of libvirt's real XML changed → exactly that field is drift.
const webVm = vms.find((v) => v.c.id === "vm-web")!;
const webDesired = parseDomainXml(desiredDomain(webVm.m, poolTypes).xml);
const webReal = realXml(webVm.c);
const domainDiffs = (desired: DomainFacts, xml: string) => compareDomain(desired, parseDomainXml(xml));

for (const [what, from, to, field] of [
  ["memory", "<memory unit='KiB'>262144</memory>", "<memory unit='KiB'>524288</memory>", "memory"],
  ["cpus", "<vcpu placement='static'>2</vcpu>", "<vcpu placement='static'>3</vcpu>", "cpus"],
  ["a disk's volume", "volume='kvt-fx-web-data'", "volume='kvt-fx-web-other'", "disks"],
  ["a disk's format", "<driver name='qemu' type='raw'/>", "<driver name='qemu' type='qcow2'/>", "disks"],
  ["the network a NIC is on", "network='kvt-fx-nat'", "network='kvt-fx-other'", "interfaces"],
  ["a MAC the manifest sets", "<mac address='52:54:00:fc:00:10'/>", "<mac address='52:54:00:fc:00:11'/>", "interfaces"],
  ["a passt port forward", "<range start='22861' to='22'/>", "<range start='22999' to='22'/>", "interfaces"],
  ["the kernel", "<kernel>/run/kvmctl-testenv/guest/vmlinuz</kernel>", "<kernel>/boot/vmlinuz</kernel>", "boot.kernel"],
  ["the VNC listen address", "<listen type='address' address='127.0.0.1'/>", "<listen type='address' address='0.0.0.0'/>", "consoles.vnc"],
] as const) {
  test(`vm-web: ${what} changed in libvirt's XML is reported as ${field}, and only that`, () => {
    for (const [variant, xml] of webReal.variants) {
      const diffs = domainDiffs(webDesired, mutate(xml, from, to));
      assert.deepEqual(diffs.map((d) => d.field), [field], variant);
      assert.equal(diffs[0]!.needsRestart, true);
    }
  });
}

test("vm-web: the memory difference says both values", () => {
  const [diff] = domainDiffs(webDesired, mutate(webReal.inactive, "<memory unit='KiB'>262144</memory>", "<memory unit='KiB'>524288</memory>"));
  assert.deepEqual(diff, { field: "memory", desired: String(256 * 1024 ** 2), live: String(512 * 1024 ** 2), needsRestart: true });
});

test("vm-web: what libvirt chooses is not drift (passt MAC, bridge, tap, VNC port, PCI slots)", () => {
  for (const [variant, xml] of webReal.variants) {
    let changed = mutate(xml, /(?<nic><interface type='user'>\s*<mac address=')[^']+'/, "$<nic>52:54:00:00:00:01'");
    changed = mutate(changed, /slot='0x00' function='0x0'/, "slot='0x03' function='0x0'");
    if (variant === "running") {
      changed = mutate(changed, /bridge='virbr\d+'/, "bridge='virbr99'");
      changed = mutate(changed, /<target dev='vnet\d+'\/>/, "<target dev='vnet99'/>");
      changed = mutate(changed, /port='59\d\d' autoport='yes'/, "port='5999' autoport='yes'");
    }
    assert.deepEqual(domainDiffs(webDesired, changed), [], variant);
  }
});

test("vm-web: a stale specHash in libvirt's owner metadata makes the plan redefine, nothing else", () => {
  const config = mutate(fixture("vm-web.inactive-while-running.xml"), `specHash="${webVm.m.specHash}"`, 'specHash="0000000000000000"');
  const plan = planVm(vmInput(webVm, { live: liveDomain(webVm.c, config, webReal.running) }));
  assert.deepEqual(plan.steps.map((s) => [s.action.type, s.message]), [["define", "update ownership metadata"]]);
  assert.deepEqual(plan.restartRequired, []);
});

test("vm-web: memory changed in the running domain needs a restart (RestartRequired)", () => {
  const running = mutate(webReal.running!, "<memory unit='KiB'>262144</memory>", "<memory unit='KiB'>524288</memory>");
  const plan = planVm(vmInput(webVm, { live: liveDomain(webVm.c, fixture("vm-web.inactive-while-running.xml"), running) }));
  assert.deepEqual(plan.steps, [], "the definition is right: nothing to redefine");
  assert.deepEqual(plan.restartRequired.map((d) => d.field), ["memory"]);
  assert.equal(plan.reason, "RestartRequired");
});

const secureVm = vms.find((v) => v.c.id === "vm-secure")!;
const secureDesired = parseDomainXml(desiredDomain(secureVm.m, poolTypes).xml);
for (const [what, from, to, field] of [
  ["secure boot off", "secure='yes'", "secure='no'", "firmware"],
  ["the TPM removed", /<tpm model='tpm-crb'>[\s\S]*?<\/tpm>\n/, "", "tpm"],
  ["another machine type", /machine='pc-q35-[\d.]+'/, "machine='pc-i440fx-10.0'", "machine"],
] as const) {
  test(`vm-secure: ${what} in libvirt's XML is reported as ${field}, and only that`, () => {
    for (const [variant, xml] of realXml(secureVm.c).variants) {
      assert.deepEqual(domainDiffs(secureDesired, mutate(xml, from, to)).map((d) => d.field), [field], variant);
    }
  });
}

// ---------------------------------------------------------------------------------------
// Networks

for (const { c, m } of nets) {
  const desired = desiredNetwork(m);
  const desiredFacts = parseNetworkXml(desired.xml);
  const real = realXml(c);

  test(`${c.id}: the controller's plan defines exactly this XML`, () => {
    const plan = planNetwork({ key: m.key, name: m.name, instance: FIXTURE_INSTANCE, file: m.file, specHash: m.specHash, spec: m.object.spec, live: undefined, users: [] });
    assert.equal(plan.kind, "converge");
    const define = plan.kind === "converge" ? (plan.steps.find((s) => s.action.type === "define")?.action as { xml: string } | undefined) : undefined;
    assert.equal(define?.xml, desired.xml);
    assert.deepEqual(compareNetwork(desiredFacts, parseNetworkXml(fixture(`${c.id}.defined.xml`))), [], "the fixtures are stale: regenerate them");
  });

  test(`${c.id}: libvirt's inactive and running XML show no drift, no net-update, and the owner metadata parses back`, () => {
    for (const [variant, xml] of real.variants) {
      const live = parseNetworkXml(xml);
      assert.deepEqual(compareNetwork(desiredFacts, live), [], variant);
      assert.deepEqual(planNetworkUpdates(desiredFacts, live), [], variant);
      assert.deepEqual(ownerShape(live.owner), ownerShape(desired.owner), `${variant}: owner metadata`);
      assert.equal(live.uuid, networkUuid(m.name, FIXTURE_INSTANCE));
      // Really read: the addresses and DHCP settings the manifest gave.
      assert.equal(live.ipv4?.address, m.object.spec.ipv4?.address, variant);
      assert.equal(live.ipv4?.prefix, m.object.spec.ipv4?.prefix, variant);
      assert.equal(live.ipv6?.address, m.object.spec.ipv6?.address, variant);
      assert.equal(live.ipv6?.prefix, m.object.spec.ipv6?.prefix, variant);
      assert.equal(live.ipv4?.dhcp?.hosts.length, m.object.spec.ipv4?.dhcp?.hosts.length, variant);
      assert.equal((live.ipv4?.dhcp?.ranges.length ?? 0) + (live.ipv6?.dhcp?.ranges.length ?? 0), (m.object.spec.ipv4?.dhcp ? 1 : 0) + (m.object.spec.ipv6?.dhcp ? 1 : 0), variant);
      assert.match(live.bridge ?? "", /^virbr\d+$/, variant);
    }
  });

  test(`${c.id}: over the real XML the network plan has nothing to do; a redefinition keeps libvirt's bridge and MAC`, () => {
    const live = liveNetwork(c, m.object.spec.autostart);
    const input = { key: m.key, name: m.name, instance: FIXTURE_INSTANCE, file: m.file, specHash: m.specHash, spec: m.object.spec, live, users: [] };
    const steady = planNetwork(input);
    assert.equal(steady.kind, "converge");
    assert.deepEqual(steady.kind === "converge" && [steady.steps, steady.restartRequired], [[], undefined]);
    const stale = planNetwork({ ...input, live: { ...live, config: { ...live.config, owner: { ...live.config.owner!, specHash: "0000000000000000" } } } });
    assert.equal(stale.kind, "converge");
    if (stale.kind !== "converge") return;
    assert.deepEqual(stale.steps.map((s) => s.message), ["update ownership metadata"]);
    const redefined = parseNetworkXml((stale.steps[0]!.action as { xml: string }).xml);
    assert.equal(redefined.bridge, live.running!.bridge);
    assert.equal(redefined.mac, live.running!.mac);
    for (const [variant, xml] of real.variants) assert.deepEqual(compareNetwork(redefined, parseNetworkXml(xml)), [], variant);
  });
}

const natNet = nets.find((n) => n.c.id === "net-nat")!;
const natDesired = parseNetworkXml(desiredNetwork(natNet.m).xml);

test("net-nat: a DHCP host's IP changed in libvirt's XML is reported as ipv4.dhcp.hosts, fixed by net-update", () => {
  for (const [variant, xml] of realXml(natNet.c).variants) {
    const live = parseNetworkXml(mutate(xml, "ip='198.18.60.10'", "ip='198.18.60.11'"));
    const diffs = compareNetwork(natDesired, live);
    assert.deepEqual(diffs.map((d) => [d.field, d.needsRestart]), [["ipv4.dhcp.hosts", false]], variant);
    assert.deepEqual(diffs[0]!.live, ["52:54:00:fc:00:10|fx-web|198.18.60.11"]);
    assert.deepEqual(planNetworkUpdates(natDesired, live), [
      { command: "delete", section: "ip-dhcp-host", xml: buildDhcpHostXml({ mac: "52:54:00:fc:00:10", name: "fx-web", ip: "198.18.60.11" }), parentIndex: 0 },
      { command: "add-last", section: "ip-dhcp-host", xml: buildDhcpHostXml({ mac: "52:54:00:fc:00:10", name: "fx-web", ip: "198.18.60.10" }), parentIndex: 0 },
    ]);
  }
});

test("net-nat: on the running network the plan applies the DHCP host with net-update --live --config", () => {
  const live = liveNetwork(natNet.c, natNet.m.object.spec.autostart);
  const moved = (xml: string) => parseNetworkXml(mutate(xml, "ip='198.18.60.10'", "ip='198.18.60.11'"));
  const plan = planNetwork({ key: natNet.m.key, name: natNet.m.name, instance: FIXTURE_INSTANCE, file: natNet.m.file, specHash: natNet.m.specHash, spec: natNet.m.object.spec, users: [],
    live: { ...live, config: moved(fixture("net-nat.inactive.xml")), running: moved(fixture("net-nat.running.xml")) } });
  assert.equal(plan.kind, "converge");
  if (plan.kind !== "converge") return;
  assert.deepEqual(plan.steps.map((s) => s.action.type === "update" && [s.action.update.command, s.action.scope]), [["delete", "both"], ["add-last", "both"]]);
});

test("net-nat: a DHCP range end changed is reported as ipv4.dhcp.ranges", () => {
  for (const [variant, xml] of realXml(natNet.c).variants) {
    assert.deepEqual(compareNetwork(natDesired, parseNetworkXml(mutate(xml, "end='198.18.60.150'", "end='198.18.60.160'"))).map((d) => d.field), ["ipv4.dhcp.ranges"], variant);
  }
});

test("net-nat: libvirt's bridge name and MAC are not drift, whatever they are", () => {
  for (const [variant, xml] of realXml(natNet.c).variants) {
    const changed = mutate(mutate(xml, /<bridge name='virbr\d+'/, "<bridge name='virbr77'"), /<mac address='[0-9a-f:]+'\/>/, "<mac address='52:54:00:11:22:33'/>");
    assert.deepEqual(compareNetwork(natDesired, parseNetworkXml(changed)), [], variant);
  }
});

for (const [id, what, from, to, field] of [
  ["net-route", "the forward mode changed", "<forward mode='route'/>", "<forward mode='open'/>", "forward mode"],
  ["net-iso6", "the IPv6 prefix changed", "prefix='64'", "prefix='56'", "ipv6.prefix"],
  ["net-iso6", "a forward added", "<bridge name=", "<forward mode='open'/>\n  <bridge name=", "forward mode"],
  ["net-route", "the IPv6 address changed", "address='fd00:61::1'", "address='fd00:61::2'", "ipv6.address"],
  ["net-route", "the IPv4 DHCP removed", /<dhcp>\s*<range start='198.18.61.100' end='198.18.61.150'\/>\s*<\/dhcp>/, "", "ipv4.dhcp"],
] as const) {
  test(`${id}: ${what} in libvirt's XML is reported as ${field} (a restart), and only that`, () => {
    const n = nets.find((x) => x.c.id === id)!;
    const desired = parseNetworkXml(desiredNetwork(n.m).xml);
    for (const [variant, xml] of realXml(n.c).variants) {
      const live = parseNetworkXml(mutate(xml, from, to));
      assert.deepEqual(compareNetwork(desired, live).map((d) => [d.field, d.needsRestart]), [[field, true]], variant);
      assert.equal(planNetworkUpdates(desired, live), undefined, `${variant}: not a net-update`);
    }
  });
}

// ---------------------------------------------------------------------------------------
// Pools

for (const { c, m } of pools) {
  const real = realXml(c);
  test(`${c.id}: the controller's plan defines exactly this XML; libvirt's XML shows no drift; the plan has nothing to do`, () => {
    const { xml } = desiredPool(m);
    const fresh = planPool(m.name, m.object.spec, undefined, FIXTURE_INSTANCE);
    assert.equal(fresh.kind, "converge");
    assert.equal(fresh.kind === "converge" ? (fresh.steps.find((s) => s.action.type === "define")?.action as { xml: string } | undefined)?.xml : undefined, xml);
    assert.deepEqual(comparePool(m.name, m.object.spec, parsePoolXml(fixture(`${c.id}.defined.xml`))), [], "the fixtures are stale: regenerate them");
    for (const [variant, text] of real.variants) {
      const facts = parsePoolXml(text);
      assert.deepEqual(comparePool(m.name, m.object.spec, facts), [], variant);
      assert.equal(facts.uuid, poolUuid(m.name, FIXTURE_INSTANCE), `${variant}: owned (the UUID derived from its name and the instance)`);
      assert.equal(facts.type, m.object.spec.type);
      assert.ok((facts.capacity ?? 0) > 0, `${variant}: capacity read`);
    }
    const live = livePools().get(m.name)!;
    assert.deepEqual(planPool(m.name, m.object.spec, live, FIXTURE_INSTANCE), { kind: "converge", steps: [], drift: [] });
  });
}

for (const [id, what, from, to, expected] of [
  ["pool-dir", "the path", `<path>${DIR_POOL_PATH}</path>`, "<path>/tmp/elsewhere</path>", `target path: /tmp/elsewhere → ${DIR_POOL_PATH}`],
  ["pool-lvm", "the volume group", "<name>kvmctl-test-vg</name>", "<name>other-vg</name>", "volume group: other-vg → kvmctl-test-vg"],
  ["pool-lvm", "the target path", "<path>/dev/kvmctl-test-vg</path>", "<path>/dev/other-vg</path>", "target path: /dev/other-vg → /dev/kvmctl-test-vg"],
  ["pool-dir", "the type", "<pool type='dir'>", "<pool type='fs'>", "type: fs → dir"],
] as const) {
  test(`${id}: ${what} changed in libvirt's XML is reported, and only that; the plan redefines and restarts the pool`, () => {
    const p = pools.find((x) => x.c.id === id)!;
    for (const [variant, text] of realXml(p.c).variants) {
      const facts = parsePoolXml(mutate(text, from, to));
      assert.deepEqual(comparePool(p.m.name, p.m.object.spec, facts), [expected], variant);
      const plan = planPool(p.m.name, p.m.object.spec, { ...livePools().get(p.m.name)!, facts }, FIXTURE_INSTANCE);
      // A running pool keeps its old definition until restarted: redefine, stop, (build a dir), start.
      const restart = p.m.object.spec.type === "dir" ? ["define", "destroy", "build", "start"] : ["define", "destroy", "start"];
      assert.deepEqual(plan.kind === "converge" && plan.steps.map((s) => s.action.type), restart, variant);
    }
  });
}

test("every case has a stable, sweepable name", () => {
  for (const c of CASES) assert.match(c.name, /^kvt-fx-[a-z0-9-]+$/);
  assert.equal(new Set(CASES.map((c) => c.name)).size, CASES.length);
  assert.equal(NAMES.web, "kvt-fx-web");
});

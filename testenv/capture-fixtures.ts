// Captures what libvirt 11 really reports for objects kvmctl defines, as fixtures for the
// unit tests (test/unit/libvirt/real-dumpxml.test.ts): for each case, the manifest, the XML
// kvmctl defines (built by the real pure builders, exactly as the controller's plans call
// them), and libvirt's `dumpxml` of the result, inactive and running.
//
// Run inside the test namespace, as root, holding the shared lock:
//   flock /tmp/kvmctl-e2e.lock npm run testenv:exec -- node --import tsx testenv/capture-fixtures.ts
//
// Every object is named `kvt-fx-*` (stable names, so the fixtures are reproducible); if this
// script dies half-way, `npm run testenv:sweep` removes what it left (the sweeper's prefix).
// Everything it made is removed in a finally; the test volume group itself is never built
// or removed. The pure part (manifests → desired XML) is exported for the unit test.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { execa } from "execa";
import { parse } from "yaml";
import { specHash, validateDocument, type Network, type StoragePool, type VirtualMachine } from "../src/api/index.js";
import { volumeNameFor } from "../src/controllers/virtualmachine/plan.js";
import { buildDomainXml, buildNetworkXml, buildPoolXml, buildVolumeXml, ownedUuid, poolUuid, type OwnerMetadata, type ResolvedDisk } from "../src/libvirt/index.js";
import { LIBVIRT_URI, TEST_PREFIX, TEST_VG } from "./config.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURE_DIR = path.resolve(HERE, "../test/fixtures/libvirt-11");

/** Fixed (not mkdtemp) so the captured XML is the same on every run: the dir pool, console logs. */
export const WORK_DIR = "/tmp/kvt-fx-capture";
export const DIR_POOL_PATH = `${WORK_DIR}/pool-dir`;
/** The controller's --console-log-dir for the captured VMs. */
export const CONSOLE_LOG_DIR = `${WORK_DIR}/console`;
/** The controller's --default-domain-type in the test environment (the manifests set it anyway). */
export const DEFAULT_DOMAIN_TYPE = "qemu";

export type CaseKind = "VirtualMachine" | "Network" | "StoragePool";

export interface FixtureCase {
  /** File stem in FIXTURE_DIR. */
  id: string;
  kind: CaseKind;
  /** The libvirt object's name (stable, with the sweeper's prefix). */
  name: string;
  summary: string;
  /** The manifest; `guest` is the test guest's kernel and initrd. */
  manifest(guest: { kernel: string; initrd: string }): string;
}

const N = (label: string) => `${TEST_PREFIX}fx-${label}`;
export const NAMES = {
  web: N("web"),
  secure: N("secure"),
  nat: N("nat"),
  iso6: N("iso6"),
  route: N("route"),
  dirPool: N("dir"),
  lvmPool: N("lvm"),
} as const;

const header = (kind: CaseKind, name: string) => `apiVersion: kvmctl.dev/v1alpha1\nkind: ${kind}\nmetadata:\n  name: ${name}\nspec:\n`;
const boot = (g: { kernel: string; initrd: string }) => `  boot: {kernel: ${g.kernel}, initrd: ${g.initrd}, cmdline: "console=ttyS0 quiet"}\n`;

/** Pools first, then networks, then VMs: the order they are created in (VMs need the others). */
export const CASES: FixtureCase[] = [
  {
    id: "pool-dir",
    kind: "StoragePool",
    name: NAMES.dirPool,
    summary: `dir pool at ${DIR_POOL_PATH}: defined, built, started`,
    manifest: () => header("StoragePool", NAMES.dirPool) + `  type: dir\n  path: ${DIR_POOL_PATH}\n`,
  },
  {
    id: "pool-lvm",
    kind: "StoragePool",
    name: NAMES.lvmPool,
    summary: `logical pool on the test volume group ${TEST_VG}: defined and started (no pool-build: the manifest names no sourceDevices); it holds no volume, as this machine's kernel has no device-mapper (lvcreate cannot create an LV)`,
    manifest: () => header("StoragePool", NAMES.lvmPool) + `  type: logical\n  volumeGroup: ${TEST_VG}\n`,
  },
  {
    id: "net-nat",
    kind: "Network",
    name: NAMES.nat,
    summary: "mode nat (libvirt <forward mode='open'/>), IPv4 with a DHCP range, a static DHCP host and a port forward",
    manifest: () =>
      header("Network", NAMES.nat) +
      `  mode: nat
  ipv4:
    address: 198.18.60.1
    prefix: 24
    dhcp:
      start: 198.18.60.100
      end: 198.18.60.150
      hosts:
        - {mac: "52:54:00:fc:00:10", ip: 198.18.60.10, name: fx-web}
  portForwards:
    - {hostPort: 22862, guestAddress: 198.18.60.10, guestPort: 22}
`,
  },
  {
    id: "net-iso6",
    kind: "Network",
    name: NAMES.iso6,
    summary: "mode isolated, IPv6 only, with a DHCPv6 range",
    manifest: () =>
      header("Network", NAMES.iso6) +
      `  mode: isolated
  ipv6: {address: "fd00:60::1", prefix: 64, dhcp: {start: "fd00:60::100", end: "fd00:60::1ff"}}
`,
  },
  {
    id: "net-route",
    kind: "Network",
    name: NAMES.route,
    summary: "mode route, IPv4 (with DHCP) and IPv6",
    manifest: () =>
      header("Network", NAMES.route) +
      `  mode: route
  ipv4: {address: 198.18.61.1, prefix: 24, dhcp: {start: 198.18.61.100, end: 198.18.61.150}}
  ipv6: {address: "fd00:61::1", prefix: 64}
`,
  },
  {
    id: "vm-web",
    kind: "VirtualMachine",
    name: NAMES.web,
    summary: `2 vCPUs, 256Mi, direct kernel boot; a qcow2 disk (size) and a raw disk in ${NAMES.dirPool}; a NIC on ${NAMES.nat} (MAC set) and a passt user NIC with a port forward (MAC libvirt's); serial console; VNC on 127.0.0.1 without password`,
    manifest: (g) =>
      header("VirtualMachine", NAMES.web) +
      `  domainType: qemu
  cpus: 2
  memory: 256Mi
${boot(g)}  disks:
    - {name: root, pool: ${NAMES.dirPool}, size: 64Mi}
    - {name: data, pool: ${NAMES.dirPool}, size: 16Mi, format: raw}
  interfaces:
    - {network: ${NAMES.nat}, mac: "52:54:00:fc:00:10"}
    - user:
        portForwards: [{hostPort: 22861, guestPort: 22}]
  consoles:
    serial: true
    vnc: {listen: 127.0.0.1}
`,
  },
  {
    id: "vm-secure",
    kind: "VirtualMachine",
    name: NAMES.secure,
    // No disk: this machine's kernel has no device-mapper, so no LV can be created in the
    // logical pool (lvcreate: "/dev/mapper/control: open failed"), and the dir pool's disks
    // are covered by vm-web.
    summary: "q35, firmware uefi-secure (OVMF secure boot, SMM) and a TPM; no disk; direct kernel boot",
    manifest: (g) =>
      header("VirtualMachine", NAMES.secure) +
      `  domainType: qemu
  machine: q35
  memory: 256Mi
  firmware: uefi-secure
  tpm: true
${boot(g)}`,
  },
];

// ---------------------------------------------------------------------------------------
// Pure: manifests → what the controller would define

export interface Loaded<T> {
  object: T;
  name: string;
  /** "Kind/name", the controller's key. */
  key: string;
  file: string;
  specHash: string;
}

/** The controller instance the fixtures were defined as (owner metadata, derived UUIDs). */
export const FIXTURE_INSTANCE = "fx";

/** Manifest file of an object in the manifest directory, as the owner metadata records it. */
export function manifestFile(kind: CaseKind, name: string): string {
  const dir = { VirtualMachine: "virtualmachines", Network: "networks", StoragePool: "storagepools" }[kind];
  return `${dir}/${name}.yaml`;
}

/** Parses and validates one manifest as the store does (defaults applied; specHash of the spec as written). */
export function loadManifest<T extends VirtualMachine | Network | StoragePool>(text: string): Loaded<T> {
  const raw = parse(text) as Record<string, unknown>;
  const result = validateDocument(raw);
  if (!result.ok) throw new Error(`invalid fixture manifest: ${JSON.stringify(result.issues)}`);
  const object = result.object as T;
  const name = object.metadata.name;
  return { object, name, key: `${object.kind}/${name}`, file: manifestFile(object.kind, name), specHash: specHash(raw.spec) };
}

export interface DesiredVolume {
  pool: string;
  poolType: string;
  volume: string;
  capacity: number;
  format: "qcow2" | "raw";
  xml: string;
}

export interface DesiredDomain {
  xml: string;
  disks: ResolvedDisk[];
  volumes: DesiredVolume[];
  owner: OwnerMetadata;
}

/**
 * The domain XML of a VM's first define (planVm with no live domain and none of its disks
 * yet): every disk's volume is created by kvmctl, so all of them are in createdVolumes.
 * `poolTypes`: each pool the VM names, by name → "dir" | "logical".
 */
export function desiredDomain(vm: Loaded<VirtualMachine>, poolTypes: ReadonlyMap<string, string>): DesiredDomain {
  const { spec } = vm.object;
  const disks: ResolvedDisk[] = [];
  const volumes: DesiredVolume[] = [];
  const created = new Set<string>();
  for (const disk of spec.disks) {
    const poolType = poolTypes.get(disk.pool);
    if (!poolType) throw new Error(`${vm.key}: pool ${disk.pool} is not a fixture case`);
    if (disk.size === undefined || disk.from) throw new Error(`${vm.key}: fixture disks are created with a size`);
    const format = disk.format ?? (poolType === "logical" ? "raw" : "qcow2");
    const volume = volumeNameFor(vm.name, disk, format);
    disks.push({ name: disk.name, pool: disk.pool, volume, format, bus: disk.bus, cache: disk.cache, io: disk.io, readOnly: disk.readOnly });
    created.add(`${disk.pool}/${volume}`);
    volumes.push({ pool: disk.pool, poolType, volume, capacity: disk.size, format, xml: buildVolumeXml(volume, disk.size, format, poolType) });
  }
  const owner: OwnerMetadata = { manifest: vm.key, instance: FIXTURE_INSTANCE, file: vm.file, specHash: vm.specHash, deletionPolicy: spec.deletionPolicy, createdVolumes: [...created].sort() };
  const xml = buildDomainXml({
    name: vm.name,
    uuid: ownedUuid("VirtualMachine", vm.name),
    spec,
    domainType: spec.domainType ?? DEFAULT_DOMAIN_TYPE,
    disks,
    owner,
    consoleLog: spec.consoles.serial ? `${CONSOLE_LOG_DIR}/${vm.name}.log` : undefined,
    vncPassword: undefined,
  });
  return { xml, disks, volumes, owner };
}

/** The network XML of a first define (nothing kept from libvirt yet). */
export function desiredNetwork(net: Loaded<Network>): { xml: string; owner: OwnerMetadata } {
  const owner: OwnerMetadata = { manifest: net.key, instance: FIXTURE_INSTANCE, file: net.file, specHash: net.specHash };
  return { xml: buildNetworkXml(net.name, net.object.spec, owner, {}), owner };
}

export function desiredPool(pool: Loaded<StoragePool>): { xml: string } {
  return { xml: buildPoolXml(pool.name, pool.object.spec, poolUuid(pool.name, FIXTURE_INSTANCE)) };
}

export function poolTypesOf(pools: Loaded<StoragePool>[]): Map<string, string> {
  return new Map(pools.map((p) => [p.name, p.object.spec.type]));
}

// ---------------------------------------------------------------------------------------
// Capture (needs the test environment)

interface VirshResult {
  stdout: string;
  stderr: string;
  ok: boolean;
}

async function virshTry(args: string[]): Promise<VirshResult> {
  const r = await execa("virsh", ["-q", "-c", LIBVIRT_URI, ...args], { reject: false, timeout: 120_000, stdin: "ignore", stripFinalNewline: false });
  return { stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? "").trim(), ok: r.exitCode === 0 };
}

async function virsh(args: string[]): Promise<string> {
  const r = await virshTry(args);
  if (!r.ok) throw new Error(`virsh ${args.join(" ")} failed: ${r.stderr}`);
  return r.stdout;
}

function log(message: string): void {
  process.stderr.write(`capture-fixtures: ${message}\n`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Removes every object this script makes; tolerant of what does not exist. Returns failures. */
async function cleanUp(volumes: { pool: string; volume: string }[]): Promise<string[]> {
  const failures: string[] = [];
  const attempt = async (args: string[], tolerate: RegExp) => {
    const r = await virshTry(args);
    if (!r.ok && !tolerate.test(r.stderr)) failures.push(`virsh ${args.join(" ")}: ${r.stderr}`);
  };
  const missing = /not found|no domain|no network|no storage pool|failed to get|Storage volume not found/i;
  for (const c of CASES.filter((c) => c.kind === "VirtualMachine")) {
    await attempt(["destroy", c.name], /not running|domain is not running|not found|failed to get domain/i);
    await attempt(["undefine", c.name, "--nvram"], missing);
  }
  for (const v of volumes) await attempt(["vol-delete", v.volume, "--pool", v.pool], /not found|failed to get|inactive|not active/i);
  for (const c of CASES.filter((c) => c.kind === "Network")) {
    await attempt(["net-destroy", c.name], /not active|not found|failed to get network/i);
    await attempt(["net-undefine", c.name], missing);
  }
  for (const c of CASES.filter((c) => c.kind === "StoragePool")) {
    // pool-destroy only stops the pool; never pool-delete (for the logical pool that would remove the test VG).
    await attempt(["pool-destroy", c.name], /not active|not found|failed to get pool/i);
    await attempt(["pool-undefine", c.name], missing);
  }
  fs.rmSync(WORK_DIR, { recursive: true, force: true });
  return failures;
}

interface Output {
  file: string;
  what: string;
  text: string;
}

async function capture(): Promise<{ outputs: Output[]; version: string; notes: string[] }> {
  const { assertInTestEnv, testGuest } = await import("./env.js");
  await assertInTestEnv();
  if (process.getuid?.() !== 0) throw new Error("run as root (inside the test namespace)");
  const guest = testGuest();
  const outputs: Output[] = [];
  const notes: string[] = [];
  const put = (file: string, what: string, text: string) => outputs.push({ file, what, text: text.endsWith("\n") ? text : `${text}\n` });

  const manifests = new Map(CASES.map((c) => [c.id, c.manifest(guest)]));
  const pools = CASES.filter((c) => c.kind === "StoragePool").map((c) => ({ c, loaded: loadManifest<StoragePool>(manifests.get(c.id)!) }));
  const nets = CASES.filter((c) => c.kind === "Network").map((c) => ({ c, loaded: loadManifest<Network>(manifests.get(c.id)!) }));
  const vms = CASES.filter((c) => c.kind === "VirtualMachine").map((c) => ({ c, loaded: loadManifest<VirtualMachine>(manifests.get(c.id)!) }));
  const poolTypes = poolTypesOf(pools.map((p) => p.loaded));
  const domains = vms.map((v) => ({ ...v, desired: desiredDomain(v.loaded, poolTypes) }));
  const allVolumes = domains.flatMap((d) => d.desired.volumes);
  for (const c of CASES) put(`${c.id}.yaml`, "the manifest", manifests.get(c.id)!);

  // Leftovers of a run that died (and was not swept).
  const stale = await cleanUp(allVolumes);
  if (stale.length) log(`pre-clean: ${stale.join("; ")}`);

  const version = (await virsh(["version"])).trim();
  const xmlFile = (label: string, xml: string) => {
    const file = path.join(WORK_DIR, "xml", `${label}.xml`);
    fs.writeFileSync(file, xml, { mode: 0o600 });
    return file;
  };

  try {
    fs.mkdirSync(path.join(WORK_DIR, "xml"), { recursive: true });
    fs.mkdirSync(CONSOLE_LOG_DIR, { recursive: true });
    // QEMU (libvirt-qemu) reads the disks and libvirt's virtlogd writes the console logs here.
    fs.chmodSync(WORK_DIR, 0o755);

    for (const { c, loaded } of pools) {
      const { xml } = desiredPool(loaded);
      put(`${c.id}.defined.xml`, "kvmctl's XML, as given to `virsh pool-define`", xml);
      log(`pool ${c.name}`);
      await virsh(["pool-define", xmlFile(c.id, xml)]);
      // As the StoragePool plan: dir pools are built (the directory); a logical pool without sourceDevices is not.
      if (loaded.object.spec.type === "dir") await virsh(["pool-build", c.name]);
      await virsh(["pool-start", c.name]);
    }
    for (const v of allVolumes) {
      log(`volume ${v.pool}/${v.volume}`);
      await virsh(["vol-create", v.pool, xmlFile(`vol-${v.volume}`, v.xml)]);
    }
    for (const { c } of pools) {
      put(`${c.id}.inactive.xml`, "`virsh pool-dumpxml --inactive` of the started pool", await virsh(["pool-dumpxml", "--inactive", c.name]));
      put(`${c.id}.running.xml`, "`virsh pool-dumpxml` of the started pool (what the controller's observer reads)", await virsh(["pool-dumpxml", c.name]));
    }

    for (const { c, loaded } of nets) {
      const { xml } = desiredNetwork(loaded);
      put(`${c.id}.defined.xml`, "kvmctl's XML, as given to `virsh net-define`", xml);
      log(`network ${c.name}`);
      await virsh(["net-define", xmlFile(c.id, xml)]);
      await virsh(["net-start", c.name]);
      put(`${c.id}.inactive.xml`, "`virsh net-dumpxml --inactive` after net-start (the persistent definition)", await virsh(["net-dumpxml", "--inactive", c.name]));
      put(`${c.id}.running.xml`, "`virsh net-dumpxml` after net-start (the running network)", await virsh(["net-dumpxml", c.name]));
    }

    for (const { c, desired } of domains) {
      put(`${c.id}.defined.xml`, "kvmctl's XML, as given to `virsh define`", desired.xml);
      log(`domain ${c.name}`);
      await virsh(["define", xmlFile(c.id, desired.xml)]);
      put(`${c.id}.inactive.xml`, "`virsh dumpxml --inactive --security-info` after define", await virsh(["dumpxml", "--inactive", "--security-info", c.name]));
      for (const v of desired.volumes) {
        const disk = desired.disks.find((d) => d.volume === v.volume && d.pool === v.pool)!;
        put(`${c.id}.vol-${disk.name}.xml`, `\`virsh vol-dumpxml --pool ${v.pool} ${v.volume}\` (disk ${disk.name}, created by vol-create with kvmctl's volume XML)`, await virsh(["vol-dumpxml", "--pool", v.pool, v.volume]));
        put(`${c.id}.vol-${disk.name}.defined.xml`, "kvmctl's volume XML, as given to `virsh vol-create`", v.xml);
      }
      const started = await virshTry(["start", c.name]);
      if (!started.ok) {
        notes.push(`${c.id}: \`virsh start\` failed, so there is no running XML: ${started.stderr}`);
        log(`start ${c.name} failed: ${started.stderr}`);
        continue;
      }
      let state = "";
      for (let i = 0; i < 50 && state !== "running"; i++) {
        state = (await virsh(["domstate", c.name])).trim();
        if (state !== "running") await sleep(100);
      }
      if (state !== "running") throw new Error(`${c.name} is ${state} after start`);
      put(`${c.id}.running.xml`, "`virsh dumpxml` of the running domain, right after `virsh start` (what the observer reads)", await virsh(["dumpxml", c.name]));
      // The inactive definition of a running domain is what the controller sees from then on.
      put(`${c.id}.inactive-while-running.xml`, "`virsh dumpxml --inactive --security-info` while the domain runs", await virsh(["dumpxml", "--inactive", "--security-info", c.name]));
      await virsh(["destroy", c.name]);
    }
  } finally {
    const failures = await cleanUp(allVolumes);
    if (failures.length) {
      log(`clean-up failed (run \`npm run testenv:sweep\`): ${failures.join("; ")}`);
      process.exitCode = 1;
    }
  }
  return { outputs, version, notes };
}

function readme(outputs: Output[], version: string, notes: string[]): string {
  const rows = CASES.flatMap((c) => [
    `### ${c.id} — ${c.kind} \`${c.name}\``,
    "",
    c.summary + ".",
    "",
    ...outputs.filter((o) => o.file.startsWith(`${c.id}.`)).map((o) => `- \`${o.file}\`: ${o.what}`),
    "",
  ]);
  return `# Real libvirt 11 XML

Captured by \`testenv/capture-fixtures.ts\` from the test environment's libvirtd (do not edit
by hand; regenerate). For each case: the manifest (\`<case>.yaml\`), the XML kvmctl defined
(\`<case>.defined.xml\`, built by the real builders in \`src/libvirt\` exactly as the
controller's plans call them: first define, owner metadata, name-derived UUIDs, console log
under \`${CONSOLE_LOG_DIR}\`), and what libvirt reported back. \`test/unit/libvirt/real-dumpxml.test.ts\`
checks that none of libvirt's additions (PCI addresses, aliases, controllers, generated MACs,
bridge names, pool capacities ...) is seen as drift.

Regenerate (as root, from the repository root; the lock is shared with the end-to-end tests):

\`\`\`sh
flock /tmp/kvmctl-e2e.lock npm run testenv:exec -- node --import tsx testenv/capture-fixtures.ts
\`\`\`

Object names are stable (\`${TEST_PREFIX}fx-*\`); the sweeper (\`npm run testenv:sweep\`) removes them
if a capture dies half-way. The dir pool lives in \`${DIR_POOL_PATH}\` (removed afterwards); the
logical pool is defined on the existing test volume group \`${TEST_VG}\` (never built or removed).
Values libvirt picks change from run to run: generated MAC addresses (a NIC's without \`mac\`,
a network bridge's), bridge names (virbrN), tap names (vnetN), port ids, domain ids, pty paths,
VNC ports, pool allocation/available, volume timestamps; everything else is the same on every run.

## Versions (\`virsh version\`)

\`\`\`
${version}
\`\`\`

## Files

${rows.join("\n")}${notes.length ? `\n## Notes\n\n${notes.map((n) => `- ${n}`).join("\n")}\n` : ""}`;
}

async function main(): Promise<void> {
  const { outputs, version, notes } = await capture();
  if (process.exitCode) throw new Error("not writing fixtures: clean-up failed");
  // Replace the fixture directory only once everything was captured.
  fs.mkdirSync(FIXTURE_DIR, { recursive: true });
  for (const old of fs.readdirSync(FIXTURE_DIR)) if (/\.(xml|yaml)$/.test(old) || old === "README.md") fs.rmSync(path.join(FIXTURE_DIR, old));
  for (const o of outputs) fs.writeFileSync(path.join(FIXTURE_DIR, o.file), o.text);
  fs.writeFileSync(path.join(FIXTURE_DIR, "README.md"), readme(outputs, version, notes));
  log(`wrote ${outputs.length + 1} files to ${path.relative(process.cwd(), FIXTURE_DIR)}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((error: unknown) => {
    log(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  });
}

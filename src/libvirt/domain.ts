// Domain XML: built from a VirtualMachine spec (plus what the controller resolved: disk
// volumes, console log path, VNC password), parsed back into facts, and compared with
// "preserve intent" — only what the manifest sets counts; libvirt's additions (PCI
// addresses, aliases, controllers, generated MACs) are never drift.
import { createHash } from "node:crypto";
import type { VirtualMachineSpec } from "../api/virtualmachine.js";
import { OWNER_ELEMENT, ownerMetadataNode, parseOwnerMetadata, type OwnerMetadata } from "./metadata.js";
import { attr, buildXml, bytesOf, child, children, parseXml, text, textOf, type XmlNode } from "./xml.js";

export interface ResolvedDisk {
  name: string;
  pool: string;
  volume: string;
  format: "qcow2" | "raw";
  bus: VirtualMachineSpec["disks"][number]["bus"];
  cache?: string;
  io?: string;
  readOnly: boolean;
}

export interface DomainBuildInput {
  name: string;
  uuid?: string;
  spec: VirtualMachineSpec;
  domainType: "kvm" | "qemu";
  disks: ResolvedDisk[];
  owner: OwnerMetadata;
  /** Serial console output goes here (append), for `describe` and debugging. */
  consoleLog?: string;
  vncPassword?: string;
  /** The cloud-init NoCloud seed medium to attach (read-only), and the instance-id it carries. */
  seed?: SeedAttachment;
  /** The Windows unattend medium to attach (read-only), after the seed. */
  unattend?: UnattendAttachment;
}

export interface UnattendAttachment {
  /** The medium on the host (QEMU's 0700 directory under kvmctl's seed directory). */
  file: string;
  /** A CD-ROM (SATA on q35, IDE on pc: Windows Setup has drivers for those, not virtio-scsi) or a floppy (fdc). */
  device: "cdrom" | "floppy";
}

export interface SeedAttachment {
  /** The medium on the host (kvmctl's seed directory). */
  file: string;
  /** A CD-ROM (SATA on q35, IDE on pc) or a virtio disk. */
  device: "cdrom" | "disk";
  /** Recorded in kvmctl's metadata: a new one on a running domain needs a boot to apply (cloud-init re-provisions). */
  instanceId: string;
}

/** The user alias of the seed's <disk>: how it is told apart from the manifest's disks. */
export const SEED_ALIAS = "ua-kvmctl-seed";
const SEED_ELEMENT = "kvmctl:cloudInit";
/** The user alias of the unattend medium's <disk>. */
export const UNATTEND_ALIAS = "ua-kvmctl-unattend";

/** Whether a machine type has a floppy controller on board: pc (i440fx) does, q35 does not. */
export function machineHasFloppyController(machine: string): boolean {
  return !machine.includes("q35");
}

/**
 * The unattend medium's bus: fdc for a floppy; a CD-ROM on SATA (q35's built-in AHCI) or IDE
 * (pc), which Windows Setup reads without extra drivers (it has none for virtio-scsi).
 */
export function unattendBus(device: UnattendAttachment["device"], machine: string): DeviceBus {
  if (device === "floppy") return "fdc";
  return machine.includes("q35") ? "sata" : "ide";
}

/**
 * The seed's bus: virtio for a disk; a CD-ROM on SCSI, on a virtio-scsi controller, on q35 and
 * pc alike. Not SATA or IDE: the kernels cloud images boot often lack them (Debian's cloud
 * kernel has no AHCI driver), while every kernel built for VMs has virtio_scsi and sr_mod.
 */
export function seedBus(device: SeedAttachment["device"]): ResolvedDisk["bus"] {
  return device === "disk" ? "virtio" : "scsi";
}

/** A disk's bus, or a floppy's. */
export type DeviceBus = ResolvedDisk["bus"] | "fdc";

const DEVICE_PREFIX: Record<DeviceBus, string> = { virtio: "vd", sata: "sd", scsi: "sd", ide: "hd", fdc: "fd" };

/** vda, vdb, ..., per bus prefix, in manifest order. */
export function targetDevs(disks: { bus: DeviceBus }[]): string[] {
  const counters: Record<string, number> = {};
  return disks.map((d) => {
    const prefix = DEVICE_PREFIX[d.bus];
    const index = counters[prefix] ?? 0;
    counters[prefix] = index + 1;
    return prefix + String.fromCharCode("a".charCodeAt(0) + index);
  });
}

function cpuModeFor(spec: VirtualMachineSpec, domainType: "kvm" | "qemu"): string | undefined {
  if (spec.cpuMode) return spec.cpuMode;
  return domainType === "kvm" ? "host-passthrough" : undefined;
}

export function buildDomainXml(input: DomainBuildInput): string {
  const { spec } = input;
  const secure = spec.firmware === "uefi-secure";
  const efi = spec.firmware !== "bios";
  const os: XmlNode = {
    ...(efi ? { "@_firmware": "efi" } : {}),
    type: { "@_arch": "x86_64", "@_machine": spec.machine, "#text": "hvm" },
    ...(efi ? { loader: { "@_secure": secure ? "yes" : "no" } } : {}),
    ...(spec.boot
      ? { kernel: spec.boot.kernel, ...(spec.boot.initrd ? { initrd: spec.boot.initrd } : {}), ...(spec.boot.cmdline ? { cmdline: spec.boot.cmdline } : {}) }
      : { boot: { "@_dev": "hd" } }),
  };
  const devs = targetDevs(input.disks);
  const seed = input.seed;
  // The seed's target is the next free name of its bus's prefix after the manifest's disks
  // (which keep theirs): it never collides, and it stays put while the disks do.
  const seedTarget = seed ? targetDevs([...input.disks, { bus: seedBus(seed.device) }]).at(-1)! : undefined;
  // The unattend medium's: the next free name after the disks and the seed.
  const unattend = input.unattend;
  const unattendTarget = unattend ? targetDevs([...input.disks, ...(seed ? [{ bus: seedBus(seed.device) }] : []), { bus: unattendBus(unattend.device, spec.machine) }]).at(-1)! : undefined;
  const devices: XmlNode = {
    disk: [
      ...input.disks.map((d, i) => ({
        "@_type": "volume",
        "@_device": "disk",
        driver: { "@_name": "qemu", "@_type": d.format, ...(d.cache ? { "@_cache": d.cache } : {}), ...(d.io ? { "@_io": d.io } : {}) },
        source: { "@_pool": d.pool, "@_volume": d.volume },
        target: { "@_dev": devs[i], "@_bus": d.bus },
        ...(d.readOnly ? { readonly: "" } : {}),
        alias: { "@_name": `ua-disk-${d.name}` },
      })),
      ...(seed
        ? [
            {
              "@_type": "file",
              "@_device": seed.device,
              driver: { "@_name": "qemu", "@_type": "raw" },
              source: { "@_file": seed.file },
              target: { "@_dev": seedTarget, "@_bus": seedBus(seed.device) },
              readonly: "",
              alias: { "@_name": SEED_ALIAS },
            },
          ]
        : []),
      ...(unattend
        ? [
            {
              "@_type": "file",
              "@_device": unattend.device,
              driver: { "@_name": "qemu", "@_type": "raw" },
              source: { "@_file": unattend.file },
              target: { "@_dev": unattendTarget, "@_bus": unattendBus(unattend.device, spec.machine) },
              readonly: "",
              alias: { "@_name": UNATTEND_ALIAS },
            },
          ]
        : []),
    ],
    // The CD-ROM's SCSI controller, index 0: the manifest's own scsi disks (if any) share it
    // (without it libvirt would add lsilogic, which cloud kernels lack too).
    ...(seed?.device === "cdrom" ? { controller: [{ "@_type": "scsi", "@_index": "0", "@_model": "virtio-scsi" }] } : {}),
    interface: spec.interfaces.map((nic) => {
      const common = { ...(nic.mac ? { mac: { "@_address": nic.mac } } : {}), model: { "@_type": nic.model } };
      if (nic.network) return { "@_type": "network", ...common, source: { "@_network": nic.network } };
      if (nic.bridge) return { "@_type": "bridge", ...common, source: { "@_bridge": nic.bridge } };
      const user = nic.user!;
      return {
        "@_type": "user",
        ...common,
        backend: { "@_type": "passt" },
        ...(user.ip ? { ip: [{ "@_address": user.ip.address, "@_family": "ipv4", "@_prefix": String(user.ip.prefix) }] } : {}),
        portForward: user.portForwards.map((pf) => ({
          "@_proto": pf.protocol,
          "@_address": pf.address,
          range: [{ "@_start": String(pf.hostPort), "@_to": String(pf.guestPort) }],
        })),
      };
    }),
    ...(spec.consoles.serial
      ? {
          serial: [{ "@_type": "pty", ...(input.consoleLog ? { log: { "@_file": input.consoleLog, "@_append": "on" } } : {}), target: { "@_port": "0" } }],
          console: [{ "@_type": "pty", target: { "@_type": "serial", "@_port": "0" } }],
        }
      : {}),
    ...(spec.consoles.vnc
      ? {
          graphics: [
            {
              "@_type": "vnc",
              ...(spec.consoles.vnc.port ? { "@_port": String(spec.consoles.vnc.port), "@_autoport": "no" } : { "@_port": "-1", "@_autoport": "yes" }),
              ...(input.vncPassword !== undefined ? { "@_passwd": input.vncPassword } : {}),
              listen: [{ "@_type": "address", "@_address": spec.consoles.vnc.listen }],
            },
          ],
        }
      : {}),
    ...(spec.rng ? { rng: [{ "@_model": "virtio", backend: { "@_model": "random", "#text": "/dev/urandom" } }] } : {}),
    ...(spec.tpm ? { tpm: [{ "@_model": "tpm-crb", backend: { "@_type": "emulator", "@_version": "2.0" } }] } : {}),
  };
  const cpuMode = cpuModeFor(spec, input.domainType);
  return buildXml({
    domain: {
      "@_type": input.domainType,
      name: input.name,
      ...(input.uuid ? { uuid: input.uuid } : {}),
      metadata: seed ? withSeedMetadata(ownerMetadataNode(input.owner), seed.instanceId) : ownerMetadataNode(input.owner),
      memory: { "@_unit": "KiB", "#text": String(Math.ceil(spec.memory / 1024)) },
      currentMemory: { "@_unit": "KiB", "#text": String(Math.ceil(spec.memory / 1024)) },
      vcpu: { "@_placement": "static", "#text": String(spec.cpus) },
      os,
      features: { acpi: "", apic: "", ...(secure ? { smm: { "@_state": "on" } } : {}) },
      ...(cpuMode ? { cpu: { "@_mode": cpuMode } } : {}),
      clock: { "@_offset": "utc" },
      on_poweroff: "destroy",
      on_reboot: "restart",
      // A crash stops the domain; the controller restarts it when the runStrategy says so.
      on_crash: "destroy",
      devices,
    },
  });
}

/** kvmctl's owner element with the seed's instance-id as a child element. */
function withSeedMetadata(metadata: XmlNode, instanceId: string): XmlNode {
  const owner = metadata[OWNER_ELEMENT] as XmlNode;
  return { ...metadata, [OWNER_ELEMENT]: { ...owner, [SEED_ELEMENT]: { "@_instanceId": instanceId } } };
}

export interface SeedFacts {
  device: string;
  target: string;
  bus?: string;
  file?: string;
  readOnly: boolean;
  /** From kvmctl's metadata (absent on a domain kvmctl did not give a seed). */
  instanceId?: string;
}

export interface DiskFacts {
  target: string;
  bus?: string;
  pool?: string;
  volume?: string;
  file?: string;
  format?: string;
  cache?: string;
  io?: string;
  readOnly: boolean;
}

export interface InterfaceFacts {
  type: string;
  source?: string;
  mac?: string;
  model?: string;
  backend?: string;
  /** The host-side device (tap) of a running domain's interface. */
  target?: string;
  ip?: { address: string; prefix: number };
  portForwards: { protocol: string; address?: string; hostPort: number; guestPort: number }[];
}

export interface DomainFacts {
  name: string;
  uuid: string;
  type: string;
  memoryBytes: number;
  vcpus: number;
  machine?: string;
  firmware: "bios" | "uefi" | "uefi-secure";
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  cpuMode?: string;
  disks: DiskFacts[];
  /** The cloud-init seed medium kvmctl attached (its <disk> carries alias ua-kvmctl-seed). */
  seed?: SeedFacts;
  /** The unattend medium kvmctl attached (alias ua-kvmctl-unattend); `file` absent once ejected from a running domain. */
  unattend?: SeedFacts;
  interfaces: InterfaceFacts[];
  serial: boolean;
  consoleLog?: string;
  /**
   * passwordDigest: a short hash of the VNC password, so a changed password file is drift
   * while the password itself stays out of facts, diffs and logs. libvirt shows the password
   * only in `dumpxml --security-info`, which the observer uses for the definition.
   */
  vnc?: { listen?: string; port?: number; autoport: boolean; passwordDigest?: string };
  rng: boolean;
  tpm: boolean;
  owner?: OwnerMetadata;
}

export function parseDomainXml(xml: string): DomainFacts {
  const domain = child(parseXml(xml), "domain");
  if (!domain) throw new Error("not a <domain> document");
  const os = child(domain, "os");
  const loader = child(os, "loader");
  const efi = attr(os, "firmware") === "efi" || (text(loader) ?? "").toLowerCase().includes("ovmf") || attr(loader, "type") === "pflash";
  const devices = child(domain, "devices");
  const vnc = children(devices, "graphics").find((g) => attr(g, "type") === "vnc");
  const serial = children(devices, "serial")[0];
  return {
    name: textOf(domain, "name") ?? "",
    uuid: textOf(domain, "uuid") ?? "",
    type: attr(domain, "type") ?? "",
    memoryBytes: bytesOf(child(domain, "memory")) ?? 0,
    vcpus: Number(textOf(domain, "vcpu") ?? "0"),
    machine: attr(child(os, "type"), "machine"),
    firmware: efi ? (attr(loader, "secure") === "yes" ? "uefi-secure" : "uefi") : "bios",
    kernel: textOf(os, "kernel"),
    initrd: textOf(os, "initrd"),
    cmdline: textOf(os, "cmdline"),
    cpuMode: attr(child(domain, "cpu"), "mode"),
    disks: children(devices, "disk")
      .filter((d) => (attr(d, "device") ?? "disk") === "disk" && attr(child(d, "alias"), "name") !== SEED_ALIAS)
      .map((d) => {
        const source = child(d, "source");
        const driver = child(d, "driver");
        return {
          target: attr(child(d, "target"), "dev") ?? "",
          bus: attr(child(d, "target"), "bus"),
          pool: attr(source, "pool"),
          volume: attr(source, "volume"),
          file: attr(source, "file") ?? attr(source, "dev"),
          format: attr(driver, "type"),
          cache: attr(driver, "cache"),
          io: attr(driver, "io"),
          readOnly: child(d, "readonly") !== undefined,
        };
      }),
    seed: seedFacts(
      children(devices, "disk").find((d) => attr(child(d, "alias"), "name") === SEED_ALIAS),
      attr(child(child(child(domain, "metadata"), OWNER_ELEMENT), SEED_ELEMENT), "instanceId"),
    ),
    unattend: seedFacts(children(devices, "disk").find((d) => attr(child(d, "alias"), "name") === UNATTEND_ALIAS), undefined),
    interfaces: children(devices, "interface").map((nic) => {
      const type = attr(nic, "type") ?? "";
      const source = child(nic, "source");
      const ip = children(nic, "ip")[0];
      return {
        type,
        source: attr(source, "network") ?? attr(source, "bridge"),
        mac: attr(child(nic, "mac"), "address"),
        model: attr(child(nic, "model"), "type"),
        backend: attr(child(nic, "backend"), "type"),
        target: attr(child(nic, "target"), "dev"),
        ip: ip && attr(ip, "address") ? { address: attr(ip, "address")!, prefix: Number(attr(ip, "prefix") ?? "0") } : undefined,
        portForwards: children(nic, "portForward").flatMap((pf) =>
          children(pf, "range").map((r) => ({
            protocol: attr(pf, "proto") ?? "tcp",
            address: attr(pf, "address"),
            hostPort: Number(attr(r, "start")),
            guestPort: Number(attr(r, "to") ?? attr(r, "start")),
          })),
        ),
      };
    }),
    serial: serial !== undefined,
    consoleLog: attr(child(serial, "log"), "file"),
    vnc: vnc
      ? {
          listen: attr(children(vnc, "listen")[0], "address") ?? attr(vnc, "listen"),
          port: attr(vnc, "port") && attr(vnc, "port") !== "-1" ? Number(attr(vnc, "port")) : undefined,
          autoport: attr(vnc, "autoport") === "yes",
          passwordDigest: secretDigest(attr(vnc, "passwd")),
        }
      : undefined,
    rng: children(devices, "rng").length > 0,
    tpm: children(devices, "tpm").length > 0,
    owner: parseOwnerMetadata(child(domain, "metadata")),
  };
}

function seedFacts(disk: XmlNode | undefined, instanceId: string | undefined): SeedFacts | undefined {
  if (!disk) return undefined;
  const target = child(disk, "target");
  const source = child(disk, "source");
  return {
    device: attr(disk, "device") ?? "disk",
    target: attr(target, "dev") ?? "",
    bus: attr(target, "bus"),
    file: attr(source, "file"),
    readOnly: child(disk, "readonly") !== undefined,
    ...(instanceId ? { instanceId } : {}),
  };
}

export interface DomainDifference {
  field: string;
  desired: string;
  live: string;
  /** Needs a cold boot to take effect on a running domain. */
  needsRestart: boolean;
}

/**
 * Compares what the manifest sets with a live (or inactive) definition. Memory, vCPUs,
 * devices and boot all need a cold restart with the persistent-definition approach we use.
 */
export function compareDomain(desired: DomainFacts, live: DomainFacts): DomainDifference[] {
  const diffs: DomainDifference[] = [];
  const add = (field: string, d: unknown, l: unknown, needsRestart = true) => {
    if (JSON.stringify(d) !== JSON.stringify(l)) diffs.push({ field, desired: fmt(d), live: fmt(l), needsRestart });
  };
  add("type", desired.type, live.type);
  add("memory", desired.memoryBytes, live.memoryBytes);
  add("cpus", desired.vcpus, live.vcpus);
  // libvirt expands "q35" to "pc-q35-10.0": the manifest's alias matches any version of it.
  if (desired.machine && live.machine && !machineMatches(desired.machine, live.machine)) add("machine", desired.machine, live.machine);
  add("firmware", desired.firmware, live.firmware);
  add("boot.kernel", desired.kernel, live.kernel);
  add("boot.initrd", desired.initrd, live.initrd);
  add("boot.cmdline", desired.cmdline, live.cmdline);
  if (desired.cpuMode) add("cpuMode", desired.cpuMode, live.cpuMode);
  add("disks", desired.disks.map(diskIntent), live.disks.map(diskIntent));
  add("cloudInit.seed", seedIntent(desired.seed), seedIntent(live.seed));
  // A new instance-id makes cloud-init provision the guest again, at its next boot.
  add("cloudInit.instanceId", desired.seed?.instanceId ?? null, live.seed?.instanceId ?? null);
  // Attaching or moving the unattend medium needs a boot; dropping it (ejectAfterFirstBoot)
  // does not: the running guest keeps the medium it has open until it powers off.
  add("unattend", seedIntent(desired.unattend), seedIntent(live.unattend), desired.unattend !== undefined);
  // A MAC the manifest does not set is libvirt's choice, not drift.
  add(
    "interfaces",
    desired.interfaces.map((nic) => interfaceIntent(nic, nic.mac !== undefined)),
    live.interfaces.map((nic, i) => interfaceIntent(nic, desired.interfaces[i]?.mac !== undefined)),
  );
  add("consoles.serial", desired.serial, live.serial);
  add("consoles.vnc", vncIntent(desired.vnc), vncIntent(live.vnc));
  add("rng", desired.rng, live.rng);
  add("tpm", desired.tpm, live.tpm);
  return diffs;
}

function machineMatches(desired: string, live: string): boolean {
  if (desired === live) return true;
  if (desired === "q35") return /^pc-q35-/.test(live);
  if (desired === "pc") return /^pc-i440fx-/.test(live);
  return false;
}

function diskIntent(d: DiskFacts) {
  return { target: d.target, bus: d.bus, pool: d.pool, volume: d.volume, file: d.file, format: d.format, cache: d.cache ?? null, io: d.io ?? null, readOnly: d.readOnly };
}

function seedIntent(seed: SeedFacts | undefined) {
  return seed ? { device: seed.device, target: seed.target, bus: seed.bus ?? null, file: seed.file ?? null, readOnly: seed.readOnly } : null;
}

function interfaceIntent(nic: InterfaceFacts, withMac: boolean) {
  return {
    type: nic.type,
    source: nic.source ?? null,
    model: nic.model ?? null,
    mac: withMac ? (nic.mac ?? null) : null,
    ip: nic.ip ?? null,
    portForwards: nic.portForwards,
  };
}

/** With autoport the port is libvirt's choice. */
function vncIntent(vnc: DomainFacts["vnc"]) {
  if (!vnc) return null;
  return { listen: vnc.listen ?? null, port: vnc.autoport ? null : (vnc.port ?? null), password: vnc.passwordDigest ?? null };
}

function secretDigest(secret: string | undefined): string | undefined {
  return secret === undefined ? undefined : createHash("sha256").update(secret).digest("hex").slice(0, 12);
}

function fmt(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

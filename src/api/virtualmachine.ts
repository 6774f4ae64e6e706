// VirtualMachine: DESIGN.md §1. Defaults are applied here, so controllers see one shape.
import { z } from "zod";
import { API_VERSION, objectMeta, quantity, reportDuplicates, statusBase } from "./common.js";
import { absolutePath, dnsLabel, interfaceName, macAddress, port, volumeName } from "./names.js";
import { ipAddress, ipv4Address, isLoopbackAddress } from "./net.js";

export const runStrategies = ["Always", "RerunOnFailure", "Manual", "Halted", "Once"] as const;

/** YAML `user:` with nothing under it is null; treat it as an empty object. */
const emptyAsObject = <T extends z.ZodType>(schema: T) => z.preprocess((v) => (v === null ? {} : v), schema);

export const userPortForward = z.strictObject({
  hostPort: port,
  guestPort: port,
  address: ipAddress.default("127.0.0.1").meta({ description: "Host address to listen on; 127.0.0.1 unless the port must be reachable from outside." }),
  protocol: z.enum(["tcp", "udp"]).default("tcp"),
});

export const userNetwork = z.strictObject({
  portForwards: z.array(userPortForward).default([]),
  ip: z.strictObject({ address: ipv4Address, prefix: z.number().int().min(1).max(30) }).optional(),
});

export const networkInterface = z
  .strictObject({
    network: dnsLabel.optional().meta({ description: "A Network manifest (or an existing libvirt network)." }),
    bridge: interfaceName.optional().meta({ description: "An existing host bridge." }),
    user: emptyAsObject(userNetwork).optional().meta({ description: "passt user networking." }),
    mac: macAddress.optional(),
    model: z.enum(["virtio", "e1000", "e1000e", "rtl8139"]).default("virtio"),
  })
  .check((ctx) => {
    const kinds = (["network", "bridge", "user"] as const).filter((k) => ctx.value[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.issues.push({
        code: "custom",
        input: ctx.value,
        message:
          kinds.length === 0
            ? "an interface needs exactly one of network, bridge or user"
            : `an interface needs exactly one of network, bridge or user, not ${kinds.join(" and ")}`,
      });
    }
  });

export const diskSource = z
  .strictObject({
    volume: volumeName.optional().meta({ description: "Clone this volume." }),
    pool: dnsLabel.optional().meta({ description: "Pool of `volume`; defaults to the disk's pool." }),
    image: absolutePath.optional().meta({ description: "Copy this image file." }),
    url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional().meta({ description: "Download this image (qcow2 or raw) once into the disk's pool as kvmctl-base-<instance>-<sha256[:16]>.<format>, shared by every disk of this controller instance naming the same sha256, and clone it; needs sha256." }),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, { error: "must be 64 hex digits (the image's SHA-256)" })
      .optional()
      .meta({ description: "The SHA-256 of the bytes at `url` (required with url): the download is refused unless it matches." }),
  })
  .check((ctx) => {
    const kinds = (["volume", "image", "url"] as const).filter((k) => ctx.value[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.issues.push({ code: "custom", input: ctx.value, message: "from needs exactly one of volume, image or url" });
    }
    if (ctx.value.pool !== undefined && ctx.value.volume === undefined) {
      ctx.issues.push({ code: "custom", input: ctx.value, path: ["pool"], message: "pool only goes with volume" });
    }
    if (ctx.value.url !== undefined && ctx.value.sha256 === undefined) {
      ctx.issues.push({ code: "custom", input: ctx.value, path: ["sha256"], message: "url needs sha256 (the image's SHA-256, 64 hex digits)" });
    }
    if (ctx.value.sha256 !== undefined && ctx.value.url === undefined) {
      ctx.issues.push({ code: "custom", input: ctx.value, path: ["sha256"], message: "sha256 only goes with url" });
    }
  });

export const disk = z
  .strictObject({
    name: dnsLabel,
    pool: dnsLabel.default("default").meta({ description: "A StoragePool manifest (or an existing libvirt pool)." }),
    volume: volumeName.optional().meta({ description: "Volume name in the pool; default <vm>-<disk>(.qcow2)." }),
    size: quantity.optional().meta({ description: "Created with this size if missing; grown, never shrunk." }),
    from: diskSource.optional(),
    format: z.enum(["qcow2", "raw"]).optional().meta({ description: "Default: qcow2 in dir pools, raw in logical pools." }),
    bus: z.enum(["virtio", "sata", "scsi", "ide"]).default("virtio"),
    cache: z.enum(["default", "none", "writethrough", "writeback", "directsync", "unsafe"]).optional(),
    io: z.enum(["native", "threads", "io_uring"]).optional(),
    readOnly: z.boolean().default(false),
  })
  .check((ctx) => {
    const d = ctx.value;
    if (d.size === undefined && d.from === undefined) {
      ctx.issues.push({ code: "custom", input: d, message: "a disk needs size or from (or both)" });
    }
    if (d.io === "native" && d.cache !== "none" && d.cache !== "directsync") {
      ctx.issues.push({ code: "custom", input: d, path: ["io"], message: "io: native needs cache: none or directsync" });
    }
  });

export const directBoot = z.strictObject({
  kernel: absolutePath,
  initrd: absolutePath.optional(),
  cmdline: z.string().max(4096).optional(),
});

/** cloud-init's instance-id: the guest re-provisions (first-boot modules again) whenever it changes. */
export const instanceId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, { error: "must be 1-128 characters: letters, digits, '.', '_', ':' and '-', starting with a letter or digit" });

export const seedMedia = ["cdrom", "disk"] as const;
export const seedFormats = ["iso", "vfat"] as const;

export const cloudInit = z
  .strictObject({
    userData: z.string().optional().meta({ description: "user-data: #cloud-config YAML (kvmctl's SSH keys are merged in) or a script starting with #! (sent as a second MIME part after kvmctl's #cloud-config)." }),
    userDataSecretFile: absolutePath.optional().meta({ description: "File holding user-data (same rules as userData), kept out of the manifest directory; not with userData." }),
    metaData: z.string().optional().meta({ description: "Extra meta-data keys (a YAML mapping); instance-id comes from instanceId, local-hostname defaults to the VM name." }),
    networkConfig: z.string().optional().meta({ description: "NoCloud network-config (a YAML mapping, network config version 1 or 2), copied as written." }),
    vendorData: z.string().optional().meta({ description: "NoCloud vendor-data, copied as written." }),
    sshAuthorizedKeys: z
      .array(z.string().regex(/^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( .*)?$/, { error: "must be an OpenSSH public key line" }))
      .optional()
      .meta({ description: "Public keys for the image's default user (cloud-init ssh_authorized_keys)." }),
    sshUser: z
      .string()
      .regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: "must be a user name (lower-case letters, digits, '_' and '-', starting with a letter or '_')" })
      .optional()
      .meta({ description: "The user `kvmctl ssh` and `kvmctl ssh-config` log in as when -l is not given (the image's default user, who gets sshAuthorizedKeys: debian, ubuntu, fedora, ...); default root. Not written into the seed." }),
    instanceId: instanceId.optional().meta({ description: "cloud-init instance-id; default derived from the VM's UUID. A new value re-provisions the guest on its next boot." }),
    seedMedium: z.enum(seedMedia).default("cdrom").meta({ description: "How the NoCloud seed (label cidata) is attached: a CD-ROM or a virtio disk." }),
    seedFormat: z.enum(seedFormats).default("iso").meta({ description: "iso (genisoimage), or vfat (disk only: cloud-init does not find VFAT on a CD-ROM)." }),
  })
  .check((ctx) => {
    const c = ctx.value;
    if (c.userData !== undefined && c.userDataSecretFile !== undefined) {
      ctx.issues.push({ code: "custom", input: c, path: ["userDataSecretFile"], message: "give userData or userDataSecretFile, not both" });
    }
    if (c.seedFormat === "vfat" && c.seedMedium === "cdrom") {
      ctx.issues.push({ code: "custom", input: c, path: ["seedFormat"], message: "a vfat seed needs seedMedium: disk (cloud-init does not find VFAT on a CD-ROM: 512-byte sectors on a 2048-byte device); use seedFormat: iso for a CD-ROM" });
    }
  });

export const unattendMedia = ["cdrom", "floppy"] as const;

/** Windows unattend media (seed 004): the answer file on a medium of its own, built per VM. */
export const unattend = z.strictObject({
  secretFile: absolutePath.meta({ description: "The answer file (Autounattend.xml), kept out of the manifest directory; copied byte for byte to the root of the medium as Autounattend.xml." }),
  medium: z.enum(unattendMedia).default("cdrom").meta({ description: "cdrom (an ISO 9660 + Joliet image on a SATA CD-ROM on q35, IDE on pc), or floppy (a 1.44 MB FAT12 image; needs a machine with a floppy controller: pc, not q35)." }),
  ejectAfterFirstBoot: z.boolean().default(false).meta({ description: "Once the domain has run: the medium leaves the definition and its file is removed from the host (the running guest keeps the open medium until it powers off)." }),
});

export const vncAuths = ["password", "sasl"] as const;

export const vncConsole = z
  .strictObject({
    listen: ipAddress.default("127.0.0.1").meta({ description: "Never open to the world by default; any other address needs auth (a password or SASL)." }),
    port: z.number().int().min(5900).max(65535).optional().meta({ description: "Default: allocated by libvirt." }),
    auth: z
      .enum(vncAuths)
      .optional()
      .meta({ description: "password: the VNC password from passwordSecretFile (the default when that is given). sasl: the host's SASL (qemu.conf vnc_sasl, host-wide); kvmctl checks the host and refuses to start the VM rather than offer weaker auth." }),
    passwordSecretFile: absolutePath.optional().meta({ description: "File holding the VNC password (kept out of manifests)." }),
  })
  .check((ctx) => {
    const { listen, passwordSecretFile, auth } = ctx.value;
    if (auth === "password" && passwordSecretFile === undefined) {
      ctx.issues.push({ code: "custom", input: ctx.value, path: ["passwordSecretFile"], message: "auth: password needs passwordSecretFile" });
    }
    // QEMU offers one auth type, and a VNC password wins over SASL: both would silently be password auth.
    if (auth === "sasl" && passwordSecretFile !== undefined) {
      ctx.issues.push({ code: "custom", input: ctx.value, path: ["passwordSecretFile"], message: "auth: sasl takes no passwordSecretFile (QEMU offers one auth type and a VNC password wins over SASL)" });
    }
    // A VNC console reachable from elsewhere without auth is the guest's keyboard for anyone.
    if (!isLoopbackAddress(listen) && passwordSecretFile === undefined && auth !== "sasl") {
      ctx.issues.push({ code: "custom", input: ctx.value, path: ["passwordSecretFile"], message: `a VNC console listening on ${listen} (not loopback) needs passwordSecretFile or auth: sasl` });
    }
  });

/** The VNC auth a console asks for: explicit, else password when a password file is given. */
export function vncAuthOf(vnc: z.output<typeof vncConsole>): "none" | "password" | "sasl" {
  return vnc.auth ?? (vnc.passwordSecretFile !== undefined ? "password" : "none");
}

export const consoles = z.strictObject({
  serial: z.boolean().default(true),
  vnc: emptyAsObject(vncConsole).optional(),
});

export const virtualMachineSpec = z
  .strictObject({
    runStrategy: z.enum(runStrategies).default("Always").meta({ description: "KubeVirt's meanings." }),
    cpus: z.number().int().min(1).max(512).default(1),
    memory: quantity.prefault("1Gi"),
    domainType: z.enum(["kvm", "qemu"]).optional().meta({ description: "qemu = software emulation; default from the controller." }),
    machine: z
      .string()
      .regex(/^(q35|pc|pc-(q35|i440fx)-[0-9.]+)$/, { error: "must be q35, pc, or a versioned pc-q35-X / pc-i440fx-X machine" })
      .default("q35"),
    cpuMode: z.enum(["host-passthrough", "host-model", "maximum"]).optional().meta({ description: "Default: host-passthrough with kvm, QEMU's default model with qemu." }),
    firmware: z.enum(["bios", "uefi", "uefi-secure"]).default("bios"),
    tpm: z.boolean().default(false),
    boot: directBoot.optional(),
    disks: z.array(disk).default([]),
    interfaces: z.array(networkInterface).default([]),
    cloudInit: cloudInit.optional(),
    unattend: unattend.optional().meta({ description: "Windows unattend media: Autounattend.xml from a secret file on a per-VM CD-ROM or floppy." }),
    consoles: consoles.prefault({}),
    rng: z.boolean().default(true),
    autostart: z.boolean().default(false),
    deletionPolicy: z.enum(["Retain", "Delete"]).default("Retain").meta({ description: "Retain keeps disks when the VM is deleted." }),
    terminationGracePeriodSeconds: z.number().int().min(0).max(3600).default(60).meta({ description: "ACPI shutdown wait before a forced stop." }),
    allowRestart: z.boolean().default(false).meta({ description: "Restart a running VM to apply changes that need a cold boot." }),
  })
  .check((ctx) => {
    const spec = ctx.value;
    if (spec.firmware === "uefi-secure" && !spec.machine.includes("q35")) {
      ctx.issues.push({ code: "custom", input: spec, path: ["machine"], message: "uefi-secure needs a q35 machine (secure boot needs SMM)" });
    }
    reportDuplicates(ctx, spec.disks.map((d) => d.name), (i) => ["disks", i, "name"], "disk name");
    const hostPorts: string[] = [];
    const hostPortPaths: (string | number)[][] = [];
    spec.interfaces.forEach((nic, i) =>
      nic.user?.portForwards.forEach((pf, j) => {
        hostPorts.push(`${pf.protocol}/${pf.hostPort}`);
        hostPortPaths.push(["interfaces", i, "user", "portForwards", j, "hostPort"]);
      }),
    );
    reportDuplicates(ctx, hostPorts, (i) => hostPortPaths[i]!, "host port");
  });

export const vmPhases = ["Pending", "Provisioning", "Starting", "Running", "Stopping", "Stopped", "Failed", "Terminating"] as const;

/** Every status field the controller writes; kvmctl writes no other (a unit test checks). */
export const virtualMachineStatusFields = z.object({
  ...statusBase,
  phase: z.enum(vmPhases).optional(),
  domain: z.looseObject({ uuid: z.string(), state: z.string(), reason: z.string().optional() }).optional(),
  disks: z
    .array(
      z.looseObject({
        name: z.string(),
        pool: z.string(),
        volume: z.string(),
        path: z.string().optional(),
        capacity: z.number().optional(),
        /** from.url: the shared base volume the disk is cloned from. */
        base: z.string().optional(),
        /** from.url while its download runs: bytes so far and the whole size when known. */
        download: z.looseObject({ bytes: z.number(), total: z.number().optional() }).optional(),
      }),
    )
    .optional(),
  interfaces: z.array(z.looseObject({ mac: z.string().optional(), type: z.string(), source: z.string().optional(), ip: z.string().optional() })).optional(),
  ssh: z.looseObject({ host: z.string(), port: z.number() }).optional(),
  vnc: z.looseObject({ listen: z.string(), port: z.number() }).optional(),
  consoleLog: z.string().optional(),
  /** runStrategy Once / RerunOnFailure: the domain has run (kept across controller restarts). */
  startedOnce: z.boolean().optional(),
  /** The cloud-init seed attached: its instance-id and a short digest of its content (never the key or user-data). */
  cloudInit: z.looseObject({ instanceId: z.string(), medium: z.string(), format: z.string(), seedHash: z.string().optional() }).optional(),
  /** The unattend medium: which, and whether the definition still has it (no digest: a guessable answer file is never confirmable from status). */
  unattend: z.looseObject({ medium: z.string(), attached: z.boolean() }).optional(),
});

/** Status as read: parsed leniently (unknown fields kept), a hand edit never blocks the spec. */
export const virtualMachineStatus = z.looseObject(virtualMachineStatusFields.shape);

export const virtualMachine = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal("VirtualMachine"),
  metadata: objectMeta,
  spec: virtualMachineSpec.prefault({}),
  status: virtualMachineStatus.optional(),
});

export type VirtualMachine = z.infer<typeof virtualMachine>;
export type VirtualMachineSpec = z.infer<typeof virtualMachineSpec>;
export type VirtualMachineStatus = z.infer<typeof virtualMachineStatus>;
export type Disk = z.infer<typeof disk>;
export type NetworkInterface = z.infer<typeof networkInterface>;
export type CloudInit = z.infer<typeof cloudInit>;
export type Unattend = z.infer<typeof unattend>;

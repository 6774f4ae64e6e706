// What to do about one VirtualMachine: pure, from the manifest, the live domain, its pools
// and networks, and what this controller remembers (a stop in progress). Unit-tested
// without a host; the reconciler only carries the steps out.
import type { VirtualMachineSpec } from "../../api/virtualmachine.js";
import { buildDomainXml, compareDomain, ownedUuid, parsedOnce, parseDomainXml, type DomainBuildInput, type DomainDifference, type DomainFacts, type ResolvedDisk } from "../../libvirt/index.js";
import { shownUrl } from "../../api/net.js";
import { machineHasFloppyController } from "../../libvirt/domain.js";
import type { DownloadState, LiveDomain, LiveNetwork, LivePool, UnattendLocation } from "../../ports/index.js";
import type { VncSaslSupport } from "../../libvirt/qemu-conf.js";
import type { Step } from "../kind.js";
import { notOursMessage, ownershipOf } from "../ownership.js";
import { phaseFor, type VmPhase } from "./lifecycle.js";

/**
 * Steps on libvirt objects, each naming its object by UUID (a domain's, a pool's): the port
 * never resolves a name. `pool` is the pool's name, for messages.
 */
export type VmAction =
  | { type: "createVolume"; pool: string; poolUuid: string; poolType: string; volume: string; capacity: number; format: "qcow2" | "raw" }
  | { type: "cloneVolume"; pool: string; poolUuid: string; poolType: string; volume: string; format: "qcow2" | "raw"; fromPool: string; fromPoolUuid: string; fromVolume: string }
  | { type: "importImage"; pool: string; poolUuid: string; poolType: string; volume: string; image: string; format: "qcow2" | "raw"; minCapacity?: number }
  /**
   * from.url: the verified download `file` imported into this instance's base volume (once per
   * pool: the act claims it, skips it when another reconcile finished it meanwhile, and replaces
   * a base of this instance left by an import cut short; the name says whose it is).
   */
  | { type: "importBase"; pool: string; poolUuid: string; poolType: string; volume: string; file: string; format: "qcow2" | "raw"; sha256: string; url: string }
  | { type: "resizeVolume"; pool: string; poolUuid: string; volume: string; capacity: number }
  /** A disk of the running domain grown live (QEMU holds the image's write lock: vol-resize cannot). */
  | { type: "resizeDiskLive"; uuid: string; target: string; pool: string; volume: string; capacity: number }
  /** The cloud-init seed (re)built: its inputs changed, or it is missing. The files are the reconcile's, never in the step. */
  | { type: "buildSeed"; root: string; dir: string; path: string; format: "iso" | "vfat"; hash: string; instanceId: string }
  /** The unattend medium (re)built: the answer file changed, or the medium is missing. Its content is the reconcile's, never in the step. */
  | { type: "buildUnattend"; at: UnattendLocation; medium: "cdrom" | "floppy"; hash: string }
  /** ejectAfterFirstBoot: the domain has run, the medium's file (its directory, record and key) leaves the host. */
  | { type: "removeUnattend"; at: UnattendLocation }
  | { type: "define"; xml: string }
  | { type: "autostart"; uuid: string; enabled: boolean }
  | { type: "start"; uuid: string }
  | { type: "shutdown"; uuid: string }
  | { type: "destroy"; uuid: string }
  | { type: "undefine"; uuid: string }
  /** poolUuid undefined: the pool is gone from libvirt (the step then fails and says so). */
  | { type: "deleteVolume"; pool: string; poolUuid: string | undefined; volume: string }
  /** The VM's pinned SSH host key forgotten (deletionPolicy Delete). */
  | { type: "removeHostKey"; vm: string };

/**
 * spec.cloudInit's seed as the plan sees it: where the medium goes (always known), and — when
 * the controller rendered it (a reconcile, not `kvmctl diff`) — the hash of what it should hold
 * and the hash of what the medium holds now. Never the files (they hold the host key).
 */
export interface VmSeedInput {
  /** The seed directory root (settings.seedDir). */
  root: string;
  /** `<root>/<instance>/<vm>`. */
  dir: string;
  /** `<dir>/seed.img`. */
  path: string;
  medium: "cdrom" | "disk";
  format: "iso" | "vfat";
  instanceId: string;
  /** sha256 of the rendered seed; undefined: not rendered here (kvmctl diff). */
  hash?: string;
  /** The hash recorded for the medium on disk; undefined: none, or not the file it was recorded for. */
  builtHash?: string;
}

/** A disk from a URL as a reconcile sees it (not in kvmctl diff: nothing is asked of the downloads there). */
export interface VmBaseInput {
  /** The base volume's name (baseVolumeName). */
  volume: string;
  /** The base volume in the pool was recorded as a whole import; false: missing, or left by an import cut short. */
  imported: boolean;
  /** Another reconcile of this controller is importing it now (SharedServices.baseImports). */
  importing: boolean;
  download: DownloadState;
}

/** A disk waiting for its base image: downloading, or being imported by another reconcile. */
export interface VmDownloadWait {
  disk: string;
  url: string;
  sha256: string;
  pool: string;
  /** The base volume it will be cloned from. */
  volume: string;
  /** Where the download stands; undefined in kvmctl diff. */
  state?: DownloadState;
  /** Another reconcile is importing the base. */
  importing?: boolean;
}

/**
 * The base volume of a disk from a URL: named from the controller instance and the checksum, so
 * every VM of this instance naming the image shares one per pool, and no other instance's base
 * (nor one an earlier kvmctl named `kvmctl-base-<sha>`) ever has this name. Only the name can
 * say whose a volume is (libvirt volumes have no metadata), and only a name this instance owns
 * is ever deleted and imported again (an import cut short).
 */
export function baseVolumeName(instance: string, sha256: string, format: "qcow2" | "raw"): string {
  return `kvmctl-base-${instance}-${sha256.toLowerCase().slice(0, 16)}.${format}`;
}


function mib(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

/** "downloading URL for disk "root": 45% (7.2 MiB of 16.0 MiB)", and the like. */
export function downloadMessage(wait: VmDownloadWait): string {
  const what = `${shownUrl(wait.url)} for disk "${wait.disk}"`;
  if (wait.importing) return `waiting for the import of the base image ${wait.pool}/${wait.volume} (disk "${wait.disk}")`;
  const state = wait.state;
  if (!state) return `download ${what} into ${wait.pool}/${wait.volume}, check its sha256 and clone it`;
  const done = state.total ? `${Math.floor((state.bytes / state.total) * 100)}% (${mib(state.bytes)} of ${mib(state.total)})` : `${mib(state.bytes)}`;
  if (state.phase === "failed") return `downloading ${what}: broken at ${done} (${state.message ?? "failed"}); resuming`;
  if (state.phase === "absent") return state.bytes > 0 ? `downloading ${what}: resuming at ${mib(state.bytes)}` : `downloading ${what}: starting`;
  return `downloading ${what}: ${done}`;
}

/**
 * spec.unattend's medium as the plan sees it: where it goes, and — in a reconcile, not
 * `kvmctl diff` — the keyed digest of what it should hold and of what it holds now, and whether
 * anything of it is on the host. Never the answer file.
 */
export interface VmUnattendInput {
  at: UnattendLocation;
  medium: "cdrom" | "floppy";
  ejectAfterFirstBoot: boolean;
  /** HMAC of the answer file (the port's digest); undefined: not read here (kvmctl diff, or ejected). */
  hash?: string;
  builtHash?: string;
  /** Something of the medium is on the host (known in a reconcile only). */
  present?: boolean;
}

export interface VmPlanInput {
  key: string;
  name: string;
  /** This controller instance (src/controllers/ownership.ts). */
  instance: string;
  file: string;
  spec: VirtualMachineSpec;
  specHash: string;
  live: LiveDomain | undefined;
  pools: Map<string, LivePool>;
  networks: Map<string, LiveNetwork>;
  defaultDomainType: "kvm" | "qemu";
  consoleLogDir: string;
  vncPassword?: string;
  /** The host's VNC SASL, asked only when spec.consoles.vnc.auth is sasl. */
  vncSasl?: VncSaslSupport;
  /** Set when spec.cloudInit is. */
  seed?: VmSeedInput;
  /** Disks from a URL (by disk name), in a reconcile; undefined in kvmctl diff. */
  bases?: Map<string, VmBaseInput>;
  /** spec.unattend's medium. */
  unattend?: VmUnattendInput;
  /** When this controller asked the guest to shut down (ms epoch), if it did. */
  stopRequestedAt?: number;
  /** A restart to apply changes was begun and the domain must come back up. */
  restartPending: boolean;
  /** status.startedOnce: for runStrategy Once and RerunOnFailure. */
  startedOnce: boolean;
  now: number;
}

export interface VmPlan {
  /** The domain's UUID: libvirt's when it exists, else the one the definition gives it. */
  uuid: string;
  steps: Step<VmAction>[];
  phase: VmPhase;
  ready: boolean;
  reason: string;
  message: string;
  /** The domain is being stopped (gracefully, then by force). */
  stopping: boolean;
  /** Set: the steps include a graceful shutdown this controller must remember. */
  beginStop?: boolean;
  restartPending: boolean;
  /** Fields that changed in the definition but need a cold boot (and allowRestart is off). */
  restartRequired: DomainDifference[];
  /** Waiting for a pool or network: not an error. */
  waitingFor?: string;
  /** A spec that cannot work as written. */
  invalid?: { reason: string; message: string };
  /** The host cannot give what the spec asks (fixable on the host, without a spec change): no steps. */
  hostRefusal?: { reason: string; message: string };
  requeueAfterMs?: number;
  disks: ResolvedDisk[];
  /** The seed this plan attaches (and builds, when its hash changed). */
  seed?: VmSeedInput;
  /** Disks waiting for their base image (then there are no steps: the reconcile starts the downloads and looks again). */
  downloads?: VmDownloadWait[];
  /** The unattend medium, and whether this plan attaches it (false: ejected after the first boot). */
  unattend?: { medium: "cdrom" | "floppy"; attached: boolean };
}

/**
 * An unchanged manifest asks for the same definition every pass: it is built and parsed once
 * per input (keyed by the input's JSON, which is all buildDomainXml reads).
 */
let building: DomainBuildInput | undefined;
const builtDefinition = parsedOnce(() => {
  const xml = buildDomainXml(building!);
  return { xml, facts: parseDomainXml(xml) };
}, 2048);
function desiredDefinition(input: DomainBuildInput): { xml: string; facts: DomainFacts } {
  building = input;
  try {
    return builtDefinition(JSON.stringify(input));
  } finally {
    building = undefined;
  }
}

const ACTIVE_STATES = new Set(["running", "paused", "blocked", "pmsuspended", "in shutdown", "idle"]);

export function isActive(live: LiveDomain | undefined): boolean {
  return !!live && ACTIVE_STATES.has(live.state);
}

/** The volume name a disk uses: its own, else <vm>-<disk>, with .qcow2 for qcow2. */
export function volumeNameFor(vm: string, disk: VirtualMachineSpec["disks"][number], format: "qcow2" | "raw"): string {
  return disk.volume ?? `${vm}-${disk.name}${format === "qcow2" ? ".qcow2" : ""}`;
}

function wantsRunning(input: VmPlanInput): boolean {
  const { spec, live } = input;
  switch (spec.runStrategy) {
    case "Always":
      return true;
    case "Halted":
      return false;
    case "Manual":
      // Left as the operator left it; a restart this controller began still completes.
      return isActive(live) || input.restartPending;
    case "Once":
      return !input.startedOnce || isActive(live) || input.restartPending;
    case "RerunOnFailure":
      // A clean guest shutdown ends it; a crash or a destroy by hand starts it again.
      if (!input.startedOnce || isActive(live) || input.restartPending) return true;
      return live?.reason !== "shutdown";
  }
}

export function planVm(input: VmPlanInput): VmPlan {
  const { spec, name, live } = input;
  const steps: Step<VmAction>[] = [];
  const uuid = live?.config.uuid || ownedUuid("VirtualMachine", name);
  const base = { uuid, restartPending: input.restartPending, restartRequired: [], disks: [] as ResolvedDisk[] };

  const ownership = live ? ownershipOf(live.config.owner, input.key, input.instance) : { of: "mine" as const };
  if (ownership.of === "foreign" || ownership.of === "other-instance") {
    const { reason, message } = notOursMessage(ownership, `a domain named "${name}"`, input.instance);
    return { ...base, steps, phase: "Failed", ready: false, stopping: false, reason, message, invalid: { reason, message } };
  }

  // A floppy needs a floppy controller: q35 has none on board (libvirt's domcapabilities lists
  // the fdc bus for q35 too, so the machine type decides; see README).
  if (spec.unattend?.medium === "floppy" && !machineHasFloppyController(spec.machine)) {
    const message = `spec.unattend.medium floppy needs a machine with a floppy controller, and ${spec.machine} (q35) has none: use medium: cdrom, or machine: pc (i440fx)`;
    return { ...base, steps, phase: "Failed", ready: false, stopping: false, reason: "FloppyUnsupported", message, invalid: { reason: "FloppyUnsupported", message } };
  }

  // SASL is host-wide and QEMU has no weaker fallback to refuse: kvmctl does not define or
  // start a domain whose console would come up with less than the manifest asks.
  if (spec.consoles.vnc?.auth === "sasl" && input.vncSasl && !input.vncSasl.usable) {
    const message = `spec.consoles.vnc.auth is sasl, but this host does not give VNC SASL: ${input.vncSasl.reason}`;
    const phase = isActive(live) ? "Running" : live ? "Stopped" : "Pending";
    return { ...base, steps, phase, ready: false, stopping: false, reason: "VncSaslUnavailable", message, hostRefusal: { reason: "VncSaslUnavailable", message }, requeueAfterMs: 30_000 };
  }

  // Dependencies: every pool and network the VM names must be there and active.
  for (const disk of spec.disks) {
    const pool = input.pools.get(disk.pool);
    if (!pool?.active) return { ...base, steps, phase: "Pending", ready: false, stopping: false, reason: "DependencyNotReady", message: `waiting for StoragePool "${disk.pool}"`, waitingFor: `StoragePool/${disk.pool}` };
    if (disk.from?.volume) {
      const fromPool = input.pools.get(disk.from.pool ?? disk.pool);
      if (!fromPool?.active || !fromPool.volumes.has(disk.from.volume)) {
        return { ...base, steps, phase: "Pending", ready: false, stopping: false, reason: "DependencyNotReady", message: `waiting for volume "${disk.from.volume}" in pool "${disk.from.pool ?? disk.pool}"`, waitingFor: `StoragePool/${disk.from.pool ?? disk.pool}` };
      }
    }
  }
  for (const nic of spec.interfaces) {
    if (nic.network && !input.networks.get(nic.network)?.active) {
      return { ...base, steps, phase: "Pending", ready: false, stopping: false, reason: "DependencyNotReady", message: `waiting for Network "${nic.network}"`, waitingFor: `Network/${nic.network}` };
    }
  }

  // Disks: create what is missing, grow what is too small (never shrink).
  const created = new Set(live?.config.owner?.createdVolumes ?? []);
  const disks: ResolvedDisk[] = [];
  const waits: VmDownloadWait[] = [];
  for (const disk of spec.disks) {
    const pool = input.pools.get(disk.pool)!;
    const poolUuid = pool.facts.uuid;
    const format = disk.format ?? (pool.facts.type === "logical" ? "raw" : "qcow2");
    const volume = volumeNameFor(name, disk, format);
    disks.push({ name: disk.name, pool: disk.pool, volume, format, bus: disk.bus, cache: disk.cache, io: disk.io, readOnly: disk.readOnly });
    const existing = pool.volumes.get(volume);
    if (!existing) {
      created.add(`${disk.pool}/${volume}`);
      if (disk.from?.volume) {
        const fromPool = disk.from.pool ?? disk.pool;
        steps.push({ action: { type: "cloneVolume", pool: disk.pool, poolUuid, poolType: pool.facts.type, volume, format, fromPool, fromPoolUuid: input.pools.get(fromPool)!.facts.uuid, fromVolume: disk.from.volume }, message: `clone ${disk.from.volume} to ${disk.pool}/${volume}` });
        if (disk.size !== undefined) steps.push({ action: { type: "resizeVolume", pool: disk.pool, poolUuid, volume, capacity: disk.size }, message: `grow ${volume} to at least ${disk.size} bytes` });
      } else if (disk.from?.url) {
        const sha256 = disk.from.sha256!.toLowerCase();
        const baseVolume = baseVolumeName(input.instance, sha256, format);
        const known = input.bases?.get(disk.name);
        const baseThere = pool.volumes.has(baseVolume);
        const clone = () => {
          steps.push({ action: { type: "cloneVolume", pool: disk.pool, poolUuid, poolType: pool.facts.type, volume, format, fromPool: disk.pool, fromPoolUuid: poolUuid, fromVolume: baseVolume }, message: `clone the base image ${baseVolume} to ${disk.pool}/${volume}` });
          if (disk.size !== undefined) steps.push({ action: { type: "resizeVolume", pool: disk.pool, poolUuid, volume, capacity: disk.size }, message: `grow ${volume} to at least ${disk.size} bytes` });
        };
        const wait = { disk: disk.name, url: disk.from.url, sha256, pool: disk.pool, volume: baseVolume };
        if (baseThere && (known === undefined || known.imported)) clone();
        else if (known?.importing) waits.push({ ...wait, importing: true, state: known.download });
        else if (known?.download.phase === "complete" && known.download.file) {
          steps.push({
            action: { type: "importBase", pool: disk.pool, poolUuid, poolType: pool.facts.type, volume: baseVolume, file: known.download.file, format, sha256, url: disk.from.url },
            message: `${baseThere ? "replace the incomplete base image" : "import the downloaded base image into"} ${disk.pool}/${baseVolume} (sha256 ${sha256.slice(0, 16)}… verified)`,
          });
          clone();
        } else if (known?.download.phase === "mismatch") {
          const message = `disk "${disk.name}": the image at ${shownUrl(disk.from.url)} has sha256 ${known.download.actual ?? "(unknown)"}, not the expected ${sha256}; nothing was kept (fix from.url or from.sha256)`;
          return { ...base, steps: [], phase: "Failed", ready: false, stopping: false, reason: "ChecksumMismatch", message, invalid: { reason: "ChecksumMismatch", message } };
        } else waits.push({ ...wait, ...(known ? { state: known.download } : {}) });
      } else if (disk.from?.image) {
        steps.push({ action: { type: "importImage", pool: disk.pool, poolUuid, poolType: pool.facts.type, volume, image: disk.from.image, format, minCapacity: disk.size }, message: `import ${disk.from.image} into ${disk.pool}/${volume}` });
      } else {
        steps.push({ action: { type: "createVolume", pool: disk.pool, poolUuid, poolType: pool.facts.type, volume, capacity: disk.size!, format }, message: `create ${disk.pool}/${volume} (${disk.size} bytes)` });
      }
    } else if (disk.size !== undefined && existing.capacity < disk.size) {
      // A disk the running domain has open is grown through QEMU, which also tells the guest.
      const attached = isActive(live) ? live!.running?.disks.find((d) => d.pool === disk.pool && d.volume === volume) : undefined;
      if (attached) steps.push({ action: { type: "resizeDiskLive", uuid, target: attached.target, pool: disk.pool, volume, capacity: disk.size }, message: `grow ${volume} from ${existing.capacity} to ${disk.size} bytes (live: blockresize ${attached.target})` });
      else steps.push({ action: { type: "resizeVolume", pool: disk.pool, poolUuid, volume, capacity: disk.size }, message: `grow ${volume} from ${existing.capacity} to ${disk.size} bytes` });
    }
  }

  // A disk waiting for its base image: nothing else is done before it is there (no domain
  // defined on a disk that does not exist yet).
  if (waits.length) {
    return { ...base, steps: [], phase: "Provisioning", ready: false, stopping: false, reason: "Downloading", message: waits.map(downloadMessage).join("; "), requeueAfterMs: 2_000, disks, downloads: waits };
  }

  // The cloud-init seed, before the definition that names it: built when what it should hold
  // (its hash) is not what the medium holds. A running guest has the old medium open: the new
  // one is read at its next cold boot (see the message below).
  const seed = input.seed;
  const seedBuilt = seed?.hash !== undefined && seed.hash !== seed.builtHash;
  if (seed && seedBuilt) {
    steps.push({
      action: { type: "buildSeed", root: seed.root, dir: seed.dir, path: seed.path, format: seed.format, hash: seed.hash!, instanceId: seed.instanceId },
      message: `${seed.builtHash === undefined ? "build" : "rebuild"} the cloud-init seed (${seed.format} on a ${seed.medium}, instance-id ${seed.instanceId})`,
    });
  }

  // The unattend medium, built like the seed before the definition that names it; once the
  // domain has run (ejectAfterFirstBoot) it leaves the definition and its file the host. The
  // running guest keeps the medium QEMU has open (its file unlinked) until it powers off: an
  // eject seconds after the start would take the answer file from under Windows Setup.
  const unattend = input.unattend;
  const ejected = unattend !== undefined && unattend.ejectAfterFirstBoot && input.startedOnce;
  const unattendBuilt = unattend !== undefined && !ejected && unattend.hash !== undefined && unattend.hash !== unattend.builtHash;
  if (unattend && unattendBuilt) {
    steps.push({ action: { type: "buildUnattend", at: unattend.at, medium: unattend.medium, hash: unattend.hash! }, message: `${unattend.builtHash === undefined ? "build" : "rebuild"} the unattend medium (Autounattend.xml on a ${unattend.medium})` });
  }

  // Definition: compare only what the manifest sets; redefine on drift or a new spec.
  const { xml, facts: desired } = desiredDefinition({
    name,
    uuid,
    spec,
    domainType: spec.domainType ?? input.defaultDomainType,
    disks,
    owner: { manifest: input.key, instance: input.instance, file: input.file, specHash: input.specHash, deletionPolicy: spec.deletionPolicy, createdVolumes: [...created].sort() },
    consoleLog: spec.consoles.serial ? `${input.consoleLogDir}/${name}.log` : undefined,
    vncPassword: input.vncPassword,
    seed: seed ? { file: seed.path, device: seed.medium, instanceId: seed.instanceId } : undefined,
    unattend: unattend && !ejected ? { file: unattend.at.path, device: unattend.medium } : undefined,
  });
  const configDrift = live ? compareDomain(desired, live.config) : [];
  const ownerStale =
    live !== undefined &&
    (ownership.of === "legacy" ||
      live.config.owner?.specHash !== input.specHash ||
      // Moved to another file: the record of where it came from follows (the prune policy reads it).
      live.config.owner?.file !== input.file ||
      JSON.stringify(live.config.owner?.createdVolumes ?? []) !== JSON.stringify([...created].sort()) ||
      live.config.owner?.deletionPolicy !== spec.deletionPolicy);
  if (!live || configDrift.length || ownerStale || !live.persistent) {
    const what = !live ? "define" : configDrift.length ? `redefine: ${configDrift.map((d) => d.field).join(", ")} changed` : ownership.of === "legacy" ? `adopt: made by an earlier kvmctl, now owned by instance ${input.instance}` : "update ownership metadata";
    steps.push({ action: { type: "define", xml }, message: what });
  }
  if (unattend && ejected && unattend.present) {
    steps.push({ action: { type: "removeUnattend", at: unattend.at }, message: "remove the unattend medium from the host (ejectAfterFirstBoot: the domain has run; a running guest keeps its open medium until it powers off)" });
  }
  // A newly defined domain starts with autostart off: only turning it on costs a command then.
  if (live ? live.autostart !== spec.autostart : spec.autostart) steps.push({ action: { type: "autostart", uuid, enabled: spec.autostart }, message: `autostart ${spec.autostart ? "on" : "off"}` });

  // Power: what the runStrategy wants, against what the domain is doing.
  const active = isActive(live);
  const runningDrift = active && live?.running ? compareDomain(desired, live.running).filter((d) => d.needsRestart) : [];
  let restartPending = input.restartPending;
  let restartRequired: DomainDifference[] = [];
  if (runningDrift.length) {
    if (spec.allowRestart) restartPending = true;
    else restartRequired = runningDrift;
  }
  const want = wantsRunning({ ...input, restartPending });
  const mustStop = active && (!want || (restartPending && runningDrift.length > 0));
  let beginStop = false;
  let requeueAfterMs: number | undefined;
  if (mustStop) {
    const grace = spec.terminationGracePeriodSeconds * 1000;
    if (input.stopRequestedAt === undefined) {
      steps.push({ action: { type: "shutdown", uuid }, message: restartPending ? "shut down to apply changes that need a restart" : "shut down (ACPI)" });
      beginStop = true;
      requeueAfterMs = 1_000;
    } else if (input.now - input.stopRequestedAt >= grace) {
      steps.push({ action: { type: "destroy", uuid }, message: `force off: no shutdown after ${spec.terminationGracePeriodSeconds}s` });
    } else {
      requeueAfterMs = 1_000;
    }
  } else if (!active && want) {
    steps.push({ action: { type: "start", uuid }, message: live ? `start (was ${live.state}${live.reason ? `: ${live.reason}` : ""})` : "start" });
    restartPending = false;
  }

  const willBeActive = (active && !mustStop) || steps.some((s) => s.action.type === "start");
  const phase = phaseFor({ creatingDisks: steps.some((s) => ["createVolume", "cloneVolume", "importImage", "importBase"].includes(s.action.type)), stopping: mustStop, willBeActive, liveState: live?.state, liveReason: live?.reason });
  const settled = mustStop ? false : want ? willBeActive : true;
  const reason = restartRequired.length ? "RestartRequired" : settled ? "Succeeded" : "Progressing";
  const message = restartRequired.length
    ? `changes need a restart: ${restartRequired.map((d) => d.field).join(", ")} (set allowRestart: true, or restart the VM)`
    : settled
      ? want
        ? "domain is running"
        : spec.runStrategy === "Manual"
          ? "domain is defined (runStrategy Manual)"
          : "domain is stopped"
      : mustStop
        ? "stopping"
        : "converging";
  // A seed rebuilt under a running guest with the same instance-id (a new one is RestartRequired
  // above, through the definition): cloud-init reads it at the next boot but runs the
  // per-instance modules (users, keys, write_files, runcmd) again only for a new instance-id.
  const seedNote =
    seedBuilt && seed!.builtHash !== undefined && active && !restartRequired.some((d) => d.field === "cloudInit.instanceId")
      ? `; the cloud-init seed changed: the guest reads it at its next boot, but cloud-init re-runs its per-instance modules (users, SSH keys, write_files, runcmd) only for a new instance-id (set spec.cloudInit.instanceId to re-provision)`
      : "";
  const unattendNote =
    unattendBuilt && unattend!.builtHash !== undefined && active ? "; the unattend medium changed: the running guest has the old one until its next boot" : "";
  return {
    uuid,
    steps,
    phase,
    ready: settled,
    reason,
    message: message + seedNote + unattendNote,
    stopping: mustStop,
    beginStop,
    restartPending,
    restartRequired,
    requeueAfterMs,
    disks,
    seed,
    ...(unattend ? { unattend: { medium: unattend.medium, attached: !ejected } } : {}),
  };
}

/**
 * Manifest deleted: destroy and undefine the owned domain; delete only volumes it created, and
 * only with deletionPolicy Delete, and only this instance's (see ../ownership.ts: an earlier
 * kvmctl's domain nobody adopted, another instance's, are left alone). `pools` gives the UUID
 * of each volume's pool. Volumes go
 * before the definition: its metadata is the only record of which volumes kvmctl created, so a
 * failed volume deletion is retried with the record still there. A transient domain (undefined
 * by hand while running) is gone once it is off: there is nothing to undefine.
 */
export function planVmDeletion(key: string, live: LiveDomain | undefined, pools: ReadonlyMap<string, LivePool>, instance: string, options: { hostKey?: boolean } = {}): Step<VmAction>[] {
  if (!live || !live.config.owner || ownershipOf(live.config.owner, key, instance).of !== "mine") return [];
  const uuid = live.config.uuid;
  const steps: Step<VmAction>[] = [];
  if (isActive(live)) steps.push({ action: { type: "destroy", uuid }, message: "power off" });
  if (live.config.owner.deletionPolicy === "Delete") {
    for (const entry of live.config.owner.createdVolumes ?? []) {
      const [pool, volume] = entry.split("/") as [string, string];
      steps.push({ action: { type: "deleteVolume", pool, poolUuid: pools.get(pool)?.facts.uuid, volume }, message: `delete volume ${entry} (deletionPolicy: Delete)` });
    }
    // With the disks gone nothing holds the pinned key; with Retain it stays, so a retained
    // disk's guest (which has that host key) is still pinned when the manifest comes back.
    // Before the undefine, like the volumes: the definition records the deletionPolicy.
    const vm = key.slice(key.indexOf("/") + 1);
    if (options.hostKey) steps.push({ action: { type: "removeHostKey", vm }, message: "remove the pinned SSH host key (deletionPolicy: Delete)" });
  }
  if (live.persistent) steps.push({ action: { type: "undefine", uuid }, message: "undefine (with its NVRAM)" });
  return steps;
}

// VirtualMachine: observe → plan (pure, ./plan.ts) → act through the ports → report.
import { TerminalError, DependencyNotReadyError } from "../../runtime/index.js";
import { buildVolumeXml, machineHasFloppyController, ownedUuid } from "../../libvirt/index.js";
import type { VirtualMachineSpec } from "../../api/index.js";
import { shownUrl } from "../../api/net.js";
import { sshEndpointOf } from "../../api/ssh-endpoint.js";
import { CloudInitError, instanceIdOf, renderSeed } from "../../cloudinit/seed.js";
import { NotFoundError, type ImageInfo, type LiveDomain, type LiveState, type Ports, type SeedFile, type UnattendLocation } from "../../ports/index.js";
import { objectOf } from "../../store/index.js";
import type { KindContext, KindController, KindOutcome, KindRequest, PlanContext, PlanTarget, SharedServices, StatusFacts } from "../kind.js";
import type { HostPathRef } from "../host-path-policy.js";
import { leftAloneMessage, ownershipOf } from "../ownership.js";
import { phaseFor } from "./lifecycle.js";
import { baseVolumeName, downloadMessage, isActive, planVm, planVmDeletion, volumeNameFor, type VmAction, type VmBaseInput, type VmPlan, type VmPlanInput, type VmSeedInput, type VmUnattendInput } from "./plan.js";
import type { VncSaslSupport } from "../../libvirt/qemu-conf.js";

/** What this controller remembers between reconciles of one VM (lost on restart, harmlessly). */
export interface VmMemory {
  stopRequestedAt?: number;
  restartPending: boolean;
  /**
   * runStrategy Once / RerunOnFailure: the domain has run. Also written to status (which a
   * restarted controller reads back), but the controller's snapshot does not see its own
   * status writes, so it is remembered here too.
   */
  startedOnce?: boolean;
  /** When a start of this controller came up without the SASL console asked for (and was stopped again). */
  saslRefusedAt?: number;
}

/** After a start came up without SASL, no new start for this long: no start-and-stop loop. */
const SASL_REFUSAL_MS = 10 * 60_000;

const DEFAULT_CONSOLE_LOG_DIR = "/var/log/kvmctl/console";
export const DEFAULT_SEED_DIR = "/var/lib/kvmctl/seeds";

/** Where a VM's seed medium goes: `<seedDir>/<instance>/<vm>/seed.img` (one name whatever the format). */
export function seedLocation(settings: { seedDir?: string; instance: string }, vm: string): { root: string; dir: string; path: string } {
  const root = settings.seedDir ?? DEFAULT_SEED_DIR;
  const dir = `${root}/${settings.instance}/${vm}`;
  return { root, dir, path: `${dir}/seed.img` };
}

/**
 * Where a VM's unattend medium goes: `<seedDir>/<instance>/<vm>/unattend/unattend.img`, in a
 * 0700 directory of QEMU's user (src/adapters/unattend-media.ts has the whole layout).
 */
export function unattendLocation(settings: { seedDir?: string; instance: string }, vm: string): UnattendLocation {
  const { root, dir: vmDir } = seedLocation(settings, vm);
  return { root, vmDir, dir: `${vmDir}/unattend`, path: `${vmDir}/unattend/unattend.img` };
}

/** spec.unattend's place, from the spec alone (kvmctl diff too); the seed directory as seedShape finds it. */
function unattendShape(settings: { seedDir?: string; instance: string }, name: string, spec: VirtualMachineSpec, live: LiveDomain | undefined): VmUnattendInput | undefined {
  const u = spec.unattend;
  if (!u) return undefined;
  const suffix = `/${settings.instance}/${name}/unattend/unattend.img`;
  const liveFile = live?.config.unattend?.file;
  const seedDir = settings.seedDir ?? (liveFile?.endsWith(suffix) && liveFile.length > suffix.length ? liveFile.slice(0, -suffix.length) : undefined);
  return { at: unattendLocation({ instance: settings.instance, seedDir }, name), medium: u.medium, ejectAfterFirstBoot: u.ejectAfterFirstBoot };
}

/**
 * The answer file read (a reconcile only, and not once the medium is ejected) through the
 * SecretFiles port, and its keyed digest: the content stays here and in the buildUnattend
 * step's closure. Messages name the file, never its content.
 */
async function readUnattend(ctx: KindContext<VmMemory>, spec: VirtualMachineSpec, shape: VmUnattendInput, ejected: boolean): Promise<{ unattend: VmUnattendInput; content?: Buffer }> {
  const media = ctx.ports.unattendMedia;
  if (ejected) return { unattend: { ...shape, present: await media.present(shape.at) } };
  const file = spec.unattend!.secretFile;
  let content: Buffer;
  try {
    content = await ctx.ports.secrets.readBytes(file);
  } catch (error) {
    throw new DependencyNotReadyError(`cannot read the unattend file ${file}: ${(error as Error).message}`, 15_000);
  }
  if (content.length === 0) throw new DependencyNotReadyError(`the unattend file ${file} is empty`, 15_000);
  const hash = await media.digest(shape.at, shape.medium, content);
  const builtHash = await media.builtHash(shape.at);
  return { unattend: { ...shape, hash, ...(builtHash ? { builtHash } : {}), present: true }, content };
}

/** The domain UUID the plan will use (libvirt's, else kvmctl's derived one): the default instance-id comes from it. */
function domainUuid(live: LiveDomain | undefined, name: string): string {
  return live?.config.uuid || ownedUuid("VirtualMachine", name);
}

/**
 * The seed's place and instance-id, from the spec alone (no key, no secret: kvmctl diff too).
 * Without a seed directory setting (kvmctl diff) the one the domain's seed is in, as for the
 * console log: a controller started with --seed-dir is not drift to diff.
 */
function seedShape(settings: { seedDir?: string; instance: string }, name: string, spec: VirtualMachineSpec, live: LiveDomain | undefined): VmSeedInput | undefined {
  const c = spec.cloudInit;
  if (!c) return undefined;
  const suffix = `/${settings.instance}/${name}/seed.img`;
  const liveFile = live?.config.seed?.file;
  const seedDir = settings.seedDir ?? (liveFile?.endsWith(suffix) && liveFile.length > suffix.length ? liveFile.slice(0, -suffix.length) : undefined);
  return { ...seedLocation({ instance: settings.instance, seedDir }, name), medium: c.seedMedium, format: c.seedFormat, instanceId: instanceIdOf(domainUuid(live, name), c) };
}

/**
 * Renders the seed (a reconcile only): the VM's pinned host key made or reused first, the
 * user-data secret file read through the SecretFiles port. Its files stay here and in the
 * buildSeed step's closure; the plan sees only hashes. Messages name files and fields, never
 * their content.
 */
async function renderVmSeed(ctx: KindContext<VmMemory>, name: string, spec: VirtualMachineSpec, live: LiveDomain | undefined, shape: VmSeedInput): Promise<{ seed: VmSeedInput; files: SeedFile[] }> {
  const c = spec.cloudInit!;
  const hostKey = await ctx.ports.hostKeys.ensure(name);
  let userDataFromFile: string | undefined;
  if (c.userDataSecretFile) {
    try {
      userDataFromFile = await ctx.ports.secrets.read(c.userDataSecretFile);
    } catch (error) {
      // The port's messages name the file and the errno, never content.
      throw new DependencyNotReadyError(`cannot read the user-data file ${c.userDataSecretFile}: ${(error as Error).message}`, 15_000);
    }
  }
  let rendered;
  try {
    rendered = renderSeed({ name, uuid: domainUuid(live, name), cloudInit: c, hostKey, ...(userDataFromFile !== undefined ? { userDataFromFile } : {}) });
  } catch (error) {
    if (error instanceof CloudInitError) throw new TerminalError(`${error.field}: ${error.message}`, "InvalidCloudInit");
    throw error;
  }
  const builtHash = await ctx.ports.seedMedia.builtHash(shape.path);
  return { seed: { ...shape, instanceId: rendered.instanceId, hash: rendered.hash, ...(builtHash ? { builtHash } : {}) }, files: rendered.files };
}

/**
 * An image file into a new volume of the pool: uploaded as it is, or converted by qemu-img
 * into the volume libvirt made (another format). `shown` names the image in messages.
 */
async function importFile(ports: Ports, action: { pool: string; poolUuid: string; poolType: string; volume: string; image: string; format: "qcow2" | "raw"; minCapacity?: number; shown?: string }, known?: ImageInfo): Promise<void> {
  const hv = ports.hypervisor;
  const info = known ?? (await ports.images.info(action.image));
  // A backing file (or qcow2 data file) is another host file qemu-img and QEMU would read:
  // the host-path policy checked only the image itself.
  if (info.backingFile !== undefined) throw new TerminalError(`the image ${action.shown ?? action.image} reads another file (${JSON.stringify(info.backingFile)}, a backing or data file): refused; flatten it first (qemu-img convert -O qcow2 IMAGE FLAT)`, "HostPathNotAllowed");
  const capacity = Math.max(info.virtualSize, action.minCapacity ?? 0);
  await hv.createVolume(action.poolUuid, buildVolumeXml(action.volume, action.poolType === "logical" ? capacity : info.virtualSize, action.format, action.poolType));
  if (info.format === action.format) {
    await hv.uploadVolume(action.poolUuid, action.volume, action.image);
  } else {
    // Another format (a qcow2 image into an LV, a raw image into a qcow2 volume): qemu-img
    // writes the converted disk into the volume libvirt just created.
    await ports.images.convert(action.image, info.format, await hv.volumePath(action.poolUuid, action.volume), action.format);
  }
  if (capacity > info.virtualSize && action.poolType !== "logical") await hv.resizeVolume(action.poolUuid, action.volume, capacity);
}

/** What a reconcile rendered for its steps: secrets, kept out of the steps (and so out of diffs and logs). */
interface Rendered {
  seedFiles?: readonly SeedFile[];
  unattend?: Buffer;
}

/** Runs one step; a start resolves to the domain as read right after it (Hypervisor.startDomain). */
async function act(ports: Ports, services: SharedServices, action: VmAction, rendered: Rendered = {}): Promise<LiveDomain | undefined | void> {
  const { seedFiles } = rendered;
  const hv = ports.hypervisor;
  switch (action.type) {
    case "createVolume":
      return hv.createVolume(action.poolUuid, buildVolumeXml(action.volume, action.capacity, action.format, action.poolType));
    case "cloneVolume": {
      const source = await hv.readVolume(action.fromPoolUuid, action.fromVolume);
      if (!source) throw new NotFoundError(`volume ${action.fromVolume} is not in pool ${action.fromPool}`);
      return hv.createVolumeFrom(action.poolUuid, buildVolumeXml(action.volume, source.capacity, action.format, action.poolType), action.fromPoolUuid, action.fromVolume);
    }
    case "importImage":
      return importFile(ports, action);
    case "importBase": {
      const target = `${action.poolUuid}/${action.volume}`;
      const release = services.baseImports.claim(target);
      if (!release) throw new DependencyNotReadyError(`waiting for the import of the base image ${action.pool}/${action.volume}`, 2_000);
      try {
        // Another reconcile finished it since this one planned: nothing to do.
        if (await ports.downloads.imported(action.sha256, target)) return;
        // A base volume not recorded as whole was left by an import of this instance cut short
        // (the name is this instance's: baseVolumeName): made again.
        if (await hv.readVolume(action.poolUuid, action.volume)) await hv.deleteVolume(action.poolUuid, action.volume);
        const info = await ports.images.info(action.file);
        if (info.format !== "qcow2" && info.format !== "raw") throw new TerminalError(`the image at ${shownUrl(action.url)} is ${info.format}; kvmctl imports qcow2 and raw images`, "UnsupportedImageFormat");
        await importFile(ports, { pool: action.pool, poolUuid: action.poolUuid, poolType: action.poolType, volume: action.volume, image: action.file, format: action.format, shown: shownUrl(action.url) }, info);
        await ports.downloads.recordImported(action.sha256, target);
      } finally {
        release();
      }
      return;
    }
    case "resizeVolume":
      // A clone bigger than the size asked for stays as it is: disks never shrink.
      await hv.resizeVolume(action.poolUuid, action.volume, action.capacity);
      return;
    case "resizeDiskLive":
      return hv.resizeDiskLive(action.uuid, action.target, action.capacity);
    case "buildSeed":
      if (!seedFiles) throw new Error("the seed's files were not rendered in this reconcile");
      await ports.seedMedia.prepareDir(action.root, action.dir);
      await ports.seedMedia.build(action.path, action.format, seedFiles);
      await ports.seedMedia.recordBuilt(action.path, action.hash);
      return;
    case "buildUnattend":
      if (!rendered.unattend) throw new Error("the answer file was not read in this reconcile");
      return ports.unattendMedia.build(action.at, action.medium, rendered.unattend, action.hash);
    case "removeUnattend":
      await ports.unattendMedia.remove(action.at);
      return;
    case "removeHostKey":
      return ports.hostKeys.remove(action.vm);
    case "define":
      return hv.defineDomain(action.xml);
    case "autostart":
      return hv.setDomainAutostart(action.uuid, action.enabled);
    case "start":
      return hv.startDomain(action.uuid);
    case "shutdown":
      return hv.shutdownDomain(action.uuid);
    case "destroy":
      return hv.destroyDomain(action.uuid);
    case "undefine":
      return hv.undefineDomain(action.uuid);
    case "deleteVolume":
      if (!action.poolUuid) throw new NotFoundError(`pool ${action.pool} is not in libvirt: volume ${action.volume} cannot be deleted`);
      return hv.deleteVolume(action.poolUuid, action.volume);
  }
}

/** The VNC password from its secret file; a missing or unusable one is waited for (the file may be fixed without a spec change). */
async function readVncPassword(ctx: PlanContext<VmMemory>, file: string | undefined): Promise<string | undefined> {
  if (!file) return undefined;
  let password: string;
  try {
    password = (await ctx.ports.secrets.read(file)).trim();
  } catch (error) {
    throw new DependencyNotReadyError(`cannot read the VNC password file ${file}: ${(error as Error).message}`, 15_000);
  }
  // The VNC protocol's DES challenge uses 8 bytes; libvirt refuses longer passwords.
  if (password.length === 0 || password.length > 8) {
    throw new DependencyNotReadyError(`the VNC password in ${file} is ${password.length} characters; VNC needs 1 to 8`, 15_000);
  }
  return password;
}

/** What the downloads say of each disk from a URL whose base is not yet in its pool (a reconcile only). */
async function baseInputs(ctx: KindContext<VmMemory>, name: string, spec: VirtualMachineSpec, live: LiveState): Promise<Map<string, VmBaseInput>> {
  const bases = new Map<string, VmBaseInput>();
  for (const disk of spec.disks) {
    if (!disk.from?.url || !disk.from.sha256) continue;
    const pool = live.pools.get(disk.pool);
    if (!pool?.active) continue;
    const sha256 = disk.from.sha256.toLowerCase();
    const format = disk.format ?? (pool.facts.type === "logical" ? "raw" : "qcow2");
    // The VM's own volume is there: its base is not needed again.
    if (pool.volumes.has(volumeNameFor(name, disk, format))) continue;
    const volume = baseVolumeName(ctx.settings.instance, sha256, format);
    const target = `${pool.facts.uuid}/${volume}`;
    bases.set(disk.name, { volume, imported: pool.volumes.has(volume) && (await ctx.ports.downloads.imported(sha256, target)), importing: ctx.services.baseImports.importing(target), download: ctx.ports.downloads.state(sha256) });
  }
  return bases;
}

function hasStarted(memory: VmMemory | undefined, target: PlanTarget<"VirtualMachine">, live: LiveState): boolean {
  return memory?.startedOnce === true || target.object.status?.startedOnce === true || isActive(live.domains.get(target.name));
}

export const virtualMachineController: KindController<"VirtualMachine", VmPlanInput, VmPlan, VmMemory> = {
  kind: "VirtualMachine",
  order: 30,
  failurePhase: { waiting: "Pending", terminal: "Failed" },

  // Disks are volumes (and pools' usage), which libvirt sends no event for; domains and networks it does.
  readsOnlyEventedFacts: (object) => object.spec.disks.length === 0,
  domainOf: (name) => name,

  hostPaths(object) {
    const spec = object.spec;
    const refs: HostPathRef[] = [];
    spec.disks.forEach((disk, i) => {
      if (disk.from?.image) refs.push({ use: "image", field: `spec.disks[${i}].from.image`, path: disk.from.image });
    });
    if (spec.boot?.kernel) refs.push({ use: "kernel", field: "spec.boot.kernel", path: spec.boot.kernel });
    if (spec.boot?.initrd) refs.push({ use: "kernel", field: "spec.boot.initrd", path: spec.boot.initrd });
    const secret = spec.consoles.vnc?.passwordSecretFile;
    if (secret) refs.push({ use: "secret", field: "spec.consoles.vnc.passwordSecretFile", path: secret });
    const userData = spec.cloudInit?.userDataSecretFile;
    if (userData) refs.push({ use: "secret", field: "spec.cloudInit.userDataSecretFile", path: userData });
    const answers = spec.unattend?.secretFile;
    if (answers) refs.push({ use: "secret", field: "spec.unattend.secretFile", path: answers });
    return refs;
  },

  ownedKeys(live, instance) {
    return [...live.domains.values()].flatMap((d) => (d.config.owner?.manifest.startsWith("VirtualMachine/") && d.config.owner.instance === instance ? [d.config.owner.manifest] : []));
  },

  recordedFile: (live, name) => live.domains.get(name)?.config.owner?.file || undefined,

  wakeFor(event) {
    return event.kind === "domain" ? [`VirtualMachine/${event.name}`] : [];
  },

  async planInput(ctx, target, live) {
    const domain = live.domains.get(target.name);
    const remembered = ctx.memory.get(target.key);
    const consoleLog = domain?.config.consoleLog;
    return {
      key: target.key,
      name: target.name,
      instance: ctx.settings.instance,
      file: target.file ?? domain?.config.owner?.file ?? "",
      spec: target.object.spec,
      specHash: target.specHash,
      live: domain,
      pools: live.pools,
      networks: live.networks,
      defaultDomainType: ctx.settings.defaultDomainType,
      consoleLogDir: ctx.settings.consoleLogDir ?? (consoleLog ? consoleLog.replace(/\/[^/]+$/, "") : DEFAULT_CONSOLE_LOG_DIR),
      vncPassword: await readVncPassword(ctx, target.object.spec.consoles.vnc?.passwordSecretFile),
      vncSasl: target.object.spec.consoles.vnc?.auth === "sasl" ? await hostVncSasl(ctx, remembered) : undefined,
      seed: seedShape(ctx.settings, target.name, target.object.spec, domain),
      unattend: unattendShape(ctx.settings, target.name, target.object.spec, domain),
      stopRequestedAt: remembered?.stopRequestedAt,
      restartPending: remembered?.restartPending ?? false,
      startedOnce: hasStarted(remembered, target, live),
      now: ctx.now,
    };
  },

  plan: planVm,

  changes(plan) {
    if (plan.invalid || plan.waitingFor || plan.hostRefusal) return [plan.message];
    if (plan.downloads) return plan.downloads.map(downloadMessage);
    return [...plan.steps.map((s) => s.message), ...(plan.restartRequired.length ? [plan.message] : [])];
  },

  async reconcile(ctx: KindContext<VmMemory>, { key, name, stored, since }: KindRequest<"VirtualMachine">): Promise<KindOutcome<"VirtualMachine">> {
    const state = await ctx.live(since);
    const live = state.domains.get(name);

    if (!stored) {
      ctx.memory.delete(key);
      const hostKey = (await ctx.ports.hostKeys.publicKey(name)) !== undefined;
      const steps = planVmDeletion(key, live, state.pools, ctx.settings.instance, { hostKey });
      for (const step of steps) {
        ctx.log.info({ step: step.action.type }, step.message);
        await act(ctx.ports, ctx.services, step.action);
      }
      // The seed is this instance's own derived file (rebuilt from the manifest at will): it goes
      // whatever the deletionPolicy, once the domain that reads it is off.
      const seedRemoved = await ctx.ports.seedMedia.removeDir(seedLocation(ctx.settings, name).dir);
      if (seedRemoved) ctx.log.info({ step: "removeSeed" }, "remove the cloud-init seed");
      const done = [...steps.map((s) => s.message), ...(seedRemoved ? ["remove the cloud-init seed"] : [])];
      await ctx.record.deleted(done.length ? done.join("; ") : live ? leftAloneMessage(ownershipOf(live.config.owner, key, ctx.settings.instance), `domain "${name}"`) : "no domain in libvirt to remove");
      return { ready: true };
    }

    const remembered = ctx.memory.get(key) ?? { restartPending: false };
    // A stop we asked for is over once the domain is off.
    if (!isActive(live)) remembered.stopRequestedAt = undefined;
    ctx.memory.set(key, remembered);
    const target = { key, name, object: stored.object, specHash: stored.specHash, file: stored.location.file };
    const input = await virtualMachineController.planInput(ctx, target, state);
    let seedFiles: SeedFile[] | undefined;
    const ownership = live ? ownershipOf(live.config.owner, key, ctx.settings.instance).of : "mine";
    // Not for a domain that is not ours (the plan refuses it): no key made, no secret read.
    if (input.seed && ownership !== "foreign" && ownership !== "other-instance") {
      const rendered = await renderVmSeed(ctx, name, stored.object.spec, live, input.seed);
      input.seed = rendered.seed;
      seedFiles = rendered.files;
    } else if (!input.seed) {
      // spec.cloudInit removed: the redefinition drops the medium; a running QEMU keeps its open file.
      // The VM's directory goes with it unless it holds the unattend medium too.
      const seedAt = seedLocation(ctx.settings, name);
      let removed: boolean;
      if (stored.object.spec.unattend) {
        // removeDir unlinks a file (a symlink itself) as well.
        const medium = await ctx.ports.seedMedia.removeDir(seedAt.path);
        removed = (await ctx.ports.seedMedia.removeDir(`${seedAt.path}.built`)) || medium;
      } else {
        removed = await ctx.ports.seedMedia.removeDir(seedAt.dir);
      }
      if (removed) ctx.log.info({ step: "removeSeed" }, "remove the cloud-init seed (spec.cloudInit is gone)");
    }
    let unattendContent: Buffer | undefined;
    // Not for a domain that is not ours, nor a floppy the plan refuses (no secret read, no key made).
    if (input.unattend && ownership !== "foreign" && ownership !== "other-instance" && (input.unattend.medium !== "floppy" || machineHasFloppyController(stored.object.spec.machine))) {
      const read = await readUnattend(ctx, stored.object.spec, input.unattend, input.unattend.ejectAfterFirstBoot && input.startedOnce);
      input.unattend = read.unattend;
      unattendContent = read.content;
    } else if (!input.unattend && stored.object.spec.cloudInit) {
      // spec.unattend removed (with no cloud-init the whole VM directory went above).
      const at = unattendLocation(ctx.settings, name);
      if ((await ctx.ports.unattendMedia.present(at)) && (await ctx.ports.unattendMedia.remove(at))) ctx.log.info({ step: "removeUnattend" }, "remove the unattend medium (spec.unattend is gone)");
    }
    input.bases = await baseInputs(ctx, name, stored.object.spec, state);
    let plan = planVm(input);
    if (plan.invalid) throw new TerminalError(plan.message, plan.invalid.reason);
    if (plan.waitingFor) throw new DependencyNotReadyError(plan.message, 3_000);
    if (plan.downloads) {
      // In the background, one per sha256 (a second VM naming it shares it): this reconcile
      // only starts what is not running and says how far it is.
      let failures = 0;
      for (const wait of plan.downloads) {
        if (wait.importing || !wait.state || (wait.state.phase !== "absent" && wait.state.phase !== "failed")) continue;
        if (wait.state.phase === "failed") {
          failures++;
          await ctx.record.event("Warning", "DownloadFailed", `${wait.state.message ?? `downloading ${shownUrl(wait.url)} failed`}; resuming from byte ${wait.state.bytes}`);
        }
        if (ctx.ports.downloads.start(wait.url, wait.sha256)) {
          const resumed = wait.state.bytes > 0 ? ` (resuming at byte ${wait.state.bytes})` : "";
          ctx.log.info({ step: "download", url: shownUrl(wait.url) }, `download ${shownUrl(wait.url)}${resumed}`);
          await ctx.record.event("Normal", "DownloadStarted", `downloading ${shownUrl(wait.url)} for disk "${wait.disk}" into ${wait.pool}/${wait.volume} (sha256 ${wait.sha256})${resumed}`);
        }
      }
      // The plan again, with the downloads as they are now (started, or finished meanwhile).
      input.bases = await baseInputs(ctx, name, stored.object.spec, state);
      plan = planVm(input);
      if (plan.invalid) throw new TerminalError(plan.message, plan.invalid.reason);
      if (plan.downloads) {
        const progress = new Map(plan.downloads.map((w) => [w.disk, w.state] as const));
        const facts = vmFacts(ctx.settings.instance, stored.object.spec, live, plan.disks, state);
        return {
          ready: false,
          requeueAfterMs: failures ? 10_000 : (plan.requeueAfterMs ?? 2_000),
          report: {
            reason: "Downloading",
            message: plan.message,
            facts: {
              ...facts,
              disks: facts.disks?.map((d) => {
                const p = progress.get(d.name);
                return p ? { ...d, download: { bytes: p.bytes, ...(p.total !== undefined ? { total: p.total } : {}) } } : d;
              }),
              phase: "Provisioning",
              startedOnce: hasStarted(remembered, target, state) || undefined,
              cloudInit: plan.seed ? seedStatus(plan.seed) : undefined,
            },
          },
        };
      }
    }
    for (const step of plan.steps) {
      if (step.action.type !== "importBase") continue;
      const done = ctx.ports.downloads.state(step.action.sha256);
      await ctx.record.event("Normal", "DownloadCompleted", `downloaded ${shownUrl(step.action.url)} (${done.bytes} bytes, sha256 verified); importing it into ${step.action.pool}/${step.action.volume}`);
    }

    let started = hasStarted(remembered, target, state);
    let readWithLastStep: LiveDomain | undefined;
    for (const step of plan.steps) {
      ctx.log.info({ step: step.action.type }, step.message);
      const result = await act(ctx.ports, ctx.services, step.action, { seedFiles, unattend: unattendContent });
      if (step.action.type === "start") started = true;
      readWithLastStep = step.action.type === "start" && result ? result : undefined;
    }
    remembered.restartPending = plan.restartPending;
    remembered.startedOnce = started;
    if (plan.beginStop) remembered.stopRequestedAt = ctx.ports.clock.now();
    if (plan.steps.length) await ctx.record.event("Normal", plan.steps.some((s) => s.action.type === "start") ? "Started" : "Converged", plan.steps.map((s) => s.message).join("; "));
    if (plan.hostRefusal && stored.object.status?.conditions?.find((c) => c.type === "Ready")?.reason !== plan.hostRefusal.reason) {
      await ctx.record.event("Warning", plan.hostRefusal.reason, plan.message);
    }
    if (plan.restartRequired.length && !stored.object.status?.conditions?.some((c) => c.type === "RestartRequired")) {
      await ctx.record.event("Warning", "RestartRequired", plan.message);
    }

    // After its own steps a reconcile reads back only its domain and the volumes it changed
    // (its own events do not wake it again: src/adapters/echoes.ts). A start, the last step
    // when there is one, has read the domain in its own virsh process already.
    let after = plan.steps.length ? (readWithLastStep ?? (await ctx.ports.hypervisor.readDomain(plan.uuid))) : live;
    const volumesAfter = await volumesReadBack(ctx, state, plan.steps.map((s) => s.action));
    const saslRefusal = await checkRunningSasl(ctx, name, stored.object.spec, after, plan.steps.some((s) => s.action.type === "start"));
    if (saslRefusal?.destroyed) after = await ctx.ports.hypervisor.readDomain(plan.uuid);
    return {
      ready: plan.ready && !saslRefusal,
      repairs: plan.steps.map((s) => s.action.type),
      requeueAfterMs: saslRefusal ? 30_000 : (plan.requeueAfterMs ?? (plan.ready ? undefined : 2_000)),
      report: {
        reason: saslRefusal ? "VncSaslUnavailable" : plan.ready ? "Succeeded" : plan.reason,
        message: saslRefusal?.message ?? plan.message,
        extraConditions: [{ type: "RestartRequired", present: plan.restartRequired.length > 0, reason: "RestartRequired", message: plan.message }],
        facts: {
          ...vmFacts(ctx.settings.instance, stored.object.spec, after, plan.disks, volumesAfter),
          // The phase describes the domain after this reconcile's steps, not before.
          phase: after === live ? plan.phase : phaseFor({ creatingDisks: false, stopping: plan.stopping && isActive(after), willBeActive: isActive(after), liveState: after?.state, liveReason: after?.reason }),
          startedOnce: started || undefined,
          cloudInit: plan.seed ? seedStatus(plan.seed) : undefined,
          unattend: plan.unattend,
        },
      },
    };
  },

  liveFacts(target, live, instance) {
    const domain = live.domains.get(target.name);
    const ownership = domain ? ownershipOf(domain.config.owner, target.key, instance).of : "mine";
    if (ownership === "foreign" || ownership === "other-instance") return {}; // a domain that is not this manifest's says nothing about it
    const disks = target.object.spec.disks.map((disk) => {
      const format = disk.format ?? (live.pools.get(disk.pool)?.facts.type === "logical" ? "raw" : "qcow2");
      return { name: disk.name, pool: disk.pool, volume: volumeNameFor(target.name, disk, format) };
    });
    const shape = seedShape({ instance, seedDir: undefined }, target.name, target.object.spec, domain);
    const u = target.object.spec.unattend;
    const facts = { ...vmFacts(instance, target.object.spec, domain, disks, live), cloudInit: shape ? seedStatus(shape) : undefined, unattend: u ? { medium: u.medium, attached: domain?.config.unattend !== undefined } : undefined };
    // A phase only when there is a domain to say it: else the failure's (Pending, Failed).
    return domain ? { ...facts, phase: phaseFor({ creatingDisks: false, stopping: false, willBeActive: isActive(domain), liveState: domain.state, liveReason: domain.reason }) } : facts;
  },
};

/**
 * status.cloudInit: the instance-id, where the seed is and a short digest of what it holds —
 * never the key, the user-data or the files. (The digest is over files that include a 256-bit
 * private key, so it says nothing about a guessable user-data.)
 */
function seedStatus(seed: VmSeedInput): NonNullable<StatusFacts<"VirtualMachine">["cloudInit"]> {
  const hash = seed.hash ?? seed.builtHash;
  return { instanceId: seed.instanceId, medium: seed.medium, format: seed.format, ...(hash ? { seedHash: hash.slice(0, 16) } : {}) };
}

/** The host's VNC SASL, unless a start of this VM came up without it a short while ago. */
async function hostVncSasl(ctx: PlanContext<VmMemory>, remembered: VmMemory | undefined): Promise<VncSaslSupport> {
  const refusedAt = remembered?.saslRefusedAt;
  if (refusedAt !== undefined && ctx.now - refusedAt < SASL_REFUSAL_MS) {
    return { usable: false, reason: `its start at ${new Date(refusedAt).toISOString()} came up without SASL although qemu.conf asks for it (is libvirtd running with an older qemu.conf?); tried again ${SASL_REFUSAL_MS / 60_000} min after that` };
  }
  return ctx.ports.qemuConfig.vncSasl();
}

/**
 * qemu.conf can say SASL while libvirtd, which reads it only when it starts, still runs without
 * it: the console of a domain with auth: sasl is checked on the running QEMU itself. One this
 * reconcile just started with weaker auth is destroyed at once (kvmctl started it, and it must
 * not stay up with less than the manifest asks); one running from before is only reported.
 */
async function checkRunningSasl(ctx: KindContext<VmMemory>, name: string, spec: VirtualMachineSpec, domain: LiveDomain | undefined, startedNow: boolean): Promise<{ message: string; destroyed: boolean } | undefined> {
  if (spec.consoles.vnc?.auth !== "sasl" || !domain || !isActive(domain)) return undefined;
  const auth = await ctx.ports.qemuConfig.runningVncAuth(name);
  if (auth === undefined || auth === "sasl") return undefined;
  const cause = `the running QEMU's VNC console has ${auth === "none" ? "no auth" : "password auth"}, not SASL (libvirtd reads qemu.conf only when it starts: restart libvirtd)`;
  if (!startedNow) {
    const message = `spec.consoles.vnc.auth is sasl, but ${cause}`;
    await ctx.record.event("Warning", "VncSaslUnavailable", message);
    return { message, destroyed: false };
  }
  ctx.log.warn({ step: "destroy" }, "destroy: the console came up without SASL");
  await ctx.ports.hypervisor.destroyDomain(domain.config.uuid);
  const remembered = ctx.memory.get(`VirtualMachine/${name}`);
  if (remembered) remembered.saslRefusedAt = ctx.now;
  const message = `spec.consoles.vnc.auth is sasl, but ${cause}; the domain was stopped again`;
  await ctx.record.event("Warning", "VncSaslUnavailable", message);
  return { message, destroyed: true };
}

/** What status says of a VM as libvirt holds it: its domain, disks (with this instance's base volume), interfaces, endpoints. */
/**
 * `live` with the disk volumes `actions` created, grew or deleted read again (one virsh process
 * each), so that status reports them as the steps left them without a full reading.
 */
async function volumesReadBack(ctx: KindContext<VmMemory>, live: LiveState, actions: VmAction[]): Promise<LiveState> {
  const touched = actions.flatMap((a) =>
    a.type === "createVolume" || a.type === "cloneVolume" || a.type === "importImage" || a.type === "resizeVolume" || a.type === "resizeDiskLive" || a.type === "deleteVolume" ? [{ pool: a.pool, volume: a.volume }] : [],
  );
  if (!touched.length) return live;
  const pools = new Map(live.pools);
  for (const { pool, volume } of touched) {
    const current = pools.get(pool);
    if (!current) continue;
    const facts = await ctx.ports.hypervisor.readVolume(current.facts.uuid, volume);
    const volumes = new Map(current.volumes);
    if (facts) volumes.set(volume, facts);
    else volumes.delete(volume);
    pools.set(pool, { ...current, volumes });
  }
  return { ...live, pools };
}

function vmFacts(instance: string, spec: VirtualMachineSpec, domain: LiveDomain | undefined, disks: { name: string; pool: string; volume: string; format?: "qcow2" | "raw" }[], live: LiveState): StatusFacts<"VirtualMachine"> {
  const running = domain?.running;
  const vnc = running?.vnc;
  return {
    domain: domain ? { uuid: domain.config.uuid, state: domain.state, ...(domain.reason ? { reason: domain.reason } : {}) } : undefined,
    disks: disks.map((d) => {
      const volume = live.pools.get(d.pool)?.volumes.get(d.volume);
      const from = spec.disks.find((s) => s.name === d.name)?.from;
      const format = d.format ?? (live.pools.get(d.pool)?.facts.type === "logical" ? "raw" : "qcow2");
      const base = from?.url && from.sha256 ? baseVolumeName(instance, from.sha256, format) : undefined;
      return { name: d.name, pool: d.pool, volume: d.volume, ...(volume?.path ? { path: volume.path } : {}), ...(volume ? { capacity: volume.capacity } : {}), ...(base ? { base } : {}) };
    }),
    interfaces: (running ?? domain?.config)?.interfaces.map((nic) => ({ type: nic.type, ...(nic.source ? { source: nic.source } : {}), ...(nic.mac ? { mac: nic.mac } : {}) })),
    ssh: sshEndpointOf(spec),
    vnc: vnc?.port ? { listen: vnc.listen ?? "127.0.0.1", port: vnc.port } : undefined,
    consoleLog: domain?.config.consoleLog,
  };
}

/** The networks a VM manifest's interfaces name (a guest's start wakes them: its leases appear). */
export function networksOfVm(snapshot: Parameters<typeof objectOf>[0], name: string): string[] {
  const vm = objectOf(snapshot, "VirtualMachine", name);
  return [...new Set((vm?.object.spec.interfaces ?? []).flatMap((nic) => (nic.network ? [nic.network] : [])))];
}

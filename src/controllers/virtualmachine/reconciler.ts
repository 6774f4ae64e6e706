// VirtualMachine: observe → plan (pure, ./plan.ts) → act through virsh → one status write.
import fs from "node:fs";
import path from "node:path";
import type { VirtualMachine } from "../../api/virtualmachine.js";
import { convertImage, imageInfo } from "../../adapters/qemu-img.js";
import { buildVolumeXml, parseVolumeXml } from "../../libvirt/index.js";
import { observedFields } from "../../store/index.js";
import { DependencyNotReadyError, markReady, markReconciling, setExtraCondition, TerminalError, type Condition } from "../../runtime/index.js";
import { recordDeleted, recordEvent, withoutUndefined, type KindResult, type ReconcileInput, type ReconcilerDeps } from "../types.js";
import { phaseFor } from "./lifecycle.js";
import { isActive, planVm, planVmDeletion, type VmAction } from "./plan.js";

/** What this controller remembers between reconciles of one VM (lost on restart, harmlessly). */
interface Memory {
  stopRequestedAt?: number;
  restartPending: boolean;
  /**
   * runStrategy Once / RerunOnFailure: the domain has run. Also written to status (which a
   * restarted controller reads back), but the in-memory snapshot does not see this process's
   * own status writes, so it is remembered here too.
   */
  startedOnce?: boolean;
}
const memory = new Map<string, Memory>();

async function act(deps: ReconcilerDeps, name: string, action: VmAction): Promise<void> {
  const xmlFile = (label: string, xml: string) => {
    const file = path.join(deps.scratchDir, `${label}-${name}-${process.pid}.xml`);
    fs.writeFileSync(file, xml, { mode: 0o600 });
    return file;
  };
  switch (action.type) {
    case "createVolume":
      await deps.virsh.run(["vol-create", action.pool, xmlFile("vol", buildVolumeXml(action.volume, action.capacity, action.format, action.poolType))]);
      return;
    case "cloneVolume": {
      // vol-create-from (not vol-clone) so the copy gets the disk's format and, in a logical
      // pool, a plain LV; libvirt converts with qemu-img as needed.
      const source = parseVolumeXml(await deps.virsh.run(["vol-dumpxml", "--pool", action.fromPool, action.fromVolume]));
      await deps.virsh.run(["vol-create-from", action.pool, xmlFile("vol", buildVolumeXml(action.volume, source.capacity, action.format, action.poolType)), "--inputpool", action.fromPool, action.fromVolume]);
      return;
    }
    case "importImage": {
      const info = await imageInfo(action.image);
      const capacity = Math.max(info.virtualSize, action.minCapacity ?? 0);
      await deps.virsh.run(["vol-create", action.pool, xmlFile("vol", buildVolumeXml(action.volume, action.poolType === "logical" ? capacity : info.virtualSize, action.format, action.poolType))]);
      if (info.format === action.format) {
        await deps.virsh.run(["vol-upload", "--pool", action.pool, action.volume, action.image]);
      } else {
        // Another format (a qcow2 image into an LV, a raw image into a qcow2 volume): qemu-img
        // writes the converted disk into the volume libvirt just created.
        const target = (await deps.virsh.run(["vol-path", "--pool", action.pool, action.volume])).trim();
        await convertImage(action.image, info.format, target, action.format);
      }
      if (capacity > info.virtualSize && action.poolType !== "logical") {
        await deps.virsh.run(["vol-resize", "--pool", action.pool, action.volume, String(capacity)]);
      }
      return;
    }
    case "resizeVolume":
      await deps.virsh.run(["vol-resize", "--pool", action.pool, action.volume, String(action.capacity)]).catch((error: unknown) => {
        // A clone bigger than the size asked for stays as it is: disks never shrink.
        if (!/shrink/i.test(String((error as Error).message))) throw error;
      });
      return;
    case "define":
      await deps.virsh.run(["define", xmlFile("domain", action.xml)]);
      return;
    case "autostart":
      await deps.virsh.run(["autostart", name, ...(action.enabled ? [] : ["--disable"])]);
      return;
    case "start":
      await deps.virsh.run(["start", name]);
      return;
    case "shutdown":
      await deps.virsh.run(["shutdown", name, "--mode", "acpi"]);
      return;
    case "destroy":
      await deps.virsh.run(["destroy", name]).catch((error: unknown) => {
        if (!/not running/i.test(String((error as Error).message))) throw error;
      });
      return;
    case "undefine":
      await deps.virsh.run(["undefine", name, "--nvram", "--managed-save"]);
      return;
    case "deleteVolume":
      await deps.virsh.run(["vol-delete", "--pool", action.pool, action.volume]);
      return;
  }
}


export async function reconcileVirtualMachine(deps: ReconcilerDeps, input: ReconcileInput): Promise<KindResult> {
  const { key, name, log } = input;
  const state = await deps.live(input.since);
  const live = state.domains.get(name);

  if (!input.stored) {
    memory.delete(key);
    const steps = planVmDeletion(key, live);
    for (const step of steps) {
      log.info({ step: step.action.type }, step.message);
      await act(deps, name, step.action);
    }
    await recordDeleted(deps, key, steps.length ? steps.map((s) => s.message).join("; ") : live ? `domain "${name}" was not created by kvmctl: left alone` : "no domain in libvirt to remove");
    return { ready: true };
  }

  const stored = input.stored;
  const vm = stored.object as VirtualMachine;
  const remembered = memory.get(key) ?? { restartPending: false };
  // A stop we asked for is over once the domain is off.
  if (!isActive(live)) remembered.stopRequestedAt = undefined;
  let vncPassword: string | undefined;
  if (vm.spec.consoles.vnc?.passwordSecretFile) {
    try {
      vncPassword = fs.readFileSync(vm.spec.consoles.vnc.passwordSecretFile, "utf8").trim();
    } catch (error) {
      throw new DependencyNotReadyError(`cannot read the VNC password file ${vm.spec.consoles.vnc.passwordSecretFile}: ${(error as Error).message}`, 15_000);
    }
    // The VNC protocol's DES challenge uses 8 bytes; libvirt refuses longer passwords. The
    // file may be fixed without a spec change, so this waits rather than stalls.
    if (vncPassword.length === 0 || vncPassword.length > 8) {
      throw new DependencyNotReadyError(`the VNC password in ${vm.spec.consoles.vnc.passwordSecretFile} is ${vncPassword.length} characters; VNC needs 1 to 8`, 15_000);
    }
  }
  const status = (vm.status ?? {}) as Record<string, unknown> & { conditions?: Condition[]; startedOnce?: boolean };
  const plan = planVm({
    key,
    name,
    file: stored.location.file,
    spec: vm.spec,
    specHash: stored.specHash,
    live,
    pools: state.pools,
    networks: state.networks,
    defaultDomainType: deps.defaultDomainType,
    consoleLogDir: deps.consoleLogDir,
    vncPassword,
    stopRequestedAt: remembered.stopRequestedAt,
    restartPending: remembered.restartPending,
    startedOnce: remembered.startedOnce === true || status.startedOnce === true || isActive(live),
    now: Date.now(),
  });
  if (plan.invalid) throw new TerminalError(plan.message, plan.invalid.reason);
  if (plan.waitingFor) throw new DependencyNotReadyError(plan.message, 3_000);

  let started = remembered.startedOnce === true || status.startedOnce === true || isActive(live);
  for (const step of plan.steps) {
    log.info({ step: step.action.type }, step.message);
    await act(deps, name, step.action);
    if (step.action.type === "start") started = true;
  }
  remembered.restartPending = plan.restartPending;
  remembered.startedOnce = started;
  if (plan.beginStop) remembered.stopRequestedAt = Date.now();
  memory.set(key, remembered);
  if (plan.steps.length) await recordEvent(deps, key, "Normal", plan.steps.some((s) => s.action.type === "start") ? "Started" : "Converged", plan.steps.map((s) => s.message).join("; "));
  if (plan.restartRequired.length && !status.conditions?.some((c) => c.type === "RestartRequired")) {
    await recordEvent(deps, key, "Warning", "RestartRequired", plan.message);
  }

  // After its own steps a reconcile reads back only its domain; the next event brings the rest.
  const after = plan.steps.length ? await deps.readDomain(name) : live;
  let conditions = plan.ready
    ? markReady(status.conditions, stored.generation, "Succeeded", plan.message)
    : markReconciling(status.conditions, stored.generation, plan.reason, plan.message);
  conditions = setExtraCondition(conditions, "RestartRequired", plan.restartRequired.length > 0, stored.generation, "RestartRequired", plan.message);
  const sshForward = vm.spec.interfaces.flatMap((nic) => nic.user?.portForwards ?? []).find((pf) => pf.guestPort === 22 && pf.protocol === "tcp");
  const running = after?.running;
  const vnc = running?.vnc;
  await deps.store.writeStatus(key, withoutUndefined({
    ...observedFields(stored),
    // The phase describes the domain after this reconcile's steps, not before.
    phase: after === live ? plan.phase : phaseFor({ creatingDisks: false, stopping: plan.stopping && isActive(after), willBeActive: isActive(after), liveState: after?.state, liveReason: after?.reason }),
    conditions,
    startedOnce: started || undefined,
    domain: after ? { uuid: after.config.uuid, state: after.state, ...(after.reason ? { reason: after.reason } : {}) } : undefined,
    disks: plan.disks.map((d) => {
      const volume = state.pools.get(d.pool)?.volumes.get(d.volume);
      return { name: d.name, pool: d.pool, volume: d.volume, ...(volume?.path ? { path: volume.path } : {}), ...(volume ? { capacity: volume.capacity } : {}) };
    }),
    interfaces: (running ?? after?.config)?.interfaces.map((nic) => ({ type: nic.type, ...(nic.source ? { source: nic.source } : {}), ...(nic.mac ? { mac: nic.mac } : {}) })),
    ssh: sshForward ? { host: sshForward.address === "0.0.0.0" ? "127.0.0.1" : sshForward.address, port: sshForward.hostPort } : undefined,
    vnc: vnc?.port ? { listen: vnc.listen ?? "127.0.0.1", port: vnc.port } : undefined,
    consoleLog: after?.config.consoleLog,
  }));
  return { ready: plan.ready, requeueAfterMs: plan.requeueAfterMs ?? (plan.ready ? undefined : 2_000) };
}

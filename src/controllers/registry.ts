// The registry: every kind's controller and every host-wide singleton. The manager, key
// listing, event routing, `kvmctl diff` and `controller --once` iterate these; nothing else
// lists kinds. A kind in src/api/kind-names.ts without a controller here does not compile.
import type { KindName } from "../api/index.js";
import type { LiveState, Ports } from "../ports/index.js";
import type { Logger } from "../runtime/index.js";
import type { Snapshot } from "../store/index.js";
import { Firewall, type FirewallMetrics, type FirewallState } from "./firewall/controller.js";
import type { AnyKindController, KindController, PlanContext, PlanTarget, SharedServices } from "./kind.js";
import { networkController } from "./network/controller.js";
import { storagePoolController } from "./storagepool/controller.js";
import { virtualMachineController } from "./virtualmachine/controller.js";
import { ImportClaims } from "./virtualmachine/import-claims.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const KIND_CONTROLLERS: { [K in KindName]: KindController<K, any, any, any> } = {
  StoragePool: storagePoolController,
  Network: networkController,
  VirtualMachine: virtualMachineController,
};

/** The built-in kinds' controllers in full-pass order. */
export function builtinControllers(): AnyKindController[] {
  return Object.values(KIND_CONTROLLERS).sort((a, b) => a.order - b.order);
}

/** What a singleton's reconcile sees. */
export interface SingletonContext {
  snapshot: Snapshot;
  /** A picture of libvirt at or after `since` (the manager's freshness for this singleton). */
  live(since: number): Promise<LiveState>;
  since: number;
  /** Records when the singleton read the state it decided on (logged as observedAt). */
  observed(at: number): void;
  log: Logger;
}

/**
 * Host-wide state that follows every object rather than one (the firewall): one work-queue
 * key, after every kind in a full pass, woken by every manifest change and libvirt event.
 */
export interface Singleton {
  readonly key: string;
  /** How much older than its request the libvirt picture may be (ms). */
  readonly staleToleranceMs: number;
  /**
   * What it renders from changes only with libvirt's events or this process's commands: a stale
   * picture may be mended by reading only the domains that changed (Hypervisor.observe's mend).
   */
  readonly mendsPicture: boolean;
  /** Looked at again this often without being woken (drift nothing reports); undefined: never. */
  readonly periodMs?: number;
  /** Calls `wake` whenever the host reports a change the singleton must look at (the manager queues its key), until stopped. */
  watch?(wake: () => void): { stop(): Promise<void> };
  reconcile(ctx: SingletonContext): Promise<{ ready: boolean }>;
}

export interface SingletonOptions {
  ports: Ports;
  logger: Logger;
  /** The manager's current snapshot and a picture of libvirt, for syncs outside a reconcile. */
  snapshot(): Promise<Snapshot>;
  observe(since: number): Promise<LiveState>;
  firewallBackend: "auto" | "nftables" | "iptables";
  firewallCheckMs: number;
  /** This controller instance (its firewall table or chains are its own). */
  instance: string;
  /** Host ports no Network forward may take; default [22]. */
  reservedHostPorts?: readonly number[];
  /** Firewall sync metrics (src/metrics); absent: nothing counted. */
  firewallMetrics?: FirewallMetrics;
  /** --drift: with "report", a table changed by hand is reported, not put back. */
  drift?: "repair" | "report";
}

export interface Singletons {
  /** What kinds may call (src/controllers/kind.ts SharedServices). */
  services: SharedServices & { firewall: { state(): FirewallState } };
  singletons: Singleton[];
}

export const FIREWALL_KEY = "Firewall/host";

export function createSingletons(options: SingletonOptions): Singletons {
  const firewall = new Firewall({
    backend: options.firewallBackend,
    instance: options.instance,
    logger: options.logger,
    host: options.ports.firewall,
    sysctl: options.ports.sysctl,
    clock: options.ports.clock,
    ...(options.reservedHostPorts ? { reservedHostPorts: options.reservedHostPorts } : {}),
    ...(options.firewallMetrics ? { metrics: options.firewallMetrics } : {}),
    ...(options.drift ? { drift: options.drift } : {}),
  });
  const firewallSingleton: Singleton = {
    key: FIREWALL_KEY,
    // Bridges and VNC ports change only with events or our own commands: the periodic check
    // compares the table without re-reading libvirt.
    staleToleranceMs: Infinity,
    mendsPicture: true,
    // nftables reports a table changed by hand (watch); iptables does not, and a watch can
    // miss a change while it restarts: compare the table with what it should hold, often.
    periodMs: options.firewallCheckMs,
    watch: (wake) => firewall.watch(wake),
    async reconcile(ctx) {
      const live = await ctx.live(ctx.since);
      ctx.observed(options.ports.clock.now()); // the table itself is read from here on
      const state = await firewall.sync(ctx.snapshot, live);
      if (state.error) throw new Error(state.error);
      return { ready: true };
    },
  };
  return {
    services: {
      firewall: {
        sync: async (since) => firewall.sync(await options.snapshot(), await options.observe(since)),
        state: () => firewall.state,
      },
      baseImports: new ImportClaims(),
    },
    singletons: [firewallSingleton],
  };
}

/** `kvmctl diff`: the changes kind K's reconcile would make for `target`, from its pure plan. */
export async function previewChanges<K extends KindName>(kind: K, ctx: PlanContext<unknown>, target: PlanTarget<K>, live: LiveState): Promise<string[]> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const controller: KindController<K, any, any, unknown> = KIND_CONTROLLERS[kind];
  return controller.changes(controller.plan(await controller.planInput(ctx, target, live)));
}

// The StoragePool lifecycle as an xstate machine: which phase an observation (plus the steps
// about to run) puts a pool in. Pure, like the VM's: `transition` needs no actor.
import { initialTransition, setup, transition } from "xstate";
import type { poolPhases } from "../../api/storagepool.js";

export type PoolPhase = (typeof poolPhases)[number];

export interface PoolObservation {
  /** The manifest is gone. */
  deleting?: boolean;
  /** Deleting, but the pool still holds volumes: kept. */
  holdsVolumes?: boolean;
  /** Steps about to run define the pool or build its directory / volume group. */
  defining: boolean;
  /** A start step is about to run. */
  starting: boolean;
  /** What libvirt reports now: undefined when the pool does not exist. */
  active?: boolean;
}

type ObserveEvent = { type: "OBSERVE" } & PoolObservation;

const poolLifecycle = setup({
  types: { events: {} as ObserveEvent },
  guards: {
    retained: ({ event }) => event.deleting === true && event.holdsVolumes === true,
    deleting: ({ event }) => event.deleting === true,
    defining: ({ event }) => event.defining,
    starting: ({ event }) => event.starting,
    active: ({ event }) => event.active === true,
    inactive: ({ event }) => event.active === false,
  },
}).createMachine({
  id: "storagePool",
  initial: "Pending",
  // Checked in order: the first guard that holds decides the phase.
  on: {
    OBSERVE: [
      { guard: "retained", target: ".Retained" },
      { guard: "deleting", target: ".Terminating" },
      { guard: "defining", target: ".Building" },
      { guard: "starting", target: ".Starting" },
      { guard: "active", target: ".Active" },
      { guard: "inactive", target: ".Inactive" },
      { target: ".Pending" },
    ],
  },
  states: { Pending: {}, Building: {}, Starting: {}, Active: {}, Inactive: {}, Terminating: {}, Retained: {} },
});

const [initial] = initialTransition(poolLifecycle);

export function poolPhaseFor(observation: PoolObservation): PoolPhase {
  const [next] = transition(poolLifecycle, initial, { type: "OBSERVE", ...observation });
  return next.value as PoolPhase;
}

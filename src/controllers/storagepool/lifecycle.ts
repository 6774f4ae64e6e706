// The StoragePool lifecycle as an xstate machine: which phase an observation (plus the steps
// about to run) puts a pool in.
import type { poolPhases } from "../../api/storagepool.js";
import { phaseMachine } from "../../runtime/phases.js";

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

export const poolPhaseFor = phaseMachine<PoolObservation, PoolPhase>("storagePool", "Pending", [
  { phase: "Retained", when: (o) => o.deleting === true && o.holdsVolumes === true },
  { phase: "Terminating", when: (o) => o.deleting === true },
  { phase: "Building", when: (o) => o.defining },
  { phase: "Starting", when: (o) => o.starting },
  { phase: "Active", when: (o) => o.active === true },
  { phase: "Inactive", when: (o) => o.active === false },
  { phase: "Pending" },
]);

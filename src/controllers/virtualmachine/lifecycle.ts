// The VM lifecycle as an xstate machine: which phase an observation (plus the steps about
// to run) puts a VM in.
import { phaseMachine } from "../../runtime/phases.js";

export type VmPhase = "Pending" | "Provisioning" | "Starting" | "Running" | "Stopping" | "Stopped" | "Failed" | "Terminating";

export interface Observation {
  creatingDisks: boolean;
  stopping: boolean;
  willBeActive: boolean;
  liveState?: string;
  liveReason?: string;
  deleting?: boolean;
}

export const phaseFor = phaseMachine<Observation, VmPhase>("virtualMachine", "Pending", [
  { phase: "Terminating", when: (o) => o.deleting === true },
  { phase: "Stopping", when: (o) => o.stopping },
  { phase: "Provisioning", when: (o) => o.creatingDisks },
  { phase: "Running", when: (o) => o.willBeActive && o.liveState === "running" },
  { phase: "Starting", when: (o) => o.willBeActive },
  { phase: "Failed", when: (o) => o.liveState === "crashed" || (o.liveState === "shut off" && (o.liveReason === "crashed" || o.liveReason === "failed")) },
  { phase: "Stopped", when: (o) => o.liveState === "shut off" },
  { phase: "Pending" },
]);

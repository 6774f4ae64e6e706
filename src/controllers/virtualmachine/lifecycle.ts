// The VM lifecycle as an xstate machine: which phase an observation (plus the steps about
// to run) puts a VM in. Pure: `transition` computes the next state without an actor.
import { initialTransition, setup, transition } from "xstate";

export type VmPhase = "Pending" | "Provisioning" | "Starting" | "Running" | "Stopping" | "Stopped" | "Failed" | "Terminating";

export interface Observation {
  creatingDisks: boolean;
  stopping: boolean;
  willBeActive: boolean;
  liveState?: string;
  liveReason?: string;
  deleting?: boolean;
}

type ObserveEvent = { type: "OBSERVE" } & Observation;

const vmLifecycle = setup({
  types: { events: {} as ObserveEvent },
  guards: {
    deleting: ({ event }) => event.deleting === true,
    stopping: ({ event }) => event.stopping,
    provisioning: ({ event }) => event.creatingDisks,
    running: ({ event }) => event.willBeActive && event.liveState === "running",
    starting: ({ event }) => event.willBeActive,
    failed: ({ event }) => event.liveState === "crashed" || (event.liveState === "shut off" && (event.liveReason === "crashed" || event.liveReason === "failed")),
    stopped: ({ event }) => event.liveState === "shut off",
  },
}).createMachine({
  id: "virtualMachine",
  initial: "Pending",
  // Checked in order: the first guard that holds decides the phase.
  on: {
    OBSERVE: [
      { guard: "deleting", target: ".Terminating" },
      { guard: "stopping", target: ".Stopping" },
      { guard: "provisioning", target: ".Provisioning" },
      { guard: "running", target: ".Running" },
      { guard: "starting", target: ".Starting" },
      { guard: "failed", target: ".Failed" },
      { guard: "stopped", target: ".Stopped" },
      { target: ".Pending" },
    ],
  },
  states: { Pending: {}, Provisioning: {}, Starting: {}, Running: {}, Stopping: {}, Stopped: {}, Failed: {}, Terminating: {} },
});

const [initial] = initialTransition(vmLifecycle);

export function phaseFor(observation: Observation): VmPhase {
  const [next] = transition(vmLifecycle, initial, { type: "OBSERVE", ...observation });
  return next.value as VmPhase;
}

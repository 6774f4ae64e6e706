// A kind's lifecycle as an xstate machine over observations: each OBSERVE event moves the
// machine to the phase of the first rule whose condition holds. Pure: `transition` computes
// the next state without an actor, so the phase function is an ordinary function to test.
import { initialTransition, setup, transition } from "xstate";

export interface PhaseRule<O, P extends string> {
  phase: P;
  /** Omitted on the last rule: the phase when nothing before it holds. */
  when?: (observation: O) => boolean;
}

export function phaseMachine<O extends object, P extends string>(id: string, initialPhase: P, rules: PhaseRule<O, P>[]): (observation: O) => P {
  type ObserveEvent = { type: "OBSERVE"; observation: O };
  const guards = Object.fromEntries(rules.filter((r) => r.when).map((r) => [r.phase, ({ event }: { event: ObserveEvent }) => r.when!(event.observation)]));
  const machine = setup({ types: { events: {} as ObserveEvent }, guards }).createMachine({
    id,
    initial: initialPhase,
    // Checked in order: the first guard that holds decides the phase.
    on: { OBSERVE: rules.map((r) => ({ ...(r.when ? { guard: r.phase } : {}), target: `.${r.phase}` })) },
    states: Object.fromEntries(rules.map((r) => [r.phase, {}])),
  });
  const [initial] = initialTransition(machine);
  // Observations are a few flags and libvirt's state words, and a pass asks for the same
  // ones for every object: each distinct one is run through the machine once.
  const known = new Map<string, P>();
  return (observation) => {
    const key = JSON.stringify(observation);
    let phase = known.get(key);
    if (phase === undefined) {
      phase = transition(machine, initial, { type: "OBSERVE", observation })[0].value as P;
      if (known.size >= 1024) known.clear();
      known.set(key, phase);
    }
    return phase;
  };
}

// The events libvirt sends back for this controller's own domain commands ("echoes"): `define`
// is followed by "Defined", `start` by "Resumed Unpaused" and "Started" (QEMU is started paused,
// then resumed), `destroy` by "Stopped Destroyed", `undefine` by "Undefined". The reconcile that
// issued the command already reads its domain after its steps, and the command's end already
// makes every older picture stale, so an echo must not wake that reconcile's key again: in a
// pass that starts 30 VMs those wake-ups were extra reconciles for every VM, each waiting for a
// full reading of libvirt while holding a worker. A command expects each of its echoes once, in
// a short window; anything else (a second Defined, a stop nobody asked for) is an ordinary event
// and wakes what it concerns.

export type EchoedCommand = "define" | "start" | "destroy" | "undefine";

const ECHOES: Record<EchoedCommand, readonly RegExp[]> = {
  define: [/^lifecycle: Defined\b/],
  // Without the first, every start's "Resumed Unpaused" woke its VM for a second reconcile.
  start: [/^lifecycle: Resumed Unpaused\b/, /^lifecycle: Started\b/],
  destroy: [/^lifecycle: Stopped Destroyed\b/],
  undefine: [/^lifecycle: Undefined\b/],
};

/** How long after its command ended an echo is still expected (libvirt sends it within milliseconds). */
export const ECHO_WINDOW_MS = 5_000;

interface Expected {
  name: string;
  /** The command's echoes not seen yet. */
  left: RegExp[];
  /** When the command ended (ms epoch); undefined while it runs. */
  endedAt?: number;
}

export class OwnEchoes {
  private readonly expected: Expected[] = [];

  /**
   * Notes that `command` on domain `name` is about to run; call the returned function when it
   * ended (`ok` false: it failed, and no echo is expected).
   */
  expect(name: string, command: EchoedCommand, now: () => number): (ok: boolean) => void {
    const entry: Expected = { name, left: [...ECHOES[command]] };
    this.expected.push(entry);
    return (ok) => {
      if (ok) entry.endedAt = now();
      else this.remove(entry);
    };
  }

  /** Whether a domain event is the echo of a command we ran (and consumes that expectation). */
  isEcho(name: string, detail: string, now: number): boolean {
    this.expire(now);
    for (const entry of this.expected) {
      if (entry.name !== name) continue;
      const at = entry.left.findIndex((pattern) => pattern.test(detail));
      if (at < 0) continue;
      entry.left.splice(at, 1);
      if (!entry.left.length) this.remove(entry);
      return true;
    }
    return false;
  }

  private expire(now: number): void {
    for (const entry of [...this.expected]) if (entry.endedAt !== undefined && now - entry.endedAt > ECHO_WINDOW_MS) this.remove(entry);
  }

  private remove(entry: Expected): void {
    const at = this.expected.indexOf(entry);
    if (at >= 0) this.expected.splice(at, 1);
  }
}

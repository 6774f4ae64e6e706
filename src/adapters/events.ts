// libvirt's event streams (`virsh event --all --loop`, `pool-event`, `net-event`) turned
// into "look at this object now" notifications, and since when every stream has listened
// without a break: what lets a picture of libvirt read after that moment be trusted until an
// event says otherwise (an informer's watch). Events only say *which* object changed; the
// reconcile reads the state afresh. A stream that ends (libvirtd restarted) is started again.
import { execa, type Options, type ResultPromise } from "execa";
import { isLibvirtLogLine, REGISTER_PROCEDURES, REGISTRATION_LOG_ENV, RegistrationTracker } from "./stream-registration.js";

export type LibvirtObjectKind = "domain" | "pool" | "network";

export interface LibvirtEvent {
  kind: LibvirtObjectKind;
  name: string;
  detail: string;
  /** When this process received it (ms epoch). */
  at: number;
}

const LINE = /^event '([^']+)' for (domain|storage pool|network) '?([^':]+?)'?: ?(.*)$/;

export function parseEventLine(line: string): LibvirtEvent | undefined {
  const match = LINE.exec(line.trim());
  if (!match) return undefined;
  const kind = match[2] === "domain" ? "domain" : match[2] === "network" ? "network" : "pool";
  return { kind, name: match[3]!, detail: `${match[1]}: ${match[4] ?? ""}`.trim(), at: Date.now() };
}

export interface EventStreamOptions {
  uri: string;
  onEvent(event: LibvirtEvent): void;
  /** Called after a stream (re)connects: events may have been missed, so resync. */
  onReconnect(stream: string): void;
  onError(stream: string, message: string): void;
  /** A stream's callbacks are registered with libvirtd (`complete`: all of them; else libvirtd refused some). */
  onRegistered?(stream: string, complete: boolean): void;
  /** The command that runs virsh; default ["virsh"] from PATH (tests give a stand-in). */
  virsh?: readonly string[];
}

const STREAMS: Record<LibvirtObjectKind, { args: string[]; procedures: readonly number[] }> = {
  domain: { args: ["event", "--all", "--loop"], procedures: REGISTER_PROCEDURES.domain },
  pool: { args: ["pool-event", "--loop", "--event", "lifecycle"], procedures: REGISTER_PROCEDURES.pool },
  network: { args: ["net-event", "--loop", "--event", "lifecycle"], procedures: REGISTER_PROCEDURES.network },
};

/** If a stream's registration is not recognised by then, a libvirtd that answers still counts as reconnected (for the resync only). */
const UNRECOGNISED_REGISTRATION_MS = 5_000;

export class EventStreams {
  private readonly children = new Map<string, ResultPromise>();
  private stopped = false;
  private readonly attempts = new Map<string, number>();
  /** Per stream: when its last registration call was answered, if it has stayed up since. */
  private readonly registeredAt = new Map<string, number>();
  /** How many domain event types this virsh registers with `--all` (`virsh event --list`), once known. */
  private domainEventTypes: number | undefined;

  constructor(private readonly options: EventStreamOptions) {}

  start(): void {
    for (const stream of Object.keys(STREAMS) as LibvirtObjectKind[]) void this.spawn(stream, false);
  }

  /**
   * Since when every stream has had all its callbacks registered with libvirtd and stayed up
   * (ms epoch): every event libvirt sent after then has reached us or is on its way.
   * Undefined while any stream is down, reconnecting, or only partly registered.
   */
  listeningSince(): number | undefined {
    if (this.stopped) return undefined;
    let since = 0;
    for (const stream of Object.keys(STREAMS)) {
      const at = this.registeredAt.get(stream);
      if (at === undefined) return undefined;
      since = Math.max(since, at);
    }
    return since;
  }

  /** Runs virsh with `args` after the connection URI. */
  private run<O extends Options>(args: string[], options: O): ResultPromise<{} & O> {
    const [command = "virsh", ...prefix] = this.options.virsh ?? ["virsh"];
    return execa(command, [...prefix, "-c", this.options.uri, ...args], options);
  }

  /** `virsh event --all` registers one callback per event type `virsh event --list` names. */
  private async countDomainEventTypes(): Promise<number | undefined> {
    if (this.domainEventTypes !== undefined) return this.domainEventTypes;
    const listed = await this.run(["event", "--list"], { reject: false, timeout: 10_000, env: { LC_ALL: "C" } });
    const count = String(listed.stdout).split("\n").filter((l) => l.trim()).length;
    if (listed.exitCode === 0 && count > 0) this.domainEventTypes = count;
    return this.domainEventTypes;
  }

  private async spawn(stream: LibvirtObjectKind, reconnect: boolean): Promise<void> {
    const expected = stream === "domain" ? await this.countDomainEventTypes() : 1;
    if (this.stopped) return;
    const child = this.run(STREAMS[stream].args, { reject: false, buffer: false, env: { LC_ALL: "C", ...REGISTRATION_LOG_ENV } });
    this.children.set(stream, child);
    const registration = new RegistrationTracker(STREAMS[stream].procedures, expected);
    let answered = false;
    let ended = false;
    // Whatever says the stream may have lost libvirtd ends trusting it at once, before virsh exits.
    const lost = () => {
      if (this.children.get(stream) === child) this.registeredAt.delete(stream);
    };
    const connected = () => {
      if (answered || ended || this.stopped) return;
      answered = true;
      // The backoff starts over (the next restart is followed at once); events may have been
      // missed while it was down: announce the reconnect.
      this.attempts.set(stream, 0);
      if (reconnect) this.options.onReconnect(stream);
    };
    let buffered = "";
    let sawOutput = false;
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) {
        const event = parseEventLine(line);
        if (event) {
          sawOutput = true;
          this.attempts.set(stream, 0);
          this.options.onEvent(event);
        }
      }
    });
    child.stdout?.on("end", lost);
    let message = "";
    let errBuffered = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      errBuffered += chunk;
      const lines = errBuffered.split("\n");
      errBuffered = lines.pop() ?? "";
      for (const line of lines) {
        const outcome = registration.line(line);
        if (outcome) {
          // Trusted only when libvirtd took every callback: a refused one's events never come.
          if (outcome === "registered" && !ended) this.registeredAt.set(stream, Date.now());
          if (!ended && !this.stopped) this.options.onRegistered?.(stream, outcome === "registered");
          connected();
          continue;
        }
        const logged = isLibvirtLogLine(line);
        if (logged && !/: (error|warning) : /.test(line)) continue; // the RPC trace itself
        if (line.trim()) message = `${message}\n${line}`.slice(-2000);
        if (!logged ? /^error:/.test(line) : /: error : /.test(line)) lost();
      }
    });
    // A libvirt whose client log is not recognised: the stream still runs, and once libvirtd
    // answers it counts as reconnected (for the resync), never as registered (nothing trusted).
    const fallback = setTimeout(() => {
      if (answered || ended) return;
      void this.run(["version"], { reject: false, timeout: 5_000, env: { LC_ALL: "C" } }).then((answer) => {
        if (answer.exitCode === 0) connected();
      });
    }, UNRECOGNISED_REGISTRATION_MS);
    fallback.unref();
    void child.then(() => {
      ended = true;
      lost();
      clearTimeout(fallback);
      if (this.stopped) return;
      const attempt = (this.attempts.get(stream) ?? 0) + 1;
      this.attempts.set(stream, sawOutput ? 1 : attempt);
      this.options.onError(stream, message.trim() || "event stream ended");
      const delay = Math.min(5_000, 250 * 2 ** Math.min(attempt, 6));
      setTimeout(() => void this.spawn(stream, true), delay).unref();
    });
  }

  stop(): void {
    this.stopped = true;
    this.registeredAt.clear();
    for (const child of this.children.values()) child.kill("SIGTERM");
    this.children.clear();
  }
}

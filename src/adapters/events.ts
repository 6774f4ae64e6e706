// libvirt's event streams (`virsh event --all --loop`, `pool-event`, `net-event`) turned
// into "look at this object now" notifications. Events only say *which* object changed; the
// reconcile reads the state afresh. A stream that ends (libvirtd restarted) is started again.
import { execa, type ResultPromise } from "execa";

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
}

const STREAMS: Record<string, string[]> = {
  domain: ["event", "--all", "--loop"],
  pool: ["pool-event", "--loop", "--event", "lifecycle"],
  network: ["net-event", "--loop", "--event", "lifecycle"],
};

export class EventStreams {
  private readonly children = new Map<string, ResultPromise>();
  private stopped = false;
  private readonly attempts = new Map<string, number>();

  constructor(private readonly options: EventStreamOptions) {}

  start(): void {
    for (const stream of Object.keys(STREAMS)) this.spawn(stream, false);
  }

  private spawn(stream: string, reconnect: boolean): void {
    if (this.stopped) return;
    const child = execa("virsh", ["-c", this.options.uri, ...STREAMS[stream]!], { reject: false, buffer: false, env: { LC_ALL: "C" } });
    this.children.set(stream, child);
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
    let stderr = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
    let ended = false;
    // virsh prints nothing when it connects: once libvirtd answers while the stream still runs,
    // it is connected. Then the backoff starts over (the next restart is followed at once) and a
    // reconnect is announced: events may have been missed meanwhile.
    const probe = setTimeout(() => {
      void execa("virsh", ["-c", this.options.uri, "version"], { reject: false, timeout: 5_000, env: { LC_ALL: "C" } }).then((answer) => {
        if (ended || this.stopped || answer.exitCode !== 0) return;
        this.attempts.set(stream, 0);
        if (reconnect) this.options.onReconnect(stream);
      });
    }, 300);
    void child.then(() => {
      ended = true;
      clearTimeout(probe);
      if (this.stopped) return;
      const attempt = (this.attempts.get(stream) ?? 0) + 1;
      this.attempts.set(stream, sawOutput ? 1 : attempt);
      this.options.onError(stream, stderr.trim() || "event stream ended");
      const delay = Math.min(5_000, 250 * 2 ** Math.min(attempt, 6));
      setTimeout(() => this.spawn(stream, true), delay).unref();
    });
  }

  stop(): void {
    this.stopped = true;
    for (const child of this.children.values()) child.kill("SIGTERM");
    this.children.clear();
  }
}

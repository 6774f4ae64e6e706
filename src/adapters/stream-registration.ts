// When a `virsh event --loop` stream really listens. virsh prints nothing once its event
// callbacks are registered, so the stream runs with its client library's RPC log on stderr
// (REGISTRATION_LOG_ENV) and the replies to the registration calls are read from it, e.g.
//   ... RPC_CLIENT_MSG_RX: client=0x55e3 len=32 prog=536903814 vers=1 proc=316 type=1 status=0 serial=6
// libvirtd adds the callback before it answers, so every event after the last reply reaches
// the stream. A log this does not recognise (another libvirt) leaves the stream never
// registered: events still flow, but nothing is trusted to be unchanged (the safe side).

/** The environment that makes virsh's client library log its RPC traffic (info level, that module only) to stderr. */
export const REGISTRATION_LOG_ENV = { LIBVIRT_LOG_FILTERS: "2:rpc.netclient", LIBVIRT_LOG_OUTPUTS: "2:stderr" } as const;

/** libvirt's remote protocol program (REMOTE_PROGRAM); replies are message type 1 (VIR_NET_REPLY), status 0 ok. */
const REMOTE_PROGRAM = 0x20008086;
const REPLY = 1;

/** The remote procedures that register an event callback, per stream (wire protocol numbers, never renumbered). */
export const REGISTER_PROCEDURES = {
  // CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, and CONNECT_DOMAIN_EVENT_REGISTER_ANY (servers before 1.2.1)
  domain: [316, 167],
  network: [313], // CONNECT_NETWORK_EVENT_REGISTER_ANY
  pool: [368], // CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY
} as const;

const RX = /\bRPC_CLIENT_MSG_RX: .*\bprog=(\d+) vers=\d+ proc=(\d+) type=(\d+) status=(\d+)/;

/** One reply the client received, from a line of its RPC log; undefined for any other line. */
export function parseRpcReply(line: string): { procedure: number; ok: boolean } | undefined {
  const match = RX.exec(line);
  if (!match || Number(match[1]) !== REMOTE_PROGRAM || Number(match[3]) !== REPLY) return undefined;
  return { procedure: Number(match[2]), ok: match[4] === "0" };
}

/** A line of libvirt's own log format ("2026-12-01 18:24:02.692+0000: 6927: info : ..."), not virsh's messages. */
export function isLibvirtLogLine(line: string): boolean {
  return /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+[+-]\d{4}: \d+: \w+ : /.test(line);
}

export type RegistrationOutcome = "registered" | "incomplete";

/**
 * Follows one stream's registration calls: `expected` replies (virsh registers one callback per
 * event type, one after the other); undefined when it cannot be known, which never completes.
 */
export class RegistrationTracker {
  private replies = 0;
  private failures = 0;
  private finished = false;

  constructor(
    private readonly procedures: readonly number[],
    private readonly expected: number | undefined,
  ) {}

  /**
   * Feeds one stderr line. Returns, once, when the last expected reply came: "registered" when
   * every registration succeeded (every event type reaches the stream from now on),
   * "incomplete" when libvirtd refused some (the stream is up, but some events never come).
   */
  line(line: string): RegistrationOutcome | undefined {
    if (this.finished || this.expected === undefined) return undefined;
    const reply = parseRpcReply(line);
    if (!reply || !this.procedures.includes(reply.procedure)) return undefined;
    this.replies++;
    if (!reply.ok) this.failures++;
    if (this.replies < this.expected) return undefined;
    this.finished = true;
    return this.failures === 0 ? "registered" : "incomplete";
  }
}

// Telling systemd the service is ready (Type=notify): `systemd-notify --ready`, spawned with an
// argument array. Node cannot send the unix datagram to $NOTIFY_SOCKET itself (no datagram
// unix sockets without a native module), so the message comes from a child process: the unit
// needs NotifyAccess=all. systemd-notify (systemd >= 254 here) waits until systemd has
// processed the message, so it is not lost when the child exits before systemd looks up
// whose it is.
import { execa } from "execa";

/** Sends READY=1 (or STOPPING=1) with a status line; "skipped" outside a Type=notify service. */
export async function notifySystemd(state: "ready" | "stopping", status: string, env: NodeJS.ProcessEnv = process.env): Promise<"sent" | "skipped"> {
  if (!env.NOTIFY_SOCKET) return "skipped";
  const result = await execa("systemd-notify", [`--${state}`, `--status=${status.replace(/[\r\n]+/g, " ")}`], { reject: false, timeout: 10_000, env, extendEnv: false });
  if (result.failed) throw new Error(`systemd-notify --${state}: ${String(result.stderr).trim() || result.shortMessage}`);
  return "sent";
}

// `--metrics-address`: where /metrics, /healthz and /readyz are served. Loopback by default;
// `0` turns the server off. An address the user gives is taken as given (a non-loopback one is
// logged as a warning: the endpoints have no authentication).
import ipaddr from "ipaddr.js";
import { isLoopbackAddress } from "../api/net.js";

export const DEFAULT_METRICS_ADDRESS = "127.0.0.1:9630";

export interface ListenAddress {
  /** An IP address, or "localhost"; undefined for ":PORT" (every interface). */
  host: string | undefined;
  port: number;
  loopback: boolean;
}

export class MetricsAddressError extends Error {}

/** "127.0.0.1:9630", "[::1]:9630", "localhost:9630", ":9630" (every interface); "0" → undefined (off). */
export function parseMetricsAddress(text: string): ListenAddress | undefined {
  const value = text.trim();
  if (value === "0") return undefined;
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || !(port >= 0 && port <= 65535)) throw new MetricsAddressError(`--metrics-address: expected HOST:PORT (e.g. ${DEFAULT_METRICS_ADDRESS}, [::1]:9630) or 0 to turn it off, got ${JSON.stringify(text)}`);
  const host = match[1] ?? match[2] ?? "";
  if (host === "") return { host: undefined, port, loopback: false };
  if (host === "localhost") return { host, port, loopback: true };
  if (!ipaddr.isValid(host) || (match[1] !== undefined) !== host.includes(":")) throw new MetricsAddressError(`--metrics-address: ${JSON.stringify(host)} is not an IP address (IPv6 goes in brackets: [::1]:9630)`);
  const normal = ipaddr.parse(host).toString();
  return { host: normal, port, loopback: isLoopbackAddress(normal) };
}

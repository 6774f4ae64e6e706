// The controller's metrics, health endpoints and systemd readiness, kept apart from
// ./controller.ts (which only calls these): --metrics-address is parsed before anything
// starts, the registry exists only when the server is on, and prom-client and node:http are
// loaded only then.
import type { Manager } from "../../controllers/manager.js";
import type { KvmctlMetrics } from "../../metrics/registry.js";
import type { PageSource } from "../../metrics/page.js";
import type { MetricsServer } from "../../metrics/server.js";
import type { Logger } from "../../runtime/index.js";
import { CliError, UsageError } from "../errors.js";

export interface Observability {
  /** The registry to instrument with; undefined when --metrics-address is 0 (or --once). */
  metrics: KvmctlMetrics | undefined;
  /**
   * Serves the endpoints and, once the manager's first full pass is done, reports ready (/readyz,
   * systemd). With `store` (the manager's ManifestStore), also the read-only status page at /.
   */
  start(manager: Manager, logger: Logger, store?: PageSource): Promise<void>;
  /** Where the endpoints are served once started (undefined: not served). */
  readonly url: string | undefined;
  stop(logger: Logger): Promise<void>;
}

/**
 * `given`: --metrics-address as given, undefined for the default (127.0.0.1:9630). A default
 * address already taken (another controller instance on this host) is skipped with a warning;
 * one given explicitly must be served.
 */
export async function prepareObservability(given: string | undefined, once: boolean): Promise<Observability> {
  const { parseMetricsAddress, MetricsAddressError, DEFAULT_METRICS_ADDRESS } = await import("../../metrics/address.js");
  const addressText = given ?? DEFAULT_METRICS_ADDRESS;
  let address;
  try {
    address = parseMetricsAddress(addressText);
  } catch (error) {
    if (error instanceof MetricsAddressError) throw new UsageError(error.message);
    throw error;
  }
  const serve = address !== undefined && !once;
  const metrics = serve ? new (await import("../../metrics/registry.js")).KvmctlMetrics() : undefined;
  let server: MetricsServer | undefined;
  let ready = false;
  return {
    metrics,
    get url() {
      return server?.url;
    },
    async start(manager, logger, store) {
      if (metrics && address) {
        metrics.setObjectSource(() => manager.objectStates());
        const { startMetricsServer } = await import("../../metrics/server.js");
        const { pageData } = await import("../../metrics/page.js");
        const page = store ? { pageData: () => pageData(store, { ready }) } : {};
        try {
          server = await startMetricsServer({ host: address.host, port: address.port, metrics: () => metrics.render(), ready: () => ready, ...page });
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          if (given !== undefined || (error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw new CliError(`cannot serve metrics on --metrics-address ${addressText}: ${message}`);
          logger.warn({ address: addressText, err: error }, `metrics and health endpoints not served: ${addressText} is taken (another controller?); give this one its own --metrics-address, or 0`);
        }
      }
      if (server && address) {
        if (!address.loopback) logger.warn({ url: server.url }, "metrics and health endpoints listen beyond loopback (no authentication): restrict who can reach them");
        logger.info({ url: server.url }, store ? "serving the status page (/), /metrics, /healthz and /readyz" : "serving /metrics, /healthz and /readyz");
      }
      void manager.controller.firstPass.then(async () => {
        ready = true;
        logger.info({}, "first full pass done: ready");
        const { notifySystemd } = await import("../../adapters/systemd.js");
        await notifySystemd("ready", "first full pass done; reconciling").catch((error: Error) => logger.warn({ err: error }, "could not tell systemd the service is ready (NotifyAccess=all?)"));
      });
    },
    async stop(logger) {
      if (process.env.NOTIFY_SOCKET) {
        const { notifySystemd } = await import("../../adapters/systemd.js");
        await notifySystemd("stopping", "finishing in-flight work").catch((error: Error) => logger.debug({ err: error }, "could not tell systemd the service is stopping"));
      }
      await server?.close();
    },
  };
}

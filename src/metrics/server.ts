// The metrics and health endpoints over node:http (imported when the server starts, so the
// CLI does not load it): GET /metrics (Prometheus text), /healthz (200 while the process
// runs), /readyz (503 until the controller's first full pass is done, then 200).
import type { AddressInfo } from "node:net";

export interface MetricsServerOptions {
  host: string | undefined;
  port: number;
  /** The exposition text (KvmctlMetrics.render). */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Whether the first full pass is done. */
  ready(): boolean;
}

export interface MetricsServer {
  /** Where it listens, e.g. http://127.0.0.1:9630 (the port the kernel picked for port 0). */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const http = await import("node:http");
  const server = http.createServer((request, response) => {
    const reply = (status: number, body: string, contentType = "text/plain; charset=utf-8") => {
      response.writeHead(status, { "Content-Type": contentType, "Cache-Control": "no-store", "Content-Length": Buffer.byteLength(body) });
      response.end(request.method === "HEAD" ? undefined : body);
    };
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.setHeader("Allow", "GET, HEAD");
      return reply(405, "method not allowed\n");
    }
    const path = (request.url ?? "/").split("?")[0];
    if (path === "/healthz") return reply(200, "ok\n");
    if (path === "/readyz") return options.ready() ? reply(200, "ok\n") : reply(503, "not ready: the first full pass is not done\n");
    if (path === "/metrics") {
      options.metrics().then(
        ({ contentType, body }) => reply(200, body, contentType),
        (error: unknown) => reply(500, `could not collect metrics: ${error instanceof Error ? error.message : String(error)}\n`),
      );
      return;
    }
    reply(404, "not found: /metrics, /healthz, /readyz\n");
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

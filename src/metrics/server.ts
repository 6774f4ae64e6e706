// The metrics and health endpoints over node:http (imported when the server starts, so the
// CLI does not load it): GET /metrics (Prometheus text), /healthz (200 while the process
// runs), /readyz (503 until the controller's first full pass is done, then 200); with
// `pageData`, the read-only status page: / (HTML), /app.js, /app.css (./page-assets.ts) and
// /api/objects (its JSON, ./page.ts). Every response says nosniff and carries a
// Content-Security-Policy that allows only this server's script, style and JSON.
import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { PAGE_CSS, PAGE_HTML, PAGE_JS } from "./page-assets.js";
import { safeJson } from "./page.js";

/** Sent with every response (the page's own files included). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Resource-Policy": "same-origin",
};

const LOOPBACK_HOST = /^(localhost|[a-z0-9-]+\.localhost|127(\.\d{1,3}){3}|\[::1\])(:\d+)?$/i;

/** A server listening on loopback serves the page only to loopback Host names (no DNS rebinding from a web page). */
function hostAllowed(request: IncomingMessage, loopback: boolean): boolean {
  return !loopback || LOOPBACK_HOST.test(request.headers.host ?? "");
}

export interface MetricsServerOptions {
  host: string | undefined;
  port: number;
  /** The exposition text (KvmctlMetrics.render). */
  metrics(): Promise<{ contentType: string; body: string }>;
  /** Whether the first full pass is done. */
  ready(): boolean;
  /** The status page's data (./page.ts pageData); absent: no page, / is 404. */
  pageData?(): Promise<unknown>;
}

export interface MetricsServer {
  /** Where it listens, e.g. http://127.0.0.1:9630 (the port the kernel picked for port 0). */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const http = await import("node:http");
  let loopback = false;
  const server = http.createServer((request, response) => {
    const reply = (status: number, body: string, contentType = "text/plain; charset=utf-8") => {
      response.writeHead(status, { ...SECURITY_HEADERS, "Content-Type": contentType, "Cache-Control": "no-store", "Content-Length": Buffer.byteLength(body) });
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
    const page = options.pageData;
    if (page && (path === "/" || path === "/app.js" || path === "/app.css" || path === "/api/objects")) {
      if (!hostAllowed(request, loopback)) return reply(403, "forbidden: this address serves the status page to loopback host names only\n");
      if (path === "/") return reply(200, PAGE_HTML, "text/html; charset=utf-8");
      if (path === "/app.js") return reply(200, PAGE_JS, "text/javascript; charset=utf-8");
      if (path === "/app.css") return reply(200, PAGE_CSS, "text/css; charset=utf-8");
      page().then(
        (data) => reply(200, safeJson(data), "application/json; charset=utf-8"),
        (error: unknown) => reply(500, `could not collect the status page's data: ${error instanceof Error ? error.message : String(error)}\n`),
      );
      return;
    }
    reply(404, `not found: ${page ? "/, /api/objects, " : ""}/metrics, /healthz, /readyz\n`);
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
  loopback = /^127\./.test(address.address) || address.address === "::1" || address.address === "::ffff:127.0.0.1";
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

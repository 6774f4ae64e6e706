// The "outside" namespace of the test environment (testenv/config.ts OUTSIDE_NETNS): a TCP
// server there that says who connected, and a client that reads a service's first line from
// there. Both are small Node scripts run with `ip netns exec`.
import { execa, type ResultPromise } from "execa";
import { OUTSIDE_LINK, OUTSIDE_NETNS } from "../../testenv/config.js";

/** Addresses of the outside namespace; the host reaches them through the test namespace. */
export const OUTSIDE = {
  /** The test namespace's end of the link: what outside clients connect to. */
  hostAddress: OUTSIDE_LINK.inside.address.split("/")[0]!,
  allowed: OUTSIDE_LINK.outside.addresses[0]!.split("/")[0]!,
  /** In 203.0.113.128/25, the range tests deny. */
  denied: OUTSIDE_LINK.outside.addresses[1]!.split("/")[0]!,
  deniedRange: "203.0.113.128/25",
};

const inOutside = (script: string, args: string[]) => execa("ip", ["netns", "exec", OUTSIDE_NETNS, process.execPath, "-e", script, ...args], { reject: false });

const SERVER = `
const net = require("node:net");
const server = net.createServer((s) => s.end("outside saw " + s.remoteAddress.replace(/^::ffff:/, "") + "\\n"));
server.listen(0, "0.0.0.0", () => console.log(server.address().port));
`;

export interface OutsideServer {
  port: number;
  stop(): Promise<void>;
}

/** A server on every outside address that answers "outside saw <client address>". */
export async function startOutsideServer(): Promise<OutsideServer> {
  const child: ResultPromise = inOutside(SERVER, []);
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once("data", (chunk: Buffer) => resolve(Number(String(chunk).trim())));
    void child.then((r) => reject(new Error(`the outside server exited: ${String(r.stderr)}`)));
  });
  return {
    port,
    async stop() {
      child.kill("SIGTERM");
      await child;
    },
  };
}

const FIRST_LINE = `
const [host, port] = process.argv.slice(1);
const socket = require("node:net").connect(Number(port), host);
socket.setTimeout(5000, () => { console.error("timeout"); process.exit(1); });
socket.on("data", (d) => { process.stdout.write(String(d).split("\\n")[0]); process.exit(0); });
socket.on("error", (e) => { console.error(e.message); process.exit(1); });
`;

/** The first line a TCP service at host:port sends, read from the outside namespace. */
export async function firstLineFromOutside(host: string, port: number): Promise<{ ok: boolean; line: string; error: string }> {
  const result = await inOutside(FIRST_LINE, [host, String(port)]);
  return { ok: result.exitCode === 0, line: String(result.stdout), error: String(result.stderr).trim() };
}

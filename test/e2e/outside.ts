// The "outside" namespace of the test environment (testenv/config.ts OUTSIDE_NETNS): a TCP
// server there that says who connected, and a client that reads a service's first line from
// there (or as another user on the host). Both are small Node scripts.
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

const SERVER = `
const net = require("node:net");
const server = net.createServer((s) => s.end("outside saw " + s.remoteAddress.replace(/^::ffff:/, "") + "\\n"));
server.listen(0, "0.0.0.0", () => console.log(server.address().port));
`;

/**
 * Shell command for the guest: connect to the outside server at `address` and print its answer,
 * or "refused-or-dropped" when no connection is made. The guest's busybox nc bounds only the
 * connect (-w) and then waits for the server's close, which passt sometimes never passes on
 * (seen in CI and here: the answer printed, then ssh hanging), so `timeout` ends it.
 */
export const connectFromGuest = (address: string, server: OutsideServer) => `answer=$(timeout 8 nc -w 5 ${address} ${server.port} </dev/null); echo "\${answer:-refused-or-dropped}"`;

export interface OutsideServer {
  port: number;
  stop(): Promise<void>;
}

/** A server on every outside address that answers "outside saw <client address>". */
export async function startOutsideServer(): Promise<OutsideServer> {
  const child: ResultPromise = execa("ip", ["netns", "exec", OUTSIDE_NETNS, process.execPath, "-e", SERVER], { reject: false });
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

async function firstLine(launcher: string[], host: string, port: number): Promise<{ ok: boolean; line: string; error: string }> {
  const [file, ...args] = [...launcher, process.execPath, "-e", FIRST_LINE, host, String(port)];
  const result = await execa(file!, args, { reject: false, timeout: 15_000 });
  return { ok: result.exitCode === 0, line: String(result.stdout), error: String(result.stderr).trim() };
}

/** The first line a TCP service at host:port sends, read from the outside namespace. */
export const firstLineFromOutside = (host: string, port: number) => firstLine(["ip", "netns", "exec", OUTSIDE_NETNS], host, port);

/** The same, read by a process of `user` on the host (e.g. the QEMU user, whose sockets passt uses). */
export const firstLineAsUser = (user: string, host: string, port: number) => firstLine(["runuser", "-u", user, "--"], host, port);

// Just enough of a VNC (RFB 3.8) client for the tests to see what a console really offers and
// accepts: the security types, VeNCrypt's subtypes, the SASL mechanisms behind TLS, and a
// SCRAM-SHA-256 login (RFC 5802) the way QEMU's SASL wire format carries it (lengths are u32,
// SASL payloads end in a NUL byte that the length counts).
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import net from "node:net";
import tls from "node:tls";

/** Reads exact byte counts from a socket, which can be swapped for a TLS socket over it. */
class ByteReader {
  private buffered = Buffer.alloc(0);
  private waiting: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(public socket: net.Socket) {
    this.follow(socket);
  }

  follow(socket: net.Socket): void {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.wake();
    });
    socket.on("error", (error) => this.fail(error));
    socket.on("close", () => this.fail(new Error("the VNC server closed the connection")));
  }

  private fail(error: Error): void {
    this.failure ??= error;
    if (this.waiting) this.waiting.reject(this.failure);
    this.waiting = undefined;
  }

  private wake(): void {
    if (this.waiting && this.buffered.length >= this.waiting.n) {
      const { n, resolve } = this.waiting;
      this.waiting = undefined;
      const out = this.buffered.subarray(0, n);
      this.buffered = this.buffered.subarray(n);
      resolve(out);
    }
  }

  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiting = { n, resolve, reject };
      this.wake();
      if (this.waiting && this.failure) this.fail(this.failure);
    });
  }

  /** Bytes already read off the plain socket belong to nobody once TLS takes over. */
  detach(): void {
    this.socket.removeAllListeners("data");
    this.socket.removeAllListeners("close");
  }

  async u8(): Promise<number> {
    return (await this.read(1))[0]!;
  }
  async u32(): Promise<number> {
    return (await this.read(4)).readUInt32BE(0);
  }
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

export interface RfbSession {
  reader: ByteReader;
  /** The security types the server offered after the version handshake. */
  types: number[];
  close(): void;
}

/** Connects and does the RFB 3.8 version handshake; `types` is what the server offers. */
export async function rfbConnect(port: number, host = "127.0.0.1"): Promise<RfbSession> {
  const socket = net.connect(port, host);
  socket.setTimeout(15_000, () => socket.destroy(new Error("VNC handshake timed out")));
  const reader = new ByteReader(socket);
  const version = (await reader.read(12)).toString();
  if (!version.startsWith("RFB 003.")) throw new Error(`not VNC: ${JSON.stringify(version)}`);
  socket.write("RFB 003.008\n");
  const count = await reader.u8();
  if (count === 0) throw new Error(`the server refused the connection: ${(await reader.read(await reader.u32())).toString()}`);
  const types = [...(await reader.read(count))];
  return { reader, types, close: () => reader.socket.destroy() };
}

/** The security types a VNC server offers after the RFB 3.8 version handshake. */
export async function vncSecurityTypes(port: number): Promise<number[]> {
  const session = await rfbConnect(port);
  session.close();
  return session.types;
}

export const RFB_NONE = 1;
export const RFB_VNC_AUTH = 2;
export const RFB_SASL = 20;
export const RFB_VENCRYPT = 19;
export const VENCRYPT_X509_SASL = 263;

/** Picks VeNCrypt: the subtypes the server offers (nothing chosen yet). */
export async function veNCryptSubtypes(session: RfbSession): Promise<number[]> {
  const { reader } = session;
  reader.socket.write(Buffer.from([RFB_VENCRYPT]));
  const [major, minor] = [await reader.u8(), await reader.u8()];
  if (major !== 0 || minor < 2) throw new Error(`VeNCrypt ${major}.${minor}: 0.2 expected`);
  reader.socket.write(Buffer.from([0, 2]));
  if ((await reader.u8()) !== 0) throw new Error("the server refused VeNCrypt 0.2");
  const count = await reader.u8();
  const subtypes: number[] = [];
  for (let i = 0; i < count; i++) subtypes.push(await reader.u32());
  return subtypes;
}

/** Chooses X509SASL and starts TLS (the server's certificate checked against `ca`); returns the SASL mechanisms offered inside. */
export async function startX509Sasl(session: RfbSession, ca: string): Promise<string[]> {
  const { reader } = session;
  reader.socket.write(u32(VENCRYPT_X509_SASL));
  if ((await reader.u8()) !== 1) throw new Error("the server did not accept X509SASL");
  reader.detach();
  // The chain is checked against the CA; the name is not (a test certificate for 127.0.0.1).
  const secure = tls.connect({ socket: reader.socket, ca, checkServerIdentity: () => undefined });
  await new Promise<void>((resolve, reject) => secure.once("secureConnect", resolve).once("error", reject));
  reader.follow(secure);
  const list = (await reader.read(await reader.u32())).toString().replace(/\0$/, "");
  return list.split(/[ ,]+/).filter(Boolean);
}

/** A SASL payload as QEMU reads it: u32 length counting a trailing NUL. */
function saslPayload(text: string): Buffer {
  const data = Buffer.concat([Buffer.from(text), Buffer.from([0])]);
  return Buffer.concat([u32(data.length), data]);
}

async function saslReply(reader: ByteReader): Promise<{ data: string; complete: boolean }> {
  const length = await reader.u32();
  const data = length ? (await reader.read(length)).toString().replace(/\0$/, "") : "";
  return { data, complete: (await reader.u8()) === 1 };
}

/**
 * Logs in with SCRAM-SHA-256 after `startX509Sasl`: true when the server's SecurityResult is
 * OK, false when it refuses. The server's own signature is checked on success.
 */
export async function scramSha256Login(session: RfbSession, user: string, password: string): Promise<boolean> {
  const { reader } = session;
  const mech = "SCRAM-SHA-256";
  const clientNonce = randomBytes(18).toString("base64");
  const firstBare = `n=${user},r=${clientNonce}`;
  reader.socket.write(Buffer.concat([u32(mech.length), Buffer.from(mech), saslPayload(`n,,${firstBare}`)]));
  const first = await saslReply(reader).catch(() => undefined);
  if (!first) return false;
  const fields = new Map(first.data.split(",").map((kv) => [kv.slice(0, 1), kv.slice(2)] as const));
  const nonce = fields.get("r")!;
  if (!nonce.startsWith(clientNonce)) throw new Error(`the server's nonce does not extend ours: ${first.data}`);
  const salted = pbkdf2Sync(password, Buffer.from(fields.get("s")!, "base64"), Number(fields.get("i")), 32, "sha256");
  const hmac = (key: Buffer, text: string) => createHmac("sha256", key).update(text).digest();
  const clientKey = hmac(salted, "Client Key");
  const finalBare = `c=biws,r=${nonce}`;
  const authMessage = `${firstBare},${first.data},${finalBare}`;
  const signature = hmac(createHash("sha256").update(clientKey).digest(), authMessage);
  const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
  reader.socket.write(saslPayload(`${finalBare},p=${proof.toString("base64")}`));
  const final = await saslReply(reader).catch(() => undefined);
  if (!final) return false;
  const result = await reader.u32().catch(() => 1);
  if (result !== 0) return false;
  const serverSignature = hmac(hmac(salted, "Server Key"), authMessage).toString("base64");
  if (final.data !== `v=${serverSignature}`) throw new Error(`the server's signature is wrong: ${final.data}`);
  return true;
}

// The Downloads port over node:http and node:https: base images fetched in the background
// into kvmctl's own download directory, one download per sha256 at a time.
//
//   <dir>/<sha256>.part       the bytes so far (0600, opened O_NOFOLLOW); a broken download resumes from it
//   <dir>/<sha256>            the verified image, renamed into place after its sha256 matched (and fsync)
//   <dir>/<sha256>.imported   JSON list of the pool volumes (`<poolUuid>/<volume>`) the image was imported into
//
// The URL is parsed by WHATWG URL and handed to node's HTTP client: no shell, no curl. Only
// http: and https: are fetched, a redirect included. The directory is never a pool's: libvirt
// would list a partial file as a volume.
import { shownUrl } from "../api/net.js";
import { createHash, type Hash } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import type { DownloadState, Downloads } from "../ports/index.js";

const SHA256 = /^[0-9a-f]{64}$/;

export const DEFAULT_DOWNLOAD_DIR = "/var/lib/kvmctl/downloads";

export interface HttpDownloadsOptions {
  /** A connection silent this long fails the attempt (its partial file is kept). Default 60 s. */
  idleTimeoutMs?: number;
  /** Redirects followed (http and https only). Default 5. */
  maxRedirects?: number;
}

interface Job {
  url: string;
  state: DownloadState;
  done: Promise<void>;
}


class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class HttpDownloads implements Downloads {
  private readonly jobs = new Map<string, Job>();
  private readonly idleTimeoutMs: number;
  private readonly maxRedirects: number;

  constructor(
    readonly dir: string,
    options: HttpDownloadsOptions = {},
  ) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.maxRedirects = options.maxRedirects ?? 5;
  }

  private file(sha256: string, suffix = ""): string {
    if (!SHA256.test(sha256)) throw new Error(`not a sha256: ${JSON.stringify(sha256)}`);
    return path.join(this.dir, `${sha256}${suffix}`);
  }

  state(sha256: string): DownloadState {
    const job = this.jobs.get(sha256);
    if (job && job.state.phase !== "complete") return { ...job.state };
    const done = regularFile(this.file(sha256));
    if (done) return { phase: "complete", bytes: done.size, total: done.size, file: this.file(sha256) };
    // A partial file from an earlier process: the next start resumes it.
    const part = regularFile(this.file(sha256, ".part"));
    return { phase: "absent", bytes: part?.size ?? 0 };
  }

  start(url: string, sha256: string): boolean {
    const job = this.jobs.get(sha256);
    if (job?.state.phase === "running") return false;
    // A mismatch is the answer for this URL; another URL (a fixed manifest) may try again.
    if (job?.state.phase === "mismatch" && job.url === url) return false;
    if (this.state(sha256).phase === "complete") return false;
    const next: Job = { url, state: { phase: "running", bytes: 0 }, done: Promise.resolve() };
    next.done = this.run(next, sha256);
    this.jobs.set(sha256, next);
    return true;
  }

  /** Resolves when the download of `sha256` started last is over (for tests); its state then. */
  async settled(sha256: string): Promise<DownloadState> {
    await this.jobs.get(sha256)?.done;
    return this.state(sha256);
  }

  async recordImported(sha256: string, target: string): Promise<void> {
    const file = this.file(sha256, ".imported");
    const targets = new Set(await this.importedTargets(sha256));
    targets.add(target);
    const temp = `${file}.${process.pid}.tmp`;
    const handle = await fsp.open(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o600);
    try {
      await handle.writeFile(`${JSON.stringify([...targets].sort())}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(temp, file);
  }

  async imported(sha256: string, target: string): Promise<boolean> {
    return (await this.importedTargets(sha256)).includes(target);
  }

  private async importedTargets(sha256: string): Promise<string[]> {
    try {
      const handle = await fsp.open(this.file(sha256, ".imported"), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      try {
        const parsed = JSON.parse(await handle.readFile("utf8")) as unknown;
        return Array.isArray(parsed) ? parsed.filter((t): t is string => typeof t === "string") : [];
      } finally {
        await handle.close();
      }
    } catch {
      return [];
    }
  }

  /** The download directory, made 0700 when missing; a symlink or non-directory is refused. */
  private async prepareDir(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const st = await fsp.lstat(this.dir);
    if (st.isSymbolicLink() || !st.isDirectory()) throw new Error(`the download directory ${this.dir} is not a directory`);
  }

  private async run(job: Job, sha256: string): Promise<void> {
    const partFile = this.file(sha256, ".part");
    let handle: fsp.FileHandle | undefined;
    try {
      await this.prepareDir();
      handle = await fsp.open(partFile, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
      const st = await handle.stat();
      if (!st.isFile()) throw new Error(`${partFile} is not a regular file`);
      let offset = st.size;
      let hash = createHash("sha256");
      if (offset > 0) await hashExisting(handle, offset, hash);
      job.state = { phase: "running", bytes: offset };

      let response = await this.get(job.url, offset);
      if (response.statusCode === 416 && offset > 0) {
        // The partial file is no prefix the server knows (as long as the whole, or longer): start over.
        response.resume();
        response = await this.get(job.url, 0);
      }
      let total: number | undefined;
      if (response.statusCode === 206 && offset > 0) {
        const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(response.headers["content-range"] ?? ""));
        if (!range || Number(range[1]) !== offset) {
          response.resume();
          throw new Error(`the server answered the range request from byte ${offset} with ${JSON.stringify(response.headers["content-range"] ?? "no Content-Range")}`);
        }
        if (range[3] !== "*") total = Number(range[3]);
      } else if (response.statusCode === 200) {
        // No range (or the server ignores it): the whole body, from the start.
        if (offset > 0) {
          await handle.truncate(0);
          offset = 0;
          hash = createHash("sha256");
          job.state = { phase: "running", bytes: 0 };
        }
        const length = Number(response.headers["content-length"]);
        if (Number.isSafeInteger(length) && length >= 0) total = length;
      } else {
        response.resume();
        throw new HttpStatusError(response.statusCode ?? 0, `HTTP ${response.statusCode} ${response.statusMessage ?? ""}`.trim());
      }
      if (total !== undefined) job.state.total = total;

      let position = offset;
      for await (const chunk of response as AsyncIterable<Buffer>) {
        hash.update(chunk);
        let written = 0;
        while (written < chunk.length) {
          const { bytesWritten } = await handle.write(chunk, written, chunk.length - written, position + written);
          written += bytesWritten;
        }
        position += chunk.length;
        job.state.bytes = position;
      }
      if (!response.complete || (total !== undefined && position !== total)) {
        throw new Error(`the connection closed after ${position}${total !== undefined ? ` of ${total}` : ""} bytes`);
      }
      await handle.sync();
      await handle.close();
      handle = undefined;

      const actual = hash.digest("hex");
      if (actual !== sha256) {
        // No half file behind: the bytes are not the image asked for.
        await fsp.rm(partFile, { force: true });
        job.state = { phase: "mismatch", bytes: position, ...(total !== undefined ? { total } : {}), actual, message: `the sha256 of ${shownUrl(job.url)} is ${actual}, not ${sha256}` };
        return;
      }
      await fsp.rename(partFile, this.file(sha256));
      await syncDir(this.dir);
      job.state = { phase: "complete", bytes: position, total: position, file: this.file(sha256) };
    } catch (error) {
      await handle?.close().catch(() => {});
      const size = regularFile(partFile)?.size ?? 0;
      job.state = { phase: "failed", bytes: size, ...(job.state.total !== undefined ? { total: job.state.total } : {}), message: `downloading ${shownUrl(job.url)}: ${(error as Error).message}` };
    }
  }

  /** One GET (following http(s) redirects), with a Range header from `offset` when it is not 0. */
  private async get(url: string, offset: number, redirects = 0): Promise<http.IncomingMessage> {
    const target = new URL(url);
    if (target.protocol !== "http:" && target.protocol !== "https:") throw new Error(`only http and https URLs are fetched, not ${target.protocol}`);
    const client = target.protocol === "https:" ? https : http;
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const request = client.get(target, { headers: { "user-agent": "kvmctl", "accept-encoding": "identity", ...(offset > 0 ? { range: `bytes=${offset}-` } : {}) } }, resolve);
      request.setTimeout(this.idleTimeoutMs, () => request.destroy(new Error(`no data for ${this.idleTimeoutMs / 1000}s`)));
      request.on("error", reject);
    });
    const status = response.statusCode ?? 0;
    if ([301, 302, 303, 307, 308].includes(status) && response.headers.location) {
      response.resume();
      if (redirects >= this.maxRedirects) throw new Error(`more than ${this.maxRedirects} redirects`);
      return this.get(new URL(response.headers.location, target).toString(), offset, redirects + 1);
    }
    return response;
  }
}

function regularFile(file: string): fs.Stats | undefined {
  try {
    const st = fs.lstatSync(file);
    return st.isFile() ? st : undefined;
  } catch {
    return undefined;
  }
}

async function hashExisting(handle: fsp.FileHandle, length: number, hash: Hash): Promise<void> {
  const buffer = Buffer.alloc(1 << 20);
  let position = 0;
  while (position < length) {
    const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, length - position), position);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

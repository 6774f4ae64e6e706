// The Downloads adapter against a real HTTP server on 127.0.0.1 (node:http in this process):
// a whole download verified and renamed into place; a connection cut midway resumed with a
// Range request; a server that ignores the range restarted from zero; a wrong checksum leaves
// no file behind; the partial file is never a symlink followed.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { HttpDownloads } from "../../../src/adapters/downloads.js";

const BODY = Buffer.alloc(3 * 1024 * 1024 + 123);
for (let i = 0; i < BODY.length; i++) BODY[i] = (i * 31 + (i >> 10)) & 0xff;
const SHA = createHash("sha256").update(BODY).digest("hex");

interface Served {
  path: string;
  range?: string;
}
const requests: Served[] = [];
/** path → what the server does on the next request of it. */
const behaviour = new Map<string, "cut" | "ignore-range">();
let server: http.Server;
let base: string;

before(async () => {
  server = http.createServer((req, res) => {
    const url = req.url ?? "/";
    requests.push({ path: url, ...(req.headers.range ? { range: req.headers.range } : {}) });
    if (url === "/redirect") {
      res.writeHead(302, { location: "/image" }).end();
      return;
    }
    if (url === "/to-file") {
      res.writeHead(302, { location: "file:///etc/passwd" }).end();
      return;
    }
    if (url !== "/image" && url !== "/cut" && url !== "/norange") {
      res.writeHead(404).end();
      return;
    }
    const mode = behaviour.get(url);
    behaviour.delete(url);
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (range && url !== "/norange") {
      const start = Number(range[1]);
      if (start >= BODY.length) {
        res.writeHead(416, { "content-range": `bytes */${BODY.length}` }).end();
        return;
      }
      res.writeHead(206, { "content-length": BODY.length - start, "content-range": `bytes ${start}-${BODY.length - 1}/${BODY.length}` });
      res.end(BODY.subarray(start));
      return;
    }
    res.writeHead(200, { "content-length": BODY.length });
    if (mode === "cut") {
      // Half the body, then the connection is gone.
      res.write(BODY.subarray(0, Math.floor(BODY.length / 2)), () => setTimeout(() => res.socket?.destroy(), 50));
      return;
    }
    res.end(BODY);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function tempDir(): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-downloads-")), "downloads");
}

test("a whole download: verified, renamed into place (0600 in a 0700 directory), the partial file gone", async () => {
  const dir = tempDir();
  const downloads = new HttpDownloads(dir);
  assert.equal(downloads.state(SHA).phase, "absent");
  assert.equal(downloads.start(`${base}/image`, SHA), true);
  assert.equal(downloads.start(`${base}/image`, SHA), false, "one download per sha256 at a time");
  assert.equal(downloads.state(SHA).phase, "running");
  const state = await downloads.settled(SHA);
  assert.equal(state.phase, "complete", state.message);
  assert.equal(state.file, path.join(dir, SHA));
  assert.ok(fs.readFileSync(state.file!).equals(BODY));
  assert.equal(fs.statSync(state.file!).mode & 0o777, 0o600);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  assert.ok(!fs.existsSync(path.join(dir, `${SHA}.part`)));
  assert.equal(downloads.start(`${base}/image`, SHA), false, "complete: nothing to do");
  // A new process sees the finished file.
  assert.equal(new HttpDownloads(dir).state(SHA).phase, "complete");
});

test("cut midway: the partial file is kept, and the next start resumes it with a Range request", async () => {
  const dir = tempDir();
  const downloads = new HttpDownloads(dir);
  requests.length = 0;
  behaviour.set("/cut", "cut");
  downloads.start(`${base}/cut`, SHA);
  const broken = await downloads.settled(SHA);
  assert.equal(broken.phase, "failed");
  assert.ok(broken.bytes > 0 && broken.bytes < BODY.length, `kept ${broken.bytes} bytes`);
  assert.equal(fs.statSync(path.join(dir, `${SHA}.part`)).size, broken.bytes);

  // Another process (a restarted controller) resumes the same partial file.
  const again = new HttpDownloads(dir);
  assert.deepEqual(again.state(SHA), { phase: "absent", bytes: broken.bytes });
  assert.equal(again.start(`${base}/cut`, SHA), true);
  const done = await again.settled(SHA);
  assert.equal(done.phase, "complete", done.message);
  assert.ok(fs.readFileSync(done.file!).equals(BODY));
  assert.deepEqual(requests, [{ path: "/cut" }, { path: "/cut", range: `bytes=${broken.bytes}-` }]);
});

test("a server that ignores the range: the download starts over and still completes", async () => {
  const dir = tempDir();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, `${SHA}.part`), Buffer.from("not the start of the image"));
  const downloads = new HttpDownloads(dir);
  requests.length = 0;
  downloads.start(`${base}/norange`, SHA);
  const done = await downloads.settled(SHA);
  assert.equal(done.phase, "complete", done.message);
  assert.ok(fs.readFileSync(done.file!).equals(BODY));
  assert.equal(requests[0]?.range, "bytes=26-");
});

test("a partial file longer than the image (416): started over", async () => {
  const dir = tempDir();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(dir, `${SHA}.part`), Buffer.alloc(BODY.length + 10));
  const downloads = new HttpDownloads(dir);
  downloads.start(`${base}/image`, SHA);
  const done = await downloads.settled(SHA);
  assert.equal(done.phase, "complete", done.message);
});

test("a wrong checksum: mismatch naming the actual sum, no file left behind, not retried for the same URL", async () => {
  const dir = tempDir();
  const downloads = new HttpDownloads(dir);
  const wrong = "0".repeat(64);
  downloads.start(`${base}/image`, wrong);
  const state = await downloads.settled(wrong);
  assert.equal(state.phase, "mismatch");
  assert.equal(state.actual, SHA);
  assert.match(state.message!, new RegExp(`is ${SHA}, not ${wrong}`));
  assert.deepEqual(fs.readdirSync(dir), [], "no half file");
  assert.equal(downloads.start(`${base}/image`, wrong), false);
});

test("redirects are followed within http(s) only; HTTP errors fail the attempt", async () => {
  const downloads = new HttpDownloads(tempDir());
  downloads.start(`${base}/redirect`, SHA);
  assert.equal((await downloads.settled(SHA)).phase, "complete");

  const other = new HttpDownloads(tempDir());
  other.start(`${base}/to-file`, SHA);
  const refused = await other.settled(SHA);
  assert.equal(refused.phase, "failed");
  assert.match(refused.message!, /only http and https/);

  const missing = new HttpDownloads(tempDir());
  missing.start(`${base}/nothing`, SHA);
  const notFound = await missing.settled(SHA);
  assert.equal(notFound.phase, "failed");
  assert.match(notFound.message!, /HTTP 404/);
});

test("a symlink as the partial file or the directory is not followed", async () => {
  const dir = tempDir();
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const victim = path.join(path.dirname(dir), "victim");
  fs.writeFileSync(victim, "keep");
  fs.symlinkSync(victim, path.join(dir, `${SHA}.part`));
  const downloads = new HttpDownloads(dir);
  downloads.start(`${base}/image`, SHA);
  assert.equal((await downloads.settled(SHA)).phase, "failed");
  assert.equal(fs.readFileSync(victim, "utf8"), "keep");

  const linkDir = path.join(path.dirname(dir), "linked");
  fs.symlinkSync(path.dirname(dir), linkDir);
  const viaLink = new HttpDownloads(linkDir);
  viaLink.start(`${base}/image`, SHA);
  const refused = await viaLink.settled(SHA);
  assert.equal(refused.phase, "failed");
  assert.match(refused.message!, /not a directory/);
});

test("imports are recorded per target", async () => {
  const downloads = new HttpDownloads(tempDir());
  fs.mkdirSync(downloads.dir, { recursive: true });
  assert.equal(await downloads.imported(SHA, "pool/vol"), false);
  await downloads.recordImported(SHA, "pool/vol");
  assert.equal(await downloads.imported(SHA, "pool/vol"), true);
  assert.equal(await downloads.imported(SHA, "pool/other"), false);
});

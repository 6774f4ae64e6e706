// Locks between kvmctl processes (the CLI and the controller) that the kernel holds and drops
// when the holder dies, however it dies: a Linux abstract UNIX socket name can be bound by one
// socket at a time, binding is atomic, and nothing is left behind (no stale lock file to take
// over, which is where lock files race). Node has no flock(2); this needs no native module.
// Abstract names belong to a network namespace: processes in different namespaces do not
// exclude each other (documented in docs/store.md).
import { createHash } from "node:crypto";
import net from "node:net";

export class LockHeldError extends Error {
  constructor(readonly lock: string) {
    super(`lock ${lock} is held by another process`);
    this.name = "LockHeldError";
  }
}

/** The abstract socket name of a lock: kvmctl's prefix, then a hash of what it guards. */
function socketName(purpose: string, subject: string): string {
  return `\0kvmctl/${purpose}/${createHash("sha256").update(subject).digest("hex").slice(0, 40)}`;
}

function bind(name: string): Promise<net.Server | undefined> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (error: NodeJS.ErrnoException) => (error.code === "EADDRINUSE" ? resolve(undefined) : reject(error)));
    server.listen(name, () => {
      server.unref(); // holding a lock must not keep the process alive
      resolve(server);
    });
  });
}

export interface HeldLock {
  release(): Promise<void>;
}

/** Takes the lock now, or throws LockHeldError; held until release() or the process's end. */
export async function holdLock(purpose: string, subject: string): Promise<HeldLock> {
  const server = await bind(socketName(purpose, subject));
  if (!server) throw new LockHeldError(`${purpose} ${subject}`);
  return { release: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Runs `fn` holding the lock, waiting (polling with jitter) up to `timeoutMs` for it. */
export async function withLock<T>(purpose: string, subject: string, fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const name = socketName(purpose, subject);
  const deadline = Date.now() + timeoutMs;
  let server: net.Server | undefined;
  for (let attempt = 0; !(server = await bind(name)); attempt++) {
    if (Date.now() > deadline) throw new LockHeldError(`${purpose} ${subject}`);
    await new Promise((resolve) => setTimeout(resolve, Math.min(50, 2 + attempt) * (0.5 + Math.random())));
  }
  try {
    return await fn();
  } finally {
    await new Promise<void>((resolve) => server!.close(() => resolve()));
  }
}

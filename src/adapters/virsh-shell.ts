// Long-lived interactive `virsh` shells. Starting a virsh process and connecting it to libvirtd
// costs tens of milliseconds on an idle host and seconds on cores busy with booting guests; a
// shell that is already connected answers a command in about a millisecond. The controller
// sends most of its commands through a small pool of them (./virsh.ts decides which).
//
// The protocol, as virsh's interactive mode behaves with stdin and stdout on pipes:
// - readline echoes each input line after the prompt ("virsh # " + the line + "\n"; a long line
//   scrolls sideways behind a "\r", never a newline), then the command's output follows;
// - `echo WORD` prints WORD on stdout, `echo --err WORD` prints "error: WORD" on stderr;
// - a failed command prints "error: ..." lines on stderr and the shell goes on.
// So each command of a request is bracketed by a marker made fresh for the request, on both
// streams: `echo M-i`, `echo --err M-i`, the command; the request ends with `echo M-end` and
// `echo --err M-end`. A command's answer is the stdout after its own echoed line up to the
// next marker's prompt, and its stderr the text between the two stderr markers.
import { randomBytes } from "node:crypto";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";

/** One request's answers: per command, its stdout (exactly as a virsh process prints it) and stderr. */
export interface ShellAnswers {
  outputs: string[];
  errors: string[];
}

/** Why a shell could not answer: the caller reports it as busy (try again), never as "gone". */
export class ShellFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ShellFailure";
  }
}

/** A command's stderr says it failed. */
export function commandFailed(stderr: string): boolean {
  return /^error: /m.test(stderr);
}

const PROMPT = "virsh # ";

/**
 * Collects one stream's text for a request without rescanning it: chunks are kept as they come
 * and only the seam (the end of what came before plus the new chunk) is searched for the end
 * marker, so a long answer costs linear time.
 */
class Collected {
  private chunks: string[] = [];
  private tail = "";
  done = false;

  constructor(private readonly endMark: string) {}

  push(chunk: string): void {
    this.chunks.push(chunk);
    const seam = this.tail + chunk;
    if (seam.includes(this.endMark)) this.done = true;
    this.tail = seam.slice(-this.endMark.length);
  }

  text(): string {
    return this.chunks.join("");
  }
}

/** Splits a request's stdout into each command's answer (see the protocol above). */
export function splitOutputs(stdout: string, marker: string, count: number): string[] {
  const outputs: string[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const errEcho = `echo --err ${marker}-${i}\n`;
    const afterErrEcho = stdout.indexOf(errEcho, at);
    if (afterErrEcho < 0) throw new ShellFailure(`virsh shell: marker ${i} missing from the answer`);
    const prompt = stdout.indexOf(PROMPT, afterErrEcho + errEcho.length);
    const lineEnd = prompt < 0 ? -1 : stdout.indexOf("\n", prompt);
    const next = `${PROMPT}echo ${marker}-${i + 1 < count ? i + 1 : "end"}\n`;
    const end = lineEnd < 0 ? -1 : stdout.indexOf(next, lineEnd + 1);
    if (end < 0) throw new ShellFailure(`virsh shell: answer ${i} is not within its markers`);
    outputs.push(stdout.slice(lineEnd + 1, end));
    at = end;
  }
  return outputs;
}

/** Splits a request's stderr into each command's errors. */
export function splitErrors(stderr: string, marker: string, count: number): string[] {
  const errors: string[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const mark = `error: ${marker}-${i}\n`;
    const start = stderr.indexOf(mark, at);
    const next = start < 0 ? -1 : stderr.indexOf(`error: ${marker}-${i + 1 < count ? i + 1 : "end"}\n`, start + mark.length);
    if (next < 0) throw new ShellFailure(`virsh shell: error marker ${i} missing`);
    errors.push(stderr.slice(start + mark.length, next));
    at = next;
  }
  return errors;
}

interface Pending {
  marker: string;
  count: number;
  stdout: Collected;
  stderr: Collected;
  resolve(answers: ShellAnswers): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export interface VirshShellOptions {
  uri: string;
  timeoutMs: number;
  /** A request's stderr that says the connection to libvirtd is gone: the shell ends (busy). */
  lostConnection(stderr: string): boolean;
}

/**
 * One interactive virsh, one request at a time. Contract: `request` resolves each command's
 * stdout and stderr, or rejects with ShellFailure when the shell timed out, lost libvirtd or
 * ended; after a rejection the shell has ended and the pool starts another.
 */
export class VirshShell {
  private readonly child: ChildProcessWithoutNullStreams;
  private pending: Pending | undefined;
  ended = false;
  /** Its process has exited and its pipes closed. */
  private gone = false;
  /** When it last finished a request (ms epoch): the pool ends shells idle for long. */
  idleSince = Date.now();
  private readonly exited: Promise<void>;

  constructor(private readonly options: VirshShellOptions) {
    // Not -q: it also hides the "Domain 'x' started" lines callers read as success.
    this.child = spawn("virsh", ["-c", options.uri], {
      env: { ...process.env, LC_ALL: "C", TERM: "dumb", VIRSH_HISTSIZE: "0" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.child.stdout.setEncoding("utf8");
    this.child.stderr.setEncoding("utf8");
    this.child.stdout.on("data", (chunk: string) => this.onStdout(chunk));
    this.child.stderr.on("data", (chunk: string) => this.onStderr(chunk));
    this.child.stdin.on("error", () => this.end("its input closed"));
    this.exited = new Promise((resolve) => {
      const gone = (reason: string) => {
        this.gone = true;
        this.end(reason);
        resolve();
      };
      this.child.on("error", (error) => gone(`could not start: ${error.message}`));
      this.child.on("close", () => gone("exited"));
    });
    this.setRef(false);
  }

  get busy(): boolean {
    return this.pending !== undefined;
  }

  /** Runs commands (plain words only: the caller checks) and resolves each one's answers. */
  request(commands: string[][]): Promise<ShellAnswers> {
    if (this.ended) return Promise.reject(new ShellFailure("virsh shell: ended"));
    if (this.pending) return Promise.reject(new Error("virsh shell: a request is already running"));
    const marker = `KVMCTL-${randomBytes(6).toString("hex")}`;
    const script = commands
      .flatMap((command, i) => [`echo ${marker}-${i}`, `echo --err ${marker}-${i}`, command.join(" ")])
      .concat(`echo ${marker}-end`, `echo --err ${marker}-end`)
      .join("\n");
    return new Promise<ShellAnswers>((resolve, reject) => {
      this.pending = {
        marker,
        count: commands.length,
        // The output line of `echo M-end`, never its echoed input ("echo M-end" follows a space).
        stdout: new Collected(`\n${marker}-end\n`),
        stderr: new Collected(`error: ${marker}-end\n`),
        resolve,
        reject,
        timer: setTimeout(() => this.end("timed out"), this.options.timeoutMs),
      };
      this.setRef(true);
      this.child.stdin.write(`${script}\n`);
    });
  }

  private onStdout(chunk: string): void {
    // Between requests only the prompt and echoes of the last request arrive: nothing to keep.
    if (!this.pending) return;
    this.pending.stdout.push(chunk);
    this.settleIfComplete();
  }

  private onStderr(chunk: string): void {
    if (!this.pending) {
      // virsh speaks on stderr unasked only when something went wrong (e.g. libvirtd went away).
      this.end(`said between requests: ${chunk.trim()}`);
      return;
    }
    this.pending.stderr.push(chunk);
    this.settleIfComplete();
  }

  private settleIfComplete(): void {
    const pending = this.pending!;
    if (!pending.stdout.done || !pending.stderr.done) return;
    this.pending = undefined;
    clearTimeout(pending.timer);
    this.idleSince = Date.now();
    this.setRef(false);
    try {
      const stderr = pending.stderr.text();
      const errors = splitErrors(stderr, pending.marker, pending.count);
      if (this.options.lostConnection(stderr)) throw new ShellFailure(stderr.trim());
      pending.resolve({ outputs: splitOutputs(pending.stdout.text(), pending.marker, pending.count), errors });
    } catch (error) {
      // An answer that cannot be placed within its markers must never read as empty.
      this.end("its answer did not parse");
      pending.reject(error instanceof ShellFailure ? error : new ShellFailure(String(error)));
    }
  }

  /** Ends the shell (kills its own child by handle); a running request fails. Idempotent. */
  end(reason: string): void {
    const pending = this.pending;
    this.pending = undefined;
    if (pending) {
      clearTimeout(pending.timer);
      pending.reject(new ShellFailure(`virsh shell ${reason}`));
    }
    if (this.ended) return;
    this.ended = true;
    this.child.stdin.end();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }

  /** Ends the shell and waits for its process to be gone. */
  async close(): Promise<void> {
    this.end("was closed");
    // An unref'd child would let the event loop end before its exit is seen.
    if (!this.gone) this.setRef(true);
    await this.exited;
  }

  /** An idle shell must not keep a CLI process alive; a busy one must. */
  private setRef(on: boolean): void {
    // Pipes are sockets underneath, which Node's stream types do not say.
    const handles = [this.child, this.child.stdin, this.child.stdout, this.child.stderr] as { ref?(): void; unref?(): void }[];
    for (const handle of handles) {
      if (on) handle.ref?.();
      else handle.unref?.();
    }
  }
}

export interface VirshShellPoolOptions extends VirshShellOptions {
  /** At most this many shells at once; requests beyond wait for one to come free. */
  max: number;
  /** A shell idle this long ends. */
  idleMs: number;
}

/**
 * Shells started on demand, reused, ended when idle. Contract: `request` runs on a free shell
 * (starting one while under `max`, else waiting in order) and has the shell's contract.
 */
export class VirshShellPool {
  private readonly shells = new Set<VirshShell>();
  private readonly waiting: ((shell: VirshShell) => void)[] = [];
  private sweeper: NodeJS.Timeout | undefined;
  /** How many shells this pool started (benchmarks count them with processes). */
  started = 0;

  constructor(private readonly options: VirshShellPoolOptions) {}

  async request(commands: string[][]): Promise<ShellAnswers> {
    const shell = await this.acquire();
    try {
      return await shell.request(commands);
    } finally {
      this.release(shell);
    }
  }

  private acquire(): Promise<VirshShell> {
    for (const shell of this.shells) {
      if (shell.ended) this.shells.delete(shell);
      else if (!shell.busy && !this.claimed.has(shell)) return Promise.resolve(this.claim(shell));
    }
    if (this.shells.size < this.options.max) {
      const shell = new VirshShell(this.options);
      this.started++;
      this.shells.add(shell);
      this.startSweeper();
      return Promise.resolve(this.claim(shell));
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Shells handed to a caller that has not yet sent its request. */
  private readonly claimed = new Set<VirshShell>();

  private claim(shell: VirshShell): VirshShell {
    this.claimed.add(shell);
    return shell;
  }

  private release(shell: VirshShell): void {
    this.claimed.delete(shell);
    const next = this.waiting.shift();
    if (!next) return;
    if (shell.ended) {
      this.shells.delete(shell);
      void this.acquire().then(next);
    } else {
      next(this.claim(shell));
    }
  }

  private startSweeper(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const shell of this.shells) {
        if (shell.ended) this.shells.delete(shell);
        else if (!shell.busy && !this.claimed.has(shell) && now - shell.idleSince >= this.options.idleMs) {
          this.shells.delete(shell);
          shell.end("was idle");
        }
      }
      if (this.shells.size === 0) {
        clearInterval(this.sweeper);
        this.sweeper = undefined;
      }
    }, Math.max(1000, Math.floor(this.options.idleMs / 3)));
    this.sweeper.unref();
  }

  /** Ends every shell and waits for their processes. */
  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    const shells = [...this.shells];
    this.shells.clear();
    await Promise.all(shells.map((shell) => shell.close()));
  }
}

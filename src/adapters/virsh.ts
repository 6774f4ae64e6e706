// virsh: argument arrays (never a shell), timeouts, and stderr classified so reconcilers can
// tell "gone" from "busy" from everything else. Commands go to long-lived interactive virsh
// shells (./virsh-shell.ts) when every word is plain and no input is piped, else to a virsh
// process through execa. `batch` runs many read-only commands in one request (virsh's own ';'
// separator in a process), so observing N objects costs a constant number of round trips
// rather than N; `runThenRead` runs one change and its read-back so.
import { randomBytes } from "node:crypto";
import { execa } from "execa";
import { commandFailed, ShellFailure, VirshShellPool, type ShellAnswers } from "./virsh-shell.js";

export type VirshErrorKind = "not-found" | "busy" | "exists" | "other";

export class VirshError extends Error {
  constructor(
    readonly args: string[],
    readonly stderr: string,
    readonly kind: VirshErrorKind,
  ) {
    super(`virsh ${args.join(" ")}: ${stderr.trim() || "failed"}`);
    this.name = "VirshError";
  }
}

const NOT_FOUND = [/failed to get (domain|network|pool|vol)/i, /no (domain|network|storage pool|storage vol)[a-z ]* with matching/i, /not found/i, /Storage volume not found/i];
const BUSY = [/timed out/i, /another .*job/i, /is busy/i, /cannot acquire state change lock/i, /Failed to connect socket/i, /Cannot recv data/i, /End of file while reading data/i, /connection closed/i];
const EXISTS = [/already exists/i, /already defined/i, /is already active/i, /already running/i];
/**
 * What virsh says when the connection to libvirtd went away under it. A shell says the last two
 * on its own: "Disconnected" when it notices, "Reconnected" (as an error) before the next command.
 */
const LOST_CONNECTION = [/Failed to connect socket/i, /Cannot recv data/i, /End of file while reading data/i, /connection closed/i, /failed to connect to the hypervisor/i, /no valid connection/i, /Broken pipe/i, /Disconnected from .* due to/i, /Reconnected to the hypervisor/i];

export function classifyVirshError(stderr: string): VirshErrorKind {
  if (NOT_FOUND.some((re) => re.test(stderr))) return "not-found";
  if (EXISTS.some((re) => re.test(stderr))) return "exists";
  if (BUSY.some((re) => re.test(stderr))) return "busy";
  return "other";
}

export interface VirshOptions {
  uri: string;
  timeoutMs?: number;
  /**
   * Told of every virsh request (a process, or a request to a shell) when it ends: its
   * subcommand ("batch" for a batch of read-only commands) and how long it took (kvmctl_virsh_commands_total and
   * kvmctl_virsh_command_duration_seconds). Never its other arguments.
   */
  observer?: (command: string, ms: number) => void;
  /** At most this many interactive virsh shells at once (default 12); 0: a process per request. */
  shells?: number;
  /** A shell idle this long ends (default 30 s). */
  shellIdleMs?: number;
}

/** Words a virsh command line may hold: names are DNS labels, UUIDs, paths, fixed flags. */
const PLAIN_WORD = /^[A-Za-z0-9_.:/@+-]+$/;

/** Commands that only read: everything else may change what libvirt holds. */
const READ_ONLY = /^(dumpxml|net-dumpxml|pool-dumpxml|vol-dumpxml|vol-path|list|net-list|pool-list|vol-list|dominfo|domstate|net-info|pool-info|vol-info|net-dhcp-leases|domifaddr|vncdisplay|domblklist|version|uri)$/;

/** Below this many commands per process, another virsh process costs more than it saves. */
const MIN_LANE_COMMANDS = 40;

/**
 * Longer batches go to a process: readline reads a shell's input a byte at a time, so 2000
 * dumpxml took 620-670 ms in a shell against 155-160 ms in processes (test driver, 2026-12-03).
 */
const SHELL_MAX_COMMANDS = 24;

export class Virsh {
  /** How many virsh processes this client started (a batch too long for a shell, piped input). */
  processesStarted = 0;
  /** How many commands this client sent, in shells and processes alike (benchmarks report it). */
  commands = 0;
  /** When a command that may change libvirt last ended (ms epoch): pictures older than this are stale. */
  lastMutationAt = 0;
  /** Commands that may change libvirt, running now: until they end, no picture is known to hold. */
  mutationsInFlight = 0;
  /** How many of those run on each domain (by the UUID their caller named; "" for none named). */
  private readonly runningOn = new Map<string, number>();
  /** How many commands that may change libvirt have ended: a caller tells whether only its own ran meanwhile. */
  mutationsEnded = 0;
  /**
   * Told synchronously when a command that may change libvirt ends (however it ended), with the
   * UUID of the one domain it was about when the caller named it: the hypervisor adapter's
   * change log (./change-log.ts). No subject: it may have changed anything.
   */
  onMutationEnded: ((subject: string | undefined) => void) | undefined;

  private readonly shells: VirshShellPool | undefined;

  constructor(readonly options: VirshOptions) {
    const max = options.shells ?? 12;
    this.shells = max > 0
      ? new VirshShellPool({ uri: options.uri, max, idleMs: options.shellIdleMs ?? 30_000, timeoutMs: options.timeoutMs ?? 60_000, lostConnection: (stderr) => LOST_CONNECTION.some((re) => re.test(stderr)) })
      : undefined;
  }

  /** How many virsh processes this client started, shells included (benchmarks report it). */
  get spawned(): number {
    return this.processesStarted + this.shellsStarted;
  }

  get shellsStarted(): number {
    return this.shells?.started ?? 0;
  }

  /** Ends the shells; later commands start new ones. */
  async close(): Promise<void> {
    await this.shells?.close();
  }

  /** The shells take a request when there are any and every word is plain. */
  private shellFor(commands: string[][]): VirshShellPool | undefined {
    if (!this.shells || commands.length > SHELL_MAX_COMMANDS) return undefined;
    return commands.every((command) => command.every((word) => PLAIN_WORD.test(word))) ? this.shells : undefined;
  }

  /** A shell's request; its failure (timeout, lost libvirtd, ended) reads as busy. */
  private async inShell(shells: VirshShellPool, commands: string[][], args: string[]): Promise<ShellAnswers> {
    try {
      return await shells.request(commands);
    } catch (error) {
      if (error instanceof ShellFailure) throw new VirshError(args, error.message, "busy");
      throw error;
    }
  }

  private observe(command: string, started: number): void {
    try {
      this.options.observer?.(command, performance.now() - started);
    } catch {
      // metrics never fail a command
    }
  }

  /**
   * The UUIDs of the domains changing commands are running on now; undefined when one of them
   * named no domain (it may change anything). The informer's per-domain rule (./informed.ts).
   */
  domainsBeingChanged(): string[] | undefined {
    return this.runningOn.has("") ? undefined : [...this.runningOn.keys()];
  }

  private mutationStarted(subject: string | undefined): void {
    this.mutationsInFlight++;
    this.countRunning(subject, +1);
  }

  private countRunning(subject: string | undefined, delta: 1 | -1): void {
    const on = subject ?? "";
    const left = (this.runningOn.get(on) ?? 0) + delta;
    if (left > 0) this.runningOn.set(on, left);
    else this.runningOn.delete(on);
  }

  private mutationEnded(subject: string | undefined): void {
    this.lastMutationAt = Date.now();
    this.mutationsInFlight--;
    this.countRunning(subject, -1);
    this.mutationsEnded++;
    this.onMutationEnded?.(subject);
  }

  /**
   * Runs one command; throws VirshError with a classified kind on failure. `subject`: the UUID
   * of the one domain a changing command is about (see onMutationEnded).
   */
  async run(args: string[], options: { input?: string; subject?: string } = {}): Promise<string> {
    this.commands++;
    const mutates = !READ_ONLY.test(args[0] ?? "");
    const started = performance.now();
    if (mutates) this.mutationStarted(options.subject);
    const shells = options.input === undefined ? this.shellFor([args]) : undefined;
    if (shells) {
      const answers = await this.inShell(shells, [args], args).finally(() => {
        if (mutates) this.mutationEnded(options.subject);
        this.observe(args[0] ?? "", started);
      });
      const stderr = answers.errors[0]!;
      if (commandFailed(stderr)) throw new VirshError(args, stderr, classifyVirshError(stderr));
      // As execa gives a process's stdout: without its final newline.
      return answers.outputs[0]!.replace(/\n$/, "");
    }
    this.processesStarted++;
    const result = await execa("virsh", ["-c", this.options.uri, ...args], {
      reject: false,
      timeout: this.options.timeoutMs ?? 60_000,
      ...(options.input !== undefined ? { input: options.input } : {}),
      env: { LC_ALL: "C" },
    }).finally(() => {
      if (mutates) this.mutationEnded(options.subject);
      this.observe(args[0] ?? "", started);
    });
    if (result.exitCode !== 0 || result.timedOut) {
      const stderr = result.timedOut ? "timed out" : String(result.stderr);
      throw new VirshError(args, stderr, classifyVirshError(stderr));
    }
    return String(result.stdout);
  }

  /** Like run, but resolves undefined when the object does not exist. */
  async runOrMissing(args: string[]): Promise<string | undefined> {
    try {
      return await this.run(args);
    } catch (error) {
      if (error instanceof VirshError && error.kind === "not-found") return undefined;
      throw error;
    }
  }

  /**
   * Runs read-only commands in one virsh process and returns each one's stdout; a command
   * that failed (e.g. its object vanished meanwhile) yields undefined. Arguments must be
   * plain words (names are DNS labels, UUIDs, fixed flags): virsh splits on whitespace.
   */
  async batch(commands: string[][], options: { lanes?: number } = {}): Promise<(string | undefined)[]> {
    // Each virsh process sends its commands one after another; libvirtd answers several
    // connections at once, so a long batch is split across a few processes (lanes).
    const lanes = Math.max(1, Math.min(options.lanes ?? 1, Math.floor(commands.length / MIN_LANE_COMMANDS)));
    if (lanes > 1) {
      const size = Math.ceil(commands.length / lanes);
      const chunks = Array.from({ length: lanes }, (_, i) => commands.slice(i * size, (i + 1) * size)).filter((c) => c.length);
      return (await Promise.all(chunks.map((chunk) => this.batchInOneProcess(chunk)))).flat();
    }
    return this.batchInOneProcess(commands);
  }

  /**
   * Runs one command that changes libvirt, then read-only commands, in one virsh process (a
   * process costs seconds on cores busy with booting guests). Resolves to each read's stdout
   * (undefined for a failed one); throws a classified VirshError when the command failed. The
   * command must print something when it succeeds (virsh's "Domain 'x' started" does): virsh
   * goes on after a failed command, and only an empty bracket with an error tells it failed.
   */
  async runThenRead(args: string[], reads: string[][], options: { subject?: string } = {}): Promise<(string | undefined)[]> {
    if (READ_ONLY.test(args[0] ?? "")) throw new Error(`virsh runThenRead: ${args[0]} only reads (use batch)`);
    this.mutationStarted(options.subject);
    const shells = this.shellFor([args, ...reads]);
    if (shells) {
      this.commands += 1 + reads.length;
      const started = performance.now();
      const answers = await this.inShell(shells, [args, ...reads], args).finally(() => {
        this.mutationEnded(options.subject);
        this.observe(args[0]!, started);
      });
      const stderr = answers.errors[0]!;
      if (commandFailed(stderr)) throw new VirshError(args, stderr, classifyVirshError(stderr));
      return textsOf(answers).slice(1);
    }
    let outputs: { texts: (string | undefined)[]; stderr: string };
    try {
      outputs = await this.inOneProcess([args, ...reads], args[0]!);
    } finally {
      this.mutationEnded(options.subject);
    }
    const [done, ...rest] = outputs.texts;
    if (done === undefined) throw new VirshError(args, outputs.stderr || "printed nothing", classifyVirshError(outputs.stderr));
    return rest;
  }

  private async batchInOneProcess(commands: string[][]): Promise<(string | undefined)[]> {
    if (commands.length === 0) return [];
    const shells = this.shellFor(commands);
    if (shells) {
      this.commands += commands.length;
      const started = performance.now();
      return textsOf(await this.inShell(shells, commands, ["<batch>"]).finally(() => this.observe("batch", started)));
    }
    return (await this.inOneProcess(commands, "batch")).texts;
  }

  /** Runs `commands` in one virsh process; each one's stdout, undefined when it printed nothing. */
  private async inOneProcess(commands: string[][], metric: string): Promise<{ texts: (string | undefined)[]; stderr: string }> {
    for (const command of commands) {
      for (const word of command) {
        if (!PLAIN_WORD.test(word)) throw new Error(`virsh batch: unsafe word ${JSON.stringify(word)}`);
      }
    }
    this.commands += commands.length;
    const marker = `KVMCTL-${randomBytes(6).toString("hex")}`;
    // Each command is bracketed by "<marker>-<i>-begin" and "-end"; a failed command leaves
    // its bracket empty *and* virsh prints nothing, so we also need to know it failed:
    // commands that can legitimately print nothing are told apart by the caller.
    const script = commands.flatMap((command, i) => [`echo ${marker}-${i}`, command.join(" ")]).concat(`echo ${marker}-end`).join(" ; ");
    this.processesStarted++;
    const started = performance.now();
    const result = await execa("virsh", ["-c", this.options.uri, script], {
      reject: false,
      timeout: this.options.timeoutMs ?? 120_000,
      env: { LC_ALL: "C" },
    }).finally(() => this.observe(metric, started));
    // execa strips the final newline; the end marker is matched as a whole line.
    const stdout = `${String(result.stdout)}\n`;
    const stderr = String(result.stderr);
    if (!stdout.includes(`${marker}-end`)) {
      throw new VirshError(["<batch>"], stderr || "batch did not complete", classifyVirshError(stderr));
    }
    // virsh goes on after a command fails, also after losing libvirtd part-way: the commands
    // after that print nothing, which must not read as "no objects" (a picture with every
    // network missing would empty the firewall). The whole batch fails instead.
    if (LOST_CONNECTION.some((re) => re.test(stderr))) throw new VirshError(["<batch>"], stderr, "busy");
    const texts: (string | undefined)[] = [];
    let from = 0; // markers come in order: search on from the last one, not from the start
    for (let i = 0; i < commands.length; i++) {
      const start = stdout.indexOf(`${marker}-${i}\n`, from);
      const next = start < 0 ? -1 : stdout.indexOf(`${marker}-${i + 1 < commands.length ? i + 1 : "end"}\n`, start);
      if (start < 0 || next < 0) {
        texts.push(undefined);
        continue;
      }
      from = next;
      const text = stdout.slice(start + `${marker}-${i}\n`.length, next);
      texts.push(text.trim() === "" ? undefined : text);
    }
    return { texts, stderr };
  }
}

/** Each command's stdout as a batch gives it: undefined when it failed or printed nothing. */
function textsOf(answers: ShellAnswers): (string | undefined)[] {
  return answers.outputs.map((text, i) => (commandFailed(answers.errors[i]!) || text.trim() === "" ? undefined : text));
}

// What every end-to-end test needs around the real stack: virsh, a controller started from
// source with its log in the test's directory, waiting for a state with the log tail on
// failure, and `kvmctl get -o json`.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { iptablesPrefixFor } from "../../src/firewall/iptables.js";
import { nftTableFor } from "../../src/firewall/nftables.js";
import { LIBVIRT_URI, testGuest } from "../../testenv/env.js";
import { kvmctl, tempDir } from "../cli/helpers.js";

const MAIN = path.resolve("src/cli/main.ts");

export const virsh = (...args: string[]) => execa("virsh", ["-q", "-c", LIBVIRT_URI, ...args], { reject: false, timeout: 120_000 });

/**
 * A VirtualMachine manifest that boots the test guest (1 CPU, 256Mi, direct kernel boot,
 * 10 s grace period); `spec` holds the test's own spec fields, indented by two spaces.
 */
export function testGuestVm(name: string, spec: string): string {
  const guest = testGuest();
  return `apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata: {name: ${name}}
spec:
  cpus: 1
  memory: 256Mi
  terminationGracePeriodSeconds: 10
  boot: {kernel: ${guest.kernel}, initrd: ${guest.initrd}, cmdline: "console=ttyS0 quiet"}
${spec}`;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One JSON line of the controller's log (pino): `time` (ms epoch), `msg`, and what it logged. */
export interface LogLine {
  time: number;
  msg?: string;
  level?: number;
  pid?: number;
  /** The work-queue key, on lines about one reconcile. */
  object?: string;
  event?: { kind: string; name: string; detail: string };
  stream?: string;
  [field: string]: unknown;
}

/** The line the controller logs after every reconcile of every key (`waitForReconciles`). */
export interface ReconcileLine extends LogLine {
  msg: "reconcile finished";
  object: string;
  reconcileId: string;
  outcome: "ready" | "waiting" | "error" | "terminal";
  /** When the reconcile began (ms epoch). */
  startedAt: number;
  /** When the newest picture of libvirt (or the firewall table) it decided on was taken; absent if it read none. */
  observedAt?: number;
  ms: number;
}

export class E2eDirs {
  /**
   * The controller instance its controllers run as (`--instance`): its firewall rules are in
   * table `inet kvmctl-<instance>` (`nftTable`) or chains `<iptPrefix>-*`.
   */
  readonly instance = `t${process.pid.toString(36)}`.slice(0, 9);

  /** `root` holds the manifest directory `dir`, the controller's log and its console logs. */
  constructor(
    readonly root: string,
    readonly dir: string,
  ) {}

  get nftTable(): string {
    return nftTableFor(this.instance);
  }

  get iptPrefix(): string {
    return iptablesPrefixFor(this.instance);
  }

  /** A fresh root under the system temp dir, readable by QEMU (libvirt-qemu), with `state/` in it. */
  static create(label: string): E2eDirs {
    const root = tempDir(label);
    fs.chmodSync(root, 0o755);
    const dir = path.join(root, "state");
    fs.mkdirSync(dir);
    return new E2eDirs(root, dir);
  }

  /** Removes the root, unless KEEP_E2E_DIR asks to keep it for a look. */
  cleanUp(): void {
    if (process.env.KEEP_E2E_DIR) process.stdout.write(`# kept ${this.root}\n`);
    else fs.rmSync(this.root, { recursive: true, force: true });
  }

  get logFile(): string {
    return path.join(this.root, "controller.log");
  }

  /**
   * The host paths the tests' manifests use: pools, images and secret files under `root`, the
   * test guest's kernel and initrd (in /run, which kvmctl's defaults leave out).
   */
  get hostPathFlags(): string[] {
    const kernelDir = path.dirname(testGuest().kernel);
    return ["pool", "image", "secret"].flatMap((use) => ["--allow-host-path", `${use}=${this.root}`]).concat("--allow-host-path", `kernel=${kernelDir}`);
  }

  /** `kvmctl controller` from source, debug-logging to controller.log, allowed `hostPathFlags`; extra options appended, `env` added. */
  startController(extra: string[] = [], env: Record<string, string> = {}): ResultPromise {
    const instance = extra.includes("--instance") ? [] : ["--instance", this.instance];
    return execa(process.execPath, ["--import", "tsx", MAIN, "--dir", this.dir, "controller", "--default-domain-type", "qemu", "--console-log-dir", path.join(this.root, "console"), "--log-level", "debug", ...this.hostPathFlags, ...instance, ...extra], {
      reject: false,
      env,
      stdout: { file: this.logFile, append: true },
      stderr: { file: this.logFile, append: true },
    });
  }

  /** Polls `check` until it holds; returns how long that took, or throws with the log's tail. */
  async waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 90_000, intervalMs = 100): Promise<number> {
    const started = Date.now();
    while (Date.now() - started < timeoutMs) {
      if (await check()) return Date.now() - started;
      await sleep(intervalMs);
    }
    throw new Error(`timed out waiting for ${what}; controller log tail:\n${this.logTail()}`);
  }

  /** The last `lines` lines of the controller's log, for failure messages. */
  logTail(lines = 15): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, "utf8").split("\n").slice(-lines).join("\n") : "";
  }

  /**
   * The controller's log lines that parse as JSON (pino's), oldest first; other lines (a stack
   * trace on stderr, a line still being written) are skipped. Every controller started in this
   * root appends to the same file: select by `time`, `pid` or a key, not by position.
   */
  logLines(): LogLine[] {
    if (!fs.existsSync(this.logFile)) return [];
    const lines: LogLine[] = [];
    for (const text of fs.readFileSync(this.logFile, "utf8").split("\n")) {
      if (!text.startsWith("{")) continue;
      try {
        const line: unknown = JSON.parse(text);
        if (line && typeof line === "object" && !Array.isArray(line)) lines.push(line as LogLine);
      } catch {
        // not JSON: ignored
      }
    }
    return lines;
  }

  /** Polls the log until a line satisfies `match`; returns the first one, or throws with the tail. */
  async waitForLog(what: string, match: (line: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
    let found: LogLine | undefined;
    await this.waitUntil(what, async () => (found = this.logLines().find(match)) !== undefined, timeoutMs);
    return found!;
  }

  /**
   * Waits until the controller logged the libvirt event of a change made by hand (`kind` is
   * "domain", "network" or "pool"; `detail` matches its text, e.g. /^lifecycle: Stopped/) at or
   * after `after`, and returns the anchor for `waitForReconciles` after that change: the line's
   * `time` minus 1 ms (why, see there).
   */
  async waitForLibvirtEvent(kind: "domain" | "network" | "pool", name: string, detail: RegExp, after: number, timeoutMs = 30_000): Promise<number> {
    const line = await this.waitForLog(
      `the libvirt event ${kind} ${name} ${detail} after ${new Date(after).toISOString()}`,
      (l) => l.msg === "libvirt event" && l.time >= after && l.event?.kind === kind && l.event.name === name && detail.test(l.event.detail),
      timeoutMs,
    );
    return line.time - 1;
  }

  /**
   * The positive signal for "the controller looked, and did nothing": waits until `count`
   * reconciles of work-queue key `key` ("VirtualMachine/NAME", "Network/NAME",
   * "StoragePool/NAME", "Firewall/host") that took in a change made at `after` (ms epoch) have
   * finished, and returns their log lines. Whatever such a reconcile did (a start, a define, a
   * rule) is done by the time its line is written.
   *
   * The controller logs "reconcile finished" after every reconcile of every key, whatever its
   * outcome, with `startedAt` and `observedAt`: when the newest picture of libvirt it decided on
   * was taken, or, for a picture its informer vouched for (read before, nothing changed since as
   * far as libvirt's events tell), when it was vouched for — a change libvirt sends no event for
   * (`virsh setmaxmem --config`, `autostart`, a volume) is not in such a picture: ask for a
   * fresh look with `kvmctl reconcile` (for Firewall/host: when it began reading the firewall
   * table). Counted are the
   * reconciles that started at or after `after` and
   * - `changed: "world"` (the default: libvirt or the firewall table changed): decided on a
   *   picture taken at or after `after`. One that read none (an invalid manifest, stalled at
   *   once) counts by its start, as all it decided on was the manifests.
   * - `changed: "manifests"` (the test changed the manifest directory): no more. Such a
   *   reconcile may decide on a picture of libvirt taken before the change (up to 2 s older
   *   than its request), which is right: libvirt did not change.
   * A reconcile that started before `after` never counts, even if it read libvirt after it:
   * the Network reconciler, for one, reads libvirt again after its own steps for status only.
   *
   * Choosing `after`: a moment by which the change had surely happened.
   * - A change the test made to the manifest directory or the firewall table: `Date.now()`
   *   once the command that made it returned.
   * - A change made in libvirt by hand: when the controller heard of it, the `time` of the
   *   libvirt event reporting it, minus 1 ms (what `waitForLibvirtEvent` returns). The test's
   *   clock after `virsh` returns is too late: the event often arrives, and the reconcile it
   *   triggers reads libvirt, before the virsh process has exited, and nothing may trigger
   *   another one. Its clock before `virsh` ran is too early: a reconcile already under way can
   *   read libvirt while the command runs (a `virsh destroy` of a UEFI guest takes over a
   *   second) and still see the old state. The 1 ms: on a Stopped event the controller updates
   *   its picture in place, stamped just before it logs the event (possibly in the previous
   *   millisecond); every other picture is read by virsh processes spawned after its stamp,
   *   several ms later, so one stamped at most 1 ms before the event's line was read after
   *   libvirt had sent the event.
   *
   * Wait for `count` 2 or more where the claim is "no later pass changes it either", if
   * something queues the key again: periodic reconciles are few. Firewall/host comes every
   * `--firewall-check` (5 s by default) and whenever `nft monitor` reports a change to the
   * instance's own table (its own writes included), a Network whose running guests have no
   * DHCP lease yet every 5 s, anything not Ready every few seconds; everything else only on a
   * libvirt event about it, a manifest change or the resync (5 min by default).
   * Throws after `timeoutMs` with the key's last reconciles and the log's tail.
   */
  async waitForReconciles(key: string, options: { after: number; count?: number; changed?: "world" | "manifests"; timeoutMs?: number }): Promise<ReconcileLine[]> {
    const { after, count = 1, changed = "world", timeoutMs = 30_000 } = options;
    const took = (line: ReconcileLine) => line.startedAt >= after && (changed === "manifests" || (line.observedAt ?? line.startedAt) >= after);
    const started = Date.now();
    for (;;) {
      const all = this.logLines().filter((line): line is ReconcileLine => line.msg === "reconcile finished" && line.object === key);
      const seen = all.filter(took);
      if (seen.length >= count) return seen.slice(0, count);
      if (Date.now() - started >= timeoutMs) {
        const last = all.slice(-5).map((l) => `  ${l.outcome} startedAt=${l.startedAt} observedAt=${l.observedAt ?? "-"}`).join("\n");
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${count} reconcile(s) of ${key} that took in the ${changed} as of ${after} (${new Date(after).toISOString()}): ` +
            `${seen.length} so far; its last reconciles:\n${last || "  (none)"}\ncontroller log tail:\n${this.logTail()}`,
        );
      }
      await sleep(100);
    }
  }

  /** `kvmctl get KIND NAME -o json`, parsed; `target` is "vm/web1". */
  async getJson(target: string) {
    const got = await kvmctl(["--dir", this.dir, "get", ...target.split("/"), "-o", "json"]);
    assert.equal(got.exitCode, 0, got.stderr);
    return JSON.parse(got.stdout);
  }
}

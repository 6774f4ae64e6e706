// The nftables watch: `nft -j monitor` as a long-lived child process, its lines sorted by
// table (src/firewall/nft-monitor.ts), so a hand edit of kvmctl's own table is compared at
// once instead of at the next --firewall-check. A process that ends is started again with
// backoff; stop() ends it by its own handle.
//
// nft prints nothing when it starts listening, and it only subscribes after reading the whole
// ruleset (measured here: up to 0.7 s after the spawn). What changed before that is never
// printed, so each start is reported — with a change, to compare the table once — only when
// the kernel lists nft's netlink socket in the nftables group (/proc/net/netlink).
import fs from "node:fs";
import { execa, type ResultPromise } from "execa";
import { sortMonitorLines, type NftTableRef } from "../firewall/nft-monitor.js";
import type { FirewallWatch, FirewallWatchHandlers } from "../ports/index.js";

/** First restart delay; doubled per failed start up to RESTART_CAP_MS. */
const RESTART_BASE_MS = 250;
const RESTART_CAP_MS = 30_000;
/** A process that ran this long had started fine: the next restart starts the backoff over. */
const STABLE_MS = 10_000;
/** How often, and how long, to look for nft's subscription before reporting the start anyway. */
const LISTEN_POLL_MS = 20;
const LISTEN_GIVE_UP_MS = 10_000;

const NETLINK_NETFILTER = 12;
/** NFNLGRP_NFTABLES (7): bit 6 of /proc/net/netlink's Groups mask. */
const NFTABLES_GROUP_BIT = 1 << 6;

/**
 * Whether /proc/net/netlink (`text`) lists a netfilter socket of process `pid` (its port id:
 * the first socket a process binds gets its pid) that has joined the nftables event group.
 */
export function subscribedToNftables(text: string, pid: number): boolean {
  return text
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .some(([, eth, portId, groups]) => eth === String(NETLINK_NETFILTER) && portId === String(pid) && (parseInt(groups ?? "0", 16) & NFTABLES_GROUP_BIT) !== 0);
}

async function nftListening(pid: number): Promise<boolean> {
  return subscribedToNftables(await fs.promises.readFile("/proc/net/netlink", "utf8"), pid);
}

export interface NftMonitorOptions {
  /** The table whose changes count; every other table's are reported as ignored. */
  table: NftTableRef;
  handlers: FirewallWatchHandlers;
  /** The command and its arguments; default `nft -j monitor` (tests run a stand-in). */
  command?: readonly [string, ...string[]];
  /** Whether the process `pid` listens for events yet; default: its socket in /proc/net/netlink. */
  listening?(pid: number): Promise<boolean>;
}

export class NftMonitor implements FirewallWatch {
  private child: ResultPromise | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Starts in a row that did not last STABLE_MS. */
  private failures = 0;

  constructor(private readonly options: NftMonitorOptions) {}

  /** Starts the process (once; later starts are the restarts after it ends). */
  start(): this {
    this.spawn(false);
    return this;
  }

  private spawn(restart: boolean): void {
    if (this.stopped) return;
    const [file, ...args] = this.options.command ?? ["nft", "-j", "monitor"];
    const child = execa(file, args, { reject: false, buffer: false, stdin: "ignore", env: { LC_ALL: "C" } });
    this.child = child;
    const spawnedAt = Date.now();
    let ended = false;
    child.once("spawn", () => void this.announce(child, restart, () => ended));
    let partial = "";
    child.stdout?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      // One report per chunk: a transaction's lines arrive together, and the work queue
      // collapses what follows while a sync runs.
      const batch = sortMonitorLines(lines, this.options.table);
      if (batch.ignored.size) this.options.handlers.ignored(batch.ignored);
      if (batch.ours || batch.unknown.length) {
        const what = [batch.ours ? `${batch.ours} change(s) to ${this.options.table.family} ${this.options.table.name}` : "", ...batch.unknown.map((text) => `nft printed ${JSON.stringify(text.slice(0, 200))}`)];
        this.options.handlers.changed(what.filter(Boolean).join("; "));
      }
    });
    let stderr = "";
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
    void child.then((result) => {
      ended = true;
      if (this.child === child) this.child = undefined;
      if (this.stopped) return;
      this.failures = Date.now() - spawnedAt >= STABLE_MS ? 0 : this.failures + 1;
      const delay = Math.min(RESTART_CAP_MS, RESTART_BASE_MS * 2 ** Math.min(Math.max(this.failures - 1, 0), 10));
      const why = stderr.trim() || (result.signal ? `killed by ${result.signal}` : result.exitCode !== undefined ? `exited with code ${result.exitCode}` : (result.shortMessage ?? "ended"));
      this.options.handlers.ended(why, delay);
      this.restartTimer = setTimeout(() => this.spawn(true), delay);
    });
  }

  /**
   * Once the process listens (or LISTEN_GIVE_UP_MS passed: a kernel that does not say),
   * reports the start and a change: the table is compared once from then on, so nothing that
   * happened before the process listened goes unseen.
   */
  private async announce(child: ResultPromise, restart: boolean, ended: () => boolean): Promise<void> {
    const pid = child.pid;
    const listening = this.options.listening ?? nftListening;
    const giveUpAt = Date.now() + LISTEN_GIVE_UP_MS;
    while (pid !== undefined && Date.now() < giveUpAt && !ended() && !this.stopped && !(await listening(pid).catch(() => false))) {
      await new Promise((resolve) => setTimeout(resolve, LISTEN_POLL_MS));
    }
    if (ended() || this.stopped) return;
    this.options.handlers.started({ pid, restart });
    this.options.handlers.changed(restart ? "the watch listens again: what changed while it was down went unseen" : "the watch listens: what changed while it started went unseen");
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    this.child = undefined;
    if (!child) return;
    child.kill("SIGTERM");
    await child;
  }
}

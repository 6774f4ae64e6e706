// Captures what `nft -j monitor` really prints while kvmctl's table and other tables change,
// as the fixture for test/unit/firewall/nft-monitor.test.ts (the watch's line sorting). kvmctl's
// own writes go through the real NftBackend (the same transaction the controller commits); the
// hand edits are the nft commands a person would type.
//
// Run inside the test namespace, as root, holding the shared lock:
//   flock /tmp/kvmctl-e2e.lock npm run testenv:exec -- node --import tsx testenv/capture-nft-monitor.ts
//
// Every table is named with the sweeper's prefix (kvmctl's own as the table of instance
// `kvt-fx-fw`); all are removed in a finally. Steps are told apart by a marker table added and
// deleted after each one (its lines are left out), so no step waits a fixed time.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { NftBackend } from "../src/adapters/firewall.js";
import { TempScratchFiles } from "../src/adapters/host-files.js";
import { nftTableFor } from "../src/firewall/nftables.js";
import type { Rule } from "../src/firewall/rules.js";
import { TEST_PREFIX } from "./config.js";
import { insideNetns } from "./netns.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OWN = nftTableFor(`${TEST_PREFIX}fx-fw`);
const OTHER_INSTANCE = nftTableFor(`${TEST_PREFIX}fx-other`);
const ADMIN = `${TEST_PREFIX}fx-admin`;
const MARK = `${TEST_PREFIX}fx-mark`;

const RULES: Rule[] = [
  { chain: "prerouting", owner: "Network/kvt-fx-nat", protocol: "tcp", dports: [40022], daddrLocal: true, verdict: { type: "dnat", addr: "192.0.2.10", port: 22 } },
  { chain: "postrouting", owner: "Network/kvt-fx-nat", family: "ip", saddr: "192.0.2.0/24", notDaddr: "192.0.2.0/24", verdict: { type: "masquerade" } },
  { chain: "input", owner: "VirtualMachine/kvt-fx-vm", protocol: "tcp", dports: [5900], verdict: { type: "accept" } },
];

const nft = async (...args: string[]) => {
  const result = await execa("nft", args, { reject: false, timeout: 30_000 });
  if (result.exitCode !== 0) throw new Error(`nft ${args.join(" ")}: ${String(result.stderr).trim()}`);
  return String(result.stdout);
};

interface Step {
  step: string;
  /** Whose table the step changes: the watch must sync for "own" and only for it. */
  touches: "own" | "foreign";
  lines: string[];
}

async function main(): Promise<void> {
  if (!insideNetns()) throw new Error("run inside the test namespace: npm run testenv:exec -- node --import tsx testenv/capture-nft-monitor.ts");
  const version = (await nft("--version")).trim();
  const scratch = new TempScratchFiles("kvt-fx-nft-");
  const own = new NftBackend(scratch, OWN);
  const other = new NftBackend(scratch, OTHER_INSTANCE);
  const monitor = execa("nft", ["-j", "monitor"], { reject: false, buffer: false, stdin: "ignore" });
  const seen: string[] = [];
  let partial = "";
  monitor.stdout?.setEncoding("utf8");
  monitor.stdout?.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    seen.push(...lines.filter((l) => l.trim() !== ""));
  });
  const isMarkDelete = (line: string) => line.startsWith('{"delete": {"table": {') && line.includes(`"name": "${MARK}"`);
  /** Adds and deletes the marker table until the monitor prints its deletion; returns the lines before it. */
  const cut = async (): Promise<string[]> => {
    for (let attempt = 0; attempt < 100; attempt++) {
      await nft("add", "table", "inet", MARK);
      await nft("delete", "table", "inet", MARK);
      for (let wait = 0; wait < 20; wait++) {
        const at = seen.findIndex(isMarkDelete);
        if (at >= 0) return seen.splice(0, at + 1).filter((l) => !l.includes(`"${MARK}"`));
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }
    throw new Error("nft monitor printed nothing for the marker table");
  };
  const steps: Step[] = [];
  const step = async (name: string, touches: Step["touches"], run: () => Promise<unknown>) => {
    await run();
    steps.push({ step: name, touches, lines: await cut() });
  };
  try {
    await cut(); // the monitor is listening from here on
    await step("kvmctl applies its table (it did not exist)", "own", () => own.apply(RULES));
    await step("kvmctl applies its table again (replaced in one transaction)", "own", () => own.apply(RULES));
    await step("nft flush table inet <own> (by hand)", "own", () => nft("flush", "table", "inet", OWN));
    await step("kvmctl applies its table (the repair)", "own", () => own.apply(RULES));
    await step("nft add rule inet <own> input tcp dport 7 accept (by hand)", "own", () => nft("add", "rule", "inet", OWN, "input", "tcp", "dport", "7", "accept"));
    const listed = JSON.parse(await nft("-j", "-a", "list", "chain", "inet", OWN, "input")) as { nftables: { rule?: { handle: number } }[] };
    const handle = listed.nftables.filter((i) => i.rule).at(-1)!.rule!.handle;
    await step("nft delete rule inet <own> input handle N (by hand)", "own", () => nft("delete", "rule", "inet", OWN, "input", "handle", String(handle)));
    await step("nft delete chain inet <own> prerouting (by hand)", "own", () => nft("delete", "chain", "inet", OWN, "prerouting"));
    await step("nft delete table inet <own> (by hand)", "own", () => nft("delete", "table", "inet", OWN));
    await step("kvmctl applies its table (after the delete)", "own", () => own.apply(RULES));
    await step("kvmctl applies no rules (its table removed)", "own", () => own.apply([]));
    await step("an admin adds a table", "foreign", () => nft("add", "table", "inet", ADMIN));
    await step("an admin adds a base chain at the input hook", "foreign", () => nft("add", "chain", "inet", ADMIN, "input", "{ type filter hook input priority 10 ; policy accept ; }"));
    await step("an admin adds a rule with a comment naming kvmctl's table", "foreign", () => nft("add", "rule", "inet", ADMIN, "input", "tcp", "dport", "9", "accept", "comment", `"not ${OWN}"`));
    await step("an admin adds a set and an element", "foreign", async () => {
      await nft("add", "set", "inet", ADMIN, "blocked", "{ type ipv4_addr ; }");
      await nft("add", "element", "inet", ADMIN, "blocked", "{ 192.0.2.7 }");
    });
    await step("an admin adds a named counter", "foreign", () => nft("add", "counter", "inet", ADMIN, "seen"));
    await step("an admin flushes their table", "foreign", () => nft("flush", "table", "inet", ADMIN));
    await step("an admin deletes their table", "foreign", () => nft("delete", "table", "inet", ADMIN));
    await step("another controller instance applies its own table", "foreign", () => other.apply(RULES));
    await step("another controller instance removes its table", "foreign", () => other.apply([]));
    await step(`a table of the same name in family ip (ip ${OWN}) added and deleted`, "foreign", async () => {
      await nft("add", "table", "ip", OWN);
      await nft("delete", "table", "ip", OWN);
    });
  } finally {
    monitor.kill("SIGTERM");
    await monitor;
    for (const [family, table] of [["inet", OWN], ["inet", OTHER_INSTANCE], ["inet", ADMIN], ["inet", MARK], ["ip", OWN]] as const) {
      await execa("nft", ["delete", "table", family, table], { reject: false });
    }
    await scratch.close();
  }
  const dir = path.resolve(HERE, `../test/fixtures/nft-${/v(\d+\.\d+\.\d+)/.exec(version)?.[1] ?? "unknown"}`);
  fs.mkdirSync(dir, { recursive: true });
  const fixture = { captured: "testenv/capture-nft-monitor.ts: do not edit by hand", nft: version, command: "nft -j monitor", own: { family: "inet", name: OWN }, steps };
  fs.writeFileSync(path.join(dir, "monitor.json"), JSON.stringify(fixture, null, 2) + "\n");
  process.stdout.write(`wrote ${path.join(dir, "monitor.json")}: ${steps.length} steps, ${steps.reduce((n, s) => n + s.lines.length, 0)} lines\n`);
}

await main();

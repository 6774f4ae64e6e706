// What every end-to-end test needs around the real stack: virsh, a controller started from
// source with its log in the test's directory, waiting for a state with the log tail on
// failure, and `kvmctl get -o json`.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
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

export class E2eDirs {
  /** `root` holds the manifest directory `dir`, the controller's log and its console logs. */
  constructor(
    readonly root: string,
    readonly dir: string,
  ) {}

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

  /** `kvmctl controller` from source, debug-logging to controller.log; extra options appended, `env` added. */
  startController(extra: string[] = [], env: Record<string, string> = {}): ResultPromise {
    return execa(process.execPath, ["--import", "tsx", MAIN, "--dir", this.dir, "controller", "--default-domain-type", "qemu", "--console-log-dir", path.join(this.root, "console"), "--log-level", "debug", ...extra], {
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
    const tail = fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, "utf8").split("\n").slice(-15).join("\n") : "";
    throw new Error(`timed out waiting for ${what}; controller log tail:\n${tail}`);
  }

  /** `kvmctl get KIND NAME -o json`, parsed; `target` is "vm/web1". */
  async getJson(target: string) {
    const got = await kvmctl(["--dir", this.dir, "get", ...target.split("/"), "-o", "json"]);
    assert.equal(got.exitCode, 0, got.stderr);
    return JSON.parse(got.stdout);
  }
}

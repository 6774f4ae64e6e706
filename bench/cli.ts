// CLI speed: `kvmctl get vm` over 500 manifests, `kvmctl get network` over 4,000 networks
// (the cross-object subnet check), and `kvmctl --help`, wall time of the built binary (run
// `npm run build` first). Prints figures; asserts nothing.
// Goals (issue 2): get vm over 500 manifests <= 300 ms, --help <= 150 ms.
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const MAIN = path.resolve("dist/cli/main.js");
if (!fs.existsSync(MAIN)) throw new Error("dist/cli/main.js is missing: run `npm run build` first");
const RUNS = Number(process.env.RUNS ?? 11);

function manifests(dir: string, count: number): void {
  fs.mkdirSync(path.join(dir, "virtualmachines"), { recursive: true });
  for (let i = 0; i < count; i++) {
    const name = `vm-${String(i).padStart(3, "0")}`;
    fs.writeFileSync(
      path.join(dir, "virtualmachines", `${name}.yaml`),
      `# web tier\napiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: ${name}\n  labels: {tier: web}\nspec:\n  cpus: 2\n  memory: 2Gi\n  disks:\n    - name: root\n      size: 20Gi\n  interfaces:\n    - user:\n        portForwards: [{hostPort: ${20000 + i}, guestPort: 22}]\nstatus:\n  observedGeneration: 1\n  phase: Running\n  conditions:\n    - {type: Ready, status: "True", reason: Succeeded, message: "", lastTransitionTime: "2026-01-01T00:00:00Z", observedGeneration: 1}\n`,
    );
  }
}

function time(args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, [MAIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`kvmctl ${args.join(" ")} failed: ${String(result.stderr)}`);
  return ms;
}

/** `count` isolated networks, each its own /24, in one file. */
function networkManifests(dir: string, count: number): void {
  const docs = Array.from({ length: count }, (_, i) => `apiVersion: kvmctl.dev/v1alpha1\nkind: Network\nmetadata: {name: net-${i}}\nspec: {mode: isolated, ipv4: {address: 10.${Math.floor(i / 256)}.${i % 256}.1, prefix: 24}}\n`);
  fs.writeFileSync(path.join(dir, "networks.yaml"), docs.join("---\n"));
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const report = (label: string, values: number[], goal?: number) =>
  console.log(`${label.padEnd(44)} median ${median(values).toFixed(0).padStart(5)} ms   min ${Math.min(...values).toFixed(0).padStart(5)} ms${goal ? `   (goal <= ${goal} ms)` : ""}`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-bench-cli-"));
try {
  manifests(dir, 500);
  const cold: number[] = [];
  for (let i = 0; i < Math.min(RUNS, 5); i++) {
    fs.rmSync(path.join(dir, ".kvmctl"), { recursive: true, force: true });
    cold.push(time(["--dir", dir, "get", "vm"]));
  }
  const warm = Array.from({ length: RUNS }, () => time(["--dir", dir, "get", "vm"]));
  const help = Array.from({ length: RUNS }, () => time(["--help"]));
  const bare = Array.from({ length: RUNS }, () => {
    const started = process.hrtime.bigint();
    execFileSync(process.execPath, ["-e", "0"]);
    return Number(process.hrtime.bigint() - started) / 1e6;
  });
  console.log(`node ${process.version}, ${os.cpus().length} CPUs, ${RUNS} runs each`);
  report("node -e 0 (floor)", bare);
  report("kvmctl --help", help, 150);
  report("kvmctl get vm, 500 manifests, warm cache", warm, 300);
  report("kvmctl get vm, 500 manifests, no cache", cold);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

const netDir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-bench-cli-net-"));
try {
  networkManifests(netDir, 4000);
  const cold = Array.from({ length: Math.min(RUNS, 3) }, () => {
    fs.rmSync(path.join(netDir, ".kvmctl"), { recursive: true, force: true });
    return time(["--dir", netDir, "get", "network"]);
  });
  const warm = Array.from({ length: Math.min(RUNS, 5) }, () => time(["--dir", netDir, "get", "network"]));
  report("kvmctl get network, 4000 networks, no cache", cold);
  report("kvmctl get network, 4000 networks, warm cache", warm);
} finally {
  fs.rmSync(netDir, { recursive: true, force: true });
}

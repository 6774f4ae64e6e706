import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-mem-"));
const child = spawn(process.execPath, ["--require", "/tmp/trap-intl.cjs", "--max-semi-space-size=2", "dist/cli/main.js", "--dir", dir, "controller", "--metrics-address", "0"], { stdio: ["ignore", "ignore", "inherit"] });
await new Promise((r) => setTimeout(r, 8000));
const status = fs.readFileSync(`/proc/${child.pid}/status`, "utf8");
console.log(/VmRSS.*\n.*\n.*\n.*/.exec(status)![0]);
// file-backed RSS by mapping
const smaps = fs.readFileSync(`/proc/${child.pid}/smaps`, "utf8").split("\n");
const byFile = new Map<string, number>();
let current = "";
for (const line of smaps) {
  const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
  if (head) { current = head[1] || "[anon]"; continue; }
  const rss = /^Rss:\s+(\d+) kB/.exec(line);
  if (rss) byFile.set(current, (byFile.get(current) ?? 0) + Number(rss[1]));
}
console.log([...byFile].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([f, kb]) => `${(kb / 1024).toFixed(1)} MB ${f}`).join("\n"));
child.kill("SIGTERM");
fs.rmSync(dir, { recursive: true, force: true });

#!/usr/bin/env node
// The README's test command: every test file under test/ (unit and end-to-end together),
// one file at a time. Node 20 neither expands a glob nor fails when it finds nothing, so
// the list is built here and an empty list is an error. Arguments narrow the set:
// `npm test -- unit` runs files whose path contains "unit".
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

function testFiles(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return testFiles(full);
      return entry.name.endsWith(".test.ts") ? [full] : [];
    })
    .sort();
}

const filters = process.argv.slice(2);
const files = testFiles("test").filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)));
if (files.length === 0) {
  process.stderr.write(`no test files found under test/${filters.length ? ` matching ${filters.join(", ")}` : ""}\n`);
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=1", "--test-reporter=spec", ...files],
  { stdio: "inherit" },
);
process.exit(result.status ?? 1);

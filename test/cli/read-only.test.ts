// Read-only commands write nothing into a directory someone else owns (issue 13): `get`,
// `describe`, `diff` and `wait` run by another user — root included — leave it byte-for-byte
// and create no .kvmctl/; run by the owner they keep the parse cache as before.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { contents, kvmctl, tempDir } from "./helpers.js";

const VM = `apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata: {name: web1}\nspec: {memory: 256Mi, runStrategy: Halted}\n`;
const NOBODY = 65534;

test("get, describe and wait in a directory another user owns write nothing; the owner's get keeps the cache", async () => {
  assert.equal(process.getuid?.(), 0, "this test needs root to make a directory another user owns (CI runs as root)");
  const dir = path.join(tempDir("kvmctl-read-only-"), "state");
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "web1.yaml"), VM);
  fs.chownSync(dir, NOBODY, NOBODY);
  fs.chownSync(path.join(dir, "web1.yaml"), NOBODY, NOBODY);
  const before = contents(dir);
  for (const args of [["get", "vm"], ["get", "vm", "web1", "-o", "yaml"], ["describe", "vm", "web1"], ["wait", "vm/web1", "--for=condition=Ready", "--timeout=1s"]]) {
    const result = await kvmctl(["--dir", dir, ...args]);
    assert.ok(result.exitCode === 0 || args[0] === "wait", `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stdout + result.stderr, /web1/, args.join(" "));
    assert.deepEqual(contents(dir), before, `${args.join(" ")} changed the directory`);
    assert.ok(!fs.existsSync(path.join(dir, ".kvmctl")), `${args.join(" ")} created .kvmctl/`);
  }
  // Its owner's own `get` (here: the directory given back to root) keeps the parse cache.
  fs.chownSync(dir, 0, 0);
  assert.equal((await kvmctl(["--dir", dir, "get", "vm"])).exitCode, 0);
  assert.ok(fs.existsSync(path.join(dir, ".kvmctl", "cache", "read.json")), "the owner's get writes the parse cache");
});

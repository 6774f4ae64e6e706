// Every example is valid, as a set (no conflicting ports or names across examples of one
// directory), and points editors at its JSON Schema.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { ManifestStore } from "../../src/store/index.js";
import { formatProblem } from "../../src/store/index.js";

const dirs = fs.readdirSync("examples", { withFileTypes: true }).filter((e) => e.isDirectory() && e.name !== "systemd").map((e) => path.join("examples", e.name));

test("there are examples for every case the API issue names", () => {
  for (const dir of ["minimal", "kvm-in-a-box", "seed-002", "networks", "pools", "test-guest"]) assert.ok(dirs.includes(path.join("examples", dir)), dir);
});

for (const dir of dirs) {
  test(`examples in ${dir} are valid`, async () => {
    const store = new ManifestStore({ dir, diskCache: false });
    const snapshot = await store.read();
    assert.deepEqual(snapshot.problems.map(formatProblem), []);
    assert.ok(snapshot.objects.size > 0);
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".yaml"))) {
      const first = fs.readFileSync(path.join(dir, file), "utf8").split("\n")[0]!;
      const match = /^# yaml-language-server: \$schema=(\S+)$/.exec(first);
      assert.ok(match, `${dir}/${file} lacks the editor schema line`);
      assert.ok(fs.existsSync(path.join(dir, match[1]!)), `${dir}/${file}: ${match[1]} does not exist`);
    }
  });
}

test("the kvm-in-a-box VM is seed 001's foo: 2 CPUs, 1024 MiB, public network, an SSH key", async () => {
  const snapshot = await new ManifestStore({ dir: "examples/kvm-in-a-box", diskCache: false }).read();
  const foo = snapshot.objects.get("VirtualMachine/foo")!.object as { spec: { cpus: number; memory: number; interfaces: { network?: string }[]; cloudInit?: { sshAuthorizedKeys?: string[] } } };
  assert.equal(foo.spec.cpus, 2);
  assert.equal(foo.spec.memory, 1024 * 1024 * 1024);
  assert.equal(foo.spec.interfaces[0]!.network, "public");
  assert.equal(foo.spec.cloudInit?.sshAuthorizedKeys?.length, 1);
  assert.ok(snapshot.objects.has("StoragePool/vg0"));
});

test("the systemd unit verifies, and its sandbox keeps systemd's offline exposure score at 6 or below", () => {
  const unit = path.resolve("examples/systemd/kvmctl.service");
  const verify = spawnSync("systemd-analyze", ["verify", unit], { encoding: "utf8" });
  assert.equal(verify.error, undefined, "systemd-analyze is missing (testenv provisioning installs systemd)");
  assert.equal(verify.status, 0, verify.stderr);
  assert.equal(verify.stderr.trim(), "", "no warnings");
  const security = spawnSync("systemd-analyze", ["security", "--offline=yes", unit], { encoding: "utf8" });
  const score = Number(/Overall exposure level for kvmctl\.service: ([\d.]+)/.exec(security.stdout)?.[1]);
  assert.ok(Number.isFinite(score), security.stdout + security.stderr);
  process.stdout.write(`# systemd-analyze security --offline: exposure ${score} (10 is a unit without sandboxing)\n`);
  assert.ok(score <= 6, `exposure ${score}`);
});

test("every example applies together: `kvmctl apply -f examples/` (no two share a host port or a name)", async () => {
  const { readManifestInput } = await import("../../src/store/index.js");
  const input = await readManifestInput("examples");
  assert.deepEqual(input.problems.map(formatProblem), []);
  const dir = fs.mkdtempSync(path.join((await import("node:os")).tmpdir(), "kvmctl-examples-"));
  const result = await new ManifestStore({ dir, diskCache: false }).applyDocuments(input.documents, { dryRun: true });
  assert.equal(result.ok, true, JSON.stringify(result.problems?.map(formatProblem)));
  fs.rmSync(dir, { recursive: true, force: true });
});

// Virsh.batch in virsh processes (shells: 0; test/e2e/virsh-shell.test.ts has the shells)
// against a stand-in virsh on PATH that answers as the real one does when libvirtd goes away
// part-way through a batch: it carries on, the later commands print nothing. That must fail
// the batch (busy), never read as "these objects are gone".
import assert from "node:assert/strict";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Virsh, VirshError } from "../../../src/adapters/virsh.js";

let dir = "";
const savedPath = process.env.PATH;

/**
 * Prints each `echo` of the script; answers "net-list" with one network until the word "LOSE"
 * comes, after which every command fails as virsh does without a connection.
 */
const STAND_IN = `#!/usr/bin/env node
const script = process.argv[process.argv.length - 1];
let lost = false;
for (const command of script.split(" ; ")) {
  const [verb, ...rest] = command.split(" ");
  if (verb === "echo") { process.stdout.write(rest.join(" ") + "\\n"); continue; }
  if (verb === "LOSE") { lost = true; process.stderr.write("error: Disconnected from qemu:///system due to end of file\\nerror: End of file while reading data: Input/output error\\n"); continue; }
  if (lost) { process.stderr.write("error: failed to connect to the hypervisor\\nerror: no valid connection\\n"); continue; }
  if (verb === "start" && rest[0] === "running") { process.stderr.write("error: Failed to start domain 'running'\\nerror: Requested operation is not valid: domain is already running\\n"); continue; }
  if (verb === "start") { process.stdout.write("Domain '" + rest[0] + "' started\\n\\n"); continue; }
  if (verb === "missing") { process.stderr.write("error: failed to get network 'x'\\nerror: Network not found: no network with matching name 'x'\\n"); continue; }
  process.stdout.write("default\\n");
}
`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "kvmctl-virsh-"));
  await writeFile(join(dir, "virsh"), STAND_IN);
  await chmod(join(dir, "virsh"), 0o755);
  process.env.PATH = `${dir}:${savedPath ?? ""}`;
});
after(async () => {
  process.env.PATH = savedPath;
  await rm(dir, { recursive: true, force: true });
});

test("a command that fails on its own yields undefined; the others their output", async () => {
  const outputs = await new Virsh({ uri: "test:///x", shells: 0 }).batch([["net-list"], ["missing"], ["net-list"]]);
  assert.deepEqual(outputs.map((o) => o?.trim()), ["default", undefined, "default"]);
});

test("libvirtd lost part-way: the whole batch fails as busy, nothing reads as gone", async () => {
  const error = await new Virsh({ uri: "test:///x", shells: 0 }).batch([["net-list"], ["LOSE"], ["net-list"], ["net-list"]]).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof VirshError, "the batch is refused");
  assert.equal(error.kind, "busy");
  assert.match(error.message, /End of file while reading data/);
});

test("runThenRead: a start and its reads in one process; the start's failure is thrown, classified, and counts as a change", async () => {
  const virsh = new Virsh({ uri: "test:///x", shells: 0 });
  const reads = await virsh.runThenRead(["start", "web"], [["net-list"], ["missing"]]);
  assert.deepEqual(reads.map((o) => o?.trim()), ["default", undefined], "the reads only, each its own output");
  assert.equal(virsh.spawned, 1, "one virsh process");
  assert.ok(virsh.lastMutationAt > 0, "a start changes libvirt: older pictures are stale");
  const error = await virsh.runThenRead(["start", "running"], [["net-list"]]).then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof VirshError, "the start failed even though the read after it worked");
  assert.equal(error.kind, "exists");
  assert.match(error.message, /^virsh start running: error: Failed to start domain/);
  assert.equal(virsh.mutationsInFlight, 0);
  await assert.rejects(virsh.runThenRead(["dumpxml", "web"], []), /only reads/);
});

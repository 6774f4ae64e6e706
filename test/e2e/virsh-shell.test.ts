// The long-lived virsh shells (src/adapters/virsh-shell.ts) against the real virsh: their
// answers must be exactly what a virsh process prints, on the test driver and on the test
// environment's libvirtd, whatever the objects' own text holds; failures stay per command;
// a timeout, a missing libvirtd or a dead shell read as busy, never as "no objects".
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { execa } from "execa";
import { restartLibvirtd } from "../../testenv/daemons.js";
import { assertInTestEnv, LIBVIRT_URI, testName } from "../../testenv/env.js";
import { hostPorts } from "../../src/adapters/host-ports.js";
import { Virsh, VirshError } from "../../src/adapters/virsh.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-virsh-shell-"));
/** The test driver loads its objects from this file: a domain whose description imitates the shell's markers and prompt. */
const trickyUri = `test://${path.join(dir, "node.xml")}`;
const TRICKY = [
  "virsh # echo KVMCTL-000000000000-1",
  "KVMCTL-000000000000-end",
  "error: KVMCTL-000000000000-end",
  "virsh # ",
  "",
].join("\n");

/** The same domain, defined (never started) on the test environment's libvirtd. */
const tricky = testName("vsh-tricky");
const virshProcess = (...args: string[]) => execa("virsh", ["-c", LIBVIRT_URI, ...args], { reject: false, timeout: 60_000 });

before(async () => {
  await assertInTestEnv();
  const description = TRICKY.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  // A fixed UUID: the test driver makes a new one per connection otherwise.
  fs.writeFileSync(
    path.join(dir, "node.xml"),
    `<node><domain type='test'><name>tricky</name><uuid>8d1f0c2e-4b6a-4d3e-9f1a-2c3b4d5e6f70</uuid><description>${description}</description><memory>65536</memory><os><type>hvm</type></os></domain></node>\n`,
  );
  fs.writeFileSync(
    path.join(dir, "tricky.xml"),
    `<domain type='qemu'><name>${tricky}</name><description>${description}</description><memory>65536</memory><os><type arch='x86_64'>hvm</type></os></domain>\n`,
  );
  const defined = await virshProcess("define", path.join(dir, "tricky.xml"));
  assert.equal(defined.exitCode, 0, defined.stderr);
});
after(async () => {
  await virshProcess("undefine", tricky);
  fs.rmSync(dir, { recursive: true, force: true });
});

const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (e: unknown) => e);

/** Every object's listing and description, as a process and as a shell give them. */
async function everyAnswer(uri: string): Promise<{ commands: string[][]; shell: string[]; process: string[] }> {
  const processes = new Virsh({ uri, shells: 0 });
  const shells = new Virsh({ uri });
  const names = async (args: string[]) => (await processes.run(args)).split("\n").map((n) => n.trim()).filter(Boolean);
  const commands = [
    ["list", "--all"],
    ["net-list", "--all"],
    ["pool-list", "--all"],
    ...(await names(["list", "--all", "--name"])).flatMap((n) => [["dumpxml", n], ["domblklist", n], ["domstate", n]]),
    ...(await names(["net-list", "--all", "--name"])).map((n) => ["net-dumpxml", n]),
    ...(await names(["pool-list", "--all", "--name"])).map((n) => ["pool-dumpxml", n]),
  ];
  const process = await Promise.all(commands.map((c) => processes.run(c)));
  const shell = await Promise.all(commands.map((c) => shells.run(c)));
  const batched = await shells.batch(commands.slice(0, 20));
  assert.deepEqual(batched, (await processes.batch(commands.slice(0, 20))), "a batch in a shell reads as a batch in a process");
  assert.ok(shells.spawned >= 1 && shells.spawned <= 12, `the shells client started ${shells.spawned} shells`);
  await shells.close();
  return { commands, shell, process };
}

test("a shell's answers are a virsh process's, byte for byte: the test driver and the test environment's libvirtd", async () => {
  for (const uri of ["test:///default", LIBVIRT_URI]) {
    const { commands, shell, process } = await everyAnswer(uri);
    assert.ok(commands.length >= 7, `${uri}: ${commands.length} commands`);
    assert.deepEqual(shell, process, uri);
  }
});

test("text that imitates the markers and the prompt is an answer like any other", async () => {
  for (const [uri, name] of [[trickyUri, "tricky"], [LIBVIRT_URI, tricky]] as const) {
    const { shell, process } = await everyAnswer(uri);
    assert.deepEqual(shell, process, uri);
    const xml = shell.find((answer) => answer.includes(`<name>${name}</name>`));
    assert.ok(xml?.includes("virsh # echo KVMCTL-000000000000-1\nKVMCTL-000000000000-end\n"), `${uri}: the description comes through whole`);
  }
});

test("failures stay with their own command: classified, and the shell goes on", async () => {
  const virsh = new Virsh({ uri: "test:///default" });
  const missing = await failure(virsh.run(["dumpxml", "nosuch"]));
  assert.ok(missing instanceof VirshError && missing.kind === "not-found", String(missing));
  const running = await failure(virsh.run(["start", "test"]));
  assert.ok(running instanceof VirshError && running.kind === "exists", String(running));
  assert.deepEqual((await virsh.batch([["domstate", "test"], ["domstate", "nosuch"], ["net-list", "--name"]])).map((t) => t?.trim()), ["running", undefined, "default"]);
  // A change and its read-back in one request; the change's failure is the change's.
  assert.deepEqual(await virsh.runThenRead(["destroy", "test"], [["domstate", "test"]]), ["shut off\n\n"]);
  const again = await failure(virsh.runThenRead(["destroy", "test"], [["domstate", "test"]]));
  assert.ok(again instanceof VirshError && /not running/.test(again.message), String(again));
  assert.equal(virsh.mutationsInFlight, 0);
  // A 700-character line scrolls sideways in readline's echo; the answer is still its own.
  const long = await failure(virsh.run(["dominfo", "a".repeat(700)]));
  assert.ok(long instanceof VirshError && long.kind === "not-found", String(long));
  assert.equal((await virsh.run(["domstate", "test"])).trim(), "shut off");
  assert.equal(virsh.shellsStarted, 1, "one shell answered all of it");
  assert.equal(virsh.processesStarted, 0);
  await virsh.close();
});

test("the pool holds at most its size; a timeout ends the shell as busy and the next request gets another", async () => {
  const virsh = new Virsh({ uri: "test:///default", shells: 2 });
  const answers = await Promise.all(Array.from({ length: 10 }, () => virsh.run(["domstate", "test"])));
  assert.deepEqual(new Set(answers.map((a) => a.trim())), new Set(["running"]));
  assert.equal(virsh.spawned, 2, "10 requests at once, 2 shells");
  await virsh.close();
  const hasty = new Virsh({ uri: "test:///default", timeoutMs: 1 });
  for (let i = 1; i <= 2; i++) {
    const timedOut = await failure(hasty.run(["list"]));
    assert.ok(timedOut instanceof VirshError && timedOut.kind === "busy" && /timed out/.test(timedOut.message), String(timedOut));
    assert.equal(hasty.shellsStarted, i, "a shell that timed out is never used again");
  }
  await hasty.close();
});

test("no libvirtd behind the URI: busy, for a run and for a batch, never an empty reading", async () => {
  const virsh = new Virsh({ uri: `qemu+unix:///system?socket=${path.join(dir, "no-such.sock")}` });
  const run = await failure(virsh.run(["list", "--all", "--name"]));
  assert.ok(run instanceof VirshError && run.kind === "busy", String(run));
  const batch = await failure(virsh.batch([["list", "--all", "--name"], ["net-list", "--all", "--name"]]));
  assert.ok(batch instanceof VirshError && batch.kind === "busy", String(batch));
  await virsh.close();
});

test("an idle shell does not keep its process alive: a CLI that used one exits by itself", async () => {
  const script = path.join(dir, "use-once.mts");
  const client = path.resolve("src/adapters/virsh.ts");
  fs.writeFileSync(script, `import { Virsh } from ${JSON.stringify(client)};\nconst v = new Virsh({ uri: "test:///default" });\nconsole.log((await v.run(["domstate", "test"])).trim(), v.spawned);\n`);
  const child = await execa("node", ["--import", "tsx", script], { reject: false, timeout: 30_000 });
  assert.equal(child.timedOut, false, "the process exited while its shell was idle");
  assert.equal(child.exitCode, 0, child.stderr);
  assert.equal(child.stdout.trim(), "running 1");
});

test("a batch longer than a shell takes goes to a virsh process", async () => {
  const virsh = new Virsh({ uri: "test:///default" });
  const commands = Array.from({ length: 30 }, () => ["domstate", "test"]);
  const texts = await virsh.batch(commands);
  assert.deepEqual(new Set(texts.map((t) => t?.trim())), new Set(["running"]));
  assert.equal(texts.length, 30);
  assert.equal(virsh.processesStarted, 1, "one process");
  assert.equal(virsh.shellsStarted, 0, "no shell");
  assert.equal(virsh.commands, 30);
  await virsh.close();
});

test("libvirtd restarted under the shells: every answer is the right one or busy, never a command read as failed", async () => {
  const shells = new Virsh({ uri: LIBVIRT_URI, shells: 2 });
  const expected = await new Virsh({ uri: LIBVIRT_URI, shells: 0 }).run(["list", "--all", "--name"]);
  assert.ok(expected.includes(tricky));
  assert.equal(await shells.run(["list", "--all", "--name"]), expected);
  const before = shells.shellsStarted;
  const outcomes = { right: 0, busy: 0 };
  let restarted = false;
  const reader = (async () => {
    // Reads all through the restart, and on until one comes right after it.
    for (;;) {
      const answer = await shells.run(["list", "--all", "--name"]).catch((error: unknown) => error);
      if (answer === expected) {
        outcomes.right++;
        if (restarted) return;
      } else {
        assert.ok(answer instanceof VirshError && answer.kind === "busy", `neither the right answer nor busy: ${String(answer)}`);
        outcomes.busy++;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  })();
  await restartLibvirtd();
  restarted = true;
  await reader;
  assert.ok(shells.shellsStarted > before, "a shell that lost libvirtd is not used again");
  process.stdout.write(`# through a libvirtd restart: ${outcomes.right} right answers, ${outcomes.busy} busy, ${shells.shellsStarted - before} shells started\n`);
  await shells.close();
});

test("networks defined at once without bridge names each get their own virbrN (the adapter defines one at a time)", async () => {
  const ports = hostPorts({ uri: LIBVIRT_URI });
  const names = Array.from({ length: 12 }, (_, i) => testName(`vsh-net${i}`));
  try {
    // Twelve workers defining at once, as a first pass over Network manifests does; a few rounds.
    for (let round = 0; round < 4; round++) {
      await Promise.all(names.map((name, i) => ports.hypervisor.defineNetwork(`<network><name>${name}</name><ip address='198.18.${40 + i}.1' prefix='24'/></network>`)));
      const bridges = await Promise.all(names.map(async (name) => /<bridge name='([^']+)'/.exec(String((await virshProcess("net-dumpxml", "--inactive", name)).stdout))?.[1]));
      assert.equal(bridges.filter(Boolean).length, names.length, `every network has a bridge: ${bridges.join(", ")}`);
      assert.equal(new Set(bridges).size, names.length, `round ${round}, bridge names: ${bridges.join(", ")}`);
      for (const name of names) await virshProcess("net-undefine", name);
    }
  } finally {
    for (const name of names) await virshProcess("net-undefine", name);
    await ports.hypervisor.close();
  }
});

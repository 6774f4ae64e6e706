// The host-path policy on the real stack (issue 13): whoever writes manifests cannot make the
// controller use host files outside the directories its own --allow-host-path flags name. A
// dir pool on /etc, a pool through a symlink that leads to /etc, an image that is /etc/shadow,
// a qcow2 image in an allowed directory whose backing file is /etc/passwd, a kernel from /boot,
// a secret from /root: each is Stalled (HostPathNotAllowed) naming its field, and libvirt, the
// pool directory and /etc hold nothing of it; the allowed pool and VM next to them converge.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import type { ResultPromise } from "execa";
import { assertInTestEnv, testGuest, testName } from "../../testenv/env.js";
import { kvmctl } from "../cli/helpers.js";
import { E2eDirs, virsh } from "./harness.js";

const pool = testName("hp-pool");
const etcPool = testName("hp-etc");
const linkedPool = testName("hp-link");
const goodVm = testName("hp-good");
/** Refused VMs, and the field each names. */
const REFUSED_VMS = {
  [testName("hp-shadow")]: { field: "spec.disks[0].from.image", disk: "/etc/shadow" },
  [testName("hp-backed")]: { field: "the image", disk: "backed.qcow2" },
  [testName("hp-kernel")]: { field: "spec.boot.kernel", kernel: "/boot/kvt-no-such-kernel" },
  [testName("hp-secret")]: { field: "spec.consoles.vnc.passwordSecretFile", secret: "/root/kvt-vnc-password" },
} as Record<string, { field: string; disk?: string; kernel?: string; secret?: string }>;
/** Where the symlinked pool would really land: must never be created. */
const ESCAPED = `/etc/${testName("hp-escaped")}`;

let run: E2eDirs; // set in before(); after() runs even when before() failed
let controller: ResultPromise | undefined;

function vm(name: string, options: { disk?: string; kernel?: string; secret?: string }): string {
  const guest = testGuest();
  const image = options.disk && !options.disk.startsWith("/") ? path.join(run.root, options.disk) : options.disk;
  return `---
apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata: {name: ${name}}
spec:
  runStrategy: Halted
  cpus: 1
  memory: 128Mi
  boot: {kernel: ${options.kernel ?? guest.kernel}, initrd: ${guest.initrd}}
${image ? `  disks:\n    - {name: root, pool: ${pool}, from: {image: ${image}}}\n` : ""}${options.secret ? `  consoles: {vnc: {passwordSecretFile: ${options.secret}}}\n` : ""}`;
}

const poolDoc = (name: string, dir: string) => `---
apiVersion: kvmctl.dev/v1alpha1
kind: StoragePool
metadata: {name: ${name}}
spec: {type: dir, path: ${dir}}
`;

before(async () => {
  await assertInTestEnv();
  run = E2eDirs.create("e2e-host-paths");
  execFileSync("qemu-img", ["create", "-f", "qcow2", path.join(run.root, "base.qcow2"), "1M"], { stdio: "pipe" });
  execFileSync("qemu-img", ["create", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", path.join(run.root, "backed.qcow2")], { stdio: "pipe" });
  fs.symlinkSync("/etc", path.join(run.root, "escape"));
});

after(async () => {
  if (controller && controller.exitCode === null) {
    controller.kill("SIGTERM");
    await Promise.race([controller, new Promise((r) => setTimeout(r, 30_000).unref())]);
    if (controller.exitCode === null) controller.kill("SIGKILL");
  }
  for (const name of [goodVm, ...Object.keys(REFUSED_VMS)]) await virsh("undefine", name, "--nvram");
  for (const name of [pool, etcPool, linkedPool]) {
    await virsh("pool-destroy", name);
    await virsh("pool-undefine", name);
  }
  run?.cleanUp();
});

test("manifests naming host paths outside the controller's policy are Stalled, and nothing of them reaches the host", async (t) => {
  const manifests = [
    poolDoc(pool, path.join(run.root, "pool")),
    poolDoc(etcPool, "/etc"),
    poolDoc(linkedPool, path.join(run.root, "escape", path.basename(ESCAPED))),
    vm(goodVm, { disk: "base.qcow2" }),
    ...Object.entries(REFUSED_VMS).map(([name, options]) => vm(name, options)),
  ].join("");
  fs.writeFileSync(path.join(run.dir, "host-paths.yaml"), manifests);
  controller = run.startController();

  await t.test("the allowed pool and VM converge", async () => {
    for (const key of [`storagepool/${pool}`, `vm/${goodVm}`]) {
      const ready = await kvmctl(["--dir", run.dir, "wait", key, "--for=condition=Ready", "--timeout=120s"]);
      assert.equal(ready.exitCode, 0, `${key}: ${ready.stderr}\n${run.logTail()}`);
    }
    assert.match(String((await virsh("vol-list", pool)).stdout), new RegExp(`${goodVm}-root\\.qcow2`));
  });

  await t.test("each refused object is Stalled with HostPathNotAllowed, naming its field", async () => {
    const expected: Record<string, RegExp> = {
      [`storagepool/${etcPool}`]: /^spec\.path: "\/etc" is outside the host paths this controller allows for storage pool directories/,
      [`storagepool/${linkedPool}`]: new RegExp(`^spec\\.path: ".*/escape/${path.basename(ESCAPED)}" \\(really "${ESCAPED}"\\) is outside`),
      ...Object.fromEntries(
        Object.entries(REFUSED_VMS).map(([name, { field }]) => [
          `vm/${name}`,
          field === "the image" ? /^the image .*backed\.qcow2 reads another file \("\/etc\/passwd", a backing or data file\): refused/ : new RegExp(`^${field.replace(/[.[\]]/g, "\\$&")}: ".*" is outside the host paths`),
        ]),
      ),
    };
    for (const [key, message] of Object.entries(expected)) {
      let stalled: { reason: string; message: string } | undefined;
      await run.waitUntil(`${key} Stalled`, async () => {
        const conditions = ((await run.getJson(key)).status?.conditions ?? []) as { type: string; status: string; reason: string; message: string }[];
        stalled = conditions.find((c) => c.type === "Stalled" && c.status === "True");
        return stalled !== undefined;
      }, 60_000);
      assert.equal(stalled!.reason, "HostPathNotAllowed", key);
      assert.match(stalled!.message, message, key);
    }
    const described = await kvmctl(["--dir", run.dir, "describe", "storagepool", etcPool]);
    assert.match(described.stdout, /HostPathNotAllowed/);
  });

  await t.test("libvirt, the pool and /etc hold nothing of them", async () => {
    // The Stalled statuses above are the controller's own word that it looked.
    for (const name of [etcPool, linkedPool]) assert.notEqual((await virsh("pool-info", name)).exitCode, 0, `pool ${name} was defined`);
    for (const name of Object.keys(REFUSED_VMS)) assert.notEqual((await virsh("domstate", name)).exitCode, 0, `domain ${name} was defined`);
    const volumes = String((await virsh("vol-list", pool)).stdout);
    for (const name of Object.keys(REFUSED_VMS)) assert.doesNotMatch(volumes, new RegExp(name), `a volume of ${name} was created`);
    assert.ok(!fs.existsSync(ESCAPED), `${ESCAPED} was created through the symlink`);
    assert.equal(controller!.exitCode, null, "the controller is still running");
  });
});

// `npm run testenv:<command>`: up | down | exec -- CMD... | guest | sweep | status.
import os from "node:os";
import { execa } from "execa";
import { LIBVIRT_URI, NETNS } from "./config.js";
import { cloudGuest } from "./cloud-guest.js";
import { daemonsRunning, startDaemons, stopDaemons } from "./daemons.js";
import { guest } from "./guest.js";
import { ensureTestVolumeGroup, removeTestVolumeGroup } from "./lvm.js";
import { createNetns, deleteNetns, netnsExists } from "./netns.js";
import { provisionPackages } from "./provision.js";
import { run } from "./run.js";
import { sweep } from "./sweep.js";
import { restoreHostQemuConf } from "./vnc-sasl.js";

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error("the test environment needs root (it creates a network namespace and runs libvirtd)");
}

async function up(): Promise<void> {
  requireRoot();
  const started = Date.now();
  await provisionPackages();
  // Software-emulated guests don't need it, but QEMU probes /dev/kvm; make it usable.
  await run("chmod", ["666", "/dev/kvm"], { quiet: true, allowFailure: true });
  await createNetns();
  await startDaemons();
  // A VNC SASL test that died midway left its qemu.conf: the host's own comes back first.
  if (await restoreHostQemuConf()) process.stderr.write("restored the host's qemu.conf (a VNC SASL test had changed it)\n");
  await ensureTestVolumeGroup();
  const removed = await sweep();
  if (removed.length) process.stderr.write(`swept leftovers: ${removed.join(", ")}\n`);
  const image = await guest();
  const cloud = await cloudGuest();
  process.stdout.write(
    JSON.stringify({ namespace: NETNS, uri: LIBVIRT_URI, guest: image, cloudGuest: cloud, seconds: (Date.now() - started) / 1000 }, null, 2) + "\n",
  );
}

async function down(): Promise<void> {
  requireRoot();
  if (netnsExists() && daemonsRunning()) {
    const removed = await sweep();
    if (removed.length) process.stderr.write(`swept: ${removed.join(", ")}\n`);
  }
  await stopDaemons();
  await restoreHostQemuConf();
  await removeTestVolumeGroup();
  await deleteNetns();
}

/** Signals passed on to the command: killing `testenv:exec` must not leave it running in the namespace. */
const FORWARDED_SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;

async function exec(command: string[]): Promise<number> {
  if (command.length === 0) throw new Error("usage: npm run testenv:exec -- CMD [ARGS...]");
  if (!netnsExists()) throw new Error(`namespace ${NETNS} does not exist; run \`npm run testenv:up\` first`);
  // `ip netns exec` replaces itself with the command, so the child's PID is the command's.
  const child = execa("ip", ["netns", "exec", NETNS, ...command], { stdio: "inherit", reject: false });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
  const result = await child;
  for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
  // A command ended by a signal: exit as a shell would (128 + signal number).
  if (result.signal) return 128 + (os.constants.signals[result.signal] ?? 0);
  return result.exitCode ?? 1;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "up":
      await up();
      return 0;
    case "down":
      await down();
      return 0;
    case "exec":
      return exec(rest[0] === "--" ? rest.slice(1) : rest);
    case "guest": {
      const image = await guest();
      const cloud = await cloudGuest();
      process.stdout.write(
        JSON.stringify({
          kernel: image.kernel,
          initrd: image.initrd,
          sshKey: image.sshKey,
          cloud: { kernel: cloud.kernel, initrd: cloud.initrd, disk: cloud.disk },
        }) + "\n",
      );
      return 0;
    }
    case "sweep":
      process.stdout.write((await sweep()).join("\n") + "\n");
      return 0;
    default:
      process.stderr.write("usage: testenv up | down | exec -- CMD... | guest | sweep\n");
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`testenv: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);

// What tests import to find the environment. `assertInTestEnv()` throws when a test runs
// outside the namespace or libvirt does not answer: end-to-end tests fail, never skip.
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { LIBVIRT_URI, NETNS, TEST_PREFIX, TEST_VG } from "./config.js";
import { CLOUD_GUEST_CMDLINE, CLOUD_GUEST_READY, CLOUD_GUEST_USER, CURRENT_CLOUD_GUEST_DIR } from "./cloud-guest.js";
import { CURRENT_GUEST_DIR } from "./guest.js";
import { insideNetns } from "./netns.js";

export { LIBVIRT_URI, NETNS, TEST_PREFIX, TEST_VG };

export interface TestGuest {
  kernel: string;
  initrd: string;
  sshKey: string;
}

/** The cloud-init guest: boot `kernel` + `initrd` with `cmdline`; `disk` is a read-only qcow2 base to overlay. */
export interface TestCloudGuest {
  kernel: string;
  initrd: string;
  disk: string;
  cmdline: string;
  /** cloud-init's default user, whom a seed's ssh_authorized_keys authorise. */
  user: string;
  /** Printed on ttyS0 once cloud-init's init stage and sshd are done. */
  readyMarker: string;
}

let checked: Promise<void> | undefined;

export function assertInTestEnv(): Promise<void> {
  checked ??= (async () => {
    if (!insideNetns()) {
      throw new Error(
        `end-to-end tests must run inside the test namespace "${NETNS}": run \`npm run test:all\`, ` +
          "or `npm run testenv:up` then `npm run testenv:exec -- npm test`",
      );
    }
    const result = await execa("virsh", ["-c", LIBVIRT_URI, "version"], { reject: false, timeout: 15_000 });
    if (result.exitCode !== 0) {
      throw new Error(`libvirt does not answer on ${LIBVIRT_URI} (${String(result.stderr).trim()}); run \`npm run testenv:up\``);
    }
  })();
  return checked;
}

/** The test guest published by `npm run testenv:up` / `testenv:guest`; throws if missing. */
export function testGuest(): TestGuest {
  const guest = {
    kernel: path.join(CURRENT_GUEST_DIR, "vmlinuz"),
    initrd: path.join(CURRENT_GUEST_DIR, "initrd.img"),
    sshKey: path.join(CURRENT_GUEST_DIR, "id_ed25519"),
  };
  for (const file of Object.values(guest)) {
    if (!fs.existsSync(file)) throw new Error(`test guest file ${file} is missing; run \`npm run testenv:guest\``);
  }
  return guest;
}

/** The cloud-init guest published by `npm run testenv:up` / `testenv:guest`; throws if missing. */
export function testCloudGuest(): TestCloudGuest {
  const kernel = path.join(CURRENT_CLOUD_GUEST_DIR, "vmlinuz");
  const initrd = path.join(CURRENT_CLOUD_GUEST_DIR, "initrd.img");
  const link = path.join(CURRENT_CLOUD_GUEST_DIR, "disk.qcow2");
  for (const file of [kernel, initrd, link]) {
    if (!fs.existsSync(file)) throw new Error(`cloud-init test guest file ${file} is missing; run \`npm run testenv:up\` (or \`npm run testenv:guest\`)`);
  }
  // The cached base itself, so overlays name a path that outlives this boot's /run.
  const disk = fs.realpathSync(link);
  return { kernel, initrd, disk, cmdline: CLOUD_GUEST_CMDLINE, user: CLOUD_GUEST_USER, readyMarker: CLOUD_GUEST_READY };
}

/** A name for a test object: the sweeper's prefix plus something unique to this process. */
export function testName(label: string): string {
  return `${TEST_PREFIX}${label}-${process.pid.toString(36)}`.slice(0, 63);
}

// Installs what the test environment needs, idempotently: libvirt 11 and QEMU 10 from
// bookworm-backports (bookworm's libvirt 9 rejects passt) plus tools from bookworm.
// A warm machine skips apt entirely.
import fs from "node:fs";
import { run } from "./run.js";

const BACKPORTS_PACKAGES = [
  "libvirt-daemon-system",
  "libvirt-clients",
  "libvirt-daemon-driver-qemu",
  "qemu-system-x86",
  "qemu-utils",
  "systemd", // systemd-analyze checks the example unit (no systemd runs)
];
const BOOKWORM_PACKAGES = [
  "passt",
  "nftables",
  "iptables",
  "dnsmasq-base",
  "ovmf",
  "swtpm",
  "genisoimage",
  "mtools",
  "dosfstools",
  "busybox-static",
  "dropbear-bin",
  "linux-image-cloud-amd64",
  "cpio",
  "openssh-client",
  "lvm2",
  "iproute2",
  "kmod",
  "xz-utils",
  // The cloud-init guest (testenv/cloud-guest.ts): a Debian rootfs made into an ext4 disk.
  "mmdebstrap",
  "e2fsprogs",
  // VNC SASL (test/e2e/vnc-sasl.test.ts): a SCRAM-SHA-256 sasldb, and the TLS certificate QEMU needs with it.
  "sasl2-bin",
  "openssl",
  // The status page's browser test (test/unit/metrics/page-chromium.test.ts): headless Chromium.
  "chromium",
];

/** Installed without their recommended packages (a browser's desktop helpers are not needed headless). */
const WITHOUT_RECOMMENDS = new Set(["chromium"]);

const DEBIAN_SOURCES = "/etc/apt/sources.list.d/debian.sources";
const BACKPORTS_SOURCES = "/etc/apt/sources.list.d/kvmctl-bookworm-backports.sources";

/** Returns the packages from `names` that dpkg does not report as installed. */
async function missingPackages(names: string[]): Promise<string[]> {
  const result = await run("dpkg-query", ["-W", "-f", "${Package} ${db:Status-Status}\n", ...names], {
    quiet: true,
    allowFailure: true,
  });
  const installed = new Set(
    result.stdout
      .split("\n")
      .filter((line) => line.endsWith(" installed"))
      .map((line) => line.split(" ")[0]),
  );
  return names.filter((name) => !installed.has(name));
}

/** The Debian mirror the machine already uses: the first `URIs:` of its deb822 sources (no host name in the project). */
export function debianMirror(): string {
  const sources = fs.readFileSync(DEBIAN_SOURCES, "utf8");
  const uri = /^URIs:\s*(\S+)/m.exec(sources)?.[1];
  if (!uri) throw new Error(`no URIs: line in ${DEBIAN_SOURCES}; cannot find the machine's Debian mirror`);
  return uri;
}

/** Backports from the same mirror the machine already uses (no host name in the project). */
function ensureBackportsSource(): boolean {
  if (fs.existsSync(BACKPORTS_SOURCES)) return false;
  const sources = fs.readFileSync(DEBIAN_SOURCES, "utf8");
  const uri = debianMirror();
  const signedBy = /^Signed-By:\s*(\S+)/m.exec(sources)?.[1] ?? "/usr/share/keyrings/debian-archive-keyring.gpg";
  fs.writeFileSync(
    BACKPORTS_SOURCES,
    ["Types: deb", `URIs: ${uri}`, "Suites: bookworm-backports", "Components: main", `Signed-By: ${signedBy}`, ""].join("\n"),
  );
  return true;
}

async function libvirtFromBackports(): Promise<boolean> {
  const result = await run("dpkg-query", ["-W", "-f", "${Version}", "libvirt-daemon-system"], { quiet: true, allowFailure: true });
  const major = Number(/^(\d+)\./.exec(result.stdout)?.[1] ?? 0);
  return major >= 10;
}

export async function provisionPackages(): Promise<void> {
  const missingBackports = await missingPackages(BACKPORTS_PACKAGES);
  const missingBookworm = await missingPackages(BOOKWORM_PACKAGES);
  const needBackportsLibvirt = !(await libvirtFromBackports());
  if (missingBackports.length === 0 && missingBookworm.length === 0 && !needBackportsLibvirt) return;

  const aptEnv = { DEBIAN_FRONTEND: "noninteractive" };
  const sourceAdded = ensureBackportsSource();
  const listsAreFresh = !sourceAdded && fs.existsSync("/var/lib/apt/lists") && hasBackportsLists();
  if (!listsAreFresh) await run("apt-get", ["update"], { env: aptEnv });
  await run("apt-get", ["install", "-y", "-t", "bookworm-backports", ...BACKPORTS_PACKAGES], {
    env: aptEnv,
  });
  const withRecommends = missingBookworm.filter((name) => !WITHOUT_RECOMMENDS.has(name));
  const bare = missingBookworm.filter((name) => WITHOUT_RECOMMENDS.has(name));
  if (withRecommends.length) await run("apt-get", ["install", "-y", ...withRecommends], { env: aptEnv });
  if (bare.length) await run("apt-get", ["install", "-y", "--no-install-recommends", ...bare], { env: aptEnv });
}

function hasBackportsLists(): boolean {
  return fs.readdirSync("/var/lib/apt/lists").some((f) => f.includes("bookworm-backports") && f.endsWith("Packages"));
}

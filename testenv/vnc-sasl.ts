// Host-wide VNC SASL for the tests that need it (seed 003): SCRAM-SHA-256 from a sasldb made
// with sasl2-bin, over TLS (QEMU accepts SCRAM, which has no security layer, only inside TLS),
// set in /etc/libvirt/qemu.conf and applied by restarting libvirtd. The host's qemu.conf is
// kept byte for byte beside it and put back by `restoreHostQemuConf` — called by the test
// that turned SASL on, and by `testenv up`/`down` in case that test died midway.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { RUN_DIR } from "./config.js";
import { daemonsRunning, restartLibvirtd } from "./daemons.js";
import { run } from "./run.js";

const QEMU_CONF = "/etc/libvirt/qemu.conf";
const BACKUP = path.join(RUN_DIR, "qemu.conf.before-vnc-sasl");
const ROOT = path.join(RUN_DIR, "vnc-sasl");
const SASL_DIR = path.join(ROOT, "sasl2");
const TLS_DIR = path.join(ROOT, "tls");

export interface VncSaslLogin {
  user: string;
  password: string;
  /** The CA that signed the VNC server's certificate (for a client that verifies it). */
  caCertificate: string;
}

/** The group QEMU runs in (Debian: kvm for libvirt-qemu): it must read the sasldb and the TLS key. */
function qemuGroupId(): number {
  const line = fs.readFileSync("/etc/group", "utf8").split("\n").find((l) => l.startsWith("kvm:"));
  const gid = Number(line?.split(":")[2]);
  if (!Number.isInteger(gid)) throw new Error("no kvm group in /etc/group: QEMU's group is unknown");
  return gid;
}

function writeReadableByQemu(file: string, content: string, gid: number): void {
  fs.writeFileSync(file, content, { mode: 0o640 });
  fs.chownSync(file, 0, gid);
}

/**
 * Turns VNC SASL on host-wide and restarts libvirtd (guests keep running); returns a login that
 * works. `restart: false` leaves libvirtd running with the qemu.conf it read before (what an
 * operator who forgot the restart has); `restartLibvirtd` applies it later.
 */
export async function enableHostVncSasl(options: { restart?: boolean } = {}): Promise<VncSaslLogin> {
  if (!fs.existsSync(BACKUP)) fs.copyFileSync(QEMU_CONF, BACKUP);
  const gid = qemuGroupId();
  fs.rmSync(ROOT, { recursive: true, force: true });
  for (const dir of [ROOT, SASL_DIR, TLS_DIR]) {
    fs.mkdirSync(dir, { mode: 0o750 });
    fs.chownSync(dir, 0, gid);
  }
  const user = "kvt-vnc";
  const password = randomBytes(12).toString("base64url");
  const db = path.join(SASL_DIR, "vnc.sasldb");
  writeReadableByQemu(path.join(SASL_DIR, "qemu.conf"), `mech_list: scram-sha-256\nsasldb_path: ${db}\n`, gid);
  await run("saslpasswd2", ["-p", "-c", "-a", "qemu", "-f", db, user], { input: password, quiet: true });
  fs.chownSync(db, 0, gid);
  fs.chmodSync(db, 0o640);

  // A throwaway CA and the server certificate libvirt hands QEMU (vnc_tls_x509_cert_dir).
  const caKey = path.join(TLS_DIR, "ca-key.pem");
  const csr = path.join(TLS_DIR, "server.csr");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run("openssl", ["req", "-x509", ...ec, "-keyout", caKey, "-out", path.join(TLS_DIR, "ca-cert.pem"), "-days", "2", "-subj", "/CN=kvmctl-test-vnc-ca"], { quiet: true });
  await run("openssl", ["req", ...ec, "-keyout", path.join(TLS_DIR, "server-key.pem"), "-out", csr, "-subj", "/CN=127.0.0.1"], { quiet: true });
  await run("openssl", ["x509", "-req", "-in", csr, "-CA", path.join(TLS_DIR, "ca-cert.pem"), "-CAkey", caKey, "-CAcreateserial", "-out", path.join(TLS_DIR, "server-cert.pem"), "-days", "2"], { quiet: true });
  for (const leftover of [caKey, csr, path.join(TLS_DIR, "ca-cert.srl")]) fs.rmSync(leftover, { force: true });
  for (const file of fs.readdirSync(TLS_DIR)) {
    fs.chownSync(path.join(TLS_DIR, file), 0, gid);
    fs.chmodSync(path.join(TLS_DIR, file), 0o640);
  }

  const original = fs.readFileSync(BACKUP, "utf8");
  const settings = ["", "# kvmctl test environment (testenv/vnc-sasl.ts): VNC SASL over TLS", "vnc_sasl = 1", `vnc_sasl_dir = "${SASL_DIR}"`, "vnc_tls = 1", `vnc_tls_x509_cert_dir = "${TLS_DIR}"`, ""];
  fs.writeFileSync(QEMU_CONF, original + settings.join("\n"));
  if (options.restart ?? true) await restartLibvirtd();
  return { user, password, caCertificate: fs.readFileSync(path.join(TLS_DIR, "ca-cert.pem"), "utf8") };
}

/** Puts the host's own qemu.conf back (if a test changed it) and restarts libvirtd to apply it. */
export async function restoreHostQemuConf(): Promise<boolean> {
  if (!fs.existsSync(BACKUP)) return false;
  fs.copyFileSync(BACKUP, QEMU_CONF);
  fs.rmSync(BACKUP);
  fs.rmSync(ROOT, { recursive: true, force: true });
  if (daemonsRunning()) await restartLibvirtd();
  return true;
}

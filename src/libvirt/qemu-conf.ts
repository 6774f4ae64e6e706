// What the host's QEMU driver configuration says about VNC authentication (pure: text in,
// facts out). SASL for VNC is host-wide: libvirt reads `vnc_sasl` from qemu.conf when the
// daemon starts and adds `sasl=on` to every VNC display; the mechanisms come from the SASL
// application config `<vnc_sasl_dir>/qemu.conf` that QEMU itself reads. No domain XML says it.

/** The scalar settings of a libvirt config file (`name = 1`, `name = "text"`); lists are skipped. */
export function parseLibvirtConf(text: string): Map<string, string | number> {
  const settings = new Map<string, string | number>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(-?\d+|"((?:[^"\\]|\\.)*)")\s*(#.*)?$/.exec(line);
    if (!m) continue;
    settings.set(m[1]!, m[3] !== undefined ? m[3].replace(/\\(.)/g, "$1") : Number(m[2]));
  }
  return settings;
}

/** Cyrus SASL's application config (`key: value` lines): the mechanisms offered, lowercase. */
export function saslMechanisms(text: string): string[] | undefined {
  const line = text.split("\n").find((l) => /^\s*mech_list\s*:/.test(l));
  if (line === undefined) return undefined;
  return line
    .slice(line.indexOf(":") + 1)
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((m) => m.toLowerCase());
}

/** Mechanisms that give a SASL security layer (SSF > 0), which QEMU demands on plain TCP. */
const SECURITY_LAYER = new Set(["gssapi", "gs2-krb5", "digest-md5"]);

export const DEFAULT_SASL_DIR = "/etc/sasl2";

export type VncSaslSupport = { usable: true; transport: "tls" | "tcp"; mechanisms: string[] } | { usable: false; reason: string };

/**
 * Whether QEMU on this host would offer SASL, and only SASL, on a VNC console without a
 * password of its own. `saslConf` is the text of `<vnc_sasl_dir>/qemu.conf`, undefined when it
 * cannot be read. The rules are QEMU's: a VNC password (the domain's or qemu.conf's
 * `vnc_password`) wins over SASL; on plain TCP (no `vnc_tls`) QEMU accepts only mechanisms
 * with a security layer (SCRAM has none: it needs TLS); ANONYMOUS is no authentication.
 */
export function vncSaslSupport(qemuConf: Map<string, string | number>, saslConf: string | undefined, saslConfPath: string): VncSaslSupport {
  if (qemuConf.get("vnc_sasl") !== 1) return { usable: false, reason: "qemu.conf does not set vnc_sasl = 1 (SASL for VNC is host-wide: set it, configure the mechanisms, restart libvirtd)" };
  const globalPassword = qemuConf.get("vnc_password");
  if (typeof globalPassword === "string" && globalPassword !== "") return { usable: false, reason: "qemu.conf sets vnc_password, and QEMU lets a VNC password win over SASL" };
  if (saslConf === undefined) return { usable: false, reason: `the SASL configuration ${saslConfPath} cannot be read` };
  const mechanisms = saslMechanisms(saslConf);
  if (!mechanisms?.length) return { usable: false, reason: `${saslConfPath} has no mech_list (every installed mechanism would be offered)` };
  if (mechanisms.includes("anonymous")) return { usable: false, reason: `${saslConfPath} lists ANONYMOUS, which is no authentication` };
  const tls = qemuConf.get("vnc_tls") === 1;
  if (!tls && !mechanisms.some((m) => SECURITY_LAYER.has(m))) {
    return { usable: false, reason: `${saslConfPath} lists ${mechanisms.join(", ")}; without vnc_tls = 1 QEMU accepts only mechanisms with a security layer (gssapi, digest-md5), so no client could log in: set vnc_tls = 1` };
  }
  return { usable: true, transport: tls ? "tls" : "tcp", mechanisms };
}

export type VncAuth = "none" | "password" | "sasl";

/**
 * The auth a running QEMU's VNC server uses, from its command line (`-vnc
 * 127.0.0.1:0,tls-creds=...,sasl=on`): what libvirtd really passed, whatever qemu.conf says now
 * (libvirtd reads qemu.conf only when it starts). A password wins over SASL, as in QEMU.
 * Undefined when the command line has no VNC server.
 */
export function vncAuthOfCommandLine(args: readonly string[]): VncAuth | undefined {
  const at = args.indexOf("-vnc");
  if (at < 0 || at + 1 >= args.length) return undefined;
  const options = new Set(args[at + 1]!.split(",").slice(1));
  if (options.has("password=on") || options.has("password")) return "password";
  return options.has("sasl=on") || options.has("sasl") ? "sasl" : "none";
}

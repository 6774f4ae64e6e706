// qemu.conf and the SASL application config: when a VNC console gets SASL, and only SASL.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseLibvirtConf, saslMechanisms, vncAuthOfCommandLine, vncSaslSupport } from "../../../src/libvirt/qemu-conf.js";

const SASL_CONF = "/etc/sasl2/qemu.conf";
const support = (qemuConf: string, sasl: string | undefined) => vncSaslSupport(parseLibvirtConf(qemuConf), sasl, SASL_CONF);

test("libvirt's config syntax: integers, quoted strings, comments; commented-out settings are not set", () => {
  const conf = parseLibvirtConf(['# vnc_sasl = 1', '#vnc_tls = 1', 'vnc_sasl = 1  # on', 'vnc_sasl_dir = "/etc/sasl2 \\"x\\""', 'user = "libvirt-qemu"', 'namespaces = [ "mount" ]', ""].join("\n"));
  assert.equal(conf.get("vnc_sasl"), 1);
  assert.equal(conf.get("vnc_tls"), undefined);
  assert.equal(conf.get("vnc_sasl_dir"), '/etc/sasl2 "x"');
  assert.equal(conf.get("user"), "libvirt-qemu");
  assert.equal(conf.has("namespaces"), false);
});

test("SASL's mech_list, comma or space separated, lowercase; none when absent", () => {
  assert.deepEqual(saslMechanisms("mech_list: SCRAM-SHA-256, gssapi\nsasldb_path: /x\n"), ["scram-sha-256", "gssapi"]);
  assert.equal(saslMechanisms("sasldb_path: /x\n"), undefined);
});

test("usable: vnc_sasl with TLS and SCRAM; or plain TCP with a mechanism that has a security layer", () => {
  assert.deepEqual(support("vnc_sasl = 1\nvnc_tls = 1\n", "mech_list: scram-sha-256\n"), { usable: true, transport: "tls", mechanisms: ["scram-sha-256"] });
  assert.deepEqual(support("vnc_sasl = 1\n", "mech_list: gssapi\n"), { usable: true, transport: "tcp", mechanisms: ["gssapi"] });
});

test("refused, each with its reason: no vnc_sasl, a host-wide vnc_password, no SASL config or mech_list, ANONYMOUS, SCRAM on plain TCP", () => {
  const reason = (qemuConf: string, sasl: string | undefined) => {
    const s = support(qemuConf, sasl);
    assert.equal(s.usable, false);
    return s.usable ? "" : s.reason;
  };
  assert.match(reason("#vnc_sasl = 1\nvnc_tls = 1\n", "mech_list: scram-sha-256\n"), /does not set vnc_sasl = 1/);
  assert.match(reason("vnc_sasl = 0\n", "mech_list: scram-sha-256\n"), /does not set vnc_sasl = 1/);
  assert.match(reason('vnc_sasl = 1\nvnc_tls = 1\nvnc_password = "pw"\n', "mech_list: scram-sha-256\n"), /vnc_password.*win over SASL/);
  assert.match(reason("vnc_sasl = 1\nvnc_tls = 1\n", undefined), /\/etc\/sasl2\/qemu\.conf cannot be read/);
  assert.match(reason("vnc_sasl = 1\nvnc_tls = 1\n", "sasldb_path: /x\n"), /no mech_list/);
  assert.match(reason("vnc_sasl = 1\nvnc_tls = 1\n", "mech_list: scram-sha-256 anonymous\n"), /ANONYMOUS/);
  assert.match(reason("vnc_sasl = 1\n", "mech_list: scram-sha-256\n"), /without vnc_tls = 1 QEMU accepts only mechanisms with a security layer/);
});

test("the running QEMU's -vnc option: sasl=on is SASL, password=on wins over it, neither is none", () => {
  // As libvirt 11 starts QEMU 10 on a host with vnc_sasl and vnc_tls (ps of the test environment's guest).
  const sasl = ["/usr/bin/qemu-system-x86_64", "-name", "guest=kvt-vnc-sasl,debug-threads=on", "-vnc", "127.0.0.1:0,tls-creds=vnc-tls-creds0,sasl=on,audiodev=audio1"];
  assert.equal(vncAuthOfCommandLine(sasl), "sasl");
  assert.equal(vncAuthOfCommandLine(["-vnc", "127.0.0.1:0,tls-creds=vnc-tls-creds0,password=on,sasl=on,audiodev=audio1"]), "password");
  assert.equal(vncAuthOfCommandLine(["-vnc", "127.0.0.1:0,audiodev=audio1"]), "none");
  assert.equal(vncAuthOfCommandLine(["-name", "guest=x"]), undefined);
});

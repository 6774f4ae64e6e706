// The sockets the host listens on, as the firewall host adapter reads them from /proc/net
// (src/adapters/firewall.ts): real sockets this test opens, and the kernel's IPv6 row format.
import assert from "node:assert/strict";
import dgram from "node:dgram";
import net from "node:net";
import { test } from "node:test";
import { HostFirewall, parseProcNet } from "../../../src/adapters/firewall.js";

const scratch = { write: async () => "", remove: async () => undefined, close: async () => undefined };

test("listening sockets from /proc/net: TCP listeners and bound UDP sockets, not connected ones", async () => {
  const tcp = net.createServer().listen(0, "127.0.0.1");
  const wildcard = net.createServer().listen(0, "0.0.0.0");
  await Promise.all([tcp, wildcard].map((s) => new Promise((r) => s.once("listening", r))));
  const udp = dgram.createSocket("udp4");
  await new Promise<void>((r) => udp.bind(0, "127.0.0.1", () => r()));
  // A connected TCP client is not a listener.
  const client = net.connect((tcp.address() as net.AddressInfo).port, "127.0.0.1");
  await new Promise((r) => client.once("connect", r));
  try {
    const found = await new HostFirewall(scratch).listening();
    const has = (protocol: string, address: string, port: number) => found.some((l) => l.protocol === protocol && l.address === address && l.port === port);
    assert.ok(has("tcp", "127.0.0.1", (tcp.address() as net.AddressInfo).port), JSON.stringify(found));
    assert.ok(has("tcp", "0.0.0.0", (wildcard.address() as net.AddressInfo).port));
    assert.ok(has("udp", "127.0.0.1", udp.address().port));
    assert.ok(!found.some((l) => l.port === client.localPort), "a connected socket is not listening");
  } finally {
    client.destroy();
    udp.close();
    tcp.close();
    wildcard.close();
  }
});

test("IPv6 rows: words in host order, compressed; IPv4-mapped as IPv4", () => {
  const header = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
  const row = (address: string, port: string, state: string) => `   0: ${address}:${port} 00000000000000000000000000000000:0000 ${state} 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0\n`;
  const text = header + row("00000000000000000000000001000000", "1F90", "0A") + row("00000000000000000000000000000000", "0016", "0A") + row("0000000000000000FFFF00000100007F", "0050", "0A") + row("B80D0120000000000000000001000000", "01BB", "0A") + row("00000000000000000000000001000000", "1F91", "01");
  assert.deepEqual(parseProcNet(text, "tcp", "0A"), [
    { protocol: "tcp", address: "::1", port: 8080 },
    { protocol: "tcp", address: "::", port: 22 },
    { protocol: "tcp", address: "127.0.0.1", port: 80 },
    { protocol: "tcp", address: "2001:db8::1", port: 443 },
  ]);
});

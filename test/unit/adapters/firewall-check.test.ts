// The backends' dry runs (src/adapters/firewall.ts), with the real nft and iptables-restore:
// a rule the kernel's tools refuse is reported with their message, a good one is not, and
// checking changes nothing in the ruleset. The firewall uses them to leave out only the object
// whose rules fail (src/controllers/firewall/controller.ts).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { IptablesBackend, NftBackend } from "../../../src/adapters/firewall.js";
import { TempScratchFiles } from "../../../src/adapters/host-files.js";
import { iptablesChains, iptablesPrefixFor } from "../../../src/firewall/iptables.js";
import type { Rule } from "../../../src/firewall/rules.js";

const good: Rule = { chain: "input", owner: "Network/a", family: "ip", daddr: "192.0.2.1", protocol: "tcp", dports: [80], verdict: { type: "accept" } };
// An IPv6 address in an IPv4 rule: what a Network forward's IPv6 hostAddress used to render.
const bad: Rule = { ...good, owner: "Network/b", daddr: "2001:db8::1" };
const ruleset = () => execFileSync("nft", ["list", "ruleset"], { encoding: "utf8" }) + execFileSync("iptables-save", { encoding: "utf8" }).replace(/^#.*$/gm, "");

test("nft --check and iptables-restore --test: the refused rule named, the good one passes, nothing changes", async () => {
  const before = ruleset();
  const scratch = new TempScratchFiles("kvmctl-check-test-");
  try {
    const nft = new NftBackend(scratch, "kvmctl-checktest");
    assert.equal(await nft.check([good]), undefined);
    assert.match((await nft.check([bad])) ?? "", /Error: Could not resolve hostname: Address family for hostname not supported/);
    const iptables = new IptablesBackend(iptablesChains(iptablesPrefixFor("checktest")));
    assert.equal(await iptables.check([good]), undefined);
    assert.match((await iptables.check([{ ...bad, daddr: "999.1.1.1" }])) ?? "", /iptables-restore --noflush \(filter\)/);
  } finally {
    await scratch.close();
  }
  assert.equal(ruleset(), before, "a check changed the ruleset");
});

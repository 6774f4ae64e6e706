// The firewall watch's reading of `nft -j monitor` (src/firewall/nft-monitor.ts), against what
// nftables 1.0.6 really printed in the test namespace (test/fixtures/nft-1.0.6/monitor.json,
// from testenv/capture-nft-monitor.ts): every change to kvmctl's own table counts, and no
// change to another table does — an admin's, another instance's, one of the same name in
// another family, a rule whose comment names kvmctl's table.
import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import { parseMonitorLine, sortMonitorLines, type NftTableRef } from "../../../src/firewall/nft-monitor.js";

interface Fixture {
  nft: string;
  own: NftTableRef;
  steps: { step: string; touches: "own" | "foreign"; lines: string[] }[];
}

const fixture = JSON.parse(fs.readFileSync(new URL("../../fixtures/nft-1.0.6/monitor.json", import.meta.url), "utf8")) as Fixture;

test("the fixture holds both kinds of step, each with output", () => {
  assert.match(fixture.nft, /^nftables v1\.0\.6/);
  assert.ok(fixture.steps.filter((s) => s.touches === "own").length >= 8);
  assert.ok(fixture.steps.filter((s) => s.touches === "foreign").length >= 8);
  for (const step of fixture.steps) assert.ok(step.lines.length > 0, `${step.step}: no output captured`);
});

for (const step of fixture.steps) {
  test(`${step.touches === "own" ? "counted" : "ignored"}: ${step.step}`, () => {
    const batch = sortMonitorLines(step.lines, fixture.own);
    assert.deepEqual(batch.unknown, [], "every line nft printed is understood");
    if (step.touches === "own") {
      assert.equal(batch.ours, step.lines.length);
      assert.equal(batch.ignored.size, 0);
    } else {
      assert.equal(batch.ours, 0, "a change to another table would sync kvmctl's");
      assert.equal([...batch.ignored.values()].reduce((a, b) => a + b, 0), step.lines.length);
      assert.ok(![...batch.ignored.keys()].includes(`${fixture.own.family} ${fixture.own.name}`));
    }
  });
}

test("each line names its object and table: a table by its name, anything in one by `table`", () => {
  const lines = fixture.steps.flatMap((s) => s.lines).map(parseMonitorLine);
  const objects = new Set(lines.map((l) => (l?.kind === "change" ? `${l.verb} ${l.object}` : "?")));
  for (const seen of ["add table", "delete table", "add chain", "delete chain", "add rule", "delete rule", "add set", "add element", "add counter"]) assert.ok(objects.has(seen), seen);
  const element = fixture.steps.flatMap((s) => s.lines).find((l) => l.includes('"element"'))!;
  assert.deepEqual(parseMonitorLine(element), { kind: "change", verb: "add", object: "element", table: { family: "inet", name: "kvt-fx-admin" } });
});

test("what cannot be placed may hide a change to kvmctl's table: counted as unknown", () => {
  // nft's own line when the netlink socket overflowed (nftables src/mnl.c, on ENOBUFS).
  const lost = "# ERROR: We lost some netlink events!";
  const batch = sortMonitorLines([lost, "", "{not json", '["add"]', '{"add": {"table": {"family": "inet"}}}', '{"add": {"rule": {"family": "inet", "table": "kvt-x"}}, "delete": {}}'], fixture.own);
  assert.deepEqual(batch.unknown, [lost, "{not json", '["add"]', '{"add": {"table": {"family": "inet"}}}', '{"add": {"rule": {"family": "inet", "table": "kvt-x"}}, "delete": {}}']);
  assert.equal(batch.ours, 0);
  assert.equal(parseMonitorLine("   "), undefined, "a blank line is nothing");
});

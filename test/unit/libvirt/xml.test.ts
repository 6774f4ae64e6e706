// XML helpers: the parse cache.
import assert from "node:assert/strict";
import test from "node:test";
import { parsedOnce } from "../../../src/libvirt/index.js";

test("parsedOnce parses a text once, keeps what the last generation used, forgets the rest", () => {
  let parses = 0;
  const parse = parsedOnce((xml: string) => ({ xml, n: ++parses }), 3);
  const a = parse("<a/>");
  assert.equal(parse("<a/>"), a, "the same object, not parsed again");
  parse("<b/>");
  parse.sweep(); // a pass ends: a and b were used
  assert.equal(parse("<a/>"), a, "kept across one sweep when used again");
  parse.sweep(); // b was not used in the last generation
  parse("<b/>");
  assert.equal(parses, 3, "b was parsed again after two sweeps unused");
  for (const x of ["<c/>", "<d/>", "<e/>", "<f/>"]) parse(x); // capacity ends a generation by itself
  assert.ok(parses <= 7);
});

test("parsedOnce keeps a copy of the facts, not the parser's object (whose strings may be views of the whole text)", () => {
  const made: object[] = [];
  const parse = parsedOnce((xml: string) => {
    const facts = { name: xml.slice(1, -2), nested: { list: [xml.length] } };
    made.push(facts);
    return facts;
  });
  const facts = parse("<vm-with-a-long-name/>");
  assert.deepEqual(facts, made[0]);
  assert.notEqual(facts, made[0], "a structured clone");
});

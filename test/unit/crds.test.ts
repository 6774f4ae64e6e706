// crds/ is generated from the zod schemas; this fails when someone changed src/api and
// forgot `npm run gen:crds`, or edited crds/ by hand.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { parse } from "yaml";
import { renderCrdFiles } from "../../scripts/crds.js";

const files = renderCrdFiles();

test("crds/ matches the zod schemas", () => {
  const committed = fs.readdirSync("crds").filter((f) => f.endsWith(".yaml") || f.endsWith(".json")).sort();
  assert.deepEqual(committed, [...files.keys()].sort(), "crds/ has different files: run `npm run gen:crds`");
  for (const [name, text] of files) {
    assert.equal(fs.readFileSync(path.join("crds", name), "utf8"), text, `crds/${name} is stale: run \`npm run gen:crds\``);
  }
});

/** Kubernetes' structural-schema rules that matter here. */
function checkStructural(node: unknown, where: string): void {
  if (!node || typeof node !== "object") return;
  const schema = node as Record<string, unknown>;
  assert.ok(!("$ref" in schema), `${where}: $ref is not allowed`);
  assert.ok(!(schema.properties && schema.additionalProperties !== undefined), `${where}: properties with additionalProperties`);
  const typed = "type" in schema || schema["x-kubernetes-int-or-string"] === true || schema["x-kubernetes-preserve-unknown-fields"] === true;
  assert.ok(typed, `${where}: no type`);
  for (const [key, value] of Object.entries((schema.properties as Record<string, unknown>) ?? {})) checkStructural(value, `${where}.${key}`);
  if (schema.items) checkStructural(schema.items, `${where}[]`);
}

test("every CRD is an apiextensions.k8s.io/v1 CRD with a structural schema", () => {
  const crds = [...files].filter(([name]) => name.endsWith(".yaml"));
  assert.equal(crds.length, 3);
  for (const [name, text] of crds) {
    const crd = parse(text) as { apiVersion: string; kind: string; spec: { group: string; versions: { schema: { openAPIV3Schema: unknown } }[] } };
    assert.equal(crd.apiVersion, "apiextensions.k8s.io/v1");
    assert.equal(crd.kind, "CustomResourceDefinition");
    assert.equal(crd.spec.group, "kvmctl.dev");
    checkStructural(crd.spec.versions[0]!.schema.openAPIV3Schema, name);
  }
});

test("the editor schema knows the spec's fields and rejects unknown ones", () => {
  const schema = JSON.parse(files.get("virtualmachine.schema.json")!) as { properties: { spec: { properties: Record<string, unknown>; additionalProperties: unknown } } };
  assert.ok("cpus" in schema.properties.spec.properties);
  assert.ok("runStrategy" in schema.properties.spec.properties);
  assert.equal(schema.properties.spec.additionalProperties, false);
});

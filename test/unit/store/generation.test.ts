// generation is derived from the status's observedGeneration/observedSpecHash: a spec edit
// makes the status visibly stale, a formatting-only edit does not.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { specHash } from "../../../src/api/index.js";
import { deriveGeneration, ManifestStore, observedFields } from "../../../src/store/index.js";
import { tempDir, writeTree } from "./helpers.js";

const WEB = `apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: web1
spec:
  cpus: 2
  memory: 2Gi
  disks:
    - name: root
      size: 20Gi
`;

async function setup(statusDir?: string) {
  const dir = await tempDir();
  writeTree(dir, { "vms/web1.yaml": WEB });
  const store = new ManifestStore(statusDir ? { dir, statusDir } : { dir });
  const file = path.join(dir, "vms/web1.yaml");
  const get = async () => (await store.read()).objects.get("VirtualMachine/web1")!;
  const edit = (f: (text: string) => string) => fs.writeFileSync(file, f(fs.readFileSync(file, "utf8")));
  return { store, get, edit };
}

for (const mode of ["in the manifest", "in a status directory"] as const) {
  describe(`generation (status ${mode})`, () => {
    const statusDirFor = async () => (mode === "in a status directory" ? tempDir("kvmctl-status-") : undefined);

    it("is 1 without status, and stays with the status that observed it", async () => {
      const { store, get } = await setup(await statusDirFor());
      const first = await get();
      assert.equal(first.generation, 1);
      assert.equal(first.specHash, specHash({ cpus: 2, memory: "2Gi", disks: [{ name: "root", size: "20Gi" }] }));
      await store.writeStatus(first.key, { ...observedFields(first), phase: "Running" });
      const observed = await get();
      assert.equal(observed.generation, 1);
      assert.equal(observed.object.status?.observedGeneration, 1);
    });

    it("a spec edit makes generation observedGeneration + 1; the next status catches up", async () => {
      const { store, get, edit } = await setup(await statusDirFor());
      const first = await get();
      await store.writeStatus(first.key, { ...observedFields(first), phase: "Running" });
      edit((t) => t.replace("cpus: 2", "cpus: 4"));
      const edited = await get();
      assert.equal(edited.generation, 2);
      assert.equal(edited.object.status?.observedGeneration, 1, "the status is visibly stale");
      await store.writeStatus(edited.key, { ...observedFields(edited), phase: "Running" });
      const caughtUp = await get();
      assert.equal(caughtUp.generation, 2);
      assert.equal(caughtUp.object.status?.observedGeneration, 2);
      edit((t) => t.replace("size: 20Gi", "size: 30Gi"));
      assert.equal((await get()).generation, 3);
    });

    it("formatting-only edits (comments, key order, quoting, blank lines) do not change it", async () => {
      const { store, get, edit } = await setup(await statusDirFor());
      const first = await get();
      await store.writeStatus(first.key, { ...observedFields(first) });
      edit((t) =>
        t
          .replace("spec:\n  cpus: 2\n  memory: 2Gi\n", "spec:   # the spec\n  memory: \"2Gi\"\n\n  cpus: 2 # two\n")
          .replace("metadata:", "# metadata below\nmetadata:"),
      );
      const reformatted = await get();
      assert.equal(reformatted.specHash, first.specHash);
      assert.equal(reformatted.generation, 1);
    });
  });
}

describe("deriveGeneration", () => {
  it("follows the rule in types.ts", () => {
    assert.equal(deriveGeneration(undefined, "h"), 1);
    assert.equal(deriveGeneration({ phase: "Running" }, "h"), 1);
    assert.equal(deriveGeneration({ observedGeneration: 4, observedSpecHash: "h" }, "h"), 4);
    assert.equal(deriveGeneration({ observedGeneration: 4, observedSpecHash: "old" }, "h"), 5);
    assert.equal(deriveGeneration({ observedGeneration: 4 }, "h"), 5);
    assert.equal(deriveGeneration({ observedGeneration: "4" }, "h"), 1);
  });
});

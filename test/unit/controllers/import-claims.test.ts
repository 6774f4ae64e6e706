// The base-image import claims of one controller: one import per target at a time.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ImportClaims } from "../../../src/controllers/virtualmachine/import-claims.js";

test("an import is claimed one at a time per target; a release frees it once", () => {
  const claims = new ImportClaims();
  const release = claims.claim("pool/vol");
  assert.ok(release);
  assert.equal(claims.claim("pool/vol"), undefined, "held by the first reconcile");
  assert.ok(claims.claim("pool/other"), "another target is another claim");
  assert.equal(claims.importing("pool/vol"), true);
  release();
  assert.equal(claims.importing("pool/vol"), false);
  const again = claims.claim("pool/vol");
  assert.ok(again);
  release(); // a second release of the first claim leaves the new one alone
  assert.equal(claims.importing("pool/vol"), true);
  again();
  assert.equal(claims.importing("pool/vol"), false);
});

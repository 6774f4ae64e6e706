// Small builders and assertions shared by the src/api tests.
import assert from "node:assert/strict";
import { validateDocument, type KvmObject } from "../../../src/api/index.js";

export const API = "kvmctl.dev/v1alpha1";

export const vm = (name: string, spec: unknown = {}) => ({ apiVersion: API, kind: "VirtualMachine", metadata: { name }, spec });
export const net = (name: string, spec: unknown = {}) => ({ apiVersion: API, kind: "Network", metadata: { name }, spec });
export const pool = (name: string, spec: unknown = {}) => ({ apiVersion: API, kind: "StoragePool", metadata: { name }, spec });

/** Issues of an invalid document as "dotted.path: message" lines; fails if the document is valid. */
export function issues(doc: unknown): string[] {
  const result = validateDocument(doc);
  assert.ok(!result.ok, `expected ${JSON.stringify(doc)} to be invalid`);
  return result.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

/** Asserts one issue at exactly `path` whose message matches `message`. */
export function assertIssue(doc: unknown, path: string, message: RegExp): void {
  const lines = issues(doc);
  assert.ok(
    lines.some((l) => l.startsWith(`${path}: `) && message.test(l.slice(path.length + 2))),
    `expected an issue at ${path} matching ${message}, got:\n  ${lines.join("\n  ")}`,
  );
}

/** The validated, defaulted object; fails with the issues if the document is invalid. */
export function valid<T extends KvmObject = KvmObject>(doc: unknown): T {
  const result = validateDocument(doc);
  assert.ok(result.ok, `expected valid, got: ${result.ok ? "" : result.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return result.object as T;
}

// The valid documents the fuzzer mutates: every document of examples/**/*.yaml, read at run
// time (so a new example is fuzzed without touching this code), and what their fields are.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { isMap, isScalar, isSeq, parseAllDocuments, type Document, type Node } from "yaml";

export const EXAMPLES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../examples");

export type FieldPath = (string | number)[];

export interface BaseDoc {
  /** "kvm-in-a-box/networks.yaml#2" */
  id: string;
  kind: string;
  name: string;
  /** The document's own text (comments kept, no `---` line), ending in "\n". */
  text: string;
}

export type LeafType = "string" | "number" | "boolean" | "null" | "map" | "seq";

export interface Leaf {
  path: FieldPath;
  type: LeafType;
  value: unknown;
}

function listYaml(dir: string, rel = ""): string[] {
  return fs
    .readdirSync(path.join(dir, rel), { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap((entry) => {
      const childRel = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) return listYaml(dir, childRel);
      return /\.ya?ml$/.test(entry.name) ? [childRel] : [];
    });
}

const cache = new Map<string, BaseDoc[]>();

/** Every document of every example, in path order. Throws if an example does not parse (the examples test says why). */
export function loadBases(dir = EXAMPLES_DIR): BaseDoc[] {
  const cached = cache.get(dir);
  if (cached) return cached;
  const bases: BaseDoc[] = [];
  for (const rel of listYaml(dir)) {
    const docs = parseAllDocuments(fs.readFileSync(path.join(dir, rel), "utf8"));
    if (!Array.isArray(docs)) continue;
    docs.forEach((doc, i) => {
      if (doc.errors.length > 0) throw new Error(`examples/${rel} document ${i + 1} does not parse: ${doc.errors[0]!.message}`);
      const value = doc.toJS() as { kind?: unknown; metadata?: { name?: unknown } } | null;
      if (!value || typeof value.kind !== "string" || typeof value.metadata?.name !== "string") return;
      let text = doc.toString({ lineWidth: 0 });
      if (text.startsWith("---\n")) text = text.slice(4);
      bases.push({ id: `${rel}#${i + 1}`, kind: value.kind, name: value.metadata.name, text });
    });
  }
  if (bases.length === 0) throw new Error(`no example documents under ${dir}`);
  cache.set(dir, bases);
  return bases;
}

/** Every node of a document below its root, with its path and type (maps and sequences too). */
export function leaves(doc: Document): Leaf[] {
  const out: Leaf[] = [];
  const visit = (node: unknown, at: FieldPath) => {
    if (isMap(node)) {
      if (at.length > 0) out.push({ path: at, type: "map", value: undefined });
      for (const pair of node.items) {
        if (!isScalar(pair.key)) continue;
        visit(pair.value, [...at, String(pair.key.value)]);
      }
    } else if (isSeq(node)) {
      out.push({ path: at, type: "seq", value: undefined });
      node.items.forEach((item, i) => visit(item, [...at, i]));
    } else if (isScalar(node)) {
      const v = node.value;
      const type: LeafType = v === null ? "null" : typeof v === "string" ? "string" : typeof v === "number" ? "number" : typeof v === "boolean" ? "boolean" : "string";
      out.push({ path: at, type, value: v });
    } else if (node === null || node === undefined) {
      out.push({ path: at, type: "null", value: null });
    }
  };
  visit(doc.contents as Node | null, []);
  return out;
}

/** "spec.disks[0].size" */
export function pathText(p: FieldPath): string {
  return p.map((s, i) => (typeof s === "number" ? `[${s}]` : i === 0 ? s : `.${s}`)).join("");
}

// What the schemas (src/api) accept in a string field. Free-form fields take any text (paths,
// the kernel command line, cloud-init documents, annotations, an SSH key's comment), so a
// metacharacter or a control character there may be accepted; every other string field is an
// enum, a name, an address or a quantity, which such a character makes invalid.
const FREE_FORM_KEYS = new Set(["path", "kernel", "initrd", "cmdline", "image", "passwordSecretFile", "userData", "metaData", "networkConfig"]);
const FREE_FORM_PARENTS = new Set(["sourceDevices", "annotations", "sshAuthorizedKeys"]);
/** Quantities are trimmed before they are parsed, and take whitespace between number and unit. */
const QUANTITY_KEYS = new Set(["memory", "size"]);

export function isFreeForm(p: FieldPath): boolean {
  const last = p.at(-1);
  const parent = typeof last === "number" ? p.at(-2) : p.at(-2);
  if (typeof last === "string" && FREE_FORM_KEYS.has(last)) return true;
  return typeof parent === "string" && FREE_FORM_PARENTS.has(parent);
}

export function isQuantity(p: FieldPath): boolean {
  const last = p.at(-1);
  return typeof last === "string" && QUANTITY_KEYS.has(last) && p[0] === "spec";
}

/** `user:` and `vnc:` with nothing under them mean "all defaults" (emptyAsObject in src/api). */
export function nullMeansEmpty(p: FieldPath): boolean {
  const last = p.at(-1);
  return last === "user" || last === "vnc";
}

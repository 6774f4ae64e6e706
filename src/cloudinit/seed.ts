// The NoCloud seed of one VM, rendered from its spec.cloudInit and its pinned SSH host key:
// pure (no fs, no execa), so every rule below is unit-tested without a host. The files go on a
// medium labelled `cidata` (src/adapters/seed-media.ts builds it); cloud-init reads:
//
// - meta-data: `instance-id` and `local-hostname` (plus the extra keys of spec.cloudInit.metaData).
//   cloud-init's rule: on a boot where the instance-id differs from the one it last saw, it treats
//   the guest as a NEW instance and runs the per-instance modules again (users and their keys,
//   host keys, write_files, runcmd, ...). With the same instance-id, a changed user-data is read
//   but the per-instance modules do not run again. So the instance-id is stable — `iid-<the
//   domain's UUID>`, and kvmctl's domain UUIDs are derived from the VM's name — unless the
//   manifest asks for a new one with `cloudInit.instanceId` (bump it to re-provision).
// - user-data: kvmctl's own `#cloud-config` part pins the host key (`ssh_keys` with the key pair,
//   `ssh_genkeytypes: [ed25519]`, `ssh_deletekeys: true`: the guest ends up with exactly that host
//   key) and gives `sshAuthorizedKeys` to the image's default user (`ssh_authorized_keys`).
//   The user's own user-data (inline, or from `userDataSecretFile`):
//     * `#cloud-config` YAML: kvmctl's keys are set in the user's document (YAML 1.1, as
//       cloud-init's PyYAML reads it; the rest stays as written, comments too); the user's `ssh_authorized_keys` come
//       first, kvmctl's are added; a user-data that sets `ssh_keys`, another `ssh_genkeytypes`
//       or `ssh_deletekeys: false` is refused (it would replace the pinned key), and so is a
//       `users:` list without `default` while sshAuthorizedKeys are given (cloud-init would drop
//       them: they belong to the default user);
//     * a script (`#!...`): sent as the second part of a MIME multipart after kvmctl's
//       #cloud-config (cloud-init runs it once per instance, as for a plain script user-data);
//     * anything else (a MIME multipart, `#include`, `#cloud-boothook`, `#cloud-config-archive`,
//       a jinja template, gzip): refused, with a message that says so.
// - network-config and vendor-data: copied as written (network-config must be a YAML mapping).
//
// Messages never quote user-data, meta-data or key text: user-data may come from a secret file,
// and the messages end up in status and events.
import { createHash } from "node:crypto";
import { isMap, isSeq, LineCounter, parseDocument, stringify, type Document } from "yaml";
import type { CloudInit } from "../api/virtualmachine.js";
import type { HostKeyPair, SeedFile, SeedFileName } from "../ports/host.js";

/** A seed that cannot be rendered from the spec: a terminal condition (the spec must change). */
export class CloudInitError extends Error {
  constructor(
    /** The spec field at fault, e.g. `spec.cloudInit.userData`. */
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = "CloudInitError";
  }
}

export interface SeedInput {
  /** The VM's name: its default `local-hostname`. */
  name: string;
  /** The domain's UUID: the default instance-id is `iid-<uuid>`. */
  uuid: string;
  cloudInit: CloudInit;
  /** The VM's pinned host key (src/adapters/host-keys.ts). */
  hostKey: HostKeyPair;
  /** The text of `cloudInit.userDataSecretFile`, read by the caller (SecretFiles port). */
  userDataFromFile?: string;
}

export interface RenderedSeed {
  instanceId: string;
  medium: CloudInit["seedMedium"];
  format: CloudInit["seedFormat"];
  /** meta-data and user-data always; network-config and vendor-data when given. In this order. */
  files: SeedFile[];
  /**
   * sha256 over everything the medium is built from (format and files): the seed needs
   * rebuilding exactly when this changes. The files include the 256-bit private host key, so
   * the hash reveals nothing about a guessable user-data secret.
   */
  hash: string;
}

/** The YAML cloud-init reads: PyYAML, YAML 1.1. */
const YAML_OPTIONS = { version: "1.1", lineWidth: 0 } as const;

/** Keys of kvmctl's own #cloud-config that a user's user-data may not set otherwise. */
const PINNED = { ssh_genkeytypes: ["ed25519"], ssh_deletekeys: true } as const;

export function defaultInstanceId(uuid: string): string {
  return `iid-${uuid}`;
}

export function instanceIdOf(uuid: string, cloudInit: Pick<CloudInit, "instanceId">): string {
  return cloudInit.instanceId ?? defaultInstanceId(uuid);
}

type Mapping = Record<string, unknown>;

const isMapping = (v: unknown): v is Mapping => typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date) && !(v instanceof Uint8Array);

/**
 * `text` as a YAML 1.1 document whose content is a mapping (empty: {}), and that mapping as
 * plain values; a message naming `what` and a line, never the text, when it is not one.
 */
function parseMappingDocument(text: string, field: string, what: string): { doc: Document; value: Mapping } {
  const lines = new LineCounter();
  const doc: Document = parseDocument(text, { ...YAML_OPTIONS, prettyErrors: false, uniqueKeys: true, lineCounter: lines });
  const error = doc.errors[0];
  if (error) {
    const { line } = lines.linePos(error.pos[0]);
    throw new CloudInitError(field, `${what} is not valid YAML (${error.code} at line ${line})`);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch {
    throw new CloudInitError(field, `${what} is not valid YAML (an alias that cannot be resolved, or too many aliases)`);
  }
  if (value === null || value === undefined) {
    doc.contents = doc.createNode({});
    return { doc, value: {} };
  }
  if (!isMapping(value) || !isMap(doc.contents)) throw new CloudInitError(field, `${what} must be a YAML mapping`);
  return { doc, value };
}

function parseMapping(text: string, field: string, what: string): Mapping {
  return parseMappingDocument(text, field, what).value;
}

function checkHostKey(key: HostKeyPair): void {
  // Never quote the key: a malformed private key is still a secret.
  if (!/^ssh-ed25519 [A-Za-z0-9+/=]+( .*)?\n?$/.test(key.publicKey)) throw new Error("the pinned host key's public half is not an ssh-ed25519 public key line");
  if (!/^-----BEGIN OPENSSH PRIVATE KEY-----\n[\s\S]+\n-----END OPENSSH PRIVATE KEY-----\n?$/.test(key.privateKey)) throw new Error("the pinned host key's private half is not an OpenSSH private key");
}

/** What the user gave as user-data, and where it came from (for messages). */
function userDataSource(input: SeedInput): { text: string; field: string; what: string } | undefined {
  const c = input.cloudInit;
  if (c.userDataSecretFile !== undefined) {
    if (input.userDataFromFile === undefined) throw new Error("cloudInit.userDataSecretFile is set: its text must be passed as userDataFromFile");
    return { text: input.userDataFromFile, field: "spec.cloudInit.userDataSecretFile", what: `user-data from ${c.userDataSecretFile}` };
  }
  if (c.userData !== undefined) return { text: c.userData, field: "spec.cloudInit.userData", what: "spec.cloudInit.userData" };
  return undefined;
}

type UserDataKind = "none" | "cloud-config" | "script" | "unsupported";

export function userDataKind(text: string): UserDataKind {
  if (text.trim() === "") return "none";
  const firstLine = text.slice(0, text.search(/\r?\n|$/)).trimEnd();
  if (firstLine === "#cloud-config") return "cloud-config";
  if (firstLine.startsWith("#!")) return "script";
  return "unsupported";
}

/**
 * kvmctl's keys merged into the user's #cloud-config document (refusing what would unpin the
 * host key). The user's document is edited, not rebuilt: their comments, anchors and the way
 * they wrote each value (`0644`) stay as written.
 */
function mergeCloudConfig(text: string, input: SeedInput, field: string, what: string): string {
  const { doc, value: user } = parseMappingDocument(text, field, what);
  const authorized = input.cloudInit.sshAuthorizedKeys ?? [];
  if ("ssh_keys" in user) throw new CloudInitError(field, `${what} sets ssh_keys: kvmctl pins the VM's SSH host key itself (remove ssh_keys)`);
  for (const [key, value] of Object.entries(PINNED)) {
    if (key in user && JSON.stringify(user[key]) !== JSON.stringify(value)) {
      throw new CloudInitError(field, `${what} sets ${key} to something other than ${JSON.stringify(value)}: kvmctl pins the VM's SSH host key (remove ${key})`);
    }
  }
  const userKeys = user.ssh_authorized_keys;
  if (userKeys !== undefined && !(Array.isArray(userKeys) && userKeys.every((k) => typeof k === "string"))) {
    throw new CloudInitError(field, `${what}: ssh_authorized_keys must be a list of strings`);
  }
  if (authorized.length > 0 && user.users !== undefined) {
    const users = user.users;
    const hasDefault = Array.isArray(users) ? users.includes("default") : users === "default";
    if (!hasDefault) {
      throw new CloudInitError(field, `${what} has a users list without "default": cloud-init would not create the default user, and spec.cloudInit.sshAuthorizedKeys are that user's (add "- default" to users, or put the keys in your users' ssh_authorized_keys)`);
    }
  }
  const present = (userKeys as string[] | undefined) ?? [];
  const added = [...new Set(authorized)].filter((key) => !present.includes(key));
  if (added.length > 0) {
    const node = doc.get("ssh_authorized_keys", true);
    if (isSeq(node)) for (const key of added) node.add(doc.createNode(key));
    else doc.set("ssh_authorized_keys", doc.createNode([...present, ...added]));
  }
  for (const [key, value] of Object.entries(ownCloudConfig(input))) doc.set(key, doc.createNode(value));
  const rendered = doc.toString({ lineWidth: 0 });
  return rendered.startsWith("#cloud-config\n") ? rendered : `#cloud-config\n${rendered}`;
}

function ownCloudConfig(input: SeedInput): Mapping {
  return {
    ssh_keys: { ed25519_private: input.hostKey.privateKey, ed25519_public: input.hostKey.publicKey.trim() },
    ...PINNED,
  };
}

function renderCloudConfig(config: Mapping): string {
  return `#cloud-config\n${stringify(config, YAML_OPTIONS)}`;
}

function base64Lines(text: string): string {
  return (Buffer.from(text, "utf8").toString("base64").match(/.{1,76}/g) ?? []).join("\n");
}

/**
 * A two-part MIME multipart (the kind `cloud-init devel make-mime` makes, read with Python's
 * email module): kvmctl's #cloud-config, then the user's script. Base64 bodies, so no body line
 * can look like the boundary; the boundary is derived from the parts, so the same inputs give
 * the same bytes (and the same seed hash).
 */
export function mimeMultipart(cloudConfig: string, script: string): string {
  const boundary = `==kvmctl-${createHash("sha256").update(cloudConfig).update("\0").update(script).digest("hex").slice(0, 32)}==`;
  const part = (type: string, filename: string, body: string) =>
    [`--${boundary}`, `Content-Type: ${type}; charset="utf-8"`, "MIME-Version: 1.0", "Content-Transfer-Encoding: base64", `Content-Disposition: attachment; filename="${filename}"`, "", base64Lines(body)].join("\n");
  return [
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    "MIME-Version: 1.0",
    "",
    part("text/cloud-config", "kvmctl.cfg", cloudConfig),
    part("text/x-shellscript", "user-script", script),
    `--${boundary}--`,
    "",
  ].join("\n");
}

function renderUserData(input: SeedInput): string {
  const source = userDataSource(input);
  const kind = source ? userDataKind(source.text) : "none";
  const authorized = input.cloudInit.sshAuthorizedKeys ?? [];
  const own = (): Mapping => ({ ...(authorized.length > 0 ? { ssh_authorized_keys: [...new Set(authorized)] } : {}), ...ownCloudConfig(input) });
  switch (kind) {
    case "none":
      return renderCloudConfig(own());
    case "cloud-config":
      return mergeCloudConfig(source!.text, input, source!.field, source!.what);
    case "script":
      return mimeMultipart(renderCloudConfig(own()), source!.text);
    case "unsupported":
      throw new CloudInitError(
        source!.field,
        `${source!.what} is neither #cloud-config YAML nor a script starting with #!: kvmctl must add the pinned SSH host key and the authorized keys to it, and does not rewrite a MIME multipart, #include, #cloud-boothook, #cloud-config-archive, a jinja template or gzip data (use #cloud-config, or a #! script)`,
      );
  }
}

function renderMetaData(input: SeedInput, instanceId: string): string {
  const extra = input.cloudInit.metaData === undefined ? {} : parseMapping(input.cloudInit.metaData, "spec.cloudInit.metaData", "spec.cloudInit.metaData");
  if ("instance-id" in extra) {
    throw new CloudInitError("spec.cloudInit.metaData", "spec.cloudInit.metaData sets instance-id: set spec.cloudInit.instanceId instead (kvmctl keeps the instance-id stable unless that changes)");
  }
  const hostname = extra["local-hostname"] ?? input.name;
  if (typeof hostname !== "string" || hostname === "") throw new CloudInitError("spec.cloudInit.metaData", "spec.cloudInit.metaData: local-hostname must be a non-empty string");
  const { "local-hostname": _, ...rest } = extra;
  return stringify({ "instance-id": instanceId, "local-hostname": hostname, ...rest }, YAML_OPTIONS);
}

export function seedHash(format: string, files: readonly SeedFile[]): string {
  const hash = createHash("sha256").update("kvmctl-seed-v1\0").update(format).update("\0");
  for (const file of files) hash.update(file.name).update("\0").update(String(Buffer.byteLength(file.content))).update("\0").update(file.content);
  return hash.digest("hex");
}

/** The seed's files and hash. Throws CloudInitError for a spec that cannot make a seed. */
export function renderSeed(input: SeedInput): RenderedSeed {
  checkHostKey(input.hostKey);
  const c = input.cloudInit;
  const instanceId = instanceIdOf(input.uuid, c);
  const files: SeedFile[] = [
    { name: "meta-data", content: renderMetaData(input, instanceId) },
    { name: "user-data", content: renderUserData(input) },
  ];
  if (c.networkConfig !== undefined) {
    parseMapping(c.networkConfig, "spec.cloudInit.networkConfig", "spec.cloudInit.networkConfig");
    files.push({ name: "network-config", content: c.networkConfig });
  }
  if (c.vendorData !== undefined) files.push({ name: "vendor-data", content: c.vendorData });
  return { instanceId, medium: c.seedMedium, format: c.seedFormat, files, hash: seedHash(c.seedFormat, files) };
}

/** The seed's file names, in the order renderSeed gives them. */
export const SEED_FILE_NAMES: readonly SeedFileName[] = ["meta-data", "user-data", "network-config", "vendor-data"];

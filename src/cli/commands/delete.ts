// `kvmctl delete KIND NAME...` / `delete -f FILE`: remove manifests from the directory.
// The controller then prunes what they owned in libvirt (disks stay unless the manifest
// said deletionPolicy: Delete); `--wait` waits for that.
import { kindNames, parseObjectKey, type KindName } from "../../api/kind-names.js";
import type { VirtualMachineSpec } from "../../api/index.js";
import { objectsOf, type Snapshot, type StoredObject } from "../../store/index.js";
import type { CliContext } from "../context.js";
import { parseDuration } from "../duration.js";
import { CliError, UsageError } from "../errors.js";
import { readInputs } from "../input.js";
import { kindsFor, unreadableMessage, unreadableObjects, unreadablePlaces } from "./get.js";
import { parseTargets, waitForDeletion } from "./wait.js";

export interface DeleteOptions {
  filename?: string[];
  wait?: boolean;
  timeout: string;
  ignoreNotFound?: boolean;
  force?: boolean;
}

/**
 * How a VM manifest refers to objects of another kind. An object of a kind listed here is not
 * deleted while VM manifests refer to it (they would lose it); `advice` says what to do instead
 * and what `--force` leads to.
 */
const VM_REFERENCES: Partial<Record<KindName, { names(spec: VirtualMachineSpec): string[]; advice: string }>> = {
  Network: {
    names: (spec) => spec.interfaces.flatMap((nic) => (nic.network === undefined ? [] : [nic.network])),
    advice: "delete those or move them to another network first (--force deletes anyway; the controller keeps the network while running guests use it)",
  },
  StoragePool: {
    // A disk's pool (defaulted to "default"), and the pool it is cloned from.
    names: (spec) => spec.disks.flatMap((disk) => (disk.from?.pool === undefined ? [disk.pool] : [disk.pool, disk.from.pool])),
    advice: "delete those or move their disks to another pool first (--force deletes anyway; the controller keeps the pool while it holds volumes)",
  },
};

/** The valid VM manifests that refer to the object `key`, except those in `except`. */
export function vmsReferring(snapshot: Snapshot, key: string, except: ReadonlySet<string> = new Set()): StoredObject<"VirtualMachine">[] {
  const { kind, name } = parseObjectKey(key);
  const reference = VM_REFERENCES[kind];
  if (!reference) return [];
  return objectsOf(snapshot, "VirtualMachine").filter((vm) => !except.has(vm.key) && reference.names(vm.object.spec).includes(name));
}

/**
 * Why some of `keys` cannot be deleted now, checked for every key before anything changes:
 * objects VM manifests still refer to (unless `force`; VMs deleted in the same command do not
 * count), and objects whose file cannot be read (it cannot be edited; never forced). A VM whose
 * file cannot be read may refer to the object too, but nobody can tell: that is a warning.
 */
function refusals(snapshot: Snapshot, dir: string, keys: string[], force: boolean): { errors: string[]; warnings: string[] } {
  const deleting = new Set(keys);
  const unreadable = unreadableObjects(snapshot);
  const errors: string[] = [];
  const warnings: string[] = [];
  for (const key of keys) {
    const { kind, name } = parseObjectKey(key);
    const unread = unreadable.get(key);
    if (unread) {
      errors.push(`${kindNames(kind).plural} "${name}" cannot be deleted: it was last seen in ${unreadablePlaces(unread, dir)}, which cannot be read now (${unreadableMessage(unread)}); fix that file first`);
      continue;
    }
    // Only what this command would delete: a name no manifest holds is "not found", not "in use".
    if (force || !VM_REFERENCES[kind] || !(snapshot.objects.has(key) || snapshot.invalid.has(key))) continue;
    const users = vmsReferring(snapshot, key, deleting).map((vm) => `${vm.key} (${vm.location.file})`);
    if (users.length) errors.push(`${kindNames(kind).singular} "${name}" is in use by ${users.join(", ")}: ${VM_REFERENCES[kind]!.advice}`);
    const unknown = [...unreadable.values()].filter((u) => u.kind === "VirtualMachine" && !deleting.has(u.key)).map((u) => `${u.key} (${unreadablePlaces(u, dir)})`);
    if (unknown.length) warnings.push(`${kindNames(kind).singular} "${name}" may be in use by ${unknown.join(", ")}: its manifest cannot be read, so kvmctl cannot tell`);
  }
  return { errors, warnings };
}

async function keysToDelete(args: string[], options: DeleteOptions): Promise<string[]> {
  if (options.filename?.length) {
    if (args.length) throw new UsageError("give either -f FILE or KIND NAME, not both");
    const documents = await readInputs(options.filename, false);
    const keys = documents.map((d) => d.key).filter((k): k is string => k !== undefined);
    if (keys.length === 0) throw new CliError(`no objects with a kind and name in ${options.filename.join(", ")}`);
    return keys;
  }
  if (args.length === 0) throw new UsageError("expected KIND NAME... or -f FILE");
  if (args.every((a) => a.includes("/"))) return parseTargets(args);
  const [kindArg, ...names] = args;
  const kinds = kindsFor(kindArg!);
  if (kinds.length !== 1) throw new UsageError(`delete needs one kind, not "${kindArg}"`);
  if (names.length === 0) throw new UsageError(`expected a name after "${kindArg}"`);
  return names.map((name) => `${kinds[0]}/${name}`);
}

export async function runDelete(ctx: CliContext, args: string[], options: DeleteOptions): Promise<void> {
  const timeoutMs = parseDuration(options.timeout, "--timeout");
  const keys = await keysToDelete(args, options);
  const store = await ctx.openStore();
  const { errors, warnings } = refusals(await store.read(), store.dir, keys, options.force === true);
  if (errors.length) throw new CliError(errors.join("\nerror: "));
  for (const warning of warnings) process.stderr.write(`warning: ${warning}\n`);
  const started = new Date();
  const notFound: string[] = [];
  const deleted: string[] = [];
  for (const key of keys) {
    const { kind, name } = parseObjectKey(key);
    if (await store.deleteObject(key)) {
      process.stdout.write(`${kindNames(kind).singular} "${name}" deleted\n`);
      deleted.push(key);
    } else notFound.push(`${kindNames(kind).plural} "${name}" not found in ${store.dir}`);
  }
  if (options.wait) {
    // One line per object when it is kept for now (and whenever why changes), and when it is gone.
    const progress = (line: string) => process.stdout.write(`${line}\n`);
    await Promise.all(deleted.map((key) => waitForDeletion(ctx, key, started, timeoutMs, { progress })));
  }
  if (notFound.length && !options.ignoreNotFound) throw new CliError(notFound.join("\nerror: "));
}

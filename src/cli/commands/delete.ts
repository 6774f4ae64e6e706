// `kvmctl delete KIND NAME...` / `delete -f FILE`: remove manifests from the directory.
// The controller then prunes what they owned in libvirt (disks stay unless the manifest
// said deletionPolicy: Delete); `--wait` waits for that.
import { kindNames, parseObjectKey } from "../../api/kind-names.js";
import { objectsOf, type Snapshot } from "../../store/index.js";
import type { CliContext } from "../context.js";
import { parseDuration } from "../duration.js";
import { CliError, UsageError } from "../errors.js";
import { readInputs } from "../input.js";
import { kindsFor } from "./get.js";
import { parseTargets, waitForDeletion } from "./wait.js";

export interface DeleteOptions {
  filename?: string[];
  wait?: boolean;
  timeout: string;
  ignoreNotFound?: boolean;
  force?: boolean;
}

/**
 * A Network that VM manifests still name is not deleted (they would lose their network);
 * VMs deleted in the same command do not count. Checked for every key before anything changes.
 */
function networksInUse(snapshot: Snapshot, keys: string[]): string[] {
  const deleting = new Set(keys);
  const problems: string[] = [];
  for (const key of keys) {
    const { kind, name } = parseObjectKey(key);
    if (kind !== "Network") continue;
    const users = objectsOf(snapshot, "VirtualMachine")
      .filter((vm) => !deleting.has(vm.key) && vm.object.spec.interfaces.some((nic) => nic.network === name))
      .map((vm) => `${vm.key} (${vm.location.file})`);
    if (users.length) problems.push(`network "${name}" is in use by ${users.join(", ")}: delete those or move them to another network first (--force deletes anyway; the controller keeps the network while running guests use it)`);
  }
  return problems;
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
  if (!options.force) {
    const inUse = networksInUse(await store.read(), keys);
    if (inUse.length) throw new CliError(inUse.join("\nerror: "));
  }
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
  if (options.wait) await Promise.all(deleted.map((key) => waitForDeletion(ctx, key, started, timeoutMs)));
  if (notFound.length && !options.ignoreNotFound) throw new CliError(notFound.join("\nerror: "));
}

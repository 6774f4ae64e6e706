// `kvmctl wait KIND/NAME --for=condition=Ready --timeout=120s` (and --for=delete).
// A condition counts only when it describes the current spec (its observedGeneration is
// the object's generation), so a stale Ready from before an edit does not end the wait.
import { kindNames, parseObjectKey } from "../../api/kind-names.js";
import type { StoredObject } from "../../store/index.js";
import { conditionOf } from "../columns.js";
import type { CliContext } from "../context.js";
import { parseDuration } from "../duration.js";
import { CliError, UsageError } from "../errors.js";
import { printProblems } from "../problems.js";
import { kindsFor } from "./get.js";

const POLL_MS = 250;

export interface WaitOptions {
  for: string;
  timeout: string;
}

type WaitFor = { condition: string; value: string } | { delete: true };

export function parseWaitFor(text: string): WaitFor {
  if (text === "delete") return { delete: true };
  const match = /^condition=([A-Za-z][A-Za-z0-9]*)(?:=(True|False|Unknown|true|false|unknown))?$/.exec(text);
  if (!match) throw new UsageError(`--for: expected condition=NAME[=True|False] or delete, got "${text}"`);
  const value = match[2] ? match[2][0]!.toUpperCase() + match[2].slice(1).toLowerCase() : "True";
  return { condition: match[1]!, value };
}

/** Accepts `vm/web1`, `VirtualMachine/web1`, or KIND NAME as two arguments. */
export function parseTargets(args: string[]): string[] {
  if (args.length === 2 && !args[0]!.includes("/") && !args[1]!.includes("/")) {
    const [kind] = kindsFor(args[0]!);
    return [`${kind}/${args[1]}`];
  }
  if (args.length === 0) throw new UsageError("expected KIND/NAME");
  return args.map((arg) => {
    const slash = arg.indexOf("/");
    if (slash <= 0) throw new UsageError(`expected KIND/NAME, got "${arg}"`);
    const kinds = kindsFor(arg.slice(0, slash));
    if (kinds.length !== 1) throw new UsageError(`expected one kind in "${arg}"`);
    return `${kinds[0]}/${arg.slice(slash + 1)}`;
  });
}

function currentCondition(stored: StoredObject, type: string): { status: string; reason?: string; message?: string } | undefined {
  const condition = conditionOf(stored, type);
  if (!condition) return undefined;
  const generation = condition.observedGeneration ?? (stored.object as { status?: { observedGeneration?: number } }).status?.observedGeneration;
  return generation === stored.generation ? condition : undefined;
}

function label(key: string): string {
  const { kind, name } = parseObjectKey(key);
  return `${kindNames(kind).plural}/${name}`;
}

/**
 * The progress line of an object whose status describes its current spec: its phase and Ready
 * condition (`virtualmachine/web1 Running Ready=True Running: ...`); undefined while the status
 * describes an older spec (or there is none yet).
 */
export function progressLine(stored: StoredObject): string | undefined {
  const status = (stored.object as { status?: { observedGeneration?: unknown; phase?: unknown } }).status;
  if (status?.observedGeneration !== stored.generation) return undefined;
  const ready = conditionOf(stored, "Ready");
  const phase = typeof status.phase === "string" ? `${status.phase} ` : "";
  const why = ready ? `${ready.reason ? ` ${ready.reason}` : ""}${ready.message ? `: ${ready.message}` : ""}` : "";
  return `${kindNames(stored.kind).singular}/${stored.name} ${phase}Ready=${ready?.status ?? "Unknown"}${why}`.replace(/\s*\n\s*/g, " ");
}

/** What a progress line changes on: the phase and the Ready condition's status and reason (not every new message). */
function progressState(stored: StoredObject): string | undefined {
  if (progressLine(stored) === undefined) return undefined;
  const ready = conditionOf(stored, "Ready");
  return JSON.stringify([(stored.object as { status?: { phase?: unknown } }).status?.phase, ready?.status, ready?.reason]);
}

export interface WaitProgress {
  /** Called with a line whenever the object's phase or Ready condition changes (for the current spec). */
  progress?(line: string): void;
}

/**
 * Waits until `key`'s condition `type` is `value` for the object's current spec. A Stalled
 * condition ends the wait only when it describes the current spec too: a Stalled status from
 * before the latest edit is waited through (as kubectl waits), the controller has yet to look
 * at the new spec.
 */
export async function waitForCondition(ctx: CliContext, key: string, type: string, timeoutMs: number, value = "True", options: WaitProgress = {}): Promise<void> {
  const store = await ctx.openStore("read");
  const deadline = Date.now() + timeoutMs;
  let lastState: string | undefined;
  for (;;) {
    const snapshot = await store.read();
    const invalid = snapshot.invalid.get(key);
    if (invalid) {
      printProblems(invalid);
      throw new CliError(`${label(key)} is invalid; it will not become ${type}`);
    }
    const stored = snapshot.objects.get(key);
    if (!stored && !snapshot.unreadableFiles.size) throw new CliError(`${label(key)} not found in ${store.dir}`);
    if (stored) {
      const state = options.progress ? progressState(stored) : undefined;
      if (state !== undefined && state !== lastState) {
        lastState = state;
        options.progress!(progressLine(stored)!);
      }
      if (currentCondition(stored, type)?.status === value) return;
      const stalled = currentCondition(stored, "Stalled");
      if (type !== "Stalled" && stalled?.status === "True") {
        throw new CliError(`${label(key)} is stalled: ${stalled.reason ?? ""}${stalled.message ? `: ${stalled.message}` : ""}`);
      }
    }
    if (Date.now() >= deadline) {
      const ready = stored ? conditionOf(stored, "Ready") : undefined;
      const observed = (stored?.object as { status?: { observedGeneration?: unknown } } | undefined)?.status?.observedGeneration;
      // A status from before the latest edit: say so (the controller has not looked at this spec).
      const stale = stored && typeof observed === "number" && observed !== stored.generation ? `; the status describes generation ${observed}, the spec is generation ${stored.generation}` : "";
      const last = ready ? ` (Ready=${ready.status}, ${ready.reason ?? ""}${ready.message ? `: ${ready.message}` : ""}${stale})` : "";
      throw new CliError(`timed out waiting for condition ${type}=${value} on ${label(key)}${last}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** Waits until the controller has recorded that it removed what `key` owned in libvirt. */
export async function waitForDeletion(ctx: CliContext, key: string, since: Date, timeoutMs: number, options: WaitProgress = {}): Promise<void> {
  const store = await ctx.openStore("read");
  const deadline = Date.now() + timeoutMs;
  const { kind, name } = parseObjectKey(key);
  const prefix = `${kindNames(kind).singular}/${name}`;
  let lastState: string | undefined;
  for (;;) {
    const snapshot = await store.read();
    if (!snapshot.objects.has(key) && !snapshot.invalid.has(key)) {
      const events = await store.readEvents(key);
      // Only this deletion's event: a Deleted event from before (a "left alone" for an object of
      // the same name, say) must not end the wait.
      const deleted = events.find((e) => e.reason === "Deleted" && new Date(e.time).getTime() >= since.getTime());
      if (deleted) {
        options.progress?.(`${prefix} Deleted: ${deleted.message}`.replace(/\s*\n\s*/g, " "));
        return;
      }
      if (options.progress) {
        // Kept for now (a pool with volumes, a network in use): one line each time that changes.
        const kept = await store.readTerminating(key);
        const condition = kept?.conditions[0];
        const state = kept ? `${kept.phase}${condition?.reason ? ` ${condition.reason}` : ""}${condition?.message ? `: ${condition.message}` : ""}` : undefined;
        if (state !== undefined && state !== lastState) options.progress(`${prefix} ${state}`.replace(/\s*\n\s*/g, " "));
        lastState = state;
      }
    }
    if (Date.now() >= deadline) {
      // Kept on purpose (a pool with volumes, a network in use): say why, not "is it running?".
      const kept = await store.readTerminating(key);
      const why = kept ? `: it is kept (${kept.conditions[0]?.reason ?? kept.phase}: ${kept.conditions[0]?.message ?? ""})` : " (is `kvmctl controller` running?)";
      throw new CliError(`timed out waiting for the controller to delete ${label(key)}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

export async function runWait(ctx: CliContext, args: string[], options: WaitOptions): Promise<void> {
  const waitFor = parseWaitFor(options.for);
  const timeoutMs = parseDuration(options.timeout, "--timeout");
  const keys = parseTargets(args);
  const started = new Date();
  await Promise.all(
    keys.map(async (key) => {
      if ("delete" in waitFor) await waitForDeletion(ctx, key, started, timeoutMs);
      else await waitForCondition(ctx, key, waitFor.condition, timeoutMs, waitFor.value);
      const { kind, name } = parseObjectKey(key);
      process.stdout.write(`${kindNames(kind).singular}/${name} condition met\n`);
    }),
  );
}

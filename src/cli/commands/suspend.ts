// `kvmctl suspend|resume KIND/NAME...`: pause an object on this host, as Flux's suspend does —
// the controller then reads nothing and changes nothing for it (its status says suspended) —
// and let it go again (a reconcile is asked for at once). The annotation
// `kvmctl.dev/reconcile: disabled` does the same from git.
import os from "node:os";
import { RECONCILE_ANNOTATION } from "../../api/common.js";
import { kindNames, parseObjectKey } from "../../api/index.js";
import type { CliContext } from "../context.js";
import { CliError } from "../errors.js";
import { parseTargets } from "./wait.js";

export async function runSuspend(ctx: CliContext, args: string[], suspend: boolean): Promise<void> {
  const keys = parseTargets(args);
  const store = await ctx.openStore();
  const snapshot = await store.read();
  const recorded = await store.suspended();
  // A suspended object whose manifest is gone (kept from pruning) can still be resumed.
  const missing = keys.filter((key) => !snapshot.objects.has(key) && !snapshot.invalid.has(key) && (suspend || !recorded.has(key)));
  if (missing.length) throw new CliError(missing.map((key) => `${label(key)} not found in ${store.dir}`).join("\nerror: "));
  for (const key of keys) {
    if (suspend) await store.setSuspended(key, { since: new Date().toISOString(), by: os.userInfo().username });
    else {
      await store.setSuspended(key, undefined);
      await store.requestReconcile(key);
    }
    const annotated = (snapshot.objects.get(key)?.raw.metadata as { annotations?: Record<string, string> } | undefined)?.annotations?.[RECONCILE_ANNOTATION] === "disabled";
    process.stdout.write(`${label(key)} ${suspend ? "suspended" : "resumed"}${!suspend && annotated ? ` (but its manifest's annotation ${RECONCILE_ANNOTATION}: disabled keeps it suspended)` : ""}\n`);
  }
}

function label(key: string): string {
  const { kind, name } = parseObjectKey(key);
  return `${kindNames(kind as never).singular}/${name}`;
}

// ObjectRecorder (./kind.ts) over the manifest store: events and kept-object records.
import type { Clock } from "../runtime/index.js";
import type { ManifestStore } from "../store/index.js";
import type { ObjectRecorder } from "./kind.js";

/** `revision`: the checkout's revision the reconcile applies; every event names it. */
export function objectRecorder(store: ManifestStore, key: string, clock: Clock, revision?: string): ObjectRecorder {
  const event: ObjectRecorder["event"] = (type, reason, message) => store.recordEvent(key, { time: new Date(clock.now()).toISOString(), type, reason, message, ...(revision ? { revision } : {}) });
  return {
    event,
    async deleted(message) {
      await store.clearDeletionIntent(key);
      if ((await store.readEvents(key)).at(-1)?.reason === "Deleted") return;
      await event("Normal", "Deleted", message);
    },
    async kept(state) {
      if (await store.setTerminating(key, state)) await event("Warning", "DeletionBlocked", state.message);
    },
    async notKept() {
      await store.setTerminating(key, undefined);
    },
  };
}

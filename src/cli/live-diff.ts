// The libvirt half of `kvmctl diff`: filled in by the reconcilers' pure plans.
import type { SourceDocument } from "../store/index.js";
import type { CliContext } from "./context.js";

export async function liveDiff(_ctx: CliContext, _documents: SourceDocument[]): Promise<string> {
  return "";
}

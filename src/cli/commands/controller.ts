// `kvmctl controller`: placeholder until the reconcilers land.
import type { CliContext } from "../context.js";
import { CliError } from "../errors.js";

export interface ControllerOptions {
  once?: boolean;
  defaultDomainType?: "kvm" | "qemu";
  concurrency: string;
  resync: string;
  logLevel: string;
}

export async function runController(_ctx: CliContext, _options: ControllerOptions): Promise<void> {
  throw new CliError("the controller is not built yet");
}

// The libvirt half of `kvmctl diff`: what the controller would do for each input object, from
// the same pure plans it runs (each kind's controller in the registry), against what libvirt
// holds now.
import { kindNames } from "../api/kind-names.js";
import type { SourceDocument } from "../store/index.js";
import type { CliContext } from "./context.js";
import { CliError } from "./errors.js";

export async function liveDiff(ctx: CliContext, documents: SourceDocument[]): Promise<string> {
  const [{ hostPorts }, { previewChanges }, { specHash }] = await Promise.all([
    import("../adapters/host-ports.js"),
    import("../controllers/registry.js"),
    import("../api/hash.js"),
  ]);
  const ports = hostPorts({ uri: ctx.connect, virshTimeoutMs: 30_000 });
  let live;
  try {
    live = await ports.hypervisor.observe(Date.now());
  } catch (error) {
    throw new CliError(`cannot compare with libvirt at ${ctx.connect} (${(error as Error).message.split("\n")[0]}); use --no-live to diff the manifests only`);
  }
  const { readInstance } = await import("../store/instance.js");
  const store = await ctx.openStore("read");
  const planContext = {
    ports,
    // The instance this directory's controller recorded; none yet: objects are seen as a new one would.
    settings: { instance: readInstance(store.dir, store.stateRoot) ?? "unrecorded", defaultDomainType: process.env.KVMCTL_DEFAULT_DOMAIN_TYPE === "qemu" ? ("qemu" as const) : ("kvm" as const), consoleLogDir: undefined },
    memory: new Map<string, never>(),
    now: Date.now(),
  };
  const lines: string[] = [];
  for (const document of documents) {
    const object = document.object;
    if (!object || !document.key) continue;
    const target = { key: document.key, name: object.metadata.name, object, specHash: specHash(document.raw?.spec), file: undefined };
    let changes: string[];
    try {
      changes = await previewChanges(object.kind, planContext, target, live);
    } catch (error) {
      changes = [(error as Error).message]; // e.g. a VNC password file this user cannot read
    }
    if (changes.length) lines.push(`libvirt ${kindNames(object.kind).singular}/${object.metadata.name}:`, ...changes.map((c) => `  ~ ${c}`));
  }
  await ports.hypervisor.close();
  return lines.length ? lines.join("\n") + "\n" : "";
}

// The libvirt half of `kvmctl diff`: what the controller would do for each input object,
// from the same pure plans it runs, against what libvirt holds now.
import fs from "node:fs";
import { KIND_TABLE } from "../api/kind-names.js";
import type { SourceDocument } from "../store/index.js";
import type { CliContext } from "./context.js";
import { CliError } from "./errors.js";

export async function liveDiff(ctx: CliContext, documents: SourceDocument[]): Promise<string> {
  const [{ Virsh }, { Observer }, { planVm, isActive }, { planPool }, { planNetwork, networkUsers }, { specHash }] = await Promise.all([
    import("../adapters/virsh.js"),
    import("../adapters/observer.js"),
    import("../controllers/virtualmachine/plan.js"),
    import("../controllers/storagepool/plan.js"),
    import("../controllers/network/plan.js"),
    import("../api/hash.js"),
  ]);
  let live;
  try {
    live = await new Observer(new Virsh({ uri: ctx.connect, timeoutMs: 30_000 })).get(Date.now());
  } catch (error) {
    throw new CliError(`cannot compare with libvirt at ${ctx.connect} (${(error as Error).message.split("\n")[0]}); use --no-live to diff the manifests only`);
  }
  const lines: string[] = [];
  for (const document of documents) {
    const object = document.object;
    if (!object || !document.key) continue;
    const label = `${KIND_TABLE[object.kind].singular}/${object.metadata.name}`;
    let changes: string[] = [];
    if (object.kind === "VirtualMachine") {
      const domain = live.domains.get(object.metadata.name);
      const plan = planVm({
        key: document.key,
        name: object.metadata.name,
        file: domain?.config.owner?.file ?? "",
        spec: object.spec,
        specHash: specHash(document.raw?.spec),
        live: domain,
        pools: live.pools,
        networks: live.networks,
        defaultDomainType: process.env.KVMCTL_DEFAULT_DOMAIN_TYPE === "qemu" ? "qemu" : "kvm",
        consoleLogDir: domain?.config.consoleLog?.replace(/\/[^/]+$/, "") ?? "/var/log/kvmctl/console",
        restartPending: false,
        startedOnce: isActive(domain),
        now: Date.now(),
        vncPassword: readVncPassword(object.spec.consoles.vnc?.passwordSecretFile),
      });
      if (plan.invalid || plan.waitingFor) changes = [plan.message];
      else changes = [...plan.steps.map((s) => s.message), ...(plan.restartRequired.length ? [plan.message] : [])];
    } else if (object.kind === "StoragePool") {
      const plan = planPool(object.metadata.name, object.spec, live.pools.get(object.metadata.name));
      changes = plan.kind === "converge" ? plan.steps.map((s) => s.message) : "message" in plan ? [plan.message] : [];
    } else {
      const network = live.networks.get(object.metadata.name);
      const plan = planNetwork({
        key: document.key,
        name: object.metadata.name,
        file: network?.config.owner?.file ?? "",
        specHash: specHash(document.raw?.spec),
        spec: object.spec,
        live: network,
        users: networkUsers(object.metadata.name, live.domains.values()),
      });
      if (plan.kind === "notOwned") changes = [plan.message];
      else if (plan.kind === "converge") changes = [...plan.steps.map((s) => s.message), ...(plan.restartRequired ? [`RestartRequired: ${plan.restartRequired}`] : [])];
      // Firewall rules are not diffed here: they depend on every manifest and on live bridges.
    }
    if (changes.length) lines.push(`libvirt ${label}:`, ...changes.map((c) => `  ~ ${c}`));
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}

/** The VNC password as the controller would read it; unreadable here, the diff may show the VNC console as changed. */
function readVncPassword(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    return fs.readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
}

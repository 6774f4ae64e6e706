// A real manifest directory for the status page's tests: three objects (one Ready, one failing
// with markup in its condition message, one without status), a spec naming a secret file, and
// events recorded through the store (one aggregated, one with markup in its message).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ManifestStore } from "../../../src/store/index.js";

/** Text in the manifests and events that must reach the page only as text. */
export const HOSTILE_CONDITION = `<script>document.title="pwned-condition"</script><b>bridge busy</b>`;
export const HOSTILE_EVENT = `<img src=x onerror="document.title='pwned-event'">define failed`;
/** In a spec only: must never be served. */
export const SECRET_PATH = "/etc/kvmctl/secrets/web1-vnc-password";

const VM = `apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: web1
spec:
  cpus: 2
  memory: 2Gi
  disks:
    - name: root
      size: 10Gi
  consoles:
    vnc:
      listen: 0.0.0.0
      passwordSecretFile: ${SECRET_PATH}
status:
  phase: Running
  conditions:
    - type: Ready
      status: "True"
      reason: Running
      message: the domain is running
      lastTransitionTime: "2026-01-01T10:00:00Z"
  ssh:
    host: 192.168.150.11
    port: 22
`;

const NET = `apiVersion: kvmctl.dev/v1alpha1
kind: Network
metadata:
  name: lan
spec:
  mode: nat
  bridge: kvbr-lan
  ipv4:
    address: 192.168.150.1
    prefix: 24
status:
  conditions:
    - type: Ready
      status: "False"
      reason: ReconcileFailed
      message: '${HOSTILE_CONDITION}'
      lastTransitionTime: "2026-01-01T10:00:00Z"
`;

const POOL = `apiVersion: kvmctl.dev/v1alpha1
kind: StoragePool
metadata:
  name: images
spec:
  type: dir
  path: /var/lib/kvmctl/images
`;

export async function pageFixture(): Promise<{ dir: string; store: ManifestStore; cleanup(): void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-page-"));
  for (const [rel, text] of Object.entries({ "vms/web1.yaml": VM, "networks/lan.yaml": NET, "pools/images.yaml": POOL })) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  const store = new ManifestStore({ dir, diskCache: false });
  const snapshot = await store.read();
  if (snapshot.problems.length) throw new Error(`fixture manifests invalid: ${JSON.stringify(snapshot.problems)}`);
  await store.recordEvent("VirtualMachine/web1", { time: "2026-01-01T10:00:00.000Z", type: "Normal", reason: "Defined", message: "defined the domain web1" });
  await store.recordEvent("VirtualMachine/web1", { time: "2026-01-01T10:00:05.000Z", type: "Normal", reason: "Started", message: "started the domain web1" });
  await store.recordEvent("VirtualMachine/web1", { time: "2026-01-01T10:01:05.000Z", type: "Normal", reason: "Started", message: "started the domain web1" });
  await store.recordEvent("Network/lan", { time: "2026-01-01T10:02:00.000Z", type: "Warning", reason: "ReconcileFailed", message: HOSTILE_EVENT });
  return { dir, store, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

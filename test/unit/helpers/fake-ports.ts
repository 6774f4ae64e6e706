// Every port (src/ports) as an in-memory fake, and a harness that runs one kind controller's
// reconcile the way the manager does (src/controllers/manager.ts): a KindContext over the fake
// ports, a Snapshot of validated manifests, a memory per kind, a recorder that keeps what it is
// told, a firewall service stub, and a silent logger. No host, no sleeps: time is a ManualClock.
import assert from "node:assert/strict";
import { specHash, validateDocument, type KindName } from "../../../src/api/index.js";
import type { FirewallState } from "../../../src/controllers/firewall/controller.js";
import type { ControllerSettings, KindContext, KindOutcome, ObjectRecorder } from "../../../src/controllers/kind.js";
import { Manager, type ManagerOptions } from "../../../src/controllers/manager.js";
import { KIND_CONTROLLERS } from "../../../src/controllers/registry.js";
import { statusFromFailure, statusFromReport } from "../../../src/controllers/status.js";
import { ImportClaims } from "../../../src/controllers/virtualmachine/import-claims.js";
import type { HostListener, Rule } from "../../../src/firewall/rules.js";
import type { VncAuth, VncSaslSupport } from "../../../src/libvirt/qemu-conf.js";
import type { BackendName, DownloadState, Downloads, FirewallBackend, FirewallHost, FirewallWatch, FirewallWatchHandlers, HostKeyPair, HostKeys, ImageInfo, ImageTool, NetDevices, Observed, PathResolver, Ports, QemuConfig, SecretFiles, SeedFile, SeedMedia, Sysctl, UnattendLocation, UnattendMedia, UnattendMediumKind } from "../../../src/ports/index.js";
import type { Logger } from "../../../src/runtime/index.js";
import { deriveGeneration, type ManifestStore, type Snapshot, type StoredObject } from "../../../src/store/index.js";
import { FakeHypervisor, type TapHost } from "./fake-hypervisor.js";
import { ManualClock } from "./manual-clock.js";

export class FakeSecrets implements SecretFiles {
  readonly files = new Map<string, string>();
  async read(file: string): Promise<string> {
    const text = this.files.get(file);
    if (text === undefined) throw new Error(`cannot read ${file}: ENOENT: no such file or directory`);
    return text;
  }
  async readBytes(file: string): Promise<Buffer> {
    return Buffer.from(await this.read(file), "utf8");
  }
}

export class FakeImages implements ImageTool {
  /** What `qemu-img info` says about each file; an unknown file fails. */
  readonly images = new Map<string, ImageInfo>();
  readonly conversions: { source: string; sourceFormat: string; target: string; targetFormat: string }[] = [];
  async info(file: string): Promise<ImageInfo> {
    const info = this.images.get(file);
    if (!info) throw new Error(`qemu-img info ${file}: Could not open '${file}': No such file or directory`);
    return { ...info };
  }
  async convert(source: string, sourceFormat: string, target: string, targetFormat: "qcow2" | "raw"): Promise<void> {
    await this.info(source);
    this.conversions.push({ source, sourceFormat, target, targetFormat });
  }
}

/** Seed media "built" in memory: what each target would hold. */
export class FakeSeedMedia implements SeedMedia {
  readonly media = new Map<string, { format: "iso" | "vfat"; files: SeedFile[] }>();
  /** Every build, in order (a rebuild with unchanged inputs shows as a second entry). */
  readonly builds: { target: string; format: "iso" | "vfat" }[] = [];
  /** Set to make the next build fail with this message (genisoimage missing, disk full). */
  failNext: string | undefined;
  async build(target: string, format: "iso" | "vfat", files: readonly SeedFile[]): Promise<void> {
    const failure = this.failNext;
    this.failNext = undefined;
    if (failure !== undefined) throw new Error(failure);
    if (!files.some((f) => f.name === "meta-data") || !files.some((f) => f.name === "user-data")) throw new Error("a NoCloud seed needs meta-data and user-data");
    this.builds.push({ target, format });
    this.media.set(target, { format, files: files.map((f) => ({ ...f })) });
    this.recorded.delete(target);
  }
  /** target → the hash recorded for it (the sidecar). */
  readonly recorded = new Map<string, string>();
  /** Directories prepared and removed, in order. */
  readonly dirs = new Set<string>();
  readonly removedDirs: string[] = [];
  async prepareDir(_root: string, dir: string): Promise<void> {
    this.dirs.add(dir);
  }
  async recordBuilt(target: string, hash: string): Promise<void> {
    if (!this.media.has(target)) throw new Error(`no medium at ${target}`);
    this.recorded.set(target, hash);
  }
  async builtHash(target: string): Promise<string | undefined> {
    return this.media.has(target) ? this.recorded.get(target) : undefined;
  }
  async removeDir(dir: string): Promise<boolean> {
    const had = this.dirs.delete(dir) || [...this.media.keys()].some((t) => t.startsWith(`${dir}/`));
    for (const target of [...this.media.keys()]) {
      if (target.startsWith(`${dir}/`)) {
        this.media.delete(target);
        this.recorded.delete(target);
      }
    }
    if (had) this.removedDirs.push(dir);
    return had;
  }
}

/** Unattend media "built" in memory; the digest is keyed per VM directory (as the adapter's HMAC). */
export class FakeUnattendMedia implements UnattendMedia {
  /** path → the medium and the answer file it holds. */
  readonly media = new Map<string, { medium: UnattendMediumKind; content: Buffer }>();
  readonly builds: { path: string; medium: UnattendMediumKind }[] = [];
  readonly recorded = new Map<string, string>();
  /** vmDir → its digest key (made on first digest, like the adapter's unattend.key). */
  readonly keys = new Map<string, string>();
  readonly removed: string[] = [];
  failNext: string | undefined;
  async digest(at: UnattendLocation, medium: UnattendMediumKind, content: Buffer): Promise<string> {
    let key = this.keys.get(at.vmDir);
    if (!key) this.keys.set(at.vmDir, (key = `key-${this.keys.size}-${Math.random()}`));
    const { createHmac } = await import("node:crypto");
    return createHmac("sha256", key).update(`${medium}\0`).update(content).digest("hex");
  }
  async builtHash(at: UnattendLocation): Promise<string | undefined> {
    return this.media.has(at.path) ? this.recorded.get(at.path) : undefined;
  }
  async build(at: UnattendLocation, medium: UnattendMediumKind, content: Buffer, hash: string): Promise<void> {
    const failure = this.failNext;
    this.failNext = undefined;
    if (failure !== undefined) throw new Error(failure);
    this.builds.push({ path: at.path, medium });
    this.media.set(at.path, { medium, content: Buffer.from(content) });
    this.recorded.set(at.path, hash);
  }
  async present(at: UnattendLocation): Promise<boolean> {
    return this.media.has(at.path) || this.keys.has(at.vmDir);
  }
  async remove(at: UnattendLocation): Promise<boolean> {
    const had = await this.present(at);
    this.media.delete(at.path);
    this.recorded.delete(at.path);
    this.keys.delete(at.vmDir);
    if (had) this.removed.push(at.path);
    return had;
  }
}

/** Host keys in memory: one made-up (but well-formed) ed25519 pair per VM, stable across calls. */
export class FakeHostKeys implements HostKeys {
  readonly keys = new Map<string, HostKeyPair>();
  /** How many pairs were generated (a reused key does not count). */
  generated = 0;
  async ensure(vm: string): Promise<HostKeyPair> {
    let pair = this.keys.get(vm);
    if (!pair) {
      this.generated++;
      const body = Buffer.from(`fake-ed25519-${vm}`).toString("base64");
      const publicKey = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5${body} kvmctl-${vm}\n`;
      const privateKey = `-----BEGIN OPENSSH PRIVATE KEY-----\nfake-private-${body}\n-----END OPENSSH PRIVATE KEY-----\n`;
      pair = { publicKey } as HostKeyPair;
      Object.defineProperty(pair, "privateKey", { value: privateKey, enumerable: false });
      this.keys.set(vm, pair);
    }
    return pair;
  }
  async publicKey(vm: string): Promise<string | undefined> {
    return this.keys.get(vm)?.publicKey;
  }
  async remove(vm: string): Promise<void> {
    this.keys.delete(vm);
  }
}

/**
 * Downloads in memory: `start` records the URL and marks it running; the test then moves it on
 * (`progress`, `cut`, `finish`, `corrupt`) as the adapter would. A finished download's file is
 * `<dir>/<sha256>` (register its qemu-img info in FakeImages).
 */
export class FakeDownloads implements Downloads {
  readonly dir = "/var/lib/kvmctl/downloads";
  readonly states = new Map<string, DownloadState>();
  /** Every download started (a resume too), in order. */
  readonly started: { url: string; sha256: string; from: number }[] = [];
  readonly records = new Map<string, Set<string>>();
  state(sha256: string): DownloadState {
    return { ...(this.states.get(sha256) ?? { phase: "absent", bytes: 0 }) };
  }
  start(url: string, sha256: string): boolean {
    const now = this.state(sha256);
    if (now.phase === "running" || now.phase === "complete" || now.phase === "mismatch") return false;
    this.started.push({ url, sha256, from: now.bytes });
    this.states.set(sha256, { phase: "running", bytes: now.bytes, ...(now.total !== undefined ? { total: now.total } : {}) });
    return true;
  }
  progress(sha256: string, bytes: number, total?: number): void {
    this.states.set(sha256, { phase: "running", bytes, ...(total !== undefined ? { total } : {}) });
  }
  /** The connection broke: the partial file stays. */
  cut(sha256: string, message = "the connection closed"): void {
    const now = this.state(sha256);
    this.states.set(sha256, { ...now, phase: "failed", message });
  }
  finish(sha256: string, bytes: number): string {
    const file = `${this.dir}/${sha256}`;
    this.states.set(sha256, { phase: "complete", bytes, total: bytes, file });
    return file;
  }
  corrupt(sha256: string, actual: string): void {
    this.states.set(sha256, { phase: "mismatch", bytes: 0, actual, message: `the sha256 is ${actual}, not ${sha256}` });
  }
  async recordImported(sha256: string, target: string): Promise<void> {
    let set = this.records.get(sha256);
    if (!set) this.records.set(sha256, (set = new Set()));
    set.add(target);
  }
  async imported(sha256: string, target: string): Promise<boolean> {
    return this.records.get(sha256)?.has(target) ?? false;
  }
}

/** Host bridges and their ports; the fake hypervisor plugs taps in here when guests start. */
export class FakeNetDevices implements NetDevices, TapHost {
  /** device → the bridge it is a port of. */
  readonly ports = new Map<string, string>();
  readonly attached: { device: string; bridge: string }[] = [];
  bridgeOf(device: string): string | undefined {
    return this.ports.get(device);
  }
  async attach(device: string, bridge: string): Promise<void> {
    this.attached.push({ device, bridge });
    this.ports.set(device, bridge);
  }
  plug(device: string, bridge: string): void {
    this.ports.set(device, bridge);
  }
  bridgeGone(bridge: string): void {
    for (const [device, of] of this.ports) if (of === bridge) this.ports.delete(device);
  }
}

export class FakeSysctl implements Sysctl {
  ipv4Forwarding = false;
  async ensureIpv4Forwarding(): Promise<boolean> {
    const wasOff = !this.ipv4Forwarding;
    this.ipv4Forwarding = true;
    return wasOff;
  }
}

/** kvmctl's firewall table in memory (as test/unit/controllers/firewall-sync.test.ts's MemoryTable). */
export class MemoryTable implements FirewallBackend {
  readonly name = "nftables" as const;
  rules: Rule[] = [];
  applies = 0;
  /** Runs once right after the next apply: a hand edit racing the controller. */
  afterNextApply: (() => void) | undefined;
  async observe(): Promise<Observed> {
    return { fingerprint: JSON.stringify(this.rules), rules: this.rules };
  }
  async apply(rules: readonly Rule[]): Promise<void> {
    this.applies++;
    this.rules = [...rules];
    // The watch sees kvmctl's own writes too, as nft monitor does.
    this.watcher?.changed("kvmctl applied the table");
    const edit = this.afterNextApply;
    this.afterNextApply = undefined;
    edit?.();
  }
  placed(rules: readonly Rule[]): readonly Rule[] {
    return rules;
  }

  /** The handlers of the watch that is running (as `nft -j monitor`'s), if any. */
  watcher: FirewallWatchHandlers | undefined;
  watch(handlers: FirewallWatchHandlers): FirewallWatch {
    this.watcher = handlers;
    return { stop: async () => void (this.watcher = undefined) };
  }

  /** Flushed by hand, as the watch reports it. */
  flushByHand(): void {
    this.rules = [];
    this.watcher?.changed("the test flushed the table");
  }
}

export class FakeFirewallHost implements FirewallHost {
  readonly table = new MemoryTable();
  /** Set false for a host where no backend works. */
  available = true;
  async detect(preference: "auto" | BackendName): Promise<FirewallBackend | undefined> {
    return this.available && preference !== "iptables" ? this.table : undefined;
  }
  qemuUid(): number | undefined {
    return 64055;
  }
  /** Sockets bound on the fake host. */
  readonly listeners: HostListener[] = [];
  async listening(): Promise<HostListener[]> {
    return [...this.listeners];
  }
}

/** Real paths: the path itself, unless `links` maps a prefix of it somewhere else (a symlink). */
export class FakePaths implements PathResolver {
  readonly links = new Map<string, string>();
  real(file: string): string {
    for (const [link, target] of this.links) if (file === link || file.startsWith(`${link}/`)) return target + file.slice(link.length);
    return file;
  }
}

/** The host's qemu.conf as a test sets it: SASL for VNC off until a test turns it on. */
export class FakeQemuConfig implements QemuConfig {
  sasl: VncSaslSupport = { usable: false, reason: "qemu.conf does not set vnc_sasl = 1" };
  /** What each running domain's console uses: SASL when the host gives it and the domain has no password, as QEMU does. */
  running = new Map<string, VncAuth>();
  async vncSasl(): Promise<VncSaslSupport> {
    return this.sasl;
  }
  async runningVncAuth(name: string): Promise<VncAuth | undefined> {
    return this.running.get(name) ?? (this.sasl.usable ? "sasl" : "none");
  }
}

export interface FakePorts extends Ports {
  hypervisor: FakeHypervisor;
  secrets: FakeSecrets;
  paths: FakePaths;
  images: FakeImages;
  netdev: FakeNetDevices;
  sysctl: FakeSysctl;
  firewall: FakeFirewallHost;
  seedMedia: FakeSeedMedia;
  unattendMedia: FakeUnattendMedia;
  hostKeys: FakeHostKeys;
  downloads: FakeDownloads;
  qemuConfig: FakeQemuConfig;
  clock: ManualClock;
}

export function fakePorts(clock = new ManualClock()): FakePorts {
  const netdev = new FakeNetDevices();
  const hypervisor = new FakeHypervisor(clock);
  hypervisor.tapHost = netdev;
  return { hypervisor, secrets: new FakeSecrets(), paths: new FakePaths(), images: new FakeImages(), netdev, sysctl: new FakeSysctl(), firewall: new FakeFirewallHost(), seedMedia: new FakeSeedMedia(), unattendMedia: new FakeUnattendMedia(), hostKeys: new FakeHostKeys(), downloads: new FakeDownloads(), qemuConfig: new FakeQemuConfig(), clock };
}

// ---------------------------------------------------------------------------------------
// Manifests and the reconcile harness

export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
  debug() {},
  child() {
    return silentLogger;
  },
};

/** One valid manifest as the store would hold it (validated, defaulted, hashed). */
export function storedObject(kind: KindName, name: string, spec: Record<string, unknown> = {}, options: { status?: Record<string, unknown>; file?: string; createdAt?: Date } = {}): StoredObject {
  const raw = { apiVersion: "kvmctl.dev/v1alpha1", kind, metadata: { name }, spec };
  const result = validateDocument(options.status ? { ...raw, status: options.status } : raw);
  assert.ok(result.ok, `${kind}/${name} is invalid: ${JSON.stringify(!result.ok && result.issues)}`);
  const hash = specHash(raw.spec);
  return {
    key: `${kind}/${name}`,
    kind,
    name,
    object: result.object,
    raw,
    location: { file: options.file ?? `${kind.toLowerCase()}s/${name}.yaml`, document: 1, line: 1, column: 1 },
    specHash: hash,
    generation: deriveGeneration(options.status, hash),
    createdAt: options.createdAt ?? new Date(Date.UTC(2026, 0, 1)),
  } as StoredObject;
}

export function snapshotOf(objects: StoredObject[]): Snapshot {
  return { objects: new Map(objects.map((o) => [o.key, o])), invalid: new Map(), unreadableFiles: new Map(), problems: [] };
}

export interface RecordedEvent {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

export type KeptState = { phase: string; reason: string; message: string };

/** What a reconcile recorded on one object (the context's recorder follows the store's rules: src/controllers/recorder.ts). */
export class RecordingRecorder {
  /** Events as the store keeps them (one Deleted event, one DeletionBlocked per change). */
  readonly events: RecordedEvent[] = [];
  /** Every kept() call, in order. */
  readonly kept: KeptState[] = [];
  /** Every deleted() call's message, in order. */
  readonly deleted: string[] = [];
  /** The kept record now (undefined: not kept). */
  keptNow: KeptState | undefined;

  async event(type: "Normal" | "Warning", reason: string, message: string): Promise<void> {
    this.events.push({ type, reason, message });
  }
}

function recorderOver(recording: RecordingRecorder): ObjectRecorder {
  return {
    event: (type, reason, message) => recording.event(type, reason, message),
    async deleted(message) {
      recording.deleted.push(message);
      // One Deleted event: a repeated look adds no second one.
      if (recording.events.at(-1)?.reason === "Deleted") return;
      await recording.event("Normal", "Deleted", message);
    },
    async kept(state) {
      recording.kept.push(state);
      const changed = JSON.stringify(recording.keptNow) !== JSON.stringify(state);
      recording.keptNow = state;
      if (changed) await recording.event("Warning", "DeletionBlocked", state.message);
    },
    async notKept() {
      recording.keptNow = undefined;
    },
  };
}

export type Attempt<K extends KindName = KindName> = { outcome: KindOutcome<K>; error?: undefined } | { outcome?: undefined; error: unknown };

/** The controller instance the harness reconciles as (src/controllers/ownership.ts). */
export const TEST_INSTANCE = "t1";

/**
 * Runs kind controllers' reconciles against the fake ports as the manager would: one memory
 * per kind kept across reconciles, one recorder per key, the snapshot the test sets.
 */
export class ControllerHarness {
  readonly ports: FakePorts;
  readonly hv: FakeHypervisor;
  readonly clock: ManualClock;
  snapshot: Snapshot = snapshotOf([]);
  settings: ControllerSettings = { instance: TEST_INSTANCE, defaultDomainType: "kvm", consoleLogDir: "/var/log/kvmctl/console" };
  /** The git revision the manager would pass (undefined: the directory is not a checkout). */
  revision: string | undefined;
  /** What services.firewall.sync returns (set `error` to make networks report FirewallFailed). */
  firewallState: FirewallState = { backend: "nftables", counts: new Map(), pending: new Map(), refused: new Map(), failed: new Map(), total: 0 };
  /** The `since` of every firewall sync. */
  readonly firewallSyncs: number[] = [];
  /** The base-image imports under way, as the manager's shared services hold them. */
  readonly baseImports = new ImportClaims();
  private readonly memories = new Map<string, Map<string, unknown>>();
  private readonly recorders = new Map<string, RecordingRecorder>();

  constructor(ports: FakePorts = fakePorts()) {
    this.ports = ports;
    this.hv = ports.hypervisor;
    this.clock = ports.clock;
  }

  /** Adds (or replaces) a manifest in the snapshot. */
  apply(kind: KindName, name: string, spec: Record<string, unknown> = {}, options: Parameters<typeof storedObject>[3] = {}): StoredObject {
    const stored = storedObject(kind, name, spec, options);
    this.snapshot = snapshotOf([...[...this.snapshot.objects.values()].filter((o) => o.key !== stored.key), stored]);
    return stored;
  }

  /** The manifest is deleted. */
  remove(key: string): void {
    this.snapshot = snapshotOf([...this.snapshot.objects.values()].filter((o) => o.key !== key));
  }

  /** Writes a status into the stored object, as the store's next read would show it. */
  writeStatus(key: string, status: Record<string, unknown>): void {
    const stored = this.snapshot.objects.get(key);
    assert.ok(stored, `no manifest ${key}`);
    this.apply(stored.kind, stored.name, stored.raw.spec as Record<string, unknown>, { status, file: stored.location.file });
  }

  recorder(key: string): RecordingRecorder {
    let recording = this.recorders.get(key);
    if (!recording) this.recorders.set(key, (recording = new RecordingRecorder()));
    return recording;
  }

  memory(kind: KindName): Map<string, unknown> {
    let memory = this.memories.get(kind);
    if (!memory) this.memories.set(kind, (memory = new Map()));
    return memory;
  }

  context(key: string): KindContext<unknown> {
    const kind = key.slice(0, key.indexOf("/")) as KindName;
    return {
      ports: this.ports,
      settings: this.settings,
      memory: this.memory(kind),
      now: this.clock.now(),
      snapshot: this.snapshot,
      live: (since) => this.hv.observe(since),
      record: recorderOver(this.recorder(key)),
      services: {
        firewall: {
          sync: async (since) => {
            this.firewallSyncs.push(since);
            return this.firewallState;
          },
        },
        baseImports: this.baseImports,
      },
      log: this.logger,
    };
  }

  /** The reconciles' logger (a test may capture what they log). */
  logger: Logger = silentLogger;

  /** One reconcile of `key` ("Kind/name"), with the manifest the snapshot holds (or none). */
  async reconcile<K extends KindName>(key: `${K}/${string}`): Promise<KindOutcome<K>> {
    const kind = key.slice(0, key.indexOf("/")) as K;
    const name = key.slice(key.indexOf("/") + 1);
    const controller = KIND_CONTROLLERS[kind];
    const stored = this.snapshot.objects.get(key) as StoredObject<K> | undefined;
    return controller.reconcile(this.context(key), { key, name, stored, since: this.clock.now() }) as Promise<KindOutcome<K>>;
  }

  /** A reconcile that may throw: its outcome or its error. */
  async attempt<K extends KindName>(key: `${K}/${string}`): Promise<Attempt<K>> {
    try {
      return { outcome: await this.reconcile(key) };
    } catch (error) {
      return { error };
    }
  }
  /** The error one reconcile of `key` throws; fails the test when it does not throw. */
  async rejection<K extends KindName>(key: `${K}/${string}`): Promise<unknown> {
    const attempt = await this.attempt(key);
    assert.ok(attempt.error !== undefined, `expected ${key} to fail, got ${JSON.stringify(attempt.outcome?.report)}`);
    return attempt.error;
  }


  /** Reconciles until ready (at most `max` times, advancing the clock by each requeue); returns the last outcome. */
  async converge<K extends KindName>(key: `${K}/${string}`, max = 5): Promise<KindOutcome<K>> {
    let outcome: KindOutcome<K> | undefined;
    for (let i = 0; i < max; i++) {
      outcome = await this.reconcile(key);
      if (outcome.ready) return outcome;
      await this.clock.advance(outcome.requeueAfterMs ?? 1_000);
    }
    assert.fail(`${key} not ready after ${max} reconciles: ${JSON.stringify(outcome?.report)}`);
  }

  /** The status the manager would write after `outcome` (statusFromReport). */
  status(key: string, outcome: KindOutcome<KindName>): Record<string, unknown> {
    const stored = this.snapshot.objects.get(key);
    assert.ok(stored, `no manifest ${key}`);
    assert.ok(outcome.report, `${key}: the outcome has no report`);
    return statusFromReport(stored, outcome.ready, outcome.report as never, this.settings.instance, new Date(this.clock.now()), this.revision);
  }

  /** The status the manager would write after a failed reconcile (statusFromFailure). */
  failureStatus(key: string, error: unknown): Record<string, unknown> {
    const kind = key.slice(0, key.indexOf("/")) as KindName;
    return statusFromFailure(this.snapshot.objects.get(key), error, KIND_CONTROLLERS[kind].failurePhase, this.settings.instance, new Date(this.clock.now()));
  }
}

/** A Manager over `store` and fake `ports` as the controller command builds one (one worker), `options` on top. */
export function testManager(store: ManifestStore, ports: FakePorts, options: Partial<ManagerOptions> = {}): Manager {
  return new Manager({
    store,
    ports,
    logger: silentLogger,
    settings: { instance: TEST_INSTANCE, defaultDomainType: "qemu", consoleLogDir: "/var/log/kvmctl/console" },
    concurrency: 1,
    resyncMs: 60_000,
    firewallBackend: "auto",
    firewallCheckMs: 5_000,
    ...options,
  });
}

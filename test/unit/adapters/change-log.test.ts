// A stale picture mended by reading only the domains that changed: the change log's
// bookkeeping, the observer's mended readings over a fake virsh, and the hypervisor adapter
// routing events and its own commands into the log.
import assert from "node:assert/strict";
import test from "node:test";
import { ChangeLog } from "../../../src/adapters/change-log.js";
import { Observer } from "../../../src/adapters/observer.js";
import { VirshHypervisor, type EventSource } from "../../../src/adapters/virsh-hypervisor.js";
import type { EventStreamOptions } from "../../../src/adapters/events.js";
import type { Virsh } from "../../../src/adapters/virsh.js";

const uuidOf = (i: number) => `6f1d2a4e-0000-4000-8000-${String(i).padStart(12, "0")}`;
const domainXml = (name: string, uuid: string, memoryKiB = 262144) =>
  `<domain type='qemu'><name>${name}</name><uuid>${uuid}</uuid><memory unit='KiB'>${memoryKiB}</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os><devices/></domain>`;

interface FakeDomain {
  name: string;
  uuid: string;
  running: boolean;
  memoryKiB: number;
}

/** A virsh whose domains live in a table; records every batch's commands. */
class FakeVirsh {
  readonly options = { uri: "test:///fake" };
  readonly batches: string[][][] = [];
  readonly domains: FakeDomain[] = [];
  lastMutationAt = 0;
  mutationsInFlight = 0;
  mutationsEnded = 0;
  spawned = 0;
  onMutationEnded: ((subject: string | undefined) => void) | undefined;

  constructor(count: number) {
    for (let i = 1; i <= count; i++) this.domains.push({ name: `vm${i}`, uuid: uuidOf(i), running: false, memoryKiB: 262144 });
  }

  private find(ref: string | undefined): FakeDomain | undefined {
    return this.domains.find((d) => d.uuid === ref || d.name === ref);
  }

  private answer([cmd, ...args]: string[]): string | undefined {
    const joined = `${cmd} ${args.join(" ")}`;
    if (joined === "list --all --uuid") return this.domains.map((d) => d.uuid).join("\n");
    if (joined === "list --uuid") return this.domains.filter((d) => d.running).map((d) => d.uuid).join("\n");
    if (cmd === "list" || cmd === "pool-list" || cmd === "net-list") return "";
    const domain = this.find(args.at(-1));
    if (!domain) return undefined;
    if (cmd === "dumpxml") return domainXml(domain.name, domain.uuid, domain.memoryKiB);
    if (cmd === "domstate") return domain.running ? "running (booted)" : "shut off (destroyed)";
    if (cmd === "dominfo") return `Name: ${domain.name}\nPersistent:     yes\nAutostart:      disable\n`;
    return undefined;
  }

  async batch(commands: string[][]): Promise<(string | undefined)[]> {
    this.batches.push(commands);
    return commands.map((c) => this.answer(c));
  }

  private ended(subject: string | undefined): void {
    this.lastMutationAt = Date.now();
    this.mutationsEnded++;
    this.onMutationEnded?.(subject);
  }

  async run(args: string[], options: { subject?: string } = {}): Promise<string> {
    if (args[0] === "net-start") this.ended(options.subject);
    return "";
  }

  async runThenRead(args: string[], reads: string[][], options: { subject?: string } = {}): Promise<(string | undefined)[]> {
    const domain = this.find(args[1]);
    if (args[0] === "start" && domain) domain.running = true;
    this.ended(options.subject);
    return this.batch(reads);
  }

  /** Domains whose XML the batches since `from` read. */
  domainsRead(from: number): Set<string> {
    return new Set(this.batches.slice(from).flatMap((b) => b.filter((c) => c[0] === "dumpxml").map((c) => c.at(-1)!)));
  }
}

test("the change log: domains changed since a mark, or undefined once anything else changed", () => {
  const log = new ChangeLog();
  const start = log.mark();
  log.domain({ uuid: uuidOf(1) });
  log.domain({ name: "vm2" });
  log.domain({ uuid: uuidOf(1) });
  assert.deepEqual(log.domainsSince(start), [{ uuid: uuidOf(1) }, { name: "vm2" }]);
  const middle = log.mark();
  assert.deepEqual(log.domainsSince(middle), []);
  log.domain({ name: "vm3" });
  assert.deepEqual(log.domainsSince(middle), [{ name: "vm3" }]);
  log.everything();
  assert.equal(log.domainsSince(middle), undefined);
  const after = log.mark();
  log.domain({ name: "vm4" });
  assert.deepEqual(log.domainsSince(after), [{ name: "vm4" }], "what came before the other change is behind a later mark");
  log.forgetUpTo(after);
  assert.deepEqual(log.domainsSince(start), undefined, "still: the other change is after start");
  assert.deepEqual(log.domainsSince(after), [{ name: "vm4" }]);
});

/** An observer over `virsh` whose change source is a real ChangeLog, listening since `listeningSince`. */
function mendingObserver(virsh: FakeVirsh, opts: { listening?: () => number | undefined } = {}) {
  const log = new ChangeLog();
  const observer = new Observer(virsh as unknown as Virsh, {
    mark: () => log.mark(),
    domainsChangedSince: (mark, readAt) => ((opts.listening?.() ?? 0) <= readAt ? log.domainsSince(mark) : undefined),
    reflected: (mark) => log.forgetUpTo(mark),
  });
  return { observer, log };
}

test("mend: a picture stale from one domain's change reads that domain alone; others read everything", async () => {
  const virsh = new FakeVirsh(30);
  const { observer, log } = mendingObserver(virsh);
  const first = await observer.get(Date.now());
  assert.equal(first.domains.size, 30);
  assert.deepEqual(observer.readings, { whole: 1, partial: 0 });

  virsh.domains[4]!.running = true;
  virsh.domains[4]!.memoryKiB = 524288;
  log.domain({ name: "vm5" });
  const from = virsh.batches.length;
  const mended = await observer.get(Date.now() + 1, { mend: true });
  assert.equal(virsh.batches.length, from + 1, "one virsh process");
  assert.deepEqual([...virsh.domainsRead(from)], ["vm5"]);
  assert.equal(mended.domains.get("vm5")?.state, "running");
  assert.equal(mended.domains.get("vm5")?.config.memoryBytes, 524288 * 1024);
  assert.equal(mended.domains.size, 30, "the other domains kept");
  assert.equal(first.domains.get("vm5")?.state, "shut off", "the earlier picture is not changed under its readers");
  assert.deepEqual(observer.readings, { whole: 1, partial: 1 });

  // Without mend (a reader that needs what libvirt sends no event for), everything again.
  log.domain({ uuid: uuidOf(6) });
  await observer.get(Date.now() + 2);
  assert.deepEqual(observer.readings, { whole: 2, partial: 1 });
});

test("mend falls back to a whole reading when a partial one cannot tell", async () => {
  const virsh = new FakeVirsh(4);
  const { observer, log } = mendingObserver(virsh);
  await observer.get(Date.now());

  // Nothing known to have changed, yet a newer picture asked for: read, not assumed.
  await observer.get(Date.now() + 1, { mend: true });
  assert.deepEqual(observer.readings, { whole: 2, partial: 0 });

  // Another kind of change (a network command, a reconnected stream).
  log.domain({ name: "vm1" });
  log.everything();
  await observer.get(Date.now() + 2, { mend: true });
  assert.deepEqual(observer.readings, { whole: 3, partial: 0 });

  // The domain is gone: what went with it shows only in a whole reading.
  virsh.domains.splice(0, 1);
  log.domain({ name: "vm1" });
  const picture = await observer.get(Date.now() + 3, { mend: true });
  assert.equal(picture.domains.has("vm1"), false);
  assert.deepEqual(observer.readings, { whole: 4, partial: 0 });

  // A name virsh would read as a domain ID.
  log.domain({ name: "7" });
  await observer.get(Date.now() + 4, { mend: true });
  assert.deepEqual(observer.readings, { whole: 5, partial: 0 });

  // A name now on another domain (undefined and defined again with a new UUID).
  virsh.domains[0]!.uuid = uuidOf(99);
  log.domain({ name: virsh.domains[0]!.name });
  const renamed = await observer.get(Date.now() + 5, { mend: true });
  assert.equal(renamed.domains.get(virsh.domains[0]!.name)?.config.uuid, uuidOf(99));
  assert.deepEqual(observer.readings, { whole: 6, partial: 0 });

  // An event stream not listening since before the whole reading: events may be missing.
  const late = mendingObserver(virsh, { listening: () => Date.now() + 60_000 });
  await late.observer.get(Date.now());
  late.log.domain({ name: "vm2" });
  await late.observer.get(Date.now() + 6, { mend: true });
  assert.deepEqual(late.observer.readings, { whole: 2, partial: 0 });
});

test("a domain defined by someone else since the picture is added by a mended reading", async () => {
  const virsh = new FakeVirsh(3);
  const { observer, log } = mendingObserver(virsh);
  await observer.get(Date.now());
  virsh.domains.push({ name: "newcomer", uuid: uuidOf(50), running: false, memoryKiB: 131072 });
  log.domain({ name: "newcomer" });
  const picture = await observer.get(Date.now() + 1, { mend: true });
  assert.equal(picture.domains.get("newcomer")?.config.uuid, uuidOf(50));
  assert.deepEqual(observer.readings, { whole: 1, partial: 1 });
});

/** Event streams that are registered from the start and deliver what the test sends. */
function fakeStreams() {
  let options: EventStreamOptions | undefined;
  const since = Date.now() - 1000;
  const source = (o: EventStreamOptions): EventSource => {
    options = o;
    return { start() {}, stop() {}, listeningSince: () => since };
  };
  return { source, send: (kind: "domain" | "network", name: string, detail: string) => options!.onEvent({ kind, name, detail, at: Date.now() }) };
}

test("the hypervisor adapter: events and its own domain commands are mended; a network command is not", async () => {
  const virsh = new FakeVirsh(10);
  const streams = fakeStreams();
  const scratch = { write: async (name: string) => `/tmp/${name}`, remove: async () => {}, close: async () => {} };
  const hypervisor = new VirshHypervisor(virsh as unknown as Virsh, scratch, streams.source);
  hypervisor.watch({ onEvent: () => {}, onReconnect: () => {}, onError: () => {} }, { maxAgeMs: 60_000 });
  await hypervisor.observe(Date.now());

  // Someone else's change to vm3: its event names it.
  virsh.domains[2]!.running = true;
  streams.send("domain", "vm3", "lifecycle: Started Booted");
  let from = virsh.batches.length;
  let picture = await hypervisor.observe(Date.now() + 5, { mend: true });
  assert.deepEqual([...virsh.domainsRead(from)], ["vm3"]);
  assert.equal(picture.domains.get("vm3")?.state, "running");

  // Our own start of vm4 (by UUID), then a reading: vm4 alone again.
  await hypervisor.startDomain(uuidOf(4));
  from = virsh.batches.length;
  picture = await hypervisor.observe(Date.now() + 5, { mend: true });
  assert.deepEqual([...virsh.domainsRead(from)], [uuidOf(4)]);
  assert.equal(picture.domains.get("vm4")?.state, "running");

  // A network changed: the next picture is read whole.
  streams.send("network", "default", "lifecycle: Started");
  await hypervisor.observe(Date.now() + 5, { mend: true });
  await hypervisor.startNetwork(uuidOf(77));
  const before = hypervisor.observer.readings.whole;
  await hypervisor.observe(Date.now() + 5, { mend: true });
  assert.equal(hypervisor.observer.readings.whole, before + 1, "our own network command: read whole");
  assert.equal(hypervisor.observer.readings.partial, 2);
});

// The informer (issue 16): when the last picture of libvirt may be answered without reading it
// again. The pure rule (src/adapters/informed.ts); the registration signal read from virsh's
// client log (src/adapters/stream-registration.ts), on lines captured from libvirt 11.3; the
// virsh hypervisor over a fake virsh and fake event streams; and the event streams themselves
// over a stand-in virsh process (test/fixtures/fake-virsh-events.mjs).
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "node:test";
import { EventStreams, type EventStreamOptions } from "../../../src/adapters/events.js";
import { pictureStillHolds, type PictureFacts } from "../../../src/adapters/informed.js";
import { isLibvirtLogLine, parseRpcReply, REGISTER_PROCEDURES, RegistrationTracker } from "../../../src/adapters/stream-registration.js";
import type { Virsh } from "../../../src/adapters/virsh.js";
import { VirshHypervisor, type EventSource } from "../../../src/adapters/virsh-hypervisor.js";
import type { HypervisorEvent, HypervisorEventHandlers, ScratchFiles } from "../../../src/ports/index.js";

const T = Date.UTC(2026, 11, 1);

test("the rule: streams listening since before the reading, nothing changed since, within the maximum age", () => {
  const holds: PictureFacts = { readAt: T, takenAt: T, listeningSince: T - 1_000, changedAt: T - 5, mutationsInFlight: 0, now: T + 10_000, maxAgeMs: 300_000 };
  assert.equal(pictureStillHolds(holds), true);
  assert.equal(pictureStillHolds({ ...holds, listeningSince: T }), true, "registered the same ms the reading started");
  assert.equal(pictureStillHolds({ ...holds, listeningSince: undefined }), false, "a stream not listening: nothing is trusted");
  assert.equal(pictureStillHolds({ ...holds, listeningSince: T + 1 }), false, "a stream (re)connected after the reading: events may have been missed before it");
  assert.equal(pictureStillHolds({ ...holds, changedAt: T + 1 }), false, "an event or an own command after the reading");
  assert.equal(pictureStillHolds({ ...holds, changedAt: T }), true, "a change the reading started after is in it");
  assert.equal(pictureStillHolds({ ...holds, mutationsInFlight: 1 }), false, "an own command still running");
  assert.equal(pictureStillHolds({ ...holds, now: T + 300_000 }), true);
  assert.equal(pictureStillHolds({ ...holds, now: T + 300_001 }), false, "facts without events are not trusted past the maximum age");
  // A Stopped event applied in place moves takenAt, not the reading's age.
  assert.equal(pictureStillHolds({ ...holds, takenAt: T + 9_000, changedAt: T + 8_000 }), true);
  assert.equal(pictureStillHolds({ ...holds, takenAt: T + 9_000, changedAt: T + 8_000, now: T + 300_001 }), false);
});

// Lines as virsh 11.3 prints them with LIBVIRT_LOG_FILTERS=2:rpc.netclient LIBVIRT_LOG_OUTPUTS=2:stderr.
const line = (proc: number, type: number, status: number, serial: number) =>
  `2026-12-01 18:24:02.692+0000: 6927: info : virNetClientCallDispatch:1296 : RPC_CLIENT_MSG_RX: client=0x5621e08f6010 len=32 prog=536903814 vers=1 proc=${proc} type=${type} status=${status} serial=${serial}`;
const sent = "2026-12-01 18:24:02.692+0000: 6927: info : virNetClientSendInternal:2164 : RPC_CLIENT_MSG_TX_QUEUE: client=0x5621e08f6010 len=36 prog=536903814 vers=1 proc=316 type=0 status=0 serial=6";

test("registration: the replies to the register calls, read from virsh's client log", () => {
  assert.deepEqual(parseRpcReply(line(316, 1, 0, 6)), { procedure: 316, ok: true });
  assert.deepEqual(parseRpcReply(line(316, 1, 1, 6)), { procedure: 316, ok: false });
  assert.equal(parseRpcReply(sent), undefined, "a call sent is no reply");
  assert.equal(parseRpcReply(line(318, 2, 0, 0)), undefined, "an event message (type 2) is no reply");
  assert.equal(parseRpcReply(line(316, 1, 0, 6).replace("prog=536903814", "prog=1801807216")), undefined, "another program (keepalive)");
  assert.equal(isLibvirtLogLine(sent), true);
  assert.equal(isLibvirtLogLine("error: Disconnected from qemu:///system due to end of file"), false);

  const domain = new RegistrationTracker(REGISTER_PROCEDURES.domain, 3);
  assert.equal(domain.line(line(66, 1, 0, 0)), undefined, "the auth and feature calls before it");
  assert.equal(domain.line(line(316, 1, 0, 6)), undefined);
  assert.equal(domain.line(line(316, 1, 0, 7)), undefined);
  assert.equal(domain.line(line(316, 1, 0, 8)), "registered", "the last event type's reply");
  assert.equal(domain.line(line(316, 1, 0, 9)), undefined, "said once");

  const refused = new RegistrationTracker(REGISTER_PROCEDURES.network, 1);
  assert.equal(refused.line(line(313, 1, 1, 6)), "incomplete", "libvirtd refused it: up, but its events never come");
  const unknown = new RegistrationTracker(REGISTER_PROCEDURES.domain, undefined);
  assert.equal(unknown.line(line(316, 1, 0, 6)), undefined, "how many to expect unknown: never registered");
  const otherLog = new RegistrationTracker(REGISTER_PROCEDURES.pool, 1);
  assert.equal(otherLog.line("some other libvirt's log line about proc=368"), undefined, "a log it does not recognise: never registered");
});

// --- the virsh hypervisor over a fake virsh and fake event streams

const UUID = "6f1d2a4e-0000-4000-8000-000000000001";
const domainXml = `<domain type='qemu'><name>web</name><uuid>${UUID}</uuid><memory unit='KiB'>262144</memory><vcpu>1</vcpu><os><type arch='x86_64' machine='q35'>hvm</type></os><devices/></domain>`;

function fakeVirsh() {
  const virsh = {
    options: { uri: "test:///default" },
    batches: 0,
    lastMutationAt: 0,
    mutationsInFlight: 0,
    mutationsEnded: 0,
    /** What domstate answers; a start makes it running. */
    state: "running (booted)",
    /** Runs while a changing command runs (what else happens meanwhile). */
    whileChanging: (): void => undefined,
    /** Commands that change libvirt, run with their read-back (runThenRead). */
    changes: [] as string[][],
    /** What domainsBeingChanged answers: the UUIDs changing commands run on now (undefined: one named none). */
    beingChanged: [] as string[] | undefined,
    domainsBeingChanged: () => virsh.beingChanged,
    /** Set by the hypervisor adapter (its change log). */
    onMutationEnded: undefined as ((subject: string | undefined) => void) | undefined,
    ended(subject: string | undefined) {
      virsh.mutationsEnded++;
      virsh.lastMutationAt = Date.now();
      virsh.onMutationEnded?.(subject);
    },
    async run(args: string[], options: { subject?: string } = {}) {
      virsh.changes.push(args);
      virsh.ended(options.subject);
      return "";
    },
    async runThenRead(args: string[], reads: string[][], options: { subject?: string } = {}) {
      virsh.changes.push(args);
      virsh.mutationsInFlight++;
      virsh.whileChanging();
      if (args[0] === "start") virsh.state = "running (booted)";
      virsh.mutationsInFlight--;
      virsh.ended(options.subject);
      return virsh.batch(reads);
    },
    async batch(commands: string[][]) {
      virsh.batches++;
      return commands.map(([cmd, ...rest]) => {
        const joined = `${cmd} ${rest.join(" ")}`;
        if (joined === "list --all --uuid" || joined === "list --uuid") return UUID;
        if (cmd === "dumpxml") return domainXml;
        if (cmd === "domstate") return virsh.state;
        return undefined;
      });
    },
  };
  return virsh;
}

class FakeStreams implements EventSource {
  since: number | undefined;
  constructor(readonly options: EventStreamOptions) {}
  start(): void {}
  stop(): void {}
  listeningSince(): number | undefined {
    return this.since;
  }
}

const scratch: ScratchFiles = { write: async (name) => name, remove: async () => undefined, close: async () => undefined };
const handlers: HypervisorEventHandlers = { onEvent: () => undefined, onReconnect: () => undefined, onError: () => undefined };
const later = () => new Promise((resolve) => setTimeout(resolve, 3));

function hypervisor() {
  const virsh = fakeVirsh();
  let streams: FakeStreams | undefined;
  const hv = new VirshHypervisor(virsh as unknown as Virsh, scratch, (options) => (streams = new FakeStreams(options)));
  return { hv, virsh, streams: () => streams! };
}

test("the virsh hypervisor answers the current picture without reading while it is informed", async () => {
  const { hv, virsh, streams } = hypervisor();
  await hv.observe(Date.now());
  assert.equal(hv.informedSince(60_000), undefined, "no event streams yet (as in controller --once)");

  hv.watch(handlers);
  await later();
  await hv.observe(Date.now());
  assert.equal(hv.informedSince(60_000), undefined, "the streams not listening yet");
  await later();
  streams().since = Date.now();
  assert.equal(hv.informedSince(60_000), undefined, "they listen since after that reading: a change before may have been missed");

  await later();
  const picture = await hv.observe(Date.now());
  const informed = hv.informedSince(60_000);
  assert.equal(informed, picture.takenAt, "read after they listened, nothing changed since");
  const reads = virsh.batches;
  await later();
  assert.equal(await hv.observe(informed!), picture, "answered as it is");
  assert.equal(virsh.batches, reads, "no virsh process");

  await later();
  assert.equal(hv.informedSince(0), undefined, "older than the maximum age for facts without events");
  assert.equal(hv.informedSince(60_000), picture.takenAt);
});

test("an event, an own command (running or ended), a stream dropped or reconnected: not informed", async () => {
  const { hv, virsh, streams } = hypervisor();
  hv.watch(handlers);
  streams().since = Date.now() - 1_000;
  const read = async () => {
    await later();
    return (await hv.observe(Date.now())).takenAt;
  };
  let takenAt = await read();
  assert.equal(hv.informedSince(60_000), takenAt);

  await later();
  streams().options.onEvent({ kind: "domain", name: "web", detail: "lifecycle: Defined Updated", at: Date.now() });
  assert.equal(hv.informedSince(60_000), undefined, "an event after the reading");
  takenAt = await read();
  assert.equal(hv.informedSince(60_000), takenAt, "read again: informed again");

  virsh.mutationsInFlight = 1;
  assert.equal(hv.informedSince(60_000), undefined, "an own changing command running");
  await later();
  virsh.mutationsInFlight = 0;
  virsh.lastMutationAt = Date.now();
  assert.equal(hv.informedSince(60_000), undefined, "ended after the reading");
  takenAt = await read();

  streams().since = undefined;
  assert.equal(hv.informedSince(60_000), undefined, "a stream down");
  await later();
  streams().since = Date.now();
  assert.equal(hv.informedSince(60_000), undefined, "back, but listening since after the reading");
  takenAt = await read();
  assert.equal(hv.informedSince(60_000), takenAt);
});

test("Shutdown Finished then Stopped: the first is passed on as a prelude; the stop is applied to the picture, which stays informed; its reading's age still counts", async () => {
  const { hv, virsh, streams } = hypervisor();
  const heard: HypervisorEvent[] = [];
  hv.watch({ ...handlers, onEvent: (event) => heard.push(event) });
  streams().since = Date.now() - 1_000;
  await later();
  const before = await hv.observe(Date.now());
  await later();
  streams().options.onEvent({ kind: "domain", name: "web", detail: "lifecycle: Shutdown Finished after host request", at: Date.now() });
  assert.equal(hv.informedSince(60_000), before.takenAt, "a prelude changes nothing");
  streams().options.onEvent({ kind: "domain", name: "web", detail: "lifecycle: Stopped Destroyed", at: Date.now() });
  assert.deepEqual(heard.map((e) => [e.detail, e.prelude]), [["lifecycle: Shutdown Finished after host request", true], ["lifecycle: Stopped Destroyed", undefined]]);
  const informed = hv.informedSince(60_000);
  assert.ok(informed !== undefined && informed > before.takenAt, "the stop is in the picture, as of the event");
  const reads = virsh.batches;
  const after = await hv.observe(informed);
  assert.equal(virsh.batches, reads);
  assert.deepEqual([after.domains.get("web")?.state, after.domains.get("web")?.reason], ["shut off", "destroyed"]);
  await later();
  const age = Date.now() - before.takenAt;
  assert.equal(hv.informedSince(age - 2), undefined, "the age is the reading's, not the event's");
});

// --- the event streams over a stand-in virsh

const STAND_IN = [process.execPath, path.resolve("test/fixtures/fake-virsh-events.mjs")];

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function standInStreams(env: Record<string, string>) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kvmctl-fake-virsh-"));
  for (const [k, v] of Object.entries({ FAKE_VIRSH_DIR: dir, ...env })) process.env[k] = v;
  const seen = { registered: [] as { stream: string; complete: boolean; at: number; listening: number | undefined }[], reconnects: [] as string[], errors: [] as string[] };
  const streams: EventStreams = new EventStreams({
    uri: "test:///default",
    virsh: STAND_IN,
    onEvent: () => undefined,
    onReconnect: (stream) => seen.reconnects.push(stream),
    onError: (stream, message) => seen.errors.push(`${stream}: ${message}`),
    onRegistered: (stream, complete) => seen.registered.push({ stream, complete, at: Date.now(), listening: streams.listeningSince() }),
  });
  return {
    streams,
    seen,
    /** Tells the stand-in of `stream` to lose libvirtd now. */
    lose: (stream: string) => fs.writeFileSync(path.join(dir, `${stream}.lose`), ""),
    done: () => {
      streams.stop();
      for (const k of ["FAKE_VIRSH_DIR", ...Object.keys(env)]) delete process.env[k];
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

test("event streams: listening once every stream's registrations are answered; a disconnect ends it until registered again", async () => {
  const started = Date.now();
  const { streams, seen, lose, done } = standInStreams({ FAKE_VIRSH_DROP_FIRST: "network" });
  try {
    assert.equal(streams.listeningSince(), undefined, "before start");
    streams.start();
    await until("all three registered", () => seen.registered.length >= 3);
    assert.deepEqual(seen.registered.map((r) => `${r.stream} ${r.complete}`).sort(), ["domain true", "network true", "pool true"]);
    assert.deepEqual(seen.registered.map((r) => r.listening === undefined), [true, true, false], "listening only once the last stream registered");
    const first = seen.registered[2]!.listening;
    assert.ok(first !== undefined && first >= started, "listening since the last registration");
    // The network stream loses libvirtd: not listening from its error line on, then registered again.
    lose("network");
    await until("the network stream lost", () => seen.errors.length >= 1);
    assert.match(seen.errors[0]!, /^network: error: Disconnected from/);
    await until("the network stream registered again", () => seen.registered.filter((r) => r.stream === "network").length === 2);
    const again = streams.listeningSince();
    assert.ok(again !== undefined && again > first!, "listening since the new registration, not the old");
    assert.deepEqual(seen.reconnects, ["network"], "the reconnect announced once it listens");
  } finally {
    done();
  }
});

test("event streams: virsh saying it lost libvirtd ends listening at once, before it exits", async () => {
  const { streams, seen, lose, done } = standInStreams({ FAKE_VIRSH_LOSE_AND_HANG: "pool" });
  try {
    streams.start();
    await until("all three registered", () => seen.registered.length >= 3);
    assert.notEqual(seen.registered[2]!.listening, undefined, "listening once the last one registered");
    lose("pool");
    await until("not listening", () => streams.listeningSince() === undefined);
    assert.deepEqual(seen.errors, [], "the pool stream's virsh still runs");
  } finally {
    done();
  }
});

test("event streams: a registration libvirtd refused never counts as listening", async () => {
  const { streams, seen, done } = standInStreams({ FAKE_VIRSH_REFUSE: "domain" });
  try {
    streams.start();
    await until("all three answered", () => seen.registered.length >= 3);
    assert.deepEqual(seen.registered.map((r) => `${r.stream} ${r.complete}`).sort(), ["domain false", "network true", "pool true"]);
    assert.equal(streams.listeningSince(), undefined);
    streams.stop();
    assert.equal(streams.listeningSince(), undefined, "stopped");
  } finally {
    done();
  }
});

test("the event a command of ours brings back is marked as its echo and makes nothing stale; the next one is an ordinary event", async () => {
  const { hv, virsh, streams } = hypervisor();
  const ran: string[][] = [];
  Object.assign(virsh, { run: async (args: string[]) => (ran.push(args), "") });
  const seen: { detail: string; echo?: boolean }[] = [];
  hv.watch({ ...handlers, onEvent: (event) => seen.push({ detail: event.detail, ...(event.echo ? { echo: true } : {}) }) });
  await hv.observe(Date.now()); // the picture names UUID's domain "web"
  const started = await hv.startDomain(UUID);
  assert.deepEqual([...ran, ...virsh.changes], [["start", UUID]]);
  assert.equal(started?.state, "running", "read back with the start");
  const before = hv.changedAt;
  await later();
  streams().options.onEvent({ kind: "domain", name: "web", detail: "lifecycle: Started Booted", at: Date.now() });
  assert.equal(hv.changedAt, before, "an echo moves nothing: the command's end already did");
  streams().options.onEvent({ kind: "domain", name: "web", detail: "lifecycle: Started Booted", at: Date.now() });
  assert.ok(hv.changedAt > before, "a second start is someone else's");
  streams().options.onEvent({ kind: "domain", name: "other", detail: "lifecycle: Started Booted", at: Date.now() });
  assert.deepEqual(seen, [{ detail: "lifecycle: Started Booted", echo: true }, { detail: "lifecycle: Started Booted" }, { detail: "lifecycle: Started Booted" }]);

  await hv.defineDomain(domainXml); // the name comes from the XML
  streams().options.onEvent({ kind: "domain", name: "web", detail: "lifecycle: Defined Updated", at: Date.now() });
  assert.equal(seen.at(-1)?.echo, true);
});

test("a start's read-back goes into the picture when nothing else changed while it ran: the picture still holds, no reading", async () => {
  const { hv, virsh, streams } = hypervisor();
  hv.watch(handlers);
  streams().since = Date.now() - 1_000;
  virsh.state = "shut off (destroyed)";
  await later();
  const before = await hv.observe(Date.now());
  assert.equal(before.domains.get("web")?.state, "shut off");
  await later();
  await hv.startDomain(UUID);
  const informed = hv.informedSince(60_000);
  assert.ok(informed !== undefined && informed >= virsh.lastMutationAt, "informed as of the start's end");
  const reads = virsh.batches;
  const after = await hv.observe(informed);
  assert.equal(virsh.batches, reads, "no reading");
  assert.deepEqual([after.domains.get("web")?.state, after.domains.get("web")?.reason], ["running", "booted"]);
  assert.equal(before.domains.get("web")?.state, "shut off", "the earlier picture is not changed under its readers");
});

test("a start's read-back is not taken when anything else may have changed while it ran, or the streams were not listening", async () => {
  const cases: [string, (h: ReturnType<typeof hypervisor>) => void][] = [
    ["an event (not the start's echo)", (h) => h.streams().options.onEvent({ kind: "network", name: "lan", detail: "lifecycle: Stopped", at: Date.now() })],
    ["another command of ours ended", (h) => h.virsh.mutationsEnded++],
    ["a stream reconnected", (h) => (h.streams().since = Date.now() + 1)],
    ["a stream down", (h) => (h.streams().since = undefined)],
  ];
  for (const [what, meanwhile] of cases) {
    const h = hypervisor();
    h.hv.watch(handlers);
    h.streams().since = Date.now() - 1_000;
    await later();
    await h.hv.observe(Date.now());
    await later();
    h.virsh.whileChanging = () => meanwhile(h);
    const started = await h.hv.startDomain(UUID);
    assert.equal(started?.state, "running", `${what}: the reconcile still gets its read-back`);
    assert.equal(h.hv.informedSince(60_000), undefined, what);
    const reads = h.virsh.batches;
    await h.hv.observe(h.virsh.lastMutationAt);
    assert.ok(h.virsh.batches > reads, `${what}: a picture after the start is a new reading`);
  }
});

test("a domain this process just defined is not in the picture yet: its start's Resumed and Started are still echoes", async () => {
  const { hv, streams } = hypervisor();
  const seen: { name: string; detail: string; echo?: boolean }[] = [];
  hv.watch({ ...handlers, onEvent: (event) => seen.push({ name: event.name, detail: event.detail, ...(event.echo ? { echo: true } : {}) }) });
  await hv.observe(Date.now()); // the picture holds "web" only
  const fresh = "6f1d2a4e-0000-4000-8000-0000000000f2";
  await hv.defineDomain(domainXml.replace("<name>web</name>", "<name>fresh</name>").replace(UUID, fresh));
  await hv.startDomain(fresh);
  for (const detail of ["lifecycle: Defined Added", "lifecycle: Resumed Unpaused", "lifecycle: Started Booted", "lifecycle: Started Booted"]) {
    streams().options.onEvent({ kind: "domain", name: "fresh", detail, at: Date.now() });
  }
  assert.deepEqual(seen.map((e) => e.echo === true), [true, true, true, false], "one define and one start: the second Started is someone else's");
});

test("for one domain, the picture still holds while only other domains changed: their events, our commands on them (ended or running)", async () => {
  const { hv, virsh, streams } = hypervisor();
  hv.watch(handlers, { maxAgeMs: 60_000 });
  streams().since = Date.now() - 1_000;
  await later();
  const picture = await hv.observe(Date.now()); // holds "web" only
  const other = "6f1d2a4e-0000-4000-8000-0000000000f3";
  const fresh = "6f1d2a4e-0000-4000-8000-0000000000f4";
  await later();
  await hv.defineDomain(domainXml.replace("<name>web</name>", "<name>fresh</name>").replace(UUID, fresh));
  assert.equal(hv.informedSince(60_000), undefined, "our define came after the picture");
  assert.equal(hv.informedSince(60_000, "web"), picture.takenAt, "it was about another domain");
  assert.equal(hv.informedSince(60_000, "new"), picture.takenAt, "a domain the picture does not hold and no change named: still absent");
  assert.equal(hv.informedSince(60_000, "fresh"), undefined, "the defined one: read it");

  streams().options.onEvent({ kind: "domain", name: "guest", detail: "lifecycle: Started Booted", at: Date.now() });
  assert.equal(hv.informedSince(60_000, "web"), picture.takenAt, "an event about another domain");
  assert.equal(hv.informedSince(60_000, "guest"), undefined, "the domain it named");
  assert.equal(hv.informedSince(0, "web"), undefined, "past the maximum age");

  virsh.beingChanged = [fresh];
  assert.equal(hv.informedSince(60_000, "web"), picture.takenAt, "a command running on another domain we know");
  virsh.beingChanged = [UUID];
  assert.equal(hv.informedSince(60_000, "web"), undefined, "one running on this domain");
  virsh.beingChanged = [other];
  assert.equal(hv.informedSince(60_000, "web"), undefined, "one running on a UUID we know no name for: it may be this domain");
  virsh.beingChanged = undefined;
  assert.equal(hv.informedSince(60_000, "web"), undefined, "one that may change anything");
  virsh.beingChanged = [];

  await hv.setDomainAutostart(other, true);
  assert.equal(hv.informedSince(60_000, "web"), undefined, "a command ended on a UUID we know no name for");
  const reread = await hv.observe(Date.now(), { mend: true });
  assert.equal(hv.informedSince(60_000, "web"), reread.takenAt, "read again: holds again");
  await later();
  streams().options.onEvent({ kind: "network", name: "lan", detail: "lifecycle: Started", at: Date.now() });
  assert.equal(hv.informedSince(60_000, "web"), undefined, "a network changed: not only domains");
  await later();
  const whole = await hv.observe(Date.now());
  assert.equal(hv.informedSince(60_000, "web"), whole.takenAt);
  streams().since = Date.now() + 1;
  assert.equal(hv.informedSince(60_000, "web"), undefined, "a stream reconnected after the reading");
});

test("for one domain: not before watch sets how old a reading may be for mending (controller --once)", async () => {
  const { hv, streams } = hypervisor();
  hv.watch(handlers);
  streams().since = Date.now() - 1_000;
  await later();
  await hv.observe(Date.now());
  await later();
  streams().options.onEvent({ kind: "domain", name: "guest", detail: "lifecycle: Started Booted", at: Date.now() });
  assert.equal(hv.informedSince(60_000, "web"), undefined);
});

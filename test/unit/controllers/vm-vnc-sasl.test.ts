// consoles.vnc.auth: sasl through the VirtualMachine reconciler, on the fakes: a host without
// usable VNC SASL gets no definition and no start (the VncSaslUnavailable condition and one
// Warning event instead of a console with weaker auth); once the host gives SASL the VM converges.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ControllerHarness } from "../helpers/fake-ports.js";

const KEY = "VirtualMachine/desk";

test("auth: sasl on a host without VNC SASL: nothing defined or started, the condition says why; with it, the VM converges", async () => {
  const h = new ControllerHarness();
  h.apply("VirtualMachine", "desk", { memory: "256Mi", consoles: { vnc: { auth: "sasl" } } });
  h.ports.qemuConfig.sasl = { usable: false, reason: "qemu.conf does not set vnc_sasl = 1" };
  const refused = await h.reconcile(KEY);
  assert.equal(refused.ready, false);
  assert.deepEqual(h.hv.calls, [], "no define, no start");
  const status = h.status(KEY, refused) as { phase: string; conditions: { type: string; reason: string; message: string }[] };
  const ready = status.conditions.find((c) => c.type === "Ready")!;
  assert.equal(ready.reason, "VncSaslUnavailable");
  assert.match(ready.message, /auth is sasl, but this host does not give VNC SASL: qemu\.conf does not set vnc_sasl = 1/);
  assert.equal(status.phase, "Pending");
  assert.equal(refused.requeueAfterMs, 30_000, "looked at again: the host may be fixed without a spec change");
  assert.deepEqual(h.recorder(KEY).events.map((e) => [e.type, e.reason]), [["Warning", "VncSaslUnavailable"]]);

  h.ports.qemuConfig.sasl = { usable: true, transport: "tls", mechanisms: ["scram-sha-256"] };
  const converged = await h.converge(KEY);
  assert.equal(converged.ready, true);
  const calls: readonly string[] = h.hv.calls;
  assert.ok(calls.some((c) => c.startsWith("startDomain")), calls.join("\n"));
});

test("auth: sasl is asked of the host only for VMs that ask for it", async () => {
  const h = new ControllerHarness();
  let asked = 0;
  h.ports.qemuConfig.vncSasl = async () => (asked++, { usable: false, reason: "no" });
  h.apply("VirtualMachine", "plain", { memory: "256Mi", consoles: { vnc: {} } });
  assert.equal((await h.converge("VirtualMachine/plain")).ready, true);
  assert.equal(asked, 0);
});

test("qemu.conf says SASL but the started QEMU has none (libvirtd not restarted): destroyed at once, not started again for a while", async () => {
  const h = new ControllerHarness();
  h.ports.qemuConfig.sasl = { usable: true, transport: "tls", mechanisms: ["scram-sha-256"] };
  h.ports.qemuConfig.running.set("desk", "none");
  h.apply("VirtualMachine", "desk", { memory: "256Mi", consoles: { vnc: { auth: "sasl" } } });
  const outcome = await h.reconcile(KEY);
  assert.equal(outcome.ready, false);
  const calls: readonly string[] = h.hv.calls;
  assert.deepEqual(calls.map((c) => c.split(" ")[0]).filter((c) => c !== "defineDomain"), ["startDomain", "destroyDomain"]);
  assert.equal(h.hv.domain("desk")!.state, "shut off");
  const ready = (h.status(KEY, outcome) as { conditions: { type: string; reason: string; message: string }[] }).conditions.find((c) => c.type === "Ready")!;
  assert.equal(ready.reason, "VncSaslUnavailable");
  assert.match(ready.message, /the running QEMU's VNC console has no auth, not SASL \(libvirtd reads qemu\.conf only when it starts: restart libvirtd\); the domain was stopped again/);

  // The Stopped event wakes it: no second start.
  h.hv.clearCalls();
  const again = await h.reconcile(KEY);
  assert.deepEqual(h.hv.calls, []);
  assert.match((h.status(KEY, again) as { conditions: { type: string; message: string }[] }).conditions.find((c) => c.type === "Ready")!.message, /came up without SASL/);
  // Ten minutes on (libvirtd restarted meanwhile), it starts, and stays up.
  h.ports.qemuConfig.running.set("desk", "sasl");
  h.ports.clock.advance(10 * 60_000);
  assert.equal((await h.converge(KEY)).ready, true);
  assert.equal(h.hv.domain("desk")!.state, "running");
});

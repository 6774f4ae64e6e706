// A status writer as busy as a controller can be: writes VirtualMachine/web's status in a loop
// (each write different, optionally paced), and prints how many it has done after each, until
// stdin closes. A "mark" line on stdin is answered with "mark N": N writes were done when it
// arrived, so write N + 2 is certain to have started after whatever the parent did before.
import { ManifestStore } from "../../../src/store/index.js";

const store = new ManifestStore({ dir: process.argv[2]!, diskCache: false });
/** Pause between writes (ms): 0 is as fast as it can. */
const pauseMs = Number(process.argv[3] ?? 0);
let running = true;
let done = 0;
process.stdin.resume();
process.stdin.on("end", () => (running = false));
process.stdin.on("data", (chunk: Buffer) => {
  for (const line of chunk.toString().split("\n")) if (line === "mark") process.stdout.write(`mark ${done}\n`);
});
for (let i = 0; running; i++) {
  await store.writeStatus("VirtualMachine/web", { observedGeneration: 1, phase: i % 2 ? "Running" : "Starting", consoleLog: `/var/log/kvmctl/console/web.${i}.log` }).catch((error: unknown) => {
    process.stderr.write(`status write failed: ${(error as Error).message}\n`);
  });
  done = i + 1;
  // Yield to the event loop: stdin's end and the pipe to the parent get their turn.
  if (!process.stdout.write(`${i + 1}\n`)) await new Promise((resolve) => process.stdout.once("drain", resolve));
  await new Promise((resolve) => (pauseMs ? setTimeout(resolve, pauseMs) : setImmediate(resolve)));
}
process.exit(0);

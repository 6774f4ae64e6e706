// Takes the controller lock of a manifest directory the way `kvmctl controller` does
// (acquireLock), prints "held" or "refused: <message>", and holds it until stdin closes.
import { acquireLock } from "../../../src/cli/commands/controller.js";

const [dir, dataDir] = process.argv.slice(2) as [string, string];
try {
  const release = await acquireLock(dir, dataDir);
  process.stdout.write("held\n");
  process.stdin.resume();
  process.stdin.on("end", () => void release().then(() => process.exit(0)));
} catch (error) {
  // Exit once the line is out: stdout to a pipe is asynchronous, and exit() would drop it.
  process.stdout.write(`refused: ${(error as Error).message}\n`, () => process.exit(3));
}

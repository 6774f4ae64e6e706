// Reads a manifest directory in a child process (run as an unprivileged user by the
// permission tests, since root can read anything) and prints the formatted problems as JSON.
import { formatProblem, ManifestStore } from "../../../src/store/index.js";

const store = new ManifestStore({ dir: process.argv[2]!, diskCache: false });
const snapshot = await store.read();
process.stdout.write(
  JSON.stringify({
    objects: [...snapshot.objects.keys()],
    problems: snapshot.problems.map(formatProblem),
    unreadable: Object.fromEntries([...snapshot.unreadableFiles].map(([file, u]) => [file, u.lastKnownKeys])),
  }),
);

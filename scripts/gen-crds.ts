// `npm run gen:crds`: writes crds/ from the zod schemas (see scripts/crds.ts).
import fs from "node:fs";
import path from "node:path";
import { renderCrdFiles } from "./crds.js";

const dir = path.resolve("crds");
fs.mkdirSync(dir, { recursive: true });
for (const [name, text] of renderCrdFiles()) {
  fs.writeFileSync(path.join(dir, name), text);
  process.stdout.write(`crds/${name}\n`);
}

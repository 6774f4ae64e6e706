// qemu-img as the ImageTool port runs it (src/adapters/qemu-img.ts), on real image files: the
// format and size, and the other files an image would make qemu-img and QEMU read (a backing
// file, a qcow2 external data file), which the VM controller refuses.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { QemuImg } from "../../../src/adapters/qemu-img.js";
import { tempDir } from "../store/helpers.js";

const qemuImg = (...args: string[]) => execFileSync("qemu-img", args, { stdio: "pipe" });

test("qemu-img info: format, virtual size, and a backing or data file when the image has one", async () => {
  const dir = await tempDir("kvmctl-qemu-img-");
  const at = (name: string) => path.join(dir, name);
  qemuImg("create", "-f", "raw", at("base.raw"), "1M");
  qemuImg("create", "-f", "qcow2", at("plain.qcow2"), "2M");
  qemuImg("create", "-f", "qcow2", "-b", at("base.raw"), "-F", "raw", at("overlay.qcow2"));
  qemuImg("create", "-f", "qcow2", "-o", `data_file=${at("data.raw")}`, at("external.qcow2"), "1M");
  const tool = new QemuImg();
  assert.deepEqual(await tool.info(at("base.raw")), { format: "raw", virtualSize: 1024 * 1024 });
  assert.deepEqual(await tool.info(at("plain.qcow2")), { format: "qcow2", virtualSize: 2 * 1024 * 1024 });
  assert.deepEqual(await tool.info(at("overlay.qcow2")), { format: "qcow2", virtualSize: 1024 * 1024, backingFile: at("base.raw") });
  assert.equal((await tool.info(at("external.qcow2"))).backingFile, at("data.raw"));
});

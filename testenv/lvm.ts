// A small loop-backed LVM volume group, so logical StoragePools are tested for real.
import fs from "node:fs";
import path from "node:path";
import { STATE_DIR, TEST_VG } from "./config.js";
import { run } from "./run.js";

const BACKING_FILE = path.join(STATE_DIR, `${TEST_VG}.img`);
const SIZE = "2G";

async function vgExists(): Promise<boolean> {
  const result = await run("vgs", ["--noheadings", "-o", "vg_name", TEST_VG], { quiet: true, allowFailure: true });
  return result.exitCode === 0 && result.stdout.trim() === TEST_VG;
}

async function loopDeviceFor(file: string): Promise<string | undefined> {
  const result = await run("losetup", ["-j", file, "-O", "NAME", "-n"], { quiet: true, allowFailure: true });
  return result.stdout.trim().split("\n")[0] || undefined;
}

export async function ensureTestVolumeGroup(): Promise<void> {
  if (await vgExists()) return;
  fs.mkdirSync(STATE_DIR, { recursive: true });
  if (!fs.existsSync(BACKING_FILE)) await run("truncate", ["-s", SIZE, BACKING_FILE]);
  const device = (await loopDeviceFor(BACKING_FILE)) ?? (await run("losetup", ["--find", "--show", BACKING_FILE])).stdout.trim();
  // The file may hold an old PV from a previous run whose loop device went away.
  const pv = await run("pvs", ["--noheadings", device], { quiet: true, allowFailure: true });
  if (pv.exitCode !== 0) await run("pvcreate", ["-y", device]);
  await run("vgscan", [], { quiet: true, allowFailure: true });
  if (!(await vgExists())) await run("vgcreate", [TEST_VG, device]);
}

export async function removeTestVolumeGroup(): Promise<void> {
  if (await vgExists()) await run("vgremove", ["-f", TEST_VG]);
  const device = await loopDeviceFor(BACKING_FILE);
  if (device) {
    await run("pvremove", ["-y", device], { allowFailure: true });
    await run("losetup", ["-d", device]);
  }
  fs.rmSync(BACKING_FILE, { force: true });
}

// Removes what tests leave behind: libvirt objects whose names carry the test prefix,
// and kvmctl's nftables table inside the namespace. Nothing else is touched.
import { LIBVIRT_URI, TEST_PREFIX } from "./config.js";
import { runInNetns } from "./run.js";

async function virsh(args: string[]): Promise<{ stdout: string; exitCode: number }> {
  return runInNetns("virsh", ["-q", "-c", LIBVIRT_URI, ...args], { quiet: true, allowFailure: true, timeoutMs: 60_000 });
}

async function testNames(listArgs: string[]): Promise<string[]> {
  const { stdout } = await virsh(listArgs);
  return stdout
    .split("\n")
    .map((s) => s.trim())
    .filter((name) => name.startsWith(TEST_PREFIX));
}

export async function sweep(): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await testNames(["list", "--all", "--name"])) {
    await virsh(["destroy", name]);
    await virsh(["undefine", name, "--nvram", "--managed-save", "--snapshots-metadata", "--checkpoints-metadata"]);
    removed.push(`domain/${name}`);
  }
  for (const name of await testNames(["net-list", "--all", "--name"])) {
    await virsh(["net-destroy", name]);
    await virsh(["net-undefine", name]);
    removed.push(`network/${name}`);
  }
  for (const name of await testNames(["pool-list", "--all", "--name"])) {
    await virsh(["pool-start", name]);
    for (const vol of (await virsh(["vol-list", name, "--name"])).stdout.split("\n").map((s) => s.trim()).filter(Boolean)) {
      await virsh(["vol-delete", vol, "--pool", name]);
    }
    // No pool-delete: for a logical pool it would remove the shared test volume group.
    await virsh(["pool-destroy", name]);
    await virsh(["pool-undefine", name]);
    removed.push(`pool/${name}`);
  }
  const table = await runInNetns("nft", ["list", "table", "inet", "kvmctl"], { quiet: true, allowFailure: true });
  if (table.exitCode === 0) {
    await runInNetns("nft", ["delete", "table", "inet", "kvmctl"], { quiet: true, allowFailure: true });
    removed.push("nftables/inet kvmctl");
  }
  return removed;
}

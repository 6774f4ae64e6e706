// Removes what tests leave behind: libvirt objects whose names carry the test prefix, and
// kvmctl's nftables tables and iptables chains inside the namespace. Nothing else is touched.
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
  // Every controller instance's table (inet kvmctl-<instance>) and the one from before instances.
  const tables = await runInNetns("nft", ["list", "tables", "inet"], { quiet: true, allowFailure: true });
  for (const name of tables.stdout.split("\n").map((l) => /^table inet (kvmctl(?:-[a-z0-9-]+)?)$/.exec(l.trim())?.[1]).filter((n): n is string => !!n)) {
    await runInNetns("nft", ["delete", "table", "inet", name], { quiet: true, allowFailure: true });
    removed.push(`nftables/inet ${name}`);
  }
  // iptables chains KVMCTL-* (a test of the iptables backend that died): jumps first, then the chains.
  for (const [save, restore, tablesOf] of [["iptables-save", "iptables-restore", ["nat", "filter"]], ["ip6tables-save", "ip6tables-restore", ["filter"]]] as const) {
    for (const table of tablesOf) {
      const saved = await runInNetns(save, ["-t", table], { quiet: true, allowFailure: true });
      const chains = saved.stdout.split("\n").flatMap((l) => /^:(KVMCTL-\S+)/.exec(l)?.slice(1) ?? []);
      if (!chains.length) continue;
      const jumps = saved.stdout.split("\n").filter((l) => /^-A \S+ -j KVMCTL-\S+$/.test(l)).map((l) => l.replace(/^-A/, "-D"));
      const input = [`*${table}`, ...jumps, ...chains.flatMap((c) => [`:${c} - [0:0]`, `-X ${c}`]), "COMMIT", ""].join("\n");
      await runInNetns(restore, ["--noflush"], { quiet: true, allowFailure: true, input });
      removed.push(...chains.map((c) => `${save.replace("-save", "")}/${table}/${c}`));
    }
  }
  return removed;
}

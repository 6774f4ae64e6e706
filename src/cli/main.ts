#!/usr/bin/env node
// kvmctl's entry point. Only commander is loaded up front; each command's module (and the
// store, yaml, zod behind it) is imported when that command runs, so `--help` stays fast.
import { Command, CommanderError, Option } from "@commander-js/extra-typings";
import { kindAliasesText, kindChoicesText } from "../api/kind-names.js";
import { resolveContext, type CliContext } from "./context.js";
import { CliError, EXIT_FAILURE, EXIT_USAGE, ExitCode } from "./errors.js";

const VERSION = "0.1.0";

function buildProgram(): Command<[], { dir?: string; connect?: string; statusDir?: string }> {
  const program = new Command()
    .name("kvmctl")
    .description("Desired state for a KVM host as YAML manifests, reconciled like Kubernetes.")
    .version(VERSION)
    .option("--dir <dir>", "manifest directory (env KVMCTL_DIR, default ./state)")
    .option("--connect <uri>", "libvirt URI (env KVMCTL_CONNECT, default qemu:///system)")
    .option("--status-dir <dir>", "write and read status here instead of in the manifests (env KVMCTL_STATUS_DIR)")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();

  const context = (): CliContext => resolveContext(program.opts());
  const timeout = () => new Option("--timeout <duration>", "how long --wait waits").default("120s");

  program
    .command("apply")
    .description("validate manifests, then create or update them in the manifest directory")
    .option("-f, --filename <path...>", "file, directory or - for stdin")
    .option("--dry-run", "show what would change, write nothing")
    .option("--wait", "wait until every applied object is Ready")
    .addOption(timeout())
    .action(async (options) => (await import("./commands/apply.js")).runApply(context(), options));

  program
    .command("get")
    .description(`list objects: ${kindChoicesText()}, or all`)
    .argument("<kind>", `${kindAliasesText()}, all`)
    .argument("[names...]", "object names")
    .addOption(new Option("-o, --output <format>", "table|wide|yaml|json|name").default("table"))
    .option("-w, --watch", "after listing, print a line (-o json|yaml: a document) per change, a deleted object's last state once more, until interrupted")
    .action(async (kind, names, options) => (await import("./commands/get.js")).runGet(context(), kind, names, options));

  program
    .command("describe")
    .description("show an object's spec, status, conditions and recent events")
    .argument("<kind>")
    .argument("<names...>")
    .action(async (kind, names) => (await import("./commands/describe.js")).runDescribe(context(), kind, names));

  program
    .command("events")
    .description("list recorded events like kubectl events: every object's, a kind's, or one object's; -w follows new ones")
    .argument("[target...]", "KIND/NAME, KIND NAME, or KIND")
    .option("-w, --watch", "after listing, print new and updated events until interrupted")
    .action(async (target, options) => (await import("./commands/events.js")).runEvents(context(), target, options));

  program
    .command("delete")
    .description("remove objects from the manifest directory; the controller prunes them")
    .argument("[targets...]", "KIND NAME... or KIND/NAME...")
    .option("-f, --filename <path...>", "delete the objects in these files")
    .option("--wait", "wait until the controller has removed them from libvirt")
    .option("--ignore-not-found", "succeed when an object does not exist")
    .option("--force", "delete a Network or StoragePool even while VM manifests use it")
    .addOption(timeout())
    .action(async (targets, options) => (await import("./commands/delete.js")).runDelete(context(), targets, options));

  program
    .command("diff")
    .description("show what apply would change (exit 0: none, 1: changes, >1: error)")
    .option("-f, --filename <path...>", "file, directory or - for stdin")
    .option("--no-live", "compare with the manifest directory only, not with libvirt")
    .action(async (options) => (await import("./commands/diff.js")).runDiff(context(), options));

  program
    .command("wait")
    .description("wait for a condition: wait vm/web1 --for=condition=Ready --timeout=120s")
    .argument("<targets...>", "KIND/NAME... or KIND NAME")
    .requiredOption("--for <condition>", "condition=NAME[=True|False] or delete")
    .option("--timeout <duration>", "give up after this long", "30s")
    .action(async (targets, options) => (await import("./commands/wait.js")).runWait(context(), targets, options));

  program
    .command("controller")
    .description("run the reconciler until SIGTERM (what the systemd service runs)")
    .option("--once", "one full pass, then exit (non-zero if anything is not Ready)")
    .addOption(new Option("--default-domain-type <type>", "domain type for VMs that set none").choices(["kvm", "qemu"] as const))
    .option("--concurrency <n>", "objects reconciled in parallel", "4")
    .option("--resync <duration>", "full re-check period", "5m")
    .option("--firewall-backend <name>", "auto (nftables if it works, else iptables), nftables or iptables", "auto")
    .option("--firewall-check <duration>", "how often the firewall is compared with what it should hold", "5s")
    .option("--instance <name>", "this controller instance's name (default: the id kept in DIR/.kvmctl/instance)")
    .option("--allow-empty", "prune everything when the manifest directory holds no objects (else only what `kvmctl delete` removed)")
    .option("--settle <duration>", "quiet time of the manifest directory before a deletion is acted on", "2s")
    .option("--rescan <duration>", "full re-read of the manifest directory without file events (safety net)", "10s")
    .option("--reserved-host-ports <ports>", "host ports no Network port forward may take, comma-separated (`none`: only those the host listens on)", "22")
    .option(
      "--allow-host-path <use=dir>",
      "let manifests use host paths under DIR for USE: pool, device, image, kernel or secret (repeatable; added to the defaults, `none` drops them)",
      (value: string, previous: string[]) => [...previous, value],
      [] as string[],
    )
    .addOption(new Option("--drift <handling>", "repair drift, or only report it (Drifted condition, event, metric; nothing changed); per object: the annotation kvmctl.dev/drift").choices(["repair", "report"] as const).default("repair" as const))
    .option("--git-pull <interval>", "pull the git checkout holding the manifest directory on this interval (and on SIGHUP), applying each revision as one snapshot")
    .option("--metrics-address <host:port>", "serve Prometheus /metrics, /healthz, /readyz and the status page / here (0: off; default 127.0.0.1:9630, skipped with a warning when taken)")
    .option("--log-level <level>", "pino log level", "info")
    .option("--console-log-dir <dir>", "where serial console logs go (default /var/log/kvmctl/console)")
    .option("--seed-dir <dir>", "where cloud-init seed media are built, <dir>/<instance>/<vm>/ (default /var/lib/kvmctl/seeds, or $KVMCTL_SEED_DIR)")
    .option("--download-dir <dir>", "where base images from a URL (disks from.url) are downloaded before their import into a pool, in a directory of this instance below it (default /var/lib/kvmctl/downloads, or $KVMCTL_DOWNLOAD_DIR)")
    .action(async (options) => (await import("./commands/controller.js")).runController(context(), options));

  program
    .command("ssh")
    .description("SSH into a VM through its forwarded port: with its pinned host key (cloud-init VMs), else trusting the first key seen")
    .argument("<name>")
    .argument("[command...]")
    .option("-i, --identity <file>", "private key")
    .option("-l, --login <user>", "user (default: the VM's spec.cloudInit.sshUser, else root)")
    .action(async (name, command, options) => (await import("./commands/ssh.js")).runSsh(context(), name, command, options));

  program
    .command("ssh-config")
    .description("print OpenSSH config blocks for VMs (all with an SSH endpoint, or NAME...), for plain ssh, scp and Ansible")
    .argument("[names...]")
    .option("-i, --identity <file>", "private key (IdentityFile)")
    .option("-l, --login <user>", "user (default: each VM's spec.cloudInit.sshUser, else root)")
    .action(async (names, options) => (await import("./commands/ssh-config.js")).runSshConfig(context(), names, options));

  program
    .command("pull")
    .description("update the git checkout holding the manifest directory from its upstream (fast-forward, or git's configured merge), status blocks set aside and put back; the running controller does it when there is one")
    .option("--timeout <duration>", "how long to wait for the running controller's pull", "2m")
    .action(async (options) => (await import("./commands/pull.js")).runPull(context(), options));

  program
    .command("reconcile")
    .description("ask the running controller to reconcile objects now (KIND/NAME...), or to pull the git checkout and look at everything (--pull)")
    .argument("[targets...]", "KIND/NAME... or KIND NAME")
    .option("--pull", "pull the checkout (like SIGHUP to the controller)")
    .option("--timeout <duration>", "how long to wait for the controller", "2m")
    .action(async (targets, options) => (await import("./commands/pull.js")).runReconcile(context(), targets, options));

  program
    .command("suspend")
    .description("pause objects on this host: the controller leaves them alone until resume (from git: the annotation kvmctl.dev/reconcile: disabled)")
    .argument("<targets...>", "KIND/NAME... or KIND NAME")
    .action(async (targets) => (await import("./commands/suspend.js")).runSuspend(context(), targets, true));

  program
    .command("resume")
    .description("let the controller reconcile suspended objects again (at once)")
    .argument("<targets...>", "KIND/NAME... or KIND NAME")
    .action(async (targets) => (await import("./commands/suspend.js")).runSuspend(context(), targets, false));

  program
    .command("git-setup")
    .description("make status blocks invisible to git in the checkout holding the manifest directory (a clean filter)")
    .action(async () => (await import("./commands/git.js")).runGitSetup(context()));

  program
    .command("git-push-to-checkout", { hidden: true })
    .description("git's push-to-checkout hook (kvmctl git-setup): the working tree moved to COMMIT, status set aside and put back")
    .argument("<commit>")
    .action(async (commit) => (await import("./commands/git.js")).runPushToCheckout(context(), commit));

  program
    .command("git-clean", { hidden: true })
    .description("git's clean filter: a manifest on stdin, without its status blocks, on stdout")
    .action(async () => (await import("./commands/git.js")).runGitClean());

  program
    .command("console")
    .description("attach to a VM's serial console (virsh console)")
    .argument("<name>")
    .action(async (name) => (await import("./commands/ssh.js")).runConsole(context(), name));

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof ExitCode) return error.exitCode;
    if (error instanceof CommanderError) {
      // Help and version are "errors" to commander; everything else it reports is usage.
      return error.code === "commander.helpDisplayed" || error.code === "commander.version" || error.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    // A manifest kvmctl cannot edit safely: a user's matter, said plainly (no stack trace).
    if (error instanceof Error && error.name === "ManifestEditError") {
      process.stderr.write(`error: ${error.message}\n`);
      return EXIT_FAILURE;
    }
    if (error instanceof CliError) {
      process.stderr.write(`error: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return EXIT_FAILURE;
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});

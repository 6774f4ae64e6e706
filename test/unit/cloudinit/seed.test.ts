// The NoCloud seed as src/cloudinit/seed.ts renders it, read back the way cloud-init reads it:
// meta-data and user-data parsed as YAML 1.1 (PyYAML), a MIME multipart split into its parts.
// kvmctl's pinned host key and the authorized keys always reach the default user; the user's
// own #cloud-config is merged (as written), a script goes as a second MIME part, anything else
// is refused with a message that quotes none of it.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { cloudInit as cloudInitSchema } from "../../../src/api/virtualmachine.js";
import { CloudInitError, renderSeed, userDataKind, type SeedInput } from "../../../src/cloudinit/seed.js";
import type { HostKeyPair } from "../../../src/ports/index.js";
import { FakeHostKeys } from "../helpers/fake-ports.js";

const UUID = "5f0c2a8e-1b7d-5e3a-9c4f-0a1b2c3d4e5f";
const USER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIUserKey alice@laptop";
const OTHER_KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQOther bob@desk";

const hostKey = async (vm = "web"): Promise<HostKeyPair> => new FakeHostKeys().ensure(vm);

async function seedOf(cloudInit: Record<string, unknown>, extra: Partial<SeedInput> = {}) {
  return renderSeed({ name: "web", uuid: UUID, cloudInit: cloudInitSchema.parse(cloudInit), hostKey: await hostKey(), ...extra });
}

const yaml11 = (text: string) => parse(text, { version: "1.1" }) as Record<string, unknown>;
const file = (seed: { files: { name: string; content: string }[] }, name: string) => seed.files.find((f) => f.name === name)?.content;

/** The parts of a MIME multipart, decoded (what Python's email module gives cloud-init). */
function mimeParts(text: string): { type: string; body: string }[] {
  const [head, ...rest] = text.split("\n\n");
  const boundary = /boundary="([^"]+)"/.exec(head!)?.[1];
  assert.ok(boundary, "a multipart with a boundary");
  assert.match(head!, /^Content-Type: multipart\/mixed;/);
  const body = rest.join("\n\n");
  const chunks = body.split(`--${boundary}`);
  assert.equal(chunks.at(-1)?.trim(), "--", "the closing boundary ends it");
  return chunks.slice(1, -1).map((chunk) => {
    const [headers, ...content] = chunk.replace(/^\n/, "").split("\n\n");
    assert.match(headers!, /Content-Transfer-Encoding: base64/);
    return { type: /Content-Type: ([^;\n]+)/.exec(headers!)![1]!, body: Buffer.from(content.join("\n\n").replace(/\s+/g, ""), "base64").toString("utf8") };
  });
}

describe("meta-data", () => {
  it("instance-id iid-<uuid> and the VM's name as local-hostname; cloudInit.instanceId replaces the id", async () => {
    assert.deepEqual(yaml11(file(await seedOf({}), "meta-data")!), { "instance-id": `iid-${UUID}`, "local-hostname": "web" });
    const bumped = await seedOf({ instanceId: "web-2" });
    assert.equal(bumped.instanceId, "web-2");
    assert.deepEqual(yaml11(file(bumped, "meta-data")!), { "instance-id": "web-2", "local-hostname": "web" });
  });

  it("metaData adds keys and may set local-hostname; an instance-id there is refused", async () => {
    const seed = await seedOf({ metaData: "local-hostname: www\npublic-keys: []\n" });
    assert.deepEqual(yaml11(file(seed, "meta-data")!), { "instance-id": `iid-${UUID}`, "local-hostname": "www", "public-keys": [] });
    await assert.rejects(seedOf({ metaData: "instance-id: mine\n" }), (e: unknown) => e instanceof CloudInitError && e.field === "spec.cloudInit.metaData" && /set spec\.cloudInit\.instanceId instead/.test(e.message));
    await assert.rejects(seedOf({ metaData: "- a\n" }), /spec\.cloudInit\.metaData must be a YAML mapping/);
  });
});

describe("user-data", () => {
  it("without user-data: kvmctl's #cloud-config pins the host key and gives the keys to the default user", async () => {
    const key = await hostKey();
    const seed = await seedOf({ sshAuthorizedKeys: [USER_KEY, USER_KEY] });
    const userData = file(seed, "user-data")!;
    assert.equal(userData.split("\n")[0], "#cloud-config");
    assert.deepEqual(yaml11(userData), {
      ssh_authorized_keys: [USER_KEY],
      ssh_keys: { ed25519_private: key.privateKey, ed25519_public: key.publicKey.trim() },
      ssh_genkeytypes: ["ed25519"],
      ssh_deletekeys: true,
    });
    assert.deepEqual(seed.files.map((f) => f.name), ["meta-data", "user-data"]);
    assert.deepEqual([seed.medium, seed.format], ["cdrom", "iso"]);
  });

  it("the user's #cloud-config is merged as cloud-init reads it (YAML 1.1), their keys first, comments kept", async () => {
    const userData = [
      "#cloud-config",
      "# provisioned by hand",
      "packages: [curl]",
      "users:",
      "  - default",
      "  - name: ops",
      "    ssh_authorized_keys: [\"" + OTHER_KEY + "\"]",
      "write_files:",
      "  - path: /etc/marker",
      "    permissions: 0644",
      "    content: hello",
      "package_upgrade: yes",
      "ssh_authorized_keys:",
      "  - " + OTHER_KEY,
      "ssh_genkeytypes: [ed25519]",
      "",
    ].join("\n");
    const rendered = file(await seedOf({ userData, sshAuthorizedKeys: [USER_KEY, OTHER_KEY] }), "user-data")!;
    assert.equal(rendered.split("\n")[0], "#cloud-config");
    assert.ok(rendered.includes("# provisioned by hand"), "the user's comment stays");
    const config = yaml11(rendered);
    assert.deepEqual(config.packages, ["curl"]);
    assert.deepEqual(config.users, ["default", { name: "ops", ssh_authorized_keys: [OTHER_KEY] }]);
    // PyYAML reads 0644 as octal (420) and yes as true: the merge did not change what they mean.
    assert.deepEqual(config.write_files, [{ path: "/etc/marker", permissions: 0o644, content: "hello" }]);
    assert.equal(config.package_upgrade, true);
    assert.deepEqual(config.ssh_authorized_keys, [OTHER_KEY, USER_KEY]);
    assert.deepEqual(config.ssh_genkeytypes, ["ed25519"]);
    assert.equal(config.ssh_deletekeys, true);
    assert.equal((config.ssh_keys as { ed25519_public: string }).ed25519_public, (await hostKey()).publicKey.trim());
  });

  it("an empty #cloud-config, and user-data from a secret file (passed in by the caller)", async () => {
    assert.deepEqual(Object.keys(yaml11(file(await seedOf({ userData: "#cloud-config\n" }), "user-data")!)), ["ssh_keys", "ssh_genkeytypes", "ssh_deletekeys"]);
    const seed = await seedOf({ userDataSecretFile: "/etc/kvmctl/web.user-data" }, { userDataFromFile: "#cloud-config\nchpasswd: {expire: false}\npassword: hunter2\n" });
    assert.equal(yaml11(file(seed, "user-data")!).password, "hunter2");
    await assert.rejects(seedOf({ userDataSecretFile: "/etc/kvmctl/web.user-data" }), /its text must be passed as userDataFromFile/);
  });

  it("what would unpin the host key or lose the authorized keys is refused", async () => {
    const refused: [string, RegExp][] = [
      ["#cloud-config\nssh_keys: {rsa_private: x}\n", /sets ssh_keys: kvmctl pins the VM's SSH host key itself/],
      ["#cloud-config\nssh_genkeytypes: [rsa, ed25519]\n", /sets ssh_genkeytypes to something other than \["ed25519"\]/],
      ["#cloud-config\nssh_deletekeys: false\n", /sets ssh_deletekeys to something other than true/],
      ["#cloud-config\nusers: [{name: ops}]\n", /users list without "default"/],
      ["#cloud-config\nssh_authorized_keys: notalist\n", /ssh_authorized_keys must be a list of strings/],
      ["#cloud-config\nbase: &b {ssh_keys: {}}\n<<: *b\n", /sets ssh_keys/],
    ];
    for (const [userData, message] of refused) {
      await assert.rejects(seedOf({ userData, sshAuthorizedKeys: [USER_KEY] }), (e: unknown) => e instanceof CloudInitError && e.field === "spec.cloudInit.userData" && message.test(e.message), userData);
    }
    // Without sshAuthorizedKeys a users list without default is the user's business.
    await seedOf({ userData: "#cloud-config\nusers: [{name: ops}]\n" });
  });

  it("a script goes as the second part of a MIME multipart, after kvmctl's #cloud-config", async () => {
    const script = "#!/bin/sh\necho provisioned > /etc/marker\n--not-a-boundary\n";
    const seed = await seedOf({ userData: script, sshAuthorizedKeys: [USER_KEY] });
    const parts = mimeParts(file(seed, "user-data")!);
    assert.deepEqual(parts.map((p) => p.type), ["text/cloud-config", "text/x-shellscript"]);
    assert.equal(parts[0]!.body.split("\n")[0], "#cloud-config");
    const config = yaml11(parts[0]!.body);
    assert.deepEqual(config.ssh_authorized_keys, [USER_KEY]);
    assert.ok(config.ssh_keys);
    assert.equal(parts[1]!.body, script);
  });

  it("other user-data formats are refused, naming the format, never quoting the content", async () => {
    const secret = "s3cr3t-marker";
    for (const userData of [
      `Content-Type: multipart/mixed; boundary="x"\n\n--x\n${secret}\n--x--\n`,
      `#include\nhttps://example.invalid/${secret}\n`,
      `#cloud-boothook\necho ${secret}\n`,
      `#cloud-config-archive\n- ${secret}\n`,
      `## template: jinja\n#cloud-config\nx: ${secret}\n`,
      `${secret}\n`,
    ]) {
      await assert.rejects(
        seedOf({ userDataSecretFile: "/etc/kvmctl/ud" }, { userDataFromFile: userData }),
        (e: unknown) => e instanceof CloudInitError && /is neither #cloud-config YAML nor a script starting with #!/.test(e.message) && !e.message.includes(secret),
        userData,
      );
    }
    await assert.rejects(
      seedOf({ userDataSecretFile: "/etc/kvmctl/ud" }, { userDataFromFile: `#cloud-config\npassword: ${secret}\npassword: again\n` }),
      (e: unknown) => e instanceof CloudInitError && /is not valid YAML \(DUPLICATE_KEY at line 3\)/.test(e.message) && !e.message.includes(secret),
    );
    await assert.rejects(seedOf({ userData: `#cloud-config\n- ${secret}\n` }), (e: unknown) => e instanceof Error && /must be a YAML mapping/.test(e.message) && !e.message.includes(secret));
  });

  it("userDataKind", () => {
    assert.equal(userDataKind(""), "none");
    assert.equal(userDataKind("  \n"), "none");
    assert.equal(userDataKind("#cloud-config\r\nx: 1\r\n"), "cloud-config");
    assert.equal(userDataKind("#cloud-config"), "cloud-config");
    assert.equal(userDataKind("#cloud-config-archive\n"), "unsupported");
    assert.equal(userDataKind("#!/usr/bin/env python3\n"), "script");
  });
});

describe("network-config, vendor-data and the seed's hash", () => {
  it("network-config (a YAML mapping) and vendor-data are copied as written", async () => {
    const networkConfig = "# static\nversion: 2\nethernets:\n  eth0: {dhcp4: true}\n";
    const seed = await seedOf({ networkConfig, vendorData: "#cloud-config\nruncmd: [true]\n" });
    assert.deepEqual(seed.files.map((f) => f.name), ["meta-data", "user-data", "network-config", "vendor-data"]);
    assert.equal(file(seed, "network-config"), networkConfig);
    assert.deepEqual(yaml11(file(seed, "vendor-data")!), { runcmd: [true] });
    await assert.rejects(seedOf({ networkConfig: "version: [2\n" }), /spec\.cloudInit\.networkConfig is not valid YAML/);
  });

  it("the hash changes exactly when an input of the medium does", async () => {
    const base = await seedOf({ userData: "#cloud-config\npackages: [curl]\n" });
    assert.equal((await seedOf({ userData: "#cloud-config\npackages: [curl]\n" })).hash, base.hash);
    const others = [
      await seedOf({ userData: "#cloud-config\npackages: [git]\n" }),
      await seedOf({ userData: "#cloud-config\npackages: [curl]\n", instanceId: "web-2" }),
      await seedOf({ userData: "#cloud-config\npackages: [curl]\n", seedMedium: "disk", seedFormat: "vfat" }),
      await seedOf({ userData: "#cloud-config\npackages: [curl]\n", sshAuthorizedKeys: [USER_KEY] }),
      await seedOf({ userData: "#cloud-config\npackages: [curl]\n", vendorData: "" }),
      await seedOf({ userData: "#cloud-config\npackages: [curl]\n" }, { hostKey: await hostKey("other") }),
    ];
    for (const other of others) assert.notEqual(other.hash, base.hash);
    assert.equal(new Set(others.map((o) => o.hash)).size, others.length);
    assert.match(base.hash, /^[0-9a-f]{64}$/);
    // The medium (cdrom or disk) is not in the image: an ISO moved from a CD-ROM to a disk is the same file.
    assert.equal((await seedOf({ userData: "#cloud-config\npackages: [curl]\n", seedMedium: "disk" })).hash, base.hash);
  });

  it("a malformed host key is refused without quoting it", async () => {
    const bad = { publicKey: "ssh-ed25519 AAAA kvmctl-web\n", privateKey: "not-a-key-secret" };
    await assert.rejects(seedOf({}, { hostKey: bad }), (e: unknown) => e instanceof Error && /private half is not an OpenSSH private key/.test(e.message) && !e.message.includes("not-a-key-secret"));
  });
});

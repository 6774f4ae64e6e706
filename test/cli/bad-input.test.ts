// Bad input through the real CLI: each case exits 1, names file, document, line:column and
// field, and leaves the manifest directory byte-for-byte as it was.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { contents, kvmctl, tempDir } from "./helpers.js";

const VALID = `apiVersion: kvmctl.dev/v1alpha1
kind: VirtualMachine
metadata:
  name: existing
spec:
  cpus: 1
  memory: 512Mi
`;

function vm(name: string, specLines: string): string {
  return `apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata:\n  name: ${JSON.stringify(name)}\nspec:\n${specLines}`;
}

let root = "";
let state = "";
before(async () => {
  root = tempDir("bad-input");
  state = path.join(root, "state");
  fs.mkdirSync(state);
  fs.writeFileSync(path.join(root, "existing.yaml"), VALID);
  const applied = await kvmctl(["--dir", state, "apply", "-f", path.join(root, "existing.yaml")]);
  assert.equal(applied.exitCode, 0, applied.stderr);
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

interface Case {
  name: string;
  /** Writes the input under `dir` and returns the path to pass to -f. */
  input(dir: string): string;
  /** Each must appear in stderr. */
  expect: (string | RegExp)[];
}

const write = (dir: string, file: string, text: string | Buffer) => {
  const full = path.join(dir, file);
  fs.writeFileSync(full, text);
  return full;
};

const cases: Case[] = [
  {
    name: "invalid YAML",
    input: (d) => write(d, "broken.yaml", `${VALID}---\napiVersion: kvmctl.dev/v1alpha1\nkind: [VirtualMachine\n`),
    expect: ["broken.yaml", "document 2", /line \d+:\d+/],
  },
  {
    name: "unknown kind",
    input: (d) => write(d, "kind.yaml", VALID.replace("kind: VirtualMachine", "kind: VirtualMachin")),
    expect: ["kind.yaml", "document 1", "line 2:7", "kind", "VirtualMachine"],
  },
  {
    name: "wrong apiVersion",
    input: (d) => write(d, "api.yaml", VALID.replace("kvmctl.dev/v1alpha1", "kvmctl.dev/v2")),
    expect: ["api.yaml", "document 1", "line 1:13", "apiVersion"],
  },
  {
    name: "missing name",
    input: (d) => write(d, "noname.yaml", "apiVersion: kvmctl.dev/v1alpha1\nkind: VirtualMachine\nmetadata: {}\nspec: {cpus: 1, memory: 1Gi}\n"),
    expect: ["noname.yaml", "document 1", /line 3:\d+/, "metadata.name"],
  },
  ...["Web_1", "../x", "a;b", "a".repeat(64)].map<Case>((name) => ({
    name: `invalid name ${name.length > 10 ? "of 64 characters" : name}`,
    input: (d) => write(d, "name.yaml", vm(name, "  cpus: 1\n  memory: 1Gi\n")),
    expect: ["name.yaml", "document 1", "line 4:9", "metadata.name"],
  })),
  {
    name: "unknown field cpu",
    input: (d) => write(d, "cpu.yaml", vm("web", "  cpu: 2\n  memory: 1Gi\n")),
    expect: ["cpu.yaml", "document 1", "line 6:3", "spec.cpu", '"cpus"'],
  },
  {
    name: "negative memory",
    input: (d) => write(d, "neg.yaml", vm("web", "  cpus: 1\n  memory: -1Gi\n")),
    expect: ["neg.yaml", "document 1", "line 7:11", "spec.memory"],
  },
  {
    name: "unitless memory",
    input: (d) => write(d, "unitless.yaml", vm("web", "  cpus: 1\n  memory: 1024\n")),
    expect: ["unitless.yaml", "document 1", "line 7:11", "spec.memory", "unit"],
  },
  {
    name: "ambiguous memory unit",
    input: (d) => write(d, "ambiguous.yaml", vm("web", "  cpus: 1\n  memory: 1G\n")),
    expect: ["ambiguous.yaml", "line 7:11", "spec.memory"],
  },
  {
    name: "a malformed network address (must not crash validation)",
    input: (d) => write(d, "net.yaml", "apiVersion: kvmctl.dev/v1alpha1\nkind: Network\nmetadata:\n  name: lan\nspec:\n  mode: nat\n  ipv4: {address: 10.1.0.300, prefix: 24}\n"),
    expect: ["net.yaml", "document 1", "line 7:19", "spec.ipv4.address"],
  },
  {
    name: "a duplicate name in the input",
    input: (d) => write(d, "dup.yaml", `${vm("web", "  cpus: 1\n  memory: 1Gi\n")}---\n${vm("web", "  cpus: 2\n  memory: 1Gi\n")}`),
    expect: ["dup.yaml", "document 2", /line \d+:\d+/, "metadata.name", "more than once"],
  },
  {
    name: "a file that is not UTF-8",
    input: (d) => write(d, "latin1.yaml", Buffer.from(vm("web", "  cpus: 1\n  memory: 1Gi\n# caf\xe9\n"), "latin1")),
    expect: ["latin1.yaml", "UTF-8"],
  },
  {
    name: "a 10 MB file",
    input: (d) => write(d, "huge.yaml", VALID + `# ${"x".repeat(10 * 1024 * 1024)}\n`),
    expect: ["huge.yaml", /over the .* limit/],
  },
  {
    name: "a symlink loop in the directory",
    input: (d) => {
      const dir = path.join(d, "loop");
      fs.mkdirSync(path.join(dir, "sub"), { recursive: true });
      fs.writeFileSync(path.join(dir, "sub", "vm.yaml"), vm("looped", "  cpus: 1\n  memory: 1Gi\n"));
      fs.symlinkSync("..", path.join(dir, "sub", "back"));
      return dir;
    },
    expect: ["loop", /symlink|loop/i],
  },
];

describe("apply rejects bad input, names where, and changes nothing", () => {
  for (const c of cases) {
    test(c.name, async () => {
      const inputDir = tempDir("input");
      try {
        const before = contents(state);
        const result = await kvmctl(["--dir", state, "apply", "-f", c.input(inputDir)]);
        assert.equal(result.exitCode, 1, `exit code (stderr: ${result.stderr})`);
        for (const expected of c.expect) {
          if (typeof expected === "string") assert.ok(result.stderr.includes(expected), `stderr lacks ${JSON.stringify(expected)}:\n${result.stderr}`);
          else assert.match(result.stderr, expected);
        }
        assert.equal(result.stdout, "", "nothing reported as applied");
        assert.deepEqual(contents(state), before, "the manifest directory changed");
      } finally {
        fs.rmSync(inputDir, { recursive: true, force: true });
      }
    });
  }

  test("a name that already exists in another file of the directory is reported on both", async () => {
    fs.writeFileSync(path.join(state, "hand-written.yaml"), VALID.replace("cpus: 1", "cpus: 3"));
    try {
      const result = await kvmctl(["--dir", state, "get", "vm"]);
      assert.equal(result.exitCode, 0);
      assert.match(result.stderr, /hand-written\.yaml: document 1, line 4:9: metadata\.name: .*virtualmachines\/existing\.yaml/);
      assert.match(result.stderr, /virtualmachines\/existing\.yaml: document 1, line 4:9: metadata\.name: .*hand-written\.yaml/);
      assert.match(result.stdout, /existing\s+False\s+Invalid/);
      const apply = await kvmctl(["--dir", state, "apply", "-f", path.join(root, "existing.yaml")]);
      assert.equal(apply.exitCode, 1);
      assert.match(apply.stderr, /defined more than once/);
    } finally {
      fs.rmSync(path.join(state, "hand-written.yaml"));
    }
  });
});

describe("usage errors exit 2", () => {
  for (const args of [["get"], ["get", "widgets"], ["frobnicate"], ["get", "vm", "-o", "xml"], ["wait", "vm/x", "--for=ready"]]) {
    test(args.join(" "), async () => {
      const result = await kvmctl(["--dir", state, ...args]);
      assert.equal(result.exitCode, 2, result.stderr);
      assert.notEqual(result.stderr, "");
    });
  }
});

describe("a bad --allow-host-path or --reserved-host-ports is a usage error, before the controller touches anything", () => {
  for (const [flag, value, message] of [
    ["--allow-host-path", "disk=/srv", /expected USE=DIR with USE one of pool, device, image, kernel, secret/],
    ["--allow-host-path", "pool=srv", /must be an absolute path/],
    ["--allow-host-path", "image=/", /allowing \/ would allow everything/],
    ["--reserved-host-ports", "22,ssh", /--reserved-host-ports: "ssh" is not a port/],
    ["--reserved-host-ports", "70000", /is not a port \(1-65535\)/],
  ] as const) {
    test(`${flag} ${value}`, async () => {
      const before = contents(state);
      const result = await kvmctl(["--dir", state, "controller", "--once", flag, value]);
      assert.equal(result.exitCode, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.deepEqual(contents(state), before);
    });
  }
});

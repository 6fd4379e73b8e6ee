// `--mount`, `--mount-add`, `--mount-rm` and `-u/--user`: Docker's parsing and error texts, the
// specs they make on create and update, and `service inspect --pretty`'s Mounts and User.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Command } from "commander";
import { buildProgram, commandPath } from "../../src/cli/program.js";
import { createSpec, parseMount, prettyService, updatedSpec } from "../../src/cli/service.js";
import { defaultServiceSpec } from "../../src/api/types.js";

test("--mount parses as Docker's does", () => {
  const cases: Array<[string, object]> = [
    [
      "type=bind,source=/a,target=/b,readonly",
      { type: "bind", source: "/a", target: "/b", readOnly: true },
    ],
    [
      "type=bind,src=/a,dst=/b,ro=true",
      { type: "bind", source: "/a", target: "/b", readOnly: true },
    ],
    [
      "src=data,destination=/d,ro=0",
      { type: "volume", source: "data", target: "/d", readOnly: false },
    ],
    ["type=tmpfs,target=/t,RO", { type: "tmpfs", source: "", target: "/t", readOnly: true }],
    [
      "Type=BIND,Source=/a,Target=/b",
      { type: "bind", source: "/a", target: "/b", readOnly: false },
    ],
    ["target=/anon", { type: "volume", source: "", target: "/anon", readOnly: false }],
    [
      "type=bind,source=./here,target=/h",
      { type: "bind", source: `${process.cwd()}/here`, target: "/h", readOnly: false },
    ],
  ];
  for (const [v, want] of cases) assert.deepEqual(parseMount(v), want, v);
  const errors: Array<[string, string]> = [
    ["type=bind,x,target=/b", "invalid field 'x' must be a key=value pair"],
    ["type=bind,source=/a", "target is required"],
    ["type=bind,target=/b,ro=maybe", "invalid value for ro: maybe"],
    ["type=bind,target=/b,color=red", "unexpected key 'color' in 'color=red'"],
    ["type=npipe,target=/b", "invalid mount type: npipe"],
  ];
  for (const [v, why] of errors) {
    assert.throws(() => parseMount(v), {
      message: `invalid argument ${JSON.stringify(v)} for "--mount" flag: ${why}`,
    });
  }
});

test("create takes --mount and --user; update adds, replaces and removes mounts by target", () => {
  const spec = createSpec(
    { mount: ["type=bind,src=/a,dst=/a", "src=v,dst=/v"], user: "nobody" },
    ["true"],
    "web",
  );
  assert.equal(spec.user, "nobody");
  assert.deepEqual(spec.mounts, [
    { type: "bind", source: "/a", target: "/a", readOnly: false },
    { type: "volume", source: "v", target: "/v", readOnly: false },
  ]);
  assert.equal(createSpec({}, ["true"], "web").mounts, undefined);

  const up = updatedSpec(spec, { mountRm: ["/a"], mountAdd: ["src=w,dst=/v,ro", "dst=/n"] }, []);
  assert.deepEqual(up.mounts, [
    { type: "volume", source: "w", target: "/v", readOnly: true },
    { type: "volume", source: "", target: "/n", readOnly: false },
  ]);
  const none = updatedSpec(up, { mountRm: ["/v", "/n"], user: "1000:1000" }, []);
  assert.equal(none.mounts, undefined);
  assert.equal(none.user, "1000:1000");
  assert.throws(() => updatedSpec(spec, { mountAdd: ["bad"] }, []), {
    message: `invalid argument "bad" for "--mount-add" flag: invalid field 'bad' must be a key=value pair`,
  });
});

test("the flags reach the commands: --mount, -u on create; --mount-add, --mount-rm, --user on update", async () => {
  const parse = async (...argv: string[]) => {
    const { program } = buildProgram(argv);
    let got: { path: string; opts: Record<string, unknown> } | undefined;
    const capture = (cmd: Command) => {
      for (const c of cmd.commands) {
        if (c.commands.length > 0) capture(c);
        else
          c.action((...a: unknown[]) => {
            const self = a[a.length - 1] as Command;
            got = { path: commandPath(self), opts: self.opts() };
          });
      }
    };
    capture(program);
    await program.parseAsync(argv, { from: "user" });
    return got!;
  };
  const c = await parse(
    "service",
    "create",
    "--mount",
    "type=bind,src=/a,dst=/b",
    "--mount",
    "dst=/c",
    "-u",
    "nobody",
    "true",
  );
  assert.deepEqual(
    [c.opts["mount"], c.opts["user"]],
    [["type=bind,src=/a,dst=/b", "dst=/c"], "nobody"],
  );
  const u = await parse(
    "service",
    "update",
    "--mount-add",
    "dst=/x",
    "--mount-rm",
    "/y",
    "--user",
    "0:0",
    "web",
  );
  assert.deepEqual(
    [u.opts["mountAdd"], u.opts["mountRm"], u.opts["user"]],
    [["dst=/x"], ["/y"], "0:0"],
  );
});

test("inspect --pretty shows User and Mounts as Docker does", () => {
  const spec = {
    ...defaultServiceSpec("web"),
    command: ["run"],
    user: "nobody",
    mounts: [{ type: "bind" as const, source: "/a", target: "/b", readOnly: true }],
  };
  const text = prettyService(
    {
      id: "abc",
      spec,
      version: 1,
      previousSpec: null,
      createdAt: 0,
      updatedAt: 0,
      running: 1,
      desired: 1,
    },
    0,
  );
  assert.match(text, /\n User: nobody\n/);
  assert.match(
    text,
    /\nMounts:\n {2}Target = \/b\n {3}Source = \/a\n {3}ReadOnly = true\n {3}Type = bind(\n|$)/,
  );
  const plain = prettyService(
    {
      id: "abc",
      spec: { ...defaultServiceSpec("web"), command: ["run"] },
      version: 1,
      previousSpec: null,
      createdAt: 0,
      updatedAt: 0,
      running: 1,
      desired: 1,
    },
    0,
  );
  assert.doesNotMatch(plain, /Mounts:|User:/);
});

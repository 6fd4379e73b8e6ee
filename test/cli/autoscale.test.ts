// `--autoscale-*` on service create/update: the flags as commander gives them, the spec they make
// (a new policy's min 1, max required, a target required, "70%" percents, a target of 0 removed,
// --autoscale-off), `service inspect --pretty`'s Autoscale block, and one real daemon that stores
// the policy and shows it in `service inspect`.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Command } from "commander";
import { buildProgram, commandPath } from "../../src/cli/program.js";
import { createSpec, prettyService, updatedSpec } from "../../src/cli/service.js";
import { defaultServiceSpec, type Service } from "../../src/api/types.js";
import { startDaemon } from "../helpers/daemon.js";

test("create: the policy from the flags; the replicas start at min", () => {
  const spec = createSpec(
    {
      autoscaleMin: "2",
      autoscaleMax: "10",
      autoscaleCpu: "70%",
      autoscaleMemory: "80",
      autoscaleRps: "100",
      autoscaleStabilization: "2m",
    },
    ["true"],
    "web",
  );
  assert.deepEqual(spec.autoscale, {
    min: 2,
    max: 10,
    cpuPercent: 70,
    memoryPercent: 80,
    rps: 100,
    stabilizationMs: 120_000,
  });
  assert.deepEqual(spec.mode, { replicated: { replicas: 2 } });
  const given = createSpec(
    { replicas: "5", autoscaleMax: "8", autoscaleCpu: "50%" },
    ["true"],
    "web",
  );
  assert.deepEqual(given.autoscale, { min: 1, max: 8, cpuPercent: 50 });
  assert.deepEqual(given.mode, { replicated: { replicas: 5 } });
  assert.equal(createSpec({}, ["true"], "web").autoscale, undefined);
});

test("create: errors name the flag", () => {
  const bad: Array<[Record<string, string | boolean>, RegExp]> = [
    [{ autoscaleCpu: "70%" }, /--autoscale-max is required/],
    [
      { autoscaleMax: "4" },
      /needs a target: --autoscale-cpu, --autoscale-memory or --autoscale-rps/,
    ],
    [
      { autoscaleMax: "4", autoscaleCpu: "lots" },
      /"lots" for "--autoscale-cpu" flag: expected a percent like 70%/,
    ],
    [{ autoscaleMax: "4", autoscaleRps: "-3" }, /"-3" for "--autoscale-rps" flag/],
    [{ autoscaleMax: "0", autoscaleCpu: "70" }, /"0" for "--autoscale-max" flag: must be >= 1/],
    [{ autoscaleMax: "x", autoscaleCpu: "70" }, /"x" for "--autoscale-max" flag/],
    [
      { autoscaleMax: "4", autoscaleCpu: "70", autoscaleStabilization: "soon" },
      /--autoscale-stabilization/,
    ],
    [{ autoscaleMax: "4", autoscaleCpu: "70", mode: "global" }, /replicated mode/],
    [{ autoscaleOff: true }, /--autoscale-off can only be used with service update/],
  ];
  for (const [o, re] of bad) assert.throws(() => createSpec(o, ["true"], "web"), re);
});

test("update: only what is given changes; 0 removes a target; --autoscale-off removes the policy", () => {
  const cur = {
    ...defaultServiceSpec("web"),
    command: ["true"],
    autoscale: { min: 2, max: 10, cpuPercent: 70, stabilizationMs: 60_000 },
  };
  cur.mode = { replicated: { replicas: 3 } };
  const up = updatedSpec(cur, { autoscaleMax: "20", autoscaleRps: "50" }, []);
  assert.deepEqual(up.autoscale, {
    min: 2,
    max: 20,
    cpuPercent: 70,
    rps: 50,
    stabilizationMs: 60_000,
  });
  assert.deepEqual(up.mode, { replicated: { replicas: 3 } }, "update keeps the replicas");
  assert.deepEqual(updatedSpec(up, { autoscaleCpu: "0" }, []).autoscale, {
    min: 2,
    max: 20,
    rps: 50,
    stabilizationMs: 60_000,
  });
  assert.throws(() => updatedSpec(cur, { autoscaleCpu: "0%" }, []), /needs a target/);
  assert.equal(updatedSpec(cur, { autoscaleOff: true }, []).autoscale, undefined);
  assert.throws(
    () => updatedSpec(cur, { autoscaleOff: true, autoscaleMax: "3" }, []),
    /--autoscale-off conflicts with --autoscale-\* options/,
  );
  assert.deepEqual(updatedSpec(cur, {}, []).autoscale, cur.autoscale, "untouched without flags");
  // A service without a policy gets one on update (min 1 unless given).
  const plain = { ...defaultServiceSpec("web"), command: ["true"] };
  assert.deepEqual(updatedSpec(plain, { autoscaleMax: "4", autoscaleCpu: "60%" }, []).autoscale, {
    min: 1,
    max: 4,
    cpuPercent: 60,
  });
});

test("the flags reach the commands", async () => {
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
    "--autoscale-min",
    "1",
    "--autoscale-max",
    "5",
    "--autoscale-cpu",
    "70%",
    "--autoscale-memory",
    "80%",
    "--autoscale-rps",
    "100",
    "--autoscale-stabilization",
    "5m",
    "true",
  );
  assert.equal(c.path, "shoal service create");
  assert.deepEqual(
    {
      min: c.opts["autoscaleMin"],
      max: c.opts["autoscaleMax"],
      cpu: c.opts["autoscaleCpu"],
      memory: c.opts["autoscaleMemory"],
      rps: c.opts["autoscaleRps"],
      stabilization: c.opts["autoscaleStabilization"],
    },
    { min: "1", max: "5", cpu: "70%", memory: "80%", rps: "100", stabilization: "5m" },
  );
  const u = await parse("service", "update", "--autoscale-off", "web");
  assert.equal(u.path, "shoal service update");
  assert.equal(u.opts["autoscaleOff"], true);
});

test("inspect --pretty: the policy and the last decision", () => {
  const spec = {
    ...defaultServiceSpec("web"),
    command: ["true"],
    autoscale: { min: 1, max: 10, cpuPercent: 70, rps: 100 },
  };
  const s: Service & { running: number; desired: number } = {
    id: "abc",
    spec,
    version: 1,
    previousSpec: null,
    autoscaleStatus: {
      lastDecisionAt: 50_000,
      metric: "cpu",
      value: 95,
      target: 70,
      current: 2,
      desired: 3,
      reason: "cpu 95% above target 70%",
      lastScaleAt: 50_000,
    },
    createdAt: 0,
    updatedAt: 0,
    running: 2,
    desired: 3,
  };
  const text = prettyService(s, 60_000);
  assert.ok(
    text.includes(
      [
        "Autoscale:",
        " Min:\t\t1",
        " Max:\t\t10",
        " CPU:\t\t70%",
        " RPS:\t\t100",
        " Stabilization:\t5m0s",
        " Evaluation:\t15s",
        " Last Decision:\t10 seconds ago: 2 -> 3",
        " Reason:\tcpu 95% above target 70%",
        " Last Scale:\t10 seconds ago",
      ].join("\n"),
    ),
    text,
  );
  const { autoscale: _a, ...without } = spec;
  assert.ok(!prettyService({ ...s, spec: without }, 60_000).includes("Autoscale:"));
});

test("daemon: service create --autoscale-* stores the policy; inspect shows it", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const created = await d.cli(
    "service",
    "create",
    "--name",
    "auto",
    "-d",
    "--autoscale-min",
    "2",
    "--autoscale-max",
    "6",
    "--autoscale-cpu",
    "70%",
    "--autoscale-stabilization",
    "1m",
    "--",
    "sleep",
    "1000",
  );
  assert.equal(created.code, 0, created.stderr);
  const inspect = await d.cli("service", "inspect", "auto");
  assert.equal(inspect.code, 0, inspect.stderr);
  const [s] = JSON.parse(inspect.stdout) as Service[];
  assert.deepEqual(s!.spec.autoscale, { min: 2, max: 6, cpuPercent: 70, stabilizationMs: 60_000 });
  assert.deepEqual(s!.spec.mode, { replicated: { replicas: 2 } });
  const pretty = await d.cli("service", "inspect", "--pretty", "auto");
  assert.match(
    pretty.stdout,
    /Autoscale:\n Min:\t\t2\n Max:\t\t6\n CPU:\t\t70%\n Stabilization:\t1m0s/,
  );
  // The manager refuses a bad policy with the reason; --autoscale-off removes it.
  const bad = await d.cli("service", "update", "auto", "--autoscale-min", "9");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /min \(9\) must not be above max \(6\)/);
  const off = await d.cli("service", "update", "-d", "auto", "--autoscale-off");
  assert.equal(off.code, 0, off.stderr);
  const after = JSON.parse((await d.cli("service", "inspect", "auto")).stdout) as Service[];
  assert.equal(after[0]!.spec.autoscale, undefined);
  assert.equal(after[0]!.version, 1, "the policy alone replaces no task");
});

// Unit tests of argument parsing: the commander tree (which command, which flags, which words),
// Docker's wording of parse errors, and the specs and values the flags turn into.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Command } from "commander";
import {
  buildProgram,
  commandPath,
  CommandFailure,
  splitUpdateArgs,
} from "../../src/cli/program.js";
import { parseErrorMessage } from "../../src/cli/main.js";
import {
  createSpec,
  updatedSpec,
  parseScaleArgs,
  parsePort,
  ErrorDigest,
} from "../../src/cli/service.js";
import { parseBytesFlag, parseDurationFlag, parseIntFlag } from "../../src/cli/args.js";
import { UsageError } from "../../src/cli/errors.js";
import { defaultServiceSpec, type Task } from "../../src/api/types.js";

interface Parsed {
  path: string;
  args: string[];
  opts: Record<string, unknown>;
}

/** Parses argv with every action replaced by one that records what it was given. */
async function parse(...argv: string[]): Promise<Parsed> {
  const { program } = buildProgram(argv);
  let got: Parsed | undefined;
  const capture = (cmd: Command) => {
    for (const c of cmd.commands) {
      if (c.commands.length > 0) capture(c);
      else
        c.action((...a: unknown[]) => {
          const self = a[a.length - 1] as Command;
          got = { path: commandPath(self), args: self.args, opts: self.opts() };
        });
    }
  };
  capture(program);
  await program.parseAsync(argv, { from: "user" });
  assert.ok(got, `no command ran for ${argv.join(" ")}`);
  return got;
}

/** The Docker-worded message of a parse error. */
async function parseError(...argv: string[]): Promise<string> {
  try {
    await parse(...argv);
  } catch (err) {
    if (err instanceof CommandFailure) return parseErrorMessage(err);
    throw err;
  }
  assert.fail(`no parse error for ${argv.join(" ")}`);
}

test("service create: flags before the command, the command's own flags after it", async () => {
  const p = await parse(
    "service",
    "create",
    "-dq",
    "--name",
    "web",
    "-e",
    "A=1",
    "--env=B=2",
    "-p",
    "8080:80",
    "--replicas=3",
    "node",
    "-e",
    "console.log(1)",
    "--name",
    "x",
  );
  assert.equal(p.path, "shoal service create");
  assert.deepEqual(p.args, ["node", "-e", "console.log(1)", "--name", "x"]);
  assert.deepEqual(p.opts, {
    detach: true,
    quiet: true,
    name: "web",
    env: ["A=1", "B=2"],
    publish: ["8080:80"],
    replicas: "3",
  });
  const dd = await parse("service", "create", "--name", "w", "--", "sh", "-c", "exit 1");
  assert.deepEqual(dd.args, ["sh", "-c", "exit 1"]);
});

test("service update: the service anywhere among the flags, a command only after --", async () => {
  const argv = [
    "service",
    "update",
    "web",
    "--env-add",
    "X=1",
    "--env-add",
    "Y=2",
    "--",
    "sh",
    "-c",
    "x",
  ];
  const p = await parse(...argv);
  assert.deepEqual(p.opts, { envAdd: ["X=1", "Y=2"] });
  assert.deepEqual(splitUpdateArgs(p.args, argv), { ref: "web", command: ["sh", "-c", "x"] });
  const q = ["service", "update", "--update-failure-action", "rollback", "flaky", "--", "sh"];
  assert.deepEqual(splitUpdateArgs((await parse(...q)).args, q), { ref: "flaky", command: ["sh"] });
  const extra = ["service", "update", "web", "sh"];
  assert.throws(
    () => splitUpdateArgs(["web", "sh"], extra),
    /"shoal service update" requires exactly 1 argument: SERVICE/,
  );
});

test("aliases, list flags, repeatable filters, --no-trunc", async () => {
  const ls = await parse(
    "service",
    "list",
    "-q",
    "--format",
    "{{.ID}}",
    "-f",
    "name=a",
    "--filter=mode=global",
  );
  assert.equal(ls.path, "shoal service ls");
  assert.deepEqual(ls.opts, { quiet: true, format: "{{.ID}}", filter: ["name=a", "mode=global"] });
  const ps = await parse("service", "ps", "--no-trunc", "a", "b");
  assert.deepEqual(ps.args, ["a", "b"]);
  assert.equal(ps.opts["trunc"], false);
  const nls = await parse("node", "ls", "-q");
  assert.deepEqual(nls.opts, { quiet: true });
  assert.equal((await parse("service", "rm", "x")).path, "shoal service rm");
  assert.equal((await parse("service", "remove", "x")).path, "shoal service rm");
});

test("daemon flags on init, join, daemon and up", async () => {
  const j = await parse(
    "join",
    "--token",
    "T",
    "--advertise-addr",
    "eth0",
    "--cpus",
    "2",
    "--memory",
    "1g",
    "[::1]:2377",
  );
  assert.deepEqual(j.args, ["[::1]:2377"]);
  assert.deepEqual(j.opts, { token: "T", advertiseAddr: "eth0", cpus: "2", memory: "1g" });
  const up = await parse("up", "--monitor-port", "0", "--nats-port", "-1", "-D");
  assert.deepEqual(up.opts, { monitorPort: "0", natsPort: "-1", debug: true });
  assert.equal(
    (await parse("swarm", "init", "--listen-addr", "127.0.0.1:0")).path,
    "shoal swarm init",
  );
});

test("nats-server gets its flags untouched, including -h and Go-style ones", async () => {
  const argv = [
    "-DV",
    "-p",
    "4222",
    "--http_port",
    "8222",
    "-routes",
    "nats://a:1",
    "-h",
    "--",
    "x",
  ];
  const p = await parse("nats-server", ...argv);
  assert.equal(p.path, "shoal nats-server");
  assert.deepEqual(p.args, argv);
});

test("parse errors in Docker's words, pointing at the command's help", async () => {
  assert.equal(
    await parseError("service", "create", "--bogus", "x"),
    "unknown flag: --bogus\nSee 'shoal service create --help'.",
  );
  assert.equal(
    await parseError("node", "ls", "--foo=1"),
    "unknown flag: --foo\nSee 'shoal node ls --help'.",
  );
  assert.equal(
    await parseError("service", "ls", "-x"),
    "unknown shorthand flag: 'x' in -x\nSee 'shoal service ls --help'.",
  );
  assert.equal(
    await parseError("service", "create", "--replicas"),
    "flag needs an argument: --replicas\nSee 'shoal service create --help'.",
  );
  assert.equal(
    await parseError("no-such-command"),
    'unknown command "no-such-command" for "shoal"\nSee \'shoal --help\'.',
  );
  assert.equal(
    await parseError("service", "bogus"),
    'unknown command "bogus" for "shoal service"\nSee \'shoal service --help\'.',
  );
  assert.match(
    await parseError("service", "ps"),
    /^"shoal service ps" requires at least 1 argument\.\nSee 'shoal service ps --help'\.\n\nUsage: {2}shoal service ps \[options\] <service\.\.\.>\n\nList the tasks/,
  );
  assert.match(
    await parseError("service", "logs"),
    /^"shoal service logs" requires exactly 1 argument\./,
  );
  assert.match(
    await parseError("service", "ls", "extra"),
    /^"shoal service ls" accepts no arguments\./,
  );
});

test("help and --version end the parse with exit code 0", async () => {
  for (const argv of [
    ["--help"],
    ["service", "create", "--help"],
    ["node", "ls", "-h"],
    ["-v"],
    ["help", "service"],
  ]) {
    const out = process.stdout.write;
    process.stdout.write = () => true; // commander prints the help
    try {
      await assert.rejects(
        parse(...argv),
        (e: unknown) => e instanceof CommandFailure && e.error.exitCode === 0,
      );
    } finally {
      process.stdout.write = out;
    }
  }
});

test("createSpec and updatedSpec: the flags in the spec", () => {
  const s = createSpec(
    {
      env: ["A=1"],
      label: ["tier=web"],
      publish: ["8080:80", "published=53,target=5353,protocol=udp,mode=host"],
      constraint: ["node.role==worker"],
      replicas: "3",
      restartDelay: "0s",
      limitMemory: "512m",
      reserveCpu: "0.5",
      updateOrder: "start-first",
      updateParallelism: "0",
      stopGracePeriod: "1m30s",
    },
    ["node", "app.js"],
    "web",
  );
  assert.equal(s.name, "web");
  assert.deepEqual(s.command, ["node", "app.js"]);
  assert.deepEqual(s.mode, { replicated: { replicas: 3 } });
  assert.deepEqual(s.env, { A: "1" });
  assert.deepEqual(s.labels, { tier: "web" });
  assert.deepEqual(s.ports, [
    { published: 8080, target: 80, protocol: "tcp", mode: "ingress" },
    { published: 53, target: 5353, protocol: "udp", mode: "host" },
  ]);
  assert.deepEqual(s.constraints, ["node.role==worker"]);
  assert.equal(s.restartPolicy.delayMs, 0);
  assert.equal(s.limits.memoryBytes, 512 * 1024 ** 2);
  assert.equal(s.reservations.cpus, 0.5);
  assert.equal(s.update?.order, "start-first");
  assert.equal(s.update?.parallelism, 0);
  assert.equal(s.stopGracePeriodMs, 90_000);

  const u = updatedSpec(
    s,
    { envAdd: ["B=2"], envRm: ["A"], publishRm: ["8080"], args: "b.js" },
    [],
  );
  assert.deepEqual(u.env, { B: "2" });
  assert.deepEqual(
    u.ports.map((p) => p.published),
    [53],
  );
  assert.deepEqual(u.command, ["node", "b.js"]);
  assert.deepEqual(updatedSpec(s, {}, ["sleep", "1"]).command, ["sleep", "1"]);
  assert.throws(
    () => updatedSpec(s, { mode: "global" }, []),
    /--mode can only be set when the service is created/,
  );
  const g = createSpec({ mode: "global" }, ["x"], "g");
  assert.deepEqual(g.mode, { global: {} });
  assert.throws(
    () => createSpec({ mode: "global", replicas: "2" }, ["x"], "g"),
    /replicas can only be used with replicated mode/,
  );
  assert.throws(
    () => createSpec({ updateOrder: "sideways" }, ["x"], "x"),
    /invalid update order "sideways": stop-first or start-first/,
  );
  assert.throws(
    () => createSpec({ replicas: "three" }, ["x"], "x"),
    /invalid argument "three" for "--replicas"/,
  );
  assert.throws(
    () => createSpec({ env: ["=x"] }, ["x"], "x"),
    /invalid env "=x": expected KEY=VALUE/,
  );
  assert.equal(defaultServiceSpec("x").driver, createSpec({}, ["x"], "x").driver);
  assert.equal(createSpec({ image: "busybox" }, [], "x").driver, "docker");
});

test("flag values: durations, sizes, integers, ports, scale pairs", () => {
  assert.equal(parseDurationFlag("--d", "1m30s"), 90_000);
  assert.equal(parseDurationFlag("--d", "2"), 2000);
  assert.throws(
    () => parseDurationFlag("--d", "soon"),
    /invalid argument "soon" for "--d" flag: time: invalid duration "soon"/,
  );
  assert.equal(parseBytesFlag("--m", "1g"), 1024 ** 3);
  assert.equal(parseBytesFlag("--m", "100k"), 102_400);
  assert.throws(
    () => parseBytesFlag("--m", "lots"),
    (e: unknown) => e instanceof UsageError,
  );
  assert.equal(parseIntFlag("--n", "-1"), -1);
  assert.throws(
    () => parseIntFlag("--n", "1.5"),
    /strconv.ParseUint: parsing "1.5": invalid syntax/,
  );
  assert.throws(() => parsePort("80"), /invalid publish "80": expected PUBLISHED:TARGET/);
  assert.deepEqual(parseScaleArgs(["a=1", "b=10"]), [
    ["a", 1],
    ["b", 10],
  ]);
  assert.throws(() => parseScaleArgs(["a"]), /invalid scale specifier 'a'/);
  assert.throws(() => parseScaleArgs(["a=-1"]), /invalid replicas value -1/);
});

function failedTask(slot: number, err: string): Task {
  return {
    id: `t${slot}${err.length}`,
    serviceId: "s",
    serviceName: "web",
    slot,
    nodeId: "n1",
    specVersion: 1,
    spec: defaultServiceSpec("web"),
    desiredState: "shutdown",
    status: {
      state: "failed",
      timestamp: 0,
      message: "",
      err,
      exitCode: 1,
      pid: null,
      containerId: null,
    },
    hostPorts: {},
    notBefore: 0,
    createdAt: 0,
    updatedAt: 0,
  };
}

test("progress prints each distinct task error once", () => {
  const d = new ErrorDigest();
  const boom = "cgroups: no memory controller";
  assert.deepEqual(d.lines([failedTask(1, boom), failedTask(2, boom)]), [`web.1: ${boom}`]);
  // The next polls see the same error on new tasks (and the old ones again): nothing new.
  for (let i = 0; i < 100; i++)
    assert.deepEqual(d.lines([failedTask(1, boom), failedTask(3, boom)]), []);
  assert.deepEqual(d.lines([failedTask(1, boom), failedTask(2, "task: non-zero exit (1)")]), [
    "web.2: task: non-zero exit (1)",
  ]);
  assert.deepEqual(d.lines([failedTask(4, "")]), []);
});

test("Go's spelling of boolean flags: --detach=false, -q=true; a command's own flags untouched", async () => {
  const p = await parse(
    "service",
    "create",
    "--detach=false",
    "-q=true",
    "--name",
    "w",
    "node",
    "--detach=false",
  );
  assert.deepEqual(p.opts, { quiet: true, name: "w" });
  assert.deepEqual(p.args, ["node", "--detach=false"]);
  const l = await parse("service", "ls", "--quiet=TRUE", "--format", "x=true");
  assert.deepEqual(l.opts, { quiet: true, format: "x=true" });
  const ps = await parse("service", "ps", "--no-trunc=true", "web");
  assert.equal(ps.opts["trunc"], false);
  assert.match(await parseError("service", "ls", "--quiet=maybe"), /^unknown flag: --quiet\n/);
  // A flag that is on unless given false (stack deploy's --detach): =false is its negation.
  const undetached = await parse("stack", "deploy", "--detach=false", "-c", "f.yml", "s");
  assert.equal(undetached.opts["detach"], false);
  const plain = await parse("stack", "deploy", "-c", "f.yml", "s");
  assert.equal(plain.opts["detach"], undefined);
});

test("addresses the CLI reads: a manager's join address, SHOAL_HOST, a join token", async () => {
  const { parseManagerAddr, tokenDigest } = await import("../../src/cli/swarm.js");
  const { apiTarget } = await import("../../src/cli/api-client.js");
  assert.deepEqual(parseManagerAddr("[::1]:2377"), { host: "::1", port: 2377 });
  assert.deepEqual(parseManagerAddr("::1"), { host: "::1", port: 2377 });
  assert.deepEqual(parseManagerAddr("10.0.0.1"), { host: "10.0.0.1", port: 2377 });
  assert.deepEqual(parseManagerAddr("manager.example:2400"), {
    host: "manager.example",
    port: 2400,
  });
  assert.throws(
    () => parseManagerAddr(":2377"),
    /invalid manager address ":2377": expected HOST:PORT/,
  );
  assert.throws(() => parseManagerAddr("[::1"), /invalid manager address/);
  assert.deepEqual(apiTarget({ SHOAL_HOST: "tcp://[::1]:2375" }), { host: "::1", port: 2375 });
  assert.deepEqual(apiTarget({ SHOAL_HOST: "tcp://10.0.0.1:2375" }), {
    host: "10.0.0.1",
    port: 2375,
  });
  assert.deepEqual(apiTarget({ SHOAL_HOST: "unix:///run/s.sock" }), { socketPath: "/run/s.sock" });
  assert.deepEqual(apiTarget({ SHOAL_DATA_DIR: "/d" }), { socketPath: "/d/shoal.sock" });
  for (const bad of ["http://x:1", "tcp://x", "tcp://[::1"])
    assert.throws(() => apiTarget({ SHOAL_HOST: bad }), /invalid SHOAL_HOST/);
  assert.equal(tokenDigest(`SHOAL-1-${"a".repeat(50)}-${"b".repeat(25)}`), "a".repeat(50));
  assert.throws(() => tokenDigest("SWMTKN-1-x"), /invalid join token/);
});

test("health flags: create sets a CMD-SHELL check, update changes only what is given", async () => {
  const p = await parse(
    "service",
    "create",
    "--health-cmd",
    "curl -f localhost",
    "--health-interval",
    "2s",
    "--health-retries",
    "5",
    "--",
    "sleep",
    "9",
  );
  assert.deepEqual(p.opts, {
    healthCmd: "curl -f localhost",
    healthInterval: "2s",
    healthRetries: "5",
  });
  const s = createSpec(p.opts, ["sleep", "9"], "web");
  assert.deepEqual(s.healthcheck, {
    test: ["CMD-SHELL", "curl -f localhost"],
    intervalMs: 2000,
    timeoutMs: 0,
    retries: 5,
    startPeriodMs: 0,
    startIntervalMs: 0,
  });
  assert.equal(createSpec({}, ["x"], "web").healthcheck, undefined, "no flags, no check");
  const u = updatedSpec(s, { healthTimeout: "3s", healthStartPeriod: "1m" }, []);
  assert.deepEqual(u.healthcheck, {
    ...s.healthcheck,
    timeoutMs: 3000,
    startPeriodMs: 60_000,
  });
  const none = await parse("service", "update", "--no-healthcheck", "web");
  assert.equal(none.opts["healthcheck"], false);
  const off = updatedSpec(u, none.opts, []);
  assert.deepEqual(off.healthcheck?.test, ["NONE"]);
  // A new command after NONE replaces it; the other settings start from Docker's defaults.
  assert.deepEqual(updatedSpec(off, { healthCmd: "true" }, []).healthcheck?.test, [
    "CMD-SHELL",
    "true",
  ]);
  assert.throws(() => updatedSpec(u, { healthcheck: false, healthRetries: "1" }, []), {
    message: "--no-healthcheck conflicts with --health-* options",
  });
  assert.throws(() => createSpec({ healthInterval: "-1s" }, ["x"], "web"), {
    message: 'invalid argument "-1s" for "--health-interval" flag: duration cannot be negative',
  });
});

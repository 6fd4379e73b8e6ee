// Process-level tests of bin/shoal.js against a stand-in for the daemon's API: help never
// contacts the daemon, a command loads only what it needs, --format/--filter/-q, the spec that
// `service create` sends, each task error printed once, a pipe closed early, SHOAL_HOST on IPv6.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { fakeApi, shoal, type FakeRequest, type FakeAnswer } from "./fake-api.js";
import { SHOAL_BIN } from "../helpers/servers.js";
import { defaultServiceSpec, type Node, type Service, type Task } from "../../src/api/types.js";

const TRACER = resolve(fileURLToPath(import.meta.url), "../fixtures/trace-modules.js");

const spec = { ...defaultServiceSpec("web"), command: ["sleep", "100"] };
const SERVICES = [
  { id: "s1aaaaaaaaaaaaaaaaaaaaaaa", spec, version: 1, running: 2, desired: 2 },
  {
    id: "s2aaaaaaaaaaaaaaaaaaaaaaa",
    spec: { ...spec, name: "db", mode: { global: {} }, labels: { tier: "back" } },
    version: 1,
    running: 1,
    desired: 1,
  },
];
const NODES = [
  {
    id: "n1aaaaaaaaaaaaaaaaaaaaaaa",
    hostname: "vm1",
    role: "manager",
    availability: "active",
    status: "ready",
    labels: {},
    engineVersion: "0.1.0",
  },
  {
    id: "n2aaaaaaaaaaaaaaaaaaaaaaa",
    hostname: "vm2",
    role: "worker",
    availability: "active",
    status: "ready",
    labels: {},
    engineVersion: "0.1.0",
  },
] as unknown as Node[];

function task(id: string, slot: number, state: Task["status"]["state"], err = ""): Task {
  return {
    id,
    serviceId: SERVICES[0]!.id,
    serviceName: "web",
    slot,
    nodeId: NODES[slot % 2]!.id,
    specVersion: 1,
    spec,
    desiredState: state === "running" ? "running" : "shutdown",
    status: {
      state,
      timestamp: Date.now(),
      message: "",
      err,
      exitCode: null,
      pid: null,
      containerId: null,
    },
    hostPorts: {},
    notBefore: 0,
    createdAt: Date.now(),
    updatedAt: Date.now(),
  };
}

/** A cluster of two services and two nodes, as the daemon would list it. */
function cluster(req: FakeRequest): FakeAnswer {
  if (req.path === "/v1/services") return { json: SERVICES };
  if (req.path === "/v1/nodes") return { json: NODES };
  if (req.path === "/v1/info") return { json: { nodeId: NODES[0]!.id, pid: 1 } };
  if (req.path.startsWith("/v1/tasks?service=web"))
    return {
      json: [
        task("t1aaaaaaaaaaaaaaaaaaaaaaa", 1, "running"),
        task("t2aaaaaaaaaaaaaaaaaaaaaaa", 2, "running"),
        task("t0aaaaaaaaaaaaaaaaaaaaaaa", 2, "failed", "task: non-zero exit (1)"),
      ],
    };
  return undefined;
}

test("--help of every command prints its help and never contacts the daemon", async (t) => {
  const api = await fakeApi(() => ({ json: {} }));
  t.after(() => api.close());
  const cases = [
    ["--help"],
    ["help"],
    ["help", "service"],
    ["service", "--help"],
    ["service", "create", "--help"],
    ["service", "update", "--help"],
    ["service", "ls", "--help"],
    ["service", "ps", "-h"],
    ["service", "logs", "--help"],
    ["node", "ls", "--help"],
    ["node", "update", "--help"],
    ["swarm", "join-token", "--help"],
    ["init", "--help"],
    ["join", "--help"],
    ["up", "--help"],
    ["leave", "--help"],
    ["info", "--help"],
  ];
  for (const args of cases) {
    const r = await shoal(args, api.env);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stdout, /^Usage: shoal /, args.join(" "));
    assert.equal(r.stderr, "", args.join(" "));
  }
  const create = await shoal(["service", "create", "--help"], api.env);
  assert.match(create.stdout, /--update-failure-action <action>/);
  const nodeLs = await shoal(["node", "ls", "--help"], api.env);
  assert.match(nodeLs.stdout, /-q, --quiet/);
  assert.match(nodeLs.stdout, /--format <format>/);
  const init = await shoal(["init", "--help"], api.env);
  assert.match(init.stdout, /--advertise-addr <addr>/);
  assert.match(init.stdout, /--cpus <n>/);
  assert.match(init.stdout, /--monitor-port <port>/);
  assert.equal(api.requests.length, 0, JSON.stringify(api.requests));
});

test("unknown flags and commands are errors in Docker's words, exit code 1, no daemon contacted", async (t) => {
  const api = await fakeApi(() => ({ json: {} }));
  t.after(() => api.close());
  const flag = await shoal(["service", "create", "--foo", "x", "--", "sleep", "1"], api.env);
  assert.equal(flag.code, 1);
  assert.equal(flag.stderr, "unknown flag: --foo\nSee 'shoal service create --help'.\n");
  const cmd = await shoal(["node", "frobnicate"], api.env);
  assert.equal(cmd.code, 1);
  assert.equal(
    cmd.stderr,
    'unknown command "frobnicate" for "shoal node"\nSee \'shoal node --help\'.\n',
  );
  const filter = await shoal(["service", "ls", "--filter", "colour=red"], api.env);
  assert.equal(filter.code, 1);
  assert.match(
    filter.stderr,
    /^Invalid filter 'colour' \(service ls filters by id, name, label, mode\)\nSee 'shoal service ls --help'\.\n$/,
  );
  const tmpl = await shoal(["node", "ls", "--format", "{{range .}}x{{end}}"], api.env);
  assert.equal(tmpl.code, 1);
  assert.match(tmpl.stderr, /template: "range" is not supported/);
  assert.equal(api.requests.length, 0, JSON.stringify(api.requests));
});

test("shoal version and shoal service ls load neither the daemon nor its libraries", async (t) => {
  const api = await fakeApi(cluster);
  const dir = mkdtempSync(join(tmpdir(), "shoal-trace-"));
  t.after(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const forbidden = [
    /\/src\/(nats|store|manager|node|daemon|net)\//,
    /\/node_modules\/(dockerode|nats|docker-modem|ssh2)\//,
  ];
  for (const args of [["version"], ["service", "ls"], ["node", "ls", "-q"]]) {
    const trace = join(dir, `${args.join("-")}.txt`);
    const r = await shoal(
      args,
      { ...api.env, SHOAL_TRACE_MODULES: trace },
      { nodeArgs: ["--import", TRACER] },
    );
    assert.equal(r.code, 0, r.stderr);
    const loaded = readFileSync(trace, "utf8").trim().split("\n");
    // The tracer sees the CLI itself (so an empty list cannot pass for a clean one).
    assert.ok(
      loaded.some((u) => u.endsWith("/dist/src/cli/main.js")),
      loaded.join("\n"),
    );
    const bad = loaded.filter((u) => forbidden.some((re) => re.test(u)));
    assert.deepEqual(bad, [], `shoal ${args.join(" ")} loaded:\n${bad.join("\n")}`);
  }
  const v = await shoal(["version"], api.env);
  assert.match(v.stdout, /^shoal version \d+\.\d+\.\d+/);
});

test("bin/shoal.js runs as a program on PATH, through a symlink (what npm link gives)", async (t) => {
  // bin/ is CommonJS (bin/package.json, src/cli/entry.cts): the shebang line and the module type
  // must hold when the file is run by its link's name, without `node` in front.
  const dir = mkdtempSync(join(tmpdir(), "shoal-path-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  symlinkSync(SHOAL_BIN, join(dir, "shoal"));
  const env = { ...process.env, PATH: `${dir}:${process.env["PATH"] ?? ""}` };
  const run = promisify(execFile);
  const server = await run("shoal", ["nats-server", "--version"], { env });
  assert.match(server.stdout, /^nats-server: v\d+\.\d+\.\d+ \(shoal /);
  const cli = await run("shoal", ["version"], { env });
  assert.match(cli.stdout, /^shoal version \d+\.\d+\.\d+/);
});

test("shoal nats-server loads the message server alone: not the CLI's parser, ws or the daemon", async (t) => {
  // A server at rest holds what it loaded: the CLI's command tree (commander), ws (loaded only
  // with a websocket block) and the orchestrator's libraries cost it RSS for nothing.
  const dir = mkdtempSync(join(tmpdir(), "shoal-trace-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const trace = join(dir, "nats-server.txt");
  const r = await shoal(
    ["nats-server", "--version"],
    { SHOAL_TRACE_MODULES: trace },
    { nodeArgs: ["--import", TRACER] },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^nats-server: v/);
  const loaded = readFileSync(trace, "utf8").trim().split("\n");
  // The server's modules, or the one-file bundle of them `npm run build` makes (cli/entry.cts).
  assert.ok(
    loaded.some(
      (u) =>
        u.endsWith("/dist/src/nats/server.js") ||
        u.endsWith("/dist/src/daemon/nats-server.bundle.cjs"),
    ),
    loaded.join("\n"),
  );
  const forbidden = [
    /\/src\/cli\/(program|api-client)\.js$/,
    /\/src\/(store|manager|node|net|api)\//,
    /\/node_modules\/(commander|ws|dockerode|fastify|@peculiar|ajv)\//,
  ];
  const bad = loaded.filter((u) => forbidden.some((re) => re.test(u)));
  assert.deepEqual(bad, [], `shoal nats-server loaded:\n${bad.join("\n")}`);
});

test("service ls, service ps and node ls: -q, --format, --filter", async (t) => {
  const api = await fakeApi(cluster);
  t.after(() => api.close());
  const run = async (...args: string[]) => {
    const r = await shoal(args, api.env);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  assert.match(
    await run("service", "ls"),
    /^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\/COMMAND\s+PORTS\ns2aaaaaaaaaa\s+db\s+global\s+1\/1/,
  );
  assert.equal(await run("service", "ls", "-q"), "s2aaaaaaaaaa\ns1aaaaaaaaaa\n");
  assert.equal(
    await run(
      "service",
      "ls",
      "--filter",
      "mode=replicated",
      "--format",
      "{{.Name}}\\t{{.Replicas}}",
    ),
    "web\t2/2\n",
  );
  assert.equal(await run("service", "ls", "-f", "label=tier=back", "-q"), "s2aaaaaaaaaa\n");
  const json = (await run("service", "ls", "--format", "json"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, string>);
  assert.deepEqual(Object.keys(json[0]!), ["ID", "Image", "Mode", "Name", "Ports", "Replicas"]);
  assert.equal(json[1]!["Name"], "web");
  // node ls -q prints the node ids only (it used to ignore -q).
  assert.equal(
    await run("node", "ls", "-q"),
    "n1aaaaaaaaaaaaaaaaaaaaaaa\nn2aaaaaaaaaaaaaaaaaaaaaaa\n",
  );
  assert.match(await run("node", "ls"), /^n1a{23} \*\s+vm1\s+Ready\s+Active\s+Leader\s+0\.1\.0$/m);
  assert.equal(
    await run("node", "ls", "--filter", "role=worker", "--format", "{{.Hostname}} {{.Status}}"),
    "vm2 Ready\n",
  );
  assert.equal(
    await run(
      "service",
      "ps",
      "web",
      "--filter",
      "desired-state=running",
      "--format",
      "{{.Name}} {{.Node}} {{.DesiredState}}",
    ),
    "web.1 vm2 Running\nweb.2 vm1 Running\n",
  );
  assert.equal(
    await run("service", "ps", "web", "-q", "-f", "desired-state=shutdown"),
    "t0aaaaaaaaaaaaaaaaaaaaaaa\n",
  );
  assert.match(
    await run("service", "ps", "web", "--format", "table {{.Name}}\\t{{.Error}}"),
    /^NAME\s+ERROR\nweb\.1\s*\nweb\.2\s*\n \\_ web\.2\s+"task: non-zero exit \(1\)"\n$/,
  );
});

test("service create sends the spec the flags describe; the task's own flags stay its own", async (t) => {
  const api = await fakeApi((req) =>
    req.method === "POST" && req.path === "/v1/services"
      ? { json: { id: "newservice", spec: (req.body as { spec: unknown }).spec } }
      : undefined,
  );
  t.after(() => api.close());
  const r = await shoal(
    [
      "service",
      "create",
      "-d",
      "--name",
      "web",
      "-e",
      "A=1",
      "-p",
      "8080:80",
      "--replicas",
      "2",
      "--limit-memory",
      "64m",
      "node",
      "-e",
      "x",
      "--name",
      "y",
    ],
    api.env,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "newservice\n");
  const sent = (api.requests.find((x) => x.method === "POST")!.body as { spec: Service["spec"] })
    .spec;
  assert.equal(sent.name, "web");
  assert.deepEqual(sent.command, ["node", "-e", "x", "--name", "y"]);
  assert.deepEqual(sent.env, { A: "1" });
  assert.deepEqual(sent.mode, { replicated: { replicas: 2 } });
  assert.deepEqual(sent.ports, [{ published: 8080, target: 80, protocol: "tcp", mode: "ingress" }]);
  assert.equal(sent.limits.memoryBytes, 64 * 1024 * 1024);
});

test("while a service converges, each distinct task error is printed once", async (t) => {
  let polls = 0;
  const failed: Task[] = [];
  const api = await fakeApi((req) => {
    if (req.method === "POST" && req.path === "/v1/services")
      return { json: { id: "s1", spec: { ...spec, name: "crashy" }, version: 1 } };
    if (req.path === "/v1/services/s1") {
      polls++;
      return {
        json: {
          id: "s1",
          spec: { ...spec, name: "crashy" },
          version: 1,
          desired: 1,
          running: polls > 8 ? 1 : 0,
        },
      };
    }
    if (req.path === "/v1/tasks?service=s1") {
      // Every poll the task has crashed again, with the same error (and once with another).
      failed.push(
        task(
          `f${polls}aaaaaaaaaaaaaaaaaaaaaa`,
          1,
          "failed",
          polls === 4 ? "task: non-zero exit (2)" : "cgroups: cannot limit memory",
        ),
      );
      const live = polls > 8 ? [task("t9aaaaaaaaaaaaaaaaaaaaaaa", 1, "running")] : [];
      return { json: [...failed, ...live].map((x) => ({ ...x, serviceName: "crashy" })) };
    }
    return undefined;
  });
  t.after(() => api.close());
  const r = await shoal(["service", "create", "--name", "crashy", "--", "sleep", "1"], api.env);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(polls > 8);
  const lines = r.stdout.trim().split("\n");
  assert.deepEqual(
    lines.filter((l) => l.startsWith("crashy.")),
    ["crashy.1: cgroups: cannot limit memory", "crashy.1: task: non-zero exit (2)"],
  );
  assert.equal(lines.at(-1), "verify: Service crashy converged");
});

test("service logs into a pipe that closes early exits quietly", async (t) => {
  const api = await fakeApi((req) => {
    if (!req.path.startsWith("/v1/services/web/logs")) return undefined;
    return (res) => {
      res.setHeader("Content-Type", "text/plain");
      const line = "web.1.abcdefabcdef@vm    | " + "x".repeat(80) + "\n";
      const chunk = line.repeat(200);
      const timer = setInterval(() => res.write(chunk), 2);
      res.on("close", () => clearInterval(timer));
    };
  });
  t.after(() => api.close());
  const p = spawn(process.execPath, [SHOAL_BIN, "service", "logs", "-f", "web"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: api.env,
  });
  let stderr = "";
  p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  // Read the first chunk, then close the reading end, as `| head -1` does.
  await new Promise<void>((done) => p.stdout.once("data", () => done()));
  p.stdout.destroy();
  const timer = setTimeout(() => p.kill("SIGKILL"), 20_000);
  const [code, signal] = await new Promise<[number | null, string | null]>((done) =>
    p.once("close", (c, s) => done([c, s])),
  );
  clearTimeout(timer);
  assert.equal(signal, null, "killed: it did not stop by itself");
  assert.equal(code, 0, stderr);
  assert.equal(stderr, "");
});

test("SHOAL_HOST=tcp://[::1]:PORT reaches a daemon on IPv6", async (t) => {
  let api;
  try {
    api = await fakeApi(cluster, { host: "::1" });
  } catch {
    return t.skip("no IPv6 loopback on this machine");
  }
  t.after(() => api.close());
  const r = await shoal(["service", "ls", "-q"], {
    ...api.env,
    SHOAL_HOST: `tcp://[::1]:${api.port}`,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "s2aaaaaaaaaa\ns1aaaaaaaaaa\n");
  const bad = await shoal(["service", "ls"], { ...api.env, SHOAL_HOST: "tcp://::1" });
  assert.equal(bad.code, 1);
  assert.match(
    bad.stderr,
    /invalid SHOAL_HOST "tcp:\/\/::1": use unix:\/\/\/path\/to\/shoal\.sock or tcp:\/\/host:port/,
  );
});

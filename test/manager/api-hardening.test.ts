// Requests that must not hurt (issue 9, items 5, 6, 7 and 9): each refused input is refused at
// the API with its field named and nothing stored; a service spec has bounds, and the replica
// count a cluster-wide limit (the swarm's maxReplicas); a service already stored that no longer
// validates is reported and left alone while the others reconcile; a path `new URL` rejects
// does not crash the worker's API; a TCP API off loopback has mutual TLS.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer, request } from "node:http";
import { createMemoryStore } from "../../src/store/memory.js";
import type { Store } from "../../src/store/store.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { Api } from "../../src/manager/api.js";
import { workerApi } from "../../src/daemon/worker-daemon.js";
import { apiTcpNeedsTls } from "../../src/api/paths.js";
import { parseDaemonFlags } from "../../src/cli/daemon-options.js";
import {
  DEFAULT_MAX_REPLICAS,
  SPEC_LIMITS,
  defaultServiceSpec,
  type Service,
  type ServiceSpec,
} from "../../src/api/types.js";
import { quietLog } from "../helpers/bus.js";
import { defer } from "../helpers/defer.js";
import { node } from "../store/helpers.js";

interface Reply {
  status: number;
  json: unknown;
}

function send(port: number, method: string, path: string, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        headers: { "Content-Type": "application/json" },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
      },
    );
    // A server that crashed never answers: fail instead of hanging.
    req.setTimeout(5000, () => req.destroy(new Error(`no answer to ${method} ${path}`)));
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function setup(t: TestContext) {
  const store = createMemoryStore();
  const errors: string[] = [];
  const log = { ...quietLog, error: (m: string) => errors.push(m) };
  const manager = new Manager(store, log, defaultManagerOptions());
  defer(t, () => manager.stop());
  await store.update((tx) => tx.putNode(node("n1", { role: "manager" })));
  const api = new Api(manager, {
    info: () => {
      throw new Error("not used");
    },
    joinToken: async () => "",
    logs: async () => {},
    checkPortsFree: async () => {},
    leave: async () => {},
  });
  defer(t, () => api.close());
  const port = await api.listenTcp("127.0.0.1", 0);
  const snapshot = () =>
    JSON.stringify(store.view((tx) => ({ s: tx.listServices(), m: tx.getMeta("settings") })));
  return { store, manager, port, errors, snapshot };
}

function spec(over: Partial<ServiceSpec> = {}): ServiceSpec {
  return { ...defaultServiceSpec("web"), command: ["sleep", "100"], ...over };
}

const replicas = (n: number) => ({ mode: { replicated: { replicas: n } } });
const port = (over: object) => ({
  ports: [{ published: 8080, target: 80, protocol: "tcp", mode: "ingress", ...over }],
});
const long = (n: number) => "x".repeat(n);

describe("refused service specs", () => {
  test("each is refused with its field named, and nothing is stored", async (t) => {
    const s = await setup(t);
    const before = s.snapshot();
    const env = (e: Record<string, string>) => ({ env: e });
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ["empty stop signal", { stopSignal: "" }, "spec.stopSignal must not be empty"],
      ["unknown stop signal", { stopSignal: "FOO" }, 'spec.stopSignal "FOO" is not a known signal'],
      ["command as a string", { command: "sleep 100" }, "spec.command must be an array"],
      ["mode {}", { mode: {} }, "spec.mode must have exactly one of replicated, global"],
      ["empty env name", env({ "": "x" }), "spec.env has a variable with an empty name"],
      [
        "= in env name",
        env({ "A=B": "x" }),
        `spec.env["A=B"]: a variable name must not contain '='`,
      ],
      [
        "NUL in env name",
        env({ "A\0": "x" }),
        `spec.env["A\\u0000"]: a variable name must not contain NUL`,
      ],
      ["NUL in env value", env({ A: "x\0" }), "spec.env.A must not contain NUL characters"],
      [
        "NUL in an argument",
        { command: ["sleep", "1\0"] },
        "spec.command[1] must not contain NUL characters",
      ],
      ["unknown driver", { driver: "lxc" }, "spec.driver must be one of process, docker"],
      [
        "bad port protocol",
        port({ protocol: "sctp" }),
        "spec.ports[0].protocol must be one of tcp, udp",
      ],
      [
        "bad port mode",
        port({ mode: "bridge" }),
        "spec.ports[0].mode must be one of ingress, host",
      ],
      ["1e300 replicas", replicas(1e300), "spec.mode.replicated.replicas must be <= 100000"],
      [
        "replicas over maxReplicas",
        replicas(DEFAULT_MAX_REPLICAS + 1),
        "spec.mode.replicated.replicas must be <= 10000 (the swarm's maxReplicas)",
      ],
      [
        "too many arguments",
        { command: Array(SPEC_LIMITS.commandArgs + 1).fill("a") },
        "spec.command must have at most 4096 items",
      ],
      [
        "a long argument",
        { command: ["sleep", long(SPEC_LIMITS.argLength + 1)] },
        "spec.command[1] must be at most 65536 characters",
      ],
      [
        "a long command",
        { command: Array(5).fill(long(60_000)) },
        "spec.command must be at most 262144 characters in all",
      ],
      [
        "too many env vars",
        env(
          Object.fromEntries(
            Array.from({ length: SPEC_LIMITS.envVars + 1 }, (_, i) => [`V${i}`, ""]),
          ),
        ),
        "spec.env must have at most 1024 entries",
      ],
      [
        "too many labels",
        {
          labels: Object.fromEntries(
            Array.from({ length: SPEC_LIMITS.labels + 1 }, (_, i) => [`l${i}`, ""]),
          ),
        },
        "spec.labels must have at most 256 entries",
      ],
      [
        "a long label value",
        { labels: { a: long(SPEC_LIMITS.labelValueLength + 1) } },
        "spec.labels.a must be at most 4096 characters",
      ],
      [
        "too many ports",
        {
          ports: Array.from({ length: SPEC_LIMITS.ports + 1 }, (_, i) => ({
            published: 1000 + i,
            target: 80,
            protocol: "tcp",
            mode: "ingress",
          })),
        },
        "spec.ports must have at most 256 items",
      ],
      [
        "too many constraints",
        { constraints: Array(SPEC_LIMITS.constraints + 1).fill("node.role==worker") },
        "spec.constraints must have at most 64 items",
      ],
      [
        "a long image",
        { image: long(SPEC_LIMITS.imageLength + 1) },
        "spec.image must be at most 1024 characters",
      ],
      [
        "a grace period no timer holds",
        { stopGracePeriodMs: 1e300 },
        "spec.stopGracePeriodMs must be <= 2147483647",
      ],
      [
        "1e300 CPUs",
        { limits: { cpus: 1e300, memoryBytes: 0 } },
        "spec.limits.cpus must be <= 4096",
      ],
      [
        "health check of an unknown form",
        {
          healthcheck: {
            test: ["RUN", "x"],
            intervalMs: 0,
            timeoutMs: 0,
            retries: 0,
            startPeriodMs: 0,
            startIntervalMs: 0,
          },
        },
        'spec.healthcheck.test must start with "CMD", "CMD-SHELL" or "NONE", not "RUN"',
      ],
      [
        "health check without a command",
        {
          healthcheck: {
            test: ["CMD-SHELL"],
            intervalMs: 0,
            timeoutMs: 0,
            retries: 0,
            startPeriodMs: 0,
            startIntervalMs: 0,
          },
        },
        "spec.healthcheck.test: CMD-SHELL needs a command",
      ],
      [
        "health interval under 1ms",
        {
          healthcheck: {
            test: ["CMD", "true"],
            intervalMs: 0.5,
            timeoutMs: 0,
            retries: 0,
            startPeriodMs: 0,
            startIntervalMs: 0,
          },
        },
        "spec.healthcheck: Interval cannot be less than 1ms",
      ],
      [
        "health retries past the bound",
        {
          healthcheck: {
            test: ["NONE"],
            intervalMs: 0,
            timeoutMs: 0,
            retries: 2000000,
            startPeriodMs: 0,
            startIntervalMs: 0,
          },
        },
        "spec.healthcheck.retries must be <= 1000000",
      ],
    ];
    for (const [what, over, message] of cases) {
      const r = await send(s.port, "POST", "/v1/services", { spec: { ...spec(), ...over } });
      assert.equal(r.status, 400, what);
      assert.deepEqual(r.json, { message, code: "ERR_INVALID" }, what);
    }
    assert.equal(s.snapshot(), before);
  });

  test("a scale or an update past the bounds is refused the same way", async (t) => {
    const s = await setup(t);
    assert.equal((await send(s.port, "POST", "/v1/services", { spec: spec() })).status, 200);
    const before = s.snapshot();
    const scale = await send(s.port, "POST", "/v1/services/web/scale", { replicas: 1_000_000 });
    assert.equal(scale.status, 400);
    assert.deepEqual(scale.json, {
      message: "replicas must be <= 100000",
      code: "ERR_INVALID",
    });
    const scale2 = await send(s.port, "POST", "/v1/services/web/scale", { replicas: 10_001 });
    assert.deepEqual(scale2.json, {
      message: "spec.mode.replicated.replicas must be <= 10000 (the swarm's maxReplicas)",
      code: "ERR_INVALID",
    });
    const upd = await send(s.port, "POST", "/v1/services/web/update", {
      spec: spec({ stopSignal: "SIGNOPE" }),
    });
    assert.deepEqual(upd.json, {
      message: 'spec.stopSignal "SIGNOPE" is not a known signal',
      code: "ERR_INVALID",
    });
    assert.equal(s.snapshot(), before);
  });

  test("signals are accepted as the drivers take them: names with or without SIG, numbers", async (t) => {
    const s = await setup(t);
    for (const [i, sig] of ["SIGTERM", "term", "KILL", "15", "SIGUSR1"].entries()) {
      const r = await send(s.port, "POST", "/v1/services", {
        spec: spec({ name: `s${i}`, stopSignal: sig }),
      });
      assert.equal(r.status, 200, sig);
    }
  });
});

describe("maxReplicas", () => {
  test("is a swarm setting (default 10000) that cannot go below a service's replicas", async (t) => {
    const s = await setup(t);
    const created = await send(s.port, "POST", "/v1/services", { spec: spec(replicas(50)) });
    assert.equal(created.status, 200);
    const low = await send(s.port, "POST", "/v1/swarm/update", { maxReplicas: 10 });
    assert.equal(low.status, 400);
    assert.deepEqual(low.json, {
      message: "maxReplicas 10 is below the 50 replicas of service web: scale it down first",
      code: "ERR_INVALID",
    });
    const set = await send(s.port, "POST", "/v1/swarm/update", { maxReplicas: 60 });
    assert.deepEqual(set.json, { heartbeatMs: 1000, maxReplicas: 60 });
    const over = await send(s.port, "POST", "/v1/services/web/scale", { replicas: 61 });
    assert.deepEqual(over.json, {
      message: "spec.mode.replicated.replicas must be <= 60 (the swarm's maxReplicas)",
      code: "ERR_INVALID",
    });
    const zero = await send(s.port, "POST", "/v1/swarm/update", { maxReplicas: 0 });
    assert.deepEqual(zero.json, { message: "maxReplicas must be >= 1", code: "ERR_INVALID" });
  });
});

describe("stored services that no longer validate", () => {
  async function putRaw(store: Store, id: string, over: Record<string, unknown>) {
    const svc = {
      id,
      spec: { ...spec({ name: id }), ...over },
      version: 1,
      previousSpec: null,
      createdAt: 1,
      updatedAt: 1,
    } as unknown as Service;
    await store.update((tx) => tx.putService(svc));
  }

  test("are reported and left alone; the others reconcile", async (t) => {
    const s = await setup(t);
    await putRaw(s.store, "huge", replicas(1e300));
    await putRaw(s.store, "nosig", { stopSignal: "" });
    await putRaw(s.store, "good", replicas(3));
    const before = s.manager.passes;
    s.manager.start();
    while (s.manager.passes < before + 2) await new Promise((r) => setTimeout(r, 5));
    const tasks = s.store.view((tx) => tx.listTasks());
    assert.deepEqual(
      tasks.map((x) => x.serviceId),
      ["good", "good", "good"],
    );
    assert.deepEqual(
      s.manager.invalidServices().map((x) => [x.id, x.problem]),
      [
        ["huge", "spec.mode.replicated.replicas must be <= 100000"],
        ["nosig", "spec.stopSignal must not be empty"],
      ],
    );
    // Logged once each, not every pass.
    while (s.manager.passes < before + 6) await new Promise((r) => setTimeout(r, 5));
    assert.equal(s.errors.filter((e) => e.includes("invalid")).length, 2);
    assert.match(s.errors[0]!, /^service huge \(huge\) is invalid and left alone/);
  });
});

describe("the worker's local API", () => {
  test("a path new URL rejects, and any other, gets an answer", async (t) => {
    const errors: string[] = [];
    const server = createServer(
      workerApi({
        info: () => ({ role: "worker" }),
        leave: () => {},
        log: { error: (m) => errors.push(m) },
      }),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    defer(t, () => new Promise<void>((r) => server.close(() => r())));
    const a = server.address();
    const p = typeof a === "object" && a ? a.port : 0;
    for (const path of ["//", "//x/y", "/v1/services"]) {
      const r = await send(p, "GET", path);
      assert.equal(r.status, 400, path);
    }
    for (const path of ["/v1/info", "/v1/info?%"]) {
      assert.deepEqual((await send(p, "GET", path)).json, { role: "worker" });
    }
    assert.deepEqual(errors, []);
  });

  test("an unexpected error is a 500 with its cause logged", async (t) => {
    const errors: string[] = [];
    const server = createServer(
      workerApi({
        info: () => {
          throw new Error("boom");
        },
        leave: () => {},
        log: { error: (m) => errors.push(m) },
      }),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    defer(t, () => new Promise<void>((r) => server.close(() => r())));
    const a = server.address();
    const r = await send(typeof a === "object" && a ? a.port : 0, "GET", "/v1/info");
    assert.equal(r.status, 500);
    assert.deepEqual(r.json, { message: "Error: boom", code: "ERR_INTERNAL" });
    assert.match(errors[0]!, /^GET \/v1\/info: Error: boom/);
  });
});

describe("a TCP API", () => {
  test("has mutual TLS off loopback (or with --api-tls), plain on loopback", () => {
    for (const plain of [
      "127.0.0.1:2375",
      "[::1]:2375",
      "localhost:2375",
      ":2375",
      "127.1.2.3:1",
    ]) {
      assert.equal(apiTcpNeedsTls(plain), false, plain);
      assert.equal(apiTcpNeedsTls(plain, true), true, plain);
    }
    for (const tls of ["0.0.0.0:2375", "10.0.0.5:2375", "[::]:2375", "example.com:2375"]) {
      assert.equal(apiTcpNeedsTls(tls), true, tls);
    }
  });

  test("the CLI takes a non-loopback --api-addr (the daemon serves it with mutual TLS)", () => {
    const p = parseDaemonFlags({ apiAddr: "0.0.0.0:2376" }, { natsPort: 4222 });
    assert.equal(p.apiTcp, "0.0.0.0:2376");
    assert.equal(p.apiTls, false);
    assert.equal(
      parseDaemonFlags({ apiAddr: "127.0.0.1:2376", apiTls: true }, { natsPort: 4222 }).apiTls,
      true,
    );
  });
});

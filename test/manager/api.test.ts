// The daemon's HTTP API against a real Manager on an embedded store in a temp dir, over TCP and
// the unix socket: every body is checked against its route schema (a bad one gets 400 naming the
// field and changes nothing in the store), every error has one shape `{ message, code }` (404 for
// unknown routes, 500 for a failing handler), replies match their route's reply schema, the
// CLI's client still works (bodyless POSTs included) and logs stream as text.
//
// Issue 8 defect 3: `failureAction: "explode"`, `maxFailureRatio: 7` and numeric env values were
// accepted; a spec without `mode` answered 500 ERR_INTERNAL.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openEmbeddedStore } from "../../src/store/embedded.js";
import type { Store } from "../../src/store/store.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { Api, type ApiHooks } from "../../src/manager/api.js";
import { apiRoutes, ErrorBodySchema, type RouteSchema } from "../../src/api/http.js";
import { matches, problems } from "../../src/api/schema.js";
import { defaultServiceSpec, type ServiceSpec, type Task } from "../../src/api/types.js";
import { quietLog } from "../helpers/bus.js";
import { defer } from "../helpers/defer.js";
import { node } from "../store/helpers.js";

interface Reply {
  status: number;
  type: string;
  text: string;
  json: unknown;
}

type Target = { host: string; port: number } | { socketPath: string };

function send(
  target: Target,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = { "Content-Type": "application/json" },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ ...target, method, path, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        let json: unknown = undefined;
        try {
          json = JSON.parse(text);
        } catch {
          // a text reply
        }
        resolve({
          status: res.statusCode ?? 0,
          type: res.headers["content-type"] ?? "",
          text,
          json,
        });
      });
    });
    req.on("error", reject);
    if (body !== undefined) req.write(typeof body === "string" ? body : JSON.stringify(body));
    req.end();
  });
}

interface Setup {
  store: Store;
  manager: Manager;
  tcp: Target;
  unix: Target;
  logCalls: Array<{ taskId: string; tail: number; follow: boolean }>;
  hooks: ApiHooks;
  /** Everything in the store, as text. */
  snapshot(): string;
}

async function setup(t: TestContext, over: Partial<ApiHooks> = {}): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), "shoal-api-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const store = await openEmbeddedStore(join(dir, "store"));
  defer(t, () => store.close());
  const manager = new Manager(store, quietLog, defaultManagerOptions());
  await store.update((tx) => tx.putNode(node("n1", { role: "manager" })));
  const logCalls: Setup["logCalls"] = [];
  const hooks: ApiHooks = {
    info: () => ({
      nodeId: "n1",
      advertiseAddr: "127.0.0.1:2377",
      version: "test",
      dataDir: dir,
      natsUrl: "nats://127.0.0.1:4222",
      managers: 1,
      nodes: 1,
      services: 0,
      tasks: 0,
      running: 0,
      pid: process.pid,
      heartbeats: 0,
      passes: 0,
      invalidServices: manager.invalidServices(),
    }),
    joinToken: async (role, rotate) => `SHOAL-1-${role}-${rotate ? "new" : "old"}`,
    logs: async (task, o, write) => {
      logCalls.push({ taskId: task.id, tail: o.tail, follow: o.follow });
      write(`${task.serviceName}.${task.slot} | hello`);
    },
    checkPortsFree: async () => {},
    leave: async () => {},
    ...over,
  };
  const api = new Api(manager, hooks);
  defer(t, () => api.close());
  const port = await api.listenTcp("127.0.0.1", 0);
  const socketPath = join(dir, "shoal.sock");
  await api.listenUnix(socketPath);
  const snapshot = () =>
    JSON.stringify(
      store.view((tx) => ({
        nodes: tx.listNodes(),
        services: tx.listServices(),
        tasks: tx.listTasks(),
        settings: tx.getMeta("settings") ?? null,
      })),
    );
  return {
    store,
    manager,
    tcp: { host: "127.0.0.1", port },
    unix: { socketPath },
    logCalls,
    hooks,
    snapshot,
  };
}

function spec(over: Partial<ServiceSpec> = {}): ServiceSpec {
  return { ...defaultServiceSpec("web"), command: ["sleep", "100"], ...over };
}

/** Asserts a reply is the one error shape with this status, code and message. */
function assertError(r: Reply, status: number, code: string, message: string | RegExp): void {
  assert.equal(r.status, status, r.text);
  assert.match(r.type, /^application\/json/);
  assert.ok(matches(ErrorBodySchema, r.json), r.text);
  const body = r.json as { message: string; code: string };
  assert.deepEqual(Object.keys(body).sort(), ["code", "message"]);
  assert.equal(body.code, code);
  if (typeof message === "string") assert.equal(body.message, message);
  else assert.match(body.message, message);
}

/** Asserts a 200 reply matches its route's reply schema. */
function assertReply(r: Reply, route: RouteSchema): void {
  assert.equal(r.status, 200, r.text);
  assert.ok(route.reply);
  assert.deepEqual(problems(route.reply, r.json, "reply"), []);
}

describe("daemon API: bad input (issue 8, defect 3)", () => {
  test("a bad service spec gets 400 naming the field, and nothing is stored", async (t) => {
    const s = await setup(t);
    const before = s.snapshot();
    const noMode: Partial<ServiceSpec> = spec();
    delete noMode.mode;
    const cases: Array<[unknown, string]> = [
      [
        {
          spec: spec({
            update: { ...defaultServiceSpec("x").update, failureAction: "explode" as "pause" },
          }),
        },
        "spec.update.failureAction must be one of pause, continue, rollback",
      ],
      [
        { spec: spec({ update: { ...defaultServiceSpec("x").update, maxFailureRatio: 7 } }) },
        "spec.update.maxFailureRatio must be <= 1",
      ],
      [{ spec: spec({ env: { FOO: 1 as unknown as string } }) }, "spec.env.FOO must be a string"],
      [{ spec: noMode }, "spec.mode is required"],
      [{ spec: { ...spec(), replicas: 3 } }, "spec.replicas is not a known field"],
      [{}, "spec is required"],
    ];
    for (const [body, message] of cases) {
      assertError(await send(s.tcp, "POST", "/v1/services", body), 400, "ERR_INVALID", message);
    }
    assert.equal(s.snapshot(), before, "a refused request changed the store");
  });

  test("a bad update, scale or node update changes nothing either", async (t) => {
    const s = await setup(t);
    const created = await send(s.tcp, "POST", "/v1/services", { spec: spec() });
    assertReply(created, apiRoutes.createService);
    const before = s.snapshot();
    const bad = spec({ update: { ...defaultServiceSpec("x").update, maxFailureRatio: 7 } });
    assertError(
      await send(s.tcp, "POST", "/v1/services/web/update", { spec: bad }),
      400,
      "ERR_INVALID",
      "spec.update.maxFailureRatio must be <= 1",
    );
    assertError(
      await send(s.tcp, "POST", "/v1/services/web/scale", { replicas: -1 }),
      400,
      "ERR_INVALID",
      "replicas must be >= 0",
    );
    assertError(
      await send(s.tcp, "POST", "/v1/services/web/scale", { replicas: "3" }),
      400,
      "ERR_INVALID",
      "replicas must be an integer",
    );
    assertError(
      await send(s.tcp, "POST", "/v1/nodes/n1/update", { availability: "asleep" }),
      400,
      "ERR_INVALID",
      "availability must be one of active, pause, drain",
    );
    assertError(
      await send(s.tcp, "POST", "/v1/nodes/n1/update", { labelAdd: { zone: 1 } }),
      400,
      "ERR_INVALID",
      "labelAdd.zone must be a string",
    );
    assertError(
      await send(s.tcp, "POST", "/v1/swarm/update", { heartbeatMs: 1 }),
      400,
      "ERR_INVALID",
      "heartbeatMs must be between 100 ms and 60 s",
    );
    assertError(
      await send(s.tcp, "POST", "/v1/services/web/rollback", { now: true }),
      400,
      "ERR_INVALID",
      "now is not a known field",
    );
    // Rules a schema cannot say are the manager's, with the same shape.
    assertError(
      await send(s.tcp, "POST", "/v1/services/web/update", {
        spec: spec({ constraints: ["node.role=worker"] }),
      }),
      400,
      "ERR_INVALID",
      /constraint/,
    );
    assert.equal(s.snapshot(), before, "a refused request changed the store");
  });

  test("query and path parameters are checked too", async (t) => {
    const s = await setup(t);
    assertError(
      await send(s.tcp, "GET", "/v1/swarm/join-token/boss"),
      400,
      "ERR_INVALID",
      "path.role must be one of manager, worker",
    );
    assertError(
      await send(s.tcp, "DELETE", "/v1/nodes/n1?force=yes"),
      400,
      "ERR_INVALID",
      "query.force must be one of 1, 0",
    );
    assertError(
      await send(s.tcp, "GET", "/v1/tasks?servce=web"),
      400,
      "ERR_INVALID",
      "query.servce is not a known field",
    );
  });

  test("a body that is not JSON, or too large, is refused in the same shape", async (t) => {
    const s = await setup(t);
    assertError(
      await send(s.tcp, "POST", "/v1/services", "{spec:"),
      400,
      "ERR_INVALID",
      /^invalid JSON body: /,
    );
    assertError(
      await send(s.tcp, "POST", "/v1/services", JSON.stringify({ pad: "x".repeat(1100 * 1024) })),
      413,
      "ERR_INVALID",
      /too large/,
    );
    assertError(
      await send(s.tcp, "POST", "/v1/services", "spec", { "Content-Type": "text/csv" }),
      415,
      "ERR_INVALID",
      /Unsupported Media Type/,
    );
  });
});

describe("daemon API: one error shape", () => {
  test("an unknown route or method is 404 naming it", async (t) => {
    const s = await setup(t);
    assertError(
      await send(s.tcp, "GET", "/v1/nope"),
      404,
      "ERR_NOT_FOUND",
      "no such endpoint: GET /v1/nope",
    );
    assertError(
      await send(s.unix, "PUT", "/v1/services?x=1"),
      404,
      "ERR_NOT_FOUND",
      "no such endpoint: PUT /v1/services",
    );
  });

  test("unknown objects are 404, conflicts 409, a failing handler 500", async (t) => {
    const s = await setup(t, {
      info: () => {
        throw new Error("boom");
      },
    });
    assertError(
      await send(s.tcp, "GET", "/v1/services/nosuch"),
      404,
      "ERR_NOT_FOUND",
      "service nosuch not found",
    );
    assertError(
      await send(s.tcp, "GET", "/v1/services/nosuch/logs"),
      404,
      "ERR_NOT_FOUND",
      "service nosuch not found",
    );
    assertReply(
      await send(s.tcp, "POST", "/v1/services", { spec: spec() }),
      apiRoutes.createService,
    );
    assertError(
      await send(s.tcp, "POST", "/v1/services", { spec: spec() }),
      409,
      "ERR_NAME_IN_USE",
      'service name "web" is already in use',
    );
    assertError(await send(s.tcp, "GET", "/v1/info"), 500, "ERR_INTERNAL", "boom");
  });
});

describe("daemon API: replies", () => {
  test("every route answers what its reply schema says, over TCP and the unix socket", async (t) => {
    const s = await setup(t);
    for (const target of [s.tcp, s.unix]) {
      assertReply(await send(target, "GET", "/v1/info"), apiRoutes.info);
      assertReply(await send(target, "GET", "/v1/nodes"), apiRoutes.listNodes);
      assertReply(await send(target, "GET", "/v1/nodes/n1"), apiRoutes.getNode);
    }
    const created = await send(s.tcp, "POST", "/v1/services", { spec: spec() });
    assertReply(created, apiRoutes.createService);
    const id = (created.json as { id: string }).id;

    const list = await send(s.tcp, "GET", "/v1/services");
    assertReply(list, apiRoutes.listServices);
    assert.deepEqual(
      (list.json as Array<{ id: string; running: number; desired: number }>).map((x) => [
        x.id,
        x.running,
        x.desired,
      ]),
      [[id, 0, 1]],
    );
    assertReply(await send(s.tcp, "GET", `/v1/services/${id.slice(0, 5)}`), apiRoutes.getService);

    const updated = await send(s.tcp, "POST", "/v1/services/web/update", {
      spec: spec({ env: { A: "1" } }),
    });
    assertReply(updated, apiRoutes.updateService);
    assert.equal((updated.json as { version: number }).version, 2);
    const scaled = await send(s.tcp, "POST", "/v1/services/web/scale", { replicas: 4 });
    assertReply(scaled, apiRoutes.scaleService);
    assert.deepEqual((scaled.json as { spec: ServiceSpec }).spec.mode, {
      replicated: { replicas: 4 },
    });
    // The CLI posts without a body but with a JSON content type: accepted as `{}`.
    const rolled = await send(s.tcp, "POST", "/v1/services/web/rollback");
    assertReply(rolled, apiRoutes.rollbackService);
    assert.equal(
      (rolled.json as { updateStatus: { state: string } }).updateStatus.state,
      "rollback_started",
    );

    const nodeUpd = await send(s.tcp, "POST", "/v1/nodes/n1/update", {
      availability: "drain",
      labelAdd: { zone: "a" },
      labelRm: [],
    });
    assertReply(nodeUpd, apiRoutes.updateNode);
    assert.deepEqual((nodeUpd.json as { labels: object }).labels, { zone: "a" });

    const tok = await send(s.tcp, "GET", "/v1/swarm/join-token/worker?rotate=1");
    assertReply(tok, apiRoutes.joinToken);
    assert.deepEqual(tok.json, { token: "SHOAL-1-worker-new" });
    const set = await send(s.tcp, "POST", "/v1/swarm/update", { heartbeatMs: 2000 });
    assertReply(set, apiRoutes.updateSwarm);
    assert.deepEqual(set.json, { heartbeatMs: 2000, maxReplicas: 10_000 });
    assertReply(await send(s.tcp, "GET", "/v1/tasks?service=web"), apiRoutes.listTasks);

    const removed = await send(s.tcp, "DELETE", "/v1/services/web");
    assertReply(removed, apiRoutes.removeService);
    assert.equal(
      s.store.view((tx) => tx.listServices().length),
      0,
    );
    assertReply(await send(s.tcp, "POST", "/v1/swarm/leave?force=1"), apiRoutes.leave);
  });

  test("logs stream as text: every task's lines, tail and follow passed on", async (t) => {
    const s = await setup(t);
    assertReply(
      await send(s.tcp, "POST", "/v1/services", { spec: spec() }),
      apiRoutes.createService,
    );
    const svc = s.store.view((tx) => tx.getServiceByName("web")!);
    const mk = (id: string, slot: number): Task => ({
      id,
      serviceId: svc.id,
      serviceName: "web",
      slot,
      nodeId: "n1",
      specVersion: 1,
      spec: svc.spec,
      desiredState: "running",
      status: {
        state: "running",
        timestamp: 1,
        message: "",
        err: "",
        exitCode: null,
        pid: null,
        containerId: null,
      },
      hostPorts: {},
      notBefore: 0,
      createdAt: slot,
      updatedAt: 1,
    });
    await s.store.update((tx) => {
      tx.putTask(mk("t2", 2));
      tx.putTask(mk("t1", 1));
    });
    const r = await send(s.unix, "GET", "/v1/services/web/logs?tail=5&follow=1");
    assert.equal(r.status, 200);
    assert.match(r.type, /^text\/plain/);
    assert.deepEqual(r.text.split("\n").sort(), ["", "web.1 | hello", "web.2 | hello"]);
    assert.deepEqual(
      s.logCalls.sort((a, b) => a.taskId.localeCompare(b.taskId)),
      [
        { taskId: "t1", tail: 5, follow: true },
        { taskId: "t2", tail: 5, follow: true },
      ],
    );
    s.logCalls.length = 0;
    await send(s.tcp, "GET", "/v1/services/web/logs?tail=all");
    assert.deepEqual(
      s.logCalls.map((c) => [c.tail, c.follow]),
      [
        [-1, false],
        [-1, false],
      ],
    );
    assertError(
      await send(s.tcp, "GET", "/v1/services/web/logs?tail=some"),
      400,
      "ERR_INVALID",
      "query.tail must be a number of lines or all",
    );
  });
});

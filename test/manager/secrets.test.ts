// Secrets and configs through the HTTP API over an in-memory store and a real Manager: create,
// list, inspect and rm with swarmkit's errors (duplicate name, in use, size); a secret's data is
// never in any reply; a service's references resolved to id + name (`secret not found: X`); and
// the dispatcher's per-node selection of the data (only the secrets a node's tasks use, on that
// node's subject; a message too large for the bus is reported and spares the other nodes).

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { Api, type ApiHooks } from "../../src/manager/api.js";
import { apiRoutes } from "../../src/api/http.js";
import { matches } from "../../src/api/schema.js";
import { filesForTasks } from "../../src/manager/secrets.js";
import {
  FILE_DATA_MAX_BYTES,
  defaultServiceSpec,
  type Service,
  type ServiceSpec,
} from "../../src/api/types.js";
import { connect, JSONCodec } from "nats";
import { Dispatcher } from "../../src/manager/dispatcher.js";
import { AGENT_USER, assignSubject, type Assignments } from "../../src/api/bus.js";
import { checkFor } from "../helpers/servers.js";
import { BUS_AGENT_PASSWORD, BUS_SECRET, quietLog, startBus } from "../helpers/bus.js";
import { node, service, task } from "../store/helpers.js";

interface Reply {
  status: number;
  json: unknown;
  body: string;
}

async function setup(t: TestContext) {
  const store = createMemoryStore();
  const manager = new Manager(store, quietLog, defaultManagerOptions());
  await store.update((tx) => {
    tx.putNode(node("n1", { role: "manager", addr: "192.168.1.1" }));
    tx.putNode(node("n2", { addr: "192.168.1.2" }));
  });
  const api = new Api(manager, { checkPortsFree: async () => {} } as unknown as ApiHooks);
  t.after(() => api.close());
  const call = async (method: string, url: string, body?: unknown): Promise<Reply> => {
    const res = await api.app.inject({
      method: method as "GET",
      url,
      ...(body !== undefined ? { payload: body as object } : {}),
    });
    return {
      status: res.statusCode,
      json: res.body ? JSON.parse(res.body) : undefined,
      body: res.body,
    };
  };
  const ok = async <T>(method: string, url: string, body?: unknown): Promise<T> => {
    const r = await call(method, url, body);
    assert.equal(r.status, 200, `${method} ${url}: ${r.body}`);
    return r.json as T;
  };
  return { store, manager, call, ok };
}

const b64 = (s: string) => Buffer.from(s).toString("base64");
const VALUE = "hunter2-very-secret";

function spec(name: string, over: Partial<ServiceSpec> = {}): ServiceSpec {
  return { ...defaultServiceSpec(name), command: ["sleep", "1000"], ...over };
}

const ref = (source: string, target = source) => ({
  source,
  target,
  uid: "0",
  gid: "0",
  mode: 0o444,
});

test("secrets: create, list, inspect, rm; the data is in no reply; Docker's errors", async (t) => {
  const s = await setup(t);
  const made = await s.ok<{ id: string; name: string }>("POST", "/v1/secrets", {
    name: "db_pass",
    labels: { env: "dev" },
    data: b64(VALUE),
  });
  assert.ok(matches(apiRoutes.createSecret.reply, made));
  assert.equal(made.name, "db_pass");

  const dup = await s.call("POST", "/v1/secrets", { name: "db_pass", data: b64("x") });
  assert.equal(dup.status, 409);
  assert.equal(
    (dup.json as { message: string }).message,
    "rpc error: code = AlreadyExists desc = secret db_pass already exists",
  );

  for (const r of [
    await s.call("GET", "/v1/secrets"),
    await s.call("GET", `/v1/secrets/db_pass`),
    await s.call("GET", `/v1/secrets/${made.id.slice(0, 5)}`),
  ]) {
    assert.equal(r.status, 200, r.body);
    assert.ok(!r.body.includes(b64(VALUE)) && !r.body.includes(VALUE), r.body);
    assert.ok(!r.body.includes('"data"'), r.body);
  }
  const list = await s.ok<unknown[]>("GET", "/v1/secrets");
  assert.ok(matches(apiRoutes.listSecrets.reply, list));
  assert.equal(list.length, 1);

  // Size: empty and too large are refused with swarmkit's words; bad base64 by the schema.
  const tooBig = Buffer.alloc(FILE_DATA_MAX_BYTES).toString("base64");
  const big = await s.call("POST", "/v1/secrets", { name: "big", data: tooBig });
  assert.equal(big.status, 400);
  assert.match(
    (big.json as { message: string }).message,
    /secret data must be larger than 0 and less than 512000 bytes/,
  );
  const empty = await s.call("POST", "/v1/secrets", { name: "empty", data: "" });
  assert.equal(empty.status, 400);
  const bad = await s.call("POST", "/v1/secrets", { name: "bad", data: "not base64!" });
  assert.equal(bad.status, 400);
  assert.match((bad.json as { message: string }).message, /data must be base64/);
  const badName = await s.call("POST", "/v1/secrets", { name: "-x", data: b64("x") });
  assert.equal(badName.status, 400);

  const missing = await s.call("GET", "/v1/secrets/nope");
  assert.equal(missing.status, 404);

  const gone = await s.ok<{ id: string }>("DELETE", "/v1/secrets/db_pass");
  assert.equal(gone.id, made.id);
  assert.deepEqual(await s.ok("GET", "/v1/secrets"), []);
});

test("configs: inspect shows the data, lists do not; duplicate name", async (t) => {
  const s = await setup(t);
  const made = await s.ok<{ id: string }>("POST", "/v1/configs", {
    name: "nginx.conf",
    data: b64("server {}"),
  });
  const one = await s.ok<{ data: string }>("GET", "/v1/configs/nginx.conf");
  assert.ok(matches(apiRoutes.getConfig.reply, one));
  assert.equal(Buffer.from(one.data, "base64").toString(), "server {}");
  const list = await s.call("GET", "/v1/configs");
  assert.ok(!list.body.includes('"data"'));
  const dup = await s.call("POST", "/v1/configs", { name: "nginx.conf", data: b64("y") });
  assert.equal(
    (dup.json as { message: string }).message,
    "rpc error: code = AlreadyExists desc = config nginx.conf already exists",
  );
  await s.ok("DELETE", `/v1/configs/${made.id}`);
});

test("a service's secrets and configs: resolved to id + name, in use, not found", async (t) => {
  const s = await setup(t);
  const sec = await s.ok<{ id: string }>("POST", "/v1/secrets", { name: "pw", data: b64(VALUE) });
  const cfg = await s.ok<{ id: string }>("POST", "/v1/configs", { name: "app", data: b64("a=1") });

  const nf = await s.call("POST", "/v1/services", {
    spec: spec("web", { secrets: [ref("nope")] }),
  });
  assert.equal(nf.status, 404);
  assert.equal((nf.json as { message: string }).message, "secret not found: nope");
  const nfc = await s.call("POST", "/v1/services", {
    spec: spec("web", { configs: [ref("nope", "/nope")] }),
  });
  assert.equal((nfc.json as { message: string }).message, "config not found: nope");
  const traversal = await s.call("POST", "/v1/services", {
    spec: spec("web", { secrets: [ref("pw", "../../etc/passwd")] }),
  });
  assert.equal(traversal.status, 400);

  // By id prefix: stored with the id and the name.
  const svc = await s.ok<Service>("POST", "/v1/services", {
    spec: spec("web", {
      secrets: [ref(sec.id.slice(0, 6), "password")],
      configs: [ref("app", "/etc/app.conf")],
    }),
  });
  assert.deepEqual(svc.spec.secrets, [{ ...ref("pw", "password"), id: sec.id }]);
  assert.deepEqual(svc.spec.configs, [{ ...ref("app", "/etc/app.conf"), id: cfg.id }]);
  // The stored spec sent back (as `service update` does): nothing changes.
  const same = await s.ok<Service>("POST", "/v1/services/web/update", { spec: svc.spec });
  assert.equal(same.version, svc.version);
  await s.ok("POST", "/v1/services", { spec: spec("api", { secrets: [ref("pw")] }) });

  const inUse = await s.call("DELETE", "/v1/secrets/pw");
  assert.equal(inUse.status, 409);
  assert.equal(
    (inUse.json as { message: string }).message,
    "rpc error: code = InvalidArgument desc = secret 'pw' is in use by the following services: api, web",
  );
  await s.ok("DELETE", "/v1/services/api");
  const inUse1 = await s.call("DELETE", "/v1/secrets/pw");
  assert.equal(
    (inUse1.json as { message: string }).message,
    "rpc error: code = InvalidArgument desc = secret 'pw' is in use by the following service: web",
  );
  const cfgInUse = await s.call("DELETE", "/v1/configs/app");
  assert.equal(
    (cfgInUse.json as { message: string }).message,
    "rpc error: code = InvalidArgument desc = config 'app' is in use by the following service: web",
  );

  // An update that drops the secret frees it.
  await s.ok("POST", "/v1/services/web/update", { spec: spec("web") });
  await s.ok("DELETE", "/v1/secrets/pw");
});

test("the data a node is sent: only the secrets and configs its live tasks use", async (t) => {
  const s = await setup(t);
  const a = await s.ok<{ id: string }>("POST", "/v1/secrets", { name: "a", data: b64("A") });
  const b = await s.ok<{ id: string }>("POST", "/v1/secrets", { name: "b", data: b64("B") });
  await s.ok("POST", "/v1/services", {
    spec: spec("one", { secrets: [ref("a")], mode: { replicated: { replicas: 2 } } }),
  });
  await s.ok("POST", "/v1/services", { spec: spec("two", { secrets: [ref("b")] }) });
  s.manager.markDirty();
  await s.manager.tick();
  const tasks = s.store.view((tx) => tx.listTasks());
  assert.equal(tasks.length, 3);
  const one = tasks.filter((x) => x.serviceName === "one");
  const files = s.store.view((tx) => filesForTasks(tx, one));
  // Two tasks, one secret: sent once; "b" is not sent for them.
  assert.deepEqual(files.secrets, [{ id: a.id, data: b64("A") }]);
  assert.deepEqual(files.configs, []);
  const two = tasks.filter((x) => x.serviceName === "two");
  assert.deepEqual(s.store.view((tx) => filesForTasks(tx, two)).secrets, [
    { id: b.id, data: b64("B") },
  ]);
  // A task that ended needs nothing.
  const ended = { ...two[0]!, status: { ...two[0]!.status, state: "complete" as const } };
  assert.deepEqual(s.store.view((tx) => filesForTasks(tx, [ended])).secrets, []);
});

test("the dispatcher sends each node only its tasks' secrets; one too large for the bus spares the others", async (t) => {
  const url = await startBus(t);
  const store = createMemoryStore();
  const manager = new Manager(store, quietLog, defaultManagerOptions());
  const big = (c: string) => Buffer.alloc(450 * 1024, c).toString("base64");
  const withSecrets = (ids: string[]) => ({
    ...defaultServiceSpec("x"),
    secrets: ids.map((id) => ({ ...ref(id), id })),
  });
  const assigned = (id: string, nodeId: string, ids: string[]) =>
    task(id, "s1", nodeId, {
      spec: withSecrets(ids),
      status: { ...task("x", "s1").status, state: "assigned" },
    });
  await store.update((tx) => {
    tx.putNode(node("w1"));
    tx.putNode(node("w2"));
    tx.putService(service("s1", "web"));
    const put = (id: string, data: string) =>
      tx.putSecret({ id, name: id, labels: {}, data, createdAt: 1, updatedAt: 1 });
    put("small", b64(VALUE));
    put("big1", big("a"));
    put("big2", big("b"));
    tx.putTask(assigned("t1", "w1", ["small"]));
    tx.putTask(assigned("t2", "w2", ["big1", "big2"]));
  });
  const errors: string[] = [];
  const log = { ...quietLog, error: (m: string) => errors.push(m) };
  const dispatcher = new Dispatcher(Object.assign(Object.create(manager) as Manager, { log }), {
    natsUrl: url,
    clusterSecret: BUS_SECRET,
  });
  const agent = await connect({ servers: url, user: AGENT_USER, pass: BUS_AGENT_PASSWORD });
  t.after(() => agent.close());
  const got = new Map<string, Assignments[]>([
    ["w1", []],
    ["w2", []],
  ]);
  for (const id of ["w1", "w2"]) {
    agent.subscribe(assignSubject(id), {
      callback: (_e, msg) => got.get(id)!.push(JSONCodec().decode(msg.data) as Assignments),
    });
  }
  await agent.flush();
  await dispatcher.start();
  t.after(() => dispatcher.stop());
  dispatcher.publishAll(true);
  assert.ok(await checkFor(5000, () => got.get("w1")!.length > 0 && errors.length > 0));
  assert.deepEqual(got.get("w1")![0]!.secrets, [{ id: "small", data: b64(VALUE) }]);
  assert.equal(got.get("w2")!.length, 0);
  assert.match(errors[0]!, /assignments for node w2 not sent/);
  assert.ok(!errors.join("\n").includes(big("a").slice(0, 64)));
});

// The Consul catalog as shoal's state shows it (pure): instances from tasks (address, port,
// check, tags, meta), nodes with their serfHealth check, the ?passing and ?tag filters, the DNS
// table of healthy instances; and the blocking indexes, which move when what an answer shows
// changes and wake a waiting query then, and not before.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  buildCatalog,
  catalogNodes,
  catalogServices,
  healthService,
  healthState,
  metaOf,
  nodeNames,
  tagsOf,
  taskCheck,
  taskEndpoint,
  type CatalogInput,
  type EntryIndexes,
} from "../../src/manager/consul/catalog.js";
import { addrLabel, consulDnsTable } from "../../src/manager/consul/dns.js";
import { ConsulIndexes } from "../../src/manager/consul/blocking.js";
import { createMemoryStore } from "../../src/store/memory.js";
import { defaultServiceSpec } from "../../src/api/model.js";
import type { Task, TaskHealth } from "../../src/api/types.js";
import { node, service, task } from "../store/helpers.js";

const idx: EntryIndexes = { service: () => 7, nodes: () => 3 };
const health = (status: TaskHealth["status"]): TaskHealth => ({
  status,
  failingStreak: status === "unhealthy" ? 3 : 0,
  log: status === "unhealthy" ? [{ start: 1, end: 2, exitCode: 1, output: "boom" }] : [],
});

function webTask(id: string, nodeId: string, over: Partial<Task> = {}, state = "running"): Task {
  const t = task(id, "s-web", nodeId, over);
  return {
    ...t,
    serviceName: "web",
    spec: { ...defaultServiceSpec("web"), ports: [] },
    status: { ...t.status, state: state as Task["status"]["state"] },
    ...over,
  };
}

const port = (published: number, target: number) => ({
  published,
  target,
  protocol: "tcp" as const,
  mode: "ingress" as const,
});

test("taskEndpoint: overlay address and target; else the node's address and the task's own port", () => {
  const n = node("a", { addr: "192.168.1.1" });
  const spec = (o: object) => ({ ...defaultServiceSpec("web"), ...o });
  const cases: Array<[string, Partial<Task>, { address: string; port: number }]> = [
    ["no ports", { spec: spec({ ports: [] }) }, { address: "192.168.1.1", port: 0 }],
    [
      "host networking: the port the agent chose",
      { spec: spec({ ports: [port(8080, 80)] }), hostPorts: { "80": 31000 } },
      { address: "192.168.1.1", port: 31000 },
    ],
    [
      "no chosen port: the published one",
      { spec: spec({ ports: [port(8080, 80), port(9090, 90)] }), hostPorts: {} },
      { address: "192.168.1.1", port: 8080 },
    ],
    [
      "on an overlay: its address there and the target port",
      {
        spec: spec({ ports: [port(8080, 80)], network: "bridge" }),
        networks: [{ networkId: "n1", addr: "10.0.1.5/24" }],
      },
      { address: "10.0.1.5", port: 80 },
    ],
  ];
  for (const [what, over, want] of cases) {
    assert.deepEqual(taskEndpoint(webTask("t", "a", over), n), want, what);
  }
});

test("taskCheck: passing when running and not unhealthy; critical otherwise, saying why", () => {
  const cases: Array<[string, Partial<Task["status"]>, string, string]> = [
    ["running, no check", { state: "running" }, "passing", "task running"],
    [
      "running, healthy",
      { state: "running", health: health("healthy") },
      "passing",
      "task running, healthy",
    ],
    [
      "running, unhealthy",
      { state: "running", health: health("unhealthy") },
      "critical",
      "task unhealthy: boom",
    ],
    ["starting", { state: "starting", health: health("starting") }, "critical", "task starting"],
    ["assigned", { state: "assigned" }, "critical", "task assigned"],
  ];
  for (const [what, status, want, output] of cases) {
    const t = webTask("t", "a");
    const c = taskCheck({ ...t, status: { ...t.status, ...status } });
    assert.deepEqual(c, { status: want, output }, what);
  }
});

test("tags and meta come from labels; node names are made unique", () => {
  assert.deepEqual(tagsOf({ "consul.tags": " a, b,,a ,c" }), ["a", "b", "c"]);
  assert.deepEqual(tagsOf({}), []);
  assert.deepEqual(metaOf({ "consul.meta.version": "2", "consul.meta.": "x", other: "y" }), {
    version: "2",
  });
  const names = nodeNames([
    node("a", { hostname: "h1" }),
    node("b", { hostname: "h1" }),
    node("c", { hostname: "h2" }),
  ]);
  assert.deepEqual([...names.values()], ["h1-a", "h1-b", "h2"]);
});

function input(): CatalogInput {
  const svc = service("s-web", "web", {
    spec: { ...defaultServiceSpec("web"), labels: { "consul.tags": "v1,edge" } },
  });
  return {
    nodes: [
      node("a", { hostname: "ha", addr: "192.168.1.1" }),
      node("b", { hostname: "hb", addr: "192.168.1.2", status: "down" }),
    ],
    services: [svc],
    tasks: [
      webTask("t1", "a", { hostPorts: {} }),
      webTask("t2", "a", {
        status: { ...webTask("x", "a").status, state: "running", health: health("unhealthy") },
      }),
      webTask("t3", "b"), // its node is down
      webTask("t4", "a", { desiredState: "shutdown" }), // not an instance
      webTask("t5", "a", {}, "failed"), // finished: not an instance
      webTask("t6", "", {}, "pending"), // not placed: not an instance
    ],
    external: [
      {
        id: "ext-1",
        name: "billing",
        tags: ["x"],
        address: "10.9.9.9",
        port: 443,
        meta: {},
        nodeId: "a",
        createIndex: 2,
      },
    ],
  };
}

test("the catalog: instances, services with their tags, nodes with serfHealth", () => {
  const c = buildCatalog(input());
  assert.deepEqual(
    c.instances.map((i) => [i.service, i.id, i.check?.status ?? "-"]),
    [
      ["billing", "ext-1", "-"],
      ["web", "t1", "passing"],
      ["web", "t2", "critical"],
      ["web", "t3", "passing"],
    ],
  );
  assert.deepEqual(catalogServices(c), { billing: ["x"], web: ["edge", "v1"] });
  assert.deepEqual(
    catalogNodes(c, idx).map((n) => [n.Node, n.Address, n.Datacenter, n.ModifyIndex]),
    [
      ["ha", "192.168.1.1", "dc1", 3],
      ["hb", "192.168.1.2", "dc1", 3],
    ],
  );
  const table: Array<[string, { passing?: boolean; tags?: string[] }, string[]]> = [
    ["web", {}, ["t1", "t2", "t3"]],
    ["web", { passing: true }, ["t1"]], // t2 unhealthy, t3's node down
    ["web", { tags: ["edge"] }, ["t1", "t2", "t3"]],
    ["web", { tags: ["edge", "nope"] }, []],
    ["billing", { passing: true }, ["ext-1"]],
    ["nothing", {}, []],
  ];
  for (const [name, f, want] of table) {
    assert.deepEqual(
      healthService(c, name, f, idx).map((e) => e.Service.ID),
      want,
      `${name} ${JSON.stringify(f)}`,
    );
  }
  const [t1] = healthService(c, "web", { passing: true }, idx);
  assert.deepEqual(
    t1!.Checks.map((k) => [k.CheckID, k.Status, k.ServiceID]),
    [
      ["serfHealth", "passing", ""],
      ["service:t1", "passing", "t1"],
    ],
  );
  assert.equal(t1!.Node.Node, "ha");
  assert.deepEqual(t1!.Service.Tags, ["v1", "edge"]);
  assert.equal(t1!.Service.ModifyIndex, 7);
  assert.deepEqual(
    healthState(c, "critical", idx).map((k) => `${k.Node}/${k.CheckID}`),
    ["hb/serfHealth", "ha/service:t2"],
  );
  assert.equal(healthState(c, "any", idx).length, 2 + 3);
});

test("the DNS table: healthy instances only, A and SRV, for any asking address", () => {
  const inp = input();
  inp.tasks = [
    ...inp.tasks,
    webTask("t7", "a", {
      spec: { ...defaultServiceSpec("web"), ports: [port(8080, 80)] },
      hostPorts: { "80": 31007 },
    }),
  ];
  const table = consulDnsTable(buildCatalog(inp));
  assert.deepEqual(table.clients, { "*": ["consul"] });
  const web = table.networks.consul!.services.web!;
  assert.deepEqual(web.taskAddrs, ["192.168.1.1"]);
  assert.deepEqual(
    web.srv?.map((s) => [s.target, s.port]),
    [
      ["c0a80101.addr.dc1.consul", 0],
      ["c0a80101.addr.dc1.consul", 31007],
    ],
  );
  assert.deepEqual(web.aliases, ["_web._tcp"]);
  assert.equal(table.networks.consul!.tasks["c0a80101.addr.dc1"], "192.168.1.1");
  assert.equal(addrLabel("10.0.1.5"), "0a000105");
});

test("blocking: a service's index moves when its answer changes, and wakes a waiting query then", async () => {
  const store = createMemoryStore();
  await store.update((tx) => {
    tx.putNode(node("a", { hostname: "ha" }));
    tx.putService(service("s-web", "web"));
    tx.putService(service("s-db", "db"));
    tx.putTask(webTask("t1", "a"));
  });
  const ix = new ConsulIndexes(store);
  const start = ix.service("web");
  assert.equal(
    start,
    store.view((tx) => tx.revision()),
  );
  let returned = false;
  const waiting = ix.block(() => ix.service("web"), start, 60_000).then(() => (returned = true));

  // Another service's task, and a change of t1 Consul does not show (its timestamp): no wake-up.
  const dbTask = { ...webTask("d1", "a"), serviceId: "s-db", serviceName: "db" };
  await store.update((tx) => tx.putTask(dbTask));
  await store.update((tx) => {
    const t = tx.getTask("t1")!;
    tx.putTask({ ...t, status: { ...t.status, timestamp: 99 } });
  });
  await new Promise((r) => setImmediate(r)); // the waiters' turn
  await new Promise((r) => setImmediate(r));
  assert.equal(returned, false, "an unrelated change does not answer the query");
  assert.equal(ix.service("web"), start);
  assert.ok(ix.service("db") > start, "db's own index moved");

  // web scales: a second running task.
  await store.update((tx) => tx.putTask(webTask("t2", "a")));
  await waiting;
  assert.equal(returned, true);
  assert.equal(
    ix.service("web"),
    store.view((tx) => tx.revision()),
  );

  // ?index past the current one: waits until the wait runs out.
  const t0 = ix.service("web");
  await ix.block(() => ix.service("web"), t0, 1);
  assert.equal(ix.service("web"), t0);
  // Index 0, or an older one: no wait at all.
  await ix.block(() => ix.service("web"), 0, 60_000);
  await ix.block(() => ix.service("web"), t0 - 1, 60_000);
  ix.close();
});

// What a node is told about networks (pure): its networks with its own address, the peers to
// tunnel to and the VIPs with their running backends; and its DNS table, scoped to the
// networks of its tasks. A task that stops running leaves both at once.

import { test } from "node:test";
import assert from "node:assert/strict";
import { dnsTableOf, nodeNetworksOf, taskDnsName } from "../../src/manager/network-view.js";
import type { Task } from "../../src/api/types.js";
import { defaultServiceSpec } from "../../src/api/model.js";
import { network, node, service, task } from "../store/helpers.js";

const running = { state: "running" as const, timestamp: 2, message: "started", err: "" };
const on = (networkId: string, addr: string) => ({ networks: [{ networkId, addr }] });
function runningTask(id: string, svc: string, nodeId: string, addr: string, net = "n1"): Task {
  const t = task(id, svc, nodeId, on(net, addr));
  return { ...t, serviceName: svc, status: { ...t.status, ...running } };
}

const front = network("n1", "front", {
  nodeAddrs: { a: "10.0.1.2", b: "10.0.1.3" },
});
const back = network("n2", "back", {
  subnet: "10.0.2.0/24",
  vni: 4097,
  internal: true,
  nodeAddrs: { a: "10.0.2.2" },
});
const web = service("web", "web", {
  spec: { ...defaultServiceSpec("web"), networks: [{ target: "n1", aliases: ["www"] }] },
  virtualIps: [{ networkId: "n1", addr: "10.0.1.200" }],
});
const db = service("db", "db", {
  spec: {
    ...defaultServiceSpec("db"),
    networks: [{ target: "n2" }],
    endpointMode: "dnsrr",
  },
});
const nodes = [node("a", { addr: "192.168.1.1" }), node("b", { addr: "192.168.1.2" })];

test("a node's networks: its address, the peers running the same network, the VIPs", () => {
  const tasks = [
    runningTask("t1", "web", "a", "10.0.1.5/24"),
    runningTask("t2", "web", "b", "10.0.1.6/24"),
    // starting, not yet a backend
    task("t3", "web", "b", on("n1", "10.0.1.7/24")),
    runningTask("t4", "db", "a", "10.0.2.5/24", "n2"),
  ];
  const view = { networks: [front, back], services: [web, db], tasks, nodes };
  const a = nodeNetworksOf("a", view);
  assert.deepEqual(
    a.map((n) => [n.name, n.nodeAddr, n.peers, n.vips, n.internal]),
    [
      [
        "front",
        "10.0.1.2/24",
        ["192.168.1.2"],
        [{ addr: "10.0.1.200", backends: ["10.0.1.5", "10.0.1.6"] }],
        false,
      ],
      ["back", "10.0.2.2/24", [], [], true],
    ],
  );
  // b has no task on `back`: it is not told about it.
  assert.deepEqual(
    nodeNetworksOf("b", view).map((n) => n.name),
    ["front"],
  );
  // A node that is down is no peer.
  const down = { ...view, nodes: [nodes[0]!, { ...nodes[1]!, status: "down" as const }] };
  assert.deepEqual(nodeNetworksOf("a", down)[0]!.peers, []);
});

test("health: a task not yet healthy, or found unhealthy, is no VIP backend and not in DNS", () => {
  const health = (status: "starting" | "healthy" | "unhealthy") => ({
    status,
    failingStreak: status === "unhealthy" ? 3 : 0,
    log: [],
  });
  const healthy = runningTask("t1", "web", "a", "10.0.1.5/24");
  healthy.status.health = health("healthy");
  const starting = task("t2", "web", "b", on("n1", "10.0.1.6/24"));
  starting.status = { ...starting.status, state: "starting", health: health("starting") };
  const sick = runningTask("t3", "web", "b", "10.0.1.7/24");
  sick.status.health = health("unhealthy");
  const view = { networks: [front], services: [web], tasks: [healthy, starting, sick], nodes };
  assert.deepEqual(nodeNetworksOf("a", view)[0]!.vips, [
    { addr: "10.0.1.200", backends: ["10.0.1.5"] },
  ]);
  const names = dnsTableOf("a", view);
  const txt = JSON.stringify(names);
  assert.ok(txt.includes("10.0.1.5"), txt);
  assert.ok(!txt.includes("10.0.1.6") && !txt.includes("10.0.1.7"), txt);
});

test("a network the node has no address on yet is left for the next message", () => {
  const tasks = [runningTask("t1", "web", "c", "10.0.1.5/24")];
  assert.deepEqual(nodeNetworksOf("c", { networks: [front], services: [web], tasks, nodes }), []);
});

test("the DNS table: names scoped to the networks of the asking task", () => {
  const t1 = runningTask("t1", "web", "a", "10.0.1.5/24");
  const t4 = runningTask("t4", "db", "a", "10.0.2.5/24", "n2");
  const t5 = { ...runningTask("t5", "db", "b", "10.0.2.6/24", "n2"), slot: 2 };
  const view = { networks: [front, back], services: [web, db], tasks: [t1, t4, t5], nodes };
  const table = dnsTableOf("a", view);
  assert.deepEqual(table.clients, { "10.0.1.5": ["front"], "10.0.2.5": ["back"] });
  assert.deepEqual(table.networks["front"]!.services, {
    web: { endpointMode: "vip", vip: "10.0.1.200", taskAddrs: ["10.0.1.5"], aliases: ["www"] },
  });
  assert.deepEqual(table.networks["back"]!.services, {
    db: { endpointMode: "dnsrr", taskAddrs: ["10.0.2.5", "10.0.2.6"], aliases: [] },
  });
  assert.deepEqual(table.networks["back"]!.tasks, {
    [taskDnsName(t4)]: "10.0.2.5",
    "db.2.t5": "10.0.2.6",
  });
});

test("a task that stops running leaves the answers and the VIP backends at once", () => {
  const t1 = runningTask("t1", "web", "a", "10.0.1.5/24");
  const t2 = runningTask("t2", "web", "b", "10.0.1.6/24");
  const view = { networks: [front], services: [web], tasks: [t1, t2], nodes };
  for (const stopped of [
    { ...t2, status: { ...t2.status, state: "failed" as const } },
    { ...t2, desiredState: "shutdown" as const },
  ]) {
    const v = { ...view, tasks: [t1, stopped] };
    assert.deepEqual(dnsTableOf("a", v).networks["front"]!.services["web"]!.taskAddrs, [
      "10.0.1.5",
    ]);
    assert.deepEqual(nodeNetworksOf("a", v)[0]!.vips[0]!.backends, ["10.0.1.5"]);
    assert.equal(Object.keys(dnsTableOf("a", v).networks["front"]!.tasks).length, 1);
  }
});

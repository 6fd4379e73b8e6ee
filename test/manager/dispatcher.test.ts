// The dispatcher on a real (in-process) message server with the bus users: what it sends a
// node and when. A store change sends a node its set only when something the agent acts on
// changed; a status change alone is not resent; the timer resends everything; heartbeats are
// recorded in memory (no store write) and bring a down node back.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { connect, JSONCodec, type NatsConnection } from "nats";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { Dispatcher, endpointsOf } from "../../src/manager/dispatcher.js";
import { AGENT_USER, assignSubject, hbSubject, type Assignments } from "../../src/api/bus.js";
import type { Task } from "../../src/api/types.js";
import { checkFor } from "../helpers/servers.js";
import { BUS_AGENT_PASSWORD, BUS_SECRET, quietLog, startBus } from "../helpers/bus.js";
import { node, service, task } from "../store/helpers.js";

const codec = JSONCodec<unknown>();

async function setup(t: TestContext, heartbeatMs: number) {
  const url = await startBus(t);
  const store = createMemoryStore();
  const manager = new Manager(store, quietLog, defaultManagerOptions());
  await manager.updateSwarm({ heartbeatMs });
  await store.update((tx) => {
    tx.putNode(node("w1"));
    tx.putService(service("s1", "web"));
    tx.putTask(
      task("t1", "s1", "w1", { status: { ...task("x", "s1").status, state: "assigned" } }),
    );
    tx.putTask(
      task("t2", "s1", "w1", { status: { ...task("x", "s1").status, state: "assigned" } }),
    );
  });
  const dispatcher = new Dispatcher(manager, {
    natsUrl: url,
    clusterSecret: BUS_SECRET,
  });
  await dispatcher.start();
  t.after(() => dispatcher.stop());
  const agent: NatsConnection = await connect({
    servers: url,
    user: AGENT_USER,
    pass: BUS_AGENT_PASSWORD,
  });
  t.after(() => agent.close());
  const got: Assignments[] = [];
  agent.subscribe(assignSubject("w1"), {
    callback: (_err, msg) => got.push(codec.decode(msg.data) as Assignments),
  });
  await agent.flush();
  return { store, manager, agent, got };
}

const desired = (a: Assignments) =>
  Object.fromEntries(a.tasks.map((t: Task) => [t.id, t.desiredState]));

/** Lets the dispatcher's coalesced publish run (it is queued with setImmediate). */
const turn = () => new Promise((r) => setImmediate(r));

describe("dispatcher", () => {
  test("a store change sends only what the agent acts on; a status change alone is not resent", async (t) => {
    const { store, got } = await setup(t, 60_000);
    await store.update((tx) =>
      tx.putTask(
        task("t3", "s1", "w1", { status: { ...task("x", "s1").status, state: "assigned" } }),
      ),
    );
    await checkFor(2000, () => got.length === 1 || undefined);
    assert.deepEqual(desired(got[0]!), { t1: "running", t2: "running", t3: "running" });

    // t1 reported running: the set the agent acts on is unchanged, so nothing is sent.
    await store.update((tx) => {
      const t1 = tx.getTask("t1")!;
      tx.putTask({ ...t1, status: { ...t1.status, state: "running", pid: 42 } });
    });
    await turn();
    await turn();
    // t2 told to shut down: sent. Messages keep their order, so had the status change been
    // sent it would be the second message.
    await store.update((tx) => {
      const t2 = tx.getTask("t2")!;
      tx.putTask({ ...t2, desiredState: "shutdown" });
    });
    await checkFor(2000, () => got.length >= 2 || undefined);
    assert.deepEqual(desired(got[1]!), { t1: "running", t2: "shutdown", t3: "running" });
    assert.equal(got[1]!.tasks.find((x) => x.id === "t1")!.status.state, "running");
    assert.equal(got[1]!.heartbeatMs, 60_000);
  });

  test("the timer resends the full set with nothing changed", async (t) => {
    const { got } = await setup(t, 150);
    await checkFor(3000, () => got.length >= 3 || undefined);
    for (const a of got) assert.deepEqual(desired(a), { t1: "running", t2: "running" });
  });

  test("heartbeats are kept in memory; a down node comes back with one store write", async (t) => {
    const { store, manager, agent } = await setup(t, 60_000);
    const writes: string[] = [];
    store.watch((events) => {
      for (const e of events) writes.push(`${e.kind}:${e.id}`);
    });
    // Counts the heartbeats the manager has finished handling, so the test waits for them.
    let handled = 0;
    const heartbeat = manager.heartbeat.bind(manager);
    manager.heartbeat = async (...args) => {
      try {
        await heartbeat(...args);
      } finally {
        handled++;
      }
    };
    const beat = () =>
      agent.publish(hbSubject("w1"), codec.encode({ nodeId: "w1", hostname: "h", tasks: [] }));
    beat();
    beat();
    beat();
    await checkFor(2000, () => handled >= 3 || undefined);
    assert.deepEqual(writes, [], "heartbeats of a ready node write nothing");

    await store.update((tx) => tx.putNode({ ...tx.getNode("w1")!, status: "down" }));
    writes.length = 0;
    beat();
    await agent.flush();
    await checkFor(
      2000,
      () => store.view((tx) => tx.getNode("w1")!.status === "ready") || undefined,
    );
    assert.deepEqual(writes, ["node:w1"]);
  });

  test("a heartbeat naming other drivers updates the node once", async (t) => {
    const { store, agent } = await setup(t, 60_000);
    const writes: string[] = [];
    store.watch((events) => {
      for (const e of events) writes.push(`${e.kind}:${e.id}`);
    });
    const beat = (drivers: string[]) =>
      agent.publish(
        hbSubject("w1"),
        codec.encode({ nodeId: "w1", hostname: "h", tasks: [], drivers }),
      );
    beat(["process", "docker"]);
    await agent.flush();
    await checkFor(
      2000,
      () => store.view((tx) => tx.getNode("w1")!.drivers?.join()) === "process,docker" || undefined,
    );
    beat(["process", "docker"]);
    beat(["process", "docker"]);
    // Then another change: heartbeats are handled in order, so once it is applied the two
    // repeats before it have been handled too.
    beat(["process"]);
    await agent.flush();
    await checkFor(
      2000,
      () => store.view((tx) => tx.getNode("w1")!.drivers?.join()) === "process" || undefined,
    );
    assert.deepEqual(writes, ["node:w1", "node:w1"], "the same drivers again wrote nothing");
  });
});

test("the routing mesh: only running tasks not found unhealthy are endpoints", () => {
  const svc = service("s1", "web");
  svc.spec.ports = [{ target: 80, published: 8080, protocol: "tcp", mode: "ingress" }];
  const mk = (
    id: string,
    state: "starting" | "running",
    health?: "starting" | "healthy" | "unhealthy",
  ): Task => {
    const t = task(id, "s1", "w1", {
      desiredState: "running",
      hostPorts: { "80": Number(id.slice(1)) },
    });
    t.status = {
      ...t.status,
      state,
      ...(health ? { health: { status: health, failingStreak: 0, log: [] } } : {}),
    };
    return t;
  };
  const tasks = [
    mk("t1", "running"),
    mk("t2", "running", "healthy"),
    mk("t3", "starting", "starting"),
    mk("t4", "running", "unhealthy"),
  ];
  const eps = endpointsOf([svc], tasks, [node("w1", { addr: "10.0.0.1" })]);
  assert.deepEqual(
    eps["8080"]?.map((e) => e.port),
    [1, 2],
  );
  assert.deepEqual(
    eps["8080"]?.map((e) => [e.serviceId, e.service]),
    [
      [svc.id, svc.spec.name],
      [svc.id, svc.spec.name],
    ],
    "each endpoint names its service (the mesh counts under it)",
  );
});

test("a heartbeat's task figures reach the manager's metrics book", async (t) => {
  const { store, manager, agent } = await setup(t, 60_000);
  manager.metrics.start();
  t.after(() => manager.metrics.stop());
  await store.update((tx) => {
    const t1 = tx.getTask("t1")!;
    tx.putTask({ ...t1, status: { ...t1.status, state: "running" } });
  });
  const stats = [{ taskId: "t1", cpuCores: 0.75, memoryBytes: 4096, sampledAt: 5 }];
  agent.publish(hbSubject("w1"), codec.encode({ nodeId: "w1", hostname: "h", tasks: [], stats }));
  const f = await checkFor(2000, () => manager.metrics.forTask("t1"));
  assert.equal(f?.cpuCores, 0.75);
  assert.deepEqual(
    manager.metrics.forService("s1").map((x) => x.taskId),
    ["t1"],
  );
});

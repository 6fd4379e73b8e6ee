// Role changes (`node demote` / `node promote`, `node update --role`) in the manager: the last
// manager cannot be demoted (swarmkit's words), demoting needs the daemon's hook (managed etcd)
// and runs it in the same batch, promoting is refused for now, and `node rm` of a manager says
// to demote it first.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { ManagerError } from "../../src/manager/errors.js";
import { quietLog } from "../helpers/bus.js";
import { node } from "../store/helpers.js";

async function setup(managers: number) {
  const store = createMemoryStore();
  await store.update((tx) => {
    for (let i = 0; i < managers; i++) tx.putNode(node(`m${i}`, { role: "manager" }));
    tx.putNode(node("w0", { role: "worker" }));
  });
  return { store, manager: new Manager(store, quietLog, defaultManagerOptions()) };
}

const code = (c: string) => (e: unknown) => e instanceof ManagerError && e.code === c;

test("demoting the last manager is refused in swarmkit's words", async () => {
  const { store, manager } = await setup(1);
  manager.onDemote = () => assert.fail("not demoted");
  await assert.rejects(
    manager.updateNode("m0", { role: "worker" }),
    /attempting to demote the last manager of the swarm/,
  );
  assert.equal(store.view((tx) => tx.getNode("m0"))?.role, "manager");
});

test("a demotion runs the daemon's hook in its batch; without the hook it is refused", async () => {
  const { store, manager } = await setup(2);
  await assert.rejects(manager.updateNode("m1", { role: "worker" }), code("ERR_UNSUPPORTED"));
  assert.equal(store.view((tx) => tx.getNode("m1"))?.role, "manager");
  const seen: string[] = [];
  manager.onDemote = (tx, n) => {
    seen.push(`${n.id}:${n.role}`);
    tx.putMeta("demoted", { [n.id]: "s" });
  };
  const n = await manager.updateNode("m1", { role: "worker" });
  assert.equal(n.role, "worker");
  assert.deepEqual(seen, ["m1:worker"]);
  assert.deepEqual(
    store.view((tx) => tx.getMeta("demoted")),
    { m1: "s" },
  );
  // A worker "demoted" again changes nothing and runs no hook.
  await manager.updateNode("w0", { role: "worker" });
  assert.deepEqual(seen, ["m1:worker"]);
});

test("promoting is refused for now, naming the way that works", async () => {
  const { store, manager } = await setup(1);
  await assert.rejects(manager.updateNode("w0", { role: "manager" }), /manager token/);
  assert.equal(store.view((tx) => tx.getNode("w0"))?.role, "worker");
});

test("node rm of a manager says to demote it first", async () => {
  const { manager } = await setup(2);
  await assert.rejects(
    manager.removeNode("m1", true),
    /node m1 is a cluster manager and is a member of the raft cluster\. It must be demoted to worker before removal/,
  );
});

// A join never takes over an existing node's identity (issue 9 item 2): node ids are issued by
// the manager with a secret of the node's own; a rejoin naming a node id must present that
// node's secret, and no join may name a manager. Before, a worker token plus the manager's id
// overwrote the manager's node record (role, address).

import { test } from "node:test";
import assert from "node:assert/strict";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { JoinServer, type ClusterMeta } from "../../src/manager/join.js";
import { newSecret } from "../../src/manager/ids.js";
import type { Node } from "../../src/api/types.js";
import { node } from "../store/helpers.js";
import { storeCa, testCsr, testToken } from "../helpers/pki.js";

const CSR = (await testCsr()).csrPem;
import { quietLog } from "../helpers/bus.js";

const META: ClusterMeta = {
  secret: newSecret(),
  workerSecret: newSecret(),
  managerSecret: newSecret(),
  createdAt: 1,
};
const token = await testToken(META.workerSecret);

async function setup() {
  const store = createMemoryStore();
  await storeCa(store);
  await store.update((tx) => {
    tx.putMeta("cluster", META);
    tx.putNode(node("mgr", { role: "manager", addr: "10.0.0.1" }));
  });
  const manager = new Manager(store, quietLog, defaultManagerOptions());
  const server = new JoinServer(
    manager,
    () => ({ nodes: ["nats://10.0.0.1:4223"], apps: ["nats://10.0.0.1:4222"] }),
    () => 1000,
  );
  const get = (id: string) => store.view((tx) => tx.getNode(id));
  return { server, manager, get, nodes: () => store.view((tx) => tx.listNodes()) };
}

test("a join naming the manager's id is refused and changes nothing", async () => {
  const { server, get, nodes } = await setup();
  const before = get("mgr");
  await assert.rejects(
    server.join({ csr: CSR, token, hostname: "evil", addr: "10.9.9.9", nodeId: "mgr" }),
    (err: Error & { status?: number }) =>
      err.status === 403 && /node mgr is a manager: a join cannot take its place/.test(err.message),
  );
  assert.deepEqual(get("mgr"), before);
  assert.equal(nodes().length, 1);
});

test("a rejoin keeps its id only with the node's own secret", async () => {
  const { server, get } = await setup();
  const first = await server.join({ csr: CSR, token, hostname: "w1", addr: "10.0.0.2" });
  assert.ok(first.nodeSecret, "the first join hands the node a secret");
  const registered = get(first.nodeId) as Node;

  for (const nodeSecret of [undefined, "wrong", newSecret()]) {
    await assert.rejects(
      server.join({
        csr: CSR,
        token,
        hostname: "evil",
        addr: "10.9.9.9",
        nodeId: first.nodeId,
        ...(nodeSecret ? { nodeSecret } : {}),
      }),
      (err: Error & { status?: number }) =>
        err.status === 403 && /already part of the swarm/.test(err.message),
    );
    assert.deepEqual(get(first.nodeId), registered, "the node's record is unchanged");
  }

  const again = await server.join({
    csr: CSR,
    token,
    hostname: "w1",
    addr: "10.0.0.3",
    nodeId: first.nodeId,
    nodeSecret: first.nodeSecret!,
  });
  assert.equal(again.nodeId, first.nodeId);
  assert.equal(again.nodeSecret, first.nodeSecret);
  assert.equal(get(first.nodeId)!.addr, "10.0.0.3");
});

test("a removed node's secret is forgotten: naming its id again gets a new node", async () => {
  const { server, manager, get } = await setup();
  const first = await server.join({ csr: CSR, token, hostname: "w1", addr: "10.0.0.2" });
  await manager.removeNode(first.nodeId, true);
  const next = await server.join({
    csr: CSR,
    token,
    hostname: "w1",
    addr: "10.0.0.2",
    nodeId: first.nodeId,
    nodeSecret: first.nodeSecret!,
  });
  assert.notEqual(next.nodeId, first.nodeId);
  assert.equal(get(first.nodeId), undefined);
});

// Role changes (`node demote` / `node promote`, `node update --role`) in the manager: the last
// manager cannot be demoted (swarmkit's words), demoting and promoting need the daemon's hooks
// and run them in the same batch (and `afterDemote` once a demotion committed), and `node rm` of a manager that is still a member of the
// store's cluster says to demote it first (one that left is removed as a worker is).

import { test } from "node:test";
import assert from "node:assert/strict";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions, demoteKeepsQuorum } from "../../src/manager/manager.js";
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

test("afterDemote runs once the demotion committed, before updateNode answers; not for other updates", async () => {
  const { store, manager } = await setup(3);
  manager.onDemote = () => {};
  const seen: string[] = [];
  manager.afterDemote = async (n) => {
    // Committed: the store holds the worker already.
    seen.push(`${n.id}:${n.role}:${store.view((tx) => tx.getNode(n.id))?.role}`);
  };
  await manager.updateNode("m2", { role: "worker" });
  assert.deepEqual(seen, ["m2:worker:worker"]);
  await manager.updateNode("m2", { role: "worker" });
  await manager.updateNode("m1", { availability: "drain" });
  assert.deepEqual(seen, ["m2:worker:worker"], "no demotion, no call");
  // A refused demotion (the hook in the batch throws) calls nothing after.
  manager.onDemote = () => {
    throw new ManagerError("ERR_INVALID", "no");
  };
  await assert.rejects(manager.updateNode("m1", { role: "worker" }), code("ERR_INVALID"));
  assert.deepEqual(seen, ["m2:worker:worker"]);
});

test("a promotion runs the daemon's hook in its batch; without the hook it is refused", async () => {
  const { store, manager } = await setup(1);
  await assert.rejects(manager.updateNode("w0", { role: "manager" }), code("ERR_UNSUPPORTED"));
  assert.equal(store.view((tx) => tx.getNode("w0"))?.role, "worker");
  const seen: string[] = [];
  manager.onPromote = (tx, n) => {
    seen.push(`${n.id}:${n.role}`);
    assert.equal(tx.getNode(n.id)?.role, "manager", "the node is a manager in the batch");
    tx.putMeta("promoting", { [n.id]: true });
  };
  const n = await manager.updateNode("w0", { role: "manager" });
  assert.equal(n.role, "manager");
  assert.deepEqual(seen, ["w0:manager"]);
  assert.deepEqual(
    store.view((tx) => tx.getMeta("promoting")),
    { w0: true },
  );
  // A manager "promoted" again changes nothing and runs no hook.
  await manager.updateNode("w0", { role: "manager" });
  assert.deepEqual(seen, ["w0:manager"]);
});

test("a hook that throws refuses the promotion: nothing is written", async () => {
  const { store, manager } = await setup(1);
  manager.onPromote = () => {
    throw new ManagerError("ERR_INVALID", "no");
  };
  await assert.rejects(manager.updateNode("w0", { role: "manager" }), /no/);
  assert.equal(store.view((tx) => tx.getNode("w0"))?.role, "worker");
});

test("node rm of a manager says to demote it first", async () => {
  const { manager } = await setup(2);
  await assert.rejects(
    manager.removeNode("m1", true),
    /node m1 is a cluster manager and is a member of the raft cluster\. It must be demoted to worker before removal/,
  );
});

// swarmkit's RemoveNode: a manager that is a raft member is refused even with --force; one that
// left raft (`swarm leave --force`) is removed as a worker is (down, or with --force).
const removals: {
  name: string;
  member: boolean;
  status: "ready" | "down";
  force: boolean;
  refused: RegExp | null;
}[] = [
  {
    name: "member, forced",
    member: true,
    status: "ready",
    force: true,
    refused: /member of the raft cluster/,
  },
  {
    name: "member, down",
    member: true,
    status: "down",
    force: false,
    refused: /member of the raft cluster/,
  },
  { name: "left, down", member: false, status: "down", force: false, refused: null },
  {
    name: "left, still ready",
    member: false,
    status: "ready",
    force: false,
    refused: /is not down/,
  },
  { name: "left, still ready, forced", member: false, status: "ready", force: true, refused: null },
];
for (const c of removals) {
  test(`node rm of a manager: ${c.name}`, async () => {
    const { store, manager } = await setup(2);
    await store.update((tx) => tx.putNode({ ...tx.getNode("m1")!, status: c.status }));
    const asked: string[] = [];
    manager.storeMember = async (n) => {
      asked.push(n.id);
      return c.member;
    };
    const removed: string[] = [];
    manager.onRemoveManager = (tx, n) => {
      removed.push(n.id);
      assert.equal(tx.getNode(n.id), undefined, "in the removing batch");
    };
    const rm = manager.removeNode("m1", c.force);
    if (c.refused) {
      await assert.rejects(rm, c.refused);
      assert.ok(store.view((tx) => tx.getNode("m1")));
      assert.deepEqual(removed, []);
    } else {
      assert.equal((await rm).id, "m1");
      assert.equal(
        store.view((tx) => tx.getNode("m1")),
        undefined,
      );
      assert.deepEqual(removed, ["m1"]);
    }
    assert.deepEqual(asked, ["m1"]);
  });
}

test("node rm of a worker does not ask about store membership", async () => {
  const { store, manager } = await setup(1);
  await store.update((tx) => tx.putNode({ ...tx.getNode("w0")!, status: "down" }));
  manager.storeMember = () => assert.fail("a worker is no member");
  manager.onRemoveManager = () => assert.fail("not a manager");
  await manager.removeNode("w0", false);
  assert.equal(
    store.view((tx) => tx.getNode("w0")),
    undefined,
  );
});

// swarmkit's CanRemoveMember: after the member goes, those up must be a majority of those left.
test("a demotion keeps the store's quorum or is refused (swarmkit's safeguard)", () => {
  const m = (id: string, status: "ready" | "down") => ({ id, status });
  const cases: [string, ReturnType<typeof m>[], string, boolean][] = [
    ["3 up, demote one", [m("a", "ready"), m("b", "ready"), m("c", "ready")], "c", true],
    [
      "3, one down, demote a live one",
      [m("a", "ready"), m("b", "ready"), m("c", "down")],
      "b",
      false,
    ],
    [
      "3, one down, demote the down one",
      [m("a", "ready"), m("b", "ready"), m("c", "down")],
      "c",
      true,
    ],
    ["2 up, demote one", [m("a", "ready"), m("b", "ready")], "b", true],
    ["2, one down, demote the live one", [m("a", "down"), m("b", "ready")], "b", false],
    [
      "5, two down, demote a live one",
      [m("a", "ready"), m("b", "ready"), m("c", "ready"), m("d", "down"), m("e", "down")],
      "c",
      false,
    ],
    [
      "5, one down, demote a live one",
      [m("a", "ready"), m("b", "ready"), m("c", "ready"), m("d", "ready"), m("e", "down")],
      "d",
      true,
    ],
  ];
  for (const [name, members, id, ok] of cases) {
    assert.equal(demoteKeepsQuorum(members, id), ok, name);
  }
});

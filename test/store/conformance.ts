// The store's semantics as one conformance suite, run against every implementation (embedded on
// disk, in memory: crud.test.ts; etcd: etcd.test.ts): CRUD and the indexes, name uniqueness,
// atomic batches, serialized updates, frozen values, watch events, close.

import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { StoreError, type Store, type StoreEvent } from "../../src/store/store.js";
import { ids, network, node, service, task, warnings } from "./helpers.js";

/**
 * Opens a fresh, empty store that is closed when the test ends (closing twice is fine);
 * `onWarning` hears its warnings (default: collected and dropped).
 */
export type OpenStore = (
  t: TestContext,
  opts?: { onWarning?: (msg: string) => void },
) => Promise<Store>;

function isCode(code: string) {
  return (err: unknown) => err instanceof StoreError && err.code === code;
}

export function storeConformance(name: string, open: OpenStore): void {
  describe(`store (${name})`, () => {
    test("put, get, list and delete every kind", async (t) => {
      const s = await open(t);
      await s.update((tx) => {
        tx.putNode(node("n1"));
        tx.putNode(node("n2"));
        tx.putService(service("s1", "web"));
        tx.putTask(task("t1", "s1", "n1"));
        tx.putMeta("cluster", { secret: "x" });
      });
      s.view((tx) => {
        assert.equal(tx.getNode("n1")?.hostname, "host-n1");
        assert.deepEqual(ids(tx.listNodes()), ["n1", "n2"]);
        assert.equal(tx.getService("s1")?.spec.name, "web");
        assert.equal(tx.getTask("t1")?.nodeId, "n1");
        assert.deepEqual(tx.getMeta("cluster"), { secret: "x" });
        assert.equal(tx.getMeta("nope"), undefined);
        assert.equal(tx.getNode("nope"), undefined);
      });
      await s.update((tx) => {
        tx.putNode(node("n1", { status: "down" }));
        tx.deleteNode("n2");
        tx.deleteTask("t1");
        tx.deleteService("s1");
        tx.deleteMeta("cluster");
      });
      s.view((tx) => {
        assert.equal(tx.getNode("n1")?.status, "down");
        assert.deepEqual(ids(tx.listNodes()), ["n1"]);
        assert.equal(tx.getService("s1"), undefined);
        assert.equal(tx.getServiceByName("web"), undefined);
        assert.deepEqual(tx.listTasks(), []);
        assert.deepEqual(tx.listTasks({ serviceId: "s1" }), []);
        assert.equal(tx.getMeta("cluster"), undefined);
      });
    });

    test("networks: put, get by id and name, list, delete; names are unique", async (t) => {
      const s = await open(t);
      await s.update((tx) => {
        tx.putNetwork(network("w1", "backend"));
        tx.putNetwork(network("w2", "front", { vni: 4097 }));
        tx.putService(service("s1", "backend")); // services and networks have separate names
      });
      s.view((tx) => {
        assert.equal(tx.getNetwork("w1")?.name, "backend");
        assert.equal(tx.getNetworkByName("front")?.id, "w2");
        assert.deepEqual(ids(tx.listNetworks()), ["w1", "w2"]);
        assert.equal(tx.getNetworkByName("nope"), undefined);
      });
      await assert.rejects(
        s.update((tx) => tx.putNetwork(network("w3", "backend"))),
        (err: unknown) =>
          isCode("ERR_NAME_IN_USE")(err) && /"backend".*w1/.test((err as Error).message),
      );
      await assert.rejects(
        s.update((tx) => tx.putNetwork(network("w3", ""))),
        isCode("ERR_INVALID"),
      );
      // A rename frees the old name in the same batch; a delete frees it too.
      await s.update((tx) => {
        tx.putNetwork(network("w1", "back2"));
        tx.putNetwork(network("w3", "backend"));
        assert.equal(tx.getNetworkByName("backend")?.id, "w3");
        tx.deleteNetwork("w2");
        assert.equal(tx.getNetworkByName("front"), undefined);
      });
      s.view((tx) => {
        assert.equal(tx.getNetworkByName("back2")?.id, "w1");
        assert.equal(tx.getNetworkByName("backend")?.id, "w3");
        assert.equal(tx.getNetworkByName("front"), undefined);
        assert.deepEqual(ids(tx.listNetworks()), ["w1", "w3"]);
      });
    });

    test("task indexes follow service and node changes", async (t) => {
      const s = await open(t);
      await s.update((tx) => {
        tx.putTask(task("t1", "s1", "n1"));
        tx.putTask(task("t2", "s1", "n2"));
        tx.putTask(task("t3", "s2", "n1"));
        tx.putTask(task("t4", "s2", ""));
      });
      const q = (f?: { serviceId?: string; nodeId?: string }) =>
        s.view((tx) => ids(tx.listTasks(f)));
      assert.deepEqual(q(), ["t1", "t2", "t3", "t4"]);
      assert.deepEqual(q({ serviceId: "s1" }), ["t1", "t2"]);
      assert.deepEqual(q({ nodeId: "n1" }), ["t1", "t3"]);
      assert.deepEqual(q({ nodeId: "" }), ["t4"]);
      assert.deepEqual(q({ serviceId: "s2", nodeId: "n1" }), ["t3"]);
      assert.deepEqual(q({ serviceId: "s9" }), []);
      await s.update((tx) => {
        tx.putTask(task("t4", "s2", "n2")); // scheduled
        tx.putTask(task("t1", "s1", "n2")); // moved
        tx.deleteTask("t3");
      });
      assert.deepEqual(q({ nodeId: "n1" }), []);
      assert.deepEqual(q({ nodeId: "n2" }), ["t1", "t2", "t4"]);
      assert.deepEqual(q({ nodeId: "" }), []);
      assert.deepEqual(q({ serviceId: "s2" }), ["t4"]);
      assert.deepEqual(q({ serviceId: "s1", nodeId: "n2" }), ["t1", "t2"]);
    });

    test("service names are unique and the name index follows renames", async (t) => {
      const s = await open(t);
      await s.update((tx) => tx.putService(service("s1", "web")));
      await assert.rejects(
        s.update((tx) => tx.putService(service("s2", "web"))),
        (err: unknown) =>
          isCode("ERR_NAME_IN_USE")(err) && /"web".*s1/.test((err as Error).message),
      );
      assert.equal(
        s.view((tx) => tx.listServices().length),
        1,
      );
      // The owner may put itself again; a rename frees the old name in the same batch.
      await s.update((tx) => {
        tx.putService(service("s1", "web", { version: 2 }));
        tx.putService(service("s1", "www"));
        tx.putService(service("s2", "web"));
        assert.equal(tx.getServiceByName("web")?.id, "s2");
        assert.equal(tx.getServiceByName("www")?.id, "s1");
      });
      s.view((tx) => {
        assert.equal(tx.getServiceByName("web")?.id, "s2");
        assert.equal(tx.getServiceByName("www")?.id, "s1");
      });
      // Two new services with one name in one batch: the second put throws.
      await assert.rejects(
        s.update((tx) => {
          tx.putService(service("s3", "api"));
          tx.putService(service("s4", "api"));
        }),
        isCode("ERR_NAME_IN_USE"),
      );
      // A caught refusal leaves the rest of the batch to commit.
      await s.update((tx) => {
        tx.putService(service("s3", "api"));
        assert.throws(() => tx.putService(service("s4", "www")), isCode("ERR_NAME_IN_USE"));
      });
      assert.deepEqual(
        s.view((tx) => ids(tx.listServices())),
        ["s1", "s2", "s3"],
      );
      await s.update((tx) => tx.deleteService("s2"));
      await s.update((tx) => tx.putService(service("s5", "web")));
      assert.equal(
        s.view((tx) => tx.getServiceByName("web")?.id),
        "s5",
      );
    });

    test("reads inside an update see the batch's own writes, views do not", async (t) => {
      const s = await open(t);
      await s.update((tx) => {
        tx.putTask(task("t1", "s1", "n1"));
        tx.putService(service("s1", "web"));
      });
      await s.update((tx) => {
        tx.putTask(task("t2", "s1", "n1"));
        tx.putTask(task("t1", "s1", "n2"));
        tx.deleteService("s1");
        tx.putNode(node("n1"));
        assert.deepEqual(ids(tx.listTasks({ nodeId: "n1" })), ["t2"]);
        assert.deepEqual(ids(tx.listTasks({ nodeId: "n2" })), ["t1"]);
        assert.deepEqual(ids(tx.listTasks({ serviceId: "s1" })), ["t1", "t2"]);
        assert.equal(tx.getServiceByName("web"), undefined);
        assert.deepEqual(ids(tx.listNodes()), ["n1"]);
        // The committed state is unchanged until the batch is durable.
        s.view((v) => {
          assert.deepEqual(ids(v.listTasks({ nodeId: "n1" })), ["t1"]);
          assert.equal(v.getServiceByName("web")?.id, "s1");
          assert.deepEqual(v.listNodes(), []);
        });
      });
    });

    test("a batch that throws changes nothing and emits nothing", async (t) => {
      const s = await open(t);
      await s.update((tx) => tx.putNode(node("n1")));
      const seen: StoreEvent[][] = [];
      s.watch((ev) => seen.push(ev));
      const boom = new Error("boom");
      await assert.rejects(
        s.update((tx) => {
          tx.putNode(node("n2"));
          tx.deleteNode("n1");
          tx.putMeta("k", 1);
          throw boom;
        }),
        (err) => err === boom,
      );
      await assert.rejects(
        s.update(async (tx) => tx.putNode(node("n3"))),
        isCode("ERR_ASYNC_TX"),
      );
      assert.deepEqual(
        s.view((tx) => ids(tx.listNodes())),
        ["n1"],
      );
      assert.equal(
        s.view((tx) => tx.getMeta("k")),
        undefined,
      );
      assert.deepEqual(seen, []);
    });

    test("updates are serialized; in a group a failing batch fails alone", async (t) => {
      const s = await open(t);
      const bump = () =>
        s.update((tx) => {
          const n = tx.getMeta<number>("n") ?? 0;
          tx.putMeta("n", n + 1);
          return n + 1;
        });
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) =>
          i === 17
            ? s.update((tx) => {
                tx.putMeta("n", -1000);
                throw new Error("no");
              })
            : bump(),
        ),
      );
      assert.equal(results.filter((r) => r.status === "rejected").length, 1);
      const values = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      assert.deepEqual(
        values,
        Array.from({ length: 49 }, (_, i) => i + 1),
      );
      assert.equal(
        s.view((tx) => tx.getMeta("n")),
        49,
      );
    });

    test("values are copied in and frozen out", async (t) => {
      const s = await open(t);
      const mine = node("n1", { labels: { zone: "a" } });
      await s.update((tx) => tx.putNode(mine));
      assert.equal(Object.isFrozen(mine), false);
      mine.labels["zone"] = "b";
      const got = s.view((tx) => tx.getNode("n1"))!;
      assert.equal(got.labels["zone"], "a");
      assert.ok(Object.isFrozen(got) && Object.isFrozen(got.labels));
      assert.throws(() => {
        got.labels["zone"] = "c";
      }, TypeError);
      // Derived values can be put back.
      await s.update((tx) => tx.putNode({ ...got, labels: { ...got.labels, rack: "1" } }));
      assert.deepEqual(
        s.view((tx) => tx.getNode("n1")?.labels),
        { zone: "a", rack: "1" },
      );
      // What is stored is the value's JSON: undefined fields are dropped.
      await s.update((tx) => tx.putMeta("m", { a: 1, b: undefined }));
      assert.deepEqual(
        s.view((tx) => tx.getMeta("m")),
        { a: 1 },
      );
    });

    test("invalid values and misuse are refused", async (t) => {
      const s = await open(t);
      await assert.rejects(
        s.update((tx) => tx.putNode({ ...node("x"), id: "" })),
        isCode("ERR_INVALID"),
      );
      await assert.rejects(
        s.update((tx) => tx.putMeta("big", { n: 1n })),
        isCode("ERR_INVALID"),
      );
      await assert.rejects(
        s.update((tx) => tx.putService({ ...service("s", "x"), spec: undefined as never })),
        isCode("ERR_INVALID"),
      );
      let leaked: { getNode(id: string): unknown } | null = null;
      s.view((tx) => (leaked = tx));
      assert.throws(() => leaked!.getNode("n1"), isCode("ERR_TX_CLOSED"));
      let leakedW: { putNode(n: unknown): void } | null = null;
      await s.update((tx) => (leakedW = tx));
      assert.throws(() => leakedW!.putNode(node("n1")), isCode("ERR_TX_CLOSED"));
      assert.throws(
        () => s.view((tx) => (tx as unknown as { putNode(n: unknown): void }).putNode(node("n1"))),
        isCode("ERR_INVALID"),
      );
      assert.deepEqual(
        s.view((tx) => tx.listNodes()),
        [],
      );
    });

    test("watch gets each committed batch's events in order", async (t) => {
      const s = await open(t);
      const seen: StoreEvent[][] = [];
      const states: string[][] = [];
      const stop = s.watch((ev) => {
        seen.push(ev);
        states.push(s.view((tx) => ids(tx.listNodes())));
      });
      await s.update((tx) => {
        tx.putNode(node("n1"));
        tx.putMeta("k", null);
      });
      await Promise.all([
        s.update((tx) => tx.putNode(node("n2"))),
        s.update((tx) => {
          tx.deleteNode("n1");
          tx.deleteNode("nope"); // deleting nothing: no event
        }),
        s.update(() => "read only"), // no writes: no event
      ]);
      stop();
      await s.update((tx) => tx.putNode(node("n3")));
      assert.deepEqual(
        seen.map((b) => b.map((e) => `${e.action} ${e.kind} ${e.id}`)),
        [["put node n1", "put meta k"], ["put node n2"], ["delete node n1"]],
      );
      assert.equal((seen[0]![0]!.value as { id: string }).id, "n1");
      assert.equal(seen[0]![1]!.value, null);
      assert.equal(seen[2]![0]!.value, null);
      // Each watcher call sees the state right after its batch.
      assert.deepEqual(states, [["n1"], ["n1", "n2"], ["n2"]]);
    });

    test("a watcher that throws does not stop the others or the commit", async (t) => {
      const w = warnings();
      const s = await open(t, { onWarning: w.onWarning });
      let calls = 0;
      s.watch(() => {
        throw new Error("bad watcher");
      });
      s.watch(() => calls++);
      await s.update((tx) => tx.putNode(node("n1")));
      assert.equal(calls, 1);
      assert.equal(w.list.length, 1);
      assert.match(w.list[0]!, /bad watcher/);
    });

    test("close waits for queued updates, then refuses", async (t) => {
      const s = await open(t);
      const p = s.update((tx) => tx.putNode(node("n1")));
      await s.close();
      await p;
      await assert.rejects(
        s.update((tx) => tx.putNode(node("n2"))),
        isCode("ERR_CLOSED"),
      );
      assert.throws(() => s.view((tx) => tx.listNodes()), isCode("ERR_CLOSED"));
      await s.close(); // twice is fine
    });
  });
}

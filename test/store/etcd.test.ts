// The etcd store against a real etcd (test/helpers/etcd.ts): the store conformance suite, then
// what only a shared store has: two stores on one etcd see each other's commits, writers that
// race stay serializable (names stay unique), the revision, and etcd's transaction limits.

import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { openEtcdStore, type EtcdStore, type EtcdStoreOptions } from "../../src/store/etcd.js";
import { StoreError, type StoreEvent } from "../../src/store/store.js";
import { etcdSkip, startEtcd, type EtcdCluster } from "../helpers/etcd.js";
import { storeConformance } from "./conformance.js";
import { ids, node, service, warnings } from "./helpers.js";

function isCode(code: string) {
  return (err: unknown) => err instanceof StoreError && err.code === code;
}

describe("etcd store", { skip: etcdSkip() }, () => {
  let etcd: EtcdCluster;
  let n = 0;
  before(async () => {
    etcd = await startEtcd();
  });
  after(() => etcd?.stop());

  /** A store on a prefix of its own (a fresh, empty state), closed when the test ends. */
  async function open(
    t: TestContext,
    opts: Partial<EtcdStoreOptions> = {},
    prefix = `/t${++n}/`,
  ): Promise<EtcdStore> {
    const s = await openEtcdStore({
      endpoints: etcd.endpoints,
      prefix,
      onWarning: warnings().onWarning,
      ...opts,
    });
    t.after(() => s.close());
    return s;
  }

  storeConformance("etcd", (t, opts = {}) => open(t, opts));

  test("two stores on one prefix see each other's commits, in views and watch events", async (t) => {
    const a = await open(t, {}, "/shared1/");
    const b = await open(t, {}, "/shared1/");
    const seen: StoreEvent[][] = [];
    b.watch((ev) => seen.push(ev));
    await a.update((tx) => {
      tx.putNode(node("n1"));
      tx.putService(service("s1", "web"));
    });
    await b.sync();
    assert.equal(
      b.view((tx) => tx.getServiceByName("web")?.id),
      "s1",
    );
    assert.equal(
      b.view((tx) => tx.revision()),
      a.view((tx) => tx.revision()),
    );
    assert.deepEqual(
      seen.map((batch) => batch.map((e) => `${e.action} ${e.kind} ${e.id}`)),
      [["put node n1", "put service s1"]],
    );
    assert.ok(Object.isFrozen(b.view((tx) => tx.getNode("n1"))));
    await b.update((tx) => tx.deleteNode("n1"));
    await a.sync();
    assert.deepEqual(
      a.view((tx) => tx.listNodes()),
      [],
    );
    // A third store opened now loads the same state.
    const c = await open(t, {}, "/shared1/");
    assert.deepEqual(
      c.view((tx) => ({ s: ids(tx.listServices()), rev: tx.revision() })),
      { s: ["s1"], rev: 2 },
    );
  });

  test("racing writers on two stores stay serializable; a name goes to one of them", async (t) => {
    const a = await open(t, {}, "/shared2/");
    const b = await open(t, {}, "/shared2/");
    const bump = (s: EtcdStore) =>
      s.update((tx) => tx.putMeta("n", (tx.getMeta<number>("n") ?? 0) + 1));
    await Promise.all(Array.from({ length: 40 }, (_, i) => bump(i % 2 ? a : b)));
    await a.sync();
    assert.equal(
      a.view((tx) => tx.getMeta("n")),
      40,
    );
    const results = await Promise.allSettled([
      a.update((tx) => tx.putService(service("sa", "web"))),
      b.update((tx) => tx.putService(service("sb", "web"))),
    ]);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assert.ok(isCode("ERR_NAME_IN_USE")(refused.reason), String(refused.reason));
    await a.sync();
    await b.sync();
    assert.equal(
      a.view((tx) => tx.listServices().length),
      1,
    );
    assert.deepEqual(
      a.view((tx) => tx.getServiceByName("web")),
      b.view((tx) => tx.getServiceByName("web")),
    );
  });

  test("revision: a view's is the last batch's, an update's the next; it survives a reopen", async (t) => {
    const prefix = "/rev/";
    const s = await open(t, {}, prefix);
    assert.equal(
      s.view((tx) => tx.revision()),
      0,
    );
    const revs = await Promise.all([
      s.update((tx) => {
        tx.putMeta("a", 1);
        return tx.revision();
      }),
      s.update((tx) => tx.revision()), // writes nothing: takes no number
      s.update((tx) => {
        tx.putMeta("b", 1);
        return tx.revision();
      }),
    ]);
    assert.deepEqual(revs, [1, 2, 2]);
    assert.equal(
      s.view((tx) => tx.revision()),
      2,
    );
    await s.close();
    const again = await open(t, {}, prefix);
    assert.equal(
      again.view((tx) => tx.revision()),
      2,
    );
  });

  test("a batch over etcd's transaction limit is refused whole; groups are cut to fit", async (t) => {
    const s = await open(t); // etcd's defaults: 128 operations per transaction
    await assert.rejects(
      s.update((tx) => {
        for (let i = 0; i < 200; i++) tx.putNode(node(`n${i}`));
      }),
      (err: unknown) =>
        isCode("ERR_TOO_LARGE")(err) && /200 keys.*--max-txn-ops/.test((err as Error).message),
    );
    assert.deepEqual(
      s.view((tx) => tx.listNodes()),
      [],
    );
    // 300 small batches queued at once: more than one transaction holds, all commit, in order.
    const seen: string[] = [];
    s.watch((ev) => seen.push(ev.map((e) => e.id).join(",")));
    const revs = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        s.update((tx) => {
          tx.putNode(node(`n${i}`));
          return tx.revision();
        }),
      ),
    );
    assert.deepEqual(
      revs,
      Array.from({ length: 300 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      seen,
      Array.from({ length: 300 }, (_, i) => `n${i}`),
    );
    assert.equal(
      s.view((tx) => tx.listNodes().length),
      300,
    );
    // A key written twice in one batch (etcd refuses a key twice in a transaction).
    await s.update((tx) => {
      tx.putNode(node("twice"));
      tx.deleteNode("twice");
      tx.putNode(node("twice", { hostname: "last" }));
    });
    assert.equal(
      s.view((tx) => tx.getNode("twice")?.hostname),
      "last",
    );
  });

  test("with raised limits (as the managed etcd runs) a large batch commits", async (t) => {
    const big = await startEtcd({ args: ["--max-txn-ops", "2000"] });
    t.after(() => big.stop());
    const s = await openEtcdStore({ endpoints: big.endpoints, maxTxnOps: 2000 });
    t.after(() => s.close());
    await s.update((tx) => {
      for (let i = 0; i < 1000; i++) tx.putNode(node(`n${i}`));
    });
    assert.equal(
      s.view((tx) => tx.listNodes().length),
      1000,
    );
  });

  test("a 3-member etcd: stores on different members agree, and go on when one member stops", async (t) => {
    const three = await startEtcd({ members: 3 });
    t.after(() => three.stop());
    const [e0, e1, e2] = three.endpoints;
    const a = await openEtcdStore({ endpoints: [e0!, e1!] });
    t.after(() => a.close());
    const b = await openEtcdStore({ endpoints: [e2!, e1!] });
    t.after(() => b.close());
    await a.update((tx) => tx.putService(service("s1", "web")));
    await b.sync();
    assert.equal(
      b.view((tx) => tx.getServiceByName("web")?.id),
      "s1",
    );
    await three.members[0]!.stop("SIGKILL");
    // a's first endpoint is gone: its client moves to the next; the quorum (2 of 3) commits.
    await a.update((tx) => tx.putService(service("s2", "api")));
    await b.update((tx) => tx.putMeta("after", true));
    await a.sync();
    await b.sync();
    for (const s of [a, b]) {
      assert.deepEqual(
        s.view((tx) => ({ s: ids(tx.listServices()), m: tx.getMeta("after"), r: tx.revision() })),
        { s: ["s1", "s2"], m: true, r: 3 },
      );
    }
  });

  /**
   * A client whose next write transaction is committed and then sent once more, as etcd3 sends
   * a call again when its answer was lost (a deadline); `between` runs in between. The caller
   * gets the second answer.
   */
  function replayingClient(t: TestContext, between: () => Promise<void> = async () => {}) {
    const client = new Etcd3({ hosts: etcd.endpoints });
    t.after(() => client.close());
    const txn = client.kv.txn.bind(client.kv);
    let armed = false;
    client.kv.txn = async (req, opts) => {
      if (!armed || !(req.success ?? []).length) return txn(req, opts);
      armed = false;
      const first = await txn(req, opts);
      assert.equal(first.succeeded, true, "the first attempt commits");
      await between();
      return txn(req, opts);
    };
    return { client, arm: () => (armed = true) };
  }

  test("a commit whose answer was lost and sent again (etcd3's retry) counts as committed", async (t) => {
    const { client, arm } = replayingClient(t);
    const s = await open(t, { client }, "/replay1/");
    arm();
    await s.update((tx) => tx.putService(service("s1", "web")));
    assert.equal(
      s.view((tx) => tx.getServiceByName("web")?.id),
      "s1",
    );
    // Not run twice, not applied twice.
    assert.equal(
      s.view((tx) => tx.revision()),
      1,
    );
  });

  test("...and when another writer committed after it, before the retry", async (t) => {
    const others: EtcdStore[] = [];
    const { client, arm } = replayingClient(t, async () => {
      await others[0]!.update((tx) => tx.putNode(node("n1")));
    });
    const s = await open(t, { client }, "/replay2/");
    others.push(await open(t, {}, "/replay2/"));
    arm();
    await s.update((tx) => tx.putService(service("s1", "web")));
    await s.sync();
    assert.deepEqual(
      s.view((tx) => ({ s: ids(tx.listServices()), n: ids(tx.listNodes()), rev: tx.revision() })),
      { s: ["s1"], n: ["n1"], rev: 2 },
    );
  });

  test("bad options are refused with a clear error", async () => {
    await assert.rejects(
      openEtcdStore({ endpoints: etcd.endpoints, prefix: "/no-slash" }),
      (err: unknown) => isCode("ERR_INVALID")(err) && /must end with "\/"/.test(String(err)),
    );
    await assert.rejects(
      openEtcdStore({ endpoints: etcd.endpoints, maxTxnOps: 1 }),
      (err: unknown) => isCode("ERR_INVALID")(err) && /maxTxnOps/.test(String(err)),
    );
    await assert.rejects(openEtcdStore({}), isCode("ERR_INVALID"));
  });
});

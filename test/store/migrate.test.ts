// Moving the embedded store's state into etcd (src/store/move-to-etcd.ts) against a real etcd:
// a state of many services, tasks, KV keys and the rest, larger than one etcd transaction,
// arrives whole (every object equal) and the revision continues; a non-empty prefix is refused;
// a move stopped half way is detected by the etcd store and finished by running it again.

import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { openEmbeddedStore, type EmbeddedStore } from "../../src/store/embedded.js";
import { openEtcdStore } from "../../src/store/etcd.js";
import { moveStateToEtcd } from "../../src/store/move-to-etcd.js";
import type { StateSnapshot } from "../../src/store/state.js";
import { StoreError } from "../../src/store/store.js";
import type { Config, Secret } from "../../src/api/types.js";
import type { ClusterEvent } from "../../src/api/events.js";
import { defer } from "../helpers/defer.js";
import { etcdSkip, startEtcd, type EtcdCluster } from "../helpers/etcd.js";
import { network, node, service, task, tmpStoreDir, warnings } from "./helpers.js";

function isCode(code: string) {
  return (err: unknown) => err instanceof StoreError && err.code === code;
}

function sorted(s: StateSnapshot): StateSnapshot["entries"] {
  return [...s.entries].sort((a, b) =>
    a.kind === b.kind ? (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) : a.kind < b.kind ? -1 : 1,
  );
}

/** An embedded store with a state of every kind: 120 services × 10 tasks, 400 KV keys... */
async function bigState(t: TestContext): Promise<EmbeddedStore> {
  const s = await openEmbeddedStore(tmpStoreDir(t), { onWarning: warnings().onWarning });
  defer(t, () => s.close());
  await s.update((tx) => {
    for (let n = 0; n < 5; n++) tx.putNode(node(`n${n}`));
    tx.putNetwork(network("net1", "backend"));
    tx.putSecret({ id: "sec1", name: "db-password", data: "c2VjcmV0" } as unknown as Secret);
    tx.putConfig({ id: "cfg1", name: "nginx.conf", data: "eA==" } as unknown as Config);
    tx.putMeta("ca", { clusterId: "c1" });
  });
  for (let i = 0; i < 120; i++) {
    await s.update((tx) => {
      tx.putService(service(`s${i}`, `web-${i}`));
      for (let k = 0; k < 10; k++) tx.putTask(task(`s${i}.t${k}`, `s${i}`, `n${k % 5}`));
    });
  }
  await s.update((tx) => {
    for (let i = 0; i < 400; i++) {
      const rev = tx.revision();
      tx.putKv({
        key: `app/${i % 7}/key-${i}`,
        value: Buffer.from(`v${i}`).toString("base64"),
        flags: 0,
        createIndex: rev,
        modifyIndex: rev,
        lockIndex: 0,
      });
    }
    for (let i = 1; i <= 50; i++) {
      tx.putEvent({
        Type: "service",
        Action: "create",
        Actor: { ID: `s${i}`, Attributes: { name: `web-${i}` } },
        scope: "swarm",
        time: i,
        timeNano: i * 1e9,
        seq: i,
      } as unknown as ClusterEvent);
    }
    // A deleted service leaves nothing behind.
    tx.deleteService("s119");
    for (let k = 0; k < 10; k++) tx.deleteTask(`s119.t${k}`);
  });
  return s;
}

describe("moving the embedded state into etcd", { skip: etcdSkip() }, () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  let n = 0;
  before(async () => {
    etcd = await startEtcd();
    client = new Etcd3({ hosts: etcd.endpoints });
  });
  after(async () => {
    client?.close();
    await etcd?.stop();
  });

  test("every object arrives, in many transactions, and the revision continues", async (t) => {
    const src = await bigState(t);
    const before = src.snapshot();
    assert.ok(before.entries.length > 1500, `a big state (${before.entries.length} objects)`);
    const progress: number[] = [];
    const prefix = `/m${++n}/`;
    const report = await moveStateToEtcd(src, {
      client,
      prefix,
      onProgress: (done) => progress.push(done),
    });
    assert.equal(report.objects, before.entries.length);
    assert.equal(report.seq, before.seq);
    assert.equal(report.resumed, false);
    assert.ok(report.transactions > 10, `${report.transactions} transactions`);
    assert.equal(progress.at(-1), before.entries.length);

    const dst = await openEtcdStore({ endpoints: etcd.endpoints, prefix });
    defer(t, () => dst.close());
    const after = dst.snapshot();
    assert.equal(after.seq, before.seq);
    assert.deepEqual(sorted(after), sorted(before));
    assert.equal(
      dst.view((tx) => tx.revision()),
      src.view((tx) => tx.revision()),
    );
    assert.equal(
      dst.view((tx) => tx.getServiceByName("web-7")?.id),
      "s7",
    );
    assert.equal(
      dst.view((tx) => tx.listTasks({ serviceId: "s3" }).length),
      10,
    );
    assert.equal(
      dst.view((tx) => tx.listKv("app/3/").length),
      57,
    );

    // The next batch commits as the embedded store's next revision would have.
    const rev = await dst.update((tx) => {
      tx.putService(service("s-new", "after-move"));
      return tx.revision();
    });
    assert.equal(rev, before.seq + 1);
  });

  test("too large a transaction is named; a prefix that holds a state or other keys is refused", async (t) => {
    const src = await bigState(t);
    const prefix = `/m${++n}/`;
    // Limits above etcd's: refused saying which flags, and the move can be run again.
    await assert.rejects(
      moveStateToEtcd(src, { client, prefix, maxTxnOps: 5000 }),
      (err: unknown) => isCode("ERR_TOO_LARGE")(err) && /--max-txn-ops/.test(String(err)),
    );
    assert.equal((await moveStateToEtcd(src, { client, prefix })).resumed, true);
    await assert.rejects(
      moveStateToEtcd(src, { client, prefix }),
      (err: unknown) => isCode("ERR_NOT_EMPTY")(err) && /already holds a state/.test(String(err)),
    );

    const other = `/m${++n}/`;
    await client.put(`${other}somebody/else`).value("x");
    await assert.rejects(
      moveStateToEtcd(src, { client, prefix: other }),
      (err: unknown) => isCode("ERR_NOT_EMPTY")(err) && /1 keys under/.test(String(err)),
    );
    assert.deepEqual(await client.getAll().prefix(other).keys(), [`${other}somebody/else`]);
  });

  test("a move stopped half way is refused by the store, and running it again finishes it", async (t) => {
    const src = await bigState(t);
    const prefix = `/m${++n}/`;
    let batches = 0;
    await assert.rejects(
      moveStateToEtcd(src, {
        client,
        prefix,
        onProgress: () => {
          if (++batches === 3) throw new Error("the manager died");
        },
      }),
      /the manager died/,
    );
    // Half of it is there, the rev key is not: the etcd store refuses to open on it.
    const partial = await client.getAll().prefix(prefix).count();
    assert.ok(partial > 0 && partial < src.snapshot().entries.length, `${partial} keys`);
    await assert.rejects(
      openEtcdStore({ endpoints: etcd.endpoints, prefix }),
      isCode("ERR_MOVE_UNFINISHED"),
    );

    const report = await moveStateToEtcd(src, { client, prefix });
    assert.equal(report.resumed, true);
    const dst = await openEtcdStore({ endpoints: etcd.endpoints, prefix });
    defer(t, () => dst.close());
    assert.deepEqual(sorted(dst.snapshot()), sorted(src.snapshot()));
    assert.equal(dst.snapshot().seq, src.snapshot().seq);
  });
});

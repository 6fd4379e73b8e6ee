// The etcd client's connections are kept alive (src/store/etcd.ts, `etcdClient`): a connection
// to a member that goes silent — cut off the network, so no reset ever comes — is given up and
// its watches fail over, instead of hanging forever. Found by the history test of several
// managers (test/cluster/history.test.ts): followers whose election watch ran through a cut-off
// member never learned that the leader's key had expired.
//
// The member is reached through a TCP proxy in this process that can go silent: it stops
// forwarding in both directions without closing anything, as a cut link does (`silentProxy`,
// test/helpers/etcd.ts).

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Watcher } from "etcd3";
import { etcdClient } from "../../src/store/etcd.js";
import { etcdSkip, silentProxy, startEtcd } from "../helpers/etcd.js";
import { checkFor } from "../helpers/servers.js";

test(
  "a watch through a member that goes silent fails over instead of hanging",
  { skip: etcdSkip(), timeout: 60_000 },
  async (t) => {
    const etcd = await startEtcd();
    const u = new URL(etcd.endpoints[0]!);
    const proxy = await silentProxy({ host: u.hostname, port: Number(u.port) });
    const client = etcdClient({ endpoints: [proxy.url] });
    const direct = etcdClient({ endpoints: etcd.endpoints });
    const watching: Watcher[] = [];
    t.after(async () => {
      // The proxy first: a watch stuck on it (the failure this test is for) then errors, and
      // its cancel does not wait for an answer that never comes.
      await proxy.close();
      for (const w of watching) await w.cancel().catch(() => {});
      client.close();
      direct.close();
      await etcd.stop();
    });

    const seen: string[] = [];
    let disconnected = 0;
    const w = await client.watch().key("k").create();
    watching.push(w);
    w.on("put", (kv) => seen.push(kv.value.toString()));
    w.on("disconnected", () => disconnected++);
    await direct.put("k").value("1");
    await checkFor(10_000, () => seen.includes("1"));

    // The link goes silent: the client's keep-alive gives the connection up.
    proxy.cut();
    await checkFor(20_000, () => disconnected > 0, 100);

    // Back: the watch is opened again from the revision it had, and misses nothing.
    proxy.heal();
    await direct.put("k").value("2");
    await checkFor(30_000, () => seen.includes("2"), 100);
    assert.deepEqual(seen, ["1", "2"]);
  },
);

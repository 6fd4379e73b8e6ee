// The etcd client benches a member that does not answer (src/store/etcd-probe.ts): which
// members are isolated, as a table; then a real etcd reached both directly and through a proxy
// that goes silent (a cut link): the proxy is benched, no call waits out its deadline on it,
// and it is let back once the link heals.

import { test } from "node:test";
import assert from "node:assert/strict";
import { isolationChanges, type ProbedMember } from "../../src/store/etcd-probe.js";
import { etcdClient } from "../../src/store/etcd.js";
import { etcdSkip, silentProxy, startEtcd } from "../helpers/etcd.js";
import { checkFor } from "../helpers/servers.js";

test("isolationChanges: failed members are isolated, answering ones let back, never all", () => {
  const m = (failed: boolean, isolated: boolean): ProbedMember => ({ failed, isolated });
  const rows: Array<[string, ProbedMember[], number[], number[]]> = [
    ["all answer", [m(false, false), m(false, false)], [], []],
    ["one fails", [m(true, false), m(false, false), m(false, false)], [0], []],
    ["already isolated, still failing", [m(true, true), m(false, false)], [], []],
    ["answers again", [m(false, true), m(false, false)], [], [0]],
    ["all fail: none isolated", [m(true, false), m(true, false)], [], []],
    ["all fail: the isolated are let back", [m(true, true), m(true, false)], [], [0]],
    ["two of three fail", [m(true, false), m(true, true), m(false, false)], [0], []],
    ["none", [], [], []],
  ];
  for (const [name, members, isolate, release] of rows) {
    assert.deepEqual(isolationChanges(members), { isolate, release }, name);
  }
});

test(
  "a member cut off is benched: no call waits out its deadline on it; back when it answers",
  { skip: etcdSkip(), timeout: 90_000 },
  async (t) => {
    const etcd = await startEtcd();
    const u = new URL(etcd.endpoints[0]!);
    const proxy = await silentProxy({ host: u.hostname, port: Number(u.port) });
    const changes: Array<[string, boolean]> = [];
    const client = etcdClient({
      endpoints: [etcd.endpoints[0]!, proxy.url],
      onMember: (host, benched) => changes.push([host, benched]),
    });
    t.after(async () => {
      await proxy.close();
      client.close();
      await etcd.stop();
    });
    await client.put("k").value("v");
    const proxyHost = proxy.url;

    proxy.cut();
    await checkFor(15_000, () => changes.some(([h, b]) => h === proxyHost && b), 50);
    // Each call picks a member at random: without the bench, about half would go to the proxy
    // and fail only at their 5 s deadline.
    for (let i = 0; i < 20; i++) {
      const started = Date.now();
      assert.equal(await client.get("k").string(), "v");
      const took = Date.now() - started;
      assert.ok(took < 4000, `get ${i} took ${took} ms: it waited on the cut member`);
    }

    proxy.heal();
    await checkFor(30_000, () => changes.some(([h, b]) => h === proxyHost && !b), 50);
    assert.deepEqual(changes, [
      [proxyHost, true],
      [proxyHost, false],
    ]);
  },
);

// Managers depose a leader they all stop hearing (src/daemon/leader-silence.ts, managers.ts):
// three Leaderships on a real etcd and one shoal message server, with a 30 s lease, so a new
// leader within the wait below comes from the survivors' revoking the silent leader's lease,
// not from the lease running out.

import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { Leadership } from "../../src/daemon/managers.js";
import { openEtcdStore } from "../../src/store/etcd.js";
import { silentLogger, type Logger } from "../../src/lib/log.js";
import { etcdSkip, startEtcd, type EtcdCluster } from "../helpers/etcd.js";
import { checkFor, useServer } from "../helpers/servers.js";
import { defer } from "../helpers/defer.js";

describe("deposing a silent leader", { skip: etcdSkip() }, () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await startEtcd();
  });
  after(() => etcd?.stop());

  /** `count` managers on one etcd and one message server; each one's warnings are kept. */
  async function managers(t: TestContext, count: number) {
    const server = await useServer(t);
    const all: Array<{ id: string; l: Leadership; warnings: string[]; silentPrevious: string[] }> =
      [];
    for (let i = 0; i < count; i++) {
      const id = `m${i}`;
      const client = new Etcd3({ hosts: etcd.endpoints });
      defer(t, () => client.close());
      const warnings: string[] = [];
      const silentPrevious: string[] = [];
      const log: Logger = { ...silentLogger, warn: (m) => warnings.push(m) };
      const store = await openEtcdStore({
        endpoints: etcd.endpoints,
        prefix: "/depose-store/",
        fence: () => l.fence(), // called at a write, after l is made
      });
      defer(t, () => store.close());
      const l = new Leadership({
        client,
        store,
        nodeId: id,
        natsUrl: `nats://127.0.0.1:${server.port}`,
        agentPass: "unused",
        answer: () => Promise.reject(new Error("no API here")),
        onLead: () => Promise.resolve(),
        log,
        ttlSeconds: 30,
        onPreviousLeaderSilent: (prev) => silentPrevious.push(prev.nodeId),
      });
      await l.start();
      defer(t, () => l.stop());
      all.push({ id, l, warnings, silentPrevious });
      // The first starts alone, so that it leads.
      if (i === 0) await checkFor(10_000, () => l.isLeader() || null);
    }
    return all;
  }

  test("three managers: the leader goes silent, the others revoke its lease", async (t) => {
    const [first, ...rest] = await managers(t, 3);
    // Both follow m0 and have heard its beats.
    await checkFor(
      10_000,
      () => rest.every((m) => m.l.leaderId() === "m0" && m.l.heardFrom("m0")) || null,
    );
    await first!.l.abandon(); // no resignation, no more beats: its lease would last 30 s
    const next = await checkFor(15_000, () => {
      const leaders = rest.filter((m) => m.l.isLeader());
      return leaders.length === 1 && rest.every((m) => m.l.leaderId() === leaders[0]!.id)
        ? leaders[0]!
        : null;
    });
    assert.notEqual(next!.id, "m0");
    // The new leader knows whom it follows and since when it is silent (its node gets no grace).
    const prev = next!.l.silentPreviousLeader();
    assert.equal(prev?.nodeId, "m0");
    assert.ok(Date.now() - prev.heardAt >= 3500, `m0 silent for ${Date.now() - prev.heardAt} ms`);
    // ...and says so once, so that m0's node loses the grace a new leader gives every node.
    await checkFor(5000, () => next!.silentPrevious.length > 0);
    assert.deepEqual(next!.silentPrevious, ["m0"]);
    const said = rest.flatMap((m) => m.warnings).filter((w) => w.includes("its lease is revoked"));
    assert.ok(
      said.length >= 1,
      `a survivor says it deposed m0: ${JSON.stringify(rest.map((m) => m.warnings))}`,
    );
    assert.match(
      said[0]!,
      /^the leader \(m0\) was not heard for \d+\.\d s by this manager nor by m[12]:/,
    );
  });
});

// Leader election on a real etcd (test/helpers/etcd.ts): one leader at a time among three
// contenders, a dead leader (no resign) replaced within the TTL, a resigning one at once, and
// fencing: a deposed leader's store writes are refused by etcd itself.

import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import {
  LeaderElection,
  readLeaderId,
  type LeaderElectionOptions,
} from "../../src/store/leader.js";
import { openEtcdStore, type EtcdStore, type Fence } from "../../src/store/etcd.js";
import { StoreError } from "../../src/store/store.js";
import { etcdSkip, startEtcd, type EtcdCluster } from "../helpers/etcd.js";
import { defer } from "../helpers/defer.js";
import { checkFor } from "../helpers/servers.js";
import { node, warnings } from "./helpers.js";

function isCode(code: string) {
  return (err: unknown) => err instanceof StoreError && err.code === code;
}

describe("leader election", { skip: etcdSkip() }, () => {
  let etcd: EtcdCluster;
  let n = 0;
  before(async () => {
    etcd = await startEtcd();
  });
  after(() => etcd?.stop());

  function client(t: TestContext): Etcd3 {
    const c = new Etcd3({ hosts: etcd.endpoints });
    defer(t, () => c.close());
    return c;
  }

  /** `count` contenders on an election of their own, each with its own etcd client. */
  async function contenders(
    t: TestContext,
    count: number,
    opts: Partial<LeaderElectionOptions> = {},
  ): Promise<LeaderElection[]> {
    const prefix = `/election-${++n}/`;
    const out: LeaderElection[] = [];
    for (let i = 0; i < count; i++) {
      const e = await LeaderElection.start({
        client: client(t),
        id: `m${i}`,
        prefix,
        ttlSeconds: 2,
        onWarning: warnings().onWarning,
        ...opts,
      });
      defer(t, () => e.close());
      out.push(e);
    }
    return out;
  }

  /** Waits until exactly one contender leads and every live one names it; returns it. */
  async function oneLeader(
    all: LeaderElection[],
    ms = 5000,
    each = () => {},
  ): Promise<LeaderElection> {
    const leader = await checkFor(ms, () => {
      each();
      const leaders = all.filter((e) => e.isLeader);
      if (leaders.length !== 1) return null;
      const id = leaders[0]!.leaderId;
      return all.every((e) => e.leaderId === id) ? leaders[0]! : null;
    });
    return leader!;
  }

  test("three contenders: one leader, every contender names it; never two at once", async (t) => {
    const all = await contenders(t, 3);
    // Sampled at every leadership change any contender sees, and at every check of oneLeader.
    let most = 0;
    const sample = () => (most = Math.max(most, all.filter((x) => x.isLeader).length));
    for (const e of all) e.onChange(sample);
    const leader = await oneLeader(all, 5000, sample);
    assert.equal(leader.leaderId, `m${all.indexOf(leader)}`);
    assert.ok(leader.fence() !== null);
    for (const e of all) if (e !== leader) assert.equal(e.fence(), null);
    assert.equal(most, 1);
  });

  test("a leader that dies without resigning is replaced within the TTL", async (t) => {
    const all = await contenders(t, 3);
    const first = await oneLeader(all);
    const firstId = first.leaderId;
    const changes: Array<string | undefined> = [];
    const rest = all.filter((e) => e !== first);
    rest[0]!.onChange((id) => changes.push(id));
    await first.abandon(); // its lease is no longer kept alive: the key expires after 2 s
    // The goal: a new leader within 5 s of the old one's death.
    const next = await oneLeader(rest, 5000);
    assert.notEqual(next.leaderId, firstId);
    assert.ok(rest.includes(next));
    assert.deepEqual(changes.at(-1), next.leaderId);
    assert.equal(first.isLeader, false);
  });

  test("a leader that resigns hands over at once, without waiting for its lease", async (t) => {
    // A TTL of 30 s: a handover that waited for the lease would time out below.
    const all = await contenders(t, 2, { ttlSeconds: 30 });
    const first = await oneLeader(all);
    await first.close();
    const next = await oneLeader(
      all.filter((e) => e !== first),
      5000,
    );
    assert.notEqual(next, first);
  });

  test("depose: another candidate revokes a silent leader's lease, the next leads at once", async (t) => {
    // A TTL of 30 s: a handover that waited for the lease would time out below.
    const all = await contenders(t, 3, { ttlSeconds: 30 });
    const first = await oneLeader(all);
    const firstId = first.leaderId!;
    await first.abandon(); // as a dead machine: its lease stays until revoked or expired
    const [a, b] = all.filter((e) => e !== first);
    // Not a leader it does not see, nor itself.
    assert.equal(await a!.depose("m-nobody"), false);
    assert.equal(await a!.depose(firstId), true);
    // b's view may still name the old leader: its lease is gone already, which is no error.
    await assert.doesNotReject(b!.depose(firstId));
    const next = await oneLeader([a!, b!], 5000);
    assert.notEqual(next.leaderId, firstId);
    assert.equal(await next.depose(next.leaderId!), false); // never its own term
    assert.equal(next.isLeader, true);
  });

  test("readLeaderId names the leader as etcd holds it, for a process that does not campaign", async (t) => {
    const all = await contenders(t, 2, { ttlSeconds: 30 });
    const prefix = `/election-${n}/`;
    const c = client(t);
    const first = await oneLeader(all);
    const firstId = first.leaderId;
    assert.equal(await readLeaderId(c, prefix), firstId);
    await first.close();
    const next = await oneLeader(
      all.filter((e) => e !== first),
      5000,
    );
    assert.equal(await readLeaderId(c, prefix), next.leaderId);
    // (Not first.leaderId now: a closed contender may still follow the election's keys.)
    assert.notEqual(next.leaderId, firstId);
    assert.equal(await readLeaderId(c, "/no-election-here/"), undefined);
  });

  test("fencing: a deposed leader's writes are refused by etcd, the new leader's commit", async (t) => {
    const all = await contenders(t, 2);
    const stores: EtcdStore[] = [];
    const prefix = `/fenced-${n}/`;
    const open = async (fence: () => Fence | null) => {
      const s = await openEtcdStore({ endpoints: etcd.endpoints, prefix, fence });
      defer(t, () => s.close());
      stores.push(s);
      return s;
    };
    const a = await oneLeader(all);
    const b = all.find((e) => e !== a)!;
    const storeA = await open(() => a.fence());
    const storeB = await open(() => b.fence());
    await storeA.update((tx) => tx.putNode(node("by-a")));
    await assert.rejects(
      storeB.update((tx) => tx.putNode(node("by-b-follower"))),
      isCode("ERR_NOT_LEADER"),
    );
    // A stalls (a long pause, a partition) still holding its old fence, and is deposed.
    const stale = a.fence()!;
    const storeStale = await open(() => stale);
    await a.abandon();
    await checkFor(5000, () => b.isLeader);
    await storeB.sync();
    await storeB.update((tx) => tx.putNode(node("by-b")));
    await assert.rejects(
      storeStale.update((tx) => tx.putNode(node("by-a-deposed"))),
      (err: unknown) =>
        isCode("ERR_NOT_LEADER")(err) && /no longer the leader/.test((err as Error).message),
    );
    await assert.rejects(
      storeA.update((tx) => tx.putNode(node("by-a-after"))),
      isCode("ERR_NOT_LEADER"),
    );
    await storeB.sync();
    assert.deepEqual(storeB.view((tx) => tx.listNodes().map((x) => x.id)).sort(), ["by-a", "by-b"]);
  });

  test("a leader whose lease may have run out (clock past the TTL) stops leading", async (t) => {
    let now = 1_000_000;
    const [e] = await contenders(t, 1, { ttlSeconds: 30, now: () => now });
    const leader = await oneLeader([e!]);
    now += 30_000;
    assert.equal(leader.isLeader, false);
    assert.equal(leader.fence(), null);
    assert.equal(leader.leaderId, undefined);
  });

  test("an observer knows the leader; bad options are refused", async (t) => {
    const [c] = await contenders(t, 1);
    await oneLeader([c!]);
    const o = await LeaderElection.start({
      client: client(t),
      id: "reader",
      prefix: `/election-${n}/`,
      observeOnly: true,
    });
    defer(t, () => o.close());
    assert.equal(o.leaderId, "m0");
    assert.equal(o.isLeader, false);
    await assert.rejects(
      LeaderElection.start({ client: client(t), id: "x", prefix: "/nope" }),
      isCode("ERR_INVALID"),
    );
    await assert.rejects(
      LeaderElection.start({ client: client(t), id: "x", ttlSeconds: 0.5 }),
      (err: unknown) => isCode("ERR_INVALID")(err) && /TTL/.test(String(err)),
    );
    await assert.rejects(
      LeaderElection.start({ client: client(t), id: "" }),
      isCode("ERR_INVALID"),
    );
  });
});

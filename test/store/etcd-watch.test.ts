// What the election and the etcd store see must not hang on one watch stream (issue 14's
// history test: after a leader was cut off, a manager kept naming it for over a minute).
//
// - A watch stream can stall without an error while its member can still be reached: the
//   election then also reads its prefix now and then, so an observer learns the new leader
//   through another connection. The client here has no keep-alive, so the stall lasts (with it,
//   gRPC gives such a connection up after about 8 s, and etcd3 may reconnect the watch to a
//   member that cannot be reached, again and again).
// - etcd3 resumes a broken watch from the revision in the header of etcd's last answer to it,
//   which can be past the events it delivered: a created answer (header: the member's revision
//   now) comes before the events a resumed watch catches up on, so a stream that breaks between
//   them skips those events for good. The test makes that happen at once by handing the watcher
//   such an answer, then breaks the stream: the store and the election must resume from what
//   they applied.

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { Etcd3, type Watcher } from "etcd3";
import { LeaderElection } from "../../src/store/leader.js";
import { openEtcdStore } from "../../src/store/etcd.js";
import { etcdSkip, silentProxy, startEtcd, type EtcdCluster } from "../helpers/etcd.js";
import { defer } from "../helpers/defer.js";
import { checkFor } from "../helpers/servers.js";
import { service, warnings } from "./helpers.js";

/** The watchers `client` makes, as etcd3 hands them out. */
function capturedWatchers(client: Etcd3): Watcher[] {
  const made: Watcher[] = [];
  const watch = client.watch.bind(client);
  client.watch = () => {
    const builder = watch();
    const create = builder.create.bind(builder);
    builder.create = async () => {
      const w = await create();
      made.push(w);
      return w;
    };
    return builder;
  };
  return made;
}

async function setUp(t: TestContext) {
  const etcd: EtcdCluster = await startEtcd();
  const u = new URL(etcd.endpoints[0]!);
  const proxy = await silentProxy({ host: u.hostname, port: Number(u.port) });
  // Through the proxy, without keep-alive; closed last but one (a watch stuck on the proxy errs
  // once the proxy closes, and then its cancel does not wait for an answer that never comes).
  const viaProxy = new Etcd3({ hosts: proxy.url });
  const direct = () => {
    const c = new Etcd3({ hosts: etcd.endpoints });
    defer(t, () => c.close());
    return c;
  };
  t.after(async () => {
    await proxy.close();
    viaProxy.close();
    await etcd.stop();
  });
  return { etcd, proxy, viaProxy, direct };
}

test(
  "an observer whose election watch stalls still learns the new leader",
  { skip: etcdSkip(), timeout: 60_000 },
  async (t) => {
    const { proxy, viaProxy, direct } = await setUp(t);
    const w = warnings();
    const opts = { prefix: "/stall/", ttlSeconds: 2, onWarning: w.onWarning };
    const a = await LeaderElection.start({ ...opts, client: direct(), id: "a" });
    defer(t, () => a.close());
    await checkFor(10_000, () => a.isLeader);
    const c = await LeaderElection.start({ ...opts, client: direct(), id: "c" });
    defer(t, () => c.close());
    const b = await LeaderElection.start({ ...opts, client: viaProxy, id: "b", observeOnly: true });
    defer(t, () => b.abandon());
    await checkFor(10_000, () => b.leaderId === "a" && c.leaderId === "a");

    // b's watch stream hangs; a resigns and c leads.
    proxy.stall();
    await a.close();
    await checkFor(10_000, () => c.isLeader);
    await checkFor(15_000, () => b.leaderId === "c", 100);
  },
);

test(
  "a watch resumed after a break starts after what was applied, not at etcd3's header revision",
  { skip: etcdSkip(), timeout: 60_000 },
  async (t) => {
    const { proxy, viaProxy, direct } = await setUp(t);
    const w = warnings();
    const made = capturedWatchers(viaProxy);

    // A store and an observing election (no reads besides the watch) through the proxy.
    const store = await openEtcdStore({
      client: viaProxy,
      prefix: "/resume/",
      onWarning: w.onWarning,
    });
    defer(t, () => store.close());
    const writer = await openEtcdStore({ client: direct(), prefix: "/resume/" });
    defer(t, () => writer.close());
    const opts = { prefix: "/resume-election/", ttlSeconds: 2, onWarning: w.onWarning };
    const a = await LeaderElection.start({ ...opts, client: direct(), id: "a" });
    defer(t, () => a.close());
    await checkFor(10_000, () => a.isLeader);
    const c = await LeaderElection.start({ ...opts, client: direct(), id: "c" });
    defer(t, () => c.close());
    const b = await LeaderElection.start({
      ...opts,
      client: viaProxy,
      id: "b",
      observeOnly: true,
      pollMs: 0,
    });
    defer(t, () => b.abandon());
    await checkFor(10_000, () => b.leaderId === "a");
    assert.equal(made.length, 2, "the store's watcher and the election's");

    // etcd3 reads a created answer whose header is ahead of the events delivered; the stream
    // then breaks (the proxy resets its connections) before they come.
    const ahead = { header: { revision: String(Number(store.mirrorRevision) + 1000) } };
    for (const watcher of made) watcher.emit("connected", ahead);
    proxy.heal();

    // Meanwhile: a service written, the leader resigned.
    await writer.update((tx) => tx.putService(service("s1", "web")));
    await a.close();
    await checkFor(10_000, () => c.isLeader);

    await checkFor(15_000, () => store.view((tx) => tx.getService("s1")) !== undefined, 100);
    await checkFor(15_000, () => b.leaderId === "c", 100);
  },
);

// Managed etcd members (src/daemon/etcd-member.ts) with the real etcd binary: a single member
// with mutual TLS from the cluster CA (a client without a certificate is refused), grown to
// three by memberAdd + start, the etcd store working through any member, one member removed, a
// killed member restarted by the supervisor from its data, and the errors people meet (no etcd
// binary, a port in use, a mode that does not fit the data dir). Ports are picked free; every
// member is stopped by pid and the data dirs removed, pass or fail.

import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  EtcdMember,
  EtcdMemberError,
  addEtcdMember,
  listEtcdMembers,
  managedStoreLimits,
  memberHealthy,
  readEtcdTls,
  removeEtcdMember,
  type EtcdMemberOptions,
} from "../../src/daemon/etcd-member.js";
import {
  certPaths,
  createRootCa,
  issueNodeCert,
  newKeyAndCsr,
  writeNodeCerts,
} from "../../src/manager/ca.js";
import { EtcdTlsSource } from "../../src/store/etcd-tls.js";
import { openEmbeddedStore } from "../../src/store/embedded.js";
import { etcdClient, openEtcdStore, type EtcdTls } from "../../src/store/etcd.js";
import { moveStateToEtcd } from "../../src/store/move-to-etcd.js";
import { LeaderElection } from "../../src/store/leader.js";
import { defer } from "../helpers/defer.js";
import { memberOpts, nodeDir, startMember } from "../helpers/etcd-member.js";
import { etcdSkip } from "../helpers/etcd.js";
import { checkFor } from "../helpers/servers.js";
import { service } from "../store/helpers.js";

function isCode(code: string) {
  return (err: unknown) => err instanceof EtcdMemberError && err.code === code;
}

/** Opening a store must fail (matching `re`); a store that opens is closed, then fails the test. */
async function assertRefused(endpoints: string[], tls: EtcdTls | undefined, re: RegExp) {
  let store;
  try {
    store = await openEtcdStore({
      endpoints,
      ...(tls ? { tls } : {}),
      prefix: "/refused/",
      clientOptions: { defaultCallOptions: () => ({ deadline: Date.now() + 3000 }) },
    });
  } catch (err) {
    assert.match(String(err), re);
    return;
  }
  await store.close();
  assert.fail(`a store opened on ${endpoints.join(",")}: it should have been refused`);
}

function clientOf(t: TestContext, m: EtcdMember, endpoints = [m.clientUrl]) {
  const c = etcdClient({ endpoints, tls: m.clientTls() });
  defer(t, () => c.close());
  return c;
}

describe("managed etcd members", { skip: etcdSkip() }, () => {
  test("a single member serves over mutual TLS and refuses a client without a manager's certificate", async (t) => {
    const m = await startMember(t, await memberOpts(t, "mgr1"), { mode: "new" });
    assert.match(m.clientUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    const store = await openEtcdStore({
      endpoints: [m.clientUrl],
      tls: m.clientTls(),
      ...managedStoreLimits(),
    });
    defer(t, () => store.close());
    await store.update((tx) => tx.putService(service("s1", "web")));
    assert.equal(
      store.view((tx) => tx.getServiceByName("web")?.id),
      "s1",
    );

    // The leader election reaches it with the node certificate too.
    const e = await LeaderElection.start({
      endpoints: [m.clientUrl],
      tls: m.clientTls(),
      id: "mgr1",
    });
    defer(t, () => e.close());
    assert.equal(await checkFor(5000, () => e.isLeader || null), true);

    // The CA alone (no client certificate): the member refuses the TLS handshake.
    const { ca } = m.clientTls();
    await assertRefused([m.clientUrl], { ca }, /bad certificate|certificate required/);
    // A worker's certificate, from the same CA, is refused too (not a manager's).
    const worker = readEtcdTls(certPaths(await nodeDir(t, "wrk1", "worker")));
    await assertRefused([m.clientUrl], worker, /bad certificate|certificate required/);
    // Plain http is not served at all.
    await assertRefused([m.clientUrl.replace("https://", "http://")], undefined, /UNAVAILABLE/);
  });

  test("grows to three members by memberAdd + join, the store works through any member, one is removed", async (t) => {
    const m1 = await startMember(t, await memberOpts(t, "mgr1"), { mode: "new" });
    const c1 = clientOf(t, m1);
    const members = [m1];
    for (const id of ["mgr2", "mgr3"]) {
      const opts = await memberOpts(t, id);
      const peerUrl = `https://127.0.0.1:${opts.peerPort}`;
      const joined = await addEtcdMember(c1, id, peerUrl);
      assert.match(joined.initialCluster, new RegExp(`${id}=${peerUrl.replace(/[.]/g, "\\.")}`));
      // Added as a learner; the voting members are where it is promoted.
      const added = (await listEtcdMembers(c1)).find((m) => m.ID === joined.memberId);
      assert.equal(added?.isLearner, true);
      assert.deepEqual([...joined.endpoints].sort(), members.map((m) => m.clientUrl).sort());
      members.push(await startMember(t, opts, { mode: "join", ...joined }));
    }
    const list = await listEtcdMembers(c1);
    assert.deepEqual(list.map((m) => m.name).sort(), ["mgr1", "mgr2", "mgr3"]);
    assert.deepEqual(
      list.filter((m) => m.isLearner),
      [],
      "every joined member votes",
    );

    // One store per member: a write through each is seen through all.
    const stores = [];
    for (const m of members) {
      const s = await openEtcdStore({
        endpoints: [m.clientUrl],
        tls: m.clientTls(),
        prefix: "/grow/",
        ...managedStoreLimits(),
      });
      defer(t, () => s.close());
      stores.push(s);
    }
    for (const [i, s] of stores.entries()) {
      await s.update((tx) => tx.putService(service(`s${i}`, `web${i}`)));
    }
    for (const s of stores) {
      await s.sync();
      assert.deepEqual(s.view((tx) => tx.listServices().map((x) => x.spec.name)).sort(), [
        "web0",
        "web1",
        "web2",
      ]);
      assert.equal(
        s.view((tx) => tx.revision()),
        3,
      );
    }

    // Adding a member whose name is taken is refused, naming it.
    await assert.rejects(addEtcdMember(c1, "mgr2", "https://127.0.0.1:1"), /mgr2/);

    // Remove mgr3 through mgr1: its process ends and is not restarted; the two left commit.
    const removed = new Promise<void>((resolve) => members[2]!.once("removed", resolve));
    assert.equal(await removeEtcdMember(c1, "mgr3"), true);
    await removed;
    assert.equal(members[2]!.restarts, 0);
    assert.equal(await removeEtcdMember(c1, "mgr3"), false);
    assert.deepEqual((await listEtcdMembers(c1)).map((m) => m.name).sort(), ["mgr1", "mgr2"]);
    await stores[1]!.update((tx) => tx.putService(service("s9", "after-remove")));
    await stores[0]!.sync();
    assert.equal(
      stores[0]!.view((tx) => tx.getServiceByName("after-remove")?.id),
      "s9",
    );

    // A member added and never started (a promotion whose member failed to start) is taken
    // out when the same node's member is added again at the same peer URL.
    const url4 = "https://127.0.0.1:1";
    const first = await addEtcdMember(c1, "mgr4", url4);
    const again = await addEtcdMember(c1, "mgr4", url4);
    assert.notEqual(again.memberId, first.memberId);
    const unstarted = (await listEtcdMembers(c1)).filter((m) => m.name === "");
    assert.deepEqual(
      unstarted.map((m) => [m.ID, m.peerURLs]),
      [[again.memberId, [url4]]],
    );
  });

  test("a member added and never started leaves even a cluster of one writing (it is a learner)", async (t) => {
    const m1 = await startMember(t, await memberOpts(t, "solo1"), { mode: "new" });
    const c1 = clientOf(t, m1);
    const joined = await addEtcdMember(c1, "solo2", "https://127.0.0.1:1");
    assert.deepEqual(joined.endpoints, [m1.clientUrl]);
    // Had it been added as a voter, one started member of two would be no quorum: the write
    // would wait for etcd's request timeout and fail.
    await c1.put("after-add").value("1");
    assert.equal(await c1.get("after-add").string(), "1");
    const list = await listEtcdMembers(c1);
    assert.deepEqual(list.map((m) => [m.name, m.isLearner]).sort(), [
      ["", true],
      ["solo1", false],
    ]);
  });

  test("an embedded state moves onto a managed member in one transaction (its raised limits)", async (t) => {
    const m = await startMember(t, await memberOpts(t, "mgr1"), { mode: "new" });
    const dir = mkdtempSync(join(tmpdir(), "shoal-embedded-"));
    defer(t, () => rmSync(dir, { recursive: true, force: true }));
    const src = await openEmbeddedStore(dir);
    defer(t, () => src.close());
    await src.update((tx) => {
      for (let i = 0; i < 2000; i++) tx.putService(service(`s${i}`, `web-${i}`));
    });
    const report = await moveStateToEtcd(src, { client: clientOf(t, m), ...managedStoreLimits() });
    // 2000 objects in one transaction (etcd's default --max-txn-ops is 128), then the rev key.
    assert.equal(report.transactions, 2);
    const dst = await openEtcdStore({
      endpoints: [m.clientUrl],
      tls: m.clientTls(),
      ...managedStoreLimits(),
    });
    defer(t, () => dst.close());
    assert.equal(
      dst.view((tx) => tx.listServices().length),
      2000,
    );
    assert.equal(
      dst.view((tx) => tx.revision()),
      src.view((tx) => tx.revision()),
    );
  });

  test("a member removed while it was stopped fails its restart with ERR_ETCD_REMOVED", async (t) => {
    const m1 = await startMember(t, await memberOpts(t, "rm1"), { mode: "new" });
    const c1 = clientOf(t, m1);
    const opts: EtcdMemberOptions[] = [];
    const members = [m1];
    for (const id of ["rm2", "rm3"]) {
      const o = await memberOpts(t, id);
      opts.push(o);
      const joined = await addEtcdMember(c1, id, `https://127.0.0.1:${o.peerPort}`);
      members.push(await startMember(t, o, { mode: "join", ...joined }));
    }
    // rm3's machine goes down; the cluster takes its member out (a demotion while down).
    await members[2]!.stop();
    assert.equal(await removeEtcdMember(c1, "rm3"), true);
    await assert.rejects(
      EtcdMember.start(opts[1]!, { mode: "restart" }),
      (err: unknown) =>
        isCode("ERR_ETCD_REMOVED")(err) &&
        /rm3 has been removed from the cluster/.test(String(err)),
    );
    assert.deepEqual((await listEtcdMembers(c1)).map((m) => m.name).sort(), ["rm1", "rm2"]);
  });

  test("the supervisor restarts a killed member from its data; a stopped one restarts by mode", async (t) => {
    const opts = await memberOpts(t, "mgr1");
    const m = await startMember(t, opts, { mode: "new" });
    const s = await openEtcdStore({ endpoints: [m.clientUrl], tls: m.clientTls(), prefix: "/r/" });
    defer(t, () => s.close());
    await s.update((tx) => tx.putService(service("s1", "kept")));

    const oldPid = m.pid!;
    const exited = new Promise((resolve) => m.once("exit", (_code, signal) => resolve(signal)));
    const restarted = new Promise<number>((resolve) => m.once("restart", resolve));
    process.kill(oldPid, "SIGKILL");
    assert.equal(await exited, "SIGKILL");
    const newPid = await restarted;
    assert.notEqual(newPid, oldPid);
    assert.equal(m.restarts, 1);

    const s2 = await openEtcdStore({ endpoints: [m.clientUrl], tls: m.clientTls(), prefix: "/r/" });
    defer(t, () => s2.close());
    assert.equal(
      s2.view((tx) => tx.getServiceByName("kept")?.id),
      "s1",
    );

    // Stopped on purpose: not restarted; "new" on its data is refused, "restart" works.
    await m.stop();
    assert.equal(m.restarts, 1);
    await assert.rejects(EtcdMember.start(opts, { mode: "new" }), isCode("ERR_ETCD_INVALID"));
    const again = await startMember(t, opts, { mode: "restart" });
    const s3 = await openEtcdStore({
      endpoints: [again.clientUrl],
      tls: again.clientTls(),
      prefix: "/r/",
    });
    defer(t, () => s3.close());
    assert.equal(
      s3.view((tx) => tx.getServiceByName("kept")?.id),
      "s1",
    );
  });

  test("a restart reads the trusted CA file again; a client on an EtcdTlsSource follows new files, a fixed one does not", async (t) => {
    const opts = await memberOpts(t, "ca1");
    const m = await startMember(t, opts, { mode: "new" });
    const source = new EtcdTlsSource(m.clientTls());
    const following = etcdClient({ endpoints: [m.clientUrl], tls: source });
    defer(t, () => following.close());
    const fixed = clientOf(t, m);
    await following.put("/ca/k").value("v");
    assert.equal(await fixed.get("/ca/k").string(), "v");
    const firstPem = m.trustedPem;
    assert.match(firstPem, /BEGIN CERTIFICATE/);

    // The node's files move to another root (a rotation's end, for this member).
    const other = await createRootCa(new Date());
    const { keyPem, csrPem } = await newKeyAndCsr();
    const certPem = await issueNodeCert(other, csrPem, {
      nodeId: "ca1",
      role: "manager",
      addrs: ["127.0.0.1"],
      now: new Date(),
    });
    await writeNodeCerts(opts.dataDir, { caPem: other.certPem, certPem, keyPem });
    const files = readEtcdTls(certPaths(opts.dataDir));
    // etcd serves the new certificate at once, but trusts only the CA file it started with.
    assert.equal(await memberHealthy(m.clientUrl, files), false);

    const pid = m.pid;
    await m.restart();
    assert.notEqual(m.pid, pid);
    assert.equal(m.trustedPem, other.certPem);
    assert.equal(await memberHealthy(m.clientUrl, files), true);
    assert.equal(m.restarts, 0, "a restart on purpose is not the supervisor's");

    // Its connection gone with the restart, a client connects again with the TLS it has.
    const short = { deadline: Date.now() + 3000 };
    await assert.rejects(fixed.get("/ca/k").options(short).string());
    await assert.rejects(following.get("/ca/k").options(short).string());
    source.set(files);
    await checkFor(20_000, async () => {
      const v = await following
        .get("/ca/k")
        .options({ deadline: Date.now() + 2000 })
        .string()
        .catch(() => null);
      return v === "v";
    });
  });

  test("restart without data is refused, naming the data dir", async (t) => {
    const opts = await memberOpts(t, "mgr1");
    await assert.rejects(
      EtcdMember.start(opts, { mode: "restart" }),
      (err: unknown) => isCode("ERR_ETCD_INVALID")(err) && /no etcd data in/.test(String(err)),
    );
  });

  test("a port in use is named", async (t) => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen({ host: "127.0.0.1", port: 0 }, () => r()));
    defer(t, () => new Promise((r) => busy.close(r)));
    const port = (busy.address() as { port: number }).port;
    const opts = await memberOpts(t, "mgr1", { peerPort: port });
    await assert.rejects(
      EtcdMember.start(opts, { mode: "new" }),
      (err: unknown) =>
        isCode("ERR_ETCD_PORT")(err) && String(err).includes(`127.0.0.1:${port} is in use`),
    );
  });
});

test("a missing etcd binary says what to install", async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), "shoal-etcd-member-"));
  defer(t, () => rmSync(dataDir, { recursive: true, force: true }));
  await assert.rejects(
    EtcdMember.start(
      { nodeId: "n1", dataDir, addr: "127.0.0.1", bin: join(dataDir, "no-etcd-here") },
      { mode: "new" },
    ),
    (err: unknown) =>
      isCode("ERR_ETCD_MISSING")(err) &&
      /etcd is not installed/.test(String(err)) &&
      /apt-get install etcd-server/.test(String(err)),
  );
});

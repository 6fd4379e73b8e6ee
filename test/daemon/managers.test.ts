// Several manager daemons on one etcd (test/helpers/etcd.ts), on loopback with their own ports
// and data dirs: the first leads, a follower serves reads from its mirror and forwards writes to
// the leader, a dead leader is replaced, and without a leader a write fails with Swarm's words.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { etcdSkip, startEtcd, type EtcdCluster } from "../helpers/etcd.js";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  apiAt,
  checkFor,
  killTaskProcesses,
  runCli,
  isolatedFlags as ISOLATED,
  startDaemon,
  type TestDaemon,
} from "../helpers/daemon.js";
import { defer } from "../helpers/defer.js";
import { connect } from "nats";
import { joinManager } from "../../src/daemon/worker-daemon.js";
import { nodeTls } from "../helpers/pki.js";

/** `host:port` of a nats:// URL, as connect_urls lists it. */
const hostPort = (u: string) => new URL(u).host;

const SLEEPER = ["node", "-e", "setInterval(()=>{},1000)"];
const NO_LEADER = "The swarm does not have a leader.";

describe("several managers on an etcd store", { skip: etcdSkip() }, () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await startEtcd();
  });
  after(() => etcd?.stop());

  const storeFlag = () => `etcd://${etcd.endpoints.map((u) => u.replace("http://", "")).join(",")}`;

  async function manager(): Promise<TestDaemon> {
    return startDaemon({ args: ["--store", storeFlag()], readyMs: 60_000 });
  }

  /** `shoal join --token <manager token>` on a fresh data dir, through manager `m`. */
  async function joinAsManager(
    m: TestDaemon,
  ): Promise<Pick<TestDaemon, "cli" | "cleanup" | "dataDir" | "log">> {
    const dir = mkdtempSync(join(tmpdir(), "shoal-test-"));
    const cleanup = async () => {
      await runCli(dir, ["leave", "--force"], 30_000);
      killTaskProcesses(dir);
      rmSync(dir, { recursive: true, force: true });
    };
    const token = (await m.cli("swarm", "join-token", "-q", "manager")).stdout.trim();
    const info = await apiAt<{ advertiseAddr: string }>(m.dataDir, "/v1/info");
    const res = await runCli(dir, ["join", "--token", token, ...ISOLATED(dir), info.advertiseAddr]);
    if (res.code !== 0) {
      await cleanup();
      assert.fail(`join as a manager failed: ${res.stderr}`);
    }
    assert.match(res.stdout, /This node joined a swarm as a manager\./);
    return {
      dataDir: dir,
      cli: (...args: string[]) => runCli(dir, args),
      log: () => readFileSync(join(dir, "daemon.log"), "utf8"),
      cleanup,
    };
  }

  test("a missing etcd is a clear error naming its endpoints", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "shoal-test-"));
    defer(t, () => rmSync(dir, { recursive: true, force: true }));
    const res = await runCli(dir, ["daemon", ...ISOLATED(dir), "--store", "etcd://127.0.0.1:1"]);
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      /cannot use the etcd store at http:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/,
    );
  });

  test("a follower forwards writes to the leader and reads its mirror", async (t) => {
    const m1 = await manager();
    defer(t, () => m1.cleanup());
    await checkFor(30_000, () => /is the leader/.test(m1.log()), 50);
    // The second manager joins with the manager token, as a user would.
    const m2 = await joinAsManager(m1);
    defer(t, () => m2.cleanup());
    // Both managers are nodes of one swarm.
    await checkFor(30_000, async () => {
      const ls = await m2.cli("node", "ls", "-q");
      return ls.stdout.trim().split("\n").length === 2;
    });
    assert.doesNotMatch(m2.log(), /is the leader/);

    // A write on the follower is done by the leader.
    const created = await m2.cli(
      "service",
      "create",
      "--name",
      "web",
      "--replicas",
      "2",
      "--",
      ...SLEEPER,
    );
    assert.equal(created.code, 0, created.stderr);
    // ...and both see it, running on the nodes the leader's scheduler chose.
    for (const m of [m1, m2]) {
      await checkFor(30_000, async () => {
        const ps = await m.cli("service", "ps", "web", "--format", "{{.CurrentState}}");
        return ps.stdout.split("\n").filter((l) => l.startsWith("Running")).length === 2;
      });
    }
    // Streams and reads stay local; a bad write is refused by the leader's own checks.
    const bad = await m2.cli("service", "scale", "web=-1");
    assert.notEqual(bad.code, 0);

    // The leader dies: the follower leads within seconds and the service is kept.
    await m1.kill9();
    await checkFor(30_000, () => /is the leader/.test(m2.log()), 50);
    // The dead manager is Unreachable, the survivor leads (node ls from the survivor).
    await checkFor(30_000, async () => {
      const ls = await m2.cli("node", "ls", "--format", "{{.ManagerStatus}}");
      return ls.stdout.split("\n").sort().join(",") === ",Leader,Unreachable";
    });
    const scaled = await m2.cli("service", "scale", "web=3");
    assert.equal(scaled.code, 0, scaled.stderr);
    await checkFor(30_000, async () => {
      const ps = await m2.cli("service", "ps", "web", "--format", "{{.CurrentState}}");
      return ps.stdout.split("\n").filter((l) => l.startsWith("Running")).length === 3;
    });
  });

  // (With etcd, a second manager moves the state to etcd: test/cluster/managed-etcd.test.ts.)
  test("an embedded-store swarm without etcd refuses a second manager, saying what to install", async (t) => {
    const m1 = await startDaemon({ readyMs: 60_000, env: { ETCD: "/nonexistent/etcd" } });
    defer(t, () => m1.cleanup());
    const token = (await m1.cli("swarm", "join-token", "-q", "manager")).stdout.trim();
    const info = await apiAt<{ advertiseAddr: string }>(m1.dataDir, "/v1/info");
    const dir = mkdtempSync(join(tmpdir(), "shoal-test-"));
    defer(t, () => rmSync(dir, { recursive: true, force: true }));
    const res = await runCli(dir, ["join", "--token", token, ...ISOLATED(dir), info.advertiseAddr]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /etcd is not installed on the manager .*apt-get install etcd-server/);
    assert.equal(existsSync(join(dir, "node-id")), false);
    assert.equal(existsSync(join(m1.dataDir, "etcd")), false);
  });

  test("a node connected before a manager joined learns that manager's bus port", async (t) => {
    const m1 = await manager();
    defer(t, () => m1.cleanup());
    await checkFor(30_000, () => /is the leader/.test(m1.log()), 50);
    // A worker joins (its certificate from the join endpoint) and connects to the bus.
    const wt = (await m1.cli("swarm", "join-token", "-q", "worker")).stdout.trim();
    const info = await apiAt<{ advertiseAddr: string }>(m1.dataDir, "/v1/info");
    const j = await joinManager(info.advertiseAddr, {
      token: wt,
      hostname: "early",
      addr: "127.0.0.1",
    });
    const asNode = (servers: string[]) => ({
      servers,
      tls: nodeTls({ ca: j.answer.caCert, cert: j.answer.cert, key: j.keyPem }),
      reconnect: false,
    });
    const nc = await connect(asNode(j.answer.natsUrls));
    defer(t, () => nc.close());
    // It is told the nodes' ports only (never the plain client port, which maps no certificate).
    assert.deepEqual(nc.info?.connect_urls, j.answer.natsUrls.map(hostPort));

    const m2 = await joinAsManager(m1);
    defer(t, () => m2.cleanup());
    // It learns the new manager's nodes' port (an INFO), where its certificate is its identity.
    const known = new Set(j.answer.natsUrls.map(hostPort));
    let other = "";
    await checkFor(30_000, async () => {
      for (const u of nc.info?.connect_urls ?? []) {
        if (known.has(u)) continue;
        const nc2 = await connect({ ...asNode([`nats://${u}`]), timeout: 2000 }).catch(() => null);
        if (!nc2) continue;
        const id = nc2.info?.server_id ?? "";
        await nc2.close();
        if (id !== nc.info?.server_id) other = id;
      }
      return other !== "";
    });
    assert.notEqual(other, nc.info?.server_id);
  });

  test("without a leader a write on a follower fails with Swarm's words", async (t) => {
    // An etcd of its own, stopped under the managers: the leader's lease runs out.
    const lost = await startEtcd();
    defer(t, () => lost.stop());
    const flag = `etcd://${lost.endpoints[0]!.replace("http://", "")}`;
    const m1 = await startDaemon({ args: ["--store", flag], readyMs: 60_000 });
    defer(t, () => m1.cleanup());
    await checkFor(30_000, () => /is the leader/.test(m1.log()), 50);
    const m2 = await startDaemon({ args: ["--store", flag], readyMs: 60_000 });
    defer(t, () => m2.cleanup());
    await lost.members[0]!.stop("SIGKILL");
    await checkFor(30_000, () => /no longer leads/.test(m1.log()), 50);
    for (const m of [m2, m1]) {
      const res = await m.cli("service", "create", "--name", "nope", "--", ...SLEEPER);
      assert.notEqual(res.code, 0);
      assert.match(res.stderr, new RegExp(NO_LEADER));
    }
    // Reads still work, from the mirror.
    const ls = await m2.cli("node", "ls", "-q");
    assert.equal(ls.code, 0, ls.stderr);
    assert.equal(ls.stdout.trim().split("\n").length, 2);
  });
});

// Issue 14, managed etcd, on the network-namespace test bed: a swarm started on the embedded
// store moves its state into an etcd member of its own when a second manager joins with the
// manager token, under a running service (its tasks keep their processes, every service stays),
// a third manager joins the same way, and a manager restarted from its data dir comes back on
// etcd. Without etcd on the first manager, a manager's join fails naming what to install and the
// swarm stays on its embedded store.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { netnsSwarm } from "../helpers/swarm.js";
import { apiAt, waitApiGone } from "../helpers/daemon.js";
import { managerStatuses, settings } from "../helpers/manager-status.js";
import { checkFor, SHOAL_BIN } from "../helpers/servers.js";
import { etcdSkip } from "../helpers/etcd.js";
import type { Host } from "./netns.js";
import type { Service, Task } from "../../src/api/types.js";

interface Info {
  nodeId: string;
  leaderId?: string;
  pid: number;
}

async function running(dir: string, service: string): Promise<Task[]> {
  const ts = await apiAt<Task[]>(dir, `/v1/tasks?service=${service}`);
  return ts.filter((t) => t.status.state === "running" && t.desiredState === "running");
}

/** `shoal join --token TOKEN` of host `h` (data dir `dir`) to the manager at `addr`. */
function joinAs(h: Host, dir: string, token: string, addr: string, env?: Record<string, string>) {
  return h.exec(
    process.execPath,
    [
      SHOAL_BIN,
      "join",
      "--token",
      token,
      "--data-dir",
      dir,
      "--listen-addr",
      `${h.addr}:2377`,
      "--advertise-addr",
      `${h.addr}:2377`,
      "--publish-addr",
      h.addr,
      "--consul-addr",
      "",
      "--consul-dns-addr",
      "",
      `${addr}:2377`,
    ],
    { timeoutMs: 120_000, ...(env ? { env } : {}) },
  );
}

test(
  "embedded → etcd when a second manager joins under a running service; a third joins; a restart stays on etcd",
  { skip: etcdSkip() },
  async (t) => {
    const swarm = await netnsSwarm(t, 4, 1, { prefix: "ewr" });
    if (swarm === undefined) return;
    const hosts = swarm.bed.hosts;
    const dirs = swarm.dirs;

    // A service on the manager and the worker, a network, before the move.
    const r = await swarm.cli(
      "service",
      "create",
      "--name",
      "web",
      "--replicas",
      "2",
      "--",
      "sleep",
      "100000",
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await checkFor(60_000, async () => (await running(dirs[0]!, "web")).length === 2);
    await swarm.ok("network", "create", "--driver", "overlay", "backend");
    const before = await running(dirs[0]!, "web");
    const pids = new Map(before.map((x) => [x.id, x.status.pid]));
    assert.ok(
      before.every((x) => typeof x.status.pid === "number"),
      "the tasks report their pids",
    );
    const servicesBefore = (await apiAt<Service[]>(dirs[0]!, "/v1/services")).map((s) => s.id);
    assert.equal(settings(dirs[0]!).managedEtcd, undefined, "the embedded store at first");

    // The second manager: the first one moves its state into its own etcd member.
    const managerToken = (await swarm.ok("swarm", "join-token", "-q", "manager")).trim();
    // A machine without etcd is refused at once: nothing moves.
    const noEtcd = await joinAs(hosts[2]!, dirs[2]!, managerToken, swarm.manager.addr, {
      ETCD: "/nonexistent/etcd",
    });
    assert.equal(noEtcd.code, 1, noEtcd.stdout);
    assert.match(noEtcd.stderr, /etcd is not installed on the joining machine/);
    assert.equal(settings(dirs[0]!).managedEtcd, undefined);
    assert.ok(!existsSync(join(dirs[0]!, "etcd")), "no etcd member was started");
    const j2 = await joinAs(hosts[2]!, dirs[2]!, managerToken, swarm.manager.addr);
    assert.equal(j2.code, 0, `join of a second manager: ${j2.stderr}${j2.stdout}`);
    assert.match(j2.stdout, /This node joined a swarm as a manager\./);
    await checkFor(60_000, async () => {
      const rows = await managerStatuses(swarm);
      if (rows !== "Ready/,Ready/Leader,Ready/Reachable") throw new Error(`node ls: ${rows}`);
      return true;
    });
    assert.equal(settings(dirs[0]!).managedEtcd, true, "the first manager is on etcd now");
    assert.ok(existsSync(join(dirs[0]!, "etcd", "member")), "its etcd member's data");
    assert.equal(settings(dirs[2]!).managedEtcd, true, "the second manager too");

    // No task restarted; every service and the network are there.
    await checkFor(30_000, async () => (await running(dirs[0]!, "web")).length === 2);
    const after = await running(dirs[0]!, "web");
    assert.deepEqual(
      new Map(after.map((x) => [x.id, x.status.pid])),
      pids,
      "the same tasks, with the same processes",
    );
    assert.deepEqual(
      (await apiAt<Service[]>(dirs[0]!, "/v1/services")).map((s) => s.id),
      servicesBefore,
    );
    assert.match(await swarm.ok("network", "ls"), /backend/);
    // The second manager reads the same state.
    await checkFor(20_000, async () => {
      const ts = await apiAt<Task[]>(dirs[2]!, "/v1/tasks?service=web");
      const ids = ts
        .filter((x) => x.status.state === "running")
        .map((x) => x.id)
        .sort();
      if (JSON.stringify(ids) !== JSON.stringify([...pids.keys()].sort()))
        throw new Error(`the second manager's tasks: ${JSON.stringify(ts.map((x) => x.status))}`);
      return true;
    });
    // A write after the move.
    await swarm.ok("service", "scale", "web=3");
    await checkFor(60_000, async () => (await running(dirs[0]!, "web")).length === 3);

    // A third manager joins the same way (etcd member add).
    const j3 = await joinAs(hosts[3]!, dirs[3]!, managerToken, swarm.manager.addr);
    assert.equal(j3.code, 0, `join of a third manager: ${j3.stderr}${j3.stdout}`);
    await checkFor(60_000, async () => {
      const rows = await managerStatuses(swarm);
      if (rows !== "Ready/,Ready/Leader,Ready/Reachable,Ready/Reachable")
        throw new Error(`node ls: ${rows}`);
      return true;
    });

    // The first manager restarts from its data dir alone: back on its etcd member.
    const info = await apiAt<Info>(dirs[0]!, "/v1/info");
    process.kill(info.pid, "SIGTERM");
    await waitApiGone(dirs[0]!, 30_000);
    swarm.manager.spawn(process.execPath, [SHOAL_BIN, "daemon", "--data-dir", dirs[0]!]);
    await checkFor(60_000, async () => {
      const i = await apiAt<Info>(dirs[0]!, "/v1/info").catch(() => null);
      if (!i || i.pid === info.pid || i.leaderId === undefined) return false;
      const rows = await managerStatuses(swarm);
      if (rows !== "Ready/,Ready/Leader,Ready/Reachable,Ready/Reachable")
        throw new Error(`node ls: ${rows}`);
      return true;
    });
    assert.equal((await running(dirs[0]!, "web")).length, 3);

    // Demote the third manager: its member leaves etcd, it goes on as a worker.
    const thirdInfo = await apiAt<Info>(dirs[3]!, "/v1/info");
    const third = thirdInfo.nodeId;
    assert.equal(
      await swarm.ok("node", "demote", third),
      `Manager ${third} demoted in the swarm.\n`,
    );
    await checkFor(60_000, async () => {
      const rows = await managerStatuses(swarm);
      if (rows !== "Ready/,Ready/,Ready/Leader,Ready/Reachable")
        throw new Error(`node ls: ${rows}`);
      return existsSync(join(dirs[3]!, "join.json")) && !existsSync(join(dirs[3]!, "etcd"));
    });
    assert.equal(settings(dirs[3]!).managedEtcd, false);
    await checkFor(30_000, async () => {
      const w = await apiAt<Info & { role?: string }>(dirs[3]!, "/v1/info").catch(() => null);
      return w?.role === "worker";
    });
    assert.equal(
      (await apiAt<Info>(dirs[3]!, "/v1/info")).pid,
      thirdInfo.pid,
      "the same process, as a worker daemon",
    );
    // The second manager too. It has led in every run seen (the first one restarted above and
    // the leadership stayed away from it); a leader must resign before its member leaves, or
    // the others wait out its lease ("resigning the leadership failed" in its log).
    const second = (await apiAt<Info>(dirs[2]!, "/v1/info")).nodeId;
    const leaderDemoted = (await apiAt<Info>(dirs[0]!, "/v1/info")).leaderId === second;
    await swarm.ok("node", "demote", second);
    await checkFor(60_000, async () => {
      const rows = await managerStatuses(swarm);
      if (rows !== "Ready/,Ready/,Ready/,Ready/Leader") throw new Error(`node ls: ${rows}`);
      return true;
    });
    await checkFor(30_000, async () => {
      const w = await apiAt<Info & { role?: string }>(dirs[2]!, "/v1/info").catch(() => null);
      return w?.role === "worker";
    });
    if (leaderDemoted) {
      const log = readFileSync(join(dirs[2]!, "daemon.log"), "utf8");
      assert.doesNotMatch(log, /resigning the leadership failed/);
    }
    const last = await swarm.cli("node", "demote", info.nodeId);
    assert.equal(last.code, 1);
    assert.match(last.stderr, /attempting to demote the last manager of the swarm/);
    // Promoting a manager changes nothing, in docker/cli's words (promote.test.ts promotes).
    assert.equal(
      await swarm.ok("node", "promote", info.nodeId),
      `Node ${info.nodeId} is already a manager.\n`,
    );
    await swarm.ok("service", "scale", "web=4");
    await checkFor(60_000, async () => (await running(dirs[0]!, "web")).length === 4);
  },
);

test("without etcd on the first manager, a manager's join says what to install and nothing moves", async (t) => {
  const swarm = await netnsSwarm(t, 2, 0, {
    prefix: "ewr",
    managerEnv: { ETCD: "/nonexistent/etcd" },
  });
  if (swarm === undefined) return;
  const dirs = swarm.dirs;
  const pid = (await apiAt<Info>(dirs[0]!, "/v1/info")).pid;
  const managerToken = (await swarm.ok("swarm", "join-token", "-q", "manager")).trim();
  const j = await joinAs(swarm.bed.hosts[1]!, dirs[1]!, managerToken, swarm.manager.addr);
  assert.equal(j.code, 1, j.stdout);
  assert.match(j.stderr, /etcd is not installed on the manager/);
  assert.match(j.stderr, /apt-get install etcd-server/);
  // The first manager goes on, on its embedded store.
  assert.equal(settings(dirs[0]!).managedEtcd, undefined);
  assert.ok(!existsSync(join(dirs[0]!, "etcd")), "no etcd member was started");
  await swarm.ok("service", "create", "--name", "after", "--", "sleep", "100000");
  await checkFor(60_000, async () => (await running(dirs[0]!, "after")).length === 1);
  assert.equal((await apiAt<Info>(dirs[0]!, "/v1/info")).pid, pid);
  assert.equal(await managerStatuses(swarm), "Ready/Leader");
});

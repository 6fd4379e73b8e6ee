// Issue 14 on the network-namespace test bed: 3 managers on one etcd (in the root namespace, on
// the bed's bridge address, which every host reaches) and 2 workers, each on its own machine.
// A replicated service runs on every machine; then the leader's machine dies outright (its link
// down, every process of it killed): another manager leads within seconds, the dead machine's
// tasks run elsewhere, the earlier service is intact, `node ls` on a survivor shows the dead
// manager Unreachable and another Leader, and a write through a follower works.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startSwarm, type Swarm } from "../helpers/swarm.js";
import { apiAt, killTaskProcesses, runCli } from "../helpers/daemon.js";
import { checkFor } from "../helpers/servers.js";
import { etcdSkip, startEtcd, type EtcdCluster } from "../helpers/etcd.js";
import type { Task } from "../../src/api/types.js";

interface Info {
  nodeId: string;
  leaderId?: string;
}

/** Running tasks (desired running) of a service, as the manager on `dir` sees them. */
async function running(dir: string, service: string): Promise<Task[]> {
  const ts = await apiAt<Task[]>(dir, `/v1/tasks?service=${service}`);
  return ts.filter((t) => t.status.state === "running" && t.desiredState === "running");
}

test(
  "3 managers + 2 workers: the leader's machine dies, another leads and its tasks move",
  {
    skip: etcdSkip(),
  },
  async (t) => {
    let etcd: EtcdCluster | undefined;
    let swarm: Swarm;
    try {
      swarm = await startSwarm(5, 0, {
        prefix: "ham",
        async managerArgs(_m, bed) {
          etcd = await startEtcd({ host: bed.bridgeAddr });
          return [
            "--store",
            `etcd://${etcd.endpoints.map((u) => u.slice("http://".length)).join(",")}`,
          ];
        },
      });
    } catch (err) {
      await etcd?.stop();
      return t.skip(`no test bed: ${(err as Error).message}`);
    }
    t.after(async () => {
      for (const d of swarm.dirs) killTaskProcesses(d);
      await swarm.cleanup();
      await etcd?.stop();
    });
    if (swarm.bed.mode !== "netns") return t.skip("needs network namespaces");
    const dirs = swarm.dirs;

    // Two more managers, joined with the manager token on their own machines, before the workers
    // (a worker learns the managers from its join answer).
    await swarm.joinManager(0);
    await swarm.joinManager(1);
    // Workers: joinWorker(i) joins hosts[i + 1] with the worker token.
    await swarm.joinWorker(2);
    await swarm.joinWorker(3);
    await checkFor(60_000, async () => {
      // Thrown rather than false: checkFor fails with the last state seen.
      const ls = await swarm.cli("node", "ls", "--format", "{{.Status}}/{{.ManagerStatus}}");
      const rows = ls.stdout.trim().split("\n").sort().join(",");
      const leaders = await Promise.all(
        [dirs[1]!, dirs[2]!].map(async (d) => (await apiAt<Info>(d, "/v1/info")).leaderId),
      );
      if (
        rows !== "Ready/,Ready/,Ready/Leader,Ready/Reachable,Ready/Reachable" ||
        leaders.includes(undefined)
      )
        throw new Error(`node ls: ${rows}${ls.stderr}; the followers' leaders: ${leaders}`);
      return true;
    });
    const leader = await apiAt<Info>(dirs[0]!, "/v1/info");
    assert.equal(leader.leaderId, leader.nodeId, "the first manager leads");

    // An earlier service, and a replicated one spread over all five machines.
    const create = async (name: string, replicas: number) => {
      const r = await swarm.cli(
        "service",
        "create",
        "--name",
        name,
        "--replicas",
        String(replicas),
        "--restart-delay",
        "0s",
        "--",
        "sleep",
        "100000",
      );
      assert.equal(r.code, 0, r.stderr + r.stdout);
    };
    await create("before", 2);
    await checkFor(60_000, async () => (await running(dirs[0]!, "before")).length === 2);
    await create("web", 5);
    await checkFor(60_000, async () => (await running(dirs[0]!, "web")).length === 5);
    const webNodes = new Set((await running(dirs[0]!, "web")).map((x) => x.nodeId));
    assert.equal(webNodes.size, 5, "one web task on each machine");
    assert.ok(webNodes.has(leader.nodeId), "the leader's machine runs a web task");
    const beforeTasks = await running(dirs[0]!, "before");
    const webTasks = await running(dirs[0]!, "web");
    // The workers that reach the bus through the leader's machine: they must move to another
    // manager's message server before the new leader's node-down grace runs out.
    const onLeaderBus = [3, 4].filter((i) =>
      readFileSync(join(dirs[i]!, "daemon.log"), "utf8").includes(
        `connected to the control bus at ${swarm.manager.addr}:`,
      ),
    );
    t.diagnostic(`workers on the leader's message server: ${onLeaderBus.length} of 2`);

    // Pull the plug on the leader's machine.
    const died = Date.now();
    await swarm.manager.cut();
    await swarm.manager.kill();
    killTaskProcesses(dirs[0]!);

    const survivors = [dirs[1]!, dirs[2]!];
    const newLeader = await checkFor(
      60_000,
      async () => {
        const infos = await Promise.all(survivors.map((d) => apiAt<Info>(d, "/v1/info")));
        const ids = new Set(infos.map((i) => i.leaderId));
        const id = infos[0]!.leaderId;
        return ids.size === 1 && id !== undefined && id !== leader.nodeId ? id : "";
      },
      100,
    );
    t.diagnostic(
      `a new leader (${newLeader}) ${Date.now() - died} ms after the leader's machine died`,
    );
    // The surviving manager that does not lead: reads from its mirror, writes forwarded.
    const follower =
      (await apiAt<Info>(dirs[1]!, "/v1/info")).nodeId === newLeader ? dirs[2]! : dirs[1]!;

    // The dead machine's web task runs elsewhere: 5 running again, none on the dead node.
    await checkFor(
      90_000,
      async () => {
        const ts = await running(follower, "web");
        if (ts.length === 5 && ts.every((x) => x.nodeId !== leader.nodeId)) return true;
        throw new Error(`web runs on ${ts.map((x) => x.nodeId).join(", ")}`);
      },
      200,
    );
    t.diagnostic(`web back at 5 running tasks ${Date.now() - died} ms after the machine died`);
    // The earlier service is intact: 2 running, rescheduled off the dead node if it was there.
    await checkFor(60_000, async () => {
      const ts = await running(follower, "before");
      if (ts.length === 2 && ts.every((x) => x.nodeId !== leader.nodeId)) return true;
      throw new Error(`before runs on ${ts.map((x) => x.nodeId).join(", ")}`);
    });
    // Nothing that ran on a live machine was replaced: no live node was taken for dead.
    const webNow = new Set((await running(follower, "web")).map((x) => x.id));
    for (const x of webTasks.filter((w) => w.nodeId !== leader.nodeId))
      assert.ok(
        webNow.has(x.id),
        `web task ${x.id} on live node ${x.nodeId} kept running\n${onLeaderBus.map((w) => readFileSync(join(dirs[w]!, "daemon.log"), "utf8").split("\n").slice(-25).join("\n")).join("\n---\n")}`,
      );
    const beforeNow = new Set((await running(follower, "before")).map((x) => x.id));
    const all = await apiAt<Task[]>(follower, "/v1/tasks?service=before");
    for (const x of beforeTasks.filter((b) => b.nodeId !== leader.nodeId))
      assert.ok(
        beforeNow.has(x.id),
        `task ${x.id} of "before" on a live machine kept running; dead node ${leader.nodeId}; tasks now:\n${JSON.stringify(all, null, 1)}`,
      );
    const ls = await runCli(follower, ["service", "ls", "--format", "{{.Name}} {{.Replicas}}"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.deepEqual(ls.stdout.trim().split("\n").sort(), ["before 2/2", "web 5/5"]);

    // node ls from a survivor: the dead manager Unreachable (Down), another manager Leader.
    await checkFor(60_000, async () => {
      const nl = await runCli(follower, [
        "node",
        "ls",
        "--format",
        "{{.ID}} {{.Status}} {{.ManagerStatus}}",
      ]);
      const rows = nl.stdout.split("\n").filter((r) => r !== "");
      const dead = rows.find((r) => r.startsWith(leader.nodeId));
      const lead = rows.find((r) => r.startsWith(newLeader));
      if (
        rows.length === 5 &&
        dead === `${leader.nodeId} Down Unreachable` &&
        lead === `${newLeader} Ready Leader` &&
        rows.filter((r) => r.endsWith(" Reachable")).length === 1 &&
        rows.filter((r) => r.includes(" Ready ")).length === 4
      )
        return true;
      throw new Error(`node ls on a follower:\n${nl.stdout}${nl.stderr}`);
    });

    // A write through the follower: the leader scales the service.
    const scaled = await runCli(follower, ["service", "scale", "web=6"]);
    assert.equal(scaled.code, 0, scaled.stderr + scaled.stdout);
    await checkFor(60_000, async () => {
      const ts = await running(follower, "web");
      if (ts.length === 6 && ts.every((x) => x.nodeId !== leader.nodeId)) return true;
      throw new Error(`web runs on ${ts.map((x) => x.nodeId).join(", ")}`);
    });
  },
);

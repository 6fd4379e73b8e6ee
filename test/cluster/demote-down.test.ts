// Issue 14, a manager demoted while its machine is down (managed etcd, three managers), on the
// network-namespace test bed, as swarmkit handles it: the leader takes the dead manager's etcd
// member out as the demotion commits (the member list is two when `node demote` returns), the
// swarm goes on writing, and when the dead machine's daemon is started again from its data dir
// it finds its member removed, reads its node through the other managers' members and carries on
// as a worker (the same node id, Ready, an empty MANAGER STATUS, a task placed on it runs),
// without anyone typing a command. Promoted again it starts a clean member; cut off (up, but
// marked down) when demoted again, its running daemon goes on as a worker once it is reachable.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { netnsSwarm } from "../helpers/swarm.js";
import { apiAt, killTaskProcesses } from "../helpers/daemon.js";
import { etcdMembers, settings, waitStatuses, type Info } from "../helpers/manager-status.js";
import { checkFor, SHOAL_BIN } from "../helpers/servers.js";
import { etcdSkip } from "../helpers/etcd.js";

test(
  "a manager demoted while down (or cut off): its etcd member goes at once, and it comes back as a worker",
  { skip: etcdSkip() },
  async (t) => {
    const swarm = await netnsSwarm(t, 3, 0, { prefix: "dd" });
    if (swarm === undefined) return;
    const dirs = swarm.dirs;
    await swarm.joinManager(0);
    await swarm.joinManager(1);
    await waitStatuses(swarm, "Ready/Leader,Ready/Reachable,Ready/Reachable");
    const first = await apiAt<Info>(dirs[0]!, "/v1/info");
    const second = await apiAt<Info>(dirs[1]!, "/v1/info");
    const third = await apiAt<Info>(dirs[2]!, "/v1/info");
    await checkFor(30_000, async () => (await etcdMembers(swarm)).length === 3);

    // Pull the plug on the third manager's machine (its daemon and its etcd member).
    const host = swarm.workers[1]!;
    await host.kill();
    killTaskProcesses(dirs[2]!);
    await waitStatuses(swarm, "Down/Unreachable,Ready/Leader,Ready/Reachable");

    // Demoted: its member is out of etcd by the time the command returns.
    assert.equal(
      await swarm.ok("node", "demote", third.nodeId),
      `Manager ${third.nodeId} demoted in the swarm.\n`,
    );
    assert.deepEqual(
      await etcdMembers(swarm),
      [first.nodeId, second.nodeId].sort(),
      "the down manager's etcd member was removed with the demotion",
    );
    await waitStatuses(swarm, "Down/,Ready/Leader,Ready/Reachable");
    // The swarm writes on, on two members.
    await swarm.sleepService("web", 2);
    await checkFor(60_000, async () => (await swarm.running("web")).length === 2);
    await swarm.ok("service", "scale", "web=3");
    await checkFor(60_000, async () => (await swarm.running("web")).length === 3);

    // The machine comes back: its daemon starts from its data dir, as a restart does.
    let out = "";
    const p = host.spawn(process.execPath, [SHOAL_BIN, "daemon", "--data-dir", dirs[2]!]);
    p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    await checkFor(90_000, async () => {
      if (p.exitCode !== null) throw new Error(`the daemon exited (${p.exitCode}):\n${out}`);
      const i = await apiAt<Info>(dirs[2]!, "/v1/info").catch(() => null);
      return i?.role === "worker";
    });
    const back = await apiAt<Info>(dirs[2]!, "/v1/info");
    assert.equal(back.nodeId, third.nodeId, "the same node");
    assert.equal(back.pid, p.pid, "the daemon started, as a worker, in the same process");
    assert.match(out, /was demoted while it was down: becoming a worker/);
    await waitStatuses(swarm, "Ready/,Ready/Leader,Ready/Reachable");
    assert.equal(settings(dirs[2]!).managedEtcd, false);
    assert.ok(!existsSync(join(dirs[2]!, "etcd")), "its stale etcd data is gone");
    assert.deepEqual(await etcdMembers(swarm), [first.nodeId, second.nodeId].sort());

    // A task placed on it runs there.
    await swarm.ok(
      "service",
      "create",
      "--name",
      "on-it",
      "--constraint",
      `node.id==${third.nodeId}`,
      "--",
      "sleep",
      "100000",
    );
    await checkFor(60_000, async () => {
      const ts = await swarm.running("on-it");
      return ts.length === 1 && ts[0]!.nodeId === third.nodeId;
    });

    // Promoted again, it starts a clean member (its old data was removed): three members.
    await swarm.ok("node", "promote", third.nodeId);
    await checkFor(90_000, async () => {
      const i = await apiAt<Info>(dirs[2]!, "/v1/info").catch(() => null);
      return i !== null && i.role === undefined && i.leaderId !== undefined;
    });
    await waitStatuses(swarm, "Ready/Leader,Ready/Reachable,Ready/Reachable");
    await checkFor(30_000, async () => (await etcdMembers(swarm)).length === 3);

    // Cut off (up, but marked down) when demoted: its member goes at once as well, and once the
    // machine is reachable again its member hears it was removed and the running daemon goes
    // on as a worker, in the same process.
    await host.cut();
    await waitStatuses(swarm, "Down/Unreachable,Ready/Leader,Ready/Reachable");
    await swarm.ok("node", "demote", third.nodeId);
    assert.deepEqual(await etcdMembers(swarm), [first.nodeId, second.nodeId].sort());
    await host.heal();
    await checkFor(90_000, async () => {
      if (p.exitCode !== null) throw new Error(`the daemon exited (${p.exitCode}):\n${out}`);
      const i = await apiAt<Info>(dirs[2]!, "/v1/info").catch(() => null);
      return i?.role === "worker";
    });
    assert.equal((await apiAt<Info>(dirs[2]!, "/v1/info")).pid, p.pid, "the same process");
    assert.match(out, /was demoted while it was cut off: becoming a worker/);
    await waitStatuses(swarm, "Ready/,Ready/Leader,Ready/Reachable");
    assert.ok(!existsSync(join(dirs[2]!, "etcd")), "its etcd data is gone");
    await swarm.ok("service", "scale", "on-it=0");
    await swarm.ok("service", "scale", "on-it=1");
    await checkFor(60_000, async () => {
      const ts = await swarm.running("on-it");
      return ts.length === 1 && ts[0]!.nodeId === third.nodeId;
    });
  },
);

// Issue 14, `node promote` and a manager's forced leave, on the network-namespace test bed: a
// worker promoted on a swarm still on its embedded store makes the state move into managed etcd
// (as a second manager's join does), under a running service whose tasks keep their ids and
// processes, and comes back as a manager in the same process; a second promotion adds a third
// etcd member; a manager that is an etcd member cannot be removed, even with --force; one that
// leaves with `swarm leave --force` takes its member out of etcd (the members' count drops) and
// can then be removed; the swarm goes on writing. On an external etcd (`--store etcd://...`), a
// demotion and a promotion change the role alone (no member of ours), the last manager still
// cannot be demoted.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { netnsSwarm, startSwarm, type Swarm } from "../helpers/swarm.js";
import { apiAt, killTaskProcesses, runCli } from "../helpers/daemon.js";
import { etcdMembers, settings, waitStatuses, type Info } from "../helpers/manager-status.js";
import { checkFor } from "../helpers/servers.js";
import { etcdSkip, startEtcd, type EtcdCluster } from "../helpers/etcd.js";
import { createRootCa, issueNodeCert, newKeyAndCsr } from "../../src/manager/ca.js";
import type { Task } from "../../src/api/types.js";

test(
  "promote a worker on the embedded store (the state moves), promote another (a member more), a forced leave takes its member out",
  { skip: etcdSkip() },
  async (t) => {
    const swarm = await netnsSwarm(t, 3, 2, { prefix: "pm" });
    if (swarm === undefined) return;
    const dirs = swarm.dirs;
    const running = async () => {
      const ts = await apiAt<Task[]>(dirs[0]!, "/v1/tasks?service=web");
      return ts.filter((x) => x.status.state === "running" && x.desiredState === "running");
    };

    // A task on every machine, before anything moves.
    await swarm.sleepService("web", 3);
    await checkFor(60_000, async () => (await running()).length === 3);
    const before = await running();
    assert.ok(before.every((x) => typeof x.status.pid === "number"));
    const pids = new Map(before.map((x) => [x.id, x.status.pid]));
    assert.equal(settings(dirs[0]!).managedEtcd, undefined, "the embedded store at first");

    // Promoting a manager changes nothing (docker/cli's words).
    const self = await apiAt<Info>(dirs[0]!, "/v1/info");
    assert.equal(
      await swarm.ok("node", "promote", self.nodeId),
      `Node ${self.nodeId} is already a manager.\n`,
    );

    // The first worker: promoted, the state moves to etcd, it comes back as a manager.
    const w1 = await apiAt<Info>(dirs[1]!, "/v1/info");
    assert.equal(w1.role, "worker");
    assert.equal(
      await swarm.ok("node", "promote", w1.nodeId),
      `Node ${w1.nodeId} promoted to a manager in the swarm.\n`,
    );
    // It is a manager in the store at once; a manager's daemon once it took over.
    await checkFor(90_000, async () => {
      const i = await apiAt<Info>(dirs[1]!, "/v1/info").catch(() => null);
      return i !== null && i.role === undefined && i.leaderId !== undefined;
    });
    await waitStatuses(swarm, "Ready/,Ready/Leader,Ready/Reachable");
    assert.equal(settings(dirs[0]!).managedEtcd, true, "the first manager is on etcd now");
    assert.equal(settings(dirs[1]!).managedEtcd, true, "the promoted one too");
    assert.ok(!existsSync(join(dirs[1]!, "join.json")), "no worker's join left");
    const m1 = await apiAt<Info>(dirs[1]!, "/v1/info");
    assert.equal(m1.pid, w1.pid, "the same process, as a manager daemon");
    assert.equal(m1.role, undefined, "a manager's info");
    assert.deepEqual(await etcdMembers(swarm), [self.nodeId, w1.nodeId].sort());
    // The same tasks, with the same processes.
    await checkFor(30_000, async () => (await running()).length === 3);
    assert.deepEqual(new Map((await running()).map((x) => [x.id, x.status.pid])), pids);

    // The second worker: on managed etcd now, a member is added for it.
    const w2 = await apiAt<Info>(dirs[2]!, "/v1/info");
    assert.equal(
      await swarm.ok("node", "promote", w2.nodeId),
      `Node ${w2.nodeId} promoted to a manager in the swarm.\n`,
    );
    await checkFor(90_000, async () => {
      const i = await apiAt<Info>(dirs[2]!, "/v1/info").catch(() => null);
      return i !== null && i.role === undefined && i.leaderId !== undefined;
    });
    await waitStatuses(swarm, "Ready/Leader,Ready/Reachable,Ready/Reachable");
    await checkFor(30_000, async () => (await etcdMembers(swarm)).length === 3);
    assert.deepEqual(await etcdMembers(swarm), [self.nodeId, w1.nodeId, w2.nodeId].sort());
    assert.deepEqual(new Map((await running()).map((x) => [x.id, x.status.pid])), pids);

    // An etcd member cannot be removed, even with --force (swarmkit's RemoveNode).
    const rm = await swarm.cli("node", "rm", "--force", w2.nodeId);
    assert.equal(rm.code, 1);
    assert.match(rm.stderr, /is a cluster manager and is a member of the raft cluster/);

    // A forced leave takes its member out: two members, both up, and the swarm writes on.
    const left = await runCli(dirs[2]!, ["swarm", "leave", "--force"]);
    assert.equal(left.code, 0, left.stderr);
    assert.equal(left.stdout, "Node left the swarm.\n");
    await checkFor(30_000, async () => (await etcdMembers(swarm)).length === 2);
    assert.deepEqual(await etcdMembers(swarm), [self.nodeId, w1.nodeId].sort());
    await waitStatuses(swarm, "Down/Unreachable,Ready/Leader,Ready/Reachable");
    assert.equal(await swarm.ok("node", "rm", w2.nodeId), `${w2.nodeId}\n`);
    await waitStatuses(swarm, "Ready/Leader,Ready/Reachable");
    await swarm.ok("service", "scale", "web=4");
    await checkFor(60_000, async () => (await running()).length === 4);
  },
);

test(
  "external etcd: demote changes the role alone, the last manager stays, promote brings it back",
  { skip: etcdSkip() },
  async (t) => {
    let etcd: EtcdCluster | undefined;
    let swarm: Swarm;
    try {
      swarm = await startSwarm(2, 0, {
        prefix: "pm",
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
    await swarm.joinManager(0);
    await waitStatuses(swarm, "Ready/Leader,Ready/Reachable");
    const first = await apiAt<Info>(dirs[0]!, "/v1/info");
    const second = await apiAt<Info>(dirs[1]!, "/v1/info");

    // Demoted: a worker daemon in the same process, nothing of etcd's touched.
    assert.equal(
      await swarm.ok("node", "demote", second.nodeId),
      `Manager ${second.nodeId} demoted in the swarm.\n`,
    );
    await checkFor(60_000, async () => {
      const w = await apiAt<Info>(dirs[1]!, "/v1/info").catch(() => null);
      return w?.role === "worker";
    });
    assert.equal((await apiAt<Info>(dirs[1]!, "/v1/info")).pid, second.pid);
    await waitStatuses(swarm, "Ready/,Ready/Leader");
    assert.equal(
      await swarm.ok("node", "demote", second.nodeId),
      `Node ${second.nodeId} is already a worker.\n`,
    );
    const last = await swarm.cli("node", "demote", first.nodeId);
    assert.equal(last.code, 1);
    assert.match(last.stderr, /attempting to demote the last manager of the swarm/);

    // Promoted again: a manager on the same etcd, in the same process.
    assert.equal(
      await swarm.ok("node", "promote", second.nodeId),
      `Node ${second.nodeId} promoted to a manager in the swarm.\n`,
    );
    await checkFor(90_000, async () => {
      const i = await apiAt<Info>(dirs[1]!, "/v1/info").catch(() => null);
      return i !== null && i.role === undefined && i.leaderId === first.nodeId;
    });
    assert.equal((await apiAt<Info>(dirs[1]!, "/v1/info")).pid, second.pid);
    assert.ok(!existsSync(join(dirs[1]!, "etcd")), "no etcd member of its own");
    await waitStatuses(swarm, "Ready/Leader,Ready/Reachable");
    // It serves writes (forwarded to the leader).
    const r = await runCli(dirs[1]!, [
      "service",
      "create",
      "--name",
      "after",
      "--",
      "sleep",
      "100000",
    ]);
    assert.equal(r.code, 0, r.stderr);
  },
);

test(
  "external etcd with TLS: a worker joined with --store-cacert/--store-cert/--store-key is promoted; one without is told what it lacks",
  { skip: etcdSkip() },
  async (t) => {
    let etcd: EtcdCluster | undefined;
    let swarm: Swarm;
    const files = mkdtempSync(join(tmpdir(), "shoal-pm-tls-"));
    const ca = await createRootCa(new Date());
    const file = (name: string, data: string) => {
      const p = join(files, name);
      writeFileSync(p, data, { mode: 0o600 });
      return p;
    };
    const pair = async (nodeId: string, addrs: string[]) => {
      const { keyPem, csrPem } = await newKeyAndCsr();
      const cert = await issueNodeCert(ca, csrPem, {
        nodeId,
        role: "manager",
        addrs,
        now: new Date(),
      });
      return { cert: file(`${nodeId}.pem`, cert), key: file(`${nodeId}-key.pem`, keyPem) };
    };
    const caFile = file("ca.pem", ca.certPem);
    const client = await pair("client", ["127.0.0.1"]);
    const tlsFlags = [
      "--store-cacert",
      caFile,
      "--store-cert",
      client.cert,
      "--store-key",
      client.key,
    ];
    try {
      swarm = await startSwarm(3, 0, {
        prefix: "pm",
        async managerArgs(_m, bed) {
          const server = await pair("etcd", [bed.bridgeAddr]);
          etcd = await startEtcd({
            host: bed.bridgeAddr,
            tls: { ca: caFile, ...server, clientCertAuth: true },
          });
          const hosts = etcd.endpoints.map((u) => u.slice("https://".length));
          return ["--store", `etcds://${hosts.join(",")}`, ...tlsFlags];
        },
      });
    } catch (err) {
      await etcd?.stop();
      rmSync(files, { recursive: true, force: true });
      return t.skip(`no test bed: ${(err as Error).message}`);
    }
    t.after(async () => {
      for (const d of swarm.dirs) killTaskProcesses(d);
      await swarm.cleanup();
      await etcd?.stop();
      rmSync(files, { recursive: true, force: true });
    });
    if (swarm.bed.mode !== "netns") return t.skip("needs network namespaces");
    const dirs = swarm.dirs;
    await swarm.joinWorker(0, tlsFlags);
    await swarm.joinWorker(1);
    const first = await apiAt<Info>(dirs[0]!, "/v1/info");
    const w1 = await apiAt<Info>(dirs[1]!, "/v1/info");
    const w2 = await apiAt<Info>(dirs[2]!, "/v1/info");

    // Without the files: the worker stays a worker and says what it lacks.
    await swarm.ok("node", "promote", w2.nodeId);
    await checkFor(60_000, () =>
      /cannot become a manager: the swarm's store \(https:\/\/.*\) is an etcd with TLS and this node has no client TLS for it: join this node with --store-cacert/.test(
        readFileSync(join(dirs[2]!, "daemon.log"), "utf8"),
      ),
    );
    const still = await apiAt<Info>(dirs[2]!, "/v1/info");
    assert.equal(still.role, "worker");
    assert.equal(still.pid, w2.pid);
    await swarm.ok("node", "demote", w2.nodeId);

    // With them: a manager on the same etcd, in the same process.
    await swarm.ok("node", "promote", w1.nodeId);
    await checkFor(90_000, async () => {
      const i = await apiAt<Info>(dirs[1]!, "/v1/info").catch(() => null);
      return i !== null && i.role === undefined && i.leaderId === first.nodeId;
    });
    assert.equal((await apiAt<Info>(dirs[1]!, "/v1/info")).pid, w1.pid);
    await waitStatuses(swarm, "Ready/,Ready/Leader,Ready/Reachable");
    const r = await runCli(dirs[1]!, [
      "service",
      "create",
      "--name",
      "after",
      "--",
      "sleep",
      "100000",
    ]);
    assert.equal(r.code, 0, r.stderr);
  },
);

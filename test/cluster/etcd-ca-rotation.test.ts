// Issue 14, a root CA rotation on managed etcd, on the network-namespace test bed: three
// managers, each with its etcd member (mutual TLS with the swarm's certificates), and a running
// service; `shoal swarm ca --rotate` runs to its end (both bars full). Then every etcd member is
// healthy and trusts the new root only (a manager certificate from the old root is refused), a
// fourth manager joins (its member is added and becomes healthy), the service's tasks kept their
// ids, and a manager restarted after the rotation comes back. Without the members following the
// rotation (src/daemon/member-trust.ts), the new-root certificates are refused by members that
// trust only the root they started with.

import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:https";
import { netnsSwarm, type Swarm } from "../helpers/swarm.js";
import { apiAt, runCli, waitApiGone } from "../helpers/daemon.js";
import { etcdMembers, waitStatuses, type Info } from "../helpers/manager-status.js";
import { checkFor, SHOAL_BIN } from "../helpers/servers.js";
import { etcdSkip } from "../helpers/etcd.js";
import { caDigest, certPaths, splitPem } from "../../src/manager/ca.js";
import type { Node, Task } from "../../src/api/types.js";

interface Pair {
  ca: string;
  cert: string;
  key: string;
}

/** A node's certificate files as they are now. */
function pairOf(dir: string): Pair {
  const p = certPaths(dir);
  return {
    ca: readFileSync(p.ca, "utf8"),
    cert: readFileSync(p.cert, "utf8"),
    key: readFileSync(p.key, "utf8"),
  };
}

/** GET /health of the etcd member at `addr` with `pair`: "true", "false", or the TLS error. */
function health(addr: string, pair: Pair, trust = pair.ca): Promise<string> {
  return new Promise((resolve) => {
    const req = request(
      `https://${addr}:4379/health`,
      { ca: trust, cert: pair.cert, key: pair.key, timeout: 5000 },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => {
          try {
            resolve(String((JSON.parse(body) as { health?: unknown }).health));
          } catch {
            resolve(`bad answer: ${body}`);
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (err: NodeJS.ErrnoException) => resolve(`error: ${err.code ?? err.message}`));
    req.end();
  });
}

/** Copies the daemons' logs where a failure's reader finds them; says where. */
function keepLogs(swarm: Swarm): void {
  const keep = mkdtempSync(join(tmpdir(), "shoal-eca-"));
  writeFileSync(join(keep, "n0.log"), swarm.managerLog());
  swarm.dirs.forEach((d, i) => {
    const log = join(d, "daemon.log");
    if (existsSync(log)) copyFileSync(log, join(keep, `n${i}.log`));
  });
  console.error(`the daemons' logs are kept in ${keep}`);
}

/** The service's tasks, every state, for a failure's message. */
async function taskStates(dir: string): Promise<string> {
  const ts = await apiAt<Task[]>(dir, "/v1/tasks?service=web");
  return ts
    .map((x) => `${x.id} slot ${x.slot} on ${x.nodeId}: ${x.status.state} (${x.status.message})`)
    .join("\n");
}

test(
  "swarm ca --rotate on managed etcd: every member follows; a fourth manager joins; a restarted manager comes back",
  { skip: etcdSkip(), timeout: 900_000 },
  async (t) => {
    const swarm = await netnsSwarm(t, 4, 0, { prefix: "eca" });
    if (swarm === undefined) return;
    const hosts = swarm.bed.hosts;
    const dirs = swarm.dirs;
    try {
      await swarm.joinManager(0);
      await waitStatuses(swarm, "Ready/Leader,Ready/Reachable");
      await swarm.joinManager(1);
      await waitStatuses(swarm, "Ready/Leader,Ready/Reachable,Ready/Reachable");
      const ids = await Promise.all([0, 1, 2].map((i) => apiAt<Info>(dirs[i]!, "/v1/info")));
      assert.deepEqual(await etcdMembers(swarm), ids.map((i) => i.nodeId).sort());

      await swarm.sleepService("web", 3);
      await checkFor(60_000, async () => (await swarm.running("web")).length === 3);
      const tasks = (await swarm.running("web")).map((x) => x.id).sort();
      // A manager's certificate from the old root, to present once the rotation is over.
      const oldPair = pairOf(dirs[1]!);
      const oldDigest = caDigest(oldPair.ca);

      const rotated = await runCli(dirs[0]!, ["swarm", "ca", "--rotate"], 300_000);
      assert.equal(rotated.code, 0, rotated.stderr + rotated.stdout);
      assert.match(rotated.stdout, / {2}rotated TLS certificates: \[=+\] 3\/3 nodes\n/);
      assert.match(rotated.stdout, / {2}rotated CA certificates: {2}\[=+\] 3\/3 nodes\n/);
      const newDigest = caDigest(splitPem(rotated.stdout).at(-1)!);
      assert.notEqual(newDigest, oldDigest);
      for (const n of await swarm.api<Node[]>("/v1/nodes")) {
        assert.deepEqual(n.tls, { certIssuer: newDigest, trustRoots: [newDigest] }, n.id);
      }

      assert.deepEqual(
        (await swarm.running("web")).map((x) => x.id).sort(),
        tasks,
        `after the rotation:\n${await taskStates(dirs[0]!)}`,
      );

      // Every member answers healthy to its manager's new certificate, and refuses the old root's.
      for (const i of [0, 1, 2]) {
        const mine = pairOf(dirs[i]!);
        assert.equal(caDigest(mine.ca), newDigest);
        assert.equal(await health(hosts[i]!.addr, mine), "true", `member on ${hosts[i]!.name}`);
        const refused = await health(hosts[i]!.addr, oldPair, mine.ca);
        assert.match(
          refused,
          /^error: /,
          `member on ${hosts[i]!.name} with an old-root certificate`,
        );
      }

      // A fourth manager joins after the rotation: its member is added and becomes healthy.
      await swarm.joinManager(2);
      await waitStatuses(swarm, "Ready/Leader,Ready/Reachable,Ready/Reachable,Ready/Reachable");
      const fourth = await apiAt<Info>(dirs[3]!, "/v1/info");
      assert.deepEqual(
        await etcdMembers(swarm),
        [...ids.map((i) => i.nodeId), fourth.nodeId].sort(),
      );
      assert.equal(await health(hosts[3]!.addr, pairOf(dirs[3]!)), "true");

      // The service's tasks are the same ones.
      assert.deepEqual(
        (await swarm.running("web")).map((x) => x.id).sort(),
        tasks,
        await taskStates(dirs[0]!),
      );

      // A manager restarted after the rotation comes back (its member rejoins its peers).
      const second = ids[1]!;
      process.kill(second.pid, "SIGTERM");
      await waitApiGone(dirs[1]!, 30_000);
      hosts[1]!.spawn(process.execPath, [SHOAL_BIN, "daemon", "--data-dir", dirs[1]!]);
      await checkFor(90_000, async () => {
        const i = await apiAt<Info>(dirs[1]!, "/v1/info").catch(() => null);
        return i !== null && i.pid !== second.pid && i.leaderId !== undefined;
      });
      await waitStatuses(swarm, "Ready/Leader,Ready/Reachable,Ready/Reachable,Ready/Reachable");
      assert.equal(await health(hosts[1]!.addr, pairOf(dirs[1]!)), "true");
      // (A manager down for more than 3 heartbeats has its tasks run elsewhere: only the count.)
      await checkFor(60_000, async () => (await swarm.running("web")).length === 3);
    } catch (err) {
      keepLogs(swarm);
      throw err;
    }
  },
);

// Several shoal managers on the network-namespace test bed (issue 14), as the managers cluster
// test and the `managers` bench suite both need them: 5 machines, the first 3 managers on an etcd
// store (the first started as a daemon, the other two joined with the manager token on their
// own machines), the last 2 workers, all Ready, the first manager leading.
//
// etcd either runs as one member in the root namespace on the bed's bridge address, which every
// machine reaches (`etcd: "one"`), or as one member on each manager's machine (`"per-manager"`),
// so the leader's machine dying takes an etcd member with it, as it would in production.

import { startSwarm, type Swarm } from "./swarm.js";
import { apiAt, killTaskProcesses } from "./daemon.js";
import { checkFor } from "./servers.js";
import { startEtcd, type EtcdCluster } from "./etcd.js";

export interface ManagerInfo {
  nodeId: string;
  leaderId?: string;
}

export interface Managers {
  swarm: Swarm;
  /** The managers' data dirs (swarm.dirs[0..2]); the first leads. */
  managerDirs: string[];
  /** The leader's node id. */
  leaderId: string;
  etcd: EtcdCluster;
  /** Kills every machine (and the tasks they left) and the etcd; never throws. */
  cleanup(): Promise<void>;
}

export interface StartManagersOptions {
  /** The bed's interface prefix (1-4 of [a-z0-9]). */
  prefix: string;
  /** Where etcd runs (default "one"). */
  etcd?: "one" | "per-manager";
}

/** The test bed could not be had (no namespaces, no root): a test skips on it, not fails. */
export class NoTestBedError extends Error {
  readonly code = "ERR_NO_TEST_BED";
}

/** The leader as a manager on `dir` sees it (undefined while there is none). */
export async function leaderOf(dir: string): Promise<string | undefined> {
  return (await apiAt<ManagerInfo>(dir, "/v1/info")).leaderId;
}

/** Starts 3 managers and 2 workers as described above; throws (after cleaning up) on failure,
 * a NoTestBedError when the bed itself could not be made. */
export async function startManagers(opts: StartManagersOptions): Promise<Managers> {
  let etcd: EtcdCluster | undefined;
  let swarm: Swarm | undefined;
  const cleanup = async () => {
    if (swarm !== undefined) {
      for (const d of swarm.dirs) killTaskProcesses(d);
      await swarm.cleanup().catch(() => {});
    }
    await etcd?.stop().catch(() => {});
  };
  try {
    try {
      swarm = await startSwarm(5, 0, {
        prefix: opts.prefix,
        async managerArgs(_m, bed) {
          etcd =
            opts.etcd === "per-manager"
              ? await startEtcd({ hosts: bed.hosts.slice(0, 3) })
              : await startEtcd({ host: bed.bridgeAddr });
          return [
            "--store",
            `etcd://${etcd.endpoints.map((u) => u.slice("http://".length)).join(",")}`,
          ];
        },
      });
    } catch (err) {
      throw new NoTestBedError(`no test bed: ${(err as Error).message}`, { cause: err });
    }
    const s = swarm;
    if (s.bed.mode !== "netns")
      throw new NoTestBedError("needs network namespaces (root, iproute2)");
    const dirs = s.dirs;
    // Two more managers, joined with the manager token on their own machines, before the
    // workers (a worker learns the managers from its join answer).
    // joinManager(i) joins hosts[i + 1] with the manager token.
    await s.joinManager(0);
    await s.joinManager(1);
    // Workers: joinWorker(i) joins hosts[i + 1] with the worker token.
    await s.joinWorker(2);
    await s.joinWorker(3);
    await checkFor(60_000, async () => {
      // Thrown rather than false: checkFor fails with the last state seen.
      const ls = await s.cli("node", "ls", "--format", "{{.Status}}/{{.ManagerStatus}}");
      const rows = ls.stdout.trim().split("\n").sort().join(",");
      const leaders = await Promise.all([dirs[1]!, dirs[2]!].map((d) => leaderOf(d)));
      if (
        rows !== "Ready/,Ready/,Ready/Leader,Ready/Reachable,Ready/Reachable" ||
        leaders.includes(undefined)
      )
        throw new Error(`node ls: ${rows}${ls.stderr}; the followers' leaders: ${leaders}`);
      return true;
    });
    const first = await apiAt<ManagerInfo>(dirs[0]!, "/v1/info");
    if (first.leaderId !== first.nodeId) {
      throw new Error(`the first manager does not lead (leader ${first.leaderId})`);
    }
    return {
      swarm: s,
      managerDirs: dirs.slice(0, 3),
      leaderId: first.nodeId,
      etcd: etcd!,
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

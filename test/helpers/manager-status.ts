// What the several-managers tests on the network-namespace bed read of a swarm: MANAGER STATUS
// as `node ls` prints it, the managed etcd's members, a node's saved settings.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Swarm } from "./swarm.js";
import { checkFor } from "./servers.js";
import { etcdClient } from "../../src/store/etcd.js";
import { listEtcdMembers, readEtcdTls } from "../../src/daemon/etcd-member.js";
import { certPaths } from "../../src/manager/ca.js";

/** What a daemon's `/v1/info` says of it (a worker's has `role: "worker"`). */
export interface Info {
  nodeId: string;
  leaderId?: string;
  pid: number;
  role?: string;
}

/** STATUS/MANAGER STATUS of every node, sorted, as `node ls` on the first manager prints it. */
export async function managerStatuses(swarm: Swarm): Promise<string> {
  const ls = await swarm.cli("node", "ls", "--format", "{{.Status}}/{{.ManagerStatus}}");
  if (ls.code !== 0) throw new Error(`node ls: ${ls.stderr}`);
  return ls.stdout.trim().split("\n").sort().join(",");
}

/** Waits until `managerStatuses` is `want` (e.g. "Ready/Leader,Ready/Reachable"). */
export async function waitStatuses(swarm: Swarm, want: string, ms = 90_000): Promise<void> {
  await checkFor(ms, async () => {
    const rows = await managerStatuses(swarm);
    if (rows !== want) throw new Error(`node ls: ${rows} (want ${want})`);
    return true;
  });
}

/** The names of the managed etcd's members, sorted, as the first manager's member lists them. */
export async function etcdMembers(swarm: Swarm): Promise<string[]> {
  const client = etcdClient({
    endpoints: [`https://${swarm.manager.addr}:4379`],
    tls: readEtcdTls(certPaths(swarm.dirs[0]!)),
  });
  try {
    return (await listEtcdMembers(client)).map((m) => m.name).sort();
  } finally {
    client.close();
  }
}

/** A node's saved settings (daemon.json in its data dir). */
export const settings = (dir: string) =>
  JSON.parse(readFileSync(join(dir, "daemon.json"), "utf8")) as { managedEtcd?: boolean };

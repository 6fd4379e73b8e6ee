// A manager demoted while it is down (managed etcd), as swarmkit handles an unreachable manager's
// demotion: the leader takes its etcd member out at once (`membersToRemove`: the members of
// nodes that are workers now and marked down), so etcd's quorum counts the managers left only;
// when that machine's daemon starts again its member exits (its peers refuse a removed member),
// and the daemon reads its node through the other managers' members — their client URLs are
// kept in `etcd-peers.json` while it runs (`notePeers`) — and, its node a worker, comes back as
// one (`removedMemberVerdict`). A member that is up removes itself, as before.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Node } from "../api/types.js";
import { memberClientUrl, memberPeerUrl } from "./etcd-member.js";
import { ETCD_PEERS_FILE } from "./state.js";

/**
 * The etcd members the leader takes out: those of nodes that are workers in the store (demoted)
 * and marked down, by name (a node id), or, for a member added and never started (no name yet,
 * a learner), by its peer URL on such a node's address (a promotion whose daemon never ran). A
 * demoted manager that is up removes its own member; a member whose name is no node's is not
 * ours to judge.
 */
export function membersToRemove<M extends { name: string; peerURLs: string[] }>(
  members: readonly M[],
  nodes: readonly Pick<Node, "id" | "role" | "status" | "addr">[],
): M[] {
  const gone = nodes.filter((n) => n.role === "worker" && n.status === "down");
  const ids = new Set(gone.map((n) => n.id));
  const urls = new Set(gone.map((n) => memberPeerUrl(n.addr)));
  return members.filter((m) =>
    m.name !== "" ? ids.has(m.name) : m.peerURLs.some((u) => urls.has(u)),
  );
}

/** What a manager whose etcd member was removed does: come back as a worker, or stop, saying
 * why. */
export type RemovedVerdict = { worker: true } | { worker: false; reason: string };

/**
 * The verdict for node `id` whose etcd member was removed while it was down, from the store as
 * the other managers hold it: its node (absent: removed from the swarm) and the node secret the
 * demotion left for it.
 */
export function removedMemberVerdict(
  id: string,
  node: Pick<Node, "role"> | undefined,
  demotedSecret: string | undefined,
): RemovedVerdict {
  if (node === undefined) {
    return {
      worker: false,
      reason: `node ${id} is no longer in the swarm (removed with node rm): run \`shoal swarm leave --force\` on this machine and join it again`,
    };
  }
  if (node.role === "manager") {
    return {
      worker: false,
      reason: `node ${id} is still a manager in the swarm: demote it (shoal node demote ${id}, on another manager) and start this daemon again to go on as a worker, or remove it (shoal node rm ${id}) and join this machine again`,
    };
  }
  if (demotedSecret === undefined) {
    return {
      worker: false,
      reason: `node ${id} was demoted but the swarm holds no node secret for it to rejoin with: run \`shoal swarm leave --force\` on this machine, remove the node (shoal node rm ${id}) and join it again`,
    };
  }
  return { worker: true };
}

/** The other managers' etcd client URLs, for `etcd-peers.json`. */
export function peerUrls(
  nodes: readonly Pick<Node, "id" | "role" | "addr">[],
  selfId: string,
): string[] {
  return nodes
    .filter((n) => n.role === "manager" && n.id !== selfId)
    .map((n) => memberClientUrl(n.addr))
    .sort();
}

/** Writes `etcd-peers.json` when `urls` differ from what it holds; whether it wrote. */
export function notePeers(dataDir: string, urls: readonly string[]): boolean {
  if (readPeers(dataDir).join() === urls.join()) return false;
  writeFileSync(join(dataDir, ETCD_PEERS_FILE), JSON.stringify({ clientUrls: urls }) + "\n", {
    mode: 0o600,
  });
  return true;
}

/** The other managers' etcd client URLs as this manager last noted them ([] when none). */
export function readPeers(dataDir: string): string[] {
  const file = join(dataDir, ETCD_PEERS_FILE);
  if (!existsSync(file)) return [];
  try {
    const v = JSON.parse(readFileSync(file, "utf8")) as { clientUrls?: unknown };
    return Array.isArray(v.clientUrls)
      ? v.clientUrls.filter((u): u is string => typeof u === "string")
      : [];
  } catch {
    return [];
  }
}

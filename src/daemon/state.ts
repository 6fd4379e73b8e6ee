// What a daemon keeps in its data dir between runs, and what `leave` forgets, plus the one
// mapping from the cluster's endpoints to this machine's routing-mesh backends.

import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Endpoint } from "../api/bus.js";
import { EtcdJoinSchema, type EtcdJoin } from "../api/http.js";
import { check } from "../api/schema.js";
import type { Backend } from "../net/mesh.js";

/** The files and folders that make this machine a member of a swarm. `leave` removes them all,
 * so a later `init` or `join` starts a new node, with no ghost of the old one. */
export const SWARM_STATE = [
  "store",
  "node-id",
  "join.json",
  "daemon.json",
  "agent",
  "certificates",
  "etcd",
  "etcd-join.json",
  "etcd-peers.json",
  "store.moved",
] as const;

/** The daemon's saved settings (flags, and the store it runs on), in the data dir. */
export const SETTINGS_FILE = "daemon.json";
/** A joining manager's note for its first start: the etcd members to join, and where to promote
 * its member from learner (EtcdJoin); removed once the member votes. */
export const ETCD_JOIN_FILE = "etcd-join.json";
/** A managed manager's note of the other managers' etcd client URLs, kept current while it runs:
 * where it reads its node from when its own member was removed while it was down. */
export const ETCD_PEERS_FILE = "etcd-peers.json";
/** Where the embedded store's files go once its state moved to etcd (kept, never opened). */
export const MOVED_STORE_DIR = "store.moved";

/** The saved settings (daemon.json) of `dataDir`; {} when there are none yet. */
export function readSettings(dataDir: string): Record<string, unknown> {
  const file = join(dataDir, SETTINGS_FILE);
  return existsSync(file)
    ? (JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>)
    : {};
}

/** Changes some of the saved settings (daemon.json), keeping the others; 0600. */
export function patchSettings(dataDir: string, patch: Record<string, unknown>): void {
  const file = join(dataDir, SETTINGS_FILE);
  writeFileSync(file, JSON.stringify({ ...readSettings(dataDir), ...patch }, null, 2) + "\n", {
    mode: 0o600,
  });
}

/** A joining manager's etcd-join.json, checked against its schema. */
export function readEtcdJoin(file: string): EtcdJoin {
  return check(EtcdJoinSchema, JSON.parse(readFileSync(file, "utf8")), "", file);
}

export function forgetSwarm(dataDir: string): void {
  for (const name of SWARM_STATE) rmSync(join(dataDir, name), { recursive: true, force: true });
}

/**
 * Published port → backends for this machine's routing mesh. Endpoints on this node (its
 * advertised address) are reached over loopback.
 */
export function meshBackends(
  endpoints: Record<string, Endpoint[]>,
  ownHost: string,
): Map<number, Backend[]> {
  const map = new Map<number, Backend[]>();
  for (const [port, list] of Object.entries(endpoints)) {
    map.set(
      Number(port),
      list.map((e) => (e.host === ownHost ? { ...e, host: "127.0.0.1" } : e)),
    );
  }
  return map;
}

/** The node runtime's fencing settings from `--fencing-margin` (ms; -1 = off; unset = default). */
export function fencingOf(marginMs: number | undefined): {
  fencing?: boolean;
  fenceMarginMs?: number;
} {
  if (marginMs === undefined) return {};
  return marginMs < 0 ? { fencing: false } : { fenceMarginMs: marginMs };
}

// Test helpers for clusters of message servers: in-process shoal servers with fast route
// re-dials (`startClusterServer`, `createCluster`), waiting for the full mesh
// (`waitClusterFormed`, `waitRoutez`), reading /routez over HTTP (works for spawned shoal and
// Go nats-server processes too), finding a spawned server's route port in its log, and a
// per-test cleanup stack that runs in reverse order even when the test fails.

import type { TestContext } from "node:test";
import { createServer } from "node:net";
import { request } from "node:http";
import type { Server } from "../../src/nats/server.js";
import {
  defaultClusterOptions,
  type ClusterOptions,
  type Options,
} from "../../src/nats/options.js";
import { checkFor, startServer, type RunningServer } from "./servers.js";
import { defer } from "./defer.js";
export { defer };

/** The cluster name used by tests unless they say otherwise. */
export const TEST_CLUSTER = "test";
/** How often in-process test servers re-dial configured routes (nats-server's is 1 s). */
export const TEST_BACKOFF_MS = 100;

/** Cluster options for a test server: loopback, random port, fast re-dials, a fixed name. */
export function clusterOpts(
  routes: string[] = [],
  overrides: Partial<ClusterOptions> = {},
): ClusterOptions {
  return {
    ...defaultClusterOptions(),
    name: TEST_CLUSTER,
    host: "127.0.0.1",
    port: -1,
    connectBackoffMs: TEST_BACKOFF_MS,
    routes,
    ...overrides,
  };
}

/** The URL other servers use to route to s. */
export function routeUrl(s: Server): string {
  return `nats-route://127.0.0.1:${s.clusterPort()}`;
}

/** The URL clients use to reach s. */
export function clientUrl(s: Server): string {
  return `127.0.0.1:${s.port}`;
}

/**
 * Starts an in-process server routing to `routes`, with monitoring on a random port, and stops
 * it when the test ends.
 */
export async function startClusterServer(
  t: TestContext,
  routes: string[] = [],
  cluster: Partial<ClusterOptions> = {},
  overrides: Partial<Options> = {},
): Promise<Server> {
  const s = await startServer({
    httpPort: -1,
    ...overrides,
    cluster: clusterOpts(routes, cluster),
  });
  defer(t, () => s.shutdown());
  return s;
}

export interface CreateClusterOptions {
  /**
   * true (default): servers[0] is the seed and every other server routes only to it.
   * false: a chain, each server routes to the one started before it.
   */
  seed?: boolean;
  cluster?: Partial<ClusterOptions>;
  server?: Partial<Options>;
  /** Wait for the full mesh before returning (default true). */
  wait?: boolean;
}

/** Starts n in-process servers that gossip into a full mesh; all are stopped when t ends. */
export async function createCluster(
  t: TestContext,
  n: number,
  opts: CreateClusterOptions = {},
): Promise<Server[]> {
  const servers: Server[] = [];
  for (let i = 0; i < n; i++) {
    const to = i === 0 ? [] : [routeUrl(opts.seed === false ? servers[i - 1]! : servers[0]!)];
    servers.push(await startClusterServer(t, to, opts.cluster, opts.server));
  }
  if (opts.wait !== false) await waitClusterFormed(servers);
  return servers;
}

/**
 * Waits until every server has a route to every other one and to nothing else (n servers, so
 * n - 1 routes each, each to a distinct member of `servers`).
 */
export async function waitClusterFormed(servers: Server[], ms = 5000): Promise<void> {
  const ids = new Set(servers.map((s) => s.id));
  try {
    await checkFor(ms, () =>
      servers.every((s) => {
        const remotes = s.routeInfos(false).map((r) => r.remote_id as string);
        return (
          remotes.length === servers.length - 1 &&
          new Set(remotes).size === remotes.length &&
          remotes.every((id) => ids.has(id) && id !== s.id)
        );
      }),
    );
  } catch {
    const seen = servers.map((s, i) => `server ${i}: ${s.numRoutes()} route(s)`).join(", ");
    throw new Error(`cluster of ${servers.length} did not form a full mesh in ${ms}ms (${seen})`);
  }
}

/** GETs a monitoring endpoint and parses its JSON. */
export function monitorGet<T = Record<string, unknown>>(
  httpPort: number,
  path: string,
): Promise<T> {
  return new Promise((resolveGet, reject) => {
    const req = request({ host: "127.0.0.1", port: httpPort, path, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => {
        if (res.statusCode !== 200) {
          reject(new Error(`GET ${path}: HTTP ${res.statusCode}: ${body}`));
          return;
        }
        try {
          resolveGet(JSON.parse(body) as T);
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    req.on("error", reject);
    req.end();
  });
}

export interface RouteEntry {
  rid: number;
  remote_id: string;
  did_solicit: boolean;
  is_configured: boolean;
  ip: string;
  port: number;
  in_msgs: number;
  out_msgs: number;
  subscriptions: number;
}

export interface Routez {
  server_id: string;
  num_routes: number;
  routes: RouteEntry[] | null;
}

export function routez(httpPort: number): Promise<Routez> {
  return monitorGet<Routez>(httpPort, "/routez");
}

/**
 * Waits until /routez on every monitoring port reports n - 1 routes, to the other n - 1
 * servers (by server id). Returns the last /routez of each.
 */
export async function waitRoutez(httpPorts: number[], ms = 8000): Promise<Routez[]> {
  let last: Routez[] = [];
  try {
    const formed = await checkFor(ms, async () => {
      last = await Promise.all(httpPorts.map((p) => routez(p)));
      const ids = new Set(last.map((r) => r.server_id));
      const full = last.every((r) => {
        const remotes = (r.routes ?? []).map((x) => x.remote_id);
        return (
          r.num_routes === httpPorts.length - 1 &&
          new Set(remotes).size === remotes.length &&
          remotes.every((id) => ids.has(id) && id !== r.server_id)
        );
      });
      return full ? last : null;
    });
    return formed!;
  } catch {
    const seen = last.map((r) => r.num_routes).join(", ");
    throw new Error(`no full mesh of ${httpPorts.length} in ${ms}ms (num_routes: ${seen})`);
  }
}

/** The route port a spawned server (shoal or Go) logged; waits for the log line. */
export async function routePortOf(s: RunningServer, ms = 5000): Promise<number> {
  const m = await checkFor(ms, () =>
    /Listening for route connections on [^\s]*:(\d+)/.exec(s.output()),
  );
  return Number(m![1]);
}

/** A TCP port that was free a moment ago (for servers that must be restarted on it). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen({ host: "127.0.0.1", port: 0 }, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/**
 * Waits until /routez?subs=1 on httpPort shows interest in `subject` from at least `routes`
 * routes (for spawned servers, whose sublists tests cannot read).
 */
export async function waitRoutezInterest(
  httpPort: number,
  subject: string,
  routes = 1,
  ms = 5000,
): Promise<void> {
  await checkFor(ms, async () => {
    const rz = await monitorGet<{ routes: Array<{ subscriptions_list?: string[] }> | null }>(
      httpPort,
      "/routez?subs=1",
    );
    const n = (rz.routes ?? []).filter((r) => r.subscriptions_list?.includes(subject)).length;
    return n >= routes;
  });
}

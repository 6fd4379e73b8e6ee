// What every node serves to the outside: the routing mesh for published ports (L4) and the
// HTTP router by host name (L7), both fed from the assignment messages. Backends on this very
// node (its advertised address) are reached over loopback.

import type { Endpoint, ServiceRequests } from "../api/bus.js";
import type { RouteTable } from "../api/routes.js";
import { parseHostPort } from "../lib/addr.js";
import type { Logger } from "../lib/log.js";
import type { TrafficFigures } from "../node/prometheus.js";
import { RoutingMesh } from "../net/mesh.js";
import { HttpRouter } from "../net/router/router.js";
import { LATENCY_BUCKETS_S } from "../net/router/stats.js";
import { meshBackends } from "./state.js";

export interface EdgeOptions {
  /** Bind address of published ports. */
  publishHost: string;
  /** The HTTP router's [host]:port; "" or undefined: no router on this node. */
  httpAddr: string | undefined;
  /** Common-log-format lines on standard output, one per routed request. */
  httpAccessLog: boolean;
  /** This node's advertised address (backends there are reached over loopback). */
  ownHost: string;
  log: Logger;
}

export class NodeEdge {
  readonly mesh: RoutingMesh;
  router: HttpRouter | null = null;
  /** The port the router listens on (0: none). */
  httpPort = 0;
  private lastRoutes = "";

  constructor(private readonly opts: EdgeOptions) {
    this.mesh = new RoutingMesh(opts.log.child("mesh"), opts.publishHost);
  }

  /** Starts the HTTP router; a port it cannot take is a warning, the node goes on without it. */
  async start(): Promise<void> {
    const addr = this.opts.httpAddr;
    if (!addr) return;
    const { host, port } = parseHostPort(addr);
    const log = this.opts.log.child("router");
    const router = new HttpRouter({
      log,
      ...(this.opts.httpAccessLog
        ? { accessLog: (line: string) => void process.stdout.write(line + "\n") }
        : {}),
    });
    try {
      this.httpPort = (await router.listen(port ?? 80, host || "0.0.0.0")).port;
      this.router = router;
    } catch (err) {
      await router.close();
      this.opts.log.warn(
        `HTTP router: cannot listen on ${addr} (${(err as Error).message}); this node routes no HTTP requests (set --http-addr)`,
      );
    }
  }

  /**
   * Requests per service since the last call, for the autoscaler's requests per second: what
   * the router sent on plus the connections the mesh forwarded (one connection, one request: L4
   * sees no requests). The router reaches tasks directly, never through the mesh, so nothing
   * is counted twice.
   */
  takeRequestCounts(): ServiceRequests[] {
    const sum = new Map<string, number>();
    for (const c of this.router?.takeRequestCounts() ?? []) sum.set(c.serviceId, c.count);
    for (const c of this.mesh.takeConnectionCounts()) {
      sum.set(c.serviceId, (sum.get(c.serviceId) ?? 0) + c.count);
    }
    return [...sum].map(([serviceId, count]) => ({ serviceId, count }));
  }

  /** The router's and the mesh's figures per service, for /metrics. */
  traffic(): TrafficFigures {
    return {
      router: (this.router?.stats.all() ?? []).map((t) => ({
        serviceId: t.serviceId ?? "",
        service: t.service,
        requests: t.requests,
        latency: {
          bounds: LATENCY_BUCKETS_S,
          buckets: t.buckets,
          count: t.observed,
          sumSeconds: t.sumMs / 1000,
        },
      })),
      mesh: this.mesh.stats(),
    };
  }

  endpoints(eps: Record<string, Endpoint[]>): void {
    void this.mesh.sync(meshBackends(eps, this.opts.ownHost));
  }

  routes(table: RouteTable): void {
    const router = this.router;
    if (router === null) return;
    const sig = JSON.stringify(table);
    if (sig === this.lastRoutes) return;
    this.lastRoutes = sig;
    const own = this.opts.ownHost;
    const local: RouteTable = {
      routes: table.routes.map((r) => ({
        ...r,
        backends: r.backends.map((b) => (b.host === own ? { ...b, host: "127.0.0.1" } : b)),
      })),
    };
    for (const problem of router.update(local)) this.opts.log.warn(`HTTP router: ${problem}`);
  }

  async close(): Promise<void> {
    await this.router?.close();
    await this.mesh.close();
  }
}

// The node's metrics endpoint (`--metrics-addr`, dockerd's flag name; default :9323, "" off):
// `GET /metrics` in Prometheus' text format (src/node/prometheus.ts) on every node, and on
// managers `GET /sd`, Prometheus' HTTP service discovery (`http_sd_configs`) of every node's
// /metrics and every task that publishes metrics (src/manager/prometheus-sd.ts). Anything else
// is a 404. An address that cannot be bound is a warning: the daemon goes on without metrics.

import { createServer, type Server } from "node:http";
import type { NodeMetrics } from "../node/prometheus.js";
import type { Logger } from "../lib/log.js";
import { joinHostPort, parseHostPort } from "../lib/addr.js";

export const DEFAULT_METRICS_PORT = 9323;

export interface MetricsServerOptions {
  /** [host]:port; "" = off. An empty host is every address. */
  addr: string;
  metrics: NodeMetrics;
  /** Managers: the targets for Prometheus' HTTP service discovery. */
  sd?: () => unknown;
  log: Pick<Logger, "info" | "warn" | "error">;
}

export interface RunningMetrics {
  /** The bound port (undefined: off, or the address was taken). */
  port: number | undefined;
  close(): Promise<void>;
}

export async function startMetricsServer(o: MetricsServerOptions): Promise<RunningMetrics> {
  const off: RunningMetrics = { port: undefined, close: async () => {} };
  if (o.addr === "") return off;
  const hp = parseHostPort(o.addr);
  const host = hp.host || "0.0.0.0";
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const send = (status: number, type: string, body: string) => {
      res.statusCode = status;
      res.setHeader("Content-Type", type);
      res.end(body);
    };
    req.resume();
    if (req.method !== "GET" && req.method !== "HEAD") {
      return send(405, "text/plain", "only GET\n");
    }
    if (path === "/metrics") {
      o.metrics.render().then(
        (text) => send(200, o.metrics.contentType, text),
        (err: Error) => {
          o.log.error(`/metrics: ${err.message}`);
          send(500, "text/plain", `${err.message}\n`);
        },
      );
    } else if (path === "/sd" && o.sd) {
      try {
        send(200, "application/json", JSON.stringify(o.sd()));
      } catch (err) {
        o.log.error(`/sd: ${(err as Error).message}`);
        send(500, "text/plain", `${(err as Error).message}\n`);
      }
    } else {
      send(404, "text/plain", "404 page not found\n");
    }
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(hp.port ?? DEFAULT_METRICS_PORT, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    o.log.warn(
      `cannot listen on ${joinHostPort(host, hp.port ?? DEFAULT_METRICS_PORT)}: ${(err as Error).message}; going on without /metrics`,
    );
    return off;
  }
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  o.log.info(`listening on http://${joinHostPort(host, port)}/metrics`);
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

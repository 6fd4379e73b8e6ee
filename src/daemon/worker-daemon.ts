// The daemon of a worker node (`shoal join`): no store and no manager; an agent that runs what
// the managers assign, over the control bus, a routing mesh for published ports, and a local
// API socket for `shoal info` and `shoal leave`. The join answer is kept in the data dir so a
// restarted worker rejoins with the same node id.

import { createServer, request, type RequestListener, type Server } from "node:http";
import { hostname } from "node:os";
import { join } from "node:path";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Logger } from "../nats/log.js";
import { nodeDrivers } from "../node/node-drivers.js";
import { NodeRuntime } from "../node/runtime.js";
import { NodeTaskDns } from "./task-dns.js";
import { NodeEdge } from "./edge.js";
import { fencingOf, forgetSwarm } from "./state.js";
import { parseHostPort } from "../lib/addr.js";
import { parseToken } from "../api/token.js";
import type { JoinRequest, JoinResponse } from "../manager/join.js";
import { JoinResponseSchema } from "../api/http.js";
import { check, matches } from "../api/schema.js";
import { socketPath } from "../api/paths.js";
import { SHOAL_VERSION } from "../lib/version.js";
import { startMetricsServer, type RunningMetrics } from "./metrics-server.js";

export interface WorkerOptions {
  dataDir: string;
  token: string;
  managerAddr: string;
  advertiseAddr: string;
  publishHost: string;
  /** Overrides of the CPUs and memory the node reports. */
  cpus?: number;
  memoryBytes?: number;
  /** Fencing's margin, ms; -1: no fencing (`--fencing-margin off`). */
  fenceMarginMs?: number;
  /** The HTTP router's [host]:port ("" or undefined: off), and its access log. */
  httpAddr?: string;
  httpAccessLog?: boolean;
  /** The node's /metrics (`--metrics-addr`, default :9323); "" = off. */
  metricsAddr?: string;
  log: Logger;
}

interface Saved {
  token: string;
  managerAddr: string;
  answer: JoinResponse;
}

/** POSTs a join request to a manager's join port. */
export function requestJoin(managerAddr: string, body: JoinRequest): Promise<JoinResponse> {
  const { host, port } = parseHostPort(managerAddr);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: port ?? 2377,
        method: "POST",
        path: "/v1/swarm/join",
        headers: { "Content-Type": "application/json" },
        timeout: 10_000,
      },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => {
          let json: { message?: string } & Partial<JoinResponse>;
          try {
            json = JSON.parse(text) as typeof json;
          } catch {
            return reject(
              new Error(`unexpected answer from ${managerAddr}: ${text.slice(0, 200)}`),
            );
          }
          if ((res.statusCode ?? 500) >= 400)
            return reject(new Error(json.message ?? `HTTP ${res.statusCode}`));
          try {
            resolve(check(JoinResponseSchema, json, "", "the join answer"));
          } catch (err) {
            reject(new Error(`unexpected answer from ${managerAddr}: ${(err as Error).message}`));
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`timed out joining ${managerAddr}`)));
    req.on("error", (err) =>
      reject(new Error(`cannot reach the manager at ${managerAddr}: ${err.message}`)),
    );
    req.end(JSON.stringify(body));
  });
}

/**
 * The worker's local API (its socket): `GET /v1/info` and `POST /v1/swarm/leave`; anything else
 * is a manager's command (400). No request can throw out of it: an unexpected error is a 500
 * with its cause logged.
 */
export function workerApi(h: {
  info(): unknown;
  leave(): void;
  log: Pick<Logger, "error">;
}): RequestListener {
  return (req, res) => {
    // The path by hand, not `new URL`: a request line like `GET //` must not throw.
    const path = (req.url ?? "/").split("?")[0];
    const send = (status: number, body: unknown) => {
      res.statusCode = status;
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify(body));
    };
    try {
      if (req.method === "GET" && path === "/v1/info") {
        send(200, h.info());
      } else if (req.method === "POST" && path === "/v1/swarm/leave") {
        send(200, { ok: true });
        h.leave();
      } else {
        send(400, {
          message: "This node is a worker: run this command on a manager.",
          code: "ERR_INVALID",
        });
      }
    } catch (err) {
      h.log.error(`${req.method} ${path}: ${(err as Error).stack ?? String(err)}`);
      if (!res.headersSent) send(500, { message: String(err), code: "ERR_INTERNAL" });
      else res.destroy();
    }
    // A body, if any, is drained so the connection stays usable.
    req.resume();
  };
}

export class WorkerDaemon {
  runtime!: NodeRuntime;
  edge!: NodeEdge;
  nodeId = "";
  private api: Server | null = null;
  metrics: RunningMetrics | undefined;
  private stopping = false;
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(readonly opts: WorkerOptions) {
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  private get savedFile(): string {
    return join(this.opts.dataDir, "join.json");
  }

  async start(): Promise<void> {
    const { dataDir, log } = this.opts;
    mkdirSync(dataDir, { recursive: true });
    const saved = existsSync(this.savedFile)
      ? (JSON.parse(readFileSync(this.savedFile, "utf8")) as Saved)
      : null;
    const token = this.opts.token || saved?.token || "";
    const managerAddr = this.opts.managerAddr || saved?.managerAddr || "";
    const parsed = parseToken(token);
    if (!parsed) throw new Error("invalid join token: expected SHOAL-1-<fingerprint>-<secret>");
    let answer: JoinResponse;
    try {
      answer = await requestJoin(managerAddr, {
        token,
        hostname: hostname(),
        addr: this.opts.advertiseAddr,
        ...(saved ? { nodeId: saved.answer.nodeId } : {}),
        ...(saved?.answer.nodeSecret ? { nodeSecret: saved.answer.nodeSecret } : {}),
      });
    } catch (err) {
      if (!saved) throw err;
      // A join.json from an older shoal (no bus user of its own) cannot be used.
      if (!matches(JoinResponseSchema, saved.answer)) {
        throw new Error(
          `rejoin failed (${(err as Error).message}), and the saved join in ${this.savedFile} is not usable: run \`shoal swarm leave\` on this node and join again`,
        );
      }
      log.warn(`rejoin failed (${(err as Error).message}); using the saved join`);
      answer = saved.answer;
    }
    // The token names the cluster: refuse a manager that is not part of it.
    if (answer.fingerprint !== parsed.fingerprint) {
      throw new Error(
        `the manager at ${managerAddr} belongs to another cluster (fingerprint mismatch)`,
      );
    }
    // It holds the node's bus password: readable by its owner only, whatever the umask.
    writeFileSync(this.savedFile, JSON.stringify({ token, managerAddr, answer } satisfies Saved));
    chmodSync(this.savedFile, 0o600);
    this.nodeId = answer.nodeId;
    this.edge = new NodeEdge({
      publishHost: this.opts.publishHost,
      httpAddr: this.opts.httpAddr,
      httpAccessLog: this.opts.httpAccessLog ?? false,
      ownHost: this.opts.advertiseAddr,
      log,
    });
    await this.edge.start();
    this.runtime = new NodeRuntime({
      nodeId: answer.nodeId,
      hostname: hostname(),
      dataDir,
      busUrls: answer.natsUrls,
      bus: { user: answer.busUser, pass: answer.busPassword },
      heartbeatMs: answer.heartbeatMs,
      natsUrl: answer.natsUrls[0] ?? "",
      drivers: await nodeDrivers(log, this.opts.advertiseAddr),
      dns: new NodeTaskDns(log.child("dns")),
      cpus: this.opts.cpus,
      memoryBytes: this.opts.memoryBytes,
      ...fencingOf(this.opts.fenceMarginMs),
      onEndpoints: (eps) => this.edge.endpoints(eps),
      onRoutes: (table) => this.edge.routes(table),
      log,
    });
    this.metrics = await startMetricsServer({
      addr: this.opts.metricsAddr ?? "",
      metrics: this.runtime.metrics,
      log: log.child("metrics"),
    });
    this.runtime.metricsPort = this.metrics.port;
    await this.runtime.start();
    await this.listenApi();
    writeFileSync(join(dataDir, "daemon.pid"), String(process.pid));
    log.info(
      `shoal daemon ${SHOAL_VERSION} ready: worker node ${answer.nodeId} joined ${managerAddr}`,
    );
  }

  private async listenApi(): Promise<void> {
    const path = socketPath(this.opts.dataDir);
    rmSync(path, { force: true });
    const s = createServer(
      workerApi({
        info: () => ({
          nodeId: this.nodeId,
          role: "worker",
          version: SHOAL_VERSION,
          pid: process.pid,
          dataDir: this.opts.dataDir,
        }),
        leave: () => setImmediate(() => void this.stop(true)),
        log: this.opts.log,
      }),
    );
    this.api = s;
    await new Promise<void>((resolve) => s.listen(path, resolve));
    chmodSync(path, 0o600); // the daemon's owner only, by explicit chmod, not the umask
  }

  async stop(leaving: boolean): Promise<void> {
    if (this.stopping) return this.done;
    this.stopping = true;
    await this.runtime?.stop(leaving);
    await this.edge?.close();
    await this.metrics?.close();
    const api = this.api;
    if (api) await new Promise<void>((r) => api.close(() => r()));
    rmSync(join(this.opts.dataDir, "daemon.pid"), { force: true });
    rmSync(socketPath(this.opts.dataDir), { force: true });
    if (leaving) forgetSwarm(this.opts.dataDir);
    this.opts.log.info("shoal daemon stopped");
    this.resolveDone();
  }
}

// The daemon of a worker node (`shoal join`): no store and no manager; an agent that runs what
// the managers assign, over the control bus, a routing mesh for published ports, and a local
// API socket for `shoal info` and `shoal leave`. The join answer is kept in the data dir so a
// restarted worker rejoins with the same node id.

import { createServer, request, type Server } from "node:http";
import { hostname } from "node:os";
import { join } from "node:path";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Logger } from "../nats/log.js";
import { Agent } from "../node/agent.js";
import { AgentSession } from "../node/session.js";
import { nodeDrivers } from "./drivers.js";
import { RoutingMesh, type Backend } from "../net/mesh.js";
import { parseToken } from "../manager/ids.js";
import type { JoinRequest, JoinResponse } from "../manager/join.js";
import { socketPath } from "../api/paths.js";
import { SHOAL_VERSION } from "../lib/version.js";
import { parseHostPort } from "../lib/addr.js";

export interface WorkerOptions {
  dataDir: string;
  token: string;
  managerAddr: string;
  advertiseAddr: string;
  publishHost: string;
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
        port: port || 2377,
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
          resolve(json as JoinResponse);
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

export class WorkerDaemon {
  agent!: Agent;
  session!: AgentSession;
  mesh!: RoutingMesh;
  nodeId = "";
  private api: Server | null = null;
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
        nodeId: saved?.answer.nodeId,
      });
    } catch (err) {
      if (!saved) throw err;
      log.warn(`rejoin failed (${(err as Error).message}); using the saved join`);
      answer = saved.answer;
    }
    // The token names the cluster: refuse a manager that is not part of it.
    if (answer.fingerprint !== parsed.fingerprint) {
      throw new Error(
        `the manager at ${managerAddr} belongs to another cluster (fingerprint mismatch)`,
      );
    }
    writeFileSync(this.savedFile, JSON.stringify({ token, managerAddr, answer } satisfies Saved));
    this.nodeId = answer.nodeId;
    this.mesh = new RoutingMesh(log, this.opts.publishHost);
    const drivers = await nodeDrivers(log);
    this.session = new AgentSession({
      drivers: drivers.names,
      nodeId: answer.nodeId,
      hostname: hostname(),
      natsUrls: answer.natsUrls,
      agentPassword: answer.agentPassword,
      heartbeatMs: answer.heartbeatMs,
      onEndpoints: (eps) => {
        const map = new Map<number, Backend[]>();
        for (const [port, list] of Object.entries(eps)) {
          map.set(
            Number(port),
            list.map((e) =>
              e.host === this.opts.advertiseAddr ? { host: "127.0.0.1", port: e.port } : e,
            ),
          );
        }
        void this.mesh.sync(map);
      },
      log,
    });
    this.agent = new Agent(drivers.set, log, {
      nodeId: answer.nodeId,
      hostname: hostname(),
      dataDir: join(dataDir, "agent"),
      natsUrl: answer.natsUrls[0] ?? "",
      logMaxBytes: 10 * 1024 * 1024,
      report: this.session.report,
    });
    await this.agent.recover();
    await this.session.start(this.agent);
    await this.listenApi();
    writeFileSync(join(dataDir, "daemon.pid"), String(process.pid));
    log.info(
      `shoal daemon ${SHOAL_VERSION} ready: worker node ${answer.nodeId} joined ${managerAddr}`,
    );
  }

  private async listenApi(): Promise<void> {
    const path = socketPath(this.opts.dataDir);
    rmSync(path, { force: true });
    const s = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://shoal");
      res.setHeader("Content-Type", "application/json");
      if (req.method === "GET" && url.pathname === "/v1/info") {
        res.end(
          JSON.stringify({
            nodeId: this.nodeId,
            role: "worker",
            version: SHOAL_VERSION,
            pid: process.pid,
            dataDir: this.opts.dataDir,
          }),
        );
      } else if (req.method === "POST" && url.pathname === "/v1/swarm/leave") {
        res.end(JSON.stringify({ ok: true }));
        setImmediate(() => void this.stop(true));
      } else {
        res.statusCode = 400;
        res.end(
          JSON.stringify({
            message: "This node is a worker: run this command on a manager.",
            code: "ERR_INVALID",
          }),
        );
      }
    });
    this.api = s;
    await new Promise<void>((resolve) => s.listen(path, resolve));
  }

  async stop(leaving: boolean): Promise<void> {
    if (this.stopping) return this.done;
    this.stopping = true;
    await this.session?.stop();
    await this.agent?.stop(leaving);
    await this.mesh?.close();
    const api = this.api;
    if (api) await new Promise<void>((r) => api.close(() => r()));
    rmSync(join(this.opts.dataDir, "daemon.pid"), { force: true });
    rmSync(socketPath(this.opts.dataDir), { force: true });
    if (leaving) rmSync(this.savedFile, { force: true });
    this.opts.log.info("shoal daemon stopped");
    this.resolveDone();
  }
}

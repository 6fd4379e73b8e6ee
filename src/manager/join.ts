// The join endpoint (Swarm's port 2377): a node presents a join token; the manager checks the
// token's cluster fingerprint and role secret, registers the node, and answers with what the
// node needs to join the control bus. Only this endpoint is served on the network; the full API
// stays on the local socket.

import { createServer, type Server } from "node:http";
import { fingerprint, newId, parseToken, secretsEqual } from "./ids.js";
import { agentPassword } from "./bus-users.js";
import type { Manager } from "./manager.js";
import type { Node, NodeRole } from "../api/types.js";

export interface ClusterMeta {
  secret: string;
  workerSecret: string;
  managerSecret: string;
  createdAt: number;
}

export interface JoinRequest {
  token: string;
  hostname: string;
  /** The address the node is reachable on (its routing mesh and task ports). */
  addr: string;
  /** A node that joined before and rejoins keeps its id. */
  nodeId?: string;
}

export interface JoinResponse {
  nodeId: string;
  role: NodeRole;
  fingerprint: string;
  natsUrls: string[];
  agentPassword: string;
  heartbeatMs: number;
}

export class JoinError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** Decides a join: which role the token grants, or why it is refused. */
export function checkToken(meta: ClusterMeta, token: string): NodeRole {
  const t = parseToken(token);
  if (!t) throw new JoinError("invalid join token: expected SHOAL-1-<fingerprint>-<secret>", 400);
  if (t.fingerprint !== fingerprint(meta.secret)) {
    throw new JoinError("invalid join token: it belongs to another cluster", 403);
  }
  if (secretsEqual(t.secret, meta.workerSecret)) return "worker";
  if (secretsEqual(t.secret, meta.managerSecret)) return "manager";
  throw new JoinError("invalid join token: it was rotated or is wrong", 403);
}

export class JoinServer {
  private server: Server | null = null;

  constructor(
    private readonly manager: Manager,
    private readonly natsUrls: () => string[],
    private readonly heartbeatMs: () => number,
  ) {}

  async join(req: JoinRequest): Promise<JoinResponse> {
    const meta = this.manager.store.view((tx) => tx.getMeta<ClusterMeta>("cluster"))!;
    const role = checkToken(meta, req.token ?? "");
    if (role === "manager") {
      throw new JoinError(
        "joining as a manager is not supported yet: join with the worker token",
        400,
      );
    }
    const now = Date.now();
    const node = await this.manager.store.update((tx) => {
      const existing = req.nodeId ? tx.getNode(req.nodeId) : undefined;
      const n: Node = {
        id: existing?.id ?? newId(),
        hostname: req.hostname || "unknown",
        role,
        availability: existing?.availability ?? "active",
        status: "ready",
        addr: req.addr,
        labels: existing?.labels ?? {},
        // What the node has and can do arrives with its runtime's heartbeats.
        resources: existing?.resources ?? { nanoCpus: 0, memoryBytes: 0 },
        ...(existing?.drivers ? { drivers: existing.drivers } : {}),
        ...(existing?.limits ? { limits: existing.limits } : {}),
        engineVersion: existing?.engineVersion ?? "",
        lastSeen: now,
        createdAt: existing?.createdAt ?? now,
        updatedAt: now,
      };
      tx.putNode(n);
      return n;
    });
    return {
      nodeId: node.id,
      role,
      fingerprint: fingerprint(meta.secret),
      natsUrls: this.natsUrls(),
      agentPassword: agentPassword(meta.secret),
      heartbeatMs: this.heartbeatMs(),
    };
  }

  /** Listens for joins; returns the port (useful with port 0). */
  async listen(host: string, port: number): Promise<number> {
    const s = createServer((req, res) => {
      if (req.method !== "POST" || req.url !== "/v1/swarm/join") {
        res.writeHead(404, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ message: "not found" }));
        return;
      }
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        let body: JoinRequest;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as JoinRequest;
        } catch {
          res.writeHead(400, { "Content-Type": "application/json" });
          res.end(JSON.stringify({ message: "invalid JSON" }));
          return;
        }
        this.join(body).then(
          (r) => {
            res.writeHead(200, { "Content-Type": "application/json" });
            res.end(JSON.stringify(r));
          },
          (err: Error) => {
            res.writeHead(err instanceof JoinError ? err.status : 500, {
              "Content-Type": "application/json",
            });
            res.end(JSON.stringify({ message: err.message }));
          },
        );
      });
    });
    this.server = s;
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.listen({ host, port }, () => {
        s.off("error", reject);
        resolve();
      });
    });
    const a = s.address();
    return typeof a === "object" && a ? a.port : port;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }
}

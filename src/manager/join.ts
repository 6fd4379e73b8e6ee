// The join endpoint (Swarm's port 2377): a node presents a join token; the manager checks the
// token's cluster fingerprint and role secret, registers the node, and answers with what the
// node needs to join the control bus. Only this endpoint is served on the network; the full API
// stays on the local socket.

import { fingerprint, newId, parseToken, secretsEqual } from "./ids.js";
import { agentPassword } from "./bus-users.js";
import type { Manager } from "./manager.js";
import type { ManagerErrorCode } from "./errors.js";
import { addRoute, createHttpApp, HttpListeners } from "./http.js";
import { joinRoutes, type JoinRequest, type JoinResponse } from "../api/http.js";
import type { Node, NodeRole } from "../api/types.js";

export type { JoinRequest, JoinResponse } from "../api/http.js";

export interface ClusterMeta {
  secret: string;
  workerSecret: string;
  managerSecret: string;
  createdAt: number;
}

/** A refused join; its code gives the HTTP status (403 for a wrong token, else 400). */
export class JoinError extends Error {
  readonly code: ManagerErrorCode;

  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "JoinError";
    this.code = status === 403 ? "ERR_TOKEN" : "ERR_INVALID";
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
  private listeners: HttpListeners | null = null;

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

  /** Listens for joins; returns the port (useful with port 0). The body is checked against
   * the JoinRequest schema first; errors have the API's shape `{ "message", "code" }`. */
  async listen(host: string, port: number): Promise<number> {
    const app = createHttpApp(this.manager.log);
    addRoute(app, joinRoutes.join, ({ body }) => this.join(body));
    this.listeners = new HttpListeners(app);
    return this.listeners.listenTcp(host, port);
  }

  async close(): Promise<void> {
    const l = this.listeners;
    this.listeners = null;
    await l?.close();
  }
}

// The join endpoint (Swarm's port 2377), over TLS with the manager's node certificate (its chain
// carries the root CA, which a joining node checks against the token's digest before it sends
// anything): a node presents a join token and a certificate request; the manager checks the
// token's CA digest and role secret, registers the node, signs its certificate, and answers with
// what the node needs to join the control bus. A node renews its certificate here too, proving
// who it is with the certificate it has (mutual TLS). Only this endpoint is served on the
// network; the full API stays on the local socket. Being on the network, it takes small bodies only (JOIN_BODY_LIMIT),
// logs every refused join with its source address, and refuses an address that failed too
// often (a token bucket per address: 429 without looking at the request).

import type { TLSSocket } from "node:tls";
import type { Server as TlsServer } from "node:https";
import { X509Certificate } from "node:crypto";
import {
  NODE_SECRETS,
  newId,
  newSecret,
  secretDigest,
  secretsEqual,
  type NodeSecrets,
} from "./ids.js";
import { parseToken, TOKEN_FORMAT } from "../api/token.js";
import {
  CA_META,
  CaError,
  certInfo,
  certUser,
  issueNodeCert,
  tokenDigest,
  trustPem,
  type CaMeta,
} from "./ca.js";
import type { Manager } from "./manager.js";
import type { FastifyRequest } from "fastify";
import { ManagerError, type ManagerErrorCode } from "./errors.js";
import { addRoute, createHttpApp, HttpListeners } from "./http.js";
import {
  joinRoutes,
  type EtcdJoin,
  type JoinRequest,
  type JoinResponse,
  type PromoteRequest,
  type RenewResponse,
} from "../api/http.js";
import type { Node, NodeRole } from "../api/types.js";

export type { JoinRequest, JoinResponse } from "../api/http.js";

export interface ClusterMeta {
  secret: string;
  workerSecret: string;
  managerSecret: string;
  createdAt: number;
  /** `init --default-addr-pool`/`--default-addr-pool-mask-length` (absent: 10.0.0.0/8 in /24s). */
  addrPool?: { pool: string; maskLength: number };
}

/** A refused join; its code gives the HTTP status (403, 409, 503 as given, else 400). */
export class JoinError extends Error {
  readonly code: ManagerErrorCode;

  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "JoinError";
    this.code =
      status === 403
        ? "ERR_TOKEN"
        : status === 503
          ? "ERR_NO_LEADER"
          : status === 409
            ? "ERR_CONFLICT"
            : "ERR_INVALID";
  }
}

/** Decides a join: which role the token grants, or why it is refused. */
export function checkToken(meta: ClusterMeta, digest: string, token: string): NodeRole {
  const t = parseToken(token);
  if (!t) throw new JoinError(`invalid join token: expected ${TOKEN_FORMAT}`, 400);
  if (t.digest !== digest) {
    throw new JoinError("invalid join token: it belongs to another cluster", 403);
  }
  if (secretsEqual(t.secret, meta.workerSecret)) return "worker";
  if (secretsEqual(t.secret, meta.managerSecret)) return "manager";
  throw new JoinError("invalid join token: it was rotated or is wrong", 403);
}

/** The largest join request body (a join request is a few hundred bytes). */
export const JOIN_BODY_LIMIT = 64 * 1024;

export interface FailureLimits {
  /** Failed joins an address may have in a row before it is refused. */
  burst: number;
  /** ...and how long it takes to earn all of them back, ms. */
  refillMs: number;
  /** Addresses tracked at most (the oldest are forgotten first). */
  maxTracked: number;
}

export function defaultFailureLimits(): FailureLimits {
  return { burst: 10, refillMs: 60_000, maxTracked: 10_000 };
}

/**
 * Failures per source address as token buckets: each address starts with `burst` tokens, a
 * failure takes one, and they come back at `burst` per `refillMs`. An address without a token
 * is refused until one comes back. `now` is injectable for tests.
 */
export class FailureLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly limits: FailureLimits = defaultFailureLimits(),
    private readonly now: () => number = Date.now,
  ) {}

  private tokens(addr: string): number {
    const b = this.buckets.get(addr);
    if (!b) return this.limits.burst;
    const earned = ((this.now() - b.at) * this.limits.burst) / this.limits.refillMs;
    return Math.min(this.limits.burst, b.tokens + earned);
  }

  /** Whether `addr` may try (it has a failure left). */
  allowed(addr: string): boolean {
    return this.tokens(addr) >= 1;
  }

  /** Records a failure of `addr`; returns whether it may still try. */
  failed(addr: string): boolean {
    const tokens = Math.max(0, this.tokens(addr) - 1);
    this.buckets.delete(addr); // re-inserted last: the map is in order of last failure
    this.buckets.set(addr, { tokens, at: this.now() });
    for (const oldest of this.buckets.keys()) {
      if (this.buckets.size <= this.limits.maxTracked) break;
      this.buckets.delete(oldest);
    }
    return tokens >= 1;
  }

  /** Addresses tracked now. */
  get size(): number {
    return this.buckets.size;
  }
}

/** What the join endpoint asks of the daemon about managers (see JoinServer's constructor). */
export interface JoinManagers {
  store: () => string[] | null;
  notLeader: () => string | null;
  /**
   * On the embedded store: makes room for a second manager (the state moves to a managed etcd
   * member). It never returns: it throws a JoinError saying either why not (this manager stays
   * on its embedded store) or that the joining manager should try again in a moment (503).
   * Absent: a manager token is refused on the embedded store.
   */
  moveToEtcd?: () => Promise<never>;
  /**
   * With managed etcd members: adds the joining manager's member (named by its node id, on its
   * address) and returns etcd's --initial-cluster for it to start with and where to promote it.
   */
  addMember?: (nodeId: string, addr: string) => Promise<EtcdJoin>;
}

export class JoinServer {
  private listeners: HttpListeners | null = null;
  private server: TlsServer | null = null;
  readonly limiter: FailureLimiter;

  constructor(
    private readonly manager: Manager,
    private readonly urls: () => { nodes: string[]; apps: string[] },
    private readonly heartbeatMs: () => number,
    limiter?: FailureLimiter,
    /** Several managers: the etcd store's client URLs a joining manager opens (null: the
     * embedded store, which one manager only can hold), and why this manager cannot take a
     * join when it does not lead (a join writes; null: it leads). */
    private readonly managers: JoinManagers = { store: () => null, notLeader: () => null },
  ) {
    this.limiter = limiter ?? new FailureLimiter();
  }

  private ca(): CaMeta {
    const ca = this.manager.store.view((tx) => tx.getMeta<CaMeta>(CA_META));
    if (!ca) throw new Error("the cluster has no certificate authority");
    return ca;
  }

  private async sign(csr: string, node: Node): Promise<string> {
    try {
      return await issueNodeCert(this.ca(), csr, {
        nodeId: node.id,
        role: node.role,
        addrs: [node.addr],
        now: new Date(),
      });
    } catch (err) {
      if (err instanceof CaError) throw new JoinError(err.message, 400);
      throw err;
    }
  }

  async join(req: JoinRequest): Promise<JoinResponse> {
    const meta = this.manager.store.view((tx) => tx.getMeta<ClusterMeta>("cluster"))!;
    const ca = this.ca();
    const role = checkToken(meta, tokenDigest(ca), req.token ?? "");
    const store = this.managers.store();
    const managed = this.managers.addMember !== undefined || this.managers.moveToEtcd !== undefined;
    if (role === "manager" && managed && req.etcd === false) {
      throw new JoinError(
        "a manager runs its own etcd member, and etcd is not installed on the joining machine: install it there (Debian/Ubuntu: apt-get install etcd-server), then join again",
        400,
      );
    }
    if (role === "manager" && store === null) {
      if (this.managers.moveToEtcd) await this.managers.moveToEtcd();
      throw new JoinError(
        "this swarm keeps its state in the embedded store, which only one manager can hold: a second manager needs an etcd store (shoal init --store etcd://HOST:PORT,...); join with the worker token",
        400,
      );
    }
    const notLeader = this.managers.notLeader();
    if (notLeader !== null) throw new JoinError(notLeader, 503);
    const now = Date.now();
    let nodeSecret = "";
    const node = await this.manager.store.update((tx) => {
      const existing = req.nodeId ? tx.getNode(req.nodeId) : undefined;
      const secrets = tx.getMeta<NodeSecrets>(NODE_SECRETS) ?? {};
      if (existing) {
        // Node ids are the manager's to issue: a join takes an existing node's identity only
        // when it proves it is that node, and never a manager's.
        if (existing.role === "manager") {
          throw new JoinError(
            `node ${existing.id} is a manager: a join cannot take its place`,
            403,
          );
        }
        const want = secrets[existing.id];
        if (!want || !req.nodeSecret || !secretsEqual(secretDigest(req.nodeSecret), want)) {
          throw new JoinError(
            `node ${existing.id} is already part of the swarm: a rejoin must present that node's secret (its join.json)`,
            403,
          );
        }
        nodeSecret = req.nodeSecret;
      } else {
        nodeSecret = newSecret();
      }
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
      if (!existing) tx.putMeta(NODE_SECRETS, { ...secrets, [n.id]: secretDigest(nodeSecret) });
      return n;
    });
    let etcd: EtcdJoin | undefined;
    if (role === "manager" && this.managers.addMember) {
      try {
        etcd = await this.managers.addMember(node.id, node.addr);
      } catch (err) {
        // The node is not a manager without its member: take the registration back.
        await this.manager.store
          .update((tx) => {
            tx.deleteNode(node.id);
            const { [node.id]: _gone, ...rest } = tx.getMeta<NodeSecrets>(NODE_SECRETS) ?? {};
            tx.putMeta(NODE_SECRETS, rest);
          })
          .catch(() => {});
        throw new JoinError(
          `cannot add the joining manager's etcd member: ${(err as Error).message}`,
          500,
        );
      }
    }
    const urls = this.urls();
    return {
      nodeSecret,
      nodeId: node.id,
      role,
      caCert: trustPem(ca),
      cert: await this.sign(req.csr, node),
      natsUrls: urls.nodes,
      appNatsUrls: urls.apps,
      busUser: certUser(node.id, role, ca.clusterId),
      heartbeatMs: this.heartbeatMs(),
      ...(role === "manager" && store ? { store } : {}),
      ...(etcd ? { etcd } : {}),
    };
  }

  /**
   * A promoted worker asks to become a manager (`node promote` made it one in the store); `peer`
   * is its worker certificate. As a manager's join: on the embedded store the state moves to
   * etcd first (`moveToEtcd`: 503, ask again), on managed etcd a member is added for it; the
   * answer carries a manager's certificate and the store to open.
   */
  async promote(
    req: PromoteRequest,
    peer: { authorized: boolean; cert: X509Certificate | undefined },
  ): Promise<JoinResponse> {
    if (!peer.cert || !peer.authorized) {
      throw new JoinError("a promotion needs the node's certificate from this swarm's CA", 403);
    }
    const ca = this.ca();
    const info = certInfo(peer.cert.toString());
    const node = this.manager.store.view((tx) => tx.getNode(info.nodeId));
    if (!node || info.clusterId !== ca.clusterId) {
      throw new JoinError(`node ${info.nodeId || "?"} is not part of the swarm`, 403);
    }
    if (node.role !== "manager") {
      // 409: the worker stops asking (demoted again before it took over).
      throw new JoinError(
        `node ${node.id} is a worker: promote it first (shoal node promote)`,
        409,
      );
    }
    const store = this.managers.store();
    const managed = this.managers.addMember !== undefined || this.managers.moveToEtcd !== undefined;
    if (managed && req.etcd === false) {
      throw new JoinError(
        "a manager runs its own etcd member, and etcd is not installed on the promoted machine: install it there (Debian/Ubuntu: apt-get install etcd-server)",
        400,
      );
    }
    if (store === null) {
      if (this.managers.moveToEtcd) await this.managers.moveToEtcd();
      throw new JoinError(
        "this swarm keeps its state in the embedded store, which only one manager can hold",
        400,
      );
    }
    let etcd: EtcdJoin | undefined;
    if (this.managers.addMember) {
      try {
        etcd = await this.managers.addMember(node.id, node.addr);
      } catch (err) {
        throw new JoinError(
          `cannot add the promoted manager's etcd member: ${(err as Error).message}`,
          500,
        );
      }
    }
    const urls = this.urls();
    return {
      nodeId: node.id,
      role: "manager",
      caCert: trustPem(ca),
      cert: await this.sign(req.csr, node),
      natsUrls: urls.nodes,
      appNatsUrls: urls.apps,
      busUser: certUser(node.id, "manager", ca.clusterId),
      heartbeatMs: this.heartbeatMs(),
      store,
      ...(etcd ? { etcd } : {}),
    };
  }

  /**
   * A node's new certificate for `csr`; `peer` is the certificate it connected with, which must
   * be from this cluster's CA, name a node still in the swarm, with that node's role.
   */
  async renew(csr: string, peer: { authorized: boolean; cert: X509Certificate | undefined }) {
    if (!peer.cert || !peer.authorized) {
      throw new JoinError(
        "certificate renewal needs the node's current certificate from this swarm's CA",
        403,
      );
    }
    const ca = this.ca();
    const info = certInfo(peer.cert.toString());
    const node = this.manager.store.view((tx) => tx.getNode(info.nodeId));
    if (!node || info.clusterId !== ca.clusterId || node.role !== info.role) {
      throw new JoinError(`node ${info.nodeId || "?"} is not part of the swarm`, 403);
    }
    return { caCert: trustPem(ca), cert: await this.sign(csr, node) } satisfies RenewResponse;
  }

  /** Listens for joins; returns the port (useful with port 0). The body is checked against
   * the JoinRequest schema first; errors have the API's shape `{ "message", "code" }`. */
  async listen(host: string, port: number, tls: JoinTls): Promise<number> {
    const log = this.manager.log;
    const app = createHttpApp(log, { bodyLimit: JOIN_BODY_LIMIT });
    const reasons = new WeakMap<FastifyRequest, string>();
    app.addHook("onRequest", async (req) => {
      if (this.limiter.allowed(req.ip)) return;
      throw new ManagerError(
        "ERR_RATE_LIMITED",
        "too many failed joins from this address: try again later",
      );
    });
    app.addHook("onError", async (req, _reply, err) => {
      reasons.set(req, err.message);
    });
    app.addHook("onResponse", async (req, reply) => {
      if (reply.statusCode < 400 || reply.statusCode === 429) return;
      const reason = reasons.get(req) ?? `${req.method} ${req.url.split("?")[0]}`;
      // Only the joining node's failures count (a wrong token, a bad request): a 5xx is this
      // side's (no leader yet, the state moving to etcd: "ask again"), and a node that keeps
      // asking through an election must not be locked out by it.
      const left = reply.statusCode >= 500 || this.limiter.failed(req.ip);
      log.warn(
        `join from ${req.ip} refused (${reply.statusCode}): ${reason}` +
          (left ? "" : "; further attempts from this address are refused for a while"),
      );
    });
    addRoute(app, joinRoutes.join, ({ body }) => this.join(body));
    addRoute(app, joinRoutes.renew, ({ body }, reply) => {
      const socket = reply.request.raw.socket as TLSSocket;
      const raw = socket.getPeerCertificate?.()?.raw;
      const cert = raw ? new X509Certificate(raw) : undefined;
      return this.renew(body.csr, { authorized: socket.authorized === true, cert });
    });
    addRoute(app, joinRoutes.promote, ({ body }, reply) => {
      const socket = reply.request.raw.socket as TLSSocket;
      const raw = socket.getPeerCertificate?.()?.raw;
      const cert = raw ? new X509Certificate(raw) : undefined;
      return this.promote(body, { authorized: socket.authorized === true, cert });
    });
    this.listeners = new HttpListeners(app);
    this.server = await this.listeners.listenTls(host, port, {
      ...tlsOptions(tls),
      requestCert: true,
    });
    const a = this.server.address();
    return typeof a === "object" && a ? a.port : port;
  }

  /** A new certificate for the endpoint (renewal, CA rotation): new connections use it. */
  setTls(tls: JoinTls): void {
    this.server?.setSecureContext(tlsOptions(tls));
  }

  async close(): Promise<void> {
    const l = this.listeners;
    this.listeners = null;
    await l?.close();
  }
}

/** The join endpoint's certificate: the manager's node certificate and key, and the CA(s). */
export interface JoinTls {
  certPem: string;
  keyPem: string;
  caPem: string;
}

/** The chain sent is the node certificate then the root CA: a joining node reads the CA from
 * it to check against its token; client certificates (renewal) are checked against the CA. */
/** A TLS server's options for a manager's certificate (its chain with the CA) and key, trusting
 * the CA for client certificates. */
export function tlsOptions(t: JoinTls) {
  return { cert: t.certPem + "\n" + t.caPem, key: t.keyPem, ca: t.caPem };
}

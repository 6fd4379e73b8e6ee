// The daemon of a worker node (`shoal join`): no store and no manager; an agent that runs what
// the managers assign, over the control bus, a routing mesh for published ports, and a local
// API socket for `shoal info` and `shoal leave`. The join answer is kept in the data dir so a
// restarted worker rejoins with the same node id.

import { createServer, type RequestListener, type Server } from "node:http";
import { request } from "node:https";
import { connect as tlsConnect, type PeerCertificate } from "node:tls";
import { X509Certificate } from "node:crypto";
import { hostname } from "node:os";
import { join } from "node:path";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { Logger } from "../nats/log.js";
import type { BusCredentials } from "../api/bus.js";
import { nodeDrivers } from "../node/node-drivers.js";
import { NodeRuntime } from "../node/runtime.js";
import { NodeTaskDns } from "./task-dns.js";
import { NodeEdge } from "./edge.js";
import { fencingOf, forgetSwarm } from "./state.js";
import { parseHostPort, storeUsesTls } from "../lib/addr.js";
import { parseToken, TOKEN_FORMAT } from "../api/token.js";
import { makeToken } from "../manager/ids.js";
import type { JoinRequest, JoinResponse } from "../manager/join.js";
import {
  JoinResponseSchema,
  RenewResponseSchema,
  type PromoteRequest,
  type RenewResponse,
  type JoinRequest as JoinBody,
} from "../api/http.js";
import { findEtcd } from "./etcd-member.js";
import { JoinRefusedError } from "./join-refused.js";
import { joinFollowingLeader } from "./join-retry.js";
import { ETCD_JOIN_FILE, patchSettings, readSettings } from "./state.js";
import type { TSchema, Static } from "@sinclair/typebox";
import type { NodeTlsInfo } from "../api/types.js";
import {
  caDigest,
  certPaths,
  chainReaches,
  issuerDigest,
  newKeyAndCsr,
  renewAt,
  splitPem,
  tlsInfoOf,
  writeNodeCerts,
} from "../manager/ca.js";
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

/** How soon a failed certificate renewal is tried again. */
const RENEW_RETRY_MS = 5000;
/** How soon a promoted worker asks again to become a manager: while the state moves to etcd
 * or no manager answers, and after a refusal. */
const PROMOTE_BUSY_RETRY_MS = 1000;
const PROMOTE_RETRY_MS = 10_000;

interface Saved {
  token: string;
  managerAddr: string;
  answer: JoinResponse;
}

export { writeNodeCerts };

export { JoinRefusedError };

/** How long a restarting worker asks again while the managers have no leader (503). */
const REJOIN_RETRY_MS = 20_000;

/** A join refused by the joining node itself: the manager's CA is not the token's. */
export class CaMismatchError extends Error {
  readonly code = "ERR_CA_MISMATCH";
  override readonly name = "CaMismatchError";
}

/** A server certificate (whose chain Node checked against the CA) must be a manager's. */
export function managerIdentity(_host: string, cert: PeerCertificate): Error | undefined {
  if (/^OU=swarm-manager$/m.test(new X509Certificate(cert.raw).subject)) return undefined;
  return new Error("the peer's certificate is not a manager's");
}

/**
 * Connects to a manager's join port and reads its certificate chain without sending anything;
 * returns the root CA when its digest is the token's (`digest`), or throws CaMismatchError. This
 * is the only thing a joining node does before it trusts the manager.
 */
export function fetchManagerCa(managerAddr: string, digest: string): Promise<string> {
  const { host, port } = parseHostPort(managerAddr);
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host, port: port ?? 2377, rejectUnauthorized: false, timeout: 10_000 });
    s.once("timeout", () => s.destroy(new Error(`timed out reaching ${managerAddr}`)));
    s.once("error", (err) =>
      reject(new Error(`cannot reach the manager at ${managerAddr}: ${err.message}`)),
    );
    s.once("secureConnect", () => {
      const chain: X509Certificate[] = [];
      let c: tls_Peer | undefined = s.getPeerCertificate(true);
      while (c?.raw && !chain.some((x) => x.raw.equals(c!.raw))) {
        chain.push(new X509Certificate(c.raw));
        c = c.issuerCertificate;
      }
      s.destroy();
      // The token's CA, reached from the manager's certificate (during a CA rotation through
      // the new root cross-signed by the old one, whose digest the tokens still carry).
      const pems = chain.map((x) => x.toString());
      const at = pems.findIndex((x) => caDigest(x) === digest);
      const ca = pems[at];
      if (!ca || !chainReaches(pems, at)) {
        return reject(
          new CaMismatchError(
            `the manager at ${managerAddr} is not part of the swarm of this token: its certificate authority does not match the token's digest (the token was not sent)`,
          ),
        );
      }
      resolve(ca);
    });
  });
}
type tls_Peer = PeerCertificate & { issuerCertificate?: tls_Peer };

/** POSTs `body` to a manager's join port over TLS, trusting only `caPem` (and, for renewal,
 * presenting the node's certificate). */
function postJoinPort<S extends TSchema>(
  managerAddr: string,
  path: string,
  body: unknown,
  schema: S,
  tls: { caPem: string; certPem?: string; keyPem?: string },
): Promise<Static<S>> {
  const { host, port } = parseHostPort(managerAddr);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: port ?? 2377,
        method: "POST",
        path,
        headers: { "Content-Type": "application/json" },
        // A manager's join may wait for etcd to take its member (up to about 20 s).
        timeout: 45_000,
        ca: tls.caPem,
        ...(tls.certPem ? { cert: tls.certPem, key: tls.keyPem } : {}),
        // Node checked the chain against `ca` (the token's CA, pinned; during a CA rotation
        // through the cross-signed new root); no host name is checked, the role is.
        checkServerIdentity: managerIdentity,
        agent: false,
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
            return reject(
              new JoinRefusedError(json.message ?? `HTTP ${res.statusCode}`, res.statusCode ?? 500),
            );
          try {
            resolve(check(schema, json, "", "the manager's answer"));
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

/** A promoted worker asks a manager for a manager's certificate and store (mutual TLS with its
 * worker certificate). */
export function requestPromote(
  managerAddr: string,
  body: PromoteRequest,
  tls: { caPem: string; certPem: string; keyPem: string },
): Promise<JoinResponse> {
  return postJoinPort(managerAddr, "/v1/swarm/promote", body, JoinResponseSchema, tls);
}

/** POSTs a join request to a manager's join port, whose CA must be `caPem`. */
export function requestJoin(
  managerAddr: string,
  body: JoinBody,
  caPem: string,
): Promise<JoinResponse> {
  return postJoinPort(managerAddr, "/v1/swarm/join", body, JoinResponseSchema, { caPem });
}

/** A node's certificate renewal at a manager: mutual TLS with its current certificate. */
export function requestRenew(
  managerAddr: string,
  csr: string,
  tls: { caPem: string; certPem: string; keyPem: string },
): Promise<RenewResponse> {
  return postJoinPort(managerAddr, "/v1/swarm/renew", { csr }, RenewResponseSchema, tls);
}

/**
 * A whole join as a node does it: check the manager's CA against the token (before anything is
 * sent), make a key and a certificate request, send the join, check the answer's certificate is
 * from that CA and for our key. Returns the answer and the key (the caller keeps both, 0600).
 */
export async function joinManager(
  managerAddr: string,
  req: Omit<JoinRequest, "csr">,
): Promise<{ answer: JoinResponse; keyPem: string }> {
  const t = parseToken(req.token);
  if (!t) throw new Error(`invalid join token: expected ${TOKEN_FORMAT}`);
  const caPem = await fetchManagerCa(managerAddr, t.digest);
  const { keyPem, csrPem } = await newKeyAndCsr();
  const answer = await requestJoin(managerAddr, { ...req, csr: csrPem }, caPem);
  // The answer came over a connection that trusted the token's CA only; its roots must include
  // that CA (more than one during a CA rotation) and one of them must have signed the node's.
  const roots = splitPem(answer.caCert);
  if (!roots.some((r) => caDigest(r) === t.digest) || !issuerDigest(answer.cert, answer.caCert)) {
    throw new CaMismatchError(
      `the manager at ${managerAddr} answered with a certificate from another CA`,
    );
  }
  return { answer, keyPem };
}

/**
 * Why a worker promoted to a manager on the external etcd `store` could not open it, or null:
 * an etcd serving TLS needs the client TLS files a manager is given (`--store-cacert`, and
 * `--store-cert`/`--store-key` when etcd asks for a client certificate), which a worker keeps
 * in its settings when it joined with them.
 */
export function missingStoreTls(store: string[], dataDir: string): string | null {
  if (!storeUsesTls(store)) return null;
  const saved = readSettings(dataDir) as { storeTls?: { cacert?: string } };
  if (saved.storeTls?.cacert) return null;
  return `the swarm's store (${store.join(", ")}) is an etcd with TLS and this node has no client TLS for it: join this node with --store-cacert (and --store-cert, --store-key), as the managers were`;
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
  private renewTimer: NodeJS.Timeout | undefined;
  private renewing = false;
  private tlsMemo: { cert: string; info: NodeTlsInfo } | undefined;
  /** The bus client's TLS settings, replaced in place by a renewal. */
  private busTls: NonNullable<BusCredentials["tls"]> = { ca: "", cert: "", key: "" };
  private stopping = false;
  /** Promoted (`node promote`): asking to become a manager. */
  private promoting = false;
  private promoteTimer: NodeJS.Timeout | undefined;
  /** Set when this worker stopped to come back as a manager daemon on this store, in this
   * process (run.ts): its tasks keep running and the manager's node runtime adopts them. */
  becameManager: { managedEtcd: true } | { store: string[]; managedEtcd: false } | null = null;
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
    let token = this.opts.token || saved?.token || "";
    const managerAddr = this.opts.managerAddr || saved?.managerAddr || "";
    if (!parseToken(token)) throw new Error(`invalid join token: expected ${TOKEN_FORMAT}`);
    const paths = certPaths(dataDir);
    let answer: JoinResponse;
    try {
      const joined = await this.rejoin(managerAddr, token, saved);
      token = joined.token;
      answer = joined.answer;
      await writeNodeCerts(dataDir, {
        caPem: answer.caCert,
        certPem: answer.cert,
        keyPem: joined.keyPem,
      });
    } catch (err) {
      if (!saved || err instanceof CaMismatchError) throw err;
      // A join.json from an older shoal (no certificate) cannot be used.
      if (!matches(JoinResponseSchema, saved.answer) || !existsSync(paths.key)) {
        throw new Error(
          `rejoin failed (${(err as Error).message}), and the saved join in ${this.savedFile} is not usable: run \`shoal swarm leave\` on this node and join again`,
        );
      }
      log.warn(`rejoin failed (${(err as Error).message}); using the saved join`);
      answer = saved.answer;
    }
    // It holds the node's secret: readable by its owner only, whatever the umask.
    writeFileSync(this.savedFile, JSON.stringify({ token, managerAddr, answer } satisfies Saved));
    chmodSync(this.savedFile, 0o600);
    this.nodeId = answer.nodeId;
    this.busTls = {
      ca: readFileSync(paths.ca, "utf8"),
      cert: readFileSync(paths.cert, "utf8"),
      key: readFileSync(paths.key, "utf8"),
      checkServerIdentity: managerIdentity,
    };
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
      bus: {
        user: answer.busUser,
        pass: "",
        tls: this.busTls,
      },
      heartbeatMs: answer.heartbeatMs,
      natsUrl: answer.appNatsUrls[0] ?? "",
      drivers: await nodeDrivers(log, this.opts.advertiseAddr),
      dns: new NodeTaskDns(log.child("dns")),
      cpus: this.opts.cpus,
      memoryBytes: this.opts.memoryBytes,
      ...fencingOf(this.opts.fenceMarginMs),
      onEndpoints: (eps) => this.edge.endpoints(eps),
      onRoutes: (table) => this.edge.routes(table),
      tlsInfo: () => this.tlsInfo(),
      onTrustRoots: (roots) => {
        // A root CA rotation: a certificate from another root, or other roots trusted, is
        // renewed now (once at a time; a failure retries on the renewal timer).
        const mine = this.tlsInfo();
        if (mine.certIssuer === roots[0] && mine.trustRoots.join() === roots.join()) return;
        if (this.renewing || this.stopping) return;
        clearTimeout(this.renewTimer);
        this.opts.log.info("the swarm's root CA changed: renewing the node certificate");
        this.scheduleRenewal(managerAddr, 0, true);
      },
      onPromoted: () => {
        if (this.promoting || this.stopping) return;
        this.promoting = true;
        log.info(`this worker (${answer.nodeId}) was promoted: becoming a manager`);
        void this.becomeManager(managerAddr);
      },
      requests: () => this.edge.takeRequestCounts(),
      traffic: () => this.edge.traffic(),
      log,
    });
    this.metrics = await startMetricsServer({
      addr: this.opts.metricsAddr ?? "",
      metrics: this.runtime.metrics,
      log: log.child("metrics"),
    });
    this.runtime.metricsPort = this.metrics.port;
    await this.runtime.start();
    this.scheduleRenewal(managerAddr);
    await this.listenApi();
    writeFileSync(join(dataDir, "daemon.pid"), String(process.pid));
    log.info(
      `shoal daemon ${SHOAL_VERSION} ready: worker node ${answer.nodeId} joined ${managerAddr}`,
    );
  }

  /**
   * Joins (again) with `token`; on a rejoin after a root CA rotation the saved token names the
   * old root, so a manager whose chain does not end at it is tried again with the same secret and
   * each root the node trusts now (refused before the secret is sent, as any CA mismatch).
   * Returns the token that worked, saved for the next start.
   */
  private async rejoin(managerAddr: string, token: string, saved: Saved | null) {
    const req = {
      hostname: hostname(),
      addr: this.opts.advertiseAddr,
      ...(saved ? { nodeId: saved.answer.nodeId } : {}),
      ...(saved?.answer.nodeSecret ? { nodeSecret: saved.answer.nodeSecret } : {}),
    };
    const t = parseToken(token)!;
    const caFile = certPaths(this.opts.dataDir).ca;
    const trusted = saved && existsSync(caFile) ? splitPem(readFileSync(caFile, "utf8")) : [];
    const candidates = [
      token,
      ...trusted
        .map(caDigest)
        .filter((d) => d !== t.digest)
        .map((d) => makeToken(d, t.secret)),
    ];
    let mismatch: unknown;
    for (const tok of candidates) {
      try {
        // While the managers elect a leader (this node was the leader and was just demoted,
        // or it restarts as one dies), ask again: the saved join may not be usable any more.
        const { answer } = await joinFollowingLeader(
          managerAddr,
          (to) => joinManager(to, { ...req, token: tok }),
          { retryMs: REJOIN_RETRY_MS, intervalMs: 500 },
        );
        return { token: tok, ...answer };
      } catch (err) {
        if (!(err instanceof CaMismatchError)) throw err;
        mismatch = err;
      }
    }
    throw mismatch;
  }

  /** Renews the node's certificate at 80% of its lifetime, through the join port (mutual TLS
   * with the current one); a failure is retried soon. New bus connections use the new files. */
  private scheduleRenewal(managerAddr: string, retryMs = 0, now = false): void {
    const p = certPaths(this.opts.dataDir);
    const cert = readFileSync(p.cert, "utf8");
    const wait = now ? 0 : Math.max(retryMs, renewAt(cert) - Date.now());
    this.renewTimer = setTimeout(
      () => {
        void (async () => {
          this.renewing = true;
          try {
            const { keyPem, csrPem } = await newKeyAndCsr();
            const r = await requestRenew(managerAddr, csrPem, {
              caPem: readFileSync(p.ca, "utf8"),
              certPem: readFileSync(p.cert, "utf8"),
              keyPem: readFileSync(p.key, "utf8"),
            });
            await writeNodeCerts(this.opts.dataDir, { caPem: r.caCert, certPem: r.cert, keyPem });
            // The bus client's next reconnect uses the new pair (both fields in one step).
            Object.assign(this.busTls, { ca: r.caCert, cert: r.cert, key: keyPem });
            this.opts.log.info(
              `node certificate renewed (valid until ${new X509Certificate(r.cert).validTo})`,
            );
            if (!this.stopping) this.scheduleRenewal(managerAddr);
          } catch (err) {
            this.opts.log.warn(`node certificate renewal failed: ${(err as Error).message}`);
            if (!this.stopping) this.scheduleRenewal(managerAddr, RENEW_RETRY_MS);
          } finally {
            this.renewing = false;
          }
        })();
      },
      Math.min(wait, 2 ** 31 - 1),
    );
    this.renewTimer.unref();
  }

  /**
   * Promoted: asks the manager for a manager's certificate (the manager moves the state to etcd
   * first when it is alone on its embedded store, and adds an etcd member for this node on
   * managed etcd), writes what a manager daemon starts from (its node id, certificate, the store
   * in daemon.json, the etcd members to join) in place of join.json, and stops without stopping
   * its tasks, to come back as a manager in this process (run.ts). Asks again until it works.
   */
  private async becomeManager(managerAddr: string): Promise<void> {
    const { dataDir, log } = this.opts;
    const p = certPaths(dataDir);
    let answer: JoinResponse;
    let keyPem: string;
    try {
      const k = await newKeyAndCsr();
      keyPem = k.keyPem;
      answer = await requestPromote(
        managerAddr,
        { csr: k.csrPem, etcd: findEtcd() !== null },
        {
          caPem: readFileSync(p.ca, "utf8"),
          certPem: readFileSync(p.cert, "utf8"),
          keyPem: readFileSync(p.key, "utf8"),
        },
      );
      if (answer.role !== "manager" || answer.nodeId !== this.nodeId) {
        throw new Error(`the manager answered for node ${answer.nodeId} as a ${answer.role}`);
      }
    } catch (err) {
      if (this.stopping) return;
      if (err instanceof JoinRefusedError && err.status === 409) {
        // Demoted again before it took over: a worker it stays (asking again if promoted).
        log.info(`not a manager any more: ${err.message}`);
        this.promoting = false;
        return;
      }
      const busy = !(err instanceof JoinRefusedError) || err.status === 503;
      if (!busy) log.warn(`becoming a manager failed: ${(err as Error).message}; trying again`);
      this.promoteTimer = setTimeout(
        () => void this.becomeManager(managerAddr),
        busy ? PROMOTE_BUSY_RETRY_MS : PROMOTE_RETRY_MS,
      );
      return;
    }
    if (this.stopping) return;
    // (Managed etcd members take the node's own certificate: only an external etcd needs files.)
    const missing = answer.etcd ? null : missingStoreTls(answer.store ?? [], dataDir);
    if (missing !== null) {
      // It would come back as a manager that cannot open the store: it stays a worker.
      log.warn(`cannot become a manager: ${missing}; trying again`);
      this.promoteTimer = setTimeout(() => void this.becomeManager(managerAddr), PROMOTE_RETRY_MS);
      return;
    }
    await writeNodeCerts(dataDir, { caPem: answer.caCert, certPem: answer.cert, keyPem });
    writeFileSync(join(dataDir, "node-id"), answer.nodeId);
    if (answer.etcd) {
      writeFileSync(join(dataDir, ETCD_JOIN_FILE), JSON.stringify(answer.etcd), { mode: 0o600 });
      patchSettings(dataDir, { managedEtcd: true });
      this.becameManager = { managedEtcd: true };
    } else {
      patchSettings(dataDir, { managedEtcd: false, store: answer.store ?? [] });
      this.becameManager = { store: answer.store ?? [], managedEtcd: false };
    }
    // From here a restart comes back as a manager.
    rmSync(this.savedFile, { force: true });
    log.info(`this node is a manager now (store ${answer.etcd ? "managed etcd" : "etcd"})`);
    await this.stop(false);
  }

  /** Who issued the bus certificate and which roots the node trusts (recomputed on renewal). */
  private tlsInfo(): NodeTlsInfo {
    const { cert, ca } = this.busTls;
    if (this.tlsMemo?.cert !== cert + ca) {
      this.tlsMemo = { cert: cert + ca, info: tlsInfoOf(cert, ca) };
    }
    return this.tlsMemo.info;
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
    clearTimeout(this.renewTimer);
    clearTimeout(this.promoteTimer);
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

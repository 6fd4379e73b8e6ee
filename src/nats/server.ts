// The message server: accepts client connections, owns the subject index, routes each
// published message to the matching subscriptions (one member per queue group), and runs the
// server-wide timers (pings, write deadlines), lame duck mode and shutdown.

import { createServer, type Server as NetServer, type Socket } from "node:net";
import { idBytes, pick } from "../lib/lazy.js";
import { writeFileSync, rmSync } from "node:fs";
import { Client, WRITE_WINDOW, type ClientSocket } from "./client.js";
import type { Sublist } from "./sublist.js";
import { buildAccounts, type Account, type AccountRouter } from "./accounts.js";
import { userInfoResponse, type SysReqServer } from "./sysreq.js";
import { subjectMatchesPattern } from "./subject.js";
import type { Subscription } from "./subscription.js";
import {
  DEFAULT_SYSTEM_ACCOUNT,
  GLOBAL_ACCOUNT,
  type AccountConfig,
  type ImportConfig,
  type NkeyUser,
  type Options,
  type User,
} from "./options.js";
import { localTimeIsUtc, type Logger } from "./log.js";
import { authRequired, hasPlaintextPasswords, nonceRequired } from "./auth.js";
import { CloseReason, ErrText, type CloseReasonText } from "./errors.js";
import { Monitor } from "./monitor.js";
import { bytesEqual } from "./bytes.js";
import { Cluster, clientUrlsFor } from "./cluster.js";
import type { Route } from "./route.js";
import { WebsocketListener } from "./websocket.js";
import { readBufferSize } from "./readinto.js";
import { readInto } from "../lib/readinto.js";
import {
  acceptTls,
  certIdentities,
  loadTls,
  TLS_HANDSHAKE_RECORD,
  type LoadedTls,
  type TlsConfig,
} from "./tls.js";
import { listenerUrls, removePortsFile, writePortsFile, type Ports } from "./ports.js";
import { UrlResolver } from "./urlresolver.js";
import { answerClaims, claimsRequest } from "./claims.js";
import { InternalClient, type InternalHost } from "./internal.js";
import { ClaimsSync } from "./claimsync.js";

/** The nats-server protocol level shoal speaks; clients use it to enable features. */
export const NATS_VERSION = "2.9.10";
import { SHOAL_VERSION } from "../lib/version.js";
import { goTimeString } from "../lib/gotime.js";
export { SHOAL_VERSION };

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** A server id shaped like nats-server's (an nkey public key: 'N' and 55 base32 characters). */
export function newServerId(): string {
  const bytes = idBytes(55);
  let id = "N";
  for (const b of bytes) id += BASE32[b & 31];
  return id;
}

/** The longest time between two looks for consumers that stopped reading. */
const WRITE_CHECK_MS = 250;

/** How many closed connections /connz?state=closed remembers (nats-server keeps 10,000). */
const CLOSED_RING = 10_000;

export interface ClosedClient {
  client: Client;
  reason: CloseReasonText;
}

export class Server implements AccountRouter, SysReqServer, InternalHost {
  readonly id = newServerId();
  readonly name: string;
  /** The accounts by name: $G, the system account, and those of `accounts {}` (accounts.ts). */
  accounts: Map<string, Account>;
  /** $G, the account of users outside `accounts {}` (and of every client without users). */
  readonly globalAccount: Account;
  /** $G's subject index: the one routes and monitoring read. */
  readonly sublist: Sublist<Subscription>;
  readonly clients = new Map<number, Client>();
  readonly closed: ClosedClient[] = [];
  /** Clients must CONNECT with credentials (recomputed when a reload changes the users). */
  authRequired: boolean;
  /** Clients are sent a nonce to sign (some users are known by NKey). */
  nonceRequired: boolean;
  readonly start = new Date();
  readonly monitor: Monitor | null;
  readonly cluster: Cluster | null;
  readonly websocket: WebsocketListener | null;
  /** The client TLS (the top-level tls block) once its files are loaded; replaced by a reload. */
  tls: LoadedTls | null;
  /** A client completed a TLS handshake with `tls` since start or the last reload (reload.ts). */
  clientTlsUsed = false;
  configLoadTime = new Date();
  inMsgs = 0;
  inBytes = 0;
  outMsgs = 0;
  outBytes = 0;
  slowConsumers = 0;
  totalConnections = 0;
  lameDuck = false;
  private nextCid = 1;
  private listener: NetServer | null = null;
  /** The mapped listener (listenMapped): its TLS, its server, and the sockets it accepted. */
  private mapped: { tls: LoadedTls; listener: NetServer; sockets: WeakSet<object> } | null = null;
  private pending: Array<Client | Route> = [];
  private routeEpoch = 0;
  private readonly routeTargets: (Route | null)[] = [];
  private flushScheduled = false;
  /** What a client connection hands its socket at most before the kernel takes it. */
  readonly writeWindow: number;
  /** The client whose read is being handled: the one a consumer that falls behind pauses. */
  producer: Client | null = null;
  private timers: NodeJS.Timeout[] = [];
  private shuttingDown = false;
  private lastSubjectBuf = Buffer.alloc(256);
  /** What plain TCP clients' reads land in, one after another (readinto.ts); made on first use. */
  private readBuf: Buffer | null = null;
  private lastSubjectLen = -1;
  private lastSubject = "";
  private readyResolve!: () => void;
  /** Resolves once shutdown has completed. */
  readonly done: Promise<void>;
  private doneResolve!: () => void;
  /** The client port actually bound (differs from opts.port when it was -1 or 0). */
  port = 0;
  /** The ports file written at start (ports_file_dir), removed at shutdown. */
  private portsFile = "";
  /** `resolver: URL(...)`: fetches the accounts not known yet (urlresolver.ts). */
  readonly urlResolver = new UrlResolver(this);
  /** The server's own connection in the system account (internal.ts). */
  readonly internal = new InternalClient(this);
  /** A full resolver's sync of its directory with the cluster's (claimsync.ts). */
  /** A full resolver's directory sync (its timer follows a reload's `interval`). */
  claimsSync: ClaimsSync | null = null;

  constructor(
    public opts: Readonly<Options>,
    readonly log: Logger,
  ) {
    this.name = opts.serverName || this.id;
    this.accounts = buildAccounts(opts, this);
    this.globalAccount = this.accounts.get(GLOBAL_ACCOUNT)!;
    this.sublist = this.globalAccount.sublist;
    this.authRequired = authRequired(opts);
    this.nonceRequired = nonceRequired(opts);
    this.tls = opts.tls ? loadTls(opts.tls) : null;
    this.writeWindow = Math.max(4096, Math.min(WRITE_WINDOW, Math.floor(opts.maxPending / 8)));
    this.monitor = opts.httpPort !== 0 || opts.httpsPort !== 0 ? new Monitor(this) : null;
    this.cluster = opts.cluster ? new Cluster(this, opts.cluster, log) : null;
    this.websocket = opts.websocket ? new WebsocketListener(this, opts.websocket) : null;
    // The imports placed before the cluster existed: their interest goes to routes now.
    for (const acc of this.accounts.values()) {
      for (const i of acc.importSubs) if (i.routed) this.importInterest(i.acc, i.sub.subject, 1);
    }
    this.done = new Promise((r) => (this.doneResolve = r));
  }

  /** Binds the listeners and logs like nats-server; resolves when the server is ready. */
  async startServer(): Promise<void> {
    const log = this.log;
    log.info(`Starting nats-server`);
    log.info(`  Version:  ${NATS_VERSION} (shoal ${SHOAL_VERSION})`);
    log.info(`  Git:      [not set]`);
    if (this.cluster) log.info(`  Cluster:  ${this.cluster.name}`);
    log.info(`  Name:     ${this.name}`);
    log.info(`  ID:       ${this.id}`);
    if (hasPlaintextPasswords(this.opts)) {
      log.warn("Plaintext passwords detected, use nkeys or bcrypt");
    }
    if (this.opts.configFile) log.info(`Using configuration file: ${this.opts.configFile}`);
    if (this.opts.operator) {
      log.info("Trusted Operators");
      // As nats-server 2.9 prints them; times in local time, as Go's time.Unix gives them.
      const zone = localTimeIsUtc() ? "utc" : "local";
      for (const o of this.opts.operator.operators) {
        const { aud, iat, exp } = o.claims;
        log.info(`  System  : ${JSON.stringify(typeof aud === "string" ? aud : "")}`);
        log.info(`  Operator: ${JSON.stringify(o.name)}`);
        log.info(`  Issued  : ${goTimeString(iat * 1000, zone)}`);
        log.info(`  Expires : ${exp ? goTimeString(exp * 1000, zone) : "Never"}`);
      }
      // Operator mode names accounts by public key: "$SYS" here means none was given.
      if (this.opts.systemAccount === DEFAULT_SYSTEM_ACCOUNT) {
        log.warn("Trusted Operators should utilize a System Account");
      }
      for (const p of this.opts.operator.problems) log.warn(p);
      for (const e of this.opts.operator.activationExpiries) this.expireActivation(e);
      await this.urlResolver.start(this.opts.systemAccount);
      if (this.opts.operator.resolver === "FULL") {
        this.claimsSync = new ClaimsSync(this, this.internal);
        this.claimsSync.start(this.opts.operator.resolverIntervalMs);
      }
    }
    if (this.opts.pidFile) writeFileSync(this.opts.pidFile, String(process.pid));
    if (this.monitor) await this.monitor.listen();
    const ready = new Promise<void>((r) => (this.readyResolve = r));
    if (this.websocket) await this.websocket.listen();
    const listener = createServer({ noDelay: true }, (s) => this.accept(s));
    this.listener = listener;
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      const port = this.opts.port < 0 ? 0 : this.opts.port;
      listener.listen({ host: this.opts.host, port, exclusive: true }, () => {
        listener.off("error", reject);
        resolve();
      });
    });
    const addr = listener.address();
    this.port = typeof addr === "object" && addr !== null ? addr.port : this.opts.port;
    log.info(`Listening for client connections on ${hostPort(this.opts.host, this.port)}`);
    if (this.tls) log.info("TLS required for client connections");
    if (this.tls && this.opts.allowNonTls) {
      log.warn('Clients that are not using "TLS Required" may connect');
    }
    const host = this.opts.host;
    if ((host === "0.0.0.0" || host === "::") && this.ownClientUrls().length === 0) {
      // nats-server's words when the machine has no address to advertise (nothing is).
      log.error(`Address "${host}" can not be resolved properly`);
    }
    if (this.authRequired) {
      log.debug(
        this.opts.users.length + this.opts.nkeys.length > 0
          ? "Using multi-user authentication"
          : "Using authentication",
      );
    }
    this.startTimers();
    log.info("Server is ready");
    if (this.cluster) await this.cluster.start();
    if (this.opts.portsFileDir) {
      this.portsFile = writePortsFile(this.opts.portsFileDir, this.portsInfo());
    }
    this.readyResolve();
    await ready;
  }

  private startTimers(): void {
    this.startPingTimer();
    const deadline = setInterval(
      () => this.checkWriteDeadlines(),
      Math.max(50, Math.min(WRITE_CHECK_MS, this.opts.writeDeadlineMs / 2)),
    );
    deadline.unref();
    this.timers.push(deadline);
  }

  /** The clients' ping timer, every ping_interval (started again when a reload changes it). */
  private pingTimer: NodeJS.Timeout | null = null;

  startPingTimer(): void {
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.pingClients(), this.opts.pingIntervalMs);
    this.pingTimer.unref();
  }

  private accept(socket: Socket, mapped = false): void {
    if (this.shuttingDown || this.lameDuck) {
      socket.destroy();
      return;
    }
    if (mapped) this.mapped!.sockets.add(socket);
    const tls = mapped ? this.mapped!.tls : this.tls;
    const c = new Client(this, this.newCid(), socket);
    if (tls === null) {
      this.readBuf ??= Buffer.allocUnsafe(readBufferSize(this.opts.maxPending));
      const fast = readInto(socket, this.readBuf, (chunk) => this.onClientData(c, chunk));
      if (fast !== null) c.socket = socket = fast;
      else socket.on("data", (chunk: Buffer) => this.onClientData(c, chunk));
    }
    socket.on("drain", () => c.onDrain());
    socket.on("error", (err) => {
      this.log.debug(`${c.tag} - Client connection error: ${err.message}`);
      c.close(CloseReason.ReadError);
    });
    socket.on("close", () => c.close(CloseReason.ClientClosed));
    if (!this.register(c, tls === null)) {
      socket.resume(); // read (and drop) until the peer goes, TLS or not
      return;
    }
    if (tls === null) return;
    if (tls.cfg.handshakeFirst) {
      socket.pause();
      this.upgradeClient(c, socket);
      return;
    }
    c.sendProto(this.infoLine(c));
    c.flush();
    // The client goes on with a ClientHello, or (allow_non_tls) with plain CONNECT.
    socket.once("data", (head: Buffer) => {
      socket.pause();
      if (head[0] === TLS_HANDSHAKE_RECORD || !this.opts.allowNonTls || mapped) {
        this.upgradeClient(c, socket, head);
        return;
      }
      this.onClientData(c, head);
      socket.on("data", (chunk: Buffer) => this.onClientData(c, chunk));
      socket.resume();
    });
  }

  newCid(): number {
    return this.nextCid++;
  }

  /** No new connections are taken (lame duck mode or shutdown). */
  isClosing(): boolean {
    return this.shuttingDown || this.lameDuck;
  }

  /**
   * A new client connection (TCP or WebSocket) whose events are wired: admit it and, with
   * `sendInfo`, send INFO (a TLS client gets it from accept, before or after its handshake).
   * False when it was refused (too many connections).
   */
  register(c: Client, sendInfo = true): boolean {
    this.totalConnections++;
    if (this.clients.size >= this.opts.maxConnections) {
      this.log.error(`${c.tag} - Maximum connections exceeded (max=${this.opts.maxConnections})`);
      c.sendProto(this.infoLine(c));
      c.sendErr(ErrText.MaxConnections);
      c.close(CloseReason.MaxConnections);
      return false;
    }
    this.clients.set(c.cid, c);
    this.log.debug(`${c.tag} - Client connection created`);
    if (sendInfo) {
      c.sendProto(this.infoLine(c));
      c.flush();
    }
    return true;
  }

  private onClientData(c: Client, chunk: Buffer): void {
    this.producer = c;
    c.onData(chunk);
    this.flushPending();
    this.producer = null;
  }

  /** The server side of a client's TLS handshake; the client then reads and writes through it. */
  private upgradeClient(c: Client, raw: Socket, head?: Buffer): void {
    const mapped = this.mapped?.sockets.has(raw) === true;
    const tls = mapped ? this.mapped!.tls : this.tls!;
    const first = tls.cfg.handshakeFirst;
    c.tlsPending = true;
    acceptTls(raw, tls, tls.cfg.verify, head).then(
      (secure) => {
        if (c.closed) {
          secure.destroy();
          return;
        }
        if (mapped) this.mapped?.sockets.add(secure);
        else this.clientTlsUsed = true;
        c.socket = secure;
        c.tlsSecure = true;
        c.tlsPending = false;
        if (tls.cfg.verifyAndMap) {
          const peer = secure.getPeerCertificate();
          if (peer?.raw) c.certIdentities = certIdentities(peer.raw);
        }
        this.log.debug(`${c.tag} - TLS handshake complete`);
        secure.on("data", (chunk: Buffer) => this.onClientData(c, chunk));
        secure.on("drain", () => c.onDrain());
        secure.on("error", (err) => {
          this.log.debug(`${c.tag} - Client connection error: ${err.message}`);
          c.close(CloseReason.ReadError);
        });
        secure.on("close", () => c.close(CloseReason.ClientClosed));
        if (first) c.sendProto(this.infoLine(c));
        c.flush();
      },
      (err: Error) => {
        this.log.error(`${c.tag} - TLS handshake error: ${err.message}`);
        c.close(CloseReason.TLSHandshakeError);
      },
    );
  }

  /** The INFO line sent to a client when it connects (and later when the cluster changes). */
  infoLine(c: Client): string {
    const info: Record<string, unknown> = {
      server_id: this.id,
      server_name: this.name,
      version: NATS_VERSION,
      proto: 1,
      host: this.opts.host,
      port: this.port,
      headers: true,
      max_payload: this.opts.maxPayload,
      client_id: c.cid,
      client_ip: c.host,
    };
    if (c.nonce !== "") info["nonce"] = c.nonce;
    // With no_auth_user a client may leave credentials out: nats-server does not ask for them.
    if (this.authRequired && this.opts.noAuthUser === "") info["auth_required"] = true;
    if (this.mapped?.sockets.has(c.socket)) {
      info["tls_required"] = true;
      info["tls_verify"] = true;
      // WebSocket clients never take the TCP TLS path (the websocket block's TLS is refused).
    } else if (this.tls && c.socket.websocket !== true) {
      // As nats-server: allow_non_tls offers TLS (tls_available) instead of requiring it.
      if (this.opts.allowNonTls) info["tls_available"] = true;
      else info["tls_required"] = true;
      if (this.tls.cfg.verify) info["tls_verify"] = true;
    }
    if (this.cluster) {
      info["cluster"] = this.cluster.name;
      if (!this.cluster.opts.noAdvertise && this.cluster.learnedClientUrls) {
        info["connect_urls"] = this.cluster.connectUrls();
      }
    }
    if (this.mapped?.sockets.has(c.socket)) {
      // The nodes' listener has URLs of its own (the other managers' nodes' ports): the
      // cluster's client URLs would send a node to ports that do not map its certificate.
      if (this.mappedConnectUrls.length > 0) info["connect_urls"] = this.mappedConnectUrls;
      else delete info["connect_urls"];
    }
    if (this.lameDuck) info["ldm"] = true;
    // The cluster's connect_urls are nats:// addresses, of no use to a WebSocket client.
    if (c.socket.websocket === true) delete info["connect_urls"];
    return `INFO ${JSON.stringify(info)} \r\n`;
  }

  /** Decodes a subject from a read buffer, reusing the previous string when the bytes repeat. */
  subjectString(buf: Buffer, start: number, end: number): string {
    const n = end - start;
    if (n === this.lastSubjectLen && bytesEqual(buf, start, end, this.lastSubjectBuf)) {
      return this.lastSubject;
    }
    const s = buf.toString("latin1", start, end);
    if (n <= this.lastSubjectBuf.length) {
      buf.copy(this.lastSubjectBuf, 0, start, end);
      this.lastSubjectLen = n;
      this.lastSubject = s;
    }
    return s;
  }

  /** The URLs of every listener, as nats-server's PortsInfo (the ports file's content). */
  portsInfo(): Ports {
    const o = this.opts;
    // The schemes as nats-server's PortsInfo picks them: tls/https when the listener is secure.
    const ports: Ports = { nats: listenerUrls(this.tls ? "tls" : "nats", o.host, this.port) };
    if (this.monitor) {
      const scheme = this.monitor.secure ? "https" : "http";
      ports.monitoring = listenerUrls(scheme, o.httpHost, this.monitor.port);
    }
    if (this.cluster) {
      const scheme = this.cluster.tls ? "tls" : "nats";
      ports.cluster = listenerUrls(scheme, this.cluster.opts.host, this.cluster.port);
    }
    // The listener's own addresses (every interface's for 0.0.0.0), not websocketUrls(), which
    // are the advertised ones: nats-server writes the bound listener here too. Only ws:// for
    // now, since the websocket block's tls is refused by validation.
    if (this.websocket) {
      ports.websocket = listenerUrls("ws", this.websocket.opts.host, this.websocket.port);
    }
    return ports;
  }

  /** Answers $SYS.REQ.USER.INFO (when no subscriber of the account took the request). */
  answerUserInfo(c: Client, reply: string): void {
    const body = userInfoResponse(this, c);
    this.deliverLocal(c.acc, reply, "", -1, body, 0, body.length);
  }

  get version(): string {
    return NATS_VERSION;
  }

  get host(): string {
    return this.opts.host;
  }

  clusterName(): string {
    return this.cluster?.name ?? "";
  }

  clusterPort(): number {
    return this.cluster?.port ?? 0;
  }

  numRoutes(): number {
    return this.cluster?.numRoutes() ?? 0;
  }

  routeInfos(withSubs: boolean): Record<string, unknown>[] {
    return this.cluster?.routeInfos(withSubs) ?? [];
  }

  /**
   * The authorization a client connection is checked against: the server's, or for a WebSocket
   * client the websocket block's own when it has one (nats-server's auth override).
   */
  authFor(socket: ClientSocket): { opts: Readonly<Options>; required: boolean; timeoutMs: number } {
    const mapped = this.mapped;
    if (mapped?.sockets.has(socket)) {
      const opts = { ...this.opts, tls: mapped.tls.cfg };
      return { opts, required: true, timeoutMs: this.opts.authTimeoutMs };
    }
    if (socket.websocket === true) {
      const ws = this.websocket;
      const base = ws?.authOverride ? ws.authOptions(this.opts) : this.opts;
      // The top-level tls block's verify_and_map is not a WebSocket client's (nats-server uses
      // the websocket block's own, and shoal refuses websocket TLS for now): no certificate.
      const opts = base.tls?.verifyAndMap ? { ...base, tls: null } : base;
      if (ws?.authOverride) return { opts, required: true, timeoutMs: ws.authTimeoutMs(this.opts) };
      return { opts, required: this.authRequired, timeoutMs: this.opts.authTimeoutMs };
    }
    return { opts: this.opts, required: this.authRequired, timeoutMs: this.opts.authTimeoutMs };
  }

  /** ws:// URLs of the WebSocket listener (empty without a websocket block). */
  websocketUrls(): string[] {
    return this.websocket?.urls() ?? [];
  }

  /** The addresses clients can reach this server on (advertised to the cluster). */
  ownClientUrls(): string[] {
    return clientUrlsFor(this.opts.host, this.port, this.opts.clientAdvertise);
  }

  /**
   * A second client listener (shoal's control bus for nodes): every client there must complete
   * a TLS handshake with a certificate from `cfg`'s CA and is the user its certificate maps to
   * (verify_and_map against the server's users), whatever the main listener allows. Returns
   * the port bound. Not part of nats-server, whose verify_and_map is all or nothing on a port.
   */
  async listenMapped(host: string, port: number, cfg: TlsConfig): Promise<number> {
    const tls = loadTls({ ...cfg, verify: true, verifyAndMap: true });
    const listener = createServer({ noDelay: true }, (s) => this.accept(s, true));
    this.mapped = { tls, listener, sockets: new WeakSet() };
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen({ host, port: port < 0 ? 0 : port, exclusive: true }, () => {
        listener.off("error", reject);
        resolve();
      });
    });
    const addr = listener.address();
    const bound = typeof addr === "object" && addr !== null ? addr.port : port;
    this.log.info(`Listening for mapped TLS client connections on ${hostPort(host, bound)}`);
    return bound;
  }

  /** Replaces the mapped listener's certificate and CAs (new connections use them). */
  reloadMappedTls(cfg: TlsConfig): void {
    if (this.mapped) this.mapped.tls = loadTls({ ...cfg, verify: true, verifyAndMap: true });
  }

  /** Replaces the routes' certificate and CAs (new routes use them; see Cluster.reloadTls). */
  reloadRouteTls(cfg: TlsConfig): void {
    this.cluster?.reloadTls(cfg);
  }

  /** connect_urls (`host:port`) for the clients of the nodes' listener (listenMapped), set by
   * its owner. */
  private mappedConnectUrls: string[] = [];

  /**
   * Sets the URLs the nodes' listener's clients learn (every manager's nodes' port), and tells
   * its connected clients at once with an INFO, as a cluster change tells ordinary clients: a
   * node that joined before a manager learns that manager without joining again.
   */
  setMappedConnectUrls(urls: readonly string[]): void {
    if (JSON.stringify(urls) === JSON.stringify(this.mappedConnectUrls)) return;
    this.mappedConnectUrls = [...urls];
    for (const c of this.clients.values()) {
      if (this.mapped?.sockets.has(c.socket) && c.opts.protocol >= 1 && c.connectReceived)
        c.sendProto(this.infoLine(c));
    }
  }

  /** The cluster's set of client URLs changed: tell clients that understand async INFO. */
  clientUrlsChanged(): void {
    for (const c of this.clients.values()) {
      if (c.opts.protocol >= 1 && c.connectReceived) c.sendProto(this.infoLine(c));
    }
  }

  routesChanged(): void {
    this.log.debug(`Cluster has ${this.numRoutes()} route(s)`);
  }

  subjectMatches(subject: string, pattern: string): boolean {
    return subjectMatchesPattern(subject, pattern);
  }

  /** A client's subscription, in its account's index (and the account's interest on routes). */
  addSubscription(sub: Subscription): void {
    const acc = (sub.conn as Client).acc;
    acc.sublist.insert(sub);
    this.cluster?.localInterest(sub, 1, acc.name);
  }

  removeSubscription(sub: Subscription): void {
    const acc = (sub.conn as Client).acc;
    if (acc.sublist.remove(sub)) this.cluster?.localInterest(sub, -1, acc.name);
  }

  /** An import's interest in another account, told to routes (see accounts.ts). */
  importInterest(acc: Account, subject: string, delta: 1 | -1): void {
    this.cluster?.localInterest({ subject, queue: null }, delta, acc.name);
  }

  /**
   * A service request imported into `acc`, routed there as if published in it by `from` (local
   * subscribers and routes); null when the message did not come from a local client.
   */
  routeImported(
    acc: Account,
    subject: string,
    reply: string,
    hdr: number,
    payload: Buffer,
    start: number,
    end: number,
  ): number {
    const from = this.producer;
    if (from === null) return 0;
    return this.route(from, subject, reply, hdr, payload, null, start, end, acc);
  }

  /** An account fetched by the URL resolver (or fetched again): added, or its config replaced. */
  addAccount(
    cfg: AccountConfig,
    expiries: { account: string; import: ImportConfig; expires: number }[],
  ): void {
    const accounts = [...this.opts.accounts.filter((a) => a.name !== cfg.name), cfg];
    this.opts = Object.freeze({ ...this.opts, accounts });
    this.accounts = buildAccounts(this.opts, this, this.accounts);
    for (const e of expiries) this.expireActivation(e);
    // Its users are checked again against the new JWT (revocations, signing keys, expiry).
    for (const c of [...this.clients.values()]) if (c.acc.name === cfg.name) c.reauthorize();
  }

  /**
   * A message a system-account user published to one of the $SYS claims subjects its resolver
   * answers (claims.ts: CLAIMS.UPDATE, LOOKUP, LIST, DELETE): handled and answered on `reply`.
   * False when the message is not such a request. (CLAIMS.PACK is a subscription of the
   * server's own connection, claimsync.ts, since other servers ask it too.)
   */
  claimsUpdate(c: Client, subject: string, reply: string, body: Buffer): boolean {
    const op = this.opts.operator;
    if (!op || c.acc.name !== this.opts.systemAccount) return false;
    const req = claimsRequest(subject, op.resolver);
    if (req === null) return false;
    const out = answerClaims(this, req, body.toString());
    if (reply !== "" && out !== null) {
      this.deliverLocal(c.acc, reply, "", -1, out, 0, out.length);
    }
    return true;
  }

  /** Accounts users have connected to (nats-server keeps such an account loaded). */
  readonly loadedAccounts = new Set<string>();

  /**
   * Does the server hold account `pub`, as nats-server's accounts map would: the system account,
   * one a user connected to, or one such an account imports from.
   */
  holdsAccount(pub: string): boolean {
    if (!this.accounts.has(pub)) return false;
    if (pub === this.opts.systemAccount || this.loadedAccounts.has(pub)) return true;
    return this.opts.accounts.some(
      (a) => this.loadedAccounts.has(a.name) && a.imports.some((i) => i.account === pub),
    );
  }

  /**
   * An account deleted from the resolver (claims.ts): its connections get `Account
   * Authentication Expired` and it is gone, so its users are refused.
   */
  removeAccount(pub: string): void {
    const op = this.opts.operator;
    if (!op || !this.accounts.has(pub)) return;
    this.log.debug(`Disable account ${pub} due to remove`);
    for (const c of [...this.clients.values()]) {
      if (c.acc.name !== pub) continue;
      this.log.debug(`${c.tag} - ${ErrText.AccountAuthExpired}`);
      c.sendErr(ErrText.AccountAuthExpired);
      c.close(CloseReason.AuthExpired);
    }
    op.accounts.delete(pub);
    this.loadedAccounts.delete(pub);
    const accounts = this.opts.accounts.filter((a) => a.name !== pub);
    this.opts = Object.freeze({ ...this.opts, accounts });
    this.accounts = buildAccounts(this.opts, this, this.accounts);
  }

  /** The system account (InternalHost). */
  systemAccount(): Account | undefined {
    return this.accounts.get(this.opts.systemAccount);
  }

  /** An internal subscription's interest, told to routes (InternalHost). */
  internalInterest(sub: Subscription, delta: 1 | -1, account: string): void {
    this.cluster?.localInterest(sub, delta, account);
  }

  /** An account by name (undefined or "": $G). */
  account(name: string | undefined): Account | undefined {
    return name === undefined || name === "" ? this.globalAccount : this.accounts.get(name);
  }

  /**
   * Delivers a message inside one account to local subscriptions only (one member per queue
   * group): what imports use (accounts.ts). Returns how many deliveries were made.
   */
  deliverLocal(
    acc: Account,
    subject: string,
    reply: string,
    hdr: number,
    payload: Buffer,
    start: number,
    end: number,
  ): number {
    const r = acc.sublist.match(subject);
    let n = 0;
    for (const sub of r.psubs) {
      if (sub.conn.kind === "Route") continue;
      sub.conn.deliver(sub, subject, reply, hdr, payload, start, end);
      n++;
    }
    for (const group of r.qsubs) {
      const local = group.filter((s) => !s.closed && s.conn.kind !== "Route");
      if (local.length === 0) continue;
      const sub = local[local.length === 1 ? 0 : pick(local.length)]!;
      sub.conn.deliver(sub, subject, reply, hdr, payload, start, end);
      n++;
    }
    return n;
  }

  /**
   * Delivers a message to every matching local subscription and to one member of each matching
   * queue group (a local member when there is one), and forwards it once to each route with
   * interest, naming the queue groups that route should serve. A message that came from a route
   * goes to local clients only (the one-hop rule), and to queue groups only if the route named
   * them. Returns how many deliveries were made.
   */
  route(
    from: Client | Route | InternalClient,
    subject: string,
    reply: string,
    hdr: number,
    payload: Buffer,
    queues: readonly string[] | null = null,
    start = 0,
    end = payload.length,
    /** The account, when not the sender's own (a route's RMSG names it; null: $G). */
    account: Account | null = null,
  ): number {
    const fromRoute = from.kind === "Route";
    // The client's own index is a field of the client (one load on the hot path).
    const index =
      account !== null ? account.sublist : fromRoute ? this.sublist : (from as Client).sublist;
    const r = index.match(subject);
    const noEcho = !fromRoute && !from.opts.echo;
    const epoch = ++this.routeEpoch;
    // Routes to forward to, in routeTargets[0..nTargets): a count rather than `length = 0`,
    // which is a runtime call on every message.
    const targets = this.routeTargets;
    let nTargets = 0;
    let n = 0;
    const psubs = r.psubs;
    for (let i = 0; i < psubs.length; i++) {
      const sub = psubs[i]!;
      const conn = sub.conn;
      if (conn.kind === "Route") {
        if (fromRoute) continue;
        const route = conn as Route;
        if (route.markEpoch !== epoch) {
          route.markEpoch = epoch;
          if (route.scratchQueues.length !== 0) route.scratchQueues.length = 0;
          targets[nTargets++] = route;
        }
        continue;
      }
      if (noEcho && conn === from) continue;
      conn.deliver(sub, subject, reply, hdr, payload, start, end);
      n++;
    }
    const qsubs = r.qsubs;
    for (let i = 0; i < qsubs.length; i++) {
      const group = qsubs[i]!;
      const len = group.length;
      if (len === 0) continue;
      if (fromRoute && (queues === null || !queues.includes(group[0]!.queue!))) continue;
      // Start at a random member; prefer a local one, fall back to a route picked at random
      // in proportion to its weight (how many members that server has), as nats-server does.
      const startAt = len === 1 ? 0 : pick(len);
      let fallback: Route | null = null;
      let weights = 0;
      let done = false;
      for (let j = 0; j < len; j++) {
        const sub = group[(startAt + j) % len]!;
        if (sub.closed) continue;
        if (sub.conn.kind === "Route") {
          if (!fromRoute) {
            // One-pass weighted pick: the k-th route replaces the choice with probability w/Σw.
            weights += sub.weight;
            if (fallback === null || Math.random() * weights < sub.weight) {
              fallback = sub.conn as Route;
            }
          }
          continue;
        }
        if (noEcho && sub.conn === from) continue;
        sub.conn.deliver(sub, subject, reply, hdr, payload, start, end);
        n++;
        done = true;
        break;
      }
      if (!done && fallback !== null) {
        if (fallback.markEpoch !== epoch) {
          fallback.markEpoch = epoch;
          if (fallback.scratchQueues.length !== 0) fallback.scratchQueues.length = 0;
          targets[nTargets++] = fallback;
        }
        fallback.scratchQueues.push(group[0]!.queue!);
      }
    }
    const accName =
      nTargets === 0
        ? ""
        : account !== null
          ? account.name
          : fromRoute
            ? GLOBAL_ACCOUNT
            : (from as Client).acc.name;
    for (let i = 0; i < nTargets; i++) {
      const route = targets[i]!;
      targets[i] = null; // do not keep a closed route alive
      route.sendMsg(subject, reply, hdr, payload, route.scratchQueues, start, end, accName);
      n++;
    }
    return n;
  }

  /** Remembers a client with output to flush at the end of the current read. */
  queueFlush(c: Client | Route): void {
    if (c.flushQueued) return;
    c.flushQueued = true;
    this.pending.push(c);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushPending());
    }
  }

  flushPending(): void {
    this.flushScheduled = false;
    const list = this.pending;
    if (list.length === 0) return;
    this.pending = [];
    for (let i = 0; i < list.length; i++) list[i]!.flush();
  }

  /**
   * Replaces the users list (the authorization part of a configuration reload, applied to live
   * connections as nats-server applies it): a client whose credentials no longer pass is closed
   * with an Authorization Violation, the others get their new permissions at once.
   */
  reloadUsers(users: User[], nkeys: NkeyUser[] = this.opts.nkeys): void {
    this.opts = { ...this.opts, users, nkeys };
    this.authRequired = authRequired(this.opts);
    this.nonceRequired = nonceRequired(this.opts);
    for (const c of [...this.clients.values()]) c.reauthorize();
  }

  /** reloadUsers with a new `accounts {}` too: accounts that stay keep their subscriptions, a
   * client whose account is gone or changed is checked again like any other. */
  reloadAuth(users: User[], accounts: AccountConfig[], noAuthUser?: string): void {
    if (JSON.stringify(accounts) !== JSON.stringify(this.opts.accounts)) {
      this.opts = { ...this.opts, accounts };
      this.accounts = buildAccounts(this.opts, this, this.accounts);
    }
    // The default user changes with the users that name it; a client without credentials that
    // was mapped to a default user now gone is cut off by reloadUsers like any removed user.
    if (noAuthUser !== undefined) this.opts = { ...this.opts, noAuthUser };
    this.reloadUsers(users);
  }

  clientClosed(c: Client, reason: CloseReasonText): void {
    if (!this.clients.delete(c.cid)) return;
    this.closed.push({ client: c, reason });
    if (this.closed.length > CLOSED_RING) this.closed.shift();
    this.log.debug(`${c.tag} - Client connection closed: ${reason}`);
  }

  private pingClients(): void {
    for (const c of this.clients.values()) {
      if (c.pingsOut + 1 > this.opts.pingMax) {
        this.log.debug(`${c.tag} - Stale Client Connection - Closing`);
        c.sendErr(ErrText.StaleConnection);
        c.close(CloseReason.StaleConnection);
        continue;
      }
      c.sendPing();
    }
  }

  /**
   * Cuts off the consumers that have stopped reading: one whose writes have made no progress
   * for write_deadline, and one beyond max_pending that made none since the last check.
   * A consumer that is behind but reading is left alone (its producers are paused instead).
   */
  private checkWriteDeadlines(): void {
    const now = Date.now();
    const max = this.opts.maxPending;
    for (const c of this.clients.values()) {
      const pending = c.pendingBytes();
      if (pending === 0 || c.writesDone !== c.seenWrites) {
        c.seenWrites = c.writesDone;
        c.stuckSince = 0;
        continue;
      }
      if (c.stuckSince === 0) {
        c.stuckSince = now;
        if (pending <= max) continue;
      }
      if (pending > max) c.slowConsumer(CloseReason.SlowConsumerPendingBytes);
      else if (now - c.stuckSince > this.opts.writeDeadlineMs) {
        c.slowConsumer(CloseReason.SlowConsumerWriteDeadline);
      }
    }
  }

  /**
   * Lame duck mode: stop accepting, tell clients (INFO with ldm) so they move to other servers,
   * then close the remaining clients spread over lame_duck_duration, and shut down.
   */
  async enterLameDuckMode(): Promise<void> {
    if (this.lameDuck || this.shuttingDown) return;
    this.lameDuck = true;
    this.log.info("Entering lame duck mode, stop accepting new clients");
    // Stop accepting now; net.Server's close callback only fires once every client has gone.
    void this.closeListener();
    for (const c of this.clients.values()) {
      c.sendProto(this.infoLine(c));
    }
    this.flushPending();
    const total = this.opts.lameDuckDurationMs;
    const grace = Math.min(this.opts.lameDuckGracePeriodMs, total);
    await sleep(grace);
    const clients = [...this.clients.values()];
    if (clients.length > 0) {
      const spread = Math.max(0, total - grace);
      this.log.info(`Closing existing clients over ${Math.round(spread / 1000)}s`);
      const step = spread / clients.length;
      for (const c of clients) {
        if (this.shuttingDown) break;
        c.close(CloseReason.LameDuck);
        if (step >= 1) await sleep(step);
      }
    }
    await this.shutdown();
  }

  private async closeListener(): Promise<void> {
    const l = this.listener;
    this.listener = null;
    const ws = this.websocket?.close();
    const m = this.mapped?.listener;
    if (m) await new Promise<void>((r) => m.close(() => r()));
    if (l) await new Promise<void>((r) => l.close(() => r()));
    await ws;
  }

  /** Closes every connection and listener. Idempotent. */
  /**
   * nats-server's activationExpired: an import that an activation token allowed is dropped when
   * the token expires (`expires` in seconds since the epoch).
   */
  private expireActivation(e: { account: string; import: ImportConfig; expires: number }): void {
    const left = e.expires * 1000 - Date.now();
    const t = setTimeout(
      () => {
        if (e.expires * 1000 > Date.now()) return this.expireActivation(e);
        const gone = JSON.stringify(e.import);
        const accounts = this.opts.accounts.map((a) =>
          a.name !== e.account
            ? a
            : { ...a, imports: a.imports.filter((i) => JSON.stringify(i) !== gone) },
        );
        this.opts = Object.freeze({ ...this.opts, accounts });
        this.accounts = buildAccounts(this.opts, this, this.accounts);
        this.log.debug(
          `Activation token for ${e.import.kind} import of [${e.import.subject}] in account [${e.account}] expired`,
        );
      },
      Math.max(0, Math.min(left, 2 ** 31 - 1)),
    );
    t.unref();
    this.timers.push(t);
  }

  async shutdown(): Promise<void> {
    if (this.shuttingDown) return this.done;
    this.shuttingDown = true;
    this.log.info("Initiating Shutdown...");
    for (const t of this.timers) clearInterval(t);
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.claimsSync?.stop();
    const closing = this.closeListener();
    for (const c of [...this.clients.values()]) c.close(CloseReason.ServerShutdown);
    await closing;
    if (this.cluster) await this.cluster.stop();
    if (this.monitor) await this.monitor.close();
    if (this.opts.pidFile) rmSync(this.opts.pidFile, { force: true });
    if (this.portsFile) removePortsFile(this.portsFile);
    this.log.info("Server Exiting..");
    this.doneResolve();
  }
}

export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// Clustering: the route listener, solicited routes to a seed, gossip that completes the full
// mesh, interest propagation, and the set of client URLs that clients learn (connect_urls).
//
// Gossip is idempotent: whenever a route registers, its INFO (with "ip": its route URL) is
// forwarded to every other route; a receiver ignores itself, members it already has and URLs it
// is already dialling. Configured routes are kept level-triggered: a timer re-dials any
// configured URL that has no live route to its server. Duplicate routes between two shoal
// servers are resolved the same way on both sides: the connection dialled by the server with
// the smaller id is kept. A Go nats-server keeps the route it registered first, so with a Go
// peer shoal does the same (else each side could keep the other's choice and drop both, again
// and again); when both sides still drop opposite ones, the side that dialled dials again.

import { createServer, createConnection, type Server as NetServer, type Socket } from "node:net";
import { networkInterfaces } from "node:os";
import { idBytes, nodeCrypto } from "../lib/lazy.js";
import { Route, type RouteInfo } from "./route.js";
import { passwordMatches } from "./auth.js";
import { CloseReason, ErrText, type CloseReasonText } from "./errors.js";
import { GLOBAL_ACCOUNT, splitHostPort, type ClusterOptions } from "./options.js";
import type { Logger } from "./log.js";
import type { Server } from "./server.js";
import { hostPort, NATS_VERSION } from "./server.js";
import { goDuration } from "./monitor.js";
import { acceptTls, dialTls, loadTls, type LoadedTls, type TlsConfig } from "./tls.js";

interface ConfiguredRoute {
  url: string;
  /** The server id found behind this URL once connected (to know when it is covered). */
  remoteId: string | null;
  /** A dial is in flight: from the TCP connect until the route registers or closes. */
  connecting: boolean;
  attempts: number;
  /** The URL leads back to ourselves: never dial it again. */
  self: boolean;
}

function isUnspecified(host: string | undefined): boolean {
  return !host || host === "0.0.0.0" || host === "::" || host === "[::]";
}

/**
 * The host:port strings clients can use to reach a server listening on host:port. For a wildcard
 * host, every non-loopback, non-link-local address; none on a machine that has no such address
 * (nats-server then advertises nothing and logs that the address cannot be resolved).
 */
export function clientUrlsFor(
  host: string,
  port: number,
  advertise: string,
  ifaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): string[] {
  if (advertise) return [advertise.replace(/^[a-z]+:\/\//i, "")];
  if (!isUnspecified(host)) return [hostPort(host, port)];
  const urls: string[] = [];
  for (const addrs of Object.values(ifaces)) {
    for (const a of addrs ?? []) {
      if (a.internal || a.address.startsWith("fe80:")) continue;
      urls.push(hostPort(a.address, port));
    }
  }
  return urls;
}

/** A predicate: does a route URL name the same host:port as `url`? */
function sameAddress(url: string): (other: string) => boolean {
  const key = (u: string) => {
    try {
      const hp = splitHostPort(u, "127.0.0.1");
      return hostPort(hp.host, hp.port);
    } catch {
      return u;
    }
  };
  const k = key(url);
  return (other) => key(other) === k;
}

export class Cluster {
  readonly routes = new Map<string, Route>();
  /** Every route connection, registered or still in its handshake. */
  private readonly conns = new Set<Route>();
  private readonly configured = new Map<string, ConfiguredRoute>();
  /**
   * How many times the configured routes were checked (and re-dialled where down): a test that
   * must see that a route is not re-dialled waits for checks instead of sleeping.
   */
  get routeChecks(): number {
    return this.checks;
  }
  private checks = 0;
  /** Implicit (gossiped) URLs being dialled, to not dial one twice. */
  private readonly dialling = new Set<string>();
  /** Client URLs of every member, reference-counted (a member may share an address). */
  private readonly clientUrls = new Map<string, number>();
  /** Local interest: "subject" or "subject queue" → number of local subscriptions. */
  private readonly interest = new Map<string, number>();
  /** The same for every other account, by account name. */
  private readonly accountInterest = new Map<string, Map<string, number>>();
  private listener: NetServer | null = null;
  private timers: NodeJS.Timeout[] = [];
  private nextRid = 1;
  private stopped = false;
  name: string;
  dynamicName: boolean;
  /** TLS on routes (cluster.tls), loaded; replaced by reloadTls. */
  tls: LoadedTls | null;
  port = 0;

  constructor(
    readonly server: Server,
    readonly opts: Readonly<ClusterOptions>,
    readonly log: Logger,
  ) {
    this.dynamicName = opts.name === "";
    this.tls = opts.tls ? loadTls(opts.tls) : null;
    this.name = opts.name || idBytes(16).toString("base64url").slice(0, 22);
    for (const url of opts.routes) {
      this.configured.set(url, {
        url,
        remoteId: null,
        connecting: false,
        attempts: 0,
        self: false,
      });
    }
  }

  /**
   * New certificate files for routes (a renewal, a CA rotation): routes made from now on, both
   * ways, use them; established routes stay (they were verified when they were made). Routes
   * without TLS stay without it.
   */
  reloadTls(cfg: TlsConfig): void {
    if (this.tls !== null) this.tls = loadTls(cfg);
  }

  async start(): Promise<void> {
    this.log.info(`Cluster name is ${this.name}`);
    if (this.dynamicName)
      this.log.warn("Cluster name was dynamically generated, consider setting one");
    const listener = createServer({ noDelay: true }, (s) => this.accept(s));
    this.listener = listener;
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen(
        { host: this.opts.host, port: this.opts.port < 0 ? 0 : this.opts.port },
        () => {
          listener.off("error", reject);
          resolve();
        },
      );
    });
    const addr = listener.address();
    this.port = typeof addr === "object" && addr !== null ? addr.port : this.opts.port;
    this.log.info(`Listening for route connections on ${hostPort(this.opts.host, this.port)}`);
    for (const url of this.server.ownClientUrls()) this.addClientUrl(url);
    const tick = setInterval(() => this.ensureConfiguredRoutes(), this.opts.connectBackoffMs);
    const ping = setInterval(() => this.pingRoutes(), this.server.opts.pingIntervalMs);
    tick.unref();
    ping.unref();
    this.timers.push(tick, ping);
    this.ensureConfiguredRoutes();
  }

  // ---- connections ---------------------------------------------------------------------------

  private accept(socket: Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    if (this.tls === null) {
      this.accepted(socket);
      return;
    }
    // TLS routes: the handshake comes first, both ways, and the peer's certificate is verified.
    const from = hostPort(
      socket.remoteAddress?.replace(/^::ffff:/, "") ?? "",
      socket.remotePort ?? 0,
    );
    acceptTls(socket, this.tls, true).then(
      (secure) => (this.stopped ? secure.destroy() : this.accepted(secure)),
      (err: Error) => {
        this.log.error(`${from} - TLS route handshake error: ${err.message}`);
      },
    );
  }

  private accepted(socket: Socket): void {
    const r = this.track(new Route(this, this.nextRid++, socket, false, false));
    this.log.info(`${r.tag} - Route connection created`);
    r.sendProto(this.infoLine(true));
    r.flush();
  }

  private track(r: Route): Route {
    this.conns.add(r);
    const s = r.socket;
    s.setNoDelay(true);
    // A peer that never completes the handshake (no INFO) is dropped, as nats-server does.
    const handshake = setTimeout(() => {
      if (r.registered || r.closed) return;
      this.log.error(`${r.tag} - Route handshake not completed in time, closing`);
      r.sendProto(`-ERR '${ErrText.AuthTimeout}'\r\n`);
      r.close(CloseReason.AuthTimeout);
    }, this.opts.authTimeoutMs);
    handshake.unref();
    s.once("close", () => clearTimeout(handshake));
    s.on("data", (chunk: Buffer) => {
      r.onData(chunk);
      this.server.flushPending();
    });
    s.on("error", (err) => {
      this.log.debug(`${r.tag} - Route connection error: ${err.message}`);
      r.close(CloseReason.ReadError);
    });
    s.on("close", () => r.close(CloseReason.ClientClosed));
    return r;
  }

  /** Re-dials every configured route that has no live connection to its server. */
  private ensureConfiguredRoutes(): void {
    if (this.stopped) return;
    this.checks++;
    for (const c of this.configured.values()) {
      if (c.self || c.connecting) continue;
      if (c.remoteId !== null && this.routes.has(c.remoteId)) continue;
      this.dial(c.url, c);
    }
  }

  private dial(url: string, configured: ConfiguredRoute | null, attempt = 1): void {
    let hp: { host: string; port: number };
    try {
      hp = splitHostPort(url, "127.0.0.1");
    } catch {
      this.log.error(`Invalid route URL "${url}"`);
      return;
    }
    if (configured) configured.connecting = true;
    else this.dialling.add(url);
    this.log.debug(`Trying to connect to route on ${hostPort(hp.host, hp.port)} (${url})`);
    const socket = createConnection({ host: hp.host, port: hp.port });
    const onError = (err: Error) => {
      socket.destroy();
      if (configured) {
        configured.connecting = false;
        configured.attempts++;
        // Explicit routes are retried forever by the tick; say so now and then.
        if (configured.attempts === 1 || configured.attempts % 30 === 0) {
          this.log.error(
            `Error trying to connect to route (attempt ${configured.attempts}): ${err.message}`,
          );
        }
        return;
      }
      this.log.debug(`Error trying to connect to route (attempt ${attempt}): ${err.message}`);
      if (attempt <= this.opts.connectRetries && !this.stopped) {
        setTimeout(() => this.dial(url, null, attempt + 1), this.opts.connectBackoffMs).unref();
      } else {
        this.dialling.delete(url);
      }
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      if (this.tls === null) {
        socket.off("error", onError);
        connected(socket);
        return;
      }
      dialTls(socket, this.tls, hp.host).then(
        (secure) => {
          socket.off("error", onError);
          connected(secure);
        },
        (err: Error) => onError(new Error(`TLS route handshake error: ${err.message}`)),
      );
    });
    const connected = (socket: Socket) => {
      // A configured route stays "connecting" through its handshake (until it registers or
      // closes), so that the tick does not stack a new dial every period on a slow peer.
      if (configured) {
        configured.attempts = 0;
      } else {
        this.dialling.delete(url);
      }
      if (this.stopped) {
        socket.destroy();
        return;
      }
      const r = this.track(new Route(this, this.nextRid++, socket, true, configured !== null));
      r.url = url;
      r.sendProto(this.connectLine(url));
      r.sendProto(this.infoLine(false));
      r.flush();
      this.log.debug(`${r.tag} - Route connect msg sent`);
      this.log.info(`${r.tag} - Route connection created`);
    };
  }

  private connectLine(url: string): string {
    const creds = /^[a-z-]+:\/\/([^:@/]+)(?::([^@/]*))?@/i.exec(url);
    const connect: Record<string, unknown> = {
      echo: true,
      verbose: false,
      pedantic: false,
      tls_required: this.tls !== null,
      headers: true,
      name: this.server.id,
      cluster: this.name,
      cluster_dynamic: this.dynamicName || undefined,
    };
    if (creds) {
      connect["user"] = decodeURIComponent(creds[1]!);
      connect["pass"] = decodeURIComponent(creds[2] ?? "");
    } else if (this.opts.username) {
      connect["user"] = this.opts.username;
      connect["pass"] = this.opts.password;
    }
    return `CONNECT ${JSON.stringify(connect)}\r\n`;
  }

  /** Our route INFO; `ip` is set when it is gossip about another member. */
  private infoLine(withNonce: boolean): string {
    const advertise = this.opts.advertise
      ? splitHostPort(this.opts.advertise, this.opts.host)
      : null;
    const info: Record<string, unknown> = {
      server_id: this.server.id,
      server_name: this.server.name,
      version: NATS_VERSION,
      proto: 2,
      host: advertise?.host ?? this.opts.host,
      port: advertise && advertise.port > 0 ? advertise.port : this.port,
      headers: true,
      max_payload: this.server.opts.maxPayload,
    };
    if (withNonce) info["nonce"] = nodeCrypto().randomBytes(11).toString("base64url");
    if (this.opts.username) info["auth_required"] = true;
    if (this.tls) {
      info["tls_required"] = true;
      info["tls_verify"] = true;
    }
    info["cluster"] = this.name;
    if (this.dynamicName) info["cluster_dynamic"] = true;
    if (!this.opts.noAdvertise) info["connect_urls"] = this.server.ownClientUrls();
    if (this.server.lameDuck) info["ldm"] = true;
    return `INFO ${JSON.stringify(info)}\r\n`;
  }

  // ---- handshake -----------------------------------------------------------------------------

  processRouteConnect(r: Route, arg: Buffer): void {
    let c: { user?: string; pass?: string; cluster?: string; cluster_dynamic?: boolean };
    try {
      c = JSON.parse(arg.toString("utf8")) as typeof c;
    } catch {
      this.log.error(`${r.tag} - Invalid route CONNECT`);
      r.close(CloseReason.ProtocolViolation);
      return;
    }
    if (
      this.opts.username &&
      (c.user !== this.opts.username || !passwordMatches(this.opts.password, c.pass ?? ""))
    ) {
      this.log.error(`${r.tag} - authentication error`);
      r.sendProto(`-ERR '${ErrText.AuthViolation}'\r\n`);
      r.close(CloseReason.AuthViolation);
      return;
    }
    if (!this.clusterNameAgrees(r, c.cluster, !!c.cluster_dynamic, true)) return;
    r.connectReceived = true;
  }

  processRouteInfo(r: Route, info: RouteInfo): void {
    if (!r.registered) {
      this.register(r, info);
      return;
    }
    if (info.ip) {
      this.gossiped(info);
      return;
    }
    // An update from a member we know: client URLs, lame duck.
    if (info.server_id === r.remoteId) {
      this.replaceClientUrls(r, info.ldm ? [] : (info.connect_urls ?? []));
      r.remote = { ...r.remote!, ...info };
    }
  }

  private register(r: Route, info: RouteInfo): void {
    const id = info.server_id;
    if (!id) {
      r.close(CloseReason.ProtocolViolation);
      return;
    }
    if (id === this.server.id) {
      this.log.debug(`${r.tag} - Detected route to self, ignoring "${r.url}"`);
      const c = this.configured.get(r.url);
      if (c) c.self = true;
      r.close(CloseReason.DuplicateRoute);
      return;
    }
    if (this.opts.username && !r.didSolicit && !r.connectReceived) {
      r.sendProto(`-ERR '${ErrText.AuthViolation}'\r\n`);
      r.close(CloseReason.AuthViolation);
      return;
    }
    if (!this.clusterNameAgrees(r, info.cluster, !!info.cluster_dynamic, false)) return;
    if (r.isConfigured) {
      const c = this.configured.get(r.url);
      if (c) {
        c.remoteId = id;
        c.connecting = false;
      }
    }
    const existing = this.routes.get(id);
    if (existing) {
      this.log.debug(`${r.tag} - Detected duplicate remote route "${id}"`);
      if (info.go !== undefined) {
        // A Go peer keeps its first; so do we, and if the duplicate was ours to dial, we dial
        // again should the first one close.
        if (r.didSolicit && !r.isConfigured && !existing.didSolicit) existing.redialUrl = r.url;
        r.close(CloseReason.DuplicateRoute);
        return;
      }
      // Keep the connection dialled by the smaller server id; both sides pick the same one.
      const keeperSolicitedByUs = this.server.id < id;
      const keepNew =
        r.didSolicit === keeperSolicitedByUs && existing.didSolicit !== keeperSolicitedByUs;
      if (!keepNew) {
        r.close(CloseReason.DuplicateRoute);
        return;
      }
      this.routes.delete(id);
      existing.close(CloseReason.DuplicateRoute);
    }
    r.remote = info;
    r.registered = true;
    this.routes.set(id, r);
    this.log.debug(`${r.tag} - Registering remote route "${id}"`);
    // A first PING measures the route's RTT (/routez), as nats-server does on registration.
    r.sendPing();
    this.sendLocalSubs(r);
    this.log.debug(`${r.tag} - Sent local subscriptions to route`);
    this.replaceClientUrls(r, info.connect_urls ?? []);
    this.forwardNewRoute(r, info);
    this.server.routesChanged();
  }

  /**
   * nats-server's rule for cluster names: a dynamic (generated) name gives way to a configured
   * one, and between two dynamic names the greater wins; two different configured names refuse
   * each other.
   */
  private clusterNameAgrees(
    r: Route,
    theirs: string | undefined,
    theirsDynamic: boolean,
    inConnect: boolean,
  ): boolean {
    if (!theirs || theirs === this.name) return true;
    if (this.dynamicName && (!theirsDynamic || this.name < theirs)) {
      this.log.info(`Cluster name updated to ${theirs}`);
      this.name = theirs;
      this.dynamicName = theirsDynamic;
      return true;
    }
    // As nats-server: the server that receives the CONNECT says why and tells the peer; the one
    // that reads the other's INFO just closes.
    if (!inConnect) {
      r.close(CloseReason.ClusterNameConflict);
      return false;
    }
    const text = `Rejecting connection, cluster name "${theirs}" does not match "${this.name}"`;
    this.log.error(`${r.tag} - ${text}`);
    r.sendProto(`-ERR '${text}'\r\n`);
    r.close(CloseReason.ClusterNameConflict);
    this.log.error(`${r.tag} - cluster name from remote server conflicts`);
    return false;
  }

  /** The route URL other members should dial to reach the server behind r. */
  private routeUrlOf(r: Route, info: RouteInfo): string {
    const host = isUnspecified(info.host) ? r.host : info.host!;
    return `nats-route://${hostPort(host, info.port ?? 0)}/`;
  }

  private forwardNewRoute(r: Route, info: RouteInfo): void {
    const gossip = { ...info, ip: this.routeUrlOf(r, info) };
    delete (gossip as { nonce?: string }).nonce;
    const line = `INFO ${JSON.stringify(gossip)}\r\n`;
    for (const other of this.routes.values()) {
      if (other !== r) other.sendProto(line);
    }
  }

  private gossiped(info: RouteInfo): void {
    const id = info.server_id;
    if (id === this.server.id || this.routes.has(id)) return;
    const url = info.ip!;
    if (this.dialling.has(url)) return;
    // Skip only what covers this member: a configured route known to lead to it, or one being
    // dialled on the same address. (Another configured dial in flight, maybe to a peer that
    // never answers, must not swallow the gossip: it is sent once.)
    const where = sameAddress(url);
    for (const c of this.configured.values()) {
      if (c.remoteId === id || (c.connecting && where(c.url))) return;
    }
    this.dial(url, null);
  }

  routeClosed(r: Route, reason: CloseReasonText): void {
    this.conns.delete(r);
    if (r.isConfigured) {
      const c = this.configured.get(r.url);
      if (c) c.connecting = false;
    }
    const wasRegistered = this.routes.get(r.remoteId) === r;
    if (wasRegistered) {
      this.routes.delete(r.remoteId);
      this.replaceClientUrls(r, []);
      this.server.routesChanged();
    }
    if (reason !== CloseReason.DuplicateRoute) {
      this.log.info(`${r.tag} - Router connection closed: ${reason}`);
    }
    // Configured routes are re-dialled by the tick, after a backoff: never in a tight loop.
    // A route we dialled because of gossip is dialled again like nats-server does (with
    // connectRetries more tries), else a dropped connection between two live members would
    // leave the mesh partial for good.
    const url = r.didSolicit ? (r.isConfigured ? "" : r.url) : r.redialUrl;
    if (
      wasRegistered &&
      url !== "" &&
      reason !== CloseReason.ServerShutdown &&
      reason !== CloseReason.ClusterNameConflict &&
      !this.stopped
    ) {
      const id = r.remoteId;
      setTimeout(() => {
        if (this.stopped || this.routes.has(id) || this.dialling.has(url)) return;
        this.dial(url, null);
      }, this.opts.connectBackoffMs).unref();
    }
  }

  /** A member refused us; if it was over the cluster name and ours is generated, take theirs. */
  routeError(r: Route, text: string): void {
    const m = /cluster name "([^"]*)" does not match "([^"]*)"/.exec(text);
    if (m && this.dynamicName && m[1] === this.name && m[2]) {
      this.clusterNameAgrees(r, m[2], false, false);
    }
  }

  // ---- interest --------------------------------------------------------------------------------

  /**
   * A local subscription of an account was added (+1) or removed (-1): tell routes when it
   * matters. $G's interest is kept apart from the other accounts' (the common case stays lean).
   */
  localInterest(
    sub: { subject: string; queue: string | null },
    delta: 1 | -1,
    account = GLOBAL_ACCOUNT,
  ): void {
    let interest = this.interest;
    if (account !== GLOBAL_ACCOUNT) {
      let m = this.accountInterest.get(account);
      if (m === undefined) this.accountInterest.set(account, (m = new Map()));
      interest = m;
    }
    const key = sub.queue === null ? sub.subject : `${sub.subject} ${sub.queue}`;
    const n = (interest.get(key) ?? 0) + delta;
    if (n <= 0) interest.delete(key);
    else interest.set(key, n);
    let line: string;
    if (sub.queue === null) {
      if (delta === 1 && n !== 1) return;
      if (delta === -1 && n > 0) return;
      line = n > 0 ? `RS+ ${account} ${sub.subject}\r\n` : `RS- ${account} ${sub.subject}\r\n`;
    } else {
      line =
        n > 0
          ? `RS+ ${account} ${sub.subject} ${sub.queue} ${n}\r\n`
          : `RS- ${account} ${sub.subject} ${sub.queue}\r\n`;
    }
    for (const r of this.routes.values()) r.sendProto(line);
  }

  private sendLocalSubs(r: Route): void {
    let lines = "";
    const all: Array<[string, Map<string, number>]> = [
      [GLOBAL_ACCOUNT, this.interest],
      ...this.accountInterest,
    ];
    for (const [account, interest] of all) {
      for (const [key, n] of interest) {
        const sp = key.indexOf(" ");
        lines += sp < 0 ? `RS+ ${account} ${key}\r\n` : `RS+ ${account} ${key} ${n}\r\n`;
      }
    }
    if (lines) r.sendProto(lines);
  }

  // ---- client URLs ------------------------------------------------------------------------------

  private readonly urlsByRoute = new Map<Route, string[]>();

  private addClientUrl(url: string): boolean {
    const n = this.clientUrls.get(url) ?? 0;
    this.clientUrls.set(url, n + 1);
    return n === 0;
  }

  private removeClientUrl(url: string): boolean {
    const n = this.clientUrls.get(url) ?? 0;
    if (n <= 1) {
      this.clientUrls.delete(url);
      return n === 1;
    }
    this.clientUrls.set(url, n - 1);
    return false;
  }

  private replaceClientUrls(r: Route, urls: string[]): void {
    let changed = false;
    for (const u of this.urlsByRoute.get(r) ?? []) changed = this.removeClientUrl(u) || changed;
    if (urls.length > 0) {
      this.urlsByRoute.set(r, urls);
      this.learnedClientUrls = true;
    } else this.urlsByRoute.delete(r);
    for (const u of urls) changed = this.addClientUrl(u) || changed;
    if (changed && !this.opts.noAdvertise) this.server.clientUrlsChanged();
  }

  /**
   * Whether a route ever told us a client URL. Like nats-server, clients get connect_urls only
   * from then on: a clustered server alone (or whose peers all have no_advertise) sends none,
   * and one whose peers left keeps sending its own.
   */
  learnedClientUrls = false;

  /** Every member's client URL, ours first. */
  connectUrls(): string[] {
    const own = this.server.ownClientUrls();
    const rest = [...this.clientUrls.keys()].filter((u) => !own.includes(u));
    return [...own, ...rest];
  }

  // ---- timers and shutdown ---------------------------------------------------------------------

  private pingRoutes(): void {
    for (const r of this.routes.values()) {
      if (r.pingsOut + 1 > this.server.opts.pingMax) {
        this.log.debug(`${r.tag} - Stale Route Connection - Closing`);
        r.close(CloseReason.StaleConnection);
        continue;
      }
      r.sendPing();
    }
  }

  /** Tells members that we are in lame duck mode (they drop our client URLs). */
  announceLameDuck(): void {
    const line = this.infoLine(false);
    for (const r of this.routes.values()) r.sendProto(line);
  }

  numRoutes(): number {
    return this.routes.size;
  }

  routeInfos(withSubs: boolean): Record<string, unknown>[] {
    const now = Date.now();
    return [...this.routes.values()].map((r) => {
      const o: Record<string, unknown> = {
        rid: r.rid,
        remote_id: r.remoteId,
        remote_name: r.remote?.server_name ?? "",
        did_solicit: r.didSolicit,
        is_configured: r.isConfigured,
        ip: r.host,
        port: r.port,
        start: r.start.toISOString(),
        last_activity: r.lastActivity.toISOString(),
        rtt: goDuration(r.rtt),
        uptime: `${Math.floor((now - r.start.getTime()) / 1000)}s`,
        idle: `${Math.floor((now - r.lastActivity.getTime()) / 1000)}s`,
        pending_size: r.out.queued + r.socket.writableLength,
        in_msgs: r.inMsgs,
        out_msgs: r.outMsgs,
        in_bytes: r.inBytes,
        out_bytes: r.outBytes,
        subscriptions: r.remoteSubs.size,
      };
      if (withSubs) o["subscriptions_list"] = [...r.remoteSubs.values()].map((s) => s.subject);
      return o;
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    const l = this.listener;
    this.listener = null;
    const closing = l ? new Promise<void>((res) => l.close(() => res())) : Promise.resolve();
    for (const r of [...this.conns]) r.close(CloseReason.ServerShutdown);
    await closing;
  }
}

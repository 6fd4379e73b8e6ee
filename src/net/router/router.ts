// The HTTP router: routes every request by its Host header (port stripped, case ignored) and path
// to a backend of the first route that matches (highest priority first, src/net/router/match.ts),
// round robin over the route's backends, or to the backend a sticky cookie names while that
// backend is in the table (a cookie naming one that left is rewritten to the new pick). It adds
// X-Forwarded-For (appended), -Proto, -Host, -Port and X-Real-Ip; passes WebSocket (any Upgrade)
// requests through as raw byte pipes both ways until either side closes; and answers its own
// errors as one-line text bodies that say why: 404 no route for the host, 503 no healthy backend,
// 502 backend refused/reset/unreachable, 504 backend timed out. An optional access log writes one
// common-log-format line per request.
//
// The route table is plain data (src/api/routes.ts); `update(table)` swaps it in at once and the
// next request uses it. Routes and their round-robin counters are rebuilt per update; connection
// pools are kept per backend address across updates and closed when no route names them.
//
// It proxies HTTP/1.x on raw sockets (a benchmark showed node:http plus undici spending the time
// in their own layers, not in routing; docs/benchmarks.md "The router suite"): a client
// connection reads (through net's `onread`, adoptClientSocket) request heads
// (src/net/router/http1.ts parses only what routing and framing need, strictly), writes the
// rewritten head (built as bytes) and the body bytes as they come to a kept-alive
// backend connection (src/net/router/pool.ts), reads the response head for its framing, passes
// the head on without hop-by-hop headers (plus the sticky cookie) and the body bytes unchanged,
// then gives the backend connection back. One request at a time per client connection: pipelined
// requests wait in the read buffer and are answered in order.

import { createHash } from "node:crypto";
import { STATUS_CODES } from "node:http";
import {
  createConnection,
  createServer,
  type AddressInfo,
  type Server,
  type Socket,
} from "node:net";
import { check } from "../../api/schema.js";
import { RouteTableSchema, type Route, type RouteTable } from "../../api/routes.js";
import { joinHostPort } from "../../lib/addr.js";
import { readCopies } from "../../lib/readinto.js";
import type { Logger } from "../../lib/log.js";
import {
  ChunkedScanner,
  forwardedLines,
  forwardRequestBytes,
  forwardRequestHead,
  Framing,
  HttpParseError,
  parseRequestHead,
  parseResponseHead,
  responseFraming,
  responseHeadBytes,
  type RequestHead,
  type ResponseHead,
} from "./http1.js";
import { compileTable, findRoute, requestHost, requestPath, type CompiledRoute } from "./match.js";
import { BackendPool, type BackendConn, type ConnOwner } from "./pool.js";
import { RouterStats, type ServiceTraffic } from "./stats.js";

export type RouterLogger = Pick<Logger, "info" | "warn" | "debug">;

export interface RouterOptions {
  log: RouterLogger;
  /** How long a backend may take to send its response head, or between body chunks (504). */
  timeoutMs: number;
  /** How long connecting to a backend may take (504). */
  connectTimeoutMs: number;
  /** How long an idle client connection is kept open. */
  keepAliveTimeoutMs: number;
  /** Connections kept open to one backend at most (requests beyond wait for one). */
  maxConnectionsPerBackend: number;
  /** The largest request head accepted (431 beyond); response heads may be 4 times that. */
  maxHeadBytes: number;
  /** Called with one common-log-format line per request, when set. */
  accessLog?: (line: string) => void;
  /** The clock of the access log (tests pass a fixed one). */
  now: () => Date;
  /** The monotonic clock (ms) of the latency histogram (src/net/router/stats.ts); tests inject. */
  latencyNow: () => number;
}

export function defaultRouterOptions(): RouterOptions {
  return {
    log: { info() {}, warn() {}, debug() {} },
    timeoutMs: 60_000,
    connectTimeoutMs: 10_000,
    keepAliveTimeoutMs: 30_000,
    maxConnectionsPerBackend: 256,
    maxHeadBytes: 16 * 1024,
    now: () => new Date(),
    latencyNow: () => performance.now(),
  };
}

interface Backend {
  /** `host:port` (IPv6 in brackets). */
  key: string;
  host: string;
  port: number;
  /** The sticky cookie's value that names this backend. */
  cookie: string;
  pool: BackendPool;
}

interface RouteState {
  route: Route;
  backends: Backend[];
  byCookie: Map<string, Backend>;
  next: number;
  /** The Set-Cookie attributes after the value (`; Path=/; HttpOnly`). */
  cookieAttrs: string;
  /** The service's requests and latencies (src/net/router/stats.ts). */
  traffic: ServiceTraffic;
}

type Live = CompiledRoute & { state: RouteState };

/** Bytes of pipelined requests read ahead while one is in flight, before reading pauses. */
const READ_AHEAD = 64 * 1024;

/**
 * The read buffer of every client socket (as pool.ts's for backend sockets): reads run one at a
 * time on the event loop, and each is copied out before the next.
 */
const CLIENT_READ_BUF = Buffer.allocUnsafe(64 * 1024);

/**
 * An accepted connection (accepted with `pauseOnConnect`) as a socket that reads through net's
 * `onread` into CLIENT_READ_BUF (readCopies, src/lib/readinto.ts), handing `onData` a copy of
 * each read: an accepted socket's Readable costs a quarter of the router's CPU per request in
 * its benchmark.
 */
export function adoptClientSocket(sock: Socket, onData: (d: Buffer) => void): Socket {
  return readCopies(sock, CLIENT_READ_BUF, onData, { allowHalfOpen: true });
}

/** The value of cookie `name` in a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  let i = 0;
  while (i < header.length) {
    let end = header.indexOf(";", i);
    if (end < 0) end = header.length;
    const eq = header.indexOf("=", i);
    if (eq > 0 && eq < end && header.slice(i, eq).trim() === name) {
      return header.slice(eq + 1, end).trim();
    }
    i = end + 1;
  }
  return undefined;
}

/** The client's address without IPv4-in-IPv6 mapping (`::ffff:10.0.0.1` → `10.0.0.1`). */
function clientIp(socket: Socket): string {
  const a = socket.remoteAddress ?? "";
  return a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number) => (n < 10 ? `0${n}` : String(n));

/** A time as the common log format writes it, in UTC: `10/Oct/2000:13:55:36 +0000`. */
export function clfTime(d: Date): string {
  return (
    `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`
  );
}

/** Why a backend failed, as the status and one line for the client. */
export function backendFailure(
  err: Error & { code?: string },
  backend: string,
  timeoutMs: number,
): { status: number; reason: string } {
  switch (err.code) {
    case "ECONNREFUSED":
      return { status: 502, reason: `backend ${backend} refused the connection` };
    case "ECONNRESET":
    case "EPIPE":
    case "UND_ERR_SOCKET":
      return { status: 502, reason: `backend ${backend} reset the connection` };
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return { status: 502, reason: `backend ${backend} is unreachable` };
    case "UND_ERR_HEADERS_TIMEOUT":
    case "UND_ERR_BODY_TIMEOUT":
      return {
        status: 504,
        reason: `backend ${backend} did not answer within ${timeoutMs / 1000} s`,
      };
    case "UND_ERR_CONNECT_TIMEOUT":
    case "ETIMEDOUT":
      return { status: 504, reason: `connecting to backend ${backend} timed out` };
    default:
      return { status: 502, reason: `backend ${backend} failed: ${err.message}` };
  }
}

/** A complete answer of the router's own: a one-line text body that says why. */
function errorResponse(status: number, reason: string, close: boolean, head: boolean): string {
  const body = `${reason}\n`;
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `${close ? "Connection: close\r\n" : ""}\r\n${head ? "" : body}`
  );
}

/** Retrying on a fresh connection is safe for these when the request has no body. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export class HttpRouter {
  /** @internal */ readonly opts: RouterOptions;
  private readonly server: Server;
  private routes: Live[] = [];
  private readonly pools = new Map<string, BackendPool>();
  private readonly clients = new Set<Socket>();
  /** @internal */ readonly tunnels = new Set<Socket>();
  /** @internal */ localPort = 0;
  /** Requests and latencies per service (src/net/router/stats.ts). */
  readonly stats: RouterStats;
  /** @internal Client connections proxying HTTP (not tunnels), for the timeout sweep. */
  readonly conns = new Set<ClientConn>();
  /**
   * @internal A coarse clock (ms since the epoch) read at every sweep: connections stamp their
   * last activity with it, so no socket carries a timer (Node refreshes those on every read and
   * write) and no request reads the time.
   */
  clock = Date.now();
  /** @internal How often timeouts are checked; they fire up to two of these late. */
  readonly tick: number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: Partial<RouterOptions> = {}) {
    this.opts = Object.freeze({ ...defaultRouterOptions(), ...options });
    const o = this.opts;
    this.stats = new RouterStats(o.latencyNow);
    const shortest = Math.min(o.timeoutMs, o.connectTimeoutMs, o.keepAliveTimeoutMs);
    this.tick = Math.min(1000, Math.max(10, Math.floor(shortest / 4)));
    this.sweeper = setInterval(() => this.sweep(), this.tick).unref();
    const serverOpts = { noDelay: true, allowHalfOpen: true, pauseOnConnect: true };
    this.server = createServer(serverOpts, (accepted) => {
      // `conn` is assigned before the socket can read: reads start on a later tick.
      // eslint-disable-next-line prefer-const
      let conn: ClientConn;
      const sock = adoptClientSocket(accepted, (d) => conn.onData(d));
      this.clients.add(sock);
      sock.once("close", () => this.clients.delete(sock));
      conn = new ClientConn(this, sock);
      this.conns.add(conn);
    });
  }

  private sweep(): void {
    const now = Date.now();
    this.clock = now;
    for (const c of this.conns) c.check(now);
  }

  /** Starts serving; port 0 picks a free one. Resolves with the address it listens on. */
  async listen(port: number, host = "0.0.0.0"): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ port, host }, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const addr = this.server.address() as AddressInfo;
    this.localPort = addr.port;
    this.opts.log.info(`HTTP router listening on ${joinHostPort(addr.address, addr.port)}`);
    return addr;
  }

  /**
   * Replaces the route table; the next request uses the new one. Throws a SchemaError for a
   * table that does not match its schema; returns the routes it left out (a rule that does not
   * parse), one sentence each.
   */
  update(table: RouteTable): string[] {
    check(RouteTableSchema, table, "", "route table");
    const { routes, problems } = compileTable(table);
    const used = new Set<string>();
    const live: Live[] = routes.map((cr) => {
      const backends = cr.route.backends.map((b) => {
        const key = joinHostPort(b.host, b.port);
        used.add(key);
        let pool = this.pools.get(key);
        if (pool === undefined) {
          pool = new BackendPool(b.host, b.port, {
            max: this.opts.maxConnectionsPerBackend,
            idleMs: 30_000,
          });
          this.pools.set(key, pool);
        }
        // Named after the task when the table says which: the same on every node's router,
        // which may reach that task at another address (loopback on its own node).
        const cookie = createHash("sha256")
          .update(b.id ?? key)
          .digest("hex")
          .slice(0, 16);
        return { key, host: b.host, port: b.port, cookie, pool };
      });
      const sticky = cr.route.sticky;
      let cookieAttrs = "; Path=/";
      if (sticky?.secure) cookieAttrs += "; Secure";
      if (sticky?.httpOnly) cookieAttrs += "; HttpOnly";
      if (sticky?.sameSite) {
        cookieAttrs += `; SameSite=${sticky.sameSite[0]!.toUpperCase()}${sticky.sameSite.slice(1)}`;
      }
      const state: RouteState = {
        route: cr.route,
        backends,
        byCookie: new Map(backends.map((b) => [b.cookie, b])),
        next: 0,
        cookieAttrs,
        traffic: this.stats.service(cr.route.serviceId, cr.route.service),
      };
      return { ...cr, state };
    });
    this.routes = live;
    this.stats.prune(new Set(live.map((l) => l.route.serviceId ?? l.route.service)));
    for (const [key, pool] of this.pools) {
      if (used.has(key)) continue;
      this.pools.delete(key);
      // In-flight requests finish; new ones cannot reach this pool any more.
      pool.close();
    }
    for (const p of problems) this.opts.log.warn(p);
    return problems;
  }

  /** Stops serving: closes the listener, every client and backend connection and every tunnel. */
  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.clients) s.destroy();
    this.clients.clear();
    for (const s of this.tunnels) s.destroy();
    this.tunnels.clear();
    for (const p of this.pools.values()) p.close();
    this.pools.clear();
    await closed;
  }

  /** @internal The route for a host and request target. */
  find(host: string, target: string): Live | undefined {
    return findRoute(this.routes, host, requestPath(target)) as Live | undefined;
  }

  /**
   * How many requests each service received since the last call (by service id, else name), for
   * the autoscaler's requests per second; the counts start again from zero.
   */
  takeRequestCounts(): Array<{ serviceId: string; count: number }> {
    return this.stats.takeRequestCounts();
  }

  /** @internal The backend for a request on `live`, and whether its sticky cookie must be (re)set. */
  pick(live: Live, cookieHeader: string | undefined): { b: Backend; setCookie: boolean } {
    const st = live.state;
    st.traffic.requests++;
    const sticky = st.route.sticky;
    if (sticky !== undefined) {
      const v = cookieValue(cookieHeader, sticky.name);
      const pinned = v === undefined ? undefined : st.byCookie.get(v);
      if (pinned !== undefined) return { b: pinned, setCookie: false };
    }
    const b = st.backends[st.next]!;
    st.next = (st.next + 1) % st.backends.length;
    return { b, setCookie: sticky !== undefined };
  }
}

/**
 * One client connection: reads requests one at a time, proxies each to a backend connection it
 * holds for the exchange, and answers in order. Invariant: `req` is set from the moment a head is
 * parsed until both the request body has been read (`reqDone`) and the response sent (`respDone`).
 */
class ClientConn implements ConnOwner {
  private buf: Buffer | undefined;
  private req: RequestHead | undefined;
  private reqDone = true;
  private bodyLeft = 0;
  private chunks: ChunkedScanner | undefined;
  /** Body bytes read before the backend connection was handed over. */
  private queued: Buffer[] | undefined;
  /** The router answered itself: the rest of the request body is read and dropped. */
  private sink = false;
  private looping = false;
  private ended = false;
  private closeAfter = false;
  /** The connection is being closed: bytes still arriving are dropped. */
  private closing = false;

  private b: Backend | undefined;
  private setCookie = false;
  private cookieLine = "";
  private up: BackendConn | undefined;
  /** An Upgrade request's backend socket, once connected: the client's bytes go there as they come. */
  private pipeTo: Socket | undefined;
  private retried = false;
  private fwdHead: Buffer | undefined;
  /** forwardedLines as bytes for requests from this client without X-Forwarded-For, by Host. */
  private fwdLines: Buffer | undefined;
  private fwdLinesHost: string | undefined;

  private rbuf: Buffer | undefined;
  private resp: ResponseHead | undefined;
  private respDone = true;
  private respFraming: Framing = Framing.none;
  private respLeft = 0;
  private respChunks: ChunkedScanner | undefined;
  private respSpill = false;
  private status = 0;
  private bytes = 0;
  private at: Date | undefined;
  /** The service whose latency histogram this request goes to, and when it started. */
  private traffic: ServiceTraffic | undefined;
  private t0 = 0;
  /** The router's clock at the client's last bytes, and at the backend's last activity. */
  private io: number;
  private upIo = 0;
  /** The client's address (X-Forwarded-For, the access log). */
  private readonly ip: string;

  constructor(
    private readonly router: HttpRouter,
    private readonly sock: Socket,
  ) {
    this.ip = clientIp(sock);
    this.io = router.clock;
    sock.on("end", () => this.onEnd());
    sock.on("error", () => {});
    sock.on("close", () => this.onClose());
    sock.on("drain", () => this.up?.sock.resume());
  }

  /**
   * The timeouts, at a sweep: an idle client connection closes after keepAliveTimeoutMs; a
   * backend that takes longer than connectTimeoutMs to connect, or is silent for timeoutMs, is
   * given up (504). Stamps come from the coarse clock, so a tick of slack keeps them from firing
   * early.
   */
  check(now: number): void {
    const o = this.router.opts;
    const slack = this.router.tick;
    if (this.req === undefined) {
      if (now - this.io > o.keepAliveTimeoutMs + slack) this.sock.destroy();
      return;
    }
    const up = this.up;
    if (up === undefined) return;
    if (up.connecting) {
      if (now - up.openedAt > o.connectTimeoutMs) this.onUpTimeout(true);
    } else if (now - this.upIo > o.timeoutMs + slack) this.onUpTimeout(false);
  }

  // --- client side ---

  /** @internal Bytes from the client (a buffer this connection owns). */
  onData(d: Buffer): void {
    this.io = this.router.clock;
    if (this.pipeTo !== undefined) {
      if (!this.pipeTo.write(d)) this.sock.pause();
      return;
    }
    if (this.closing) return;
    if (this.req !== undefined && !this.reqDone) {
      let n: number;
      try {
        n = this.bodyEnd(d, 0);
      } catch (err) {
        this.badBody(err as HttpParseError);
        return;
      }
      this.forward(n === d.length ? d : d.subarray(0, n));
      if (n < d.length) this.append(d.subarray(n));
      if (this.reqDone) this.maybeFinish();
      return;
    }
    this.append(d);
    if (this.req === undefined) this.next();
    else if (this.buf!.length > READ_AHEAD) this.sock.pause();
  }

  private append(d: Buffer): void {
    this.buf = this.buf === undefined ? d : Buffer.concat([this.buf, d]);
  }

  private onEnd(): void {
    this.ended = true;
    if (this.req === undefined && !this.looping) this.sock.end();
  }

  private onClose(): void {
    this.router.conns.delete(this);
    if (this.up !== undefined) {
      const up = this.up;
      this.up = undefined;
      up.pool.release(up, false);
    } else if (this.b !== undefined && this.req !== undefined) this.b.pool.cancel(this);
    this.req = undefined;
    this.buf = undefined;
  }

  /** Starts the requests waiting in the read buffer, one after the other. */
  private next(): void {
    if (this.looping) return;
    this.looping = true;
    try {
      while (this.req === undefined && this.buf !== undefined && !this.sock.destroyed) {
        let h: RequestHead | null;
        try {
          h = parseRequestHead(this.buf, this.router.opts.maxHeadBytes);
        } catch (err) {
          const e = err as HttpParseError;
          this.buf = undefined;
          this.closing = true;
          this.sock.end(errorResponse(e.status, `bad request: ${e.message}`, true, false));
          return;
        }
        if (h === null) break;
        const rest = h.headLength < this.buf.length ? this.buf.subarray(h.headLength) : undefined;
        this.buf = undefined;
        this.start(h, rest);
      }
      if (this.req === undefined) {
        if (this.sock.isPaused()) this.sock.resume();
        if (this.ended && this.buf === undefined) this.sock.end();
      }
    } finally {
      this.looping = false;
    }
  }

  private start(h: RequestHead, rest: Buffer | undefined): void {
    const router = this.router;
    this.req = h;
    this.at = router.opts.accessLog !== undefined ? router.opts.now() : undefined;
    this.status = 0;
    this.bytes = 0;
    this.sink = false;
    this.retried = false;
    this.closeAfter = !h.keepAlive || this.ended;
    this.respDone = false;
    this.resp = undefined;
    this.rbuf = undefined;
    this.b = undefined;
    this.traffic = undefined;
    if (h.isUpgrade) {
      this.tunnel(h, rest);
      return;
    }
    this.chunks = h.transferEncoding !== undefined ? new ChunkedScanner(400) : undefined;
    this.bodyLeft = h.contentLength > 0 ? h.contentLength : 0;
    this.reqDone = this.chunks === undefined && this.bodyLeft === 0;
    this.queued = undefined;
    if (rest !== undefined) {
      let n = 0;
      if (!this.reqDone) {
        try {
          n = this.bodyEnd(rest, 0);
        } catch (err) {
          this.badBody(err as HttpParseError);
          return;
        }
        this.forward(n === rest.length ? rest : rest.subarray(0, n));
      }
      if (n < rest.length) this.buf = rest.subarray(n);
    }
    if (h.expectContinue && !this.reqDone) this.sock.write("HTTP/1.1 100 Continue\r\n\r\n");
    if (h.method === "CONNECT") {
      this.answer(405, "CONNECT is not supported");
      return;
    }
    const host = requestHost(h.host);
    const live = router.find(host, h.target);
    if (live === undefined) {
      this.answer(404, `no route for host "${host}"`);
      return;
    }
    if (live.state.backends.length === 0) {
      this.answer(503, `no healthy backend for service ${live.state.route.service}`);
      return;
    }
    const { b, setCookie } = router.pick(live, h.cookie);
    this.traffic = live.state.traffic;
    this.t0 = router.opts.latencyNow();
    this.b = b;
    this.setCookie = setCookie;
    if (setCookie) {
      this.cookieLine = `Set-Cookie: ${live.state.route.sticky!.name}=${b.cookie}${live.state.cookieAttrs}\r\n`;
    }
    let lines: Buffer;
    if (h.forwardedFor !== undefined) {
      lines = Buffer.from(
        forwardedLines(h, { clientIp: this.ip, port: router.localPort }),
        "latin1",
      );
    } else {
      if (this.fwdLines === undefined || h.host !== this.fwdLinesHost) {
        const text = forwardedLines(h, { clientIp: this.ip, port: router.localPort });
        this.fwdLines = Buffer.from(text, "latin1");
        this.fwdLinesHost = h.host;
      }
      lines = this.fwdLines;
    }
    this.fwdHead = forwardRequestBytes(h, lines);
    b.pool.acquire(this);
  }

  /** Where the request body ends in `d` from `start` (all of it: `d.length`); sets `reqDone`. */
  private bodyEnd(d: Buffer, start: number): number {
    if (this.chunks !== undefined) {
      const e = this.chunks.scan(d, start);
      if (e < 0) return d.length;
      this.reqDone = true;
      return e;
    }
    const n = Math.min(this.bodyLeft, d.length - start);
    this.bodyLeft -= n;
    if (this.bodyLeft === 0) this.reqDone = true;
    return start + n;
  }

  /** Request body bytes: to the backend, queued until there is one, or dropped. */
  private forward(part: Buffer): void {
    if (this.sink || part.length === 0) return;
    if (this.up !== undefined) {
      this.upIo = this.router.clock;
      if (!this.up.sock.write(part)) this.sock.pause();
    } else (this.queued ??= []).push(part);
  }

  /** A request body with bad chunked framing: answered when nothing was sent yet, then closed. */
  private badBody(err: HttpParseError): void {
    this.dropUp();
    this.closing = true;
    if (this.resp === undefined && this.status === 0) {
      this.sock.end(errorResponse(400, `bad request: ${err.message}`, true, false));
    } else this.sock.destroy();
  }

  /** Answers the request itself; the rest of its body is read and dropped. */
  private answer(status: number, reason: string): void {
    this.sink = true;
    this.queued = undefined;
    const text = errorResponse(status, reason, this.closeAfter, this.req!.method === "HEAD");
    this.sock.write(text, "latin1");
    this.observe();
    this.status = status;
    this.bytes = Buffer.byteLength(reason) + 1;
    this.respDone = true;
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (!this.respDone || !this.reqDone || this.req === undefined) return;
    const h = this.req;
    const log = this.router.opts.accessLog;
    if (log !== undefined) {
      const size = this.bytes > 0 ? String(this.bytes) : "-";
      log(
        `${this.ip || "-"} - - [${clfTime(this.at!)}] "${h.method} ${h.target} HTTP/1.${h.minor}" ${this.status} ${size}`,
      );
    }
    this.req = undefined;
    this.b = undefined;
    if (this.closeAfter) {
      this.buf = undefined;
      this.closing = true;
      this.sock.end();
      return;
    }
    this.next();
  }

  // --- backend side (ConnOwner) ---

  onUp(conn: BackendConn): void {
    this.up = conn;
    this.upIo = this.router.clock;
    const head = this.fwdHead!;
    if (this.queued !== undefined) {
      const ok = conn.sock.write(Buffer.concat([head, ...this.queued]));
      this.queued = undefined;
      if (!ok) this.sock.pause();
    } else conn.sock.write(head);
  }

  onUpData(d: Buffer): void {
    this.upIo = this.router.clock;
    if (this.resp === undefined) {
      const data = this.rbuf === undefined ? d : Buffer.concat([this.rbuf, d]);
      let r: ResponseHead | null;
      try {
        r = parseResponseHead(data, 4 * this.router.opts.maxHeadBytes);
      } catch (err) {
        this.upFailed(
          502,
          `backend ${this.b!.key} sent an invalid response: ${(err as Error).message}`,
        );
        return;
      }
      if (r === null) {
        // `d` is the pool's read buffer, reused by the next read.
        this.rbuf = data === d ? Buffer.from(d) : data;
        return;
      }
      this.rbuf = undefined;
      if (r.status < 200) {
        // 1xx: the final head follows (101 only answers an Upgrade, which is tunnelled).
        if (r.status === 101) {
          this.upFailed(502, `backend ${this.b!.key} sent an invalid response: 101 to a request`);
          return;
        }
        if (r.headLength < data.length) this.onUpData(data.subarray(r.headLength));
        return;
      }
      this.head(r, data);
      return;
    }
    this.body(d, 0);
  }

  /** Sends the response head (and the body bytes that came with it) to the client. */
  private head(r: ResponseHead, data: Buffer): void {
    this.resp = r;
    this.status = r.status;
    const framing = responseFraming(this.req!.method, r);
    this.respFraming = framing;
    this.respLeft = framing === Framing.length ? r.contentLength : 0;
    this.respChunks = framing === Framing.chunked ? new ChunkedScanner(502) : undefined;
    this.respSpill = false;
    // The backend answered before the request body ended: close after this response.
    if (framing === Framing.close || !this.reqDone) this.closeAfter = true;
    let extra = this.setCookie ? this.cookieLine : "";
    if (this.closeAfter) extra += "Connection: close\r\n";
    this.observe();
    const hl = r.headLength;
    if (framing === Framing.none) {
      this.respSpill = hl < data.length;
      this.sock.write(responseHeadBytes(r, extra, data, hl, hl));
      this.respEnd();
      return;
    }
    if (hl === data.length) {
      this.sock.write(responseHeadBytes(r, extra, data, hl, hl));
      return;
    }
    const end = this.bodyPart(data, hl);
    if (end < 0) return;
    if (!this.sock.write(responseHeadBytes(r, extra, data, hl, end))) this.up?.sock.pause();
    if (this.respDone) this.respEnd();
  }

  /** Where the response body ends in `d` from `start` (sets `respDone`), or -1 after an error. */
  private bodyPart(d: Buffer, start: number): number {
    let end: number;
    switch (this.respFraming) {
      case Framing.length: {
        const n = Math.min(this.respLeft, d.length - start);
        this.respLeft -= n;
        this.bytes += n;
        end = start + n;
        if (this.respLeft === 0) this.respDone = true;
        break;
      }
      case Framing.chunked: {
        const sc = this.respChunks!;
        const before = sc.dataBytes;
        try {
          const e = sc.scan(d, start);
          end = e < 0 ? d.length : e;
          if (e >= 0) this.respDone = true;
        } catch {
          this.dropUp();
          this.sock.destroy();
          return -1;
        }
        this.bytes += sc.dataBytes - before;
        break;
      }
      default:
        end = d.length;
        this.bytes += d.length - start;
    }
    if (this.respDone && end < d.length) this.respSpill = true;
    return end;
  }

  private body(d: Buffer, start: number): void {
    const end = this.bodyPart(d, start);
    if (end < 0) return;
    if (end > start) {
      // A copy: `d` is the pool's read buffer, and the socket may queue what it cannot send now.
      const ok = this.sock.write(Buffer.from(d.subarray(start, end)));
      if (!ok) this.up?.sock.pause();
    }
    if (this.respDone) this.respEnd();
  }

  /** The response is complete: the backend connection goes back to its pool when reusable. */
  private respEnd(): void {
    this.respDone = true;
    const up = this.up;
    if (up !== undefined) {
      this.up = undefined;
      const r = this.resp!;
      const reusable =
        this.reqDone &&
        !this.respSpill &&
        !r.close &&
        this.respFraming !== Framing.close &&
        this.req!.minor === 1;
      up.pool.release(up, reusable, r.keepAliveTimeout);
    }
    if (this.sock.isPaused() && this.reqDone) this.sock.resume();
    if (!this.reqDone && this.closeAfter) {
      // The backend answered before the body ended; it is not read any further.
      this.reqDone = true;
    }
    this.maybeFinish();
  }

  onUpEnd(): void {
    if (this.resp !== undefined && this.respFraming === Framing.close) {
      this.respEnd();
      return;
    }
    this.onUpError(Object.assign(new Error("connection closed"), { code: "ECONNRESET" }));
  }

  onUpError(err: Error & { code?: string }): void {
    const up = this.up;
    const b = this.b;
    if (this.req === undefined || b === undefined) return;
    this.dropUp();
    const h = this.req;
    // A kept-alive connection the backend closed just as the request left: once more, on a new
    // connection, when that cannot do a request twice.
    if (
      up !== undefined &&
      up.reused &&
      this.resp === undefined &&
      this.rbuf === undefined &&
      !this.retried &&
      IDEMPOTENT.has(h.method) &&
      h.contentLength <= 0 &&
      h.transferEncoding === undefined
    ) {
      this.retried = true;
      b.pool.acquire(this, true);
      return;
    }
    if (this.resp !== undefined) {
      this.sock.destroy();
      return;
    }
    const f = backendFailure(err, b.key, this.router.opts.timeoutMs);
    this.router.opts.log.debug(
      `${h.method} ${h.host ?? ""}${h.target} -> ${b.key}: ${err.message}`,
    );
    if (!this.reqDone) this.closeAfter = true;
    this.answer(f.status, f.reason);
  }

  private onUpTimeout(connecting: boolean): void {
    const code = connecting ? "ETIMEDOUT" : "UND_ERR_HEADERS_TIMEOUT";
    const err = Object.assign(new Error(connecting ? "connect timeout" : "timeout"), { code });
    this.retried = true; // a timeout is not retried
    this.onUpError(err);
  }

  onUpDrain(): void {
    if (!this.sink) this.sock.resume();
  }

  private upFailed(status: number, reason: string): void {
    this.dropUp();
    this.router.opts.log.debug(reason);
    if (!this.reqDone) this.closeAfter = true;
    this.resp = undefined;
    this.answer(status, reason);
  }

  /** The response head is going out: the request's latency, once. */
  private observe(): void {
    const t = this.traffic;
    if (t === undefined) return;
    this.traffic = undefined;
    t.observe(this.router.opts.latencyNow() - this.t0);
  }

  /** Closes the backend connection of this exchange, if any. */
  private dropUp(): void {
    const up = this.up;
    if (up === undefined) return;
    this.up = undefined;
    up.pool.release(up, false);
  }

  // --- Upgrade ---

  /** An Upgrade request (WebSocket): a raw pipe to a backend, both ways, until either closes. */
  private tunnel(h: RequestHead, rest: Buffer | undefined): void {
    const router = this.router;
    const socket = this.sock;
    // From here on the connection is a byte pipe: nothing more is parsed, and the client's bytes
    // wait (reading paused) until the backend is connected, then go there as they come (onData).
    this.closing = true;
    socket.pause();
    socket.removeAllListeners("end");
    socket.removeAllListeners("drain");
    router.conns.delete(this);
    const reject = (status: number, reason: string) => {
      socket.end(errorResponse(status, reason, true, false));
      // Read on (and drop) until the client closes its side.
      socket.resume();
    };
    socket.on("end", () => socket.end());
    const host = requestHost(h.host);
    const live = router.find(host, h.target);
    if (live === undefined) return reject(404, `no route for host "${host}"`);
    if (live.state.backends.length === 0) {
      return reject(503, `no healthy backend for service ${live.state.route.service}`);
    }
    const { b } = router.pick(live, h.cookie);
    const up = createConnection({ host: b.host, port: b.port, noDelay: true });
    router.tunnels.add(socket);
    router.tunnels.add(up);
    let connected = false;
    let clientEnded = false;
    socket.on("end", () => {
      if (connected) up.end();
      else clientEnded = true;
    });
    up.on("drain", () => socket.resume());
    up.setTimeout(router.opts.connectTimeoutMs, () => {
      if (!connected) {
        up.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" }));
      }
    });
    up.once("connect", () => {
      connected = true;
      up.setTimeout(0);
      up.write(forwardRequestHead(h, { clientIp: clientIp(socket), port: router.localPort }));
      if (rest !== undefined) up.write(rest);
      if (clientEnded) up.end();
      else {
        this.pipeTo = up;
        socket.resume();
      }
      up.pipe(socket);
    });
    up.on("error", (err: Error & { code?: string }) => {
      if (!connected && socket.writable) {
        const f = backendFailure(err, b.key, router.opts.timeoutMs);
        reject(f.status, f.reason);
      } else socket.destroy();
    });
    const cleanup = () => {
      router.tunnels.delete(socket);
      router.tunnels.delete(up);
      socket.destroy();
      up.destroy();
    };
    socket.once("close", cleanup);
    up.once("close", () => {
      // A refused connection has already answered the client; let that answer flush.
      if (connected) cleanup();
      else {
        router.tunnels.delete(up);
        router.tunnels.delete(socket);
      }
    });
  }
}

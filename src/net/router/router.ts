// The HTTP router: one node:http server that routes every request by its Host header (port
// stripped, case ignored) and path to a backend of the first route that matches (highest
// priority first, src/net/router/match.ts), round robin over the route's backends, or to the
// backend a sticky cookie names while that backend is in the table (a cookie naming one that left
// is rewritten to the new pick). It adds X-Forwarded-For (appended), -Proto, -Host, -Port and
// X-Real-Ip; passes WebSocket (any Upgrade) requests through as raw byte pipes both ways until
// either side closes; and answers its own errors as one-line text bodies that say why: 404 no
// route for the host, 503 no healthy backend, 502 backend refused/reset/unreachable, 504 backend
// timed out. An optional access log writes one common-log-format line per request.
//
// The route table is plain data (src/api/routes.ts); `update(table)` swaps it in at once and the
// next request uses it. Routes and their round-robin counters are rebuilt per update; connection
// pools are kept per backend address across updates and closed when no route names them.
//
// Client to backends: undici's Pool, one per backend address. undici is Node.js's own HTTP/1.1
// client project (it is what `fetch` runs on), kept by the Node.js organisation, with no
// dependencies; a Pool keeps connections alive and reuses them, bounds them per backend, and its
// low-level `dispatch` hands the response head and body chunks straight to a handler, so the
// router streams them to the client with backpressure and no intermediate stream objects —
// faster than node:http's Agent for this job, which builds a ClientRequest/IncomingMessage pair
// per request. Version 6 supports Node 18.17 and later (the project runs on Node 20).

import { createHash } from "node:crypto";
import {
  createServer,
  STATUS_CODES,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createConnection, type AddressInfo, type Socket } from "node:net";
import { Pool, type Dispatcher } from "undici";
import { check } from "../../api/schema.js";
import { RouteTableSchema, type Route, type RouteTable } from "../../api/routes.js";
import { joinHostPort } from "../../lib/addr.js";
import type { Logger } from "../../lib/log.js";
import { compileTable, findRoute, requestHost, requestPath, type CompiledRoute } from "./match.js";

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
  /** Called with one common-log-format line per request, when set. */
  accessLog?: (line: string) => void;
  /** The clock of the access log (tests pass a fixed one). */
  now: () => Date;
}

export function defaultRouterOptions(): RouterOptions {
  return {
    log: { info() {}, warn() {}, debug() {} },
    timeoutMs: 60_000,
    connectTimeoutMs: 10_000,
    keepAliveTimeoutMs: 30_000,
    maxConnectionsPerBackend: 256,
    now: () => new Date(),
  };
}

interface Backend {
  /** `host:port` (IPv6 in brackets). */
  key: string;
  host: string;
  port: number;
  /** The sticky cookie's value that names this backend. */
  cookie: string;
  pool: Pool;
}

interface RouteState {
  route: Route;
  backends: Backend[];
  byCookie: Map<string, Backend>;
  next: number;
  /** The Set-Cookie attributes after the value (`; Path=/; HttpOnly`). */
  cookieAttrs: string;
}

type Live = CompiledRoute & { state: RouteState };

/** Request headers that belong to one connection (RFC 9110 7.6.1), and those the router sets. */
const DROP_REQUEST = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "expect",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-forwarded-port",
  "x-real-ip",
]);
const DROP_RESPONSE = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
]);

function uncork(res: ServerResponse): void {
  res.uncork();
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

export class HttpRouter {
  private readonly opts: RouterOptions;
  private readonly server: Server;
  private routes: Live[] = [];
  private readonly pools = new Map<string, Pool>();
  private readonly tunnels = new Set<Socket>();
  private localPort = 0;

  constructor(options: Partial<RouterOptions> = {}) {
    this.opts = Object.freeze({ ...defaultRouterOptions(), ...options });
    this.server = createServer({ noDelay: true }, (req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = this.opts.keepAliveTimeoutMs;
    this.server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) =>
      this.tunnel(req, socket, head),
    );
    this.server.on("clientError", (err, socket: Socket) => {
      if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
      else socket.destroy(err);
    });
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
          pool = new Pool(`http://${key}`, {
            connections: this.opts.maxConnectionsPerBackend,
            connectTimeout: this.opts.connectTimeoutMs,
            headersTimeout: this.opts.timeoutMs,
            bodyTimeout: this.opts.timeoutMs,
            keepAliveTimeout: 30_000,
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
      };
      return { ...cr, state };
    });
    this.routes = live;
    for (const [key, pool] of this.pools) {
      if (used.has(key)) continue;
      this.pools.delete(key);
      // In-flight requests finish; new ones cannot reach this pool any more.
      pool.close().catch(() => {});
    }
    for (const p of problems) this.opts.log.warn(p);
    return problems;
  }

  /** Stops serving: closes the listener, every client and backend connection and every tunnel. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    for (const s of this.tunnels) s.destroy();
    this.tunnels.clear();
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy().catch(() => {})));
    await closed;
  }

  /** The backend for a request on `live`, and whether its sticky cookie must be (re)set. */
  private pick(live: Live, cookieHeader: string | undefined): { b: Backend; setCookie: boolean } {
    const st = live.state;
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

  /** The request headers for the backend, as a flat [name, value, ...] list. */
  private forwardHeaders(req: IncomingMessage, upgrade: boolean): string[] {
    const raw = req.rawHeaders;
    const out: string[] = [];
    let dropNamed: Set<string> | undefined;
    const conn = req.headers.connection;
    if (conn !== undefined && conn.includes(",")) {
      dropNamed = new Set(conn.split(",").map((s) => s.trim().toLowerCase()));
    } else if (conn !== undefined) {
      const c = conn.trim().toLowerCase();
      if (c !== "keep-alive" && c !== "close" && c !== "upgrade") dropNamed = new Set([c]);
    }
    let prior: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const lower = name.toLowerCase();
      if (lower === "x-forwarded-for") {
        prior = prior === undefined ? raw[i + 1]! : `${prior}, ${raw[i + 1]!}`;
        continue;
      }
      if (DROP_REQUEST.has(lower) || dropNamed?.has(lower)) continue;
      out.push(name, raw[i + 1]!);
    }
    const ip = clientIp(req.socket);
    out.push("X-Forwarded-For", prior === undefined ? ip : `${prior}, ${ip}`);
    out.push("X-Forwarded-Proto", "http");
    if (req.headers.host !== undefined) out.push("X-Forwarded-Host", req.headers.host);
    out.push("X-Forwarded-Port", String(this.localPort));
    out.push("X-Real-Ip", ip);
    if (upgrade) out.push("Connection", "Upgrade", "Upgrade", req.headers.upgrade ?? "");
    return out;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    let bytes = 0;
    if (this.opts.accessLog !== undefined) {
      const log = this.opts.accessLog;
      const at = this.opts.now();
      res.once("finish", () => {
        const size = bytes > 0 ? String(bytes) : "-";
        log(
          `${clientIp(req.socket) || "-"} - - [${clfTime(at)}] "${req.method} ${req.url} HTTP/${req.httpVersion}" ${res.statusCode} ${size}`,
        );
      });
    }
    const host = requestHost(req.headers.host);
    const live = findRoute(this.routes, host, requestPath(req.url)) as Live | undefined;
    if (live === undefined) {
      bytes = this.fail(res, 404, `no route for host "${host}"`);
      return;
    }
    if (live.state.backends.length === 0) {
      bytes = this.fail(res, 503, `no healthy backend for service ${live.state.route.service}`);
      return;
    }
    const { b, setCookie } = this.pick(live, req.headers.cookie);
    const cl = req.headers["content-length"];
    const hasBody =
      (cl !== undefined && cl !== "0") || req.headers["transfer-encoding"] !== undefined;
    const timeoutMs = this.opts.timeoutMs;
    let abort: ((err?: Error) => void) | undefined;
    let done = false;
    res.once("close", () => {
      if (!done) abort?.(new Error("client went away"));
    });

    const handler: Dispatcher.DispatchHandlers = {
      onConnect: (a) => {
        abort = a;
      },
      onHeaders: (status, rawHeaders, resume, statusText) => {
        if (status < 200) return true; // 1xx: the final head follows
        const out: string[] = [];
        for (let i = 0; i < rawHeaders.length; i += 2) {
          const name = rawHeaders[i]!.toString("latin1");
          if (DROP_RESPONSE.has(name.toLowerCase())) continue;
          out.push(name, rawHeaders[i + 1]!.toString("latin1"));
        }
        if (setCookie) {
          const sticky = live.state.route.sticky!;
          out.push("Set-Cookie", `${sticky.name}=${b.cookie}${live.state.cookieAttrs}`);
        }
        res.sendDate = false;
        // Head and the body chunks parsed from the same read leave in one write (writev).
        res.cork();
        process.nextTick(uncork, res);
        res.writeHead(status, statusText, out);
        res.on("drain", () => resume());
        return true;
      },
      onData: (chunk) => {
        bytes += chunk.length;
        return res.write(chunk);
      },
      onComplete: () => {
        done = true;
        res.end();
      },
      onError: (err: Error & { code?: string }) => {
        done = true;
        if (res.destroyed) return;
        if (res.headersSent) {
          res.destroy(err);
          return;
        }
        const f = backendFailure(err, b.key, timeoutMs);
        this.opts.log.debug(`${req.method} ${host}${req.url} -> ${b.key}: ${err.message}`);
        bytes = this.fail(res, f.status, f.reason);
      },
    };
    b.pool.dispatch(
      {
        method: req.method as Dispatcher.HttpMethod,
        path: req.url ?? "/",
        headers: this.forwardHeaders(req, false),
        body: hasBody ? req : null,
      },
      handler,
    );
  }

  /** Answers with `status` and `reason` as a one-line text body; returns the body's size. */
  private fail(res: ServerResponse, status: number, reason: string): number {
    const body = Buffer.from(`${reason}\n`);
    res.writeHead(status, {
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Length": body.length,
    });
    res.end(body);
    return body.length;
  }

  /** An Upgrade request (WebSocket): a raw pipe to a backend, both ways, until either closes. */
  private tunnel(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const reject = (status: number, reason: string) => {
      const body = `${reason}\n`;
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    };
    socket.on("error", () => socket.destroy());
    const host = requestHost(req.headers.host);
    const live = findRoute(this.routes, host, requestPath(req.url)) as Live | undefined;
    if (live === undefined) return reject(404, `no route for host "${host}"`);
    if (live.state.backends.length === 0) {
      return reject(503, `no healthy backend for service ${live.state.route.service}`);
    }
    const { b } = this.pick(live, req.headers.cookie);
    const up = createConnection({ host: b.host, port: b.port, noDelay: true });
    this.tunnels.add(socket);
    this.tunnels.add(up);
    let connected = false;
    up.setTimeout(this.opts.connectTimeoutMs, () => {
      if (!connected)
        up.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" }));
    });
    up.once("connect", () => {
      connected = true;
      up.setTimeout(0);
      const h = this.forwardHeaders(req, true);
      let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let i = 0; i < h.length; i += 2) text += `${h[i]}: ${h[i + 1]}\r\n`;
      up.write(`${text}\r\n`);
      if (head.length > 0) up.write(head);
      socket.pipe(up);
      up.pipe(socket);
    });
    up.on("error", (err: Error & { code?: string }) => {
      if (!connected && socket.writable) {
        const f = backendFailure(err, b.key, this.opts.timeoutMs);
        reject(f.status, f.reason);
      } else socket.destroy();
    });
    const cleanup = () => {
      this.tunnels.delete(socket);
      this.tunnels.delete(up);
      socket.destroy();
      up.destroy();
    };
    socket.once("close", cleanup);
    up.once("close", () => {
      // A refused connection has already answered the client; let that answer flush.
      if (connected) cleanup();
      else {
        this.tunnels.delete(up);
        this.tunnels.delete(socket);
      }
    });
  }
}

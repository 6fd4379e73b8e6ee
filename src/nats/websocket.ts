// NATS over WebSocket (nats-server's `websocket {}` block): an HTTP listener that upgrades
// requests to WebSocket connections after nats-server's checks (method, headers, Origin), and an
// adapter that lets the ordinary Client read and write the NATS protocol through binary frames,
// so WebSocket and TCP clients share one parser, one delivery path and one subject space.
// Framing and permessage-deflate are the `ws` package's; it unmasks client frames with
// `bufferutil`'s native code (an optional dependency, prebuilt: ws's own JavaScript byte loop cost
// the server about twice the CPU per 1 KiB message, docs/benchmarks.md).

import type { IncomingMessage, Server as HttpServer } from "node:http";
import type { Duplex } from "node:stream";
import type { Socket } from "node:net";
import type { WebSocketServer, WebSocket } from "ws";
import { Client, type ClientSocket } from "./client.js";
import { CloseReason, type CloseReasonText } from "./errors.js";
import { clientUrlsFor } from "./cluster.js";
import type { Options, WebsocketOptions } from "./options.js";
import type { Server } from "./server.js";
import { joinHostPort } from "../lib/addr.js";

/** nats-server compresses nothing of 64 bytes or less (wsCompressThreshold). */
const COMPRESS_THRESHOLD = 65;

/** The WebSocket close status nats-server sends for each reason a connection is closed. */
export function wsCloseStatus(reason: CloseReasonText | ""): number {
  switch (reason) {
    case CloseReason.ClientClosed:
      return 1000;
    case CloseReason.AuthTimeout:
    case CloseReason.AuthViolation:
    case CloseReason.SlowConsumerPendingBytes:
    case CloseReason.SlowConsumerWriteDeadline:
    case CloseReason.MaxConnections:
    case CloseReason.MaxControlLine:
      return 1008;
    case CloseReason.ProtocolViolation:
    case CloseReason.BadClientProtocol:
      return 1002;
    case CloseReason.MaxPayload:
      return 1009;
    case CloseReason.ServerShutdown:
      return 1001;
    case CloseReason.WriteError:
    case CloseReason.ReadError:
    case CloseReason.StaleConnection:
      // 1006 may not be sent in a close frame; nats-server sends it anyway, ws refuses it.
      return 1011;
    default:
      return 1011;
  }
}

/** A close frame's reason is at most 123 bytes; nats-server cuts longer ones with "...". */
function closeText(reason: string): string {
  return reason.length > 123 ? `${reason.slice(0, 120)}...` : reason;
}

/**
 * What a Client sees as its socket: writes become binary frames, pause/resume stop and restart
 * reading frames, end sends a close frame carrying the client's close reason.
 */
export class WsConn implements ClientSocket {
  readonly websocket = true;
  /** Set once the client exists: its close reason goes into the close frame. */
  client: Client | null = null;

  constructor(
    readonly ws: WebSocket,
    private readonly raw: Socket,
    readonly remoteAddress: string | undefined,
    readonly remotePort: number | undefined,
  ) {}

  get writableLength(): number {
    return this.ws.bufferedAmount;
  }

  get destroyed(): boolean {
    return this.raw.destroyed;
  }

  write(chunk: Uint8Array, cb?: (err?: Error | null) => void): boolean {
    this.ws.send(chunk, { binary: true }, cb);
    return true;
  }

  cork(): void {
    this.raw.cork();
  }

  uncork(): void {
    this.raw.uncork();
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  end(): void {
    const reason = this.client?.closeReason ?? "";
    this.ws.close(wsCloseStatus(reason), closeText(reason));
  }

  destroy(): void {
    this.ws.terminate();
  }
}

/** An origin as nats-server compares it: lower-case host, port (defaulted by scheme), scheme. */
interface Origin {
  scheme: string;
  host: string;
  port: string;
}

function parseOrigin(text: string): Origin | null {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return null;
  }
  const scheme = u.protocol.replace(/:$/, "");
  const port = u.port !== "" ? u.port : defaultPort(scheme === "https");
  return { scheme, host: u.hostname.replace(/^\[|\]$/g, "").toLowerCase(), port };
}

function defaultPort(tls: boolean): string {
  return tls ? "443" : "80";
}

/** "host[:port]" of a Host header into host and port (the default port when it has none). */
function hostAndPort(hostport: string, tls: boolean): { host: string; port: string } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(hostport);
  const host = (m?.[1] ?? hostport).replace(/^\[|\]$/g, "").toLowerCase();
  const port = m?.[2] !== undefined && m[2] !== "" ? m[2] : defaultPort(tls);
  return { host, port };
}

/** Does a header hold `value` among its comma-separated tokens (case-insensitively)? */
function headerContains(req: IncomingMessage, name: string, value: string): boolean {
  const raw = req.headers[name.toLowerCase()];
  const list = Array.isArray(raw) ? raw : raw === undefined ? [] : [raw];
  const want = value.toLowerCase();
  return list.some((s) => s.split(",").some((t) => t.trim().toLowerCase() === want));
}

class HandshakeError extends Error {
  readonly code = "ERR_WS_HANDSHAKE";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The WebSocket listener of a message server. */
export class WebsocketListener {
  private readonly http: HttpServer;
  /** Made by listen(): `ws` is loaded only by a server that has a websocket block. */
  private wss: WebSocketServer | null = null;
  private allowed = new Map<string, Origin>();
  /** The port actually bound (differs from opts.port when it was -1). */
  port = 0;
  /** The block has its own authorization, which WebSocket clients are checked against. */
  readonly authOverride: boolean;

  constructor(
    private readonly server: Server,
    readonly opts: Readonly<WebsocketOptions>,
  ) {
    this.authOverride = opts.username !== "" || opts.token !== "" || opts.noAuthUser !== "";
    for (const text of opts.allowedOrigins) {
      const o = parseOrigin(text);
      if (o === null) server.log.error(`error parsing allowed origin: ${text}`);
      else this.allowed.set(o.host, o);
    }
    // node:http (and ws, in listen) are loaded only by a server with a websocket block.
    this.http = process.getBuiltinModule("node:http").createServer((req) => {
      // Not an upgrade request: nats-server's handler answers it with the first failed check.
      const err = this.check(req);
      this.fail(
        req,
        err ?? new HandshakeError(400, "invalid value for header 'Upgrade'"),
        req.socket,
      );
    });
    this.http.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.upgrade(req, socket as Socket, head),
    );
    this.http.on("connection", (socket: Socket) => {
      if (opts.handshakeTimeoutMs > 0) {
        socket.setTimeout(opts.handshakeTimeoutMs, () => socket.destroy());
      }
    });
    this.http.on("clientError", (_err, socket: Duplex) => socket.destroy());
  }

  async listen(): Promise<void> {
    const log = this.server.log;
    const { WebSocketServer } = await import("ws");
    this.wss ??= new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: 0,
      perMessageDeflate: this.opts.compression
        ? {
            serverNoContextTakeover: true,
            clientNoContextTakeover: true,
            threshold: COMPRESS_THRESHOLD,
          }
        : false,
    });
    const http = this.http;
    await new Promise<void>((resolve, reject) => {
      http.once("error", reject);
      const port = this.opts.port < 0 ? 0 : this.opts.port;
      http.listen({ host: this.opts.host, port, exclusive: true }, () => {
        http.off("error", reject);
        resolve();
      });
    });
    const addr = http.address();
    this.port = typeof addr === "object" && addr !== null ? addr.port : this.opts.port;
    log.info(`Listening for websocket clients on ws://${joinHostPort(this.opts.host, this.port)}`);
    log.warn("Websocket not configured with TLS. DO NOT USE IN PRODUCTION!");
  }

  /** ws:// URLs clients can reach this listener on (the ports file's "websocket" entry). */
  urls(): string[] {
    return this.connectUrls().map((hp) => `ws://${hp}`);
  }

  /** host:port pairs advertised to WebSocket clients. */
  connectUrls(): string[] {
    return clientUrlsFor(this.opts.host, this.port, this.opts.advertise);
  }

  /**
   * The server's options as a WebSocket client's credentials are checked with them: the block's
   * user/password or token replaces the server's; its no_auth_user picks from the server's users.
   */
  authOptions(server: Readonly<Options>): Readonly<Options> {
    const o = this.opts;
    return {
      ...server,
      username: o.username,
      password: o.password,
      authToken: o.token,
      noAuthUser: o.noAuthUser,
    };
  }

  authTimeoutMs(server: Readonly<Options>): number {
    return this.opts.authTimeoutMs ?? server.authTimeoutMs;
  }

  /** /varz's `websocket` section (nats-server's WebsocketOptsVarz: empty fields left out). */
  varz(): Record<string, unknown> {
    const o = this.opts;
    const v: Record<string, unknown> = { host: o.host, port: this.port };
    if (o.advertise) v["advertise"] = o.advertise;
    if (o.noAuthUser) v["no_auth_user"] = o.noAuthUser;
    if (o.handshakeTimeoutMs > 0) v["handshake_timeout"] = o.handshakeTimeoutMs * 1e6;
    if (o.authTimeoutMs !== null && o.authTimeoutMs > 0) {
      v["auth_timeout"] = o.authTimeoutMs / 1000;
    }
    if (o.noTls) v["no_tls"] = true;
    if (o.sameOrigin) v["same_origin"] = true;
    if (o.allowedOrigins.length > 0) v["allowed_origins"] = [...o.allowedOrigins];
    if (o.compression) v["compression"] = true;
    return v;
  }

  async close(): Promise<void> {
    const http = this.http;
    if (!http.listening) return;
    await new Promise<void>((r) => http.close(() => r()));
  }

  /** nats-server's checks of an upgrade request (RFC 6455 4.2.1), in its order. */
  private check(req: IncomingMessage): HandshakeError | null {
    if (req.method !== "GET") return new HandshakeError(405, "request method must be GET");
    if (!req.headers.host) return new HandshakeError(400, "'Host' missing in request");
    if (!headerContains(req, "Upgrade", "websocket")) {
      return new HandshakeError(400, "invalid value for header 'Upgrade'");
    }
    if (!headerContains(req, "Connection", "Upgrade")) {
      return new HandshakeError(400, "invalid value for header 'Connection'");
    }
    if (!req.headers["sec-websocket-key"]) return new HandshakeError(400, "key missing");
    if (!headerContains(req, "Sec-Websocket-Version", "13")) {
      return new HandshakeError(400, "invalid version");
    }
    const origin = this.checkOrigin(req);
    if (origin !== null) return new HandshakeError(403, `origin not allowed: ${origin}`);
    return null;
  }

  /** Why the request's Origin is refused, or null (no Origin header is always accepted). */
  private checkOrigin(req: IncomingMessage): string | null {
    const o = this.opts;
    if (!o.sameOrigin && this.allowed.size === 0) return null;
    const header = req.headers["origin"] ?? req.headers["sec-websocket-origin"];
    const text = Array.isArray(header) ? (header[0] ?? "") : (header ?? "");
    if (text === "") return null;
    const origin = parseOrigin(text);
    if (origin === null) return `parse ${JSON.stringify(text)}: invalid URI for request`;
    if (o.sameOrigin) {
      const req2 = hostAndPort(req.headers.host ?? "", false);
      if (origin.host !== req2.host || origin.port !== req2.port) return "not same origin";
    }
    if (this.allowed.size > 0) {
      const ao = this.allowed.get(origin.host);
      if (ao === undefined || ao.scheme !== origin.scheme || ao.port !== origin.port) {
        return "not in the allowed list";
      }
    }
    return null;
  }

  /** Answers a refused handshake as Go's http.Error does, and logs it as nats-server does. */
  private fail(req: IncomingMessage, err: HandshakeError, socket: Duplex): void {
    const remote = joinHostPort(
      (req.socket.remoteAddress ?? "").replace(/^::ffff:/, ""),
      req.socket.remotePort ?? 0,
    );
    this.server.log.error(`${remote} - websocket handshake error: ${err.message}`);
    const text = process.getBuiltinModule("node:http").STATUS_CODES[err.status] ?? "Error";
    const body = `${text}\n`;
    socket.end(
      `HTTP/1.1 ${err.status} ${text}\r\n` +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Sec-Websocket-Version: 13\r\n" +
        "X-Content-Type-Options: nosniff\r\n" +
        `Date: ${new Date().toUTCString()}\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n` +
        body,
    );
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const server = this.server;
    const err = this.check(req);
    if (err !== null) {
      this.fail(req, err, socket);
      return;
    }
    if (server.isClosing()) {
      socket.destroy();
      return;
    }
    socket.setTimeout(0);
    this.wss!.handleUpgrade(req, socket, head, (ws) => this.attach(ws, socket));
  }

  /** A completed upgrade: a Client reading and writing through the WebSocket. */
  private attach(ws: WebSocket, raw: Socket): void {
    const server = this.server;
    raw.setNoDelay(true);
    const conn = new WsConn(ws, raw, raw.remoteAddress, raw.remotePort);
    const c = new Client(server, server.newCid(), conn);
    conn.client = c;
    ws.on("message", (data: Buffer) => {
      server.producer = c;
      c.onData(data);
      server.flushPending();
      server.producer = null;
    });
    ws.on("error", (e) => {
      server.log.debug(`${c.tag} - Client connection error: ${e.message}`);
      c.close(CloseReason.ReadError);
    });
    ws.on("close", () => c.close(CloseReason.ClientClosed));
    raw.on("drain", () => c.onDrain());
    server.register(c);
  }
}

// One client connection: reads the protocol through the parser, applies CONNECT, SUB, UNSUB,
// PUB and HPUB, delivers MSG/HMSG to its subscriptions, and enforces the per-client limits
// (max payload, auth and permissions, max subscriptions, slow consumer, stale connection).
// Outbound bytes are queued and flushed by the server once per read (see Server.flushPending).

import { Parser, Op, splitArgs, parseSize, type OpCode, type ParserSink } from "./parser.js";
import {
  CloseReason,
  ErrText,
  ProtocolError,
  pubViolation,
  subViolation,
  type CloseReasonText,
} from "./errors.js";
import { Outbound, type ByteSink } from "./outbound.js";
import { copyBytes, writeAscii, writeUint } from "./bytes.js";
import { Subscription, type MsgTarget } from "./subscription.js";
import { isValidLiteralSubject, isValidSubject, isValidQueueName } from "./subject.js";
import { authenticate, newNonce, type CompiledPermissions, type ConnectAuth } from "./auth.js";
import { tighter, type JwtLimits } from "./jwt.js";
import type { Server } from "./server.js";
import type { Options } from "./options.js";
import type { Account } from "./accounts.js";
import type { Sublist } from "./sublist.js";
import { USER_INFO_SUBJECT } from "./sysreq.js";
import { goQuote } from "./log.js";
import { monotonicMs } from "../lib/lazy.js";

/** What a client connection reads from and writes to: a TCP socket, or a WebSocket (websocket.ts). */
export interface ClientSocket extends ByteSink {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  /** Set on a WebSocket connection. */
  readonly websocket?: boolean;
  readonly destroyed: boolean;
  pause(): unknown;
  resume(): unknown;
  end(): unknown;
  destroy(): unknown;
}

/** What the client said in CONNECT; fields it leaves out keep nats-server's defaults. */
export interface ConnectOptions {
  verbose: boolean;
  pedantic: boolean;
  echo: boolean;
  headers: boolean;
  no_responders: boolean;
  name: string;
  lang: string;
  version: string;
  protocol: number;
  user?: string;
  pass?: string;
  auth_token?: string;
  nkey?: string;
  sig?: string;
  jwt?: string;
  tls_required?: boolean;
}

/**
 * Bytes a client connection hands to its socket before the kernel has taken them (at most an
 * eighth of max_pending); the rest waits in its Outbound. Node sends all a socket holds as one
 * write, which completes only once the peer has read it all: a bounded hand-off keeps completions
 * (progress, room under max_pending) coming.
 */
export const WRITE_WINDOW = 512 * 1024;

/** Bounds of a fast producer's pause while a consumer is behind (nats-server's stall, in ms). */
export const STALL_MIN_MS = 10;
export const STALL_MAX_MS = 250;

/**
 * How long to pause a producer feeding a consumer `pending` bytes behind: the minimum at half of
 * max_pending, one more minimum for every further twentieth of it, the maximum beyond max_pending.
 */
export function stallMs(pending: number, maxPending: number): number {
  if (pending >= maxPending) return STALL_MAX_MS;
  const half = maxPending / 2;
  const steps = pending > half ? Math.floor((pending - half) / (maxPending / 20)) : 0;
  return Math.min(STALL_MAX_MS, STALL_MIN_MS * (1 + steps));
}

const NO_RESPONDERS_HDR = "NATS/1.0 503\r\n\r\n";

/** The JSON type of each CONNECT field shoal reads, by lower-case name (nats-server's ClientOpts). */
const CONNECT_FIELDS: Record<string, ["boolean" | "string" | "integer", string]> = {
  verbose: ["boolean", "verbose"],
  pedantic: ["boolean", "pedantic"],
  echo: ["boolean", "echo"],
  headers: ["boolean", "headers"],
  no_responders: ["boolean", "no_responders"],
  tls_required: ["boolean", "tls_required"],
  new_account: ["boolean", "new_account"],
  name: ["string", "name"],
  lang: ["string", "lang"],
  version: ["string", "version"],
  user: ["string", "user"],
  pass: ["string", "pass"],
  auth_token: ["string", "auth_token"],
  nkey: ["string", "nkey"],
  jwt: ["string", "jwt"],
  sig: ["string", "sig"],
  account: ["string", "account"],
  protocol: ["integer", "protocol"],
};

/** Parses a JSON object (or null, which is no fields) like Go's json.Unmarshal into a struct. */
function decodeJsonObject(arg: Buffer, op: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(arg.toString("utf8"));
  } catch (err) {
    throw new ProtocolError(null, `invalid ${op}: ${(err as Error).message}`);
  }
  if (v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) {
    throw new ProtocolError(null, `invalid ${op}: not a JSON object`);
  }
  return v as Record<string, unknown>;
}

/**
 * Decodes CONNECT as nats-server does: field names match case-insensitively, a null value leaves
 * the field as it was, unknown fields are ignored, and a value of the wrong type is an error
 * (the connection is closed without -ERR).
 */
function decodeConnect(arg: Buffer): { opts: Partial<ConnectOptions>; account: boolean } {
  const raw = decodeJsonObject(arg, "CONNECT");
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const field = CONNECT_FIELDS[key.toLowerCase()];
    if (field === undefined || value === null) continue;
    const [type, name] = field;
    const ok = type === "integer" ? Number.isSafeInteger(value) : typeof value === type;
    if (!ok) throw new ProtocolError(null, `invalid CONNECT: bad type for "${key}"`);
    out[name] = value;
  }
  const account = out["new_account"] === true || (out["account"] ?? "") !== "";
  delete out["new_account"];
  delete out["account"];
  return { opts: out as Partial<ConnectOptions>, account };
}

/** A password in a CONNECT: the first `pass...` key and its value, as nats-server finds it. */
const PASSWORD = /"?\s*pass\S*?"?\s*[:=]\s*"?([^",\r\n}]*)/;

/** CONNECT's text for the trace, with the password's value replaced by [REDACTED] (nats-server's). */
export function redactPassword(arg: Buffer): Buffer {
  const text = arg.toString("latin1");
  const m = PASSWORD.exec(text);
  if (m === null) return arg;
  const end = m.index + m[0].length;
  const start = end - m[1]!.length;
  return Buffer.from(text.slice(0, start) + "[REDACTED]" + text.slice(end), "latin1");
}

export class Client implements ParserSink, MsgTarget {
  readonly kind = "Client";
  readonly parser: Parser;
  readonly out = new Outbound();
  readonly subs = new Map<string, Subscription>();
  readonly start = new Date();
  readonly host: string;
  readonly port: number;
  /** `127.0.0.1:54321 - cid:5` — the prefix of this connection's log lines. */
  readonly tag: string;
  opts: ConnectOptions = {
    verbose: true,
    pedantic: true,
    echo: true,
    headers: false,
    no_responders: false,
    name: "",
    lang: "",
    version: "",
    protocol: 0,
  };
  user = "";
  /** The account this connection publishes and subscribes in (its user's; $G until CONNECT). */
  acc: Account;
  /** acc's subject index, where this connection's messages are matched. */
  sublist: Sublist<Subscription>;
  /** The connection went through a TLS handshake. */
  tlsSecure = false;
  /** A TLS handshake is under way: nothing is written to the socket until it completes. */
  tlsPending = false;
  /** verify_and_map: the client certificate's identities, matched against the users. */
  certIdentities: string[] | undefined;
  perms: CompiledPermissions | null = null;
  /** A JWT user's limits, beyond the server's (-1: none; auth.ts AuthResult.limits). */
  private userMaxPayload = -1;
  private userMaxSubs = -1;
  /** A JWT user's payload limit differs from the server's: INFO tells it after the first PONG. */
  private jwtInfoPending = false;
  /** The nonce sent in INFO for an NKey user to sign ("" when the server has no NKey users). */
  readonly nonce: string;
  /** URL resolver: bytes of a CONNECT line not complete yet, and bytes held during a fetch. */
  private preConnect: Buffer | null = null;
  private held: Buffer[] | null = null;
  /** The account was fetched (or could not be): CONNECT is processed now, whatever came of it. */
  private lookedUp = false;
  /** The credentials of CONNECT, kept to check them again when the users are reloaded. */
  private credentials: ConnectAuth = {};
  connectReceived = false;
  /** CONNECT must come first, with credentials (the server's, or a websocket block's). */
  private readonly authRequired: boolean;
  closed = false;
  closeReason: CloseReasonText | "" = "";
  stopTime: Date | null = null;
  lastActivity = new Date();
  rtt = 0;
  private pingSentAt = 0;
  inMsgs = 0;
  inBytes = 0;
  outMsgs = 0;
  outBytes = 0;
  pingsOut = 0;
  /** Queued in the server's pending-flush list. */
  flushQueued = false;
  /** Writes the kernel has taken in full: the progress a write deadline watches. */
  writesDone = 0;
  /** writesDone when the server last looked, and since when it has not moved (0 = moving). */
  seenWrites = 0;
  stuckSince = 0;
  /** Producers paused because this connection is behind, resumed when it catches up. */
  private stalledProducers: Client[] | null = null;
  /** This connection's reads are paused (a consumer it feeds is behind) until `stallUntil`. */
  stalled = false;
  private stallUntil = 0;
  private stallTimer: NodeJS.Timeout | null = null;
  /** How many times this connection was paused as a fast producer. */
  stalls = 0;
  private readonly written = (): void => this.onWritten();
  /** The authorization timeout before CONNECT; a JWT user's expiry after it (nats-server's atmr). */
  private authTimer: NodeJS.Timeout | null = null;
  // The message being received: set by the PUB/HPUB control line, used by its payload.
  private pubSubject = "";
  private pubReply = "";
  private pubHdr = -1;
  private readonly args = new Int32Array(8);

  constructor(
    readonly server: Server,
    readonly cid: number,
    /** A TCP socket (replaced by its TLSSocket once a TLS handshake completes) or a WebSocket. */
    public socket: ClientSocket,
  ) {
    this.host = socket.remoteAddress?.replace(/^::ffff:/, "") ?? "";
    this.port = socket.remotePort ?? 0;
    this.tag = `${this.host}:${this.port} - cid:${cid}`;
    this.acc = server.globalAccount;
    this.sublist = this.acc.sublist;
    this.parser = new Parser(this, { maxControlLine: server.opts.maxControlLine });
    this.nonce = server.nonceRequired ? newNonce() : "";
    const auth = server.authFor(socket);
    this.authRequired = auth.required;
    this.parser.requireConnect = auth.required;
    if (auth.required) {
      this.authTimer = setTimeout(() => {
        this.sendErr(ErrText.AuthTimeout);
        this.close(CloseReason.AuthTimeout);
      }, auth.timeoutMs);
      this.authTimer.unref();
    }
  }

  /** Bytes read from the socket. */
  onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastActivity = new Date();
    if (
      this.held !== null ||
      (!this.connectReceived && !this.lookedUp && this.server.opts.operator?.resolverUrl)
    ) {
      const now = this.holdForAccount(chunk);
      if (now === null) return;
      chunk = now;
    }
    try {
      this.parser.parse(chunk);
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.server.log.debug(`${this.tag} - ${err.message}`);
        if (err.errText !== null) this.sendErr(err.errText);
        this.close(
          err.errText === ErrText.MaxControlLine ? CloseReason.MaxControlLine : err.reason,
        );
      } else {
        this.server.log.error(`${this.tag} - ${(err as Error).stack ?? String(err)}`);
        this.close(CloseReason.ProtocolViolation);
      }
    }
  }

  /**
   * URL resolver: the bytes read before CONNECT is processed are held until CONNECT's account is
   * known: when its user JWT names an account the server does not know, the account is fetched
   * first (nats-server fetches it within CONNECT). Returns what to parse now, or null.
   */
  private holdForAccount(chunk: Buffer): Buffer | null {
    // Copies: the socket reads into a buffer it reuses.
    if (this.held !== null) {
      this.held.push(Buffer.from(chunk));
      return null;
    }
    const buf = this.preConnect === null ? chunk : Buffer.concat([this.preConnect, chunk]);
    this.preConnect = null;
    const eol = buf.indexOf(10);
    if (eol < 0) {
      if (buf.length > this.server.opts.maxControlLine) return buf;
      this.preConnect = Buffer.from(buf);
      return null;
    }
    const pub = connectAccount(buf.subarray(0, eol));
    if (pub === null || !this.server.urlResolver.missing(pub)) return buf;
    this.held = [Buffer.from(buf)];
    this.lookedUp = true;
    void this.server.urlResolver
      .resolve(pub)
      .catch((err: Error) =>
        this.server.log.debug(`${this.tag} - Account JWT lookup error: ${err.message}`),
      )
      .then(() => {
        const all = Buffer.concat(this.held!);
        this.held = null;
        this.onData(all);
      });
    return null;
  }

  // ---- ParserSink -------------------------------------------------------------------------

  control(op: OpCode, arg: Buffer): number {
    if (this.closed) return -1;
    if (!this.connectReceived && this.authRequired && op !== Op.CONNECT) {
      this.authViolation();
      throw new ProtocolError(null, "operation before CONNECT", CloseReason.AuthViolation);
    }
    const trace = this.server.log.traceEnabled;
    switch (op) {
      case Op.PUB:
        if (trace) this.traceIn("PUB", arg);
        return this.processPub(arg, 0, arg.length, false);
      case Op.HPUB:
        if (trace) this.traceIn("HPUB", arg);
        return this.processPub(arg, 0, arg.length, true);
      case Op.PING:
        if (trace) this.traceIn("PING", null);
        this.sendProto("PONG\r\n");
        if (this.jwtInfoPending) this.sendJwtInfo();
        return -1;
      case Op.PONG:
        if (trace) this.traceIn("PONG", null);
        this.pingsOut = 0;
        if (this.pingSentAt > 0) {
          this.rtt = monotonicMs() - this.pingSentAt;
          this.pingSentAt = 0;
        }
        return -1;
      case Op.SUB:
        if (trace) this.traceIn("SUB", arg);
        this.processSub(arg);
        return -1;
      case Op.UNSUB:
        if (trace) this.traceIn("UNSUB", arg);
        this.processUnsub(arg);
        return -1;
      case Op.CONNECT:
        if (trace) this.traceIn("CONNECT", redactPassword(arg));
        this.processConnect(arg);
        return -1;
      case Op.INFO:
        // nats-server decodes a client's INFO (and ignores it); bad JSON closes the connection.
        decodeJsonObject(arg, "INFO");
        return -1;
      case Op.OK:
        return -1;
      case Op.ERR:
        throw new ProtocolError(
          null,
          `client sent -ERR ${arg.toString()}`,
          CloseReason.ClientClosed,
        );
      default:
        throw new ProtocolError(ErrText.UnknownOp, "unexpected operation");
    }
  }

  payload(data: Buffer): void {
    this.payloadAt(data, 0, data.length);
  }

  pubAt(buf: Buffer, start: number, end: number): number {
    if (this.closed) return -1;
    if (this.server.log.traceEnabled || (!this.connectReceived && this.authRequired)) {
      return this.control(Op.PUB, buf.subarray(start, end));
    }
    return this.processPub(buf, start, end, false);
  }

  argsAt(
    _op: OpCode,
    buf: Buffer,
    start: number,
    end: number,
    toks: Int32Array,
    n: number,
    size: number,
  ): number {
    if (this.closed) return -1;
    if (this.server.log.traceEnabled) return this.pubAt(buf, start, end);
    const replyStart = n === 3 ? toks[2]! : -1;
    const replyEnd = n === 3 ? toks[3]! : -1;
    return this.acceptPub(buf, toks[0]!, toks[1]!, replyStart, replyEnd, -1, size);
  }

  payloadAt(buf: Buffer, start: number, end: number): void {
    if (this.closed) return;
    if (this.server.log.traceEnabled) {
      this.server.log.trace(`${this.tag} - <<- MSG_PAYLOAD: [${goQuote(buf, start, end)}]`);
    }
    const len = end - start;
    this.inMsgs++;
    this.inBytes += len;
    this.server.inMsgs++;
    this.server.inBytes += len;
    const subject = this.pubSubject;
    if (this.perms !== null && !this.perms.canPublish(subject)) {
      this.sendErr(pubViolation(subject));
      this.server.log.error(
        `${this.tag} - Publish Violation - User "${this.user}", Subject "${subject}"`,
      );
      return;
    }
    if (this.opts.verbose) this.sendProto("+OK\r\n");
    const reply = this.pubReply;
    const delivered = this.server.route(this, subject, reply, this.pubHdr, buf, null, start, end);
    if (
      subject.charCodeAt(0) === 36 /* $ */ &&
      this.server.claimsUpdate(
        this,
        subject,
        reply,
        buf.subarray(start + Math.max(0, this.pubHdr), end),
      )
    ) {
      return;
    }
    if (delivered === 0 && reply !== "") {
      if (subject === USER_INFO_SUBJECT) this.server.answerUserInfo(this, reply);
      else if (this.opts.no_responders && this.opts.headers) this.sendNoResponders(reply);
    }
  }

  // ---- protocol operations ------------------------------------------------------------------

  private processConnect(arg: Buffer): void {
    if (this.authTimer) {
      clearTimeout(this.authTimer);
      this.authTimer = null;
    }
    const parsed = decodeConnect(arg);
    this.opts = { ...this.opts, ...parsed.opts };
    this.connectReceived = true;
    this.parser.requireConnect = false;
    this.credentials = {
      user: parsed.opts.user,
      pass: parsed.opts.pass,
      auth_token: parsed.opts.auth_token,
      nkey: parsed.opts.nkey,
      sig: parsed.opts.sig,
      jwt: parsed.opts.jwt,
      nonce: this.nonce,
      certIdentities: this.certIdentities,
      host: this.host,
      connectionType: this.socket.websocket ? "WEBSOCKET" : "STANDARD",
    };
    const auth = authenticate(this.server.authFor(this.socket).opts, this.credentials, (why, e) =>
      this.server.log[e ? "error" : "debug"](`${this.tag} - ${why}`),
    );
    // Naming an account in CONNECT is refused too (nats-server's dynamic accounts are gone).
    if (auth === null || parsed.account) {
      this.authViolation();
      throw new ProtocolError(null, "authentication failed", CloseReason.AuthViolation);
    }
    const acc = this.server.account(auth.account);
    if (acc === undefined) {
      this.authViolation();
      throw new ProtocolError(null, "the user's account is gone", CloseReason.AuthViolation);
    }
    this.user = auth.user;
    this.perms = auth.permissions;
    if (auth.limits !== undefined) this.applyJwtLimits(acc, auth.limits, auth.expiresAt ?? null);
    // Subscriptions made before CONNECT (no authentication) are in $G, where the user is too.
    this.acc = acc;
    this.sublist = acc.sublist;
    if (this.server.opts.operator) this.server.loadedAccounts.add(acc.name);
    if (this.opts.protocol < 0 || this.opts.protocol > 1) {
      throw new ProtocolError(
        ErrText.BadClientProtocol,
        `bad client protocol ${this.opts.protocol}`,
        CloseReason.BadClientProtocol,
      );
    }
    if (this.opts.no_responders && !this.opts.headers) {
      throw new ProtocolError(
        ErrText.NoRespondersRequiresHeaders,
        "no_responders without headers",
        CloseReason.NoRespondersRequiresHeaders,
      );
    }
    if (this.opts.verbose) this.sendProto("+OK\r\n");
  }

  /**
   * A JWT user's limits (its own and its account's: subscriptions, payload, connections) and the
   * timer that closes the connection when its JWT expires, as nats-server's applyAccountLimits
   * and setExpiration.
   */
  private applyJwtLimits(acc: Account, limits: JwtLimits, expiresAt: number | null): void {
    const accLimits = this.server.opts.operator?.accounts.get(acc.name)?.limits;
    this.userMaxPayload = tighter(limits.payload, accLimits?.payload ?? -1);
    this.userMaxSubs = tighter(limits.subs, accLimits?.subs ?? -1);
    const maxPayload = tighter(this.userMaxPayload, this.server.opts.maxPayload);
    this.jwtInfoPending = maxPayload !== this.server.opts.maxPayload && this.opts.protocol >= 1;
    if (tighter(this.userMaxSubs, this.server.opts.maxSubscriptions || -1) === 0) {
      // nats-server's applyAccountLimits: a user already at its subscription limit is told so
      // and closed (20 ms later, as there).
      setImmediate(() => {
        if (this.closed) return;
        this.server.log.error(`${this.tag} - ${ErrText.MaxSubscriptions}`);
        this.sendErr(ErrText.MaxSubscriptions);
        setTimeout(() => this.close(CloseReason.MaxSubscriptions), 20).unref();
      });
    }
    const maxConn = accLimits?.conn ?? -1;
    if (maxConn >= 0) {
      let n = 0;
      for (const c of this.server.clients.values()) if (c.acc === acc && c !== this) n++;
      if (n >= maxConn) {
        this.server.log.error(`${this.tag} - ${ErrText.MaxAccountConnections}`);
        throw new ProtocolError(
          ErrText.MaxAccountConnections,
          "account connections exceeded",
          CloseReason.MaxAccountConnections,
        );
      }
    }
    if (expiresAt !== null) {
      this.authTimer = setTimeout(
        () => {
          this.authTimer = null;
          this.server.log.debug(`${this.tag} - ${ErrText.AuthExpired}`);
          this.sendErr(ErrText.AuthExpired);
          this.close(CloseReason.AuthExpired);
        },
        Math.max(0, expiresAt - Date.now()),
      );
      this.authTimer.unref();
    }
  }

  /**
   * nats-server's processPing: after the first PONG, a client whose JWT lowers the maximum payload
   * gets an INFO with its own `max_payload`.
   */
  private sendJwtInfo(): void {
    this.jwtInfoPending = false;
    const info = JSON.parse(this.server.infoLine(this).slice(5, -3)) as Record<string, unknown>;
    info["max_payload"] = tighter(this.userMaxPayload, this.server.opts.maxPayload);
    delete info["nonce"];
    this.sendProto(`INFO ${JSON.stringify(info)} \r\n`);
  }

  /**
   * Checks this client's credentials against reloaded users, as nats-server's reload does: a
   * client whose user is now in another account is closed (Client Closed, no -ERR: it reconnects
   * and lands where it now belongs); one whose credentials no longer pass is closed with an
   * Authorization Violation; the others get their new permissions, and lose the subscriptions
   * those no longer allow. (nats-server 2.9 closes a client whose user was removed without the
   * -ERR too; shoal sends it, which the control bus relies on to tell a removed node why.)
   */
  reauthorize(): void {
    if (this.closed || !this.connectReceived) return;
    const opts = this.server.authFor(this.socket).opts;
    if (this.userMoved(opts)) {
      this.server.log.debug(`${this.tag} - user moved to another account`);
      this.close(CloseReason.ClientClosed);
      return;
    }
    const auth = authenticate(opts, this.credentials);
    if (auth === null || this.server.account(auth.account) !== this.acc) {
      this.authViolation();
      this.close(CloseReason.AuthViolation);
      return;
    }
    this.user = auth.user;
    this.perms = auth.permissions;
    if (this.perms === null) return;
    for (const sub of [...this.subs.values()]) {
      if (this.perms.canSubscribe(sub.subject, sub.queue)) continue;
      this.sendErr(subViolation(sub.subject, sub.queue));
      this.unsubscribe(sub);
    }
  }

  /**
   * A user JWT whose CONNECT also named its nkey (as the official clients send it): nats-server
   * 2.9's configuration reload looks that nkey up among the configured nkey users, does not find
   * it, and closes the connection as moved (Client Closed); reload.ts does the same.
   */
  jwtUserWithNkey(): boolean {
    return (this.credentials.jwt ?? "") !== "" && (this.credentials.nkey ?? "") !== "";
  }

  /** Is the CONNECT's nkey or user name now in another account (nats-server's clientHasMovedToDifferentAccount)? */
  private userMoved(opts: Readonly<Options>): boolean {
    const { nkey, user } = this.credentials;
    let found: { account?: string | undefined } | undefined;
    if ((nkey ?? "") !== "") found = opts.nkeys.find((x) => x.nkey === nkey);
    else if ((user ?? "") !== "" && opts.username === "") {
      found = opts.users.find((x) => x.user === user);
    }
    return found !== undefined && this.server.account(found.account) !== this.acc;
  }

  private authViolation(): void {
    this.server.log.error(`${this.tag} - authentication error`);
    this.sendErr(ErrText.AuthViolation);
  }

  /** PUB subject [reply] size / HPUB subject [reply] hdr_size total_size */
  private processPub(arg: Buffer, from: number, to: number, headers: boolean): number {
    const a = this.args;
    const n = splitArgs(arg, a, false, from, to);
    let size: number;
    let hdr = -1;
    let replyIdx = -1;
    if (headers) {
      if (!this.opts.headers) throw new ProtocolError(null, "HPUB without headers support");
      if (n !== 3 && n !== 4) throw new ProtocolError(null, "processHeaderPub Parse Error");
      hdr = parseSize(arg, a[2 * (n - 2)]!, a[2 * (n - 2) + 1]!);
      size = parseSize(arg, a[2 * (n - 1)]!, a[2 * (n - 1) + 1]!);
      if (n === 4) replyIdx = 1;
      if (hdr < 0 || size < 0 || hdr > size) {
        throw new ProtocolError(
          null,
          `processHeaderPub Bad or Missing Size: '${arg.toString("latin1", from, to)}'`,
        );
      }
    } else {
      if (n !== 2 && n !== 3)
        throw new ProtocolError(
          null,
          `processPub Parse Error: '${arg.toString("latin1", from, to)}'`,
        );
      size = parseSize(arg, a[2 * (n - 1)]!, a[2 * (n - 1) + 1]!);
      if (n === 3) replyIdx = 1;
      if (size < 0)
        throw new ProtocolError(
          null,
          `processPub Bad or Missing Size: '${arg.toString("latin1", from, to)}'`,
        );
    }
    const replyStart = replyIdx > 0 ? a[2]! : -1;
    const replyEnd = replyIdx > 0 ? a[3]! : -1;
    return this.acceptPub(arg, a[0]!, a[1]!, replyStart, replyEnd, hdr, size);
  }

  /** A PUB/HPUB line split into its parts: checks the size, remembers subject and reply. */
  private acceptPub(
    buf: Buffer,
    subjectStart: number,
    subjectEnd: number,
    replyStart: number,
    replyEnd: number,
    hdr: number,
    size: number,
  ): number {
    if (
      size > this.server.opts.maxPayload ||
      (this.userMaxPayload >= 0 && size > this.userMaxPayload)
    ) {
      const max = tighter(this.server.opts.maxPayload, this.userMaxPayload);
      this.server.log.error(`${this.tag} - Maximum Payload Violation: ${size} > ${max}`);
      throw new ProtocolError(ErrText.MaxPayload, "max payload exceeded", CloseReason.MaxPayload);
    }
    this.pubSubject = this.server.subjectString(buf, subjectStart, subjectEnd);
    this.pubReply = replyStart >= 0 ? buf.toString("latin1", replyStart, replyEnd) : "";
    // A zero-length header block is no header: nats-server delivers such a message as MSG.
    this.pubHdr = hdr > 0 ? hdr : -1;
    if (this.opts.pedantic && !isValidLiteralSubject(this.pubSubject)) {
      this.sendErr(ErrText.InvalidPublishSubject);
    }
    return size;
  }

  /** SUB subject [queue] sid */
  private processSub(arg: Buffer): void {
    const a = this.args;
    const n = splitArgs(arg, a, true);
    if (n !== 2 && n !== 3)
      throw new ProtocolError(null, `processSub Parse Error: '${arg.toString()}'`);
    const subject = arg.toString("latin1", a[0]!, a[1]!);
    const queue = n === 3 ? arg.toString("latin1", a[2]!, a[3]!) : null;
    const sid = arg.toString("latin1", a[2 * (n - 1)]!, a[2 * (n - 1) + 1]!);
    // nats-server's order: permissions, the subscription limit, then the subject itself (checked
    // only when the sid is new).
    if (this.perms !== null && !this.perms.canSubscribe(subject, queue)) {
      this.sendErr(subViolation(subject, queue));
      this.server.log.error(
        `${this.tag} - Subscription Violation - User "${this.user}", Subject "${subject}", SID ${sid}`,
      );
      return;
    }
    const max = tighter(this.server.opts.maxSubscriptions || -1, this.userMaxSubs);
    if (max >= 0 && this.subs.size >= max) {
      this.sendErr(ErrText.MaxSubscriptions);
      this.server.log.error(`${this.tag} - Maximum Subscriptions Exceeded (max=${max})`);
      return;
    }
    if (!this.subs.has(sid)) {
      if (!isValidSubject(subject) || (queue !== null && !isValidQueueName(queue))) {
        this.sendErr(ErrText.InvalidSubject);
        return;
      }
      const sub = new Subscription(subject, queue, sid, this);
      this.subs.set(sid, sub);
      this.server.addSubscription(sub);
    }
    if (this.opts.verbose) this.sendProto("+OK\r\n");
  }

  /** UNSUB sid [max] */
  private processUnsub(arg: Buffer): void {
    const a = this.args;
    const n = splitArgs(arg, a, true);
    if (n !== 1 && n !== 2)
      throw new ProtocolError(null, `processUnsub Parse Error: '${arg.toString()}'`);
    const sid = arg.toString("latin1", a[0]!, a[1]!);
    const max = n === 2 ? parseSize(arg, a[2]!, a[3]!) : -1;
    // nats-server acknowledges before it removes the subscription (the trace shows that order).
    if (this.opts.verbose) this.sendProto("+OK\r\n");
    const sub = this.subs.get(sid);
    if (sub !== undefined) {
      if (max > 0 && max > sub.delivered) sub.max = max;
      else this.unsubscribe(sub);
    }
  }

  unsubscribe(sub: Subscription): void {
    if (sub.closed) return;
    if (this.server.log.traceEnabled)
      this.server.log.trace(`${this.tag} - <-> [DELSUB ${sub.sid}]`);
    sub.closed = true;
    this.subs.delete(sub.sid);
    this.server.removeSubscription(sub);
  }

  // ---- delivery -----------------------------------------------------------------------------

  /** Queues MSG (or HMSG) for one subscription; the hot path of every message. */
  deliver(
    sub: Subscription,
    subject: string,
    reply: string,
    hdrLen: number,
    payload: Buffer,
    pStart: number,
    pEnd: number,
  ): void {
    if (this.closed || sub.closed) return;
    if (sub.max > 0 && sub.delivered >= sub.max) return;
    if (this.perms !== null) {
      if (!this.perms.canDeliver(subject)) return;
      // allow_responses: this connection may now answer the request.
      if (reply !== "" && this.perms.responses !== null) this.perms.responses.delivered(reply);
    }
    let bodyStart = pStart;
    let withHeaders = hdrLen >= 0;
    if (withHeaders && !this.opts.headers) {
      // nats-server strips headers for clients that did not ask for them.
      bodyStart += hdrLen;
      withHeaders = false;
    }
    if (sub.max > 0 && sub.delivered + 1 >= sub.max && this.server.log.debugEnabled) {
      this.server.log.debug(
        `${this.tag} - Auto-unsubscribe limit of ${sub.max} reached for sid '${sub.sid}'`,
      );
    }
    const out = this.out;
    const sid = sub.sid;
    const headerRoom = 24 + subject.length + sid.length + reply.length + 24;
    const bodyLen = pEnd - bodyStart;
    const buf = out.reserve(headerRoom + bodyLen + 2);
    const start = out.at;
    let p = start;
    if (withHeaders) buf[p++] = 72; // H
    buf[p++] = 77; // M
    buf[p++] = 83; // S
    buf[p++] = 71; // G
    buf[p++] = 32;
    p = writeAscii(buf, p, subject);
    buf[p++] = 32;
    p = writeAscii(buf, p, sid);
    buf[p++] = 32;
    if (reply !== "") {
      p = writeAscii(buf, p, reply);
      buf[p++] = 32;
    }
    if (withHeaders) {
      p = writeUint(buf, p, hdrLen);
      buf[p++] = 32;
    }
    p = writeUint(buf, p, bodyLen);
    buf[p++] = 13;
    buf[p++] = 10;
    if (this.server.log.traceEnabled) {
      this.server.log.trace(`${this.tag} - ->> [${buf.toString("latin1", start, p - 2)}]`);
    }
    p = copyBytes(payload, bodyStart, pEnd, buf, p);
    buf[p++] = 13;
    buf[p++] = 10;
    out.advance(p - out.at);
    sub.delivered++;
    this.outMsgs++;
    this.outBytes += bodyLen;
    this.server.outMsgs++;
    this.server.outBytes += bodyLen;
    this.server.queueFlush(this);
    if (sub.max > 0 && sub.delivered >= sub.max) this.unsubscribe(sub);
  }

  private sendNoResponders(reply: string): void {
    for (const sub of this.subs.values()) {
      if (sub.queue === null && this.server.subjectMatches(reply, sub.subject)) {
        const hdr = Buffer.from(NO_RESPONDERS_HDR, "latin1");
        this.deliver(sub, reply, "", hdr.length, hdr, 0, hdr.length);
        return;
      }
    }
  }

  // ---- output -------------------------------------------------------------------------------

  sendProto(s: string): void {
    if (this.closed) return;
    if (this.server.log.traceEnabled) this.traceOut(s);
    this.out.appendString(s);
    this.server.queueFlush(this);
  }

  sendErr(text: string): void {
    this.sendProto(`-ERR '${text}'\r\n`);
  }

  sendPing(): void {
    this.pingsOut++;
    this.pingSentAt = monotonicMs();
    this.sendProto("PING\r\n");
    this.flush();
  }

  /** Bytes queued for this connection that the kernel has not taken yet. */
  pendingBytes(): number {
    return this.out.queued + this.socket.writableLength;
  }

  /**
   * Hands queued bytes to the socket and watches for slow consumers. A connection more than half
   * of max_pending behind pauses the producer whose message filled it (see stallProducer); one
   * far beyond max_pending is cut off at once, one just beyond it only once it stops reading
   * (Server.checkWriteDeadlines).
   */
  flush(): void {
    this.flushQueued = false;
    if (this.closed || this.tlsPending) return;
    const socket = this.socket;
    this.out.flush(socket, this.server.writeWindow, this.written);
    if (socket.writableLength === 0) return;
    const pending = this.out.queued + socket.writableLength;
    const max = this.server.opts.maxPending;
    if (pending <= max / 2) return;
    if (pending > max + max / 2) {
      this.slowConsumer(CloseReason.SlowConsumerPendingBytes);
      return;
    }
    const producer = this.server.producer;
    if (producer !== null && producer !== this) {
      producer.stallProducer(stallMs(pending, max));
      const waiting = (this.stalledProducers ??= []);
      if (!waiting.includes(producer)) waiting.push(producer);
    }
  }

  /** A write completed: flush more of what is held back, and let paused producers go on. */
  private onWritten(): void {
    this.writesDone++;
    if (this.closed) return;
    if (this.out.queued > 0) this.out.flush(this.socket, this.server.writeWindow, this.written);
    const waiting = this.stalledProducers;
    if (waiting !== null && this.pendingBytes() <= this.server.opts.maxPending / 2) {
      this.releaseProducers();
    }
  }

  /** The socket took everything it held after being full: let go of the output buffer. */
  onDrain(): void {
    this.out.release();
  }

  private releaseProducers(): void {
    const waiting = this.stalledProducers;
    this.stalledProducers = null;
    if (waiting !== null) for (const p of waiting) p.resumeReads();
  }

  /** Pauses this connection's reads for up to `ms` (longer if already paused for longer). */
  stallProducer(ms: number): void {
    if (this.closed) return;
    const until = Date.now() + ms;
    if (this.stalled) {
      if (until <= this.stallUntil) return;
      clearTimeout(this.stallTimer!);
    } else {
      this.stalled = true;
      this.stalls++;
      this.socket.pause();
    }
    this.stallUntil = until;
    this.stallTimer = setTimeout(() => {
      this.server.log.debug(`${this.tag} - Timed out of fast producer stall (${ms}ms)`);
      this.resumeReads();
    }, ms);
  }

  resumeReads(): void {
    if (!this.stalled) return;
    this.stalled = false;
    if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    if (!this.closed) this.socket.resume();
  }

  slowConsumer(reason: CloseReasonText): void {
    const o = this.server.opts;
    this.server.log.info(
      reason === CloseReason.SlowConsumerWriteDeadline
        ? `${this.tag} - Slow Consumer Detected: WriteDeadline of ${o.writeDeadlineMs / 1000}s exceeded`
        : `${this.tag} - Slow Consumer Detected: MaxPending of ${o.maxPending} Exceeded`,
    );
    this.server.slowConsumers++;
    this.close(reason);
  }

  /** Traces a protocol line sent, as nats-server: `+OK` as `[OK]`, `-ERR 'x'` as `[-ERR x]`, INFO not at all. */
  private traceOut(s: string): void {
    if (s.startsWith("INFO ")) return;
    // -ERR's text is traced without its quotes.
    const line =
      s === "+OK\r\n" ? "OK" : s.startsWith("-ERR '") ? `-ERR ${s.slice(6, -3)}` : s.slice(0, -2);
    this.server.log.trace(`${this.tag} - ->> [${line}]`);
  }

  private traceIn(op: string, arg: Buffer | null): void {
    const text = arg === null ? op : `${op} ${arg.toString("latin1")}`;
    this.server.log.trace(`${this.tag} - <<- [${text}]`);
  }

  /** Closes the connection, drops its interest, and tells the server. Idempotent. */
  close(reason: CloseReasonText): void {
    if (this.closed) return;
    const slow =
      reason === CloseReason.SlowConsumerPendingBytes ||
      reason === CloseReason.SlowConsumerWriteDeadline;
    // Let what is queued (e.g. a final -ERR) go out before the FIN.
    if (!slow) this.out.flush(this.socket);
    this.closed = true;
    this.closeReason = reason;
    this.stopTime = new Date();
    if (this.authTimer) clearTimeout(this.authTimer);
    this.resumeReads();
    this.releaseProducers();
    for (const sub of this.subs.values()) {
      sub.closed = true;
      this.server.removeSubscription(sub);
    }
    if (slow) {
      this.socket.destroy();
    } else {
      this.socket.end();
      // Don't wait forever for a peer that will not read our FIN.
      setTimeout(() => this.socket.destroy(), 2000).unref();
    }
    // Closed clients stay listed in /connz?state=closed: let go of their buffers now.
    this.parser.release();
    this.out.release(true);
    this.server.clientClosed(this, reason);
    // nats-server traces the subscriptions a closed connection leaves after saying it closed.
    if (this.server.log.traceEnabled) {
      for (const sub of this.subs.values()) {
        this.server.log.trace(`${this.tag} - <-> [DELSUB ${sub.sid}]`);
      }
    }
  }
}

/**
 * The account a CONNECT line's user JWT belongs to (its issuer_account, else its issuer), without
 * checking anything (processConnect does); null when the line is not such a CONNECT.
 */
function connectAccount(line: Buffer): string | null {
  const m = /^\s*CONNECT\s+(\{.*\})\s*$/is.exec(line.toString());
  if (m === null) return null;
  try {
    const jwt = (JSON.parse(m[1]!) as Record<string, unknown>)["jwt"];
    if (typeof jwt !== "string") return null;
    const claims = JSON.parse(Buffer.from(jwt.split(".")[1] ?? "", "base64url").toString()) as {
      iss?: unknown;
      nats?: { issuer_account?: unknown };
    };
    const acc = claims.nats?.issuer_account;
    if (typeof acc === "string" && acc !== "") return acc;
    return typeof claims.iss === "string" ? claims.iss : null;
  } catch {
    return null;
  }
}

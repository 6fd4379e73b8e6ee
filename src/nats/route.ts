// One route: a server-to-server connection speaking nats-server 2.9's route protocol.
//
//   solicitor → CONNECT {...,"name":<server id>,"cluster":...}  then INFO {...}
//   acceptor  → INFO {..., "nonce", "cluster", "connect_urls"} as soon as it accepts
//   both      → RS+ $G subject [queue weight] / RS- $G subject [queue]   (interest)
//              RMSG $G subject [reply | + reply queues... | | queues...] size   (messages)
//              HMSG $G subject [...] hdr_size total_size                          (with headers)
//              INFO {..., "ip": "nats-route://host:port/"}  (gossip of a new member)
//
// Every account is routed by name (nats-server's accounts must be configured alike on each
// server): interest and messages of an account this server does not know are ignored. The route
// stores the remote's interest as subscriptions in the account's index ($G's is the server's).

import type { Socket } from "node:net";
import { Parser, Op, splitArgs, parseSize, type OpCode, type ParserSink } from "./parser.js";
import { CloseReason, ErrText, ProtocolError, type CloseReasonText } from "./errors.js";
import { Outbound } from "./outbound.js";
import { Subscription, type MsgTarget } from "./subscription.js";
import type { Cluster } from "./cluster.js";
import type { Account } from "./accounts.js";
import { monotonicMs } from "../lib/lazy.js";

export const GLOBAL_ACCOUNT = "$G";

/** The fields of a route INFO we act on. */
export interface RouteInfo {
  server_id: string;
  server_name?: string;
  version?: string;
  host?: string;
  port?: number;
  cluster?: string;
  cluster_dynamic?: boolean;
  connect_urls?: string[];
  /** Set in gossip: the route URL of a member to connect to. */
  ip?: string;
  auth_required?: boolean;
  ldm?: boolean;
  headers?: boolean;
  max_payload?: number;
  /** The Go version a Go nats-server was built with; shoal does not send it. */
  go?: string;
}

export class Route implements ParserSink, MsgTarget {
  readonly kind = "Route";
  readonly parser: Parser;
  readonly out = new Outbound();
  readonly start = new Date();
  lastActivity = new Date();
  readonly host: string;
  readonly port: number;
  tag: string;
  /** The remote's INFO once received. */
  remote: RouteInfo | null = null;
  /** Remote interest by "subject" or "subject queue". */
  readonly remoteSubs = new Map<string, Subscription>();
  /** The account of each remote interest outside $G (whose keys start with the account). */
  private readonly remoteAccounts = new Map<string, Account>();
  /** The URL this route was dialled on (solicited routes). */
  url = "";
  /**
   * A URL to dial again when this accepted route closes: the one we dialled for a duplicate of
   * it that a Go peer made us drop (nats-server's "upgrade to solicited").
   */
  redialUrl = "";
  closed = false;
  connectReceived = false;
  registered = false;
  inMsgs = 0;
  outMsgs = 0;
  inBytes = 0;
  outBytes = 0;
  pingsOut = 0;
  rtt = 0;
  private pingSentAt = 0;
  flushQueued = false;
  /** Scratch used by Server.route while it builds one RMSG: see Server.route. */
  markEpoch = -1;
  readonly scratchQueues: string[] = [];
  // The message being received.
  private msgSubject = "";
  private msgReply = "";
  private msgHdr = -1;
  private msgAccount = "";
  private msgQueues: string[] | null = null;
  private readonly args = new Int32Array(64);

  constructor(
    readonly cluster: Cluster,
    readonly rid: number,
    readonly socket: Socket,
    /** We dialled it (vs accepted it). */
    readonly didSolicit: boolean,
    /** It is one of the routes from our configuration (vs learned by gossip or accepted). */
    readonly isConfigured: boolean,
  ) {
    this.host = socket.remoteAddress?.replace(/^::ffff:/, "") ?? "";
    this.port = socket.remotePort ?? 0;
    this.tag = `${this.host}:${this.port} - rid:${rid}`;
    this.parser = new Parser(this, { maxControlLine: 64 * 1024, route: true });
  }

  get remoteId(): string {
    return this.remote?.server_id ?? "";
  }

  onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastActivity = new Date();
    try {
      this.parser.parse(chunk);
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.cluster.log.error(`${this.tag} - Route protocol error: ${err.message}`);
        if (err.errText !== null) this.sendProto(`-ERR '${err.errText}'\r\n`);
        this.close(err.reason);
      } else {
        this.cluster.log.error(`${this.tag} - ${(err as Error).stack ?? String(err)}`);
        this.close(CloseReason.ProtocolViolation);
      }
    }
  }

  control(op: OpCode, arg: Buffer): number {
    if (this.closed) return -1;
    const log = this.cluster.log;
    if (log.traceEnabled && op !== Op.RMSG && op !== Op.HMSG) {
      log.trace(
        `${this.tag} - <<- [${opName(op)}${arg.length ? " " + arg.toString("latin1") : ""}]`,
      );
    }
    switch (op) {
      case Op.CONNECT:
        this.cluster.processRouteConnect(this, arg);
        return -1;
      case Op.INFO: {
        let info: RouteInfo;
        try {
          info = JSON.parse(arg.toString("utf8")) as RouteInfo;
        } catch (err) {
          throw new ProtocolError(null, `invalid route INFO: ${(err as Error).message}`);
        }
        this.cluster.processRouteInfo(this, info);
        return -1;
      }
      case Op.PING:
        this.sendProto("PONG\r\n");
        return -1;
      case Op.PONG:
        this.pingsOut = 0;
        if (this.pingSentAt > 0) {
          this.rtt = monotonicMs() - this.pingSentAt;
          this.pingSentAt = 0;
        }
        return -1;
      case Op.OK:
        return -1;
      case Op.ERR:
        log.error(`${this.tag} - Route Error ${arg.toString()}`);
        this.cluster.routeError(this, arg.toString());
        this.close(CloseReason.ParseError);
        return -1;
      case Op.RS_PLUS:
        this.requireRegistered();
        this.processSubPlus(arg);
        return -1;
      case Op.RS_MINUS:
        this.requireRegistered();
        this.processSubMinus(arg);
        return -1;
      case Op.RMSG:
        this.requireRegistered();
        return this.processMsgArgs(arg, false);
      case Op.HMSG:
        this.requireRegistered();
        return this.processMsgArgs(arg, true);
      default:
        throw new ProtocolError(ErrText.UnknownOp, `unexpected ${opName(op)} on a route`);
    }
  }

  private requireRegistered(): void {
    if (!this.registered) throw new ProtocolError(null, "route traffic before INFO");
  }

  /** RMSG $G subject [reply | + reply q... | | q...] size; HMSG adds hdr_size before size. */
  private processMsgArgs(arg: Buffer, headers: boolean): number {
    const a = this.args;
    const n = splitArgs(arg, a);
    const minArgs = headers ? 4 : 3;
    if (n < minArgs)
      throw new ProtocolError(null, `processRoutedMsgArgs Parse Error: '${arg.toString()}'`);
    const tok = (i: number) => arg.toString("latin1", a[2 * i]!, a[2 * i + 1]!);
    const size = parseSize(arg, a[2 * (n - 1)]!, a[2 * (n - 1) + 1]!);
    const hdr = headers ? parseSize(arg, a[2 * (n - 2)]!, a[2 * (n - 2) + 1]!) : -1;
    if (size < 0 || (headers && (hdr < 0 || hdr > size))) {
      throw new ProtocolError(
        null,
        `processRoutedMsgArgs Bad or Missing Size: '${arg.toString()}'`,
      );
    }
    this.msgAccount = tok(0);
    this.msgSubject = this.cluster.server.subjectString(arg, a[2]!, a[3]!);
    this.msgHdr = hdr;
    this.msgReply = "";
    this.msgQueues = null;
    const restEnd = n - (headers ? 2 : 1);
    if (restEnd > 2) {
      const first = tok(2);
      if (first === "+" || first === "|") {
        let i = 3;
        if (first === "+") this.msgReply = tok(i++);
        const qs: string[] = [];
        for (; i < restEnd; i++) qs.push(tok(i));
        this.msgQueues = qs;
      } else if (restEnd === 3) {
        this.msgReply = first;
      } else {
        throw new ProtocolError(null, `processRoutedMsgArgs Parse Error: '${arg.toString()}'`);
      }
    }
    return size;
  }

  /** A canonical `RMSG account subject [reply] size` line, split by the parser already. */
  argsAt(
    op: OpCode,
    buf: Buffer,
    start: number,
    end: number,
    toks: Int32Array,
    n: number,
    size: number,
  ): number {
    if (this.closed) return -1;
    // A "+" or "|" in the reply's place starts a queue list: the general path reads it.
    const b = buf[toks[4]!];
    if (n === 4 && toks[5]! - toks[4]! === 1 && (b === 43 || b === 124)) {
      return this.control(op, buf.subarray(start, end));
    }
    this.requireRegistered();
    const a0 = toks[0]!;
    this.msgAccount =
      toks[1]! - a0 === 2 && buf[a0] === 36 && buf[a0 + 1] === 71
        ? GLOBAL_ACCOUNT
        : buf.toString("latin1", a0, toks[1]!);
    this.msgSubject = this.cluster.server.subjectString(buf, toks[2]!, toks[3]!);
    this.msgHdr = -1;
    this.msgReply = n === 4 ? buf.toString("latin1", toks[4]!, toks[5]!) : "";
    this.msgQueues = null;
    return size;
  }

  payload(data: Buffer): void {
    this.payloadAt(data, 0, data.length);
  }

  /** The message's payload as buf[start, end) of the read buffer (no view allocated). */
  payloadAt(buf: Buffer, start: number, end: number): void {
    if (this.closed) return;
    const len = end - start;
    this.inMsgs++;
    this.inBytes += len;
    const log = this.cluster.log;
    if (log.traceEnabled) {
      log.trace(
        `${this.tag} - <<- [RMSG ${this.msgAccount} ${this.msgSubject} ${this.msgReply} ${len}]`,
      );
    }
    const server = this.cluster.server;
    let acc: Account | null = null;
    if (this.msgAccount !== GLOBAL_ACCOUNT) {
      const named = server.accounts.get(this.msgAccount);
      if (named === undefined) return;
      acc = named;
    }
    server.route(
      this,
      this.msgSubject,
      this.msgReply,
      this.msgHdr,
      buf,
      this.msgQueues,
      start,
      end,
      acc,
    );
  }

  /** RS+ account subject [queue weight] */
  private processSubPlus(arg: Buffer): void {
    const a = this.args;
    const n = splitArgs(arg, a);
    if (n < 2 || n > 4)
      throw new ProtocolError(null, `processRemoteSub Parse Error: '${arg.toString()}'`);
    const account = arg.toString("latin1", a[0]!, a[1]!);
    const acc = account === GLOBAL_ACCOUNT ? null : this.cluster.server.accounts.get(account);
    if (acc === undefined) return;
    const subject = arg.toString("latin1", a[2]!, a[3]!);
    const queue = n >= 3 ? arg.toString("latin1", a[4]!, a[5]!) : null;
    const weight = n === 4 ? Math.max(1, parseSize(arg, a[6]!, a[7]!)) : 1;
    const subKey = queue === null ? subject : `${subject} ${queue}`;
    const key = acc === null ? subKey : `${account} ${subKey}`;
    const existing = this.remoteSubs.get(key);
    if (existing) {
      existing.weight = weight;
      return;
    }
    const sub = new Subscription(subject, queue, subKey, this);
    sub.weight = weight;
    try {
      (acc ?? this.cluster.server.globalAccount).sublist.insert(sub);
    } catch {
      this.cluster.log.debug(
        `${this.tag} - ignoring remote interest in invalid subject "${subject}"`,
      );
      return;
    }
    this.remoteSubs.set(key, sub);
    if (acc !== null) this.remoteAccounts.set(key, acc);
  }

  /** RS- account subject [queue] */
  private processSubMinus(arg: Buffer): void {
    const a = this.args;
    const n = splitArgs(arg, a);
    if (n < 2 || n > 3)
      throw new ProtocolError(null, `processRemoteUnsub Parse Error: '${arg.toString()}'`);
    const account = arg.toString("latin1", a[0]!, a[1]!);
    const subject = arg.toString("latin1", a[2]!, a[3]!);
    const subKey = n === 3 ? `${subject} ${arg.toString("latin1", a[4]!, a[5]!)}` : subject;
    const key = account === GLOBAL_ACCOUNT ? subKey : `${account} ${subKey}`;
    this.removeRemote(key);
  }

  private removeRemote(key: string): void {
    const sub = this.remoteSubs.get(key);
    if (!sub) return;
    this.remoteSubs.delete(key);
    sub.closed = true;
    const acc = this.remoteAccounts.get(key) ?? this.cluster.server.globalAccount;
    this.remoteAccounts.delete(key);
    acc.sublist.remove(sub);
  }

  /** Routes receive messages through sendMsg (one per message per route), never per subscription. */
  deliver(): void {
    throw new Error("Route.deliver is not used: Server.route aggregates per route");
  }

  /** Queues one RMSG/HMSG carrying the queue groups this route should serve. */
  sendMsg(
    subject: string,
    reply: string,
    hdr: number,
    payload: Buffer,
    queues: readonly string[],
    start = 0,
    end = payload.length,
    account = GLOBAL_ACCOUNT,
  ): void {
    if (this.closed) return;
    const len = end - start;
    let line =
      account === GLOBAL_ACCOUNT
        ? hdr >= 0
          ? "HMSG $G "
          : "RMSG $G "
        : `${hdr >= 0 ? "HMSG" : "RMSG"} ${account} `;
    line += subject;
    if (queues.length > 0) {
      line += reply !== "" ? ` + ${reply}` : " |";
      for (let i = 0; i < queues.length; i++) line += " " + queues[i];
    } else if (reply !== "") {
      line += " " + reply;
    }
    if (hdr >= 0) line += ` ${hdr}`;
    line += ` ${len}\r\n`;
    const out = this.out;
    const buf = out.reserve(line.length + len + 2);
    let p = out.at;
    p += buf.write(line, p, "latin1");
    p += payload.copy(buf, p, start, end);
    buf[p++] = 13;
    buf[p++] = 10;
    out.advance(p - out.at);
    this.outMsgs++;
    this.outBytes += len;
    if (this.cluster.log.traceEnabled)
      this.cluster.log.trace(`${this.tag} - ->> [${line.slice(0, -2)}]`);
    this.cluster.server.queueFlush(this);
  }

  sendProto(s: string): void {
    if (this.closed) return;
    if (this.cluster.log.traceEnabled)
      this.cluster.log.trace(`${this.tag} - ->> [${s.slice(0, -2)}]`);
    this.out.appendString(s);
    this.cluster.server.queueFlush(this);
  }

  sendPing(): void {
    this.pingsOut++;
    this.pingSentAt = monotonicMs();
    this.sendProto("PING\r\n");
  }

  flush(): void {
    this.flushQueued = false;
    if (this.closed) return;
    this.out.flush(this.socket);
  }

  close(reason: CloseReasonText): void {
    if (this.closed) return;
    this.out.flush(this.socket);
    this.closed = true;
    for (const key of [...this.remoteSubs.keys()]) this.removeRemote(key);
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 2000).unref();
    this.cluster.routeClosed(this, reason);
  }
}

function opName(op: OpCode): string {
  for (const [k, v] of Object.entries(Op)) {
    if (v === op)
      return k === "RS_PLUS" ? "RS+" : k === "RS_MINUS" ? "RS-" : k === "OK" ? "+OK" : k;
  }
  return String(op);
}

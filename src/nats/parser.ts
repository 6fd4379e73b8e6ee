// The NATS protocol parser: a byte-level state machine over whatever chunks the socket hands us.
//
// It recognises operation names one byte at a time (case-insensitive, as nats-server does),
// collects the argument line as a slice of the read buffer (copied into a scratch buffer only
// when a read splits it), and skips over payloads by length. It never writes to a socket: it
// hands control lines and payloads to a ParserSink and throws a ProtocolError when the stream
// is malformed; the connection decides what to send and whether to close.

import { ProtocolError, ErrText, CloseReason } from "./errors.js";

/** Operations the parser can hand to its sink. */
export const Op = {
  CONNECT: 1,
  INFO: 2,
  PUB: 3,
  HPUB: 4,
  SUB: 5,
  UNSUB: 6,
  PING: 7,
  PONG: 8,
  OK: 9,
  ERR: 10,
  MSG: 11,
  HMSG: 12,
  RS_PLUS: 13,
  RS_MINUS: 14,
  RMSG: 15,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

export interface ParserSink {
  /**
   * A complete control line. `arg` is the text after the operation name with the trailing
   * CR/LF removed (empty for PING, PONG, +OK); it is only valid during the call.
   * Returns the number of payload bytes that follow (for PUB, HPUB, MSG, HMSG, RMSG) or -1.
   */
  control(op: OpCode, arg: Buffer): number;
  /** The payload announced by the last control line, without its trailing CRLF. Valid during the call. */
  payload(data: Buffer): void;
  /**
   * Optional allocation-free forms of the hot operations: a PUB argument line and a payload as
   * buf[start, end) of the read buffer, when neither was split across reads.
   */
  pubAt?(buf: Buffer, start: number, end: number): number;
  payloadAt?(buf: Buffer, start: number, end: number): void;
  /**
   * The fastest form, for a canonical line found whole in one read: `PUB subject [reply] size`
   * (clients) or `RMSG account subject [reply] size` (routes), single spaces, no tabs or
   * control bytes, CRLF, a valid size. The parser has split it already: the argument line is
   * buf[start, end) and its n tokens are toks[2i], toks[2i + 1] (the last one the size).
   * Returns the payload size, or -1. A sink with argsAt must also have payloadAt.
   */
  argsAt?(
    op: OpCode,
    buf: Buffer,
    start: number,
    end: number,
    toks: Int32Array,
    n: number,
    size: number,
  ): number;
}

// Parser states (nats-server's names, flattened: one ARG state serves every operation with arguments).
const S = {
  START: 0,
  // operation names, one state per byte read so far
  P: 1,
  PU: 2,
  PUB: 3,
  PI: 4,
  PIN: 5,
  PING: 6,
  PO: 7,
  PON: 8,
  PONG: 9,
  S: 10,
  SU: 11,
  SUB: 12,
  U: 13,
  UN: 14,
  UNS: 15,
  UNSU: 16,
  UNSUB: 17,
  C: 18,
  CO: 19,
  CON: 20,
  CONN: 21,
  CONNE: 22,
  CONNEC: 23,
  CONNECT: 24,
  H: 25,
  HP: 26,
  HPU: 27,
  HPUB: 28,
  HM: 29,
  HMS: 30,
  HMSG: 31,
  M: 32,
  MS: 33,
  MSG: 34,
  I: 35,
  IN: 36,
  INF: 37,
  INFO: 38,
  PLUS: 39,
  PLUS_O: 40,
  PLUS_OK: 41,
  MINUS: 42,
  MINUS_E: 43,
  MINUS_ER: 44,
  MINUS_ERR: 45,
  R: 46,
  RS: 47,
  RS_PM: 48,
  RM: 49,
  RMS: 50,
  RMSG: 51,
  // after the operation name
  SPC: 60, // skipping blanks before the arguments
  ARG: 61, // reading the argument line up to LF
  PAYLOAD: 62,
  END_R: 63,
  END_N: 64,
} as const;

/** The state after release(): every byte is refused (the switch's default case). */
const RELEASED = -1;

const CR = 13;
const LF = 10;
const SPACE = 32;
const TAB = 9;

export interface ParserOptions {
  /** Longest argument line accepted (nats-server's max_control_line, default 4096). */
  maxControlLine: number;
  /** Accept the server-to-server operations (RS+, RS-, RMSG) and MSG/HMSG. */
  route?: boolean;
}

export class Parser {
  private state: number = S.START;
  private op: OpCode = Op.PING;
  private argStart = 0;
  /** Holds an argument line split across reads. */
  private argBuf: Buffer | null = null;
  private argLen = 0;
  /** Payload bytes still expected, and the holder used when a payload is split across reads. */
  private need = 0;
  private msgBuf: Buffer | null = null;
  private msgLen = 0;
  private readonly maxControlLine: number;
  private readonly route: boolean;
  /** Token offsets of a line taken by fastLine (four tokens at most: RMSG with a reply). */
  private readonly toks = new Int32Array(8);
  /**
   * Set while the server awaits the CONNECT of a client that must authenticate: like
   * nats-server, any operation not starting with 'C' is then an Authorization Violation.
   */
  requireConnect = false;

  constructor(
    private readonly sink: ParserSink,
    opts: ParserOptions,
  ) {
    this.maxControlLine = opts.maxControlLine;
    this.route = opts.route ?? false;
  }

  /** Feed one chunk. Throws ProtocolError on a malformed stream; the parser is then unusable. */
  parse(buf: Buffer): void {
    const len = buf.length;
    let i = 0;
    for (; i < len; i++) {
      const b = buf[i]!;
      switch (this.state) {
        case S.START:
          // Fast path for the commonest operation: "PUB " read in one step.
          if (
            b === 80 &&
            i + 3 < len &&
            buf[i + 1] === 85 &&
            buf[i + 2] === 66 &&
            buf[i + 3] === SPACE &&
            !this.requireConnect
          ) {
            if (this.sink.argsAt !== undefined) {
              const last = this.fastLine(Op.PUB, buf, i + 4, len, 2);
              if (last >= 0) {
                i = last;
                break;
              }
            }
            this.op = Op.PUB;
            this.state = S.SPC;
            i += 3;
            break;
          }
          // Routes: "RMSG " likewise.
          if (
            b === 82 &&
            this.route &&
            i + 4 < len &&
            buf[i + 1] === 77 &&
            buf[i + 2] === 83 &&
            buf[i + 3] === 71 &&
            buf[i + 4] === SPACE &&
            this.sink.argsAt !== undefined
          ) {
            const last = this.fastLine(Op.RMSG, buf, i + 5, len, 3);
            if (last >= 0) {
              i = last;
              break;
            }
          }
          this.start(b);
          break;
        case S.P:
          switch (upper(b)) {
            case 85: // U
              this.op = Op.PUB;
              this.state = S.PU;
              break;
            case 73: // I
              this.op = Op.PING;
              this.state = S.PI;
              break;
            case 79: // O
              this.op = Op.PONG;
              this.state = S.PO;
              break;
            default:
              fail();
          }
          break;
        case S.PU:
          this.state = upper(b) === 66 /* B */ ? S.PUB : fail();
          break;
        case S.CONNECT:
        case S.INFO:
          // nats-server needs no blank after CONNECT and INFO: what follows is the JSON argument.
          this.state = S.SPC;
          if (b !== SPACE && b !== TAB) i--;
          break;
        case S.PUB:
        case S.SUB:
        case S.UNSUB:
        case S.HPUB:
        case S.HMSG:
        case S.MSG:
        case S.MINUS_ERR:
        case S.RS_PM:
        case S.RMSG:
          if (b !== SPACE && b !== TAB) fail();
          this.state = S.SPC;
          break;
        case S.PI:
          this.state = upper(b) === 78 /* N */ ? S.PIN : fail();
          break;
        case S.PIN:
          this.state = upper(b) === 71 /* G */ ? S.PING : fail();
          break;
        case S.PO:
          this.state = upper(b) === 78 ? S.PON : fail();
          break;
        case S.PON:
          this.state = upper(b) === 71 ? S.PONG : fail();
          break;
        case S.PING:
        case S.PONG:
        case S.PLUS_OK:
          // nats-server ignores anything after PING, PONG and +OK up to the line feed.
          if (b === LF) {
            this.state = S.START;
            this.sink.control(this.op, EMPTY);
          }
          break;
        case S.S:
          this.state = upper(b) === 85 ? S.SU : fail();
          break;
        case S.SU:
          this.state = upper(b) === 66 ? S.SUB : fail();
          break;
        case S.U:
          this.state = upper(b) === 78 ? S.UN : fail();
          break;
        case S.UN:
          this.state = upper(b) === 83 ? S.UNS : fail();
          break;
        case S.UNS:
          this.state = upper(b) === 85 ? S.UNSU : fail();
          break;
        case S.UNSU:
          this.state = upper(b) === 66 ? S.UNSUB : fail();
          break;
        case S.C:
          this.state = upper(b) === 79 ? S.CO : fail();
          break;
        case S.CO:
          this.state = upper(b) === 78 ? S.CON : fail();
          break;
        case S.CON:
          this.state = upper(b) === 78 ? S.CONN : fail();
          break;
        case S.CONN:
          this.state = upper(b) === 69 ? S.CONNE : fail();
          break;
        case S.CONNE:
          this.state = upper(b) === 67 ? S.CONNEC : fail();
          break;
        case S.CONNEC:
          this.state = upper(b) === 84 ? S.CONNECT : fail();
          break;
        case S.H:
          if (upper(b) === 80 /* P */) {
            this.op = Op.HPUB;
            this.state = S.HP;
          } else if (upper(b) === 77 /* M */ && this.route) {
            this.op = Op.HMSG;
            this.state = S.HM;
          } else fail();
          break;
        case S.HP:
          this.state = upper(b) === 85 ? S.HPU : fail();
          break;
        case S.HPU:
          this.state = upper(b) === 66 ? S.HPUB : fail();
          break;
        case S.HM:
          this.state = upper(b) === 83 ? S.HMS : fail();
          break;
        case S.HMS:
          this.state = upper(b) === 71 ? S.HMSG : fail();
          break;
        case S.M:
          this.state = upper(b) === 83 ? S.MS : fail();
          break;
        case S.MS:
          this.state = upper(b) === 71 ? S.MSG : fail();
          break;
        case S.I:
          this.state = upper(b) === 78 ? S.IN : fail();
          break;
        case S.IN:
          this.state = upper(b) === 70 ? S.INF : fail();
          break;
        case S.INF:
          this.state = upper(b) === 79 ? S.INFO : fail();
          break;
        case S.PLUS:
          this.state = upper(b) === 79 ? S.PLUS_O : fail();
          break;
        case S.PLUS_O:
          this.state = upper(b) === 75 ? S.PLUS_OK : fail();
          break;
        case S.MINUS:
          this.state = upper(b) === 69 ? S.MINUS_E : fail();
          break;
        case S.MINUS_E:
          this.state = upper(b) === 82 ? S.MINUS_ER : fail();
          break;
        case S.MINUS_ER:
          this.state = upper(b) === 82 ? S.MINUS_ERR : fail();
          break;
        case S.R:
          if (upper(b) === 83 /* S */) {
            this.state = S.RS;
          } else if (upper(b) === 77 /* M */) {
            this.op = Op.RMSG;
            this.state = S.RM;
          } else fail();
          break;
        case S.RS:
          if (b === 43 /* + */) this.op = Op.RS_PLUS;
          else if (b === 45 /* - */) this.op = Op.RS_MINUS;
          else fail();
          this.state = S.RS_PM;
          break;
        case S.RM:
          this.state = upper(b) === 83 ? S.RMS : fail();
          break;
        case S.RMS:
          this.state = upper(b) === 71 ? S.RMSG : fail();
          break;
        case S.SPC:
          if (b !== SPACE && b !== TAB) {
            this.state = S.ARG;
            this.argStart = i;
            i--; // read this byte again in ARG
          }
          break;
        case S.ARG: {
          // Find the line feed: a short scan covers most lines without a native call.
          let lf = -1;
          const near = i + 64 < len ? i + 64 : len;
          for (let j = i; j < near; j++) {
            if (buf[j] === LF) {
              lf = j;
              break;
            }
          }
          if (lf < 0 && near < len) lf = buf.indexOf(LF, near);
          if (lf < 0) {
            i = len - 1;
            break;
          }
          i = lf;
          this.endOfLine(buf, lf);
          break;
        }
        case S.PAYLOAD: {
          const avail = len - i;
          if (this.msgBuf === null && avail >= this.need) {
            // The whole payload is in this read: hand out a view, no copy.
            const end = i + this.need;
            if (end < len && buf[end] === CR && end + 1 < len && buf[end + 1] === LF) {
              this.state = S.START;
              if (this.sink.payloadAt !== undefined) this.sink.payloadAt(buf, i, end);
              else this.sink.payload(buf.subarray(i, end));
              i = end + 1;
            } else {
              this.startSplitPayload(buf, i, this.need);
              i = end - 1;
              this.state = S.END_R;
            }
            break;
          }
          if (this.msgBuf === null) this.msgBuf = Buffer.allocUnsafe(this.need);
          const take = Math.min(avail, this.need - this.msgLen);
          buf.copy(this.msgBuf, this.msgLen, i, i + take);
          this.msgLen += take;
          i += take - 1;
          if (this.msgLen === this.need) this.state = S.END_R;
          break;
        }
        case S.END_R:
          if (b !== CR) fail();
          this.state = S.END_N;
          break;
        case S.END_N: {
          if (b !== LF) fail();
          const data = this.msgBuf ?? EMPTY;
          this.msgBuf = null;
          this.msgLen = 0;
          this.state = S.START;
          this.sink.payload(data);
          break;
        }
        default:
          fail();
      }
    }
    if (this.state === S.ARG) this.holdSplitArg(buf, len);
  }

  /**
   * Drops a held partial control line or payload (up to max_payload bytes). Call it when the
   * connection closes, so a closed connection kept for monitoring does not pin them; the
   * parser refuses any further input.
   */
  release(): void {
    this.argBuf = null;
    this.argLen = 0;
    this.msgBuf = null;
    this.msgLen = 0;
    this.state = RELEASED;
  }

  private start(b: number): void {
    if (this.requireConnect && upper(b) !== 67 /* C */) {
      throw new ProtocolError(
        ErrText.AuthViolation,
        "operation before CONNECT",
        CloseReason.AuthViolation,
      );
    }
    switch (upper(b)) {
      case 80: // P
        this.state = S.P;
        break;
      case 83: // S
        this.op = Op.SUB;
        this.state = S.S;
        break;
      case 85: // U
        this.op = Op.UNSUB;
        this.state = S.U;
        break;
      case 67: // C
        this.op = Op.CONNECT;
        this.state = S.C;
        break;
      case 72: // H
        this.state = S.H;
        break;
      case 77: // M
        if (!this.route) fail();
        this.op = Op.MSG;
        this.state = S.M;
        break;
      case 73: // I
        this.op = Op.INFO;
        this.state = S.I;
        break;
      case 43: // +
        this.op = Op.OK;
        this.state = S.PLUS;
        break;
      case 45: // -
        this.op = Op.ERR;
        this.state = S.MINUS;
        break;
      case 82: // R
        if (!this.route) fail();
        this.state = S.R;
        break;
      default:
        fail();
    }
  }

  private endOfLine(buf: Buffer, lf: number): void {
    if (this.op === Op.PUB && this.argBuf === null && this.sink.pubAt !== undefined) {
      return this.pubLine(buf, lf);
    }
    let arg: Buffer;
    if (this.argBuf !== null) {
      this.appendArg(buf, 0, lf);
      arg = this.argBuf.subarray(0, this.argLen);
      this.argBuf = null;
      this.argLen = 0;
    } else {
      arg = buf.subarray(this.argStart, lf);
    }
    // nats-server drops the line's last byte when it saw a CR anywhere in it (normally the CR
    // before the LF; "SUB foo 1\rx\n" loses the x).
    if (arg.length > 0 && (arg[arg.length - 1] === CR || arg.includes(CR))) {
      arg = arg.subarray(0, arg.length - 1);
    }
    if (arg.length > this.maxControlLine) {
      throw new ProtocolError(ErrText.MaxControlLine, "max control line exceeded");
    }
    this.state = S.START;
    const size = this.sink.control(this.op, arg);
    if (size >= 0) {
      this.need = size;
      this.msgLen = 0;
      this.state = S.PAYLOAD;
      if (size === 0) this.state = S.END_R;
    }
  }

  /**
   * A canonical line of `min` or `min + 1` tokens (the last one the payload size) and its
   * payload, when that is in this read too, in one pass from `p` just after the operation name
   * and its space. Returns the index of the last byte consumed, or -1 having consumed and
   * changed nothing: anything unusual (tabs, repeated blanks, other token counts, a line or
   * payload split across reads, a bad size) is left to the state machine, which handles every
   * case.
   */
  private fastLine(op: OpCode, buf: Buffer, p: number, len: number, min: number): number {
    const start = p;
    const limit = Math.min(len, p + this.maxControlLine);
    const toks = this.toks;
    let n = 0;
    for (;;) {
      const t0 = p;
      while (p < limit && buf[p]! > SPACE) p++;
      if (p === t0 || p >= limit) return -1;
      toks[2 * n] = t0;
      toks[2 * n + 1] = p;
      n++;
      if (buf[p] !== SPACE) break;
      if (n === min + 1) return -1;
      p++;
    }
    if (n < min || buf[p] !== CR || p + 1 >= len || buf[p + 1] !== LF) return -1;
    const d0 = toks[2 * n - 2]!;
    const d1 = toks[2 * n - 1]!;
    if (d1 - d0 > 9) return -1;
    let size = 0;
    for (let k = d0; k < d1; k++) {
      const c = buf[k]! - 48;
      if (c < 0 || c > 9) return -1;
      size = size * 10 + c;
    }
    const lf = p + 1;
    this.op = op;
    this.state = S.START;
    size = this.sink.argsAt!(op, buf, start, p, toks, n, size);
    if (size < 0) return lf;
    const from = lf + 1;
    const to = from + size;
    if (to + 1 < len && buf[to] === CR && buf[to + 1] === LF) {
      this.sink.payloadAt!(buf, from, to);
      return to + 1;
    }
    this.need = size;
    this.msgLen = 0;
    this.state = size === 0 ? S.END_R : S.PAYLOAD;
    return lf;
  }

  /** endOfLine for an unsplit PUB line, without making a Buffer view of it. */
  private pubLine(buf: Buffer, lf: number): void {
    const start = this.argStart;
    let end = lf;
    for (let j = start; j < lf; j++) {
      if (buf[j] === CR) {
        end--; // same rule as endOfLine: a CR anywhere costs the line its last byte
        break;
      }
    }
    if (end - start > this.maxControlLine) {
      throw new ProtocolError(ErrText.MaxControlLine, "max control line exceeded");
    }
    this.state = S.START;
    const size = this.sink.pubAt!(buf, start, end);
    if (size >= 0) {
      this.need = size;
      this.msgLen = 0;
      this.state = size === 0 ? S.END_R : S.PAYLOAD;
    }
  }

  private holdSplitArg(buf: Buffer, len: number): void {
    if (this.argBuf === null) {
      // Small enough to come from Node's buffer pool (a split line is held once per read by a
      // busy publisher); appendArg grows it for a longer line.
      this.argBuf = Buffer.allocUnsafe(Math.min(this.maxControlLine + 2, 256));
      this.argLen = 0;
      this.appendArg(buf, this.argStart, len);
    } else {
      this.appendArg(buf, 0, len);
    }
    this.argStart = 0;
  }

  private appendArg(buf: Buffer, from: number, to: number): void {
    const n = to - from;
    // An argument line may carry its CR; allow it, nothing more, past the limit.
    if (this.argLen + n > this.maxControlLine + 1) {
      throw new ProtocolError(ErrText.MaxControlLine, "max control line exceeded");
    }
    const cap = this.argBuf!.length;
    if (this.argLen + n > cap) {
      const grown = Buffer.allocUnsafe(Math.max(cap * 2, this.argLen + n));
      this.argBuf!.copy(grown, 0, 0, this.argLen);
      this.argBuf = grown;
    }
    buf.copy(this.argBuf!, this.argLen, from, to);
    this.argLen += n;
  }

  private startSplitPayload(buf: Buffer, from: number, n: number): void {
    this.msgBuf = Buffer.allocUnsafe(n);
    buf.copy(this.msgBuf, 0, from, from + n);
    this.msgLen = n;
  }
}

const EMPTY = Buffer.alloc(0);

function upper(b: number): number {
  return b >= 97 && b <= 122 ? b - 32 : b;
}

function fail(): never {
  throw new ProtocolError(ErrText.UnknownOp, "parser error");
}

/**
 * Splits an argument line on blanks into `out` as [start, end) offset pairs, without allocating.
 * Returns the number of arguments found, or -1 if there are more than out.length / 2.
 * `from` and `to` limit the scan to part of the buffer (offsets stay absolute).
 * With `crIsBlank`, CR separates arguments too (nats-server's SUB and UNSUB do that; PUB not).
 */
export function splitArgs(
  arg: Buffer,
  out: Int32Array,
  crIsBlank = false,
  from = 0,
  to = arg.length,
): number {
  let n = 0;
  let start = -1;
  const max = out.length >> 1;
  for (let i = from; i < to; i++) {
    const b = arg[i];
    if (b === SPACE || b === TAB || (crIsBlank && b === CR)) {
      if (start >= 0) {
        if (n === max) return -1;
        out[2 * n] = start;
        out[2 * n + 1] = i;
        n++;
        start = -1;
      }
    } else if (start < 0) {
      start = i;
    }
  }
  if (start >= 0) {
    if (n === max) return -1;
    out[2 * n] = start;
    out[2 * n + 1] = to;
    n++;
  }
  return n;
}

/**
 * Parses a non-negative decimal size; -1 when the bytes are not all digits or more than nine
 * of them (nats-server's parseSize: 999,999,999 at most).
 */
export function parseSize(buf: Buffer, start: number, end: number): number {
  if (end <= start || end - start > 9) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

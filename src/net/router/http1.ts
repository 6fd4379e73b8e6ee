// HTTP/1.1 message framing for the router (pure, no I/O): the request head as the router needs it
// (request line, the headers it routes or frames by), the head it forwards to a backend, the
// response head (status, framing, the headers it passes on), and a scanner that finds where a
// chunked body ends without decoding it (the router passes chunked bytes through unchanged).
//
// Strict where a proxy must be, so that the router and a backend never disagree on where a
// message ends (request smuggling, RFC 9112 6.3 and 11.2): a request with both Content-Length and
// Transfer-Encoding, a Content-Length that is not one decimal number (or appears twice), a
// Transfer-Encoding whose last coding is not chunked (or chunked twice, or on HTTP/1.0), a header
// name with white space before its colon, an obs-fold line, a bare CR or LF, a control character
// in a value, or a malformed request line are all errors (400, 505 for another HTTP version);
// a head larger than the limit is 431. The router answers them and closes the connection.

/** A message the router cannot accept; `status` is the answer (400, 431, 505; 502 for a backend). */
export class HttpParseError extends Error {
  readonly code = "ERR_HTTP_PARSE";
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "HttpParseError";
  }
}

export interface RequestHead {
  method: string;
  /** The request target as sent (`/a?b=1`). */
  target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor: number;
  /** Bytes of the head, including any empty lines before it and the blank line after it. */
  headLength: number;
  /** The headers in order as [name, value, ...] (names as sent, values without outer spaces). */
  headers: string[];
  /** The header names in lower case, one per header. */
  names: string[];
  host: string | undefined;
  cookie: string | undefined;
  upgrade: string | undefined;
  /** X-Forwarded-For values, joined with ", ". */
  forwardedFor: string | undefined;
  /** The Content-Length, or -1 without one. */
  contentLength: number;
  /** Transfer-Encoding as sent (its last coding is chunked), or undefined. */
  transferEncoding: string | undefined;
  /** The tokens of Connection in lower case. */
  connection: string[];
  expectContinue: boolean;
  /** The client wants the connection kept open after this exchange (HTTP/1.1 without close). */
  keepAlive: boolean;
  /** An Upgrade request (Upgrade header and Connection: upgrade): tunnelled, not proxied. */
  isUpgrade: boolean;
}

export interface ResponseHead {
  status: number;
  /** The reason phrase with its leading space (` OK`), or "". */
  reason: string;
  minor: number;
  headLength: number;
  /** The header lines the router passes on (`Name: value\r\n` each), hop-by-hop ones left out. */
  kept: string;
  contentLength: number;
  chunked: boolean;
  /** The backend closes the connection after this response. */
  close: boolean;
  /** The Keep-Alive header's timeout in seconds, or -1. */
  keepAliveTimeout: number;
}

const CRLF2 = Buffer.from("\r\n\r\n");
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Control characters (but HTAB) may not appear in a field value or reason phrase (RFC 9110 5.5).
// eslint-disable-next-line no-control-regex
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP\/(\d)\.(\d)$/;
// eslint-disable-next-line no-control-regex
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)((?: [^\x00-\x08\x0a-\x1f\x7f]*)?)$/;
const DIGITS = /^\d{1,15}$/;

/** Request headers that belong to one connection (RFC 9110 7.6.1), and those the router sets. */
const DROP_REQUEST = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
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
  "te",
  "trailer",
  "upgrade",
]);

/** `s` without spaces and tabs at either end (String.trim also strips latin1's NBSP). */
function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

function tokens(list: string): string[] {
  const out: string[] = [];
  for (const t of list.split(",")) {
    const v = trimOws(t).toLowerCase();
    if (v !== "") out.push(v);
  }
  return out;
}

/**
 * The head's lines (without the blank line), or null while the head is incomplete; `start` skips
 * empty lines a client may send between requests (RFC 9112 2.2).
 */
function headLines(
  buf: Buffer,
  max: number,
  tooLarge: number,
): { lines: string[]; length: number } | null {
  let start = 0;
  while (start + 1 < buf.length && buf[start] === 13 && buf[start + 1] === 10) start += 2;
  const end = buf.indexOf(CRLF2, start);
  if (end < 0) {
    if (buf.length - start > max) throw new HttpParseError(tooLarge, "message head too large");
    return null;
  }
  if (end + 4 - start > max) throw new HttpParseError(tooLarge, "message head too large");
  return { lines: buf.toString("latin1", start, end).split("\r\n"), length: end + 4 };
}

/** One header line split into its name and value; throws on a malformed one. */
function headerLine(line: string, status: number): [string, string] {
  const colon = line.indexOf(":");
  const name = colon > 0 ? line.slice(0, colon) : "";
  if (!TOKEN.test(name)) {
    throw new HttpParseError(status, `malformed header line "${line.slice(0, 40)}"`);
  }
  const value = trimOws(line.slice(colon + 1));
  if (BAD_VALUE.test(value)) {
    throw new HttpParseError(status, `invalid character in header ${name}`);
  }
  return [name, value];
}

function contentLength(value: string, seen: number, status: number): number {
  if (seen >= 0) throw new HttpParseError(status, "more than one Content-Length");
  if (!DIGITS.test(value)) throw new HttpParseError(status, `invalid Content-Length "${value}"`);
  return Number(value);
}

/**
 * Parses the request head at the start of `buf`: null while it is incomplete; throws an
 * HttpParseError (status 400, 431 or 505) for one the router must refuse.
 */
export function parseRequestHead(buf: Buffer, maxHeadBytes: number): RequestHead | null {
  const head = headLines(buf, maxHeadBytes, 431);
  if (head === null) return null;
  const { lines } = head;
  const m = REQUEST_LINE.exec(lines[0]!);
  if (m === null) throw new HttpParseError(400, "malformed request line");
  if (m[3] !== "1" || (m[4] !== "0" && m[4] !== "1")) {
    throw new HttpParseError(505, `HTTP/${m[3]}.${m[4]} is not supported`);
  }
  const h: RequestHead = {
    method: m[1]!,
    target: m[2]!,
    minor: m[4] === "1" ? 1 : 0,
    headLength: head.length,
    headers: [],
    names: [],
    host: undefined,
    cookie: undefined,
    upgrade: undefined,
    forwardedFor: undefined,
    contentLength: -1,
    transferEncoding: undefined,
    connection: [],
    expectContinue: false,
    keepAlive: false,
    isUpgrade: false,
  };
  for (let i = 1; i < lines.length; i++) {
    const [name, value] = headerLine(lines[i]!, 400);
    const lower = name.toLowerCase();
    h.headers.push(name, value);
    h.names.push(lower);
    switch (lower) {
      case "host":
        if (h.host !== undefined) throw new HttpParseError(400, "more than one Host");
        h.host = value;
        break;
      case "content-length":
        h.contentLength = contentLength(value, h.contentLength, 400);
        break;
      case "transfer-encoding":
        h.transferEncoding =
          h.transferEncoding === undefined ? value : `${h.transferEncoding}, ${value}`;
        break;
      case "connection":
        h.connection.push(...tokens(value));
        break;
      case "upgrade":
        h.upgrade = value;
        break;
      case "cookie":
        h.cookie = h.cookie === undefined ? value : `${h.cookie}; ${value}`;
        break;
      case "expect":
        h.expectContinue = value.toLowerCase() === "100-continue";
        break;
      case "x-forwarded-for":
        h.forwardedFor = h.forwardedFor === undefined ? value : `${h.forwardedFor}, ${value}`;
        break;
    }
  }
  if (h.minor === 1 && h.host === undefined) throw new HttpParseError(400, "no Host header");
  if (h.transferEncoding !== undefined) {
    if (h.contentLength >= 0) {
      throw new HttpParseError(400, "both Content-Length and Transfer-Encoding");
    }
    if (h.minor === 0) throw new HttpParseError(400, "Transfer-Encoding in an HTTP/1.0 request");
    const codings = tokens(h.transferEncoding);
    if (
      codings[codings.length - 1] !== "chunked" ||
      codings.indexOf("chunked") !== codings.length - 1
    ) {
      throw new HttpParseError(400, `unsupported Transfer-Encoding "${h.transferEncoding}"`);
    }
  }
  const close = h.connection.includes("close");
  h.keepAlive = h.minor === 1 && !close;
  h.isUpgrade = h.upgrade !== undefined && h.connection.includes("upgrade");
  return h;
}

export interface ForwardInfo {
  /** The client's address. */
  clientIp: string;
  /** The router's port (X-Forwarded-Port). */
  port: number;
}

/**
 * The head the router sends to a backend: the request line and headers as received, without
 * hop-by-hop headers (and those Connection names) and the X-Forwarded-* the router sets, then
 * X-Forwarded-For (the client appended), -Proto, -Host, -Port and X-Real-Ip; for an Upgrade
 * request, Connection: Upgrade and the Upgrade header. Content-Length and Transfer-Encoding stay:
 * the body passes through as it came.
 */
export function forwardRequestHead(h: RequestHead, f: ForwardInfo): string {
  let s = `${h.method} ${h.target} HTTP/1.${h.minor}\r\n`;
  const named = h.connection;
  for (let i = 0; i < h.names.length; i++) {
    const lower = h.names[i]!;
    if (DROP_REQUEST.has(lower) || (named.length > 0 && named.includes(lower))) continue;
    s += `${h.headers[2 * i]!}: ${h.headers[2 * i + 1]!}\r\n`;
  }
  const ip = f.clientIp;
  s += `X-Forwarded-For: ${h.forwardedFor === undefined ? ip : `${h.forwardedFor}, ${ip}`}\r\n`;
  s += "X-Forwarded-Proto: http\r\n";
  if (h.host !== undefined) s += `X-Forwarded-Host: ${h.host}\r\n`;
  s += `X-Forwarded-Port: ${f.port}\r\nX-Real-Ip: ${ip}\r\n`;
  if (h.isUpgrade) s += `Connection: Upgrade\r\nUpgrade: ${h.upgrade!}\r\n`;
  return `${s}\r\n`;
}

/**
 * Parses a backend's response head at the start of `buf`: null while it is incomplete; throws an
 * HttpParseError (status 502) for a malformed or ambiguous one.
 */
export function parseResponseHead(buf: Buffer, maxHeadBytes: number): ResponseHead | null {
  const head = headLines(buf, maxHeadBytes, 502);
  if (head === null) return null;
  const { lines } = head;
  const m = STATUS_LINE.exec(lines[0]!);
  if (m === null) throw new HttpParseError(502, "malformed status line");
  const r: ResponseHead = {
    status: Number(m[2]),
    reason: m[3]!,
    minor: m[1] === "1" ? 1 : 0,
    headLength: head.length,
    kept: "",
    contentLength: -1,
    chunked: false,
    close: m[1] !== "1",
    keepAliveTimeout: -1,
  };
  let te: string | undefined;
  let connection: string[] | undefined;
  const names: string[] = [];
  const values: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const [name, value] = headerLine(lines[i]!, 502);
    const lower = name.toLowerCase();
    switch (lower) {
      case "content-length":
        r.contentLength = contentLength(value, r.contentLength, 502);
        break;
      case "transfer-encoding":
        te = te === undefined ? value : `${te}, ${value}`;
        break;
      case "connection": {
        const t = tokens(value);
        connection = connection === undefined ? t : connection.concat(t);
        if (t.includes("close")) r.close = true;
        else if (t.includes("keep-alive")) r.close = false;
        break;
      }
      case "keep-alive": {
        const km = /(?:^|[,;\s])timeout=(\d+)/i.exec(value);
        if (km) r.keepAliveTimeout = Number(km[1]);
        break;
      }
    }
    if (DROP_RESPONSE.has(lower)) continue;
    names.push(lower);
    values.push(`${name}: ${value}\r\n`);
  }
  if (te !== undefined) {
    if (r.contentLength >= 0) {
      throw new HttpParseError(502, "both Content-Length and Transfer-Encoding");
    }
    const codings = tokens(te);
    // Another final coding means "until the connection closes".
    r.chunked = codings[codings.length - 1] === "chunked";
    if (!r.chunked) r.close = true;
  }
  let kept = "";
  for (let i = 0; i < values.length; i++) {
    if (connection !== undefined && connection.includes(names[i]!)) continue;
    kept += values[i]!;
  }
  r.kept = kept;
  return r;
}

/** How a response's body ends (RFC 9112 6.3). */
export const Framing = { none: 0, length: 1, chunked: 2, close: 3 } as const;
export type Framing = (typeof Framing)[keyof typeof Framing];

export function responseFraming(method: string, r: ResponseHead): Framing {
  if (method === "HEAD" || r.status < 200 || r.status === 204 || r.status === 304) {
    return Framing.none;
  }
  if (r.chunked) return Framing.chunked;
  if (r.contentLength >= 0) return r.contentLength === 0 ? Framing.none : Framing.length;
  return Framing.close;
}

const S = {
  size: 0,
  ext: 1,
  sizeLf: 2,
  data: 3,
  dataCr: 4,
  dataLf: 5,
  trailer: 6,
  trailerLine: 7,
  trailerLf: 8,
  endLf: 9,
  done: 10,
} as const;
type S = (typeof S)[keyof typeof S];

const MAX_SIZE_DIGITS = 13; // 2^52: a safe integer
const MAX_LINE = 16 * 1024;

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/**
 * Finds the end of a chunked body fed to it piece by piece (chunk sizes, extensions, data, the
 * last chunk, trailers), without copying it. `dataBytes` counts the chunks' data.
 */
export class ChunkedScanner {
  private state: S = S.size;
  private size = 0;
  private digits = 0;
  private left = 0;
  private line = 0;
  dataBytes = 0;

  constructor(private readonly status = 400) {}

  /**
   * Scans `buf` from `start`: the index just after the body's last byte, or -1 when all of it
   * belongs to the body and more is to come. Throws an HttpParseError on bad framing.
   */
  scan(buf: Buffer, start = 0): number {
    const end = buf.length;
    let i = start;
    while (i < end) {
      const c = buf[i]!;
      switch (this.state) {
        case S.size: {
          const v = hexValue(c);
          if (v >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) this.fail("chunk size too large");
            this.size = this.size * 16 + v;
          } else if (this.digits === 0) {
            this.fail("invalid chunk size");
          } else if (c === 13) {
            this.state = S.sizeLf;
          } else if (c === 59 || c === 32 || c === 9) {
            this.state = S.ext;
            this.line = 0;
          } else this.fail("invalid chunk size");
          i++;
          break;
        }
        case S.ext:
          if (c === 13) this.state = S.sizeLf;
          else if ((c < 32 && c !== 9) || c === 127) this.fail("invalid chunk extension");
          else if (++this.line > MAX_LINE) this.fail("chunk extension too long");
          i++;
          break;
        case S.sizeLf:
          if (c !== 10) this.fail("expected LF after the chunk size");
          i++;
          this.digits = 0;
          if (this.size === 0) {
            this.state = S.trailer;
            this.line = 0;
          } else {
            this.left = this.size;
            this.size = 0;
            this.state = S.data;
          }
          break;
        case S.data: {
          const n = Math.min(this.left, end - i);
          i += n;
          this.left -= n;
          this.dataBytes += n;
          if (this.left === 0) this.state = S.dataCr;
          break;
        }
        case S.dataCr:
          if (c !== 13) this.fail("expected CRLF after chunk data");
          this.state = S.dataLf;
          i++;
          break;
        case S.dataLf:
          if (c !== 10) this.fail("expected CRLF after chunk data");
          this.state = S.size;
          i++;
          break;
        case S.trailer:
          if (c === 13) this.state = S.endLf;
          else if (c === 10) this.fail("bare LF in trailers");
          else this.state = S.trailerLine;
          i++;
          break;
        case S.trailerLine:
          if (c === 13) this.state = S.trailerLf;
          else if ((c < 32 && c !== 9) || c === 127) this.fail("invalid character in trailers");
          if (++this.line > MAX_LINE) this.fail("trailers too long");
          i++;
          break;
        case S.trailerLf:
          if (c !== 10) this.fail("expected LF in trailers");
          this.state = S.trailer;
          i++;
          break;
        case S.endLf:
          if (c !== 10) this.fail("expected LF after the last chunk");
          this.state = S.done;
          return i + 1;
        case S.done:
          return i;
      }
    }
    return -1;
  }

  get done(): boolean {
    return this.state === S.done;
  }

  private fail(why: string): never {
    throw new HttpParseError(this.status, `chunked body: ${why}`);
  }
}

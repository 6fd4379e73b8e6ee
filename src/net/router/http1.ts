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
  /** The buffer the head was parsed from (its bytes are forwarded from there). */
  raw: Buffer;
  /** Where the request line starts in `raw`, and where the header lines end (before the blank line). */
  start: number;
  end: number;
  /**
   * Each header line as 5 numbers: where it starts, where its colon is, where its value starts and
   * ends (without outer spaces), and where the next line starts; offsets into `raw`.
   */
  lines: number[];
  /** A header the forwarded head leaves out is present (else the head is forwarded as it came). */
  rewrite: boolean;
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
  minor: number;
  headLength: number;
  /** The buffer the head was parsed from. */
  raw: Buffer;
  /**
   * What the router passes on of the head after the version, as [start, end) offsets into `raw`:
   * the rest of the status line (` 200 OK\r\n`), then the runs of header lines kept (hop-by-hop
   * ones left out). Copied as bytes (responseHeadBytes); no string is made of them.
   */
  pass: number[];
  contentLength: number;
  chunked: boolean;
  /** The backend closes the connection after this response. */
  close: boolean;
  /** The Keep-Alive header's timeout in seconds, or -1. */
  keepAliveTimeout: number;
}

const CRLF2 = Buffer.from("\r\n\r\n");

/** tchar (RFC 9110 5.6.2): the bytes of a method or a header name. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  TCHAR[c.charCodeAt(0)] = 1;
}

/** The header names the router reads or leaves out, as small numbers (others are 0). */
const H = {
  other: 0,
  host: 1,
  cookie: 2,
  expect: 3,
  upgrade: 4,
  connection: 5,
  contentLength: 6,
  transferEncoding: 7,
  forwardedFor: 8,
  keepAlive: 9,
  /** Left out of what is forwarded, not read otherwise. */
  dropped: 10,
} as const;

const NAMES: Array<[string, number]> = [
  ["host", H.host],
  ["cookie", H.cookie],
  ["expect", H.expect],
  ["upgrade", H.upgrade],
  ["connection", H.connection],
  ["content-length", H.contentLength],
  ["transfer-encoding", H.transferEncoding],
  ["x-forwarded-for", H.forwardedFor],
  ["keep-alive", H.keepAlive],
  ["proxy-connection", H.dropped],
  ["te", H.dropped],
  ["trailer", H.dropped],
  ["x-forwarded-proto", H.dropped],
  ["x-forwarded-host", H.dropped],
  ["x-forwarded-port", H.dropped],
  ["x-real-ip", H.dropped],
];
/** NAMES by length, as bytes: a header's name is compared only with those of its length. */
const BY_LENGTH: Array<Array<[Uint8Array, number]>> = [];
for (const [name, id] of NAMES) {
  (BY_LENGTH[name.length] ??= []).push([Buffer.from(name, "latin1"), id]);
}

/** Request headers that belong to one connection (RFC 9110 7.6.1), and those the router sets. */
const DROP_REQUEST = new Set<number>([
  H.connection,
  H.keepAlive,
  H.dropped,
  H.upgrade,
  H.expect,
  H.forwardedFor,
]);
/** Response headers that belong to one connection. */
const DROP_RESPONSE = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "upgrade",
]);

/** Which of NAMES the header name at buf[a, a + n) is (case ignored), or H.other. */
function headerId(buf: Buffer, a: number, n: number): number {
  const candidates = BY_LENGTH[n];
  if (candidates === undefined) return H.other;
  next: for (const [name, id] of candidates) {
    // A tchar ORed with 0x20 equals a lower-case letter or "-" only for that letter (either case)
    // or "-" itself.
    for (let i = 0; i < n; i++) if ((buf[a + i]! | 0x20) !== name[i]) continue next;
    return id;
  }
  return H.other;
}

/** `s` without spaces and tabs at either end (String.trim also strips latin1's NBSP). */
function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

const KEEP_ALIVE = Buffer.from("keep-alive", "latin1");
const CLOSE = Buffer.from("close", "latin1");
const TIMEOUT = Buffer.from("timeout=", "latin1");

/**
 * buf[a, e) is `lower` but for case. `lower` holds lower-case letters, "-" and "=" only: a byte
 * ORed with 0x20 equals one of those only for that character (or a control character, which no
 * checked name or value holds).
 */
function sameLower(buf: Buffer, a: number, e: number, lower: Uint8Array): boolean {
  if (e - a !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) if ((buf[a + i]! | 0x20) !== lower[i]) return false;
  return true;
}

/** The tokens of a Connection value at buf[vs, ve), in lower case. */
function connectionTokens(buf: Buffer, vs: number, ve: number): string[] {
  if (sameLower(buf, vs, ve, KEEP_ALIVE)) return ["keep-alive"];
  if (sameLower(buf, vs, ve, CLOSE)) return ["close"];
  return tokens(buf.toString("latin1", vs, ve));
}

/** The `timeout=N` of a Keep-Alive value at buf[vs, ve) (at its start or after `,`, `;` or white space), or -1. */
function keepAliveTimeout(buf: Buffer, vs: number, ve: number): number {
  for (let p = vs; p + 8 < ve; p++) {
    const c = p > vs ? buf[p - 1]! : 44;
    if (c !== 44 && c !== 59 && c !== 32 && c !== 9) continue;
    if (!sameLower(buf, p, p + 8, TIMEOUT)) continue;
    let n = 0;
    let q = p + 8;
    while (q < ve && buf[q]! >= 48 && buf[q]! <= 57) n = n * 10 + buf[q++]! - 48;
    if (q > p + 8) return n;
  }
  return -1;
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
 * Where the head starts and where its blank line is, or null while the head is incomplete;
 * `start` skips empty lines a client may send between requests (RFC 9112 2.2).
 */
function headBounds(
  buf: Buffer,
  max: number,
  tooLarge: number,
): { start: number; end: number } | null {
  let start = 0;
  while (start + 1 < buf.length && buf[start] === 13 && buf[start + 1] === 10) start += 2;
  const end = buf.indexOf(CRLF2, start);
  if (end < 0) {
    if (buf.length - start > max) throw new HttpParseError(tooLarge, "message head too large");
    return null;
  }
  if (end + 4 - start > max) throw new HttpParseError(tooLarge, "message head too large");
  return { start, end };
}

/**
 * Reads the header line at `a` (the head's lines all end in CRLF, the last one at the blank
 * line) into `out` at `n` (the 5 numbers of RequestHead.lines), returning the index after
 * them: the name must be a token right before the colon, the value free of control characters
 * but HTAB (a bare CR or LF included).
 */
function headerLine(buf: Buffer, a: number, out: number[], n: number, status: number): number {
  let i = a;
  while (TCHAR[buf[i]!] === 1) i++;
  if (i === a || buf[i] !== 58) {
    let e = buf.indexOf("\r\n", a, "latin1");
    if (e < 0 || e - a > 40) e = a + 40;
    throw new HttpParseError(status, `malformed header line "${buf.toString("latin1", a, e)}"`);
  }
  const colon = i++;
  while (buf[i] === 32 || buf[i] === 9) i++;
  const vs = i;
  let ve = i;
  for (;;) {
    const c = buf[i]!;
    if (c === 13 && buf[i + 1] === 10) break;
    if ((c < 32 && c !== 9) || c === 127) {
      const name = buf.toString("latin1", a, colon);
      throw new HttpParseError(status, `invalid character in header ${name}`);
    }
    i++;
    if (c !== 32 && c !== 9) ve = i;
  }
  out[n] = a;
  out[n + 1] = colon;
  out[n + 2] = vs;
  out[n + 3] = ve;
  out[n + 4] = i + 2;
  return n + 5;
}

/** A Content-Length value at buf[vs, ve): one decimal number of at most 15 digits. */
function contentLength(buf: Buffer, vs: number, ve: number, seen: number, status: number): number {
  if (seen >= 0) throw new HttpParseError(status, "more than one Content-Length");
  let n = 0;
  const ok = ve > vs && ve - vs <= 15;
  for (let i = vs; ok && i < ve; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) {
      n = -1;
      break;
    }
    n = n * 10 + d;
  }
  if (!ok || n < 0) {
    const value = buf.toString("latin1", vs, ve);
    throw new HttpParseError(status, `invalid Content-Length "${value}"`);
  }
  return n;
}

const malformedRequestLine = () => new HttpParseError(400, "malformed request line");

/**
 * Parses the request head at the start of `buf`: null while it is incomplete; throws an
 * HttpParseError (status 400, 431 or 505) for one the router must refuse. Only the values the
 * router reads become strings; the head's bytes stay in `buf` (`raw`) for forwarding.
 */
export function parseRequestHead(buf: Buffer, maxHeadBytes: number): RequestHead | null {
  const bounds = headBounds(buf, maxHeadBytes, 431);
  if (bounds === null) return null;
  const { start, end } = bounds;
  // method SP request-target SP HTTP/d.d CRLF
  let i = start;
  while (TCHAR[buf[i]!] === 1) i++;
  if (i === start || buf[i] !== 32) throw malformedRequestLine();
  const method = buf.toString("latin1", start, i);
  const ts = ++i;
  while (i < end && buf[i]! >= 0x21 && buf[i]! <= 0x7e) i++;
  if (i === ts || buf[i] !== 32) throw malformedRequestLine();
  const target = buf.toString("latin1", ts, i);
  i++;
  const major = buf[i + 5]! - 48;
  const minor = buf[i + 7]! - 48;
  if (
    i + 8 > end ||
    buf[i] !== 72 || // HTTP/
    buf[i + 1] !== 84 ||
    buf[i + 2] !== 84 ||
    buf[i + 3] !== 80 ||
    buf[i + 4] !== 47 ||
    !(major >= 0 && major <= 9) ||
    buf[i + 6] !== 46 ||
    !(minor >= 0 && minor <= 9) ||
    buf[i + 8] !== 13 ||
    buf[i + 9] !== 10
  ) {
    throw malformedRequestLine();
  }
  if (major !== 1 || minor > 1) {
    throw new HttpParseError(505, `HTTP/${major}.${minor} is not supported`);
  }
  const h: RequestHead = {
    method,
    target,
    minor,
    headLength: end + 4,
    raw: buf,
    start,
    end: end + 2,
    lines: [],
    rewrite: false,
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
  const lines = h.lines;
  let pos = i + 10;
  while (pos < end + 2) {
    const k = lines.length;
    headerLine(buf, pos, lines, k, 400);
    const a = lines[k]!;
    const vs = lines[k + 2]!;
    const ve = lines[k + 3]!;
    pos = lines[k + 4]!;
    const id = headerId(buf, a, lines[k + 1]! - a);
    if (id === H.other) continue;
    if (DROP_REQUEST.has(id)) h.rewrite = true;
    switch (id) {
      case H.host:
        if (h.host !== undefined) throw new HttpParseError(400, "more than one Host");
        h.host = buf.toString("latin1", vs, ve);
        break;
      case H.contentLength:
        h.contentLength = contentLength(buf, vs, ve, h.contentLength, 400);
        break;
      case H.transferEncoding: {
        const value = buf.toString("latin1", vs, ve);
        h.transferEncoding =
          h.transferEncoding === undefined ? value : `${h.transferEncoding}, ${value}`;
        break;
      }
      case H.connection:
        h.connection.push(...connectionTokens(buf, vs, ve));
        break;
      case H.upgrade:
        h.upgrade = buf.toString("latin1", vs, ve);
        break;
      case H.cookie: {
        const value = buf.toString("latin1", vs, ve);
        h.cookie = h.cookie === undefined ? value : `${h.cookie}; ${value}`;
        break;
      }
      case H.expect:
        h.expectContinue = buf.toString("latin1", vs, ve).toLowerCase() === "100-continue";
        break;
      case H.forwardedFor: {
        const value = buf.toString("latin1", vs, ve);
        h.forwardedFor = h.forwardedFor === undefined ? value : `${h.forwardedFor}, ${value}`;
        break;
      }
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

/** The request's headers in order as [name, value, ...] (names as sent, values trimmed). */
export function requestHeaders(h: RequestHead): string[] {
  const out: string[] = [];
  const l = h.lines;
  for (let k = 0; k < l.length; k += 5) {
    out.push(
      h.raw.toString("latin1", l[k], l[k + 1]),
      h.raw.toString("latin1", l[k + 2], l[k + 3]),
    );
  }
  return out;
}

export interface ForwardInfo {
  /** The client's address. */
  clientIp: string;
  /** The router's port (X-Forwarded-Port). */
  port: number;
}

/**
 * The head the router sends to a backend: the request line and header lines as received, without
 * hop-by-hop headers (and those Connection names) and the X-Forwarded-* the router sets, then
 * forwardedLines. Content-Length and Transfer-Encoding stay: the body passes through as it came.
 */
export function forwardRequestHead(h: RequestHead, f: ForwardInfo): string {
  const r = forwardedRanges(h);
  let s = "";
  for (let k = 0; k < r.length; k += 2) s += h.raw.toString("latin1", r[k], r[k + 1]);
  return s + forwardedLines(h, f);
}

/**
 * forwardRequestHead as bytes: the head's lines copied from `raw`, then `lines`
 * (forwardedLines in latin1, which a client connection keeps while they stay the same).
 */
export function forwardRequestBytes(h: RequestHead, lines: Buffer): Buffer {
  const r = forwardedRanges(h);
  let n = lines.length;
  for (let k = 0; k < r.length; k += 2) n += r[k + 1]! - r[k]!;
  const out = Buffer.allocUnsafe(n);
  let pos = 0;
  for (let k = 0; k < r.length; k += 2) pos = copyBytes(h.raw, r[k]!, r[k + 1]!, out, pos);
  copyBytes(lines, 0, lines.length, out, pos);
  return out;
}

/**
 * The lines the router adds to a forwarded head, and the blank line that ends it: X-Forwarded-For
 * (the client appended), -Proto, -Host, -Port and X-Real-Ip; for an Upgrade request, Connection:
 * Upgrade and the Upgrade header.
 */
export function forwardedLines(h: RequestHead, f: ForwardInfo): string {
  const ip = f.clientIp;
  let s = `X-Forwarded-For: ${h.forwardedFor === undefined ? ip : `${h.forwardedFor}, ${ip}`}\r\n`;
  s += "X-Forwarded-Proto: http\r\n";
  if (h.host !== undefined) s += `X-Forwarded-Host: ${h.host}\r\n`;
  s += `X-Forwarded-Port: ${f.port}\r\nX-Real-Ip: ${ip}\r\n`;
  if (h.isUpgrade) s += `Connection: Upgrade\r\nUpgrade: ${h.upgrade!}\r\n`;
  return `${s}\r\n`;
}

/** The request line and the header lines forwarded as received, as [start, end) ranges of `raw`. */
function forwardedRanges(h: RequestHead): number[] {
  if (!h.rewrite) return [h.start, h.end];
  const raw = h.raw;
  const l = h.lines;
  const out = [h.start, l.length > 0 ? l[0]! : h.end];
  // keep-alive is left out anyway; close names no header.
  const named = h.connection.filter((t) => t !== "keep-alive" && t !== "close");
  for (let k = 0; k < l.length; k += 5) {
    const a = l[k]!;
    const id = headerId(raw, a, l[k + 1]! - a);
    if (DROP_REQUEST.has(id)) continue;
    if (named.length > 0 && named.includes(raw.toString("latin1", a, l[k + 1]).toLowerCase())) {
      continue;
    }
    if (out[out.length - 1] === a) out[out.length - 1] = l[k + 4]!;
    else out.push(a, l[k + 4]!);
  }
  return out;
}

/**
 * parseResponseHead's header lines (5 numbers each, as RequestHead.lines) and which it passes on:
 * scratch reused by every call (a parse runs to its end before the next starts); they grow (and
 * stay grown) for a head with more lines than they hold.
 */
const respLines: number[] = new Array<number>(5 * 64).fill(0);
const respKeep: number[] = new Array<number>(64).fill(0);

/**
 * Parses a backend's response head at the start of `buf`: null while it is incomplete; throws an
 * HttpParseError (status 502) for a malformed or ambiguous one.
 */
export function parseResponseHead(buf: Buffer, maxHeadBytes: number): ResponseHead | null {
  const bounds = headBounds(buf, maxHeadBytes, 502);
  if (bounds === null) return null;
  const { start, end } = bounds;
  // HTTP/1.d SP 3DIGIT [SP reason] CRLF (the reason without control characters but HTAB)
  const i = start;
  const minor = buf[i + 7]! - 48;
  const d0 = buf[i + 9]! - 48;
  const d1 = buf[i + 10]! - 48;
  const d2 = buf[i + 11]! - 48;
  if (
    i + 12 > end ||
    buf[i] !== 72 || // HTTP/1.
    buf[i + 1] !== 84 ||
    buf[i + 2] !== 84 ||
    buf[i + 3] !== 80 ||
    buf[i + 4] !== 47 ||
    buf[i + 5] !== 49 ||
    buf[i + 6] !== 46 ||
    (minor !== 0 && minor !== 1) ||
    buf[i + 8] !== 32 ||
    !(d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9)
  ) {
    throw new HttpParseError(502, "malformed status line");
  }
  let e = i + 12;
  if (buf[e] !== 13) {
    if (buf[e] !== 32) throw new HttpParseError(502, "malformed status line");
    for (;;) {
      const c = buf[e]!;
      if (c === 13 && buf[e + 1] === 10) break;
      if ((c < 32 && c !== 9) || c === 127) throw new HttpParseError(502, "malformed status line");
      e++;
    }
  } else if (buf[e + 1] !== 10) throw new HttpParseError(502, "malformed status line");
  const r: ResponseHead = {
    status: d0 * 100 + d1 * 10 + d2,
    minor,
    headLength: end + 4,
    raw: buf,
    pass: [i + 8, e + 2],
    contentLength: -1,
    chunked: false,
    close: minor !== 1,
    keepAliveTimeout: -1,
  };
  let te: string | undefined;
  let connection: string[] | undefined;
  const lines = respLines;
  /** Per line: passed on (1) or not (0). */
  const keep = respKeep;
  let n = 0;
  let dropped = false;
  let pos = e + 2;
  while (pos < end + 2) {
    const k = n;
    n = headerLine(buf, pos, lines, n, 502);
    const a = lines[k]!;
    const vs = lines[k + 2]!;
    const ve = lines[k + 3]!;
    pos = lines[k + 4]!;
    const id = headerId(buf, a, lines[k + 1]! - a);
    let drop = false;
    switch (id) {
      case H.contentLength:
        r.contentLength = contentLength(buf, vs, ve, r.contentLength, 502);
        break;
      case H.transferEncoding: {
        const value = buf.toString("latin1", vs, ve);
        te = te === undefined ? value : `${te}, ${value}`;
        break;
      }
      case H.connection: {
        const t = connectionTokens(buf, vs, ve);
        connection = connection === undefined ? t : connection.concat(t);
        if (t.includes("close")) r.close = true;
        else if (t.includes("keep-alive")) r.close = false;
        drop = true;
        break;
      }
      case H.keepAlive: {
        const t = keepAliveTimeout(buf, vs, ve);
        if (t >= 0) r.keepAliveTimeout = t;
        drop = true;
        break;
      }
      case H.upgrade:
        drop = true;
        break;
      case H.dropped:
        drop = DROP_RESPONSE.has(buf.toString("latin1", a, lines[k + 1]).toLowerCase());
        break;
    }
    keep[k / 5] = drop ? 0 : 1;
    if (drop) dropped = true;
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
  // Headers that Connection names are hop-by-hop too (keep-alive is left out anyway; close names
  // no header).
  const named = connection?.filter((t) => t !== "keep-alive" && t !== "close");
  if (named !== undefined && named.length > 0) {
    for (let k = 0; k < n; k += 5) {
      if (keep[k / 5] === 0) continue;
      const name = buf.toString("latin1", lines[k], lines[k + 1]).toLowerCase();
      if (named.includes(name)) {
        keep[k / 5] = 0;
        dropped = true;
      }
    }
  }
  if (n === 0) return r;
  if (!dropped) {
    r.pass.push(lines[0]!, end + 2);
    return r;
  }
  // Runs of kept lines, each as one range.
  for (let k = 0; k < n;) {
    if (keep[k / 5] === 0) {
      k += 5;
      continue;
    }
    const a = lines[k]!;
    while (k < n && keep[k / 5] === 1) k += 5;
    r.pass.push(a, lines[k - 1]!);
  }
  return r;
}

/** The reason phrase with its leading space (` OK`), or "". */
export function reasonPhrase(r: ResponseHead): string {
  const [a, b] = r.pass;
  return r.raw.toString("latin1", a! + 4, b! - 2);
}

/** The header lines the router passes on (`Name: value\r\n` each), hop-by-hop ones left out. */
export function keptHeaders(r: ResponseHead): string {
  let s = "";
  for (let k = 2; k < r.pass.length; k += 2)
    s += r.raw.toString("latin1", r.pass[k], r.pass[k + 1]);
  return s;
}

const HTTP11 = Buffer.from("HTTP/1.1", "latin1");

/**
 * The response head the router sends to its client, as bytes: `HTTP/1.1`, the status line's rest
 * and the kept header lines copied from the backend's head, then `extra` (header lines the router
 * adds, latin1), the blank line, and `body[bodyStart, bodyEnd)` (the body bytes that came with
 * the head) in the same buffer.
 */
export function responseHeadBytes(
  r: ResponseHead,
  extra: string,
  body: Buffer,
  bodyStart: number,
  bodyEnd: number,
): Buffer {
  const pass = r.pass;
  const raw = r.raw;
  let n = 8 + extra.length + 2 + (bodyEnd - bodyStart);
  for (let k = 0; k < pass.length; k += 2) n += pass[k + 1]! - pass[k]!;
  const out = Buffer.allocUnsafe(n);
  let pos = 0;
  for (; pos < 8; pos++) out[pos] = HTTP11[pos]!;
  for (let k = 0; k < pass.length; k += 2) pos = copyBytes(raw, pass[k]!, pass[k + 1]!, out, pos);
  if (extra.length > 0) pos += out.write(extra, pos, "latin1");
  out[pos++] = 13;
  out[pos++] = 10;
  copyBytes(body, bodyStart, bodyEnd, out, pos);
  return out;
}

/** Copies src[a, b) into dst at `pos`; the position after. A loop for the short header runs. */
function copyBytes(src: Buffer, a: number, b: number, dst: Buffer, pos: number): number {
  if (b - a > 256) return pos + src.copy(dst, pos, a, b);
  for (let i = a; i < b; i++) dst[pos++] = src[i]!;
  return pos;
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

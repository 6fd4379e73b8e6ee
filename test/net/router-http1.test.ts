// The router's HTTP/1.1 framing (src/net/router/http1.ts), byte for byte: request heads (what
// routing needs, the smuggling cases refused with their status), the head forwarded to a backend,
// response heads and their framing, and the chunked-body scanner fed whole and one byte at a time.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ChunkedScanner,
  forwardedLines,
  forwardRequestBytes,
  forwardRequestHead,
  Framing,
  HttpParseError,
  keptHeaders,
  parseRequestHead,
  parseResponseHead,
  reasonPhrase,
  requestHeaders,
  responseFraming,
  responseHeadBytes,
} from "../../src/net/router/http1.js";

const b = (s: string) => Buffer.from(s, "latin1");
const MAX = 16 * 1024;

test("parseRequestHead: what routing and framing need, null until the head is complete", () => {
  const text =
    "\r\nPOST /a/b?x=1 HTTP/1.1\r\nHost: Web.Test:8080\r\nCookie: a=1\r\ncookie: b=2\r\n" +
    "Content-Length: 5\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n" +
    "Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nExpect: 100-continue\r\n" +
    "X-Empty:\r\nX-Spaces: \t v w \t\r\n\r\nhello";
  const whole = b(text);
  for (let i = 0; i < whole.length - 5; i++) {
    assert.equal(parseRequestHead(whole.subarray(0, i), MAX), null, `${i} bytes`);
  }
  const h = parseRequestHead(whole, MAX)!;
  assert.equal(h.headLength, whole.length - 5);
  assert.equal(h.method, "POST");
  assert.equal(h.target, "/a/b?x=1");
  assert.equal(h.minor, 1);
  assert.equal(h.host, "Web.Test:8080");
  assert.equal(h.cookie, "a=1; b=2");
  assert.equal(h.contentLength, 5);
  assert.equal(h.transferEncoding, undefined);
  assert.equal(h.forwardedFor, "1.2.3.4, 5.6.7.8");
  assert.deepEqual(h.connection, ["keep-alive", "x-secret"]);
  assert.equal(h.expectContinue, true);
  assert.equal(h.keepAlive, true);
  assert.equal(h.isUpgrade, false);
  assert.deepEqual(requestHeaders(h).slice(-4), ["X-Empty", "", "X-Spaces", "v w"]);

  const h10 = parseRequestHead(b("GET / HTTP/1.0\r\n\r\n"), MAX)!;
  assert.equal(h10.minor, 0);
  assert.equal(h10.keepAlive, false);
  assert.equal(h10.host, undefined);
  const close = parseRequestHead(b("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), MAX)!;
  assert.equal(close.keepAlive, false);
  const ws = parseRequestHead(
    b("GET /s HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
    MAX,
  )!;
  assert.equal(ws.isUpgrade, true);
  const chunked = parseRequestHead(
    b(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
    ),
    MAX,
  )!;
  assert.equal(chunked.transferEncoding, "gzip, chunked");
  assert.equal(chunked.contentLength, -1);
});

test("parseRequestHead refuses what a proxy must not guess at (smuggling, malformed heads)", () => {
  const cases: Array<[string, number, RegExp]> = [
    [
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      400,
      /both Content-Length and Transfer-Encoding/,
    ],
    [
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
      400,
      /both Content-Length and Transfer-Encoding/,
    ],
    [
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
      400,
      /more than one Content-Length/,
    ],
    ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400, /invalid Content-Length/],
    ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400, /invalid Content-Length/],
    ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400, /invalid Content-Length/],
    ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400, /invalid Content-Length/],
    [
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456\r\n\r\n",
      400,
      /invalid Content-Length/,
    ],
    ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400, /malformed header line/],
    [
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
      400,
      /unsupported Transfer-Encoding/,
    ],
    [
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      400,
      /unsupported Transfer-Encoding/,
    ],
    [
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
      400,
      /unsupported Transfer-Encoding/,
    ],
    [
      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
      400,
      /Transfer-Encoding in an HTTP\/1.0 request/,
    ],
    ["GET / HTTP/1.1\r\nHost: a\r\n X-Folded: b\r\n\r\n", 400, /malformed header line/],
    ["GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400, /invalid character in header X-A/],
    ["GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400, /invalid character in header Host/],
    ["GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00\r\n\r\n", 400, /invalid character/],
    ["GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, /more than one Host/],
    ["GET / HTTP/1.1\r\n\r\n", 400, /no Host header/],
    ["GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400, /malformed request line/],
    ["GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, /malformed request line/],
    ["GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, /malformed request line/],
    ["G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, /malformed request line/],
    ["GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, /malformed request line/],
    ["GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, /HTTP\/2.0 is not supported/],
    ["GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, /HTTP\/1.2 is not supported/],
    ["GET / HTTP/1.1\r\n: b\r\nHost: a\r\n\r\n", 400, /malformed header line/],
    ["GET / HTTP/1.1\rX: y\r\nHost: a\r\n\r\n", 400, /malformed request line/],
    ["GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\r\n\r\n", 400, /invalid character in header X-A/],
    ["GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", 400, /malformed header line "X-A"/],
    ["GET / HTTP/11\r\nHost: a\r\n\r\n", 400, /malformed request line/],
    ["GET / HTTQ/1.1\r\nHost: a\r\n\r\n", 400, /malformed request line/],
  ];
  for (const [text, status, why] of cases) {
    assert.throws(
      () => parseRequestHead(b(text), MAX),
      (err: unknown) => {
        assert.ok(err instanceof HttpParseError, JSON.stringify(text));
        assert.equal(err.code, "ERR_HTTP_PARSE");
        assert.equal(err.status, status, JSON.stringify(text));
        assert.match(err.message, why, JSON.stringify(text));
        return true;
      },
    );
  }
  // Too large: 431 whether or not the head is complete.
  const big = `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${"x".repeat(200)}\r\n\r\n`;
  for (const text of [big, big.slice(0, -4)]) {
    assert.throws(
      () => parseRequestHead(b(text), 100),
      (err: unknown) => err instanceof HttpParseError && err.status === 431,
    );
  }
});

test("forwardRequestHead: hop-by-hop headers out, X-Forwarded-* in, the body's framing kept", () => {
  const h = parseRequestHead(
    b(
      "POST /p?q HTTP/1.1\r\nHost: web.test:8080\r\nConnection: keep-alive, X-Secret\r\n" +
        "Keep-Alive: timeout=5\r\nX-Secret: s\r\nTE: trailers\r\nExpect: 100-continue\r\n" +
        "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Real-Ip: 1.1.1.1\r\n" +
        "Upgrade: h2c\r\nTransfer-Encoding: chunked\r\nAccept: */*\r\n\r\n",
    ),
    MAX,
  )!;
  assert.equal(
    forwardRequestHead(h, { clientIp: "10.0.0.7", port: 80 }),
    "POST /p?q HTTP/1.1\r\nHost: web.test:8080\r\nTransfer-Encoding: chunked\r\n" +
      "Accept: */*\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.7\r\nX-Forwarded-Proto: http\r\n" +
      "X-Forwarded-Host: web.test:8080\r\nX-Forwarded-Port: 80\r\nX-Real-Ip: 10.0.0.7\r\n\r\n",
  );
  const ws = parseRequestHead(
    b("GET /s HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
    MAX,
  )!;
  assert.equal(
    forwardRequestHead(ws, { clientIp: "::1", port: 8080 }),
    "GET /s HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: ::1\r\nX-Forwarded-Proto: http\r\n" +
      "X-Forwarded-Host: a\r\nX-Forwarded-Port: 8080\r\nX-Real-Ip: ::1\r\n" +
      "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
  );
  // Nothing to leave out: the request line and header lines go on byte for byte (obs-text too).
  const plain = parseRequestHead(
    b("GET /x HTTP/1.1\r\nhost: a\r\nX-Sp:  v \t\r\nX-O: caf\xe9\r\n\r\n"),
    MAX,
  )!;
  assert.equal(
    forwardRequestHead(plain, { clientIp: "10.0.0.7", port: 80 }),
    "GET /x HTTP/1.1\r\nhost: a\r\nX-Sp:  v \t\r\nX-O: caf\xe9\r\nX-Forwarded-For: 10.0.0.7\r\n" +
      "X-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\nX-Forwarded-Port: 80\r\nX-Real-Ip: 10.0.0.7\r\n\r\n",
  );
  const h10 = parseRequestHead(b("GET / HTTP/1.0\r\nContent-Length: 0\r\n\r\n"), MAX)!;
  assert.equal(
    forwardRequestHead(h10, { clientIp: "1.2.3.4", port: 1 }),
    "GET / HTTP/1.0\r\nContent-Length: 0\r\nX-Forwarded-For: 1.2.3.4\r\n" +
      "X-Forwarded-Proto: http\r\nX-Forwarded-Port: 1\r\nX-Real-Ip: 1.2.3.4\r\n\r\n",
  );
});

test("responseHeadBytes: HTTP/1.1, the status line and kept lines as received, the router's lines, the body bytes", () => {
  const text =
    "HTTP/1.0 201 Created\r\nConnection: keep-alive\r\nA: 1\r\nKeep-Alive: timeout=5\r\n" +
    "B: 2\r\nContent-Length: 5\r\n\r\nhelloNEXT";
  const whole = b(text);
  const r = parseResponseHead(whole, MAX)!;
  assert.deepEqual(
    responseHeadBytes(r, "Set-Cookie: s=1\r\n", whole, r.headLength, r.headLength + 5).toString(
      "latin1",
    ),
    "HTTP/1.1 201 Created\r\nA: 1\r\nB: 2\r\nContent-Length: 5\r\nSet-Cookie: s=1\r\n\r\nhello",
  );
  // Nothing left out: the header lines in one run; no extra lines, no body.
  const plain = b("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: y\r\n\r\n");
  const p = parseResponseHead(plain, MAX)!;
  assert.equal(p.pass.length, 4);
  assert.equal(
    responseHeadBytes(p, "", plain, p.headLength, p.headLength).toString("latin1"),
    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX: y\r\n\r\n",
  );
  // A long header run and body are copied whole.
  const long = `X-Long: ${"v".repeat(1000)}\r\n`;
  const big = b(`HTTP/1.1 200 OK\r\n${long}Content-Length: 600\r\n\r\n${"z".repeat(600)}`);
  const q = parseResponseHead(big, MAX)!;
  assert.equal(
    responseHeadBytes(q, "Connection: close\r\n", big, q.headLength, big.length).toString(),
    `HTTP/1.1 200 OK\r\n${long}Content-Length: 600\r\nConnection: close\r\n\r\n${"z".repeat(600)}`,
  );
});

test("forwardRequestBytes: the bytes of forwardRequestHead, from the head's ranges and the given lines", () => {
  const f = { clientIp: "10.0.0.1", port: 80 };
  for (const text of [
    "GET /a HTTP/1.1\r\nHost: web.test\r\nAccept: */*\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nA: 1\r\nKeep-Alive: 5\r\nB: 2\r\n\r\n",
    "POST / HTTP/1.1\r\nConnection: close, X-Hop\r\nHost: h\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n",
    "GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: h\r\nX-Real-Ip: 9.9.9.9\r\n\r\n",
    `GET / HTTP/1.1\r\nHost: h\r\nX-Long: ${"v".repeat(400)}\r\n\r\n`,
    "GET / HTTP/1.0\r\n\r\n",
  ]) {
    const h = parseRequestHead(b(text), MAX)!;
    const lines = b(forwardedLines(h, f));
    assert.equal(
      forwardRequestBytes(h, lines).toString("latin1"),
      forwardRequestHead(h, f),
      JSON.stringify(text),
    );
  }
});

test("parseResponseHead: status, framing, the headers passed on", () => {
  const text =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n" +
    "Connection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\n" +
    "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello";
  const whole = b(text);
  for (let i = 0; i < whole.length - 5; i++) {
    assert.equal(parseResponseHead(whole.subarray(0, i), MAX), null, `${i} bytes`);
  }
  const r = parseResponseHead(whole, MAX)!;
  assert.equal(r.status, 200);
  assert.equal(reasonPhrase(r), " OK");
  assert.equal(r.headLength, whole.length - 5);
  assert.equal(
    keptHeaders(r),
    "Content-Type: text/plain\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n",
  );
  assert.equal(r.contentLength, 5);
  assert.equal(r.close, false);
  assert.equal(r.keepAliveTimeout, 5);
  assert.equal(responseFraming("GET", r), Framing.length);
  assert.equal(responseFraming("HEAD", r), Framing.none);

  const chunked = parseResponseHead(
    b("HTTP/1.1 404 \r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
    MAX,
  )!;
  assert.equal(reasonPhrase(chunked), " ");
  assert.equal(keptHeaders(chunked), "Transfer-Encoding: chunked\r\n");
  assert.equal(chunked.close, true);
  assert.equal(responseFraming("GET", chunked), Framing.chunked);

  const old = parseResponseHead(b("HTTP/1.0 200\r\n\r\n"), MAX)!;
  assert.equal(reasonPhrase(old), "");
  assert.equal(old.close, true);
  assert.equal(responseFraming("GET", old), Framing.close);
  const oldKept = parseResponseHead(b("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n"), MAX)!;
  assert.equal(oldKept.close, false);
  for (const status of [100, 103, 204, 304]) {
    const s = parseResponseHead(b(`HTTP/1.1 ${status} X\r\nContent-Length: 3\r\n\r\n`), MAX)!;
    assert.equal(responseFraming("GET", s), Framing.none, String(status));
  }
  for (const [value, timeout] of [
    ["timeout=5", 5],
    ["max=100, Timeout=30", 30],
    ["max=5;timeout=7", 7],
    ["xtimeout=5", -1],
    ["timeout=, timeout=9", 9],
    ["timeout=x", -1],
  ] as const) {
    const k = parseResponseHead(b(`HTTP/1.1 200 OK\r\nKeep-Alive: ${value}\r\n\r\n`), MAX)!;
    assert.equal(k.keepAliveTimeout, timeout, value);
  }
  const closing = parseResponseHead(b("HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n"), MAX)!;
  assert.equal(closing.close, true);
  const gz = parseResponseHead(b("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), MAX)!;
  assert.equal(responseFraming("GET", gz), Framing.close);
  assert.equal(gz.close, true);

  const bad: Array<[string, RegExp]> = [
    ["HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", /more than one/],
    [
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      /both Content-Length and Transfer-Encoding/,
    ],
    ["HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", /invalid Content-Length/],
    ["HTTP/2 200 OK\r\n\r\n", /malformed status line/],
    ["HTTP/1.1 20 OK\r\n\r\n", /malformed status line/],
    ["HTTP/1.1 200 OK\r\nX : y\r\n\r\n", /malformed header line/],
    ["HTTP/1.1 200 O\x01K\r\n\r\n", /malformed status line/],
    ["HTTP/1.1 2000\r\n\r\n", /malformed status line/],
    ["HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n", /invalid character in header X/],
  ];
  for (const [text, why] of bad) {
    assert.throws(
      () => parseResponseHead(b(text), MAX),
      (err: unknown) =>
        err instanceof HttpParseError && err.status === 502 && why.test(err.message),
      text,
    );
  }
});

test("ChunkedScanner finds the end of a chunked body, whole or one byte at a time", () => {
  const bodies: Array<[string, number]> = [
    ["0\r\n\r\n", 0],
    ["5\r\nhello\r\n0\r\n\r\n", 5],
    ["5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n", 15],
    ["3 ; x\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n", 3],
    ["000\r\n\r\n", 0],
  ];
  for (const [text, data] of bodies) {
    const whole = b(`${text}NEXT`);
    const sc = new ChunkedScanner();
    assert.equal(sc.scan(whole), text.length, text);
    assert.equal(sc.dataBytes, data);
    assert.equal(sc.done, true);
    const one = new ChunkedScanner();
    let end = -1;
    for (let i = 0; i < text.length; i++) {
      end = one.scan(whole.subarray(i, i + 1));
      if (i < text.length - 1) assert.equal(end, -1, `${JSON.stringify(text)} at ${i}`);
    }
    assert.equal(end, 1);
    assert.equal(one.dataBytes, data);
    // From an offset.
    assert.equal(new ChunkedScanner().scan(b(`xx${text}`), 2), text.length + 2);
  }
  const bad: Array<[string, RegExp]> = [
    ["\r\n", /invalid chunk size/],
    ["g\r\n", /invalid chunk size/],
    ["-1\r\n", /invalid chunk size/],
    ["5\nhello", /invalid chunk size/],
    ["5\rhello", /expected LF after the chunk size/],
    ["5\r\nhelloX", /expected CRLF after chunk data/],
    ["5\r\nhello\rX", /expected CRLF after chunk data/],
    ["12345678901234\r\n", /chunk size too large/],
    ["1;\x01\r\n", /invalid chunk extension/],
    ["0\r\nX: 1\n", /invalid character in trailers/],
    ["0\r\n\n", /bare LF in trailers/],
    ["0\r\n\rX", /expected LF after the last chunk/],
  ];
  for (const [text, why] of bad) {
    assert.throws(
      () => new ChunkedScanner(400).scan(b(text)),
      (err: unknown) =>
        err instanceof HttpParseError && err.status === 400 && why.test(err.message),
      JSON.stringify(text),
    );
  }
});

test("parseResponseHead: heads with more lines than its scratch holds, and heads parsed after them", () => {
  // 200 lines, every third named by Connection (hop-by-hop); then smaller heads, whose result
  // must not carry anything over from the large one.
  let lines = "Connection: X-Hop\r\n";
  let kept = "";
  for (let i = 0; i < 200; i++) {
    const line = i % 3 === 0 ? `X-Hop: ${i}\r\n` : `X-Keep-${i}: ${i}\r\n`;
    lines += line;
    if (i % 3 !== 0) kept += line;
  }
  const big = parseResponseHead(b(`HTTP/1.1 200 OK\r\n${lines}Content-Length: 0\r\n\r\n`), MAX)!;
  assert.equal(keptHeaders(big), `${kept}Content-Length: 0\r\n`);
  assert.equal(big.contentLength, 0);
  const small = parseResponseHead(b("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"), MAX)!;
  assert.equal(keptHeaders(small), "A: 1\r\nB: 2\r\n");
  const dropped = parseResponseHead(
    b("HTTP/1.1 200 OK\r\nA: 1\r\nKeep-Alive: x\r\nB: 2\r\n\r\n"),
    MAX,
  )!;
  assert.equal(keptHeaders(dropped), "A: 1\r\nB: 2\r\n");
  assert.equal(keptHeaders(parseResponseHead(b("HTTP/1.1 204 No Content\r\n\r\n"), MAX)!), "");
});

// The HTTP router against real HTTP backends on loopback (ports the tests pick): round robin,
// Host and PathPrefix routing with priorities, the 404/502/503/504 bodies, the sticky cookie
// (pins, then moves with the cookie rewritten once its backend leaves the table), the
// X-Forwarded-* headers, request bodies, connection reuse to backends, a WebSocket echo, table
// updates taking effect on the next request, and the access log.

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { Agent, createServer, request, type IncomingHttpHeaders, type Server } from "node:http";
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import { adoptClientSocket, HttpRouter, type RouterOptions } from "../../src/net/router/router.js";
import { LATENCY_BUCKETS_S } from "../../src/net/router/stats.js";
import type { Route, RouteBackend, RouteTable } from "../../src/api/routes.js";
import { SchemaError } from "../../src/api/errors.js";
import { defer } from "../helpers/defer.js";
import { freePort } from "../helpers/cluster.js";

interface Backend {
  name: string;
  server: Server;
  backend: RouteBackend;
  /** TCP connections it accepted. */
  connections: number;
}

/** An HTTP server that answers with its name and what it saw, as JSON. */
async function backend(t: TestContext, name: string): Promise<Backend> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      const text = JSON.stringify({ name, url: req.url, headers: req.headers, body });
      res.writeHead(200, { "Content-Type": "application/json", "Set-Cookie": "app=1" });
      res.end(text);
    });
  });
  const b: Backend = { name, server, backend: { host: "127.0.0.1", port: 0 }, connections: 0 };
  server.on("connection", () => b.connections++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  b.backend.port = (server.address() as AddressInfo).port;
  defer(t, () => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return b;
}

async function startRouter(
  t: TestContext,
  table: RouteTable,
  opts: Partial<RouterOptions> = {},
): Promise<{ router: HttpRouter; port: number }> {
  const router = new HttpRouter(opts);
  defer(t, () => router.close());
  router.update(table);
  const { port } = await router.listen(0, "127.0.0.1");
  return { router, port };
}

const route = (
  service: string,
  rule: string,
  backends: RouteBackend[],
  more: Partial<Route> = {},
): Route => ({ service, router: "r", rule, priority: rule.length, backends, ...more });

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The client side's port of the connection it came on. */
  clientPort: number;
  /** The backend's name when it answered with JSON. */
  name?: string;
  seen?: { url: string; headers: IncomingHttpHeaders; body: string };
}

function get(
  port: number,
  host: string,
  path = "/",
  opts: { headers?: Record<string, string>; method?: string; body?: string; agent?: Agent } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: opts.method ?? "GET",
        headers: { Host: host, ...opts.headers },
        agent: opts.agent ?? false,
      },
      (res) => {
        let body = "";
        const clientPort = res.socket.localPort!;
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => {
          const reply: Reply = {
            status: res.statusCode!,
            headers: res.headers,
            body,
            clientPort,
          };
          if (res.headers["content-type"] === "application/json") {
            const seen = JSON.parse(body) as Reply["seen"] & { name: string };
            reply.name = seen.name;
            reply.seen = seen;
          }
          resolve(reply);
        });
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

test("round robin reaches every backend, in turn", async (t) => {
  const bs = await Promise.all(["a", "b", "c"].map((n) => backend(t, n)));
  const { port } = await startRouter(t, {
    routes: [
      route(
        "web",
        "Host(`web.test`)",
        bs.map((b) => b.backend),
      ),
    ],
  });
  const names: string[] = [];
  for (let i = 0; i < 6; i++) names.push((await get(port, "web.test")).name!);
  assert.deepEqual(names, ["a", "b", "c", "a", "b", "c"]);
});

test("routes by Host (port stripped, case ignored) and PathPrefix, highest priority first", async (t) => {
  const [web, api, admin, other] = await Promise.all(
    ["web", "api", "admin", "other"].map((n) => backend(t, n)),
  );
  const { port } = await startRouter(t, {
    routes: [
      route("web", "Host(`web.test`)", [web!.backend]),
      // Longer rule, so a higher default priority: /api goes here, not to web.
      route("api", "Host(`web.test`) && PathPrefix(`/api`)", [api!.backend]),
      // An explicit low priority loses to web although its rule is longer.
      route("admin", "Host(`web.test`) && PathPrefix(`/admin`)", [admin!.backend], {
        priority: 1,
      }),
      route("other", "Host(`other.test`, `alias.test`)", [other!.backend]),
    ],
  });
  const cases: Array<[string, string, string]> = [
    ["web.test", "/", "web"],
    ["WEB.Test:8080", "/index.html", "web"],
    ["web.test", "/api/v1?x=1", "api"],
    ["web.test", "/admin", "web"],
    ["other.test", "/api", "other"],
    ["alias.test", "/", "other"],
  ];
  for (const [host, path, want] of cases) {
    const r = await get(port, host, path);
    assert.equal(r.name, want, `${host}${path}`);
  }
  const r = await get(port, "web.test", "/api/v1?x=1");
  assert.equal(r.seen!.url, "/api/v1?x=1");
});

test("errors are short bodies that say why: 404, 503, 502 refused and reset, 504", async (t) => {
  const closed = await freePort();
  const hang = createServer(() => {}); // never answers
  const reset = createServer((req) => req.socket.destroy());
  for (const s of [hang, reset]) {
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    defer(t, () => {
      s.closeAllConnections();
      return new Promise((r) => s.close(r));
    });
  }
  const at = (s: Server) => ({ host: "127.0.0.1", port: (s.address() as AddressInfo).port });
  const { port } = await startRouter(
    t,
    {
      routes: [
        route("empty", "Host(`empty.test`)", []),
        route("refused", "Host(`refused.test`)", [{ host: "127.0.0.1", port: closed }]),
        route("reset", "Host(`reset.test`)", [at(reset)]),
        route("hang", "Host(`hang.test`)", [at(hang)]),
      ],
    },
    { timeoutMs: 300 },
  );
  const cases: Array<[string, number, string]> = [
    ["nope.test", 404, 'no route for host "nope.test"\n'],
    ["empty.test", 503, "no healthy backend for service empty\n"],
    ["refused.test", 502, `backend 127.0.0.1:${closed} refused the connection\n`],
    ["reset.test", 502, `backend 127.0.0.1:${at(reset).port} reset the connection\n`],
    ["hang.test", 504, `backend 127.0.0.1:${at(hang).port} did not answer within 0.3 s\n`],
  ];
  for (const [host, status, body] of cases) {
    const r = await get(port, host);
    assert.equal(r.status, status, host);
    assert.equal(r.body, body, host);
    assert.equal(r.headers["content-type"], "text/plain; charset=utf-8");
  }
});

test("sticky cookie: set on the first response, pins, moves with the cookie rewritten when its backend leaves", async (t) => {
  const bs = await Promise.all(["a", "b", "c"].map((n) => backend(t, n)));
  const sticky = { name: "lb", secure: false, httpOnly: true };
  const table = (list: Backend[]): RouteTable => ({
    routes: [
      route(
        "web",
        "Host(`web.test`)",
        list.map((b) => b.backend),
        { sticky },
      ),
    ],
  });
  const { router, port } = await startRouter(t, table(bs));

  const first = await get(port, "web.test");
  const setCookie = first.headers["set-cookie"]!;
  // The backend's own cookie is kept, the router's is added.
  assert.ok(setCookie.includes("app=1"));
  const mine = setCookie.find((c) => c.startsWith("lb="))!;
  assert.match(mine, /^lb=[0-9a-f]{16}; Path=\/; HttpOnly$/);
  const cookie = mine.split(";")[0]!;
  const pinned = first.name!;

  for (let i = 0; i < 5; i++) {
    const r = await get(port, "web.test", "/", { headers: { Cookie: `x=1; ${cookie}` } });
    assert.equal(r.name, pinned);
    assert.equal(r.headers["set-cookie"]!.filter((c) => c.startsWith("lb=")).length, 0);
  }
  // A cookie that names no backend is rewritten.
  const bogus = await get(port, "web.test", "/", { headers: { Cookie: "lb=feedfeedfeedfeed" } });
  assert.ok(bogus.headers["set-cookie"]!.some((c) => c.startsWith("lb=")));

  router.update(table(bs.filter((b) => b.name !== pinned)));
  const moved = await get(port, "web.test", "/", { headers: { Cookie: cookie } });
  assert.notEqual(moved.name, pinned);
  const rewritten = moved.headers["set-cookie"]!.find((c) => c.startsWith("lb="))!;
  assert.notEqual(rewritten.split(";")[0], cookie);
  for (let i = 0; i < 3; i++) {
    const r = await get(port, "web.test", "/", { headers: { Cookie: rewritten.split(";")[0]! } });
    assert.equal(r.name, moved.name);
  }
});

test("X-Forwarded-For is appended; -Proto, -Host, -Port and X-Real-Ip are set", async (t) => {
  const b = await backend(t, "a");
  const { port } = await startRouter(t, {
    routes: [route("web", "Host(`web.test`)", [b.backend])],
  });
  const r = await get(port, "web.test:8080", "/", {
    headers: { "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https" },
  });
  const h = r.seen!.headers;
  assert.equal(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
  assert.equal(h["x-forwarded-proto"], "http");
  assert.equal(h["x-forwarded-host"], "web.test:8080");
  assert.equal(h["x-forwarded-port"], String(port));
  assert.equal(h["x-real-ip"], "127.0.0.1");
  assert.equal(h.host, "web.test:8080");
  const plain = await get(port, "web.test");
  assert.equal(plain.seen!.headers["x-forwarded-for"], "127.0.0.1");
});

test("X-Forwarded-* follow each request's own Host and X-Forwarded-For on one client connection", async (t) => {
  const b = await backend(t, "a");
  const { port } = await startRouter(t, {
    routes: [route("web", "Host(`a.test`) || Host(`b.test`)", [b.backend])],
  });
  const c = connect(port, "127.0.0.1");
  defer(t, () => c.destroy());
  let buf = "";
  let waiting: (() => void) | undefined;
  c.on("data", (d: Buffer) => {
    buf += d.toString("latin1");
    waiting?.();
  });
  /** Sends a head without Connection (forwarded as received) and reads the backend's JSON. */
  const ask = async (head: string) => {
    c.write(`GET / HTTP/1.1\r\n${head}\r\n`);
    for (;;) {
      // The backend's answer is chunked: the head, chunks, the last chunk.
      const end = buf.indexOf("\r\n\r\n");
      const last = buf.indexOf("\r\n0\r\n\r\n", end);
      if (end >= 0 && last >= 0) {
        let body = "";
        for (let p = end + 4; p < last;) {
          const eol = buf.indexOf("\r\n", p);
          const n = parseInt(buf.slice(p, eol), 16);
          body += buf.slice(eol + 2, eol + 2 + n);
          p = eol + 2 + n + 2;
        }
        buf = buf.slice(last + 7);
        return (JSON.parse(body) as { headers: IncomingHttpHeaders }).headers;
      }
      await new Promise<void>((r) => (waiting = r));
    }
  };
  const seen = [
    await ask("Host: a.test\r\n"),
    await ask("Host: b.test\r\n"),
    await ask("Host: b.test\r\nX-Forwarded-For: 203.0.113.9\r\n"),
    await ask("Host: a.test\r\n"),
  ];
  assert.deepEqual(
    seen.map((h) => [h["x-forwarded-host"], h["x-forwarded-for"], h["x-real-ip"]]),
    [
      ["a.test", "127.0.0.1", "127.0.0.1"],
      ["b.test", "127.0.0.1", "127.0.0.1"],
      ["b.test", "203.0.113.9, 127.0.0.1", "127.0.0.1"],
      ["a.test", "127.0.0.1", "127.0.0.1"],
    ],
  );
  assert.ok(seen.every((h) => h["x-forwarded-port"] === String(port)));
});

test("request bodies pass through; backend connections are reused", async (t) => {
  const b = await backend(t, "a");
  const { port } = await startRouter(t, {
    routes: [route("web", "Host(`web.test`)", [b.backend])],
  });
  const r = await get(port, "web.test", "/post", { method: "POST", body: "hello body" });
  assert.equal(r.seen!.body, "hello body");
  for (let i = 0; i < 10; i++) assert.equal((await get(port, "web.test")).status, 200);
  assert.equal(b.connections, 1);
});

test("a table update takes effect on the next request, on the same client connection", async (t) => {
  const [a, b] = await Promise.all(["a", "b"].map((n) => backend(t, n)));
  const { router, port } = await startRouter(t, {
    routes: [route("web", "Host(`web.test`)", [a!.backend])],
  });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  defer(t, () => agent.destroy());
  const r1 = await get(port, "web.test", "/", { agent });
  assert.equal(r1.name, "a");
  router.update({ routes: [route("web", "Host(`web.test`)", [b!.backend])] });
  const r2 = await get(port, "web.test", "/", { agent });
  assert.equal(r2.name, "b");
  router.update({ routes: [] });
  const r3 = await get(port, "web.test", "/", { agent });
  assert.equal(r3.status, 404);
  // One client connection served all three.
  assert.deepEqual([r2.clientPort, r3.clientPort], [r1.clientPort, r1.clientPort]);
  assert.throws(
    () => router.update({ routes: [{ service: "x" }] } as unknown as RouteTable),
    SchemaError,
  );
});

test("WebSocket upgrades pass through both ways until a side closes", async (t) => {
  const server = createServer();
  const wss = new WebSocketServer({ server });
  wss.on("connection", (ws, req) => {
    ws.send(`hello from backend, forwarded for ${String(req.headers["x-forwarded-for"])}`);
    ws.on("message", (data) => ws.send(`echo: ${String(data)}`));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  defer(t, () => {
    wss.close();
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  const { port } = await startRouter(t, {
    routes: [
      route("ws", "Host(`ws.test`)", [
        { host: "127.0.0.1", port: (server.address() as AddressInfo).port },
      ]),
    ],
  });
  const ws = new WebSocket(`ws://127.0.0.1:${port}/socket`, { headers: { Host: "ws.test" } });
  defer(t, () => ws.terminate());
  const messages: string[] = [];
  const closed = new Promise<number>((resolve) => ws.on("close", (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.on("error", reject);
    ws.on("message", (data) => {
      messages.push(String(data));
      if (messages.length === 1) ws.send("ping 1");
      else if (messages.length === 2) ws.send("ping 2");
      else resolve();
    });
  });
  assert.deepEqual(messages, [
    "hello from backend, forwarded for 127.0.0.1",
    "echo: ping 1",
    "echo: ping 2",
  ]);
  ws.close(1000, "done");
  assert.equal(await closed, 1000);

  // No route: the upgrade is answered with the 404 body.
  const lost = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { Host: "nope.test" } });
  const status = await new Promise<number>((resolve) =>
    lost.on("unexpected-response", (_req, res) => resolve(res.statusCode!)),
  );
  assert.equal(status, 404);
});

test("access log: one common-log-format line per request", async (t) => {
  const b = await backend(t, "a");
  const lines: string[] = [];
  const { port } = await startRouter(
    t,
    { routes: [route("web", "Host(`web.test`)", [b.backend])] },
    { accessLog: (l) => lines.push(l), now: () => new Date(Date.UTC(2024, 0, 2, 3, 4, 5)) },
  );
  const ok = await get(port, "web.test", "/x?y=1");
  await get(port, "nope.test", "/");
  assert.equal(lines.length, 2);
  assert.equal(
    lines[0],
    `127.0.0.1 - - [02/Jan/2024:03:04:05 +0000] "GET /x?y=1 HTTP/1.1" 200 ${Buffer.byteLength(ok.body)}`,
  );
  assert.equal(lines[1], '127.0.0.1 - - [02/Jan/2024:03:04:05 +0000] "GET / HTTP/1.1" 404 30');
});

/** Sends `bytes` on a raw connection to the router and resolves with all it got until it closed. */
function raw(port: number, bytes: string | string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port }, () => {
      // Pieces go in separate writes, on separate turns of the event loop.
      const parts = typeof bytes === "string" ? [bytes] : bytes;
      const send = (i: number) => {
        if (i === parts.length) return;
        s.write(parts[i]!);
        setImmediate(() => send(i + 1));
      };
      send(0);
    });
    let out = "";
    s.on("data", (d: Buffer) => (out += d.toString("latin1")));
    s.on("error", reject);
    s.on("close", () => resolve(out));
  });
}

/** The status codes of the responses in a raw byte stream, in order. */
const statuses = (text: string) =>
  [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));

test("pipelined requests are answered in order on one connection", async (t) => {
  const bs = await Promise.all(["a", "b", "c"].map((n) => backend(t, n)));
  const { port } = await startRouter(t, {
    routes: [
      route(
        "web",
        "Host(`web.test`)",
        bs.map((b) => b.backend),
      ),
    ],
  });
  const req = (path: string, extra = "") =>
    `GET ${path} HTTP/1.1\r\nHost: web.test\r\n${extra}\r\n`;
  const out = await raw(port, [
    req("/1") + req("/2") + "GET /3 HTTP/1.1\r\nHost: nope.test\r\n\r\n" + req("/4").slice(0, 10),
    req("/4").slice(10) + req("/5", "Connection: close\r\n"),
  ]);
  assert.deepEqual(statuses(out), [200, 200, 404, 200, 200]);
  const urls = [...out.matchAll(/"url":"([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(urls, ["/1", "/2", "/4", "/5"]);
  const names = [...out.matchAll(/"name":"([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(names, ["a", "b", "c", "a"]);
  assert.match(out, /Connection: close\r\n\r\n[^]*$/);
});

test("request smuggling and malformed heads get 400 and the connection closes", async (t) => {
  const b = await backend(t, "a");
  const { port } = await startRouter(t, {
    routes: [route("web", "Host(`web.test`)", [b.backend])],
  });
  const cases = [
    "POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    "POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "GET / HTTP/1.1\r\nHost: web.test\r\nX: a\r\n folded\r\n\r\n",
    "GET /x y HTTP/1.1\r\nHost: web.test\r\n\r\n",
  ];
  for (const c of cases) {
    // A second request after the bad one is never answered: the router closed.
    const out = await raw(port, c + "GET / HTTP/1.1\r\nHost: web.test\r\n\r\n");
    assert.deepEqual(statuses(out), [400], JSON.stringify(c));
    assert.match(out, /Connection: close\r\n/);
  }
  assert.deepEqual(statuses(await raw(port, "GET / HTTP/2.0\r\nHost: web.test\r\n\r\n")), [505]);
  const big = `GET / HTTP/1.1\r\nHost: web.test\r\nX-Big: ${"x".repeat(20_000)}\r\n\r\n`;
  assert.deepEqual(statuses(await raw(port, big)), [431]);
  assert.equal(b.connections, 0);
});

test("chunked bodies pass through both ways; HEAD, 204 and 304 have no body", async (t) => {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      if (req.url === "/204") return res.writeHead(204).end();
      if (req.url === "/304") return res.writeHead(304).end();
      // No Content-Length: node sends the body chunked.
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.write(`${req.method} ${req.headers["transfer-encoding"] ?? "-"} `);
      res.end(`got [${body}]`);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  defer(t, () => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  const lines: string[] = [];
  const { port } = await startRouter(
    t,
    {
      routes: [
        route("web", "Host(`web.test`)", [
          { host: "127.0.0.1", port: (server.address() as AddressInfo).port },
        ]),
      ],
    },
    { accessLog: (l) => lines.push(l) },
  );
  const out = await raw(port, [
    "POST /c HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    "lo\r\n6;x=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
    "HEAD /h HTTP/1.1\r\nHost: web.test\r\n\r\nGET /204 HTTP/1.1\r\nHost: web.test\r\n\r\n",
    "GET /304 HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n",
  ]);
  assert.deepEqual(statuses(out), [200, 200, 204, 304]);
  const first = out.slice(0, out.indexOf("HTTP/1.1", 5));
  assert.match(first, /Transfer-Encoding: chunked\r\n/);
  const body = first.slice(first.indexOf("\r\n\r\n") + 4);
  const decoded = body.replace(/[0-9a-f]+\r\n([^]*?)\r\n/g, "$1");
  assert.equal(decoded, "POST chunked got [hello world]");
  assert.match(lines[0]!, /"POST \/c HTTP\/1.1" 200 30$/);
  // After the HEAD response's head comes the 204 response right away: no body in between.
  assert.match(out, /\r\n\r\nHTTP\/1.1 204 No Content\r\n/);
});

test("a request that meets a kept-alive backend connection closing is retried on a new one", async (t) => {
  // Answers the first request on each connection, and closes on the second without answering
  // (as a backend does when its keep-alive timeout strikes just as a request arrives).
  let connections = 0;
  const server = createNetServer((s) => {
    connections++;
    let seen = 0;
    s.on("data", (d: Buffer) => {
      seen += d.toString("latin1").split("\r\n\r\n").length - 1;
      if (seen === 1) s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      else s.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  defer(t, () => new Promise<void>((r) => server.close(() => r())));
  const { port } = await startRouter(t, {
    routes: [
      route("web", "Host(`web.test`)", [
        { host: "127.0.0.1", port: (server.address() as AddressInfo).port },
      ]),
    ],
  });
  for (let i = 1; i <= 3; i++) {
    const r = await get(port, "web.test");
    assert.equal(r.status, 200, `request ${i}`);
    assert.equal(r.body, "ok");
    assert.equal(connections, i);
  }
  // A request with a body is not sent twice: the failure is the answer.
  const post = await get(port, "web.test", "/", { method: "POST", body: "x" });
  assert.equal(post.status, 502);
  assert.equal(
    post.body,
    `backend 127.0.0.1:${(server.address() as AddressInfo).port} reset the connection\n`,
  );
});

test("Expect: 100-continue is answered by the router", async (t) => {
  const b = await backend(t, "a");
  const { port } = await startRouter(t, {
    routes: [route("web", "Host(`web.test`)", [b.backend])],
  });
  // The body goes out once the 100 arrived.
  const out = await new Promise<string>((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port }, () =>
      s.write(
        "POST /e HTTP/1.1\r\nHost: web.test\r\nExpect: 100-continue\r\nContent-Length: 3\r\n" +
          "Connection: close\r\n\r\n",
      ),
    );
    let text = "";
    s.on("data", (d: Buffer) => {
      if (text === "" && d.toString().startsWith("HTTP/1.1 100 Continue\r\n\r\n")) s.write("abc");
      text += d.toString();
    });
    s.on("error", reject);
    s.on("close", () => resolve(text));
  });
  assert.deepEqual(statuses(out), [100, 200]);
  assert.match(out, /"body":"abc"/);
  assert.doesNotMatch(out, /"expect"/);
});

test("an idle client connection is closed after keepAliveTimeoutMs; one in use is not", async (t) => {
  const b = await backend(t, "a");
  const { port } = await startRouter(
    t,
    { routes: [route("web", "Host(`web.test`)", [b.backend])] },
    { keepAliveTimeoutMs: 50 },
  );
  // Never sends anything: closed by the router, without an answer.
  assert.equal(await raw(port, []), "");
  // Answered, then closed once idle (the client asked to keep it open).
  const out = await raw(port, "GET / HTTP/1.1\r\nHost: web.test\r\n\r\n");
  assert.deepEqual(statuses(out), [200]);
});

test("requests are counted per service (by id, else name) until taken, for the autoscaler", async (t) => {
  const b = await backend(t, "a");
  const { router, port } = await startRouter(t, {
    routes: [
      route("web", "Host(`web.test`)", [b.backend], { serviceId: "s-web" }),
      route("api", "Host(`api.test`)", [b.backend]),
      route("empty", "Host(`empty.test`)", []),
    ],
  });
  for (let i = 0; i < 3; i++) await get(port, "web.test");
  await get(port, "api.test");
  assert.equal((await get(port, "empty.test")).status, 503);
  assert.equal((await get(port, "nobody.test")).status, 404);
  const counts = router.takeRequestCounts().sort((x, y) => (x.serviceId < y.serviceId ? -1 : 1));
  assert.deepEqual(counts, [
    { serviceId: "api", count: 1 },
    { serviceId: "s-web", count: 3 },
  ]);
  assert.deepEqual(router.takeRequestCounts(), [], "taken: counting starts again");
});

test("latency per service: from request head to response head, in exact buckets (injected clock)", async (t) => {
  const b = await backend(t, "a");
  // Every read of the clock moves it on by `step` ms: a request reads it at its start and when
  // its response head goes out, so each request takes exactly `step`.
  let now = 0;
  let step = 3.5;
  const { router, port } = await startRouter(
    t,
    {
      routes: [
        route("web", "Host(`web.test`)", [b.backend], { serviceId: "s-web" }),
        route("dead", "Host(`dead.test`)", [{ host: "127.0.0.1", port: await freePort() }]),
      ],
    },
    { latencyNow: () => (now += step) },
  );
  for (let i = 0; i < 3; i++) assert.equal((await get(port, "web.test")).status, 200);
  step = 30;
  assert.equal((await get(port, "web.test")).status, 200);
  step = 2000;
  assert.equal((await get(port, "dead.test")).status, 502, "the router's own 502 is timed too");
  assert.equal((await get(port, "nobody.test")).status, 404, "no service: not timed");
  const by = new Map(router.stats.all().map((s) => [s.service, s]));
  const bucketOf = (s: number) => LATENCY_BUCKETS_S.indexOf(s);
  const web = by.get("web")!;
  const want = new Array<number>(LATENCY_BUCKETS_S.length + 1).fill(0);
  want[bucketOf(0.005)] = 3;
  want[bucketOf(0.05)] = 1;
  assert.deepEqual([...web.buckets], want);
  assert.equal(web.observed, 4);
  assert.equal(web.sumMs, 3 * 3.5 + 30);
  assert.equal(web.requests, 4);
  assert.equal(web.serviceId, "s-web");
  const dead = by.get("dead")!;
  const wantDead = new Array<number>(LATENCY_BUCKETS_S.length + 1).fill(0);
  wantDead[bucketOf(2.5)] = 1;
  assert.deepEqual([...dead.buckets], wantDead);
  assert.equal(dead.requests, 1);
  assert.equal(router.stats.all().length, 2);
});

test("an accepted client socket reads into the router's buffer: each read is its own copy, not a 'data' event", async (t) => {
  const got: Buffer[] = [];
  const acks: Array<() => void> = [];
  let adopted: Socket | undefined;
  const server = createNetServer({ pauseOnConnect: true, allowHalfOpen: true }, (accepted) => {
    const s = adoptClientSocket(accepted, (d) => {
      got.push(d);
      s.write(`ack ${got.length}\n`);
    });
    s.on("end", () => s.end("bye\n"));
    adopted = s;
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  defer(t, () => {
    adopted?.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const c = connect((server.address() as AddressInfo).port, "127.0.0.1");
  defer(t, () => c.destroy());
  let answer = "";
  c.on("data", (d: Buffer) => {
    answer += d.toString();
    acks.shift()?.();
  });
  const ack = () => new Promise<void>((r) => acks.push(r));
  c.write("one");
  await ack();
  c.write("two!");
  await ack();
  // The second read reused the shared buffer; the first one's bytes were copied out before it.
  assert.deepEqual(
    got.map((d) => d.toString()),
    ["one", "two!"],
  );
  assert.ok(adopted !== undefined && adopted !== null);
  assert.equal(adopted.listenerCount("data"), 0, "reads do not go through the Readable");
  assert.equal(adopted.readableLength, 0);
  // Half-close is seen ('end'), and the socket still writes after it.
  const closed = new Promise<void>((r) => c.once("end", () => r()));
  c.end();
  await closed;
  assert.equal(answer, "ack 1\nack 2\nbye\n");
});

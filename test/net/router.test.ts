// The HTTP router against real HTTP backends on loopback (ports the tests pick): round robin,
// Host and PathPrefix routing with priorities, the 404/502/503/504 bodies, the sticky cookie
// (pins, then moves with the cookie rewritten once its backend leaves the table), the
// X-Forwarded-* headers, request bodies, connection reuse to backends, a WebSocket echo, table
// updates taking effect on the next request, and the access log.

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { Agent, createServer, request, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import { HttpRouter, type RouterOptions } from "../../src/net/router/router.js";
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

// TLS, as nats-server does it, with the official `nats` client: clients upgrade after INFO (or
// handshake first), client certificates are required with verify, allow_non_tls keeps plain
// clients plain, verify_and_map takes the user from the certificate, routes run over TLS between
// shoal servers and with the Go nats-server, monitoring over https, and bad certificate files
// stop the server with nats-server's message naming the file. Certificates are made per test.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { get as httpsGet } from "node:https";
import { readFileSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { connect, StringCodec, type NatsConnection } from "nats";
import { connect as wsConnect } from "nats.ws";
import { WebSocket } from "ws";
import { useCerts, type Certs, type Pair } from "../helpers/certs.js";
import {
  checkFor,
  goServerPath,
  RawConn,
  runGoServer,
  runServer,
  useServer,
  type RunningServer,
} from "../helpers/servers.js";
import { defer, routePortOf } from "../helpers/cluster.js";
import { defaultTlsConfig, type TlsConfig } from "../../src/nats/tls.js";
import {
  defaultClusterOptions,
  defaultOptions,
  defaultWebsocketOptions,
  loadConfigFile,
  validateOptions,
  type Options,
  type Permissions,
  type User,
} from "../../src/nats/options.js";
import { parseFlags } from "../../src/nats/flags.js";
import { reloadServer } from "../../src/nats/reload.js";
import { ReloadError } from "../../src/nats/errors.js";
import type { Server } from "../../src/nats/server.js";

const sc = StringCodec();

// nats.ws dials with the global WebSocket, which Node 20 lacks: `ws` stands in for it.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

function tlsOf(c: Certs, more: Partial<TlsConfig> = {}): TlsConfig {
  return { ...defaultTlsConfig(), certFile: c.server.cert, keyFile: c.server.key, ...more };
}

async function client(
  t: TestContext,
  port: number,
  tls: Record<string, unknown> | null | undefined,
  more: Record<string, unknown> = {},
): Promise<NatsConnection> {
  const nc = await connect({
    servers: `127.0.0.1:${port}`,
    tls: tls as never,
    reconnect: false,
    timeout: 3000,
    ...more,
  });
  defer(t, () => nc.close());
  return nc;
}

/** A subscription on `subject` and a publish to it: resolves with what was received. */
async function roundTrip(pub: NatsConnection, sub: NatsConnection, subject: string) {
  const s = sub.subscribe(subject, { max: 1 });
  await sub.flush();
  pub.publish(subject, sc.encode("hello"));
  for await (const m of s) return sc.decode(m.data);
  return "";
}

function infoOf(data: string): Record<string, unknown> {
  const m = /^INFO (\{.*\}) ?\r\n/.exec(data);
  assert.ok(m, `no INFO in ${JSON.stringify(data)}`);
  return JSON.parse(m[1]!) as Record<string, unknown>;
}

describe("client TLS", () => {
  test("the official client connects over TLS after INFO; INFO says tls_required", async (t) => {
    const c = useCerts(t);
    const s = await useServer(t, { tls: tlsOf(c) });
    const raw = await RawConn.connect(s.port);
    defer(t, () => raw.close());
    const info = infoOf(await raw.waitFor(/\r\n/));
    assert.equal(info["tls_required"], true);
    assert.equal(info["tls_verify"], undefined);
    const nc = await client(t, s.port, { caFile: c.ca });
    assert.equal(await roundTrip(nc, nc, "tls.a"), "hello");
    assert.ok([...s.clients.values()].some((x) => x.tlsSecure));
  });

  test("a plain client is refused when TLS is required", async (t) => {
    const c = useCerts(t);
    const s = await useServer(t, { tls: tlsOf(c) });
    const raw = await RawConn.connect(s.port);
    defer(t, () => raw.close());
    await raw.waitFor(/\r\n/);
    raw.send("CONNECT {}\r\nPING\r\n");
    const got = await raw.waitClosed();
    assert.doesNotMatch(got, /PONG/);
    await checkFor(3000, () => s.closed.some((x) => x.reason === "TLS Handshake Failure"));
  });

  test("verify: a client certificate from the CA is required", async (t) => {
    const c = useCerts(t);
    const s = await useServer(t, { tls: tlsOf(c, { caFile: c.ca, verify: true }) });
    const nc = await client(t, s.port, {
      caFile: c.ca,
      certFile: c.alice.cert,
      keyFile: c.alice.key,
    });
    assert.equal(nc.info?.tls_verify, true);
    assert.equal(await roundTrip(nc, nc, "tls.v"), "hello");
    await assert.rejects(client(t, s.port, { caFile: c.ca }));
    await assert.rejects(
      client(t, s.port, { caFile: c.ca, certFile: c.stranger.cert, keyFile: c.stranger.key }),
    );
    assert.equal(s.clients.size, 1);
  });

  test("handshake_first: the TLS handshake comes before INFO", async (t) => {
    const c = useCerts(t);
    const s = await useServer(t, { tls: tlsOf(c, { handshakeFirst: true }) });
    // A raw TLS connection gets INFO only through TLS.
    const info = await new Promise<string>((resolve, reject) => {
      const sock = tlsConnect({ host: "127.0.0.1", port: s.port, ca: readFileSync(c.ca) });
      sock.once("data", (d: Buffer) => {
        sock.destroy();
        resolve(d.toString());
      });
      sock.once("error", reject);
    });
    assert.equal(infoOf(info)["tls_required"], true);
    const nc = await client(t, s.port, { caFile: c.ca, handshakeFirst: true });
    assert.equal(await roundTrip(nc, nc, "tls.first"), "hello");
  });

  test("allow_non_tls: plain and TLS clients share the server", async (t) => {
    const c = useCerts(t);
    const s = await useServer(t, { tls: tlsOf(c), allowNonTls: true });
    const plain = await client(t, s.port, null);
    assert.equal(plain.info?.tls_available, true);
    assert.equal(plain.info?.tls_required, undefined);
    const secure = await client(t, s.port, { caFile: c.ca });
    assert.equal(await roundTrip(plain, secure, "tls.mixed"), "hello");
    assert.equal(await roundTrip(secure, plain, "tls.mixed2"), "hello");
    const kinds = [...s.clients.values()].map((x) => x.tlsSecure).sort();
    assert.deepEqual(kinds, [false, true]);
  });

  test("verify_and_map: the user comes from the certificate (e-mail SAN, then the DN)", async (t) => {
    const c = useCerts(t);
    const s = await useServer(t, {
      tls: tlsOf(c, { caFile: c.ca, verify: true, verifyAndMap: true }),
      users: [
        {
          user: "alice@example.com",
          password: "",
          permissions: { publish: { allow: ["allowed"], deny: [] } },
        },
        { user: c.bobDn, password: "" },
      ],
    });
    const tls = (p: { cert: string; key: string }) => ({
      caFile: c.ca,
      certFile: p.cert,
      keyFile: p.key,
    });
    const alice = await client(t, s.port, tls(c.alice));
    const bob = await client(t, s.port, tls(c.bob));
    assert.equal(await roundTrip(alice, bob, "allowed"), "hello");
    // alice may not publish elsewhere: nothing arrives, and the server says why.
    const errors: { data: unknown; permissionContext?: { subject?: string } }[] = [];
    void (async () => {
      for await (const st of alice.status()) errors.push(st as never);
    })();
    alice.publish("denied", sc.encode("x"));
    await checkFor(3000, () => errors.some((e) => e.permissionContext?.subject === "denied"));
    const users = [...s.clients.values()].map((x) => x.user).sort();
    assert.deepEqual(users, [c.bobDn, "alice@example.com"].sort());
    // A certificate naming no user is refused (the server's own: CN=localhost).
    await assert.rejects(client(t, s.port, tls(c.server)), /Authorization Violation/);
  });
});

describe("TLS with reloads and WebSocket clients", () => {
  test("verify_and_map: reloadUsers maps certificates again (kept users stay, removed ones go)", async (t) => {
    const c = useCerts(t);
    const s = await useServer(t, {
      tls: tlsOf(c, { caFile: c.ca, verify: true, verifyAndMap: true }),
      users: [
        { user: "alice@example.com", password: "" },
        { user: c.bobDn, password: "" },
      ],
    });
    const tls = (p: { cert: string; key: string }) => ({
      caFile: c.ca,
      certFile: p.cert,
      keyFile: p.key,
    });
    const alice = await client(t, s.port, tls(c.alice));
    const bob = await client(t, s.port, tls(c.bob));
    const bobClosed = bob.closed();
    s.reloadUsers([
      {
        user: "alice@example.com",
        password: "",
        permissions: { publish: { allow: ["only.this"], deny: [] } },
      },
    ]);
    const err = await bobClosed;
    assert.match(String(err), /Authorization Violation/);
    // alice passes again by her certificate, with the new permissions at once.
    const mine = [...s.clients.values()];
    assert.deepEqual(
      mine.map((x) => x.user),
      ["alice@example.com"],
    );
    assert.equal(mine[0]!.perms?.canPublish("only.this"), true);
    assert.equal(mine[0]!.perms?.canPublish("elsewhere"), false);
    assert.equal(await roundTrip(alice, alice, "only.this"), "hello");
  });

  test("a WebSocket client is not put through the client TLS (no upgrade, no certificate mapping)", async (t) => {
    const c = useCerts(t);
    const s = await useServer(t, {
      tls: tlsOf(c, { caFile: c.ca, verify: true, verifyAndMap: true }),
      users: [
        { user: "alice@example.com", password: "" },
        { user: "web", password: "web-pw" },
      ],
      websocket: { ...defaultWebsocketOptions(), host: "127.0.0.1", port: -1, noTls: true },
    });
    const alice = await client(t, s.port, {
      caFile: c.ca,
      certFile: c.alice.cert,
      keyFile: c.alice.key,
    });
    // The WebSocket listener's first frame: INFO without the TCP listener's TLS fields.
    const info = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const ws = new WebSocket(s.websocketUrls()[0]!);
      ws.once("message", (d: Buffer) => {
        ws.terminate();
        resolve(infoOf(d.toString()));
      });
      ws.once("error", reject);
    });
    assert.equal(info["tls_required"], undefined);
    assert.equal(info["tls_verify"], undefined);
    assert.equal(info["auth_required"], true);
    // A WebSocket client logs in by user and password (no certificate to map), over plain frames.
    const web = await wsConnect({ servers: s.websocketUrls()[0]!, user: "web", pass: "web-pw" });
    defer(t, () => web.close());
    const s1 = web.subscribe("mixed", { max: 1 });
    await web.flush();
    alice.publish("mixed", sc.encode("hello"));
    for await (const m of s1) assert.equal(sc.decode(m.data), "hello");
    const kinds = [...s.clients.values()].map((x) => [x.user, x.tlsSecure]).sort();
    assert.deepEqual(kinds, [
      ["alice@example.com", true],
      ["web", false],
    ]);
    // Reloading the users keeps the WebSocket client (checked by password, not by certificate).
    s.reloadUsers([
      { user: "alice@example.com", password: "" },
      { user: "web", password: "web-pw" },
    ]);
    assert.equal(s.clients.size, 2);
    await web.flush();
  });
});

describe("permissions and reload on TLS and WebSocket clients (one Client class)", () => {
  /** A responder's permissions: its own request subject, one queue, and allow_responses. */
  const responder = (name: string): Permissions => ({
    subscribe: { allow: [`svc.${name}`, "work q"], deny: [] },
    response: { maxMsgs: 1, expiresMs: 60_000 },
  });

  async function tlsAndWsServer(t: TestContext, c: Certs, users: User[]): Promise<Server> {
    return useServer(t, {
      tls: tlsOf(c),
      users,
      websocket: { ...defaultWebsocketOptions(), host: "127.0.0.1", port: -1, noTls: true },
    });
  }

  async function wsClient(t: TestContext, s: Server, user: string): Promise<NatsConnection> {
    const nc = await wsConnect({ servers: s.websocketUrls()[0]!, user, pass: `${user}-pw` });
    defer(t, () => nc.close());
    return nc;
  }

  const clientOf = (s: Server, user: string) =>
    [...s.clients.values()].find((x) => x.user === user)!;

  test("allow_responses and queue permissions hold for TLS and WebSocket clients", async (t) => {
    const c = useCerts(t);
    const s = await tlsAndWsServer(t, c, [
      { user: "tls", password: "tls-pw", permissions: responder("tls") },
      { user: "web", password: "web-pw", permissions: responder("web") },
      { user: "req", password: "req-pw" },
    ]);
    const req = await client(t, s.port, { caFile: c.ca }, { user: "req", pass: "req-pw" });
    const tlsSvc = await client(t, s.port, { caFile: c.ca }, { user: "tls", pass: "tls-pw" });
    const webSvc = await wsClient(t, s, "web");
    assert.equal(clientOf(s, "tls").tlsSecure, true);
    assert.equal(clientOf(s, "web").socket.websocket, true);
    for (const [name, nc] of [
      ["tls", tlsSvc],
      ["web", webSvc],
    ] as const) {
      // The request is answered once; a second answer and a publish elsewhere are refused.
      nc.subscribe(`svc.${name}`, {
        callback: (_e, m) => {
          nc.publish(m.reply!, sc.encode(`${name}:1`));
          nc.publish(m.reply!, sc.encode(`${name}:2`));
          nc.publish("elsewhere", sc.encode("x"));
        },
      });
      await nc.flush();
      const got: string[] = [];
      const inbox = `inbox.${name}`;
      const replies = req.subscribe(inbox, { callback: (_e, m) => got.push(sc.decode(m.data)) });
      const seen = req.subscribe("elsewhere", { callback: () => got.push("elsewhere") });
      await req.flush();
      req.publish(`svc.${name}`, sc.encode("hi"), { reply: inbox });
      await checkFor(5000, () => got.length > 0);
      // The responder's three publishes are handled before its PONG; what reached req is
      // written to req before req's own PONG.
      await nc.flush();
      await req.flush();
      assert.deepEqual(got, [`${name}:1`], name);
      replies.unsubscribe();
      seen.unsubscribe();
      // Queue permissions: "work q" allows queue q on work, not another queue nor no queue.
      nc.subscribe("work", { queue: "q" });
      nc.subscribe("work", { queue: "other" });
      nc.subscribe("work");
      await nc.flush().catch(() => {});
      const subs = [...clientOf(s, name).subs.values()].map((x) => `${x.subject} ${x.queue ?? ""}`);
      assert.deepEqual(subs.sort(), [`svc.${name} `, "work q"], name);
    }
  });

  test("a reload applies users to TLS and WebSocket clients, rotates the certificate, refuses a websocket change", async (t) => {
    const c = useCerts(t);
    const pub = (allow: string): Permissions => ({ publish: { allow: [allow], deny: [] } });
    const s = await tlsAndWsServer(t, c, [
      { user: "tls", password: "tls-pw", permissions: pub("a") },
      { user: "web", password: "web-pw", permissions: pub("a") },
    ]);
    const tlsNc = await client(t, s.port, { caFile: c.ca }, { user: "tls", pass: "tls-pw" });
    const webNc = await wsClient(t, s, "web");
    const webClosed = webNc.closed();
    const next = (o: Partial<Options>) => validateOptions({ ...s.opts, ...o });

    // The websocket block cannot change while running: refused, nothing applied.
    const moved = { ...s.opts.websocket!, port: s.websocket!.port + 1 };
    assert.throws(
      () => reloadServer(s, next({ websocket: moved, users: [] }), null),
      (e: Error) =>
        e instanceof ReloadError && /^config reload not supported for Websocket: /.test(e.message),
    );
    assert.equal(s.opts.users.length, 2);
    // A bad certificate file fails the reload the same way.
    const missing = join(c.dir, "missing.pem");
    assert.throws(
      () => reloadServer(s, { ...next({ users: [] }), tls: tlsOf(c, { certFile: missing }) }, null),
      (e: Error) => e.message.includes(missing),
    );
    assert.equal(s.opts.users.length, 2);

    // New users: web is gone (cut off), tls gets new permissions; the certificate is replaced.
    const done = reloadServer(
      s,
      next({
        users: [{ user: "tls", password: "tls-pw", permissions: pub("b") }],
        tls: tlsOf(c, { certFile: c.alice.cert, keyFile: c.alice.key }),
      }),
      null,
    );
    // nats-server's lines, in its order; users and accounts are said on every reload.
    assert.deepEqual(done, ["authorization users", "accounts", "tls = enabled"]);
    assert.match(String(await webClosed), /Authorization Violation/);
    assert.deepEqual(
      [...s.clients.values()].map((x) => x.user),
      ["tls"],
    );
    assert.equal(clientOf(s, "tls").perms?.canPublish("b"), true);
    assert.equal(clientOf(s, "tls").perms?.canPublish("a"), false);
    assert.deepEqual(s.tls?.cert, readFileSync(c.alice.cert));
    // The live TLS session goes on.
    assert.equal(await roundTrip(tlsNc, tlsNc, "b"), "hello");
    // The same configuration again changes nothing else.
    assert.deepEqual(reloadServer(s, next({}), null), ["authorization users", "accounts"]);
  });
});

describe("bad certificate files", () => {
  function load(c: Certs, tls: Partial<TlsConfig>): () => Readonly<Options> {
    return () => validateOptions({ ...defaultOptions(), tls: tlsOf(c, tls) });
  }

  test("each problem names the file, with nats-server's text", (t) => {
    const c = useCerts(t);
    const missing = join(c.dir, "nope.pem");
    const notPem = join(c.dir, "server.ext");
    assert.throws(
      load(c, { certFile: missing }),
      (e: Error) =>
        e.message.startsWith("error parsing X509 certificate/key pair: open ") &&
        e.message.includes(missing),
    );
    assert.throws(
      load(c, { certFile: notPem }),
      (e: Error) =>
        /failed to find any PEM data in certificate input/.test(e.message) &&
        e.message.includes(notPem),
    );
    assert.throws(
      load(c, { keyFile: notPem }),
      (e: Error) =>
        /failed to find any PEM data in key input/.test(e.message) && e.message.includes(notPem),
    );
    assert.throws(
      load(c, { keyFile: c.alice.key }),
      (e: Error) =>
        /private key does not match public key/.test(e.message) && e.message.includes(c.alice.key),
    );
    assert.throws(
      load(c, { caFile: notPem }),
      (e: Error) =>
        /failed to parse root ca certificate/.test(e.message) && e.message.includes(notPem),
    );
    assert.throws(load(c, { keyFile: "" }), /missing 'key_file' in TLS configuration/);
    assert.doesNotThrow(load(c, { caFile: c.ca }));
  });

  test("the config file and the flags take nats-server's keys", (t) => {
    const c = useCerts(t);
    const file = join(c.dir, "tls.conf");
    writeFileSync(
      file,
      `tls { cert_file: "${c.server.cert}", key_file: "${c.server.key}", ca_file: "${c.ca}",
         verify_and_map: true, timeout: 0.5, handshake_first: true }
       allow_non_tls: true
       https_port: -1
       cluster { port: -1, tls { cert_file: "${c.server.cert}", key_file: "${c.server.key}" } }\n`,
    );
    const o = defaultOptions();
    o.httpPort = 0;
    loadConfigFile(o, file, () => {});
    const v = validateOptions(o);
    assert.equal(v.tls?.verify, true);
    assert.equal(v.tls?.verifyAndMap, true);
    assert.equal(v.tls?.timeoutMs, 500);
    assert.equal(v.tls?.handshakeFirst, true);
    assert.equal(v.allowNonTls, true);
    assert.equal(v.httpsPort, -1);
    assert.equal(v.cluster?.tls?.certFile, c.server.cert);
    const f = parseFlags(
      ["--tlsverify", "--tlscert", c.server.cert, "--tlskey", c.server.key, "--tlscacert", c.ca],
      () => {},
    );
    assert.equal(f.options.tls?.verify, true);
    assert.equal(f.options.tls?.caFile, c.ca);
    assert.throws(
      () =>
        parseFlags(
          ["--tls", "--tlscert", join(c.dir, "nope.pem"), "--tlskey", c.server.key],
          () => {},
        ),
      /nope\.pem/,
    );
  });
});

describe("https monitoring", () => {
  test("https_port serves /varz over TLS with the server certificate", async (t) => {
    const c = useCerts(t);
    const s = await useServer(t, { tls: tlsOf(c), httpsPort: -1 });
    const port = s.monitor!.port;
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsGet(
        { host: "127.0.0.1", port, path: "/varz", ca: readFileSync(c.ca), agent: false },
        (res) => {
          let b = "";
          res.on("data", (d: Buffer) => (b += d.toString()));
          res.on("end", () => resolve(b));
        },
      );
      req.on("error", reject);
    });
    const varz = JSON.parse(body) as Record<string, unknown>;
    assert.equal(varz["https_port"], port);
    assert.equal(varz["http_port"], 0);
    assert.equal(varz["tls_required"], true);
  });
});

function routeTlsConf(
  c: Certs,
  dir: string,
  name: string,
  routes: string[],
  pair: Pair = c.server,
  ca = c.ca,
): string {
  const file = join(dir, `${name}.conf`);
  writeFileSync(
    file,
    `listen: 127.0.0.1:-1
     http: 127.0.0.1:-1
     cluster {
       name: tlsc
       listen: 127.0.0.1:-1
       tls { cert_file: "${pair.cert}", key_file: "${pair.key}", ca_file: "${ca}", timeout: 2 }
       routes: [${routes.map((r) => `"${r}"`).join(", ")}]
     }\n`,
  );
  return file;
}

async function routedPair(t: TestContext, kinds: ["shoal" | "go", "shoal" | "go"]) {
  const c = useCerts(t);
  const run = (k: "shoal" | "go", file: string) =>
    k === "go" ? runGoServer(["-c", file]) : runServer(["-c", file]);
  const a = await run(kinds[0], routeTlsConf(c, c.dir, "a", []));
  defer(t, () => a.stop());
  const url = `nats-route://127.0.0.1:${await routePortOf(a)}`;
  const b = await run(kinds[1], routeTlsConf(c, c.dir, "b", [url]));
  defer(t, () => b.stop());
  return { c, a, b };
}

async function routesOf(s: RunningServer): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${s.httpPort}/routez`);
  return ((await res.json()) as { num_routes: number }).num_routes;
}

async function exerciseRoute(t: TestContext, a: RunningServer, b: RunningServer) {
  await checkFor(8000, async () => (await routesOf(a)) === 1 && (await routesOf(b)) === 1);
  const na = await client(t, a.port, undefined);
  const nb = await client(t, b.port, undefined);
  const sub = nb.subscribe("over.tls", { max: 1 });
  await nb.flush();
  // Interest crosses the route asynchronously: publish until it arrives.
  const got = (async () => {
    for await (const m of sub) return sc.decode(m.data);
    return "";
  })();
  const timer = setInterval(() => na.publish("over.tls", sc.encode("routed")), 50);
  try {
    assert.equal(await got, "routed");
  } finally {
    clearInterval(timer);
  }
}

describe("TLS routes", () => {
  test("two shoal servers route over TLS", async (t) => {
    const { a, b } = await routedPair(t, ["shoal", "shoal"]);
    await exerciseRoute(t, a, b);
    assert.doesNotMatch(a.output() + b.output(), /handshake error/);
  });

  const go = goServerPath() !== null;
  test(
    "shoal and Go route over TLS (both directions)",
    { skip: !go && "no Go nats-server" },
    async (t) => {
      const one = await routedPair(t, ["go", "shoal"]);
      await exerciseRoute(t, one.a, one.b);
      const two = await routedPair(t, ["shoal", "go"]);
      await exerciseRoute(t, two.b, two.a);
    },
  );

  test("reloadRouteTls: new routes use the new certificate and CA, old ones are refused", async (t) => {
    const c = useCerts(t);
    const files = (pair: Pair, caFile: string): TlsConfig => ({
      ...defaultTlsConfig(),
      certFile: pair.cert,
      keyFile: pair.key,
      caFile,
      verify: true,
      timeoutMs: 2000,
    });
    const a = await useServer(t, {
      cluster: {
        ...defaultClusterOptions(),
        name: "tlsc",
        host: "127.0.0.1",
        port: -1,
        tls: files(c.server, c.ca),
      },
    });
    // As after a CA rotation: a's route certificate and trust move to the other CA.
    a.reloadRouteTls(files(c.stranger, c.otherCa));
    const url = `nats-route://127.0.0.1:${a.clusterPort()}`;
    // A server of the old CA only: refused.
    const old = await runServer(["-c", routeTlsConf(c, c.dir, "old", [url])]);
    defer(t, () => old.stop());
    await checkFor(8000, () => /TLS route handshake error/.test(old.output()));
    assert.equal(a.cluster?.numRoutes(), 0);
    await old.stop();
    // A server of the new CA: routed.
    const fresh = await runServer([
      "-c",
      routeTlsConf(c, c.dir, "new", [url], c.stranger, c.otherCa),
    ]);
    defer(t, () => fresh.stop());
    await checkFor(8000, async () => a.cluster?.numRoutes() === 1 && (await routesOf(fresh)) === 1);
  });

  test("a route with a certificate from another CA is refused", async (t) => {
    const c = useCerts(t);
    const a = await runServer(["-c", routeTlsConf(c, c.dir, "a", [])]);
    defer(t, () => a.stop());
    const url = `nats-route://127.0.0.1:${await routePortOf(a)}`;
    const file = routeTlsConf(c, c.dir, "b", [url], c.stranger);
    const b = await runServer(["-c", file]);
    defer(t, () => b.stop());
    await checkFor(8000, () => /TLS route handshake error/.test(a.output() + b.output()));
    assert.equal(await routesOf(a), 0);
  });
});

describe("differential: INFO TLS fields match nats-server's", () => {
  const go = goServerPath() !== null;
  test(
    "tls_required, tls_verify, tls_available for the same config",
    { skip: !go && "no Go nats-server" },
    async (t) => {
      const c = useCerts(t);
      const configs: Record<string, string> = {
        plain: `tls { cert_file: "${c.server.cert}", key_file: "${c.server.key}" }`,
        verify: `tls { cert_file: "${c.server.cert}", key_file: "${c.server.key}", ca_file: "${c.ca}", verify: true }`,
        allow: `tls { cert_file: "${c.server.cert}", key_file: "${c.server.key}" }\nallow_non_tls: true`,
        map: `tls { cert_file: "${c.server.cert}", key_file: "${c.server.key}", ca_file: "${c.ca}", verify_and_map: true }
            authorization { users [ { user: "alice@example.com" } ] }`,
      };
      const keys = ["tls_required", "tls_verify", "tls_available", "auth_required"];
      for (const [name, body] of Object.entries(configs)) {
        const file = join(c.dir, `${name}.conf`);
        writeFileSync(file, `listen: 127.0.0.1:-1\n${body}\n`);
        const fields: Record<string, unknown>[] = [];
        for (const run of [runGoServer, runServer]) {
          const s = await run(["-c", file]);
          defer(t, () => s.stop());
          const raw = await RawConn.connect(s.port);
          defer(t, () => raw.close());
          const info = infoOf(await raw.waitFor(/\r\n/));
          fields.push(Object.fromEntries(keys.map((k) => [k, info[k]])));
        }
        assert.deepEqual(fields[1], fields[0], `config ${name}`);
      }
    },
  );

  test(
    "the auth timeout with TLS (/varz) and the plaintext-password warning, as nats-server",
    { skip: !go && "no Go nats-server" },
    async (t) => {
      const c = useCerts(t);
      const tls = `tls { cert_file: "${c.server.cert}", key_file: "${c.server.key}", timeout: 2 }`;
      const hash = "$2a$11$PWIFAL8RsWyGI3jVZtO9Nu8.6jOxzxfZo7c/W0eLk017hjgUKWrhy";
      // Each config, and what nats-server 2.9 does with it (checked against it below too).
      const configs: Array<[string, string, { authTimeout: number; warns: boolean }]> = [
        [
          "tls, a plaintext password",
          `${tls}\nauthorization { user: a, password: b }`,
          { authTimeout: 3, warns: true },
        ],
        [
          "tls, a timeout of its own, a bcrypt password",
          `${tls}\nauthorization { timeout: 1\n users [ { user: a, password: "${hash}" } ] }`,
          { authTimeout: 1, warns: false },
        ],
        [
          "no tls, plaintext users",
          `authorization { users [ { user: a, password: b } ] }`,
          { authTimeout: 2, warns: true },
        ],
      ];
      for (const [name, body, want] of configs) {
        const file = join(c.dir, "auth-timeout.conf");
        writeFileSync(file, `listen: 127.0.0.1:-1\nhttp: 127.0.0.1:-1\n${body}\n`);
        const seen: Array<{ authTimeout: unknown; warns: boolean }> = [];
        for (const run of [runGoServer, runServer]) {
          const s = await run(["-c", file]);
          defer(t, () => s.stop());
          const varz = (await (await fetch(`http://127.0.0.1:${s.httpPort}/varz`)).json()) as {
            auth_timeout: unknown;
          };
          const warns = /\[WRN\] Plaintext passwords detected, use nkeys or bcrypt\n/.test(
            s.output(),
          );
          seen.push({ authTimeout: varz.auth_timeout, warns });
        }
        assert.deepEqual(seen[0], want, `${name}: nats-server`);
        assert.deepEqual(seen[1], seen[0], name);
      }
    },
  );
});

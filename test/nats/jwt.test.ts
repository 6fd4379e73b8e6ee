// Operator mode (JWT authentication) on shoal's message server, as the official `nats` client sees
// it (jwtAuthenticator / credsAuthenticator signing the INFO nonce), and the same config and
// credentials played against the Go nats-server: both must let in and refuse the same users,
// with the same words.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  connect,
  credsAuthenticator,
  ErrorCode,
  jwtAuthenticator,
  StringCodec,
  type NatsConnection,
  type NatsError,
} from "nats";
import { createAccount, createOperator, fromSeed } from "nkeys.js";
import {
  goServerPath,
  RawConn,
  runGoServer,
  runServer,
  ROOT,
  useServer,
  type RunningServer,
} from "../helpers/servers.js";
import { defer } from "../helpers/defer.js";
import { execFileSync } from "node:child_process";
import {
  credsFile,
  makeAccount,
  makeOperator,
  makeUser,
  signJwt,
  type TestAccount,
  type TestOperator,
  type TestUser,
} from "../helpers/jwt.js";
import {
  applyConfig,
  defaultOptions,
  validateOptions,
  type Options,
} from "../../src/nats/options.js";
import { parseConfig } from "../../src/nats/conf.js";
import { authenticate } from "../../src/nats/auth.js";
import { decodeJwt, JwtError } from "../../src/nats/jwt.js";

const sc = StringCodec();
const isAuthViolation = (err: NatsError) => err.code === ErrorCode.AuthorizationViolation;
const nowSec = () => Math.floor(Date.now() / 1000);

/** One operator with accounts A (exports a stream and a service), B (imports them), SYS. */
interface World {
  op: TestOperator;
  A: TestAccount;
  B: TestAccount;
  SYS: TestAccount;
  /** An account signed by another operator. */
  rogue: TestAccount;
  dir: string;
  /** The config file's text (the operator JWT is a file in dir). */
  conf: string;
}

function makeWorld(t: TestContext, accountClaims: Record<string, unknown> = {}): World {
  const op = makeOperator();
  const A = makeAccount(op.kp, {
    exports: [
      { name: "feed", subject: "feed.>", type: "stream" },
      { name: "svc", subject: "svc.>", type: "service" },
    ],
    ...accountClaims,
  });
  const B = makeAccount(op.kp, {
    imports: [
      {
        name: "feed",
        subject: "feed.>",
        account: A.pub,
        type: "stream",
        local_subject: "a.feed.>",
      },
      { name: "svc", subject: "svc.>", account: A.pub, type: "service", local_subject: "a.svc.>" },
    ],
  });
  const SYS = makeAccount(op.kp);
  const rogue = makeAccount(makeOperator().kp);
  const dir = mkdtempSync(join(tmpdir(), "shoal-jwt-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "op.jwt"), op.jwt);
  const preload = [A, B, SYS, rogue].map((a) => `  ${a.pub}: "${a.jwt}"`).join("\n");
  const conf = [
    `operator: "${join(dir, "op.jwt")}"`,
    "resolver: MEMORY",
    `resolver_preload: {\n${preload}\n}`,
    `system_account: ${SYS.pub}`,
    "",
  ].join("\n");
  return { op, A, B, SYS, rogue, dir, conf };
}

function optionsOf(conf: string): Options {
  const opts = defaultOptions();
  applyConfig(opts, parseConfig(conf), () => {});
  return opts;
}

/** An in-process shoal server with the world's config. */
async function serve(t: TestContext, w: World) {
  return useServer(t, optionsOf(w.conf));
}

async function connectAs(t: TestContext, port: number, u: TestUser): Promise<NatsConnection> {
  const nc = await connect({
    servers: `127.0.0.1:${port}`,
    reconnect: false,
    authenticator: jwtAuthenticator(u.jwt, u.seed),
  });
  defer(t, () => nc.close());
  return nc;
}

/** CONNECT with a user JWT on a raw connection (the nonce signed by the user), then PING. */
async function rawJwtConnect(
  t: TestContext,
  port: number,
  u: TestUser,
): Promise<{ c: RawConn; reply: string }> {
  const c = await RawConn.connect(port);
  defer(t, () => c.close());
  await c.waitFor(/^INFO .*\r\n/);
  const info = JSON.parse(/^INFO (.*) \r\n/.exec(c.data)![1]!) as Record<string, unknown>;
  c.data = "";
  const sig = Buffer.from(u.kp.sign(Buffer.from(String(info["nonce"])))).toString("base64url");
  const connectArgs = { verbose: false, pedantic: false, protocol: 1, jwt: u.jwt, sig };
  c.send(`CONNECT ${JSON.stringify(connectArgs)}\r\nPING\r\n`);
  const reply = await c.waitFor(/PONG\r\n|-ERR .*\r\n/);
  c.data = "";
  return { c, reply };
}

/** rawJwtConnect, which must succeed. */
async function rawJwtClient(t: TestContext, port: number, u: TestUser): Promise<RawConn> {
  const { c, reply } = await rawJwtConnect(t, port, u);
  // (An INFO with the user's max_payload follows when its JWT lowers it, as nats-server's.)
  assert.match(reply, /^PONG\r\n/);
  return c;
}

/** The outcome of connecting as u: "ok", or the error's message. */
async function outcome(port: number, u: TestUser): Promise<string> {
  try {
    const nc = await connect({
      servers: `127.0.0.1:${port}`,
      reconnect: false,
      authenticator: jwtAuthenticator(u.jwt, u.seed),
    });
    await nc.close();
    return "ok";
  } catch (err) {
    return (err as NatsError).message;
  }
}

/** The cases every server must answer alike: a valid user, and the ways to be refused. */
function cases(w: World): Array<[string, TestUser]> {
  const tampered = makeUser(w.A.kp);
  const wrongKey = makeUser(w.A.kp);
  return [
    ["valid user of A", makeUser(w.A.kp)],
    ["valid user of B", makeUser(w.B.kp)],
    ["user of an unknown account", makeUser(createAccount())],
    ["user of an account signed by another operator", makeUser(w.rogue.kp)],
    ["user signed by the operator", makeUser(w.op.kp)],
    ["expired user", makeUser(w.A.kp, {}, { exp: nowSec() - 5 })],
    ["not yet valid user", makeUser(w.A.kp, {}, { nbf: nowSec() + 3600 })],
    ["bad signature", { ...tampered, jwt: tampered.jwt.slice(0, -6) + "AAAAAA" }],
    ["nonce signed with another key", { ...wrongKey, seed: makeUser(w.A.kp).seed }],
  ];
}

describe("JWT users (operator mode)", () => {
  test("a user with a valid JWT connects (jwt and creds); INFO asks for auth with a nonce", async (t) => {
    const w = makeWorld(t);
    const s = await serve(t, w);
    const u = makeUser(w.A.kp);
    const nc = await connectAs(t, s.port, u);
    assert.equal(nc.info?.auth_required, true);
    assert.equal(typeof nc.info?.nonce, "string");
    const sub = nc.subscribe("hello", { max: 1 });
    nc.publish("hello", sc.encode("world"));
    for await (const m of sub) assert.equal(sc.decode(m.data), "world");
    const viaCreds = await connect({
      servers: `127.0.0.1:${s.port}`,
      reconnect: false,
      authenticator: credsAuthenticator(new TextEncoder().encode(credsFile(makeUser(w.B.kp)))),
    });
    defer(t, () => viaCreds.close());
    await viaCreds.flush();
    // The user is known by its public key, in its account.
    const names = [...s.clients.values()].map((c) => [c.user, c.acc.name]);
    assert.ok(names.some(([user, acc]) => user === u.pub && acc === w.A.pub));
  });

  test("refused with Authorization Violation: unknown account, bad signature, expired, untrusted", async (t) => {
    const w = makeWorld(t);
    const s = await serve(t, w);
    for (const [name, u] of cases(w).slice(2)) {
      await assert.rejects(
        connect({
          servers: `127.0.0.1:${s.port}`,
          reconnect: false,
          authenticator: jwtAuthenticator(u.jwt, u.seed),
        }),
        isAuthViolation,
        name,
      );
    }
    // No JWT at all.
    await assert.rejects(
      connect({ servers: `127.0.0.1:${s.port}`, reconnect: false }),
      isAuthViolation,
    );
  });

  test(
    "a connected user is disconnected when its JWT expires: User Authentication Expired",
    { timeout: 15_000 },
    async (t) => {
      const w = makeWorld(t);
      const s = await serve(t, w);
      const nc = await connectAs(t, s.port, makeUser(w.A.kp, {}, { exp: nowSec() + 2 }));
      const err = await nc.closed();
      assert.ok(err instanceof Error);
      assert.match(err.message, /User Authentication Expired/);
      assert.equal(s.closed.at(-1)?.reason, "Authentication Expired");
    },
  );

  test("permissions and limits of the user JWT are enforced", async (t) => {
    const w = makeWorld(t);
    const s = await serve(t, w);
    const u = makeUser(w.A.kp, {
      pub: { allow: ["ok.>"] },
      sub: { allow: [">"], deny: ["secret"] },
      subs: 2,
      payload: 8,
    });
    const c = await rawJwtClient(t, s.port, u);
    c.send("SUB secret 1\r\nPUB nope 1\r\nx\r\nPING\r\n");
    await c.waitFor(/PONG\r\n/);
    assert.match(c.data, /-ERR 'Permissions Violation for Subscription to "secret"'/);
    assert.match(c.data, /-ERR 'Permissions Violation for Publish to "nope"'/);
    c.data = "";
    c.send("SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nPUB ok.1 8\r\n12345678\r\nPING\r\n");
    await c.waitFor(/PONG\r\n/);
    assert.match(c.data, /-ERR 'maximum subscriptions exceeded'/);
    assert.equal(c.data.match(/-ERR/g)?.length, 1);
    c.send("PUB ok.2 9\r\n123456789\r\n");
    await c.waitFor(/-ERR 'Maximum Payload Violation'\r\n/);
    await c.waitClosed();
  });

  test("the account JWT's limits apply to its users (connections, payload)", async (t) => {
    const w = makeWorld(t, { limits: { conn: 1, payload: 4 } });
    const s = await serve(t, w);
    const c = await rawJwtClient(t, s.port, makeUser(w.A.kp));
    const second = await rawJwtConnect(t, s.port, makeUser(w.A.kp));
    assert.equal(second.reply, "-ERR 'maximum account active connections exceeded'\r\n");
    c.send("PUB x 5\r\n12345\r\n");
    await c.waitFor(/-ERR 'Maximum Payload Violation'\r\n/);
  });

  test("accounts are isolated; the exports and imports of the account JWTs work", async (t) => {
    const w = makeWorld(t);
    const s = await serve(t, w);
    const a = await connectAs(t, s.port, makeUser(w.A.kp));
    const b = await connectAs(t, s.port, makeUser(w.B.kp));
    const got: string[] = [];
    b.subscribe("x", { callback: (_e, m) => got.push(`x:${sc.decode(m.data)}`) });
    b.subscribe("a.feed.>", { callback: (_e, m) => got.push(`${m.subject}:${sc.decode(m.data)}`) });
    await b.flush();
    a.subscribe("svc.echo", {
      callback: (_e, m) => m.respond(sc.encode(`echo ${sc.decode(m.data)}`)),
    });
    await a.flush();
    // A's "x" stays in A: B's own marker on "x" is the first (and only) "x" B gets.
    a.publish("x", sc.encode("from A"));
    a.publish("feed.news", sc.encode("imported"));
    await a.flush();
    b.publish("x", sc.encode("marker"));
    await b.flush();
    assert.deepEqual(got, ["a.feed.news:imported", "x:marker"]);
    const r = await b.request("a.svc.echo", sc.encode("hi"), { timeout: 2000 });
    assert.equal(sc.decode(r.data), "echo hi");
  });

  test("a user signed by an account signing key connects; a scoped key's template applies", async (t) => {
    const w = makeWorld(t);
    const plain = createAccount();
    const scoped = createAccount();
    const acc = makeAccount(
      w.op.kp,
      {
        signing_keys: [
          plain.getPublicKey(),
          {
            kind: "user_scope",
            key: scoped.getPublicKey(),
            role: "r",
            template: { pub: { allow: ["only.>"] }, sub: {}, subs: -1, payload: -1 },
          },
        ],
      },
      {},
    );
    const conf = w.conf.replace(
      "resolver_preload: {\n",
      `resolver_preload: {\n  ${acc.pub}: "${acc.jwt}"\n`,
    );
    const s = await useServer(t, optionsOf(conf));
    const viaPlain = makeUser(plain, { issuer_account: acc.pub });
    const nc = await connectAs(t, s.port, viaPlain);
    await nc.flush();
    const c = await rawJwtClient(t, s.port, makeUser(scoped, { issuer_account: acc.pub }));
    c.send("PUB other 1\r\nx\r\nPING\r\n");
    await c.waitFor(/PONG\r\n/);
    assert.match(c.data, /Permissions Violation for Publish to "other"/);
    // A key the account does not list is refused.
    await assert.rejects(
      connectAs(t, s.port, makeUser(createAccount(), { issuer_account: acc.pub })),
      isAuthViolation,
    );
  });

  test("authenticate checks JWT times against the injected clock", () => {
    const op = makeOperator();
    const A = makeAccount(op.kp);
    const conf = `operator: "${op.jwt}"\nresolver: MEM\nresolver_preload: { ${A.pub}: "${A.jwt}" }\n`;
    const opts = validateOptions(optionsOf(conf));
    const u = makeUser(A.kp, {}, { exp: 2_000_000_000 });
    const nonce = "abcdefghijk";
    const sig = Buffer.from(u.kp.sign(Buffer.from(nonce))).toString("base64url");
    const creds = { jwt: u.jwt, sig, nonce };
    const before = authenticate(opts, creds, undefined, 1_999_999_999_000);
    assert.equal(before?.account, A.pub);
    assert.equal(before?.expiresAt, 2_000_000_000_000);
    const reasons: string[] = [];
    const after = authenticate(opts, creds, (r) => reasons.push(r), 2_000_000_001_000);
    assert.equal(after, null);
    assert.deepEqual(reasons, ["User JWT no longer valid: claim is expired"]);
  });

  test("decodeJwt names what is wrong", () => {
    const op = makeOperator();
    const A = makeAccount(op.kp);
    assert.throws(() => decodeJwt("abc", "account"), /expected 3 parts/);
    assert.throws(() => decodeJwt(A.jwt, "user"), /expected a JWT of type user, got "account"/);
    const [h, c] = A.jwt.split(".");
    assert.throws(() => decodeJwt(`${h}.${c}.AAAA`, "account"), JwtError);
    assert.equal(decodeJwt(A.jwt, "account").sub, A.pub);
    // A seed round-trips through nkeys.js (the helper's keys are real NKeys).
    assert.equal(fromSeed(makeUser(A.kp).seed).getPublicKey().startsWith("U"), true);
  });
});

describe("nkeys.js stays unloaded without NKeys or JWTs", () => {
  /** Runs a server in a fresh process with the options' JSON, connects once, tells whether nkeys.js was loaded. */
  function nkeysLoaded(conf: string): boolean {
    const script = `
      import { createRequire } from "node:module";
      import { connect } from "node:net";
      import { Server } from "${ROOT}/dist/src/nats/server.js";
      import { applyConfig, defaultOptions, validateOptions } from "${ROOT}/dist/src/nats/options.js";
      import { parseConfig } from "${ROOT}/dist/src/nats/conf.js";
      import { silentLogger } from "${ROOT}/dist/src/nats/log.js";
      const opts = { ...defaultOptions(), host: "127.0.0.1", port: -1 };
      applyConfig(opts, parseConfig(${JSON.stringify(conf)}), () => {});
      const s = new Server(validateOptions(opts), silentLogger);
      await s.startServer();
      const sock = connect(s.port, "127.0.0.1");
      await new Promise((r) => sock.once("data", r));
      sock.write('CONNECT {"verbose":false}\\r\\nPING\\r\\n');
      await new Promise((r) => sock.once("data", r));
      sock.destroy();
      const cache = createRequire(import.meta.url).cache;
      console.log(Object.keys(cache).some((k) => k.includes("nkeys.js")) ? "loaded" : "not loaded");
      await s.shutdown();
      process.exit(0);
    `;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 20_000,
    });
    return out.trim().endsWith("loaded") && !out.trim().endsWith("not loaded");
  }

  test("a server without auth does not load it; an operator-mode server does", (t) => {
    assert.equal(nkeysLoaded(""), false);
    const w = makeWorld(t);
    assert.equal(nkeysLoaded(w.conf), true);
  });
});

describe("operator configuration", () => {
  const bad = (conf: string, re: RegExp) =>
    assert.throws(() => validateOptions(optionsOf(conf)), re);

  test("errors name the problem", (t) => {
    const w = makeWorld(t);
    const opLine = w.conf.split("\n")[0]!;
    bad(opLine, /operators require an account resolver to be configured/);
    bad(
      `${w.conf}\naccounts { X {} }`,
      /operators do not allow Accounts to be configured directly/,
    );
    bad(
      `${w.conf}\nauthorization { users [ {user: a, password: b} ] }`,
      /operators do not allow users to be configured directly/,
    );
    bad(
      `${opLine}\nresolver: MEMORY\nresolver_preload: { ${w.A.pub}: "garbage" }`,
      /invalid account JWT/,
    );
    bad(`operator: "${join(w.dir, "missing.jwt")}"`, /error parsing operator JWT: cannot read/);
    bad(`operator: "${w.A.jwt}"`, /error parsing operator JWT: expected a JWT of type operator/);
    bad(`${opLine}\nresolver: URL("ftp://x")`, /URL resolver: expected an http or https URL/);
    bad(
      w.conf.replace(/system_account: .*/, `system_account: ${createAccount().getPublicKey()}`),
      /error resolving system account: account missing/,
    );
    bad(
      w.conf.replace(/system_account: .*/, `system_account: ${w.rogue.pub}`),
      /error resolving system account: account validation failed: not signed by a trusted operator/,
    );
    // An account JWT preloaded under another account's key.
    const swapped = w.conf.replace(`${w.SYS.pub}: "${w.SYS.jwt}"`, `${w.SYS.pub}: "${w.A.jwt}"`);
    bad(swapped, /error resolving system account: the account JWT is for/);
  });

  test("a valid config: the accounts are the preloaded ones; the untrusted one is left out", (t) => {
    const w = makeWorld(t);
    const opts = validateOptions(optionsOf(w.conf));
    assert.equal(opts.systemAccount, w.SYS.pub);
    assert.deepEqual(opts.accounts.map((a) => a.name).sort(), [w.A.pub, w.B.pub, w.SYS.pub].sort());
    assert.ok(opts.operator?.problems.some((p) => p.includes(w.rogue.pub)));
  });
});

describe("differential: the Go nats-server and shoal, same config and credentials", () => {
  const skip = goServerPath() ? false : "the Go nats-server is not installed";

  async function run(t: TestContext, kind: "go" | "shoal", w: World): Promise<RunningServer> {
    const file = join(w.dir, `${kind}.conf`);
    writeFileSync(file, w.conf);
    const args = ["-c", file, "-p", "-1"];
    const srv = kind === "go" ? await runGoServer(args) : await runServer(args);
    defer(t, () => srv.stop("SIGKILL"));
    return srv;
  }

  /** The lines a server logged from "Trusted Operators" up to its first listener, without stamps. */
  function operatorLines(out: string): string[] {
    const lines = out.split("\n").map((l) => l.replace(/^\[\d+\] \S+ \S+ /, ""));
    const from = lines.indexOf("[INF] Trusted Operators");
    const to = lines.findIndex((l, i) => i > from && /Starting http monitor|Listening for/.test(l));
    return lines.slice(from, to);
  }

  test(
    "the Trusted Operators start lines, with and without a system account",
    { skip },
    async (t) => {
      const dir = mkdtempSync(join(tmpdir(), "shoal-jwt-"));
      defer(t, () => rmSync(dir, { recursive: true, force: true }));
      const kp = createOperator();
      const extra = { aud: "the audience", exp: nowSec() + 30 * 86400 };
      const op = signJwt(kp, kp.getPublicKey(), { type: "operator" }, extra);
      const sys = makeAccount(kp);
      for (const withSys of [true, false]) {
        const file = join(dir, `op-${withSys}.conf`);
        writeFileSync(
          file,
          `operator: ${op}\n${withSys ? `system_account: ${sys.pub}\n` : ""}resolver: MEMORY\n` +
            `resolver_preload: { ${sys.pub}: "${sys.jwt}" }\n`,
        );
        const [go, shoal] = await Promise.all([
          runGoServer(["-c", file, "-p", "-1"]),
          runServer(["-c", file, "-p", "-1"]),
        ]);
        defer(t, () => go.stop("SIGKILL"));
        defer(t, () => shoal.stop("SIGKILL"));
        const want = operatorLines(go.output());
        assert.ok(want.length >= 5, go.output());
        assert.match(want.join("\n"), /System {2}: "the audience"/);
        assert.deepEqual(operatorLines(shoal.output()), want);
      }
    },
  );

  test("each case: connect ok or the same error text", { skip }, async (t) => {
    const w = makeWorld(t);
    const [go, shoal] = await Promise.all([run(t, "go", w), run(t, "shoal", w)]);
    for (const [name, u] of cases(w)) {
      const [g, s] = [await outcome(go.port, u), await outcome(shoal.port, u)];
      assert.equal(s, g, `${name}: go ${g}, shoal ${s}`);
    }
    assert.equal(await outcome(go.port, makeUser(w.A.kp)), "ok");
  });

  test(
    "expiry of a connected user: the same -ERR on both",
    { skip, timeout: 20_000 },
    async (t) => {
      const w = makeWorld(t);
      const [go, shoal] = await Promise.all([run(t, "go", w), run(t, "shoal", w)]);
      const u = makeUser(w.A.kp, {}, { exp: nowSec() + 2 });
      const closes = await Promise.all(
        [go, shoal].map(async (srv) => {
          const nc = await connectAs(t, srv.port, u);
          const err = await nc.closed();
          return err instanceof Error ? err.message : String(err);
        }),
      );
      assert.equal(closes[1], closes[0]);
      assert.match(closes[0]!, /User Authentication Expired/);
    },
  );

  test("the account's connection limit: the same error text", { skip }, async (t) => {
    const w = makeWorld(t, { limits: { conn: 1 } });
    const [go, shoal] = await Promise.all([run(t, "go", w), run(t, "shoal", w)]);
    const results = [];
    for (const srv of [go, shoal]) {
      await rawJwtClient(t, srv.port, makeUser(w.A.kp));
      results.push((await rawJwtConnect(t, srv.port, makeUser(w.A.kp))).reply);
    }
    assert.equal(results[1], results[0]);
    assert.equal(results[0], "-ERR 'maximum account active connections exceeded'\r\n");
  });

  test("imports and isolation behave alike", { skip }, async (t) => {
    const w = makeWorld(t);
    const [go, shoal] = await Promise.all([run(t, "go", w), run(t, "shoal", w)]);
    const results = [];
    for (const srv of [go, shoal]) {
      const a = await connectAs(t, srv.port, makeUser(w.A.kp));
      const b = await connectAs(t, srv.port, makeUser(w.B.kp));
      const got: string[] = [];
      b.subscribe(">", { callback: (_e, m) => got.push(m.subject) });
      await b.flush();
      a.subscribe("svc.>", { callback: (_e, m) => m.respond(sc.encode("pong")) });
      await a.flush();
      a.publish("x", sc.encode("1"));
      a.publish("feed.1", sc.encode("2"));
      await a.flush();
      b.publish("marker", sc.encode("3"));
      await b.flush();
      const r = await b.request("a.svc.ping", sc.encode("?"), { timeout: 2000 });
      results.push({ got: got.filter((s) => !s.startsWith("_INBOX")), reply: sc.decode(r.data) });
    }
    assert.deepEqual(results[1], results[0]);
    assert.deepEqual(results[0]?.got, ["a.feed.1", "marker", "a.svc.ping"]);
  });
});

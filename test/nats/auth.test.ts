// Authentication and authorization of shoal's message server as the official `nats` client sees
// them: user/password, token, a users list with publish/subscribe permissions (deny wins over
// allow), and the same users configured in a config file for `shoal nats-server -c`.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  connect,
  StringCodec,
  ErrorCode,
  type ConnectionOptions,
  type NatsConnection,
  type NatsError,
  type Status,
} from "nats";
import type { User } from "../../src/nats/options.js";
import {
  checkFor,
  goServerPath,
  RawConn,
  runGoServer,
  runServer,
  useServer,
  useClient,
  type RunningServer,
} from "../helpers/servers.js";
import { isBcrypt, ResponsePermits } from "../../src/nats/auth.js";
import bcryptjs from "bcryptjs";
import { defer } from "../helpers/defer.js";

const sc = StringCodec();

const server = useServer;

/** A client that does not reconnect (auth failures must surface). */
const client = (t: TestContext, port: number, opts: Partial<ConnectionOptions> = {}) =>
  useClient(t, port, { reconnect: false, ...opts });

function isAuthViolation(err: NatsError): boolean {
  return err.code === ErrorCode.AuthorizationViolation;
}

/** Records the async errors a connection reports through its status iterator. */
function watchErrors(nc: NatsConnection): Status[] {
  const errors: Status[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === "error") errors.push(s);
  })();
  return errors;
}

const USERS: User[] = [
  { user: "admin", password: "admin-pw" },
  {
    user: "limited",
    password: "limited-pw",
    permissions: {
      publish: { allow: ["allowed.>", "req.>"], deny: ["allowed.secret"] },
      subscribe: { allow: [">"], deny: ["secret.>"] },
    },
  },
];

describe("authentication", () => {
  test("user and password", async (t) => {
    const s = await server(t, { username: "alice", password: "s3cret" });
    const nc = await client(t, s.port, { user: "alice", pass: "s3cret" });
    assert.equal(nc.info?.auth_required, true);
    await nc.flush();
    await assert.rejects(
      connect({ servers: `127.0.0.1:${s.port}`, user: "alice", pass: "wrong", reconnect: false }),
      isAuthViolation,
    );
    await assert.rejects(
      connect({ servers: `127.0.0.1:${s.port}`, reconnect: false }),
      isAuthViolation,
    );
    await checkFor(2000, () => s.clients.size === 1);
    assert.ok(s.closed.some((c) => c.reason === "Authorization Violation"));
  });

  test("token", async (t) => {
    const s = await server(t, { authToken: "tok-123" });
    const nc = await client(t, s.port, { token: "tok-123" });
    await nc.flush();
    await assert.rejects(
      connect({ servers: `127.0.0.1:${s.port}`, token: "tok-999", reconnect: false }),
      isAuthViolation,
    );
  });

  test("users list: right and wrong passwords", async (t) => {
    const s = await server(t, { users: USERS });
    const nc = await client(t, s.port, { user: "limited", pass: "limited-pw" });
    await nc.flush();
    await assert.rejects(
      connect({ servers: `127.0.0.1:${s.port}`, user: "limited", pass: "admin-pw" }),
      isAuthViolation,
    );
    await assert.rejects(
      connect({ servers: `127.0.0.1:${s.port}`, user: "nobody", pass: "x" }),
      isAuthViolation,
    );
  });
});

describe("permissions", () => {
  test("publish allowed and denied (deny overrides allow)", async (t) => {
    const s = await server(t, { users: USERS });
    const admin = await client(t, s.port, { user: "admin", pass: "admin-pw" });
    const got: string[] = [];
    admin.subscribe(">", { callback: (_e, m) => got.push(m.subject) });
    await admin.flush();
    const nc = await client(t, s.port, { user: "limited", pass: "limited-pw" });
    const errors = watchErrors(nc);

    nc.publish("allowed.one", sc.encode("ok"));
    nc.publish("other.subject", sc.encode("denied: not allowed"));
    nc.publish("allowed.secret", sc.encode("denied: deny wins"));
    nc.publish("allowed.two", sc.encode("ok"));
    await nc.flush();
    await checkFor(2000, () => got.length >= 2 && errors.length >= 2);
    await admin.flush();
    assert.deepEqual(got, ["allowed.one", "allowed.two"]);
    assert.deepEqual(
      errors.map((e) => [e.data, e.permissionContext?.operation, e.permissionContext?.subject]),
      [
        [ErrorCode.PermissionsViolation, "publish", "other.subject"],
        [ErrorCode.PermissionsViolation, "publish", "allowed.secret"],
      ],
    );
    // A permissions violation does not close the connection.
    assert.equal(nc.isClosed(), false);
    nc.publish("allowed.three", sc.encode("ok"));
    await checkFor(2000, () => got.length === 3);
  });

  test("subscribe denied, and deny filters deliveries to a wildcard subscription", async (t) => {
    const s = await server(t, { users: USERS });
    const nc = await client(t, s.port, { user: "limited", pass: "limited-pw" });
    const errors = watchErrors(nc);
    const denied = nc.subscribe("secret.plans");
    const failure = (async () => {
      try {
        for await (const _m of denied) return null;
      } catch (err) {
        return err as NatsError;
      }
      return null;
    })();
    const wide: string[] = [];
    nc.subscribe(">", { callback: (_e, m) => wide.push(m.subject) });
    await nc.flush();
    const err = await failure;
    assert.ok(err, "the denied subscription reports an error");
    assert.equal(err.code, ErrorCode.PermissionsViolation);
    assert.match(err.message, /Permissions Violation for Subscription to "secret.plans"/);
    await checkFor(2000, () => errors.length === 1);
    assert.equal(errors[0]?.permissionContext?.operation, "subscription");
    // Only the allowed subscription exists on the server.
    assert.deepEqual(
      s.sublist.all().map((x) => x.subject),
      [">"],
    );

    const admin = await client(t, s.port, { user: "admin", pass: "admin-pw" });
    admin.publish("secret.plans", sc.encode("hidden"));
    admin.publish("public.news", sc.encode("visible"));
    await admin.flush();
    await checkFor(2000, () => wide.length >= 1);
    await nc.flush();
    assert.deepEqual(wide, ["public.news"]);
  });

  test("request/reply within permissions", async (t) => {
    const s = await server(t, { users: USERS });
    const admin = await client(t, s.port, { user: "admin", pass: "admin-pw" });
    admin.subscribe("req.time", { callback: (_e, m) => m.respond(sc.encode("now")) });
    await admin.flush();
    const nc = await client(t, s.port, { user: "limited", pass: "limited-pw" });
    const r = await nc.request("req.time", undefined, { timeout: 2000 });
    assert.equal(sc.decode(r.data), "now");
  });
});

describe("authorization from a config file", () => {
  test("users with permissions via shoal nats-server -c", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "shoal-auth-"));
    defer(t, () => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "auth.conf");
    writeFileSync(
      file,
      `# users for the auth test
authorization {
  users = [
    { user: admin, password: "admin-pw" }
    {
      user: "svc"
      password: "svc-pw"
      permissions: {
        publish: { allow: ["svc.>"], deny: ["svc.admin"] }
        subscribe: "inbox.>"
      }
    }
  ]
}
`,
    );
    const srv = await runServer(["-c", file, "-p", "-1"]);
    defer(t, () => srv.stop("SIGKILL"));

    const admin = await client(t, srv.port, { user: "admin", pass: "admin-pw" });
    const got: string[] = [];
    admin.subscribe("svc.>", { callback: (_e, m) => got.push(m.subject) });
    await admin.flush();

    await assert.rejects(
      connect({ servers: `127.0.0.1:${srv.port}`, user: "svc", pass: "nope", reconnect: false }),
      isAuthViolation,
    );
    const nc = await client(t, srv.port, { user: "svc", pass: "svc-pw" });
    const errors = watchErrors(nc);
    nc.publish("svc.admin", sc.encode("denied"));
    nc.publish("svc.work", sc.encode("allowed"));
    const sub = nc.subscribe("other.thing");
    const subErr = (async () => {
      try {
        for await (const _m of sub) return null;
      } catch (err) {
        return err as NatsError;
      }
      return null;
    })();
    await nc.flush();
    await checkFor(2000, () => got.length >= 1 && errors.length >= 2);
    await admin.flush();
    assert.deepEqual(got, ["svc.work"]);
    assert.equal((await subErr)?.code, ErrorCode.PermissionsViolation);
    assert.deepEqual(errors.map((e) => e.permissionContext?.subject).sort(), [
      "other.thing",
      "svc.admin",
    ]);
  });
});

describe("reloading the users", () => {
  test("a removed user is cut off at once and refused after; a kept one gets new permissions", async (t) => {
    const s = await server(t, { users: USERS });
    const gone = await client(t, s.port, { user: "admin", pass: "admin-pw" });
    const kept = await client(t, s.port, { user: "limited", pass: "limited-pw" });
    const keptErrors = watchErrors(kept);
    const got: string[] = [];
    kept.subscribe("news.>", { callback: (_e, m) => got.push(m.subject) });
    await kept.flush();
    gone.publish("news.a");
    await gone.flush();
    await checkFor(2000, () => got.length === 1);

    const closed = gone.closed();
    s.reloadUsers([
      {
        user: "limited",
        password: "limited-pw",
        permissions: {
          publish: { allow: ["allowed.>"], deny: [] },
          subscribe: { allow: ["other.>"], deny: [] },
        },
      },
    ]);
    const err = await closed;
    assert.ok(err && isAuthViolation(err as NatsError), `closed with ${String(err)}`);
    assert.ok(s.closed.some((c) => c.reason === "Authorization Violation"));
    await assert.rejects(
      connect({
        servers: `127.0.0.1:${s.port}`,
        user: "admin",
        pass: "admin-pw",
        reconnect: false,
      }),
      isAuthViolation,
    );
    // The kept client's subscription is no longer allowed: it is removed, with a -ERR.
    await checkFor(2000, () => keptErrors.length > 0);
    assert.deepEqual(
      [keptErrors[0]!.permissionContext?.operation, keptErrors[0]!.permissionContext?.subject],
      ["subscription", "news.>"],
    );
    kept.publish("allowed.x");
    kept.publish("req.x"); // allowed before the reload, not after
    await kept.flush();
    await checkFor(2000, () => keptErrors.length > 1);
    assert.deepEqual(
      [keptErrors[1]!.permissionContext?.operation, keptErrors[1]!.permissionContext?.subject],
      ["publish", "req.x"],
    );
    assert.equal(kept.isClosed(), false);
  });
});

// Queue permissions and allow_responses, as raw sessions against shoal and, when it is installed,
// the Go nats-server with the same config: the -ERR lines each user gets must be the same.
const PERMS_CONF = `authorization { users [
  { user: u, password: u }
  { user: q, password: q, permission { subscribe { allow: ["foo", "bar q1", "baz.* q.*"], deny: ["foo qx", "nope"] } } }
  { user: s, password: s, permissions { subscribe: "svc", allow_responses: true } }
  { user: r, password: r, permissions { publish: "req", subscribe: "req", allow_responses: { max: 2, expires: "1m" } } }
] }
`;

async function permsSession(t: TestContext, srv: RunningServer) {
  const login = async (user: string) => {
    const c = await RawConn.connect(srv.port);
    defer(t, () => c.close());
    c.send(`CONNECT {"verbose":false,"user":"${user}","pass":"${user}"}\r\n`);
    return c;
  };
  /** Sends lines, then waits for the PONG that ends them; returns the -ERR lines they caused. */
  const run = async (c: RawConn, lines: string) => {
    const before = c.data.length;
    c.send(`${lines}PING\r\n`);
    await checkFor(3000, () => c.data.slice(before).includes("PONG\r\n"));
    return c.data.slice(before).match(/-ERR [^\r]*/g) ?? [];
  };
  const q = await login("q");
  const queues = await run(
    q,
    "SUB foo 1\r\nSUB foo qx 2\r\nSUB foo qy 3\r\nSUB bar 4\r\nSUB bar q1 5\r\n" +
      "SUB bar q2 6\r\nSUB baz.a q.x 7\r\nSUB baz.a q 8\r\nSUB nope 9\r\n",
  );
  const [u, s, r] = [await login("u"), await login("s"), await login("r")];
  await run(u, "SUB rep.> 1\r\n");
  await run(s, "SUB svc 1\r\n");
  await run(r, "SUB req 1\r\n");
  await run(u, "PUB svc rep.1 2\r\nhi\r\nPUB req rep.2 2\r\nhi\r\n");
  await s.waitFor(/MSG svc 1 rep\.1 2\r\n/);
  await r.waitFor(/MSG req 1 rep\.2 2\r\n/);
  const answer = "PUB rep.1 0\r\n\r\nPUB rep.1 0\r\n\r\nPUB other 0\r\n\r\n";
  const sErrs = await run(s, answer);
  const rErrs = await run(
    r,
    answer.replaceAll("rep.1", "rep.2").replace("PUB other", "PUB rep.2 0\r\n\r\nPUB other"),
  );
  await run(u, "");
  const delivered = u.data.match(/MSG rep\.\d/g) ?? [];
  return { queues, sErrs, rErrs, delivered };
}

describe("queue permissions and allow_responses (raw sessions)", () => {
  const expected = {
    queues: [
      `-ERR 'Permissions Violation for Subscription to "foo" using queue "qx"'`,
      `-ERR 'Permissions Violation for Subscription to "bar"'`,
      `-ERR 'Permissions Violation for Subscription to "bar" using queue "q2"'`,
      `-ERR 'Permissions Violation for Subscription to "baz.a" using queue "q"'`,
      `-ERR 'Permissions Violation for Subscription to "nope"'`,
    ],
    // s may answer rep.1 once (the default max), r answers rep.2 twice; neither may publish elsewhere.
    sErrs: [
      `-ERR 'Permissions Violation for Publish to "rep.1"'`,
      `-ERR 'Permissions Violation for Publish to "other"'`,
    ],
    rErrs: [
      `-ERR 'Permissions Violation for Publish to "rep.2"'`,
      `-ERR 'Permissions Violation for Publish to "other"'`,
    ],
    delivered: ["MSG rep.1", "MSG rep.2", "MSG rep.2"],
  };
  for (const kind of ["shoal", "go"] as const) {
    test(
      `${kind}: the -ERR lines of each user`,
      {
        skip: kind === "go" && !goServerPath() ? "the Go nats-server is not installed" : false,
      },
      async (t) => {
        const dir = mkdtempSync(join(tmpdir(), "shoal-perms-"));
        defer(t, () => rmSync(dir, { recursive: true, force: true }));
        const file = join(dir, "perms.conf");
        writeFileSync(file, PERMS_CONF);
        const args = ["-c", file, "-p", "-1"];
        const srv = kind === "go" ? await runGoServer(args) : await runServer(args);
        defer(t, () => srv.stop("SIGKILL"));
        assert.deepEqual(await permsSession(t, srv), expected);
      },
    );
  }
});

describe("bcrypt passwords and tokens (as nats-server's comparePasswords)", () => {
  // Cost 4, the least bcrypt takes, keeps the tests fast; servers read any cost.
  const hash = (pw: string) => bcryptjs.hashSync(pw, 4);
  const users: User[] = [
    { user: "a", password: hash("a-pw") },
    { user: "b", password: "b-pw" },
  ];

  test("isBcrypt knows nats-server's prefixes, and nothing else", () => {
    for (const h of [hash("x"), "$2a$11$abc", "$2y$10$abc", "$2x$05$abc"])
      assert.ok(isBcrypt(h), h);
    for (const p of [
      "",
      "$2$05$abc",
      "$2a$1$abc",
      "$3a$11$abc",
      "2a$11$abc",
      "plain",
      "$2c$11$abc",
    ]) {
      assert.equal(isBcrypt(p), false, p);
    }
  });

  test("a hashed user's password, a hashed token; the hash itself never passes", async (t) => {
    const s = await server(t, { users });
    await (await client(t, s.port, { user: "a", pass: "a-pw" })).flush();
    await (await client(t, s.port, { user: "b", pass: "b-pw" })).flush();
    for (const [user, pass] of [
      ["a", "wrong"],
      ["a", users[0]!.password],
      ["b", "a-pw"],
    ]) {
      await assert.rejects(
        connect({ servers: `127.0.0.1:${s.port}`, user, pass, reconnect: false }),
        isAuthViolation,
        `${user}/${pass}`,
      );
    }
    const tok = await server(t, { authToken: hash("tok-1") });
    await (await client(t, tok.port, { token: "tok-1" })).flush();
    await assert.rejects(
      connect({ servers: `127.0.0.1:${tok.port}`, token: "tok-2", reconnect: false }),
      isAuthViolation,
    );
  });

  test(
    "the same outcomes as the Go nats-server for the same config",
    { skip: goServerPath() ? false : "the Go nats-server is not installed" },
    async (t) => {
      const dir = mkdtempSync(join(tmpdir(), "shoal-bcrypt-"));
      defer(t, () => rmSync(dir, { recursive: true, force: true }));
      const file = join(dir, "bcrypt.conf");
      const list = users.map((u) => `{ user: ${u.user}, password: "${u.password}" }`).join(", ");
      writeFileSync(file, `authorization { users [ ${list} ] }\n`);
      const tries: Array<[string, string]> = [
        ["a", "a-pw"],
        ["a", "wrong"],
        ["a", users[0]!.password],
        ["b", "b-pw"],
      ];
      const outcomes: string[][] = [];
      for (const run of [runGoServer, runServer]) {
        const srv = await run(["-c", file, "-p", "-1"]);
        defer(t, () => srv.stop("SIGKILL"));
        const seen: string[] = [];
        for (const [user, pass] of tries) {
          const nc = await connect({
            servers: `127.0.0.1:${srv.port}`,
            user,
            pass,
            reconnect: false,
          })
            .then(async (nc) => {
              await nc.close();
              return "ok";
            })
            .catch((err: NatsError) => err.code);
          seen.push(nc);
        }
        outcomes.push(seen);
      }
      assert.deepEqual(outcomes[0], [
        "ok",
        ErrorCode.AuthorizationViolation,
        ErrorCode.AuthorizationViolation,
        "ok",
      ]);
      assert.deepEqual(outcomes[1], outcomes[0]);
    },
  );
});

describe("ResponsePermits (allow_responses bookkeeping, injected time)", () => {
  test("a reply subject may be used max times, within expires of its delivery", () => {
    let now = 0;
    const p = new ResponsePermits({ maxMsgs: 2, expiresMs: 1000 }, () => now);
    assert.equal(p.use("r.1"), false, "never delivered");
    p.delivered("r.1");
    assert.equal(p.use("r.1"), true);
    assert.equal(p.use("r.1"), true);
    assert.equal(p.use("r.1"), false, "beyond max");
    p.delivered("r.2");
    now = 1001;
    assert.equal(p.use("r.2"), false, "expired");
    p.delivered("r.3");
    now = 2000;
    assert.equal(p.use("r.3"), true, "within expires");
  });

  test("a new delivery of the same reply subject starts afresh", () => {
    const p = new ResponsePermits({ maxMsgs: 1, expiresMs: 0 }, () => 0);
    p.delivered("r");
    assert.equal(p.use("r"), true);
    p.delivered("r");
    assert.equal(p.use("r"), true);
    assert.equal(p.use("r"), false);
  });
});

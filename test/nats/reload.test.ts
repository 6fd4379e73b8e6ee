// Configuration reload (src/nats/reload.ts) as nats-server 2.9 does it. In operator mode against
// the Go server: the same config and the same changes (resolver_preload accounts added, replaced
// and removed, log settings, an account's default permissions, a new operator, another system
// account) given to both, and the lines each logs on reload compared, in order. Then the order
// and words of diffOptions without the Go server, and a reloaded ping_interval at work.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, jwtAuthenticator } from "nats";
import {
  checkFor,
  goServerPath,
  RawConn,
  runGoServer,
  runServer,
  useServer,
  type RunningServer,
} from "../helpers/servers.js";
import { defer } from "../helpers/defer.js";
import { makeAccount, makeOperator, makeUser, type TestAccount } from "../helpers/jwt.js";
import { useCerts } from "../helpers/certs.js";
import { applyConfig, defaultOptions, validateOptions } from "../../src/nats/options.js";
import { parseConfig } from "../../src/nats/conf.js";
import { diffOptions, reloadServer } from "../../src/nats/reload.js";

const CI = !["", "0", "false"].includes(process.env["CI"] ?? "");
const skipGo = goServerPath() !== null || CI ? false : "the Go nats-server is not installed";
const nowSec = () => Math.floor(Date.now() / 1000);

interface World {
  op: ReturnType<typeof makeOperator>;
  sys: TestAccount;
}

/** An operator-mode config: MEMORY resolver preloading `accounts` (and the system account). */
function confOf(
  w: World,
  accounts: TestAccount[],
  extra = "",
  op = w.op,
  sys: TestAccount = w.sys,
): string {
  const preload = [sys, ...accounts].map((a) => `  ${a.pub}: "${a.jwt}"`).join("\n");
  return [
    `operator: "${op.jwt}"`,
    "resolver: MEMORY",
    `resolver_preload {\n${preload}\n}`,
    `system_account: ${w.sys.pub}`,
    extra,
    "",
  ].join("\n");
}

/**
 * The lines a reload logged, from the signal on to its last line: without process id and time,
 * keys replaced by names, protocol traces left out, a fetch's duration left out.
 */
function reloadLines(out: string, names: Map<string, string>): string[] {
  const lines: string[] = [];
  for (let line of out.split("\n")) {
    line = line.replace(/^\[\d+\] (\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\.\d{6} )?/, "");
    if (line === "" || line.startsWith("[TRC]")) continue;
    for (const [k, v] of names) line = line.replaceAll(k, `<${v}>`);
    lines.push(line.replace(/ fetch took \S+$/, " fetch took <d>"));
  }
  return lines;
}

/** Rewrites the config file, signals a reload and returns what the server logged for it. */
async function reload(
  srv: RunningServer,
  file: string,
  conf: string,
  names: Map<string, string>,
): Promise<string[]> {
  writeFileSync(file, conf);
  const before = srv.output().length;
  srv.proc.kill("SIGHUP");
  // Done at "Reloaded server configuration", or at the failure's message, which may run over
  // several lines (a new operator's claims, ending in "}]").
  const settled = (out: string) =>
    out.includes("[INF] Reloaded server configuration\n") ||
    (/\[ERR\] Failed to reload server configuration: .*/.test(out) &&
      (!out.includes("old=[{") || out.endsWith("}]\n")));
  await checkFor(5000, () => settled(srv.output().slice(before)));
  return reloadLines(srv.output().slice(before), names);
}

describe("operator-mode reload, as nats-server 2.9 logs it", () => {
  test(
    "differential: preload changes, log settings, permissions, a new operator or system account",
    { skip: skipGo, timeout: 60_000 },
    async (t) => {
      const op = makeOperator();
      const other = makeOperator();
      const w: World = { op, sys: makeAccount(op.kp) };
      const A = makeAccount(op.kp);
      const B = makeAccount(op.kp);
      const E = makeAccount(op.kp, {}, { exp: nowSec() - 60 }); // expired: warned about
      const A2 = makeAccount(
        op.kp,
        { default_permissions: { pub: { deny: ["secret.>"] }, sub: {} } },
        { iat: nowSec() + 1 },
        A.kp,
      );
      const otherSys = makeAccount(other.kp, {}, {}, w.sys.kp);
      const names = new Map([
        [op.pub, "OP"],
        [other.pub, "OTHER"],
        [w.sys.pub, "SYS"],
        [A.pub, "A"],
        [B.pub, "B"],
        [E.pub, "E"],
      ]);
      const steps: Array<[string, string]> = [
        ["add B, max_payload", confOf(w, [A, B, E], "max_payload: 4096")],
        ["A's default permissions, B removed", confOf(w, [A2, E], "max_payload: 4096")],
        ["A removed while held", confOf(w, [E], "max_payload: 4096")],
        ["debug on, logtime off", confOf(w, [E], "max_payload: 4096\ndebug: true\nlogtime: false")],
        ["another operator", confOf(w, [E], "debug: true\nlogtime: false", other, otherSys)],
        [
          "another system account",
          confOf(w, [E], "debug: true\nlogtime: false").replace(
            `system_account: ${w.sys.pub}`,
            `system_account: ${E.pub}`,
          ),
        ],
        [
          "the system account's JWT by another operator",
          confOf(w, [E], "debug: true\nlogtime: false", op, otherSys),
        ],
      ];
      const dir = mkdtempSync(join(tmpdir(), "shoal-reload-op-"));
      defer(t, () => rmSync(dir, { recursive: true, force: true }));
      const logs: Record<string, string[][]> = {};
      for (const kind of ["go", "shoal"] as const) {
        const file = join(dir, `${kind}.conf`);
        writeFileSync(file, confOf(w, [A, E]));
        const srv = await (kind === "go" ? runGoServer : runServer)(["-c", file, "-p", "-1"]);
        defer(t, () => srv.stop("SIGKILL"));
        // A user of A, logged in as the official clients do (JWT and nkey): A is held, and the
        // first reload closes the connection without a word.
        const u = makeUser(A.kp);
        const nc = await connect({
          servers: `127.0.0.1:${srv.port}`,
          reconnect: false,
          authenticator: jwtAuthenticator(u.jwt, u.seed),
        });
        defer(t, () => nc.close());
        const closed = nc.closed();
        logs[kind] = [];
        for (const [, conf] of steps) logs[kind].push(await reload(srv, file, conf, names));
        assert.equal(await closed, undefined, `${kind}: closed without an error`);
      }
      for (const [i, [label]] of steps.entries()) {
        assert.deepEqual(logs["shoal"]![i], logs["go"]![i], label);
      }
      // What the comparison covers, as Go logged it.
      const all = logs["go"]!.flat();
      for (const line of [
        "[INF] Reloaded: max_payload = 4096",
        "[WRN] Account [<E>] has validation issues:",
        "[WRN]   - claim is expired",
        "[WRN] Account fetch failed: account missing",
        '[INF] Reloaded: deleting account [removed]: "<A>"',
        "[DBG] Account [<SYS>] fetch took <d>",
        "[DBG] Requested account update for [<SYS>], same claims detected",
        "[ERR] Failed to reload server configuration: config reload not supported for SystemAccount: old=<SYS>, new=<E>",
        '[INF] Reloaded: deleting account [removed]: "<SYS>"',
      ]) {
        assert.ok(all.includes(line), `${line}\n${all.join("\n")}`);
      }
      assert.ok(
        all.some((l) => l.includes("config reload not supported for TrustedOperators: old=[{")),
      );
    },
  );
});

test(
  "differential: the same tls block is 'tls = enabled' again once it served a handshake, or with a CA",
  { skip: skipGo, timeout: 30_000 },
  async (t) => {
    const certs = useCerts(t);
    const dir = mkdtempSync(join(tmpdir(), "shoal-reload-tls-"));
    defer(t, () => rmSync(dir, { recursive: true, force: true }));
    const block = (ca: string) =>
      `tls { cert_file: "${certs.server.cert}", key_file: "${certs.server.key}"${ca} }\n`;
    const got: Record<string, string[][]> = {};
    for (const kind of ["go", "shoal"] as const) {
      got[kind] = [];
      for (const ca of ["", `, ca_file: "${certs.ca}"`]) {
        const file = join(dir, `${kind}.conf`);
        writeFileSync(file, block(ca));
        const srv = await (kind === "go" ? runGoServer : runServer)(["-c", file, "-p", "-1"]);
        defer(t, () => srv.stop("SIGKILL"));
        // Nothing changed, no handshake yet; then after a client's handshake.
        got[kind].push(await reload(srv, file, block(ca), new Map()));
        const nc = await connect({ servers: `127.0.0.1:${srv.port}`, tls: { caFile: certs.ca } });
        await nc.flush();
        await nc.close();
        got[kind].push(await reload(srv, file, block(ca), new Map()));
      }
    }
    assert.deepEqual(got["shoal"], got["go"]);
    const said = got["go"]!.map((lines) => lines.includes("[INF] Reloaded: tls = enabled"));
    assert.deepEqual(said, [false, true, true, true]);
  },
);

describe("diffOptions: nats-server's order and words", () => {
  const op = makeOperator();
  const w: World = { op, sys: makeAccount(op.kp) };
  const optionsOf = (conf: string) => {
    const opts = defaultOptions();
    applyConfig(opts, parseConfig(conf), () => {});
    return validateOptions(opts, true);
  };
  const unchanged = { tlsChanged: false, resolverUsed: false };

  test("a URL resolver is 'accounts' again once it fetched, or when it has resolver_tls", () => {
    const url = (extra: string) =>
      optionsOf(
        `operator: "${op.jwt}"\nsystem_account: ${w.sys.pub}\nresolver: URL(http://127.0.0.1:9/)\n${extra}`,
      );
    const plain = url("");
    const accounts = (cur: typeof plain, used: boolean) =>
      diffOptions(cur, cur, { tlsChanged: false, resolverUsed: used }).filter(
        (l) => l === "accounts",
      ).length;
    assert.equal(accounts(plain, false), 1);
    assert.equal(accounts(plain, true), 2);
    // The resolver's line, and resolver_tls's own (as nats-server 2.9.10 logs it).
    assert.equal(accounts(url(`resolver_tls { insecure: true }`), false), 3);
  });

  test("every reload says users and accounts; operator mode says accounts again", () => {
    const plain = optionsOf("port: 4222\n");
    assert.deepEqual(diffOptions(plain, plain, unchanged), ["authorization users", "accounts"]);
    const jwt = optionsOf(confOf(w, []));
    assert.deepEqual(diffOptions(jwt, jwt, unchanged), [
      "authorization users",
      "accounts",
      "accounts",
    ]);
  });

  test("changes are said in nats-server's Options order", () => {
    const cur = optionsOf("port: 4222\n");
    const next = optionsOf(
      [
        "port: 4222",
        "server_tags: [a]",
        'write_deadline: "3s"',
        "max_payload: 4096",
        "authorization { timeout: 4 }",
        "ping_max: 5",
        'ping_interval: "1m"',
        "max_connections: 100",
        "logtime: false",
        "debug: true",
        "trace: true",
        "",
      ].join("\n"),
    );
    assert.deepEqual(diffOptions(cur, next, { tlsChanged: true, resolverUsed: false }), [
      "trace = true",
      "debug = true",
      "logtime = false",
      "max_connections = 100",
      "authorization users",
      "accounts",
      "ping_interval = 1m0s",
      "ping_max = 5",
      "authorization timeout = 4",
      "max_payload = 4096",
      "tls = disabled",
      "write_deadline = 3s",
      "tags",
    ]);
  });

  test("what nats-server 2.9 cannot reload is refused in its words", () => {
    const cur = optionsOf(confOf(w, []));
    const refused = (extra: string) => () =>
      diffOptions(cur, optionsOf(confOf(w, [], extra)), unchanged);
    assert.throws(
      refused("max_subscriptions: 10"),
      /^ReloadError: config reload not supported for MaxSubs: old=0, new=10$/,
    );
    assert.throws(refused('lame_duck_duration: "30s"'), /for LameDuckDuration: old=2m0s, new=30s$/);
    assert.throws(
      refused('lame_duck_grace_period: "3s"'),
      /for LameDuckGracePeriod: old=10s, new=3s$/,
    );
    const other = makeOperator();
    const moved = optionsOf(confOf(w, [], "", other, makeAccount(other.kp, {}, {}, w.sys.kp)));
    const err = (() => {
      try {
        diffOptions(cur, moved, unchanged);
      } catch (e) {
        return (e as Error).message;
      }
      return "";
    })();
    // Go's %v of its []*jwt.OperatorClaims: each claim set as indented JSON in struct order.
    const claims = (o: typeof op) =>
      JSON.parse(Buffer.from(o.jwt.split(".")[1]!, "base64url").toString()) as Record<
        string,
        unknown
      >;
    const text = (o: typeof op) => {
      const c = claims(o);
      return JSON.stringify(
        {
          jti: c["jti"],
          iat: c["iat"],
          iss: c["iss"],
          name: c["name"],
          sub: c["sub"],
          nats: { type: "operator", version: 2 },
        },
        null,
        2,
      );
    };
    assert.equal(
      err,
      `config reload not supported for TrustedOperators: old=[${text(op)}], new=[${text(other)}]`,
    );
  });
});

test("a reloaded ping_interval paces the pings from then on", async (t) => {
  const s = await useServer(t);
  const c = await RawConn.connect(s.port);
  t.after(() => c.close());
  c.send('CONNECT {"verbose":false}\r\nPING\r\n');
  await c.waitFor(/PONG\r\n/);
  // From two minutes to 50ms: the server's PING comes at once instead of in two minutes.
  assert.deepEqual(reloadServer(s, validateOptions({ ...s.opts, pingIntervalMs: 50 }), null), [
    "authorization users",
    "accounts",
    "ping_interval = 50ms",
  ]);
  await c.waitFor(/PONG\r\nPING\r\n/, 2000);
});

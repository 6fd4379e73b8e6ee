// The `shoal` command and `shoal nats-server` as a process: help and version output, flag and
// config errors (exit codes and messages), config testing with -t, nats-server's log format,
// protocol tracing with -DV, signals (SIGTERM, --signal ldm), and the PID file.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { natsServerBundle } from "../../src/cli/entry.cjs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebSocket } from "ws";
import { freePort } from "../helpers/cluster.js";
import {
  checkFor,
  goServerPath,
  RawConn,
  runGoServer,
  runServer,
  SHOAL_BIN,
  type RunningServer,
} from "../helpers/servers.js";

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/shoal.js ...args` to completion. */
function shoal(...args: string[]): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [SHOAL_BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    // Generous: five of these start at once, and a loaded machine is slow to start Node.
    const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
    p.once("error", reject);
    p.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "shoal-cli-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The INFO a server sends first on a WebSocket connection. */
async function wsInfo(url: string): Promise<Record<string, unknown>> {
  const ws = new WebSocket(url);
  try {
    const first = await new Promise<Buffer>((resolve, reject) => {
      ws.once("message", (d: Buffer) => resolve(d));
      ws.once("error", reject);
    });
    const m = /^INFO (\{.*\}) ?\r\n/.exec(first.toString());
    assert.ok(m, `not an INFO: ${first.toString()}`);
    return JSON.parse(m[1]!) as Record<string, unknown>;
  } finally {
    ws.terminate();
  }
}

async function server(t: TestContext, args: string[] = []): Promise<RunningServer> {
  const srv = await runServer(args);
  t.after(() => srv.stop("SIGKILL"));
  return srv;
}

describe("shoal command line", () => {
  test("shoal --help", async () => {
    const r = await shoal("--help");
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: shoal COMMAND/);
    assert.match(r.stdout, /nats-server/);
    assert.equal(r.stderr, "");
  });

  test("shoal nats-server --help and --version", async () => {
    const [help, short, version] = await Promise.all([
      shoal("nats-server", "--help"),
      shoal("nats-server", "-h"),
      shoal("nats-server", "--version"),
    ]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: shoal nats-server \[options\]/);
    assert.match(help.stdout, /-p, --port <port>/);
    assert.match(help.stdout, /--signal/);
    assert.equal(short.stdout, help.stdout);
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^nats-server: v\d+\.\d+\.\d+/);
  });

  test("flag errors exit non-zero and name the problem", async () => {
    const [bogus, port, missing, routes, cmd] = await Promise.all([
      shoal("nats-server", "--bogus"),
      shoal("nats-server", "-p", "notanumber"),
      shoal("nats-server", "-p"),
      shoal("nats-server", "-routes", "nats://127.0.0.1:7244"),
      shoal("no-such-command"),
    ]);
    assert.notEqual(bogus.code, 0);
    assert.match(bogus.stderr, /flag provided but not defined: -bogus/);
    assert.notEqual(port.code, 0);
    assert.match(port.stderr, /"notanumber"/);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /flag needs an argument: -p/);
    assert.notEqual(routes.code, 0);
    assert.match(routes.stderr, /solicited routes require cluster capabilities/);
    assert.notEqual(cmd.code, 0);
    assert.match(cmd.stderr, /unknown command "no-such-command"/);
  });

  test("config errors name file:line:col; -t tests a config", async (t) => {
    const dir = tempDir(t);
    const bad = join(dir, "bad.conf");
    writeFileSync(bad, `port: 4222\nauthorization {\n  user: "alice\n}\n`);
    const unknown = join(dir, "unknown.conf");
    writeFileSync(unknown, `port: 4222\nno_such_setting: 1\n`);
    const good = join(dir, "good.conf");
    writeFileSync(good, `listen: 127.0.0.1:4222\nmax_payload: 2MB\nping_interval: "1m"\n`);
    const [r, u, ok] = await Promise.all([
      shoal("nats-server", "-c", bad),
      shoal("nats-server", "-t", "-c", unknown),
      shoal("nats-server", "-t", "-c", good),
    ]);
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(`${bad}:3:9:`), r.stderr);
    assert.notEqual(u.code, 0);
    assert.match(u.stderr, /no_such_setting/);
    assert.equal(ok.code, 0, ok.stderr);
    // nats-server's line, on stderr as it writes it.
    assert.match(ok.stderr, /^nats-server: configuration file .*good\.conf is valid\n$/m);
  });
});

describe("shoal nats-server process", () => {
  test("startup log lines in nats-server's format", async (t) => {
    const srv = await server(t);
    const pid = srv.proc.pid!;
    const lines = srv.output().trimEnd().split("\n");
    const stamp = String.raw`\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}\.\d{6}`;
    const re = (level: string, msg: string) =>
      new RegExp(`^\\[${pid}\\] ${stamp} \\[${level}\\] ${msg}$`);
    for (const l of lines) assert.match(l, re("(INF|WRN|DBG)", ".*"));
    assert.match(lines[0]!, re("INF", "Starting nats-server"));
    assert.ok(lines.some((l) => re("INF", `  Version:  \\d+\\.\\d+\\.\\d+.*`).test(l)));
    assert.ok(
      lines.some((l) =>
        re("INF", `Listening for client connections on 127\\.0\\.0\\.1:${srv.port}`).test(l),
      ),
    );
    assert.match(lines.at(-1)!, re("INF", "Server is ready"));
    // The time stamp is now (local time).
    const m = new RegExp(stamp).exec(lines[0]!)!;
    const [date, time] = m[0].split(" ") as [string, string];
    const logged = new Date(`${date.replaceAll("/", "-")}T${time.slice(0, 12)}`);
    assert.ok(Math.abs(Date.now() - logged.getTime()) < 60_000);
  });

  test("-DV traces the protocol", async (t) => {
    const srv = await server(t, ["-DV"]);
    const c = await RawConn.connect(srv.port);
    t.after(() => c.close());
    await c.waitFor(/^INFO /);
    c.send(`CONNECT {"verbose":false,"name":"tracer"}\r\nPING\r\n`);
    await c.waitFor(/PONG\r\n/);
    const out = await checkFor(3000, () => {
      const o = srv.output();
      return /\[TRC\] .* - cid:\d+ - ->> \[PONG\]/.test(o) ? o : "";
    });
    assert.match(out, /\[DBG\] 127\.0\.0\.1:\d+ - cid:\d+ - Client connection created/);
    assert.match(
      out,
      /\[TRC\] 127\.0\.0\.1:\d+ - cid:\d+ - <<- \[CONNECT \{"verbose":false,"name":"tracer"\}\]/,
    );
    assert.match(out, /\[TRC\] 127\.0\.0\.1:\d+ - cid:\d+ - <<- \[PING\]/);
    // Without -DV there is no trace.
    const quiet = await server(t);
    const q = await RawConn.connect(quiet.port);
    t.after(() => q.close());
    q.send("CONNECT {}\r\nPING\r\n");
    await q.waitFor(/PONG\r\n/);
    assert.doesNotMatch(quiet.output(), /\[(TRC|DBG)\]/);
  });

  // The configuration the official clients' test suites start nats-server with (issue 15).
  const clientSuiteConf = (dir: string) =>
    [
      `host: "127.0.0.1"`,
      `port: -1`,
      `http: "127.0.0.1:-1"`,
      `leafnodes { listen: "127.0.0.1:-1" }`,
      `server_tags [ id:abc123, "Region:EU" ]`,
      `jetstream: enabled`,
      `authorization { timeout: 3 }`,
      `cluster { name: c1, listen: "127.0.0.1:-1" }`,
      `websocket { port: -1`,
      `  no_tls: true }`,
      `ports_file_dir: ${JSON.stringify(dir)}`,
      ``,
    ].join("\n");

  for (const kind of ["shoal", "go"] as const) {
    test(
      `a client test suite's config starts ${kind}; the ports file and /varz tags`,
      {
        skip: kind === "go" && !goServerPath() ? "the Go nats-server is not installed" : false,
      },
      async (t) => {
        const dir = tempDir(t);
        const conf = join(dir, "suite.conf");
        // The Go server refuses jetstream in a cluster without more setup: it is shoal's part.
        const text = clientSuiteConf(dir);
        writeFileSync(conf, kind === "go" ? text.replace("jetstream: enabled\n", "") : text);
        const srv = kind === "go" ? await runGoServer(["-c", conf]) : await runServer(["-c", conf]);
        t.after(() => srv.stop("SIGKILL"));
        const file = join(dir, `nats-server_${srv.proc.pid}.ports`);
        const ports = await checkFor(5000, () =>
          existsSync(file) ? readFileSync(file, "utf8") : "",
        ).then((text) => JSON.parse(text) as Record<string, string[]>);
        assert.deepEqual(Object.keys(ports), ["nats", "monitoring", "cluster", "websocket"]);
        assert.deepEqual(ports["nats"], [`nats://127.0.0.1:${srv.port}`]);
        assert.deepEqual(ports["monitoring"], [`http://127.0.0.1:${srv.httpPort}`]);
        assert.match(ports["cluster"]![0]!, /^nats:\/\/127\.0\.0\.1:\d+$/);
        // The websocket block has no host: it listens on every interface, and the file lists
        // each interface's address (loopback included) with the one port bound.
        const ws = ports["websocket"]!;
        const wsPort = /:(\d+)$/.exec(ws[0]!)?.[1];
        assert.ok(wsPort !== undefined && wsPort !== "0", ws[0]);
        assert.ok(ws.includes(`ws://127.0.0.1:${wsPort}`), ws.join(" "));
        for (const url of ws) assert.match(url, new RegExp(`^ws://.+:${wsPort}$`));
        const varz = (await (await fetch(`http://127.0.0.1:${srv.httpPort}/varz`)).json()) as {
          tags: string[];
          auth_timeout: number;
          server_id: string;
        };
        const info = await wsInfo(`ws://127.0.0.1:${wsPort}`);
        assert.equal(info["server_id"], varz.server_id);
        assert.deepEqual(varz.tags, ["id:abc123", "region:eu"]);
        assert.equal(varz.auth_timeout, 3);
        if (kind === "shoal") {
          assert.match(srv.output(), /\[WRN\] JetStream is not supported by shoal/);
          assert.match(srv.output(), /\[WRN\] Leaf nodes are not supported by shoal/);
        }
        const code = await srv.stop("SIGTERM");
        if (kind === "shoal") assert.equal(code, 0);
        assert.equal(existsSync(file), false, "ports file removed at shutdown");
      },
    );
  }

  // The trace of one session, line for line as nats-server -DV writes it (clients' tests read it).
  const TRACED_SESSION = Buffer.concat([
    Buffer.from(
      `CONNECT {"verbose":true,"pedantic":false,"headers":true,"protocol":1,"pass":"pw"}\r\n` +
        `SUB foo 1\r\nSUB bar q 2\r\nSUB a 3\r\nUNSUB 3 1\r\nPUB a 2\r\nhi\r\n` +
        `PUB foo rep 8\r\n`,
    ),
    Buffer.from([0, 9, 34, 0xc3, 0xa9, 0xff, 92, 122]),
    Buffer.from(`\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\nUNSUB 1\r\nPING\r\nFOO\r\n`),
  ]);
  const TRACE = [
    `Client connection created`,
    `<<- [CONNECT {"verbose":true,"pedantic":false,"headers":true,"protocol":1,"pass":"[REDACTED]"}]`,
    `->> [OK]`,
    `<<- [SUB foo 1]`,
    `->> [OK]`,
    `<<- [SUB bar q 2]`,
    `->> [OK]`,
    `<<- [SUB a 3]`,
    `->> [OK]`,
    `<<- [UNSUB 3 1]`,
    `->> [OK]`,
    `<<- [PUB a 2]`,
    `<<- MSG_PAYLOAD: ["hi"]`,
    `->> [OK]`,
    `Auto-unsubscribe limit of 1 reached for sid '3'`,
    `->> [MSG a 3 2]`,
    `<-> [DELSUB 3]`,
    `<<- [PUB foo rep 8]`,
    `<<- MSG_PAYLOAD: ["\\x00\\t\\"é\\xff\\\\z"]`,
    `->> [OK]`,
    `->> [MSG foo 1 rep 8]`,
    `<<- [HPUB foo 12 14]`,
    `<<- MSG_PAYLOAD: ["NATS/1.0\\r\\n\\r\\nhi"]`,
    `->> [OK]`,
    `->> [HMSG foo 1 12 14]`,
    `<<- [UNSUB 1]`,
    `->> [OK]`,
    `<-> [DELSUB 1]`,
    `<<- [PING]`,
    `->> [PONG]`,
    `->> [-ERR Unknown Protocol Operation]`,
  ];

  for (const kind of ["shoal", "go"] as const) {
    test(
      `-DV trace lines as nats-server writes them (${kind})`,
      {
        skip: kind === "go" && !goServerPath() ? "the Go nats-server is not installed" : false,
      },
      async (t) => {
        const srv = kind === "go" ? await runGoServer(["-DV"]) : await server(t, ["-DV"]);
        t.after(() => srv.stop("SIGKILL"));
        const c = await RawConn.connect(srv.port);
        t.after(() => c.close());
        await c.waitFor(/^INFO /);
        c.send(TRACED_SESSION);
        await c.waitClosed();
        // After the close: the subscription left (sid 2) is traced as removed.
        const out = await checkFor(5000, () => {
          const o = srv.output();
          return /Client connection closed[^]*DELSUB 2\]/.test(o) ? o : "";
        });
        const cid = /- (cid:\d+) - Client connection created/.exec(out)![1]!;
        const lines = out
          .split("\n")
          .filter((l) => l.includes(` - ${cid} - `) && /\[(TRC|DBG)\]/.test(l))
          // Known difference: nats-server logs "[ERR] Client parser ERROR, state=N, i=N: proto=..."
          // with its own parser's state numbers; shoal a "[DBG] parser error".
          .filter((l) => !l.endsWith(" - parser error"))
          .map((l) => l.slice(l.indexOf(` - ${cid} - `) + cid.length + 6));
        const closed = lines.findIndex((l) => l.startsWith("Client connection closed"));
        assert.deepEqual(lines.slice(0, TRACE.length), TRACE);
        assert.equal(lines[closed], "Client connection closed: Protocol Violation");
        assert.deepEqual(lines.slice(closed + 1), ["<-> [DELSUB 2]"]);
      },
    );
  }

  test("a machine with only loopback: nothing advertised, the error nats-server logs", async (t) => {
    // A network namespace of its own (unshare -rn) has only lo.
    const probe = spawnSync("unshare", ["-rn", "true"]);
    if (probe.status !== 0) {
      t.skip("unshare -rn is not available here");
      return;
    }
    const p = spawn(
      "unshare",
      ["-rn", process.execPath, SHOAL_BIN, "nats-server", "-a", "0.0.0.0", "-p", "-1"],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    t.after(() => p.kill("SIGKILL"));
    let out = "";
    p.stderr.on("data", (d: Buffer) => (out += d.toString()));
    await checkFor(15_000, () => /Server is ready/.test(out));
    assert.match(
      out,
      /\[ERR\] Address "0\.0\.0\.0" can not be resolved properly\n.*\[INF\] Server is ready/,
    );
  });

  test("SIGTERM exits 0; the PID file is written and removed", async (t) => {
    const dir = tempDir(t);
    const pidFile = join(dir, "shoal.pid");
    const srv = await server(t, ["-P", pidFile]);
    assert.equal(readFileSync(pidFile, "utf8").trim(), String(srv.proc.pid));
    assert.equal(await srv.stop("SIGTERM"), 0);
    // As nats-server 2.9: the trapped signal is a debug line, the shutdown a notice.
    assert.doesNotMatch(srv.output(), /Trapped/);
    assert.match(srv.output(), /\[INF\] Initiating Shutdown\.\.\.\n/);
    assert.match(srv.output(), /\[INF\] Server Exiting\.\.\n$/);
    assert.equal(existsSync(pidFile), false, "PID file removed on exit");
  });

  for (const kind of ["shoal", "go"] as const) {
    test(
      `${kind}: a reload refuses a new port and applies new users, in nats-server's words`,
      {
        skip: kind === "go" && !goServerPath() ? "the Go nats-server is not installed" : false,
      },
      async (t) => {
        const dir = tempDir(t);
        const conf = join(dir, "reload.conf");
        const [port, other] = [await freePort(), await freePort()];
        const users = (names: string[]) =>
          `authorization { users [ ${names.map((n) => `{user: ${n}, password: ${n}}`).join(", ")} ] }\n`;
        writeFileSync(conf, `listen: "127.0.0.1:${port}"\n${users(["a"])}`);
        const args = ["-c", conf];
        const srv = kind === "go" ? await runGoServer(args) : await server(t, args);
        t.after(() => srv.stop("SIGKILL"));
        writeFileSync(conf, `listen: "127.0.0.1:${other}"\n${users(["a"])}`);
        srv.proc.kill("SIGHUP");
        const refused = `[ERR] Failed to reload server configuration: config reload not supported for Port: old=${port}, new=${other}\n`;
        await checkFor(5000, () => srv.output().includes(refused)).catch(() =>
          assert.fail(srv.output()),
        );
        writeFileSync(conf, `listen: "127.0.0.1:${port}"\n${users(["a", "b"])}`);
        srv.proc.kill("SIGHUP");
        await checkFor(5000, () =>
          srv.output().includes("[INF] Reloaded server configuration\n"),
        ).catch(() => assert.fail(srv.output()));
        assert.ok(srv.output().includes("[INF] Reloaded: authorization users\n"), srv.output());
      },
    );
  }

  test("SIGHUP and --signal reload re-read the config: users, permissions, log levels", async (t) => {
    const dir = tempDir(t);
    const pidFile = join(dir, "shoal.pid");
    const conf = join(dir, "reload.conf");
    const users = (extra: string) =>
      `authorization { users [\n` +
      `  { user: a, password: a, permissions { publish: "x.>" } }\n${extra}] }\n`;
    writeFileSync(conf, `port: -1\n${users(`  { user: b, password: b }\n`)}`);
    const srv = await server(t, ["-c", conf, "-P", pidFile]);
    const connect = async (user: string) => {
      const c = await RawConn.connect(srv.port);
      t.after(() => c.close());
      c.send(`CONNECT {"verbose":false,"user":"${user}","pass":"${user}"}\r\nPING\r\n`);
      await c.waitFor(/PONG\r\n/);
      return c;
    };
    const a = await connect("a");
    const b = await connect("b");

    // A change that cannot be applied: refused with nats-server's words, nothing applied.
    writeFileSync(conf, `port: 4999\n${users("")}`);
    srv.proc.kill("SIGHUP");
    await checkFor(5000, () => /Failed to reload/.test(srv.output()));
    assert.match(
      srv.output(),
      /\[ERR\] Failed to reload server configuration: config reload not supported for Port: old=-1, new=4999\n/,
    );
    b.send("PING\r\n");
    await b.waitFor(/PONG\r\n[^]*PONG\r\n/);

    // b removed, a may now publish to y, debug and trace on: applied to live connections.
    writeFileSync(
      conf,
      `port: -1\ndebug: true\ntrace: true\nmax_payload: 2000\nauthorization { users [\n` +
        `  { user: a, password: a, permissions { publish: "y" } }\n] }\n`,
    );
    const r = await shoal("nats-server", "--signal", `reload=${pidFile}`);
    assert.equal(r.code, 0, r.stderr);
    await b.waitFor(/-ERR 'Authorization Violation'\r\n/);
    await b.waitClosed();
    await checkFor(5000, () => /Reloaded server configuration/.test(srv.output()));
    assert.match(srv.output(), /\[INF\] Reloaded: debug = true\n/);
    assert.match(srv.output(), /\[INF\] Reloaded: authorization users\n/);
    assert.match(srv.output(), /\[INF\] Reloaded: max_payload = 2000\n/);
    a.send("PUB x.1 0\r\n\r\nPUB y 0\r\n\r\nPING\r\n");
    await a.waitFor(/PONG\r\n[^]*PONG\r\n/);
    assert.match(a.data, /-ERR 'Permissions Violation for Publish to "x\.1"'/);
    assert.doesNotMatch(a.data, /Publish to "y"/);
    // Trace is on now.
    await checkFor(5000, () => /\[TRC\] .* - <<- \[PUB y 0\]/.test(srv.output()));
  });

  test("--signal ldm=PIDFILE puts the server in lame duck mode", async (t) => {
    const dir = tempDir(t);
    const pidFile = join(dir, "shoal.pid");
    const conf = join(dir, "ldm.conf");
    writeFileSync(conf, `lame_duck_duration: "500ms"\nlame_duck_grace_period: "100ms"\n`);
    const srv = await server(t, ["-c", conf, "-p", "-1", "-P", pidFile]);
    const c = await RawConn.connect(srv.port);
    t.after(() => c.close());
    c.send("CONNECT {}\r\nPING\r\n");
    await c.waitFor(/PONG\r\n/);
    const exited = new Promise<number | null>((r) => srv.proc.once("exit", (code) => r(code)));

    const r = await shoal("nats-server", "--signal", `ldm=${pidFile}`);
    assert.equal(r.code, 0, r.stderr);
    await c.waitFor(/INFO \{[^\r]*"ldm":true/);
    assert.equal(await exited, 0);
    assert.match(srv.output(), /\[INF\] Entering lame duck mode, stop accepting new clients/);
    assert.match(srv.output(), /\[INF\] Server Exiting\.\./);
    assert.equal(existsSync(pidFile), false);

    const none = await shoal("nats-server", "--signal", `ldm=${pidFile}`);
    assert.notEqual(none.code, 0, "no PID file to signal");
  });
});

test("shoal nats-server loads the one-file bundle unless a later tsc made it stale", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "shoal-bundle-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const compiled = join(dir, "nats-server.js");
  const bundle = join(dir, "nats-server.bundle.cjs");
  assert.equal(natsServerBundle(dir), null, "neither");
  writeFileSync(compiled, "");
  assert.equal(natsServerBundle(dir), null, "no bundle");
  writeFileSync(bundle, "");
  utimesSync(compiled, 1000, 1000);
  utimesSync(bundle, 2000, 2000);
  assert.equal(natsServerBundle(dir), bundle, "bundle newer");
  utimesSync(compiled, 3000, 3000);
  assert.equal(natsServerBundle(dir), null, "compiled rewritten after the bundle");
});

test("shoal nats-server at rest (a client came and went) loads neither node:crypto, perf_hooks nor the ES module loader", async (t) => {
  // node:crypto costs a server at rest 0.7 MiB and perf_hooks 0.25 MiB (docs/benchmarks.md):
  // only NKeys, JWTs, passwords and TLS need crypto (src/lib/lazy.ts). Node's ES module loader
  // costs it 1.3 MiB: the server is a CommonJS bundle (src/cli/entry.cts). The preload (CommonJS,
  // so that it starts no ES module loader itself) writes the built-in modules loaded when the
  // server exits.
  const dir = tempDir(t);
  const list = join(dir, "modules.txt");
  const preload = join(dir, "preload.cjs");
  writeFileSync(
    preload,
    `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(list)}, process.moduleLoadList.join("\\n")));`,
  );
  const port = await freePort();
  const p = spawn(
    process.execPath,
    ["--require", preload, SHOAL_BIN, "nats-server", "-a", "127.0.0.1", "-p", String(port)],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<void>((r) => p.once("close", () => r()));
  t.after(() => {
    p.kill("SIGKILL");
    return closed;
  });
  const c = await checkFor(10_000, () => RawConn.connect(port), 50);
  await c.waitFor(/^INFO .*\r\n/);
  c.send("CONNECT {}\r\nPING\r\n");
  await c.waitFor(/PONG\r\n/);
  c.close();
  p.kill("SIGTERM");
  await closed;
  const loaded = readFileSync(list, "utf8").split("\n");
  assert.ok(loaded.includes("NativeModule net"), `no module list? ${stderr}\n${loaded.join(" ")}`);
  const bad = loaded.filter((m) =>
    /^NativeModule (crypto|perf_hooks|internal\/modules\/esm\/loader)$/.test(m),
  );
  assert.deepEqual(bad, [], `loaded at rest: ${bad.join(", ")}`);
});

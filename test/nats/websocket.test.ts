// NATS over WebSocket: the official nats.ws client (with the `ws` package as its WebSocket, as
// nats.ws documents for Node) and TCP clients in one subject space, compression, the Origin
// checks and refused handshakes, the websocket block's own authorization, the refused configs,
// and a differential against the Go nats-server for the upgrade response and the first frame.

import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createConnection } from "node:net";
import { createRequire } from "node:module";
import { constants as zlib, inflateRawSync } from "node:zlib";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebSocket } from "ws";
import { connect as wsConnect, type NatsConnection as WsConnection } from "nats.ws";
import { StringCodec } from "nats";
import {
  checkFor,
  goServerPath,
  runGoServer,
  runServer,
  useClient,
  useServer,
  type RunningServer,
} from "../helpers/servers.js";
import { defer } from "../helpers/defer.js";
import {
  applyConfig,
  defaultOptions,
  defaultWebsocketOptions,
  validateOptions,
  type Options,
  type WebsocketOptions,
} from "../../src/nats/options.js";
import { parseConfig } from "../../src/nats/conf.js";
import { connz, varz } from "../../src/nats/monitor.js";
import type { Server } from "../../src/nats/server.js";

// nats.ws dials with the global WebSocket, which Node 20 lacks: `ws` stands in for it.
(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;

const sc = StringCodec();

async function useWsServer(
  t: TestContext,
  ws: Partial<WebsocketOptions> = {},
  overrides: Partial<Options> = {},
): Promise<Server> {
  return useServer(t, {
    websocket: { ...defaultWebsocketOptions(), host: "127.0.0.1", port: -1, noTls: true, ...ws },
    ...overrides,
  });
}

async function useWsClient(
  t: TestContext,
  s: Server,
  opts: Record<string, unknown> = {},
): Promise<WsConnection> {
  const nc = await wsConnect({ servers: s.websocketUrls()[0]!, ...opts });
  defer(t, () => nc.close());
  return nc;
}

interface HttpReply {
  status: number;
  head: string;
  /** Bytes after the header block (the first WebSocket frames). */
  rest: Buffer;
}

/** Sends an upgrade request by hand and collects the answer for `ms` or until the close. */
function upgrade(
  port: number,
  extra: Record<string, string> = {},
  opts: { method?: string; omit?: string[]; until?: (b: Buffer) => boolean } = {},
): Promise<HttpReply> {
  const headers: Record<string, string> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    ...extra,
  };
  for (const h of opts.omit ?? []) delete headers[h];
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
  return new Promise((resolve, reject) => {
    const s = createConnection({ port, host: "127.0.0.1" });
    let buf = Buffer.alloc(0);
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      const i = buf.indexOf("\r\n\r\n");
      if (i < 0) {
        reject(new Error(`no HTTP answer: ${JSON.stringify(buf.toString())}`));
        return;
      }
      const head = buf.subarray(0, i).toString("latin1");
      resolve({ status: Number(head.split(" ")[1]), head, rest: buf.subarray(i + 4) });
    };
    const timer = setTimeout(done, 5000);
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const i = buf.indexOf("\r\n\r\n");
      if (i >= 0 && (opts.until ?? (() => true))(buf.subarray(i + 4))) done();
    });
    s.on("close", done);
    s.on("error", () => {});
    s.write(`${opts.method ?? "GET"} / HTTP/1.1\r\n${lines.join("")}\r\n`);
  });
}

/** A whole first frame has arrived. */
function hasFrame(b: Buffer): boolean {
  if (b.length < 2) return false;
  const len = b[1]! & 0x7f;
  if (len === 126) return b.length >= 4 && b.length >= 4 + b.readUInt16BE(2);
  return b.length >= 2 + len;
}

/** The first server frame: its first byte (FIN, RSV1, opcode) and payload, inflated if RSV1. */
function firstFrame(b: Buffer): { b0: number; text: string } {
  const len7 = b[1]! & 0x7f;
  const [start, len] = len7 === 126 ? [4, b.readUInt16BE(2)] : [2, len7];
  let payload = b.subarray(start, start + len);
  if (b[0]! & 0x40) {
    payload = inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 255, 255])]), {
      finishFlush: zlib.Z_SYNC_FLUSH,
    });
  }
  return { b0: b[0]!, text: payload.toString("latin1") };
}

/** A raw `ws` client: the frames' bytes on the wire are visible through its socket. */
async function rawWs(t: TestContext, url: string, opts: WebSocket.ClientOptions = {}) {
  const ws = new WebSocket(url, opts);
  defer(t, () => ws.terminate());
  let text = "";
  const closed = new Promise<{ code: number; reason: string }>((r) =>
    ws.on("close", (code, reason) => r({ code, reason: reason.toString() })),
  );
  ws.on("message", (d: Buffer) => (text += d.toString("latin1")));
  ws.on("error", () => {});
  await new Promise((r, j) => {
    ws.once("open", r);
    ws.once("error", j);
  });
  return { ws, closed, received: () => text };
}

describe("NATS over WebSocket", () => {
  test("WebSocket and TCP clients share one subject space: pub/sub and request/reply", async (t) => {
    const s = await useWsServer(t);
    const wnc = await useWsClient(t, s);
    const tnc = await useClient(t, s.port);

    const toWs = wnc.subscribe("to.ws", { max: 2 });
    const toTcp = tnc.subscribe("to.tcp", { max: 2 });
    wnc.subscribe("svc.ws", {
      callback: (_e, m) => m.respond(sc.encode(`ws:${sc.decode(m.data)}`)),
    });
    tnc.subscribe("svc.tcp", {
      callback: (_e, m) => m.respond(sc.encode(`tcp:${sc.decode(m.data)}`)),
    });
    await wnc.flush();
    await tnc.flush();

    const big = "x".repeat(200_000); // spans many frames and reads
    tnc.publish("to.ws", sc.encode("hello ws"));
    tnc.publish("to.ws", sc.encode(big));
    wnc.publish("to.tcp", sc.encode("hello tcp"));
    wnc.publish("to.tcp", sc.encode(big));
    const got: string[] = [];
    for await (const m of toWs) got.push(sc.decode(m.data));
    for await (const m of toTcp) got.push(sc.decode(m.data));
    assert.deepEqual(got, ["hello ws", big, "hello tcp", big]);

    const r1 = await wnc.request("svc.tcp", sc.encode("a"), { timeout: 2000 });
    const r2 = await tnc.request("svc.ws", sc.encode("b"), { timeout: 2000 });
    assert.equal(sc.decode(r1.data), "tcp:a");
    assert.equal(sc.decode(r2.data), "ws:b");
  });

  test("/connz lists WebSocket clients; /varz has the websocket section; ws:// URLs", async (t) => {
    const s = await useWsServer(t, { compression: true, sameOrigin: true });
    await useWsClient(t, s, { name: "over-ws" });
    await useClient(t, s.port, { name: "over-tcp" });
    const ws = s.websocket!;
    assert.deepEqual(s.websocketUrls(), [`ws://127.0.0.1:${ws.port}`]);
    assert.deepEqual(varz(s)["websocket"], {
      host: "127.0.0.1",
      port: ws.port,
      no_tls: true,
      same_origin: true,
      compression: true,
    });
    const conns = connz(s, {})["connections"] as Array<Record<string, unknown>>;
    assert.deepEqual(conns.map((c) => c["name"]).sort(), ["over-tcp", "over-ws"]);
  });

  test("compression: negotiated when both ask, and large frames shrink on the wire", async (t) => {
    const payload = "0".repeat(20_000);
    const session = `CONNECT {"verbose":false}\r\nSUB z 1\r\nPUB z ${payload.length}\r\n${payload}\r\nPING\r\n`;
    const run = async (serverCompresses: boolean, clientAsks: boolean) => {
      const s = await useWsServer(t, { compression: serverCompresses });
      const c = await rawWs(t, s.websocketUrls()[0]!, { perMessageDeflate: clientAsks });
      c.ws.send(Buffer.from(session));
      await checkFor(5000, () => c.received().includes("PONG\r\n"));
      assert.ok(c.received().includes(`MSG z 1 ${payload.length}\r\n${payload}\r\n`));
      return {
        extensions: c.ws.extensions,
        wire: (c.ws as unknown as { _socket: { bytesRead: number } })._socket.bytesRead,
      };
    };
    const both = await run(true, true);
    assert.equal(both.extensions, "permessage-deflate");
    assert.ok(both.wire < 5000, `compressed: ${both.wire} bytes read`);
    for (const [srv, cli] of [
      [false, true],
      [true, false],
    ] as const) {
      const r = await run(srv, cli);
      assert.equal(r.extensions, "");
      assert.ok(r.wire > 20_000, `uncompressed: ${r.wire} bytes read`);
    }
    // nats-server's answer: no context takeover either way, whatever the client offered.
    const s = await useWsServer(t, { compression: true });
    const r = await upgrade(s.websocket!.port, {
      "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
    });
    assert.match(
      r.head,
      /\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover$/,
    );
  });

  test("same_origin: a foreign Origin is refused with 403, no Origin is accepted", async (t) => {
    const s = await useWsServer(t, { sameOrigin: true });
    const port = s.websocket!.port;
    assert.equal((await upgrade(port, { Origin: `http://127.0.0.1:${port}` })).status, 101);
    assert.equal((await upgrade(port)).status, 101);
    const bad = await upgrade(port, { Origin: "http://evil.example" });
    assert.equal(bad.status, 403);
    assert.match(bad.head, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.match(bad.head, /\r\nSec-Websocket-Version: 13\r\n/);
    assert.equal(bad.rest.toString(), "Forbidden\n");
    // The official client is refused too.
    await assert.rejects(
      wsConnect({
        servers: s.websocketUrls()[0]!,
        reconnect: false,
        wsFactory: (u: string) => ({
          socket: new WebSocket(u, { origin: "http://evil.example" }) as never,
          encrypted: false,
        }),
      } as never),
    );
  });

  test("allowed_origins: scheme, host and port must match one of the list", async (t) => {
    const s = await useWsServer(t, { allowedOrigins: ["http://good.example:8080"] });
    const port = s.websocket!.port;
    const status = async (origin: string) => (await upgrade(port, { Origin: origin })).status;
    assert.equal(await status("http://good.example:8080"), 101);
    assert.equal(await status("http://GOOD.example:8080"), 101);
    assert.equal(await status("https://good.example:8080"), 403);
    assert.equal(await status("http://good.example"), 403);
    assert.equal(await status("http://other.example:8080"), 403);
  });

  test("bad upgrade requests get nats-server's statuses", async (t) => {
    const s = await useWsServer(t);
    const port = s.websocket!.port;
    assert.equal((await upgrade(port, {}, { method: "POST" })).status, 405);
    assert.equal((await upgrade(port, {}, { omit: ["Sec-WebSocket-Key"] })).status, 400);
    assert.equal((await upgrade(port, { "Sec-WebSocket-Version": "12" })).status, 400);
    assert.equal((await upgrade(port, {}, { omit: ["Upgrade", "Connection"] })).status, 400);
  });

  test("the websocket block's authorization applies to WebSocket clients only", async (t) => {
    const s = await useWsServer(t, { username: "web", password: "pw" });
    const url = s.websocketUrls()[0]!;
    // TCP clients need nothing.
    await useClient(t, s.port);
    const nc = await useWsClient(t, s, { user: "web", pass: "pw" });
    await nc.flush();
    // A wrong password: -ERR, then a close frame with nats-server's status and reason.
    const c = await rawWs(t, url);
    c.ws.send(Buffer.from('CONNECT {"verbose":false,"user":"web","pass":"no"}\r\nPING\r\n'));
    const closed = await c.closed;
    assert.match(c.received(), /-ERR 'Authorization Violation'\r\n/);
    assert.deepEqual(closed, { code: 1008, reason: "Authorization Violation" });
  });

  test("config: the websocket block is read and checked as nats-server checks it", () => {
    const load = (text: string) => {
      const opts = defaultOptions();
      applyConfig(opts, parseConfig(text), () => {});
      return validateOptions(opts);
    };
    const ok = load(
      `websocket { listen: "127.0.0.1:-1", no_tls: true, compression: true, same_origin: true,
        allowed_origins: ["http://a.example"], handshake_timeout: "3s", advertise: "ws.example:443" }`,
    );
    assert.deepEqual(ok.websocket, {
      ...defaultWebsocketOptions(),
      host: "127.0.0.1",
      port: -1,
      noTls: true,
      compression: true,
      sameOrigin: true,
      allowedOrigins: ["http://a.example"],
      handshakeTimeoutMs: 3000,
      advertise: "ws.example:443",
    });
    assert.equal(load("websocket { no_tls: true }").websocket, null, "no port: no listener");
    assert.throws(() => load("websocket { port: -1 }"), /^.*websocket requires TLS configuration$/);
    assert.throws(
      () => load('websocket { port: -1, tls { cert_file: "c.pem", key_file: "k.pem" } }'),
      /websocket: tls \{\} is not supported by shoal yet; set no_tls: true/,
    );
    assert.throws(
      () => load("websocket { port: -1, no_tls: true, bogus: 1 }"),
      /unknown field "bogus" in websocket/,
    );
    assert.throws(
      () =>
        load(
          "authorization { users: [{user: a, password: b}] }\nwebsocket { port: -1, no_tls: true, authorization { token: t } }",
        ),
      /websocket authentication token not compatible with presence of users\/nkeys/,
    );
    assert.throws(
      () => load("websocket { port: -1, no_tls: true, no_auth_user: ghost }"),
      /no_auth_user: "ghost" not present as user/,
    );
  });

  test("shoal nats-server -c refuses a websocket block without TLS or no_tls", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "shoal-ws-"));
    defer(t, () => rmSync(dir, { recursive: true, force: true }));
    const conf = join(dir, "ws.conf");
    writeFileSync(conf, "port: -1\nwebsocket { port: -1 }\n");
    await assert.rejects(runServer(["-c", conf]), /websocket requires TLS configuration/);
  });
});

// ---- differential against the Go nats-server ------------------------------------------------

const goMissing = goServerPath() === null;

/** INFO fields that differ between servers and runs. */
const VOLATILE_INFO = [
  "server_id",
  "server_name",
  "version",
  "go",
  "git_commit",
  "port",
  "client_id",
];

function normalisedInfo(text: string): Record<string, unknown> {
  assert.match(text, /^INFO \{.*\} \r\n$/);
  const info = JSON.parse(text.slice(5)) as Record<string, unknown>;
  for (const k of VOLATILE_INFO) delete info[k];
  return info;
}

describe(
  "NATS over WebSocket, compared with the Go nats-server",
  { skip: goMissing && !process.env["CI"] },
  () => {
    async function both(
      t: TestContext,
      conf: string,
    ): Promise<Array<{ name: string; ws: number }>> {
      const dir = mkdtempSync(join(tmpdir(), "shoal-wsdiff-"));
      defer(t, () => rmSync(dir, { recursive: true, force: true }));
      const file = join(dir, "ws.conf");
      writeFileSync(file, conf);
      const out: Array<{ name: string; ws: number }> = [];
      for (const [name, run] of [
        ["shoal", runServer],
        ["go", runGoServer],
      ] as const) {
        const srv: RunningServer = await run(["-c", file]);
        defer(t, () => srv.stop());
        const m = /Listening for websocket clients on ws:\/\/[^\s]*:(\d+)/.exec(srv.output());
        assert.ok(m, `${name}: no websocket listener in\n${srv.output()}`);
        out.push({ name, ws: Number(m[1]) });
      }
      return out;
    }

    test("upgrade responses, refusals and the first frame (INFO) match", async (t) => {
      const servers = await both(
        t,
        'port: -1\nwebsocket { port: -1, no_tls: true, compression: true, allowed_origins: ["http://ok.example"] }\n',
      );
      const answers = [];
      for (const { name, ws } of servers) {
        const plain = await upgrade(ws, {}, { until: hasFrame });
        const deflate = await upgrade(
          ws,
          { "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits" },
          { until: hasFrame },
        );
        const allowed = await upgrade(ws, { Origin: "http://ok.example" }, { until: hasFrame });
        const refused = await upgrade(ws, { Origin: "http://evil.example" });
        const badMethod = await upgrade(ws, {}, { method: "POST" });
        const noKey = await upgrade(ws, {}, { omit: ["Sec-WebSocket-Key"] });
        const noDate = (r: HttpReply) => [
          r.head.replace(/\r\nDate: [^\r]*/, ""),
          r.rest.toString(),
        ];
        const frame = (r: HttpReply) => {
          const f = firstFrame(r.rest);
          return { b0: f.b0, info: normalisedInfo(f.text) };
        };
        answers.push({
          name,
          heads: [plain.head, deflate.head, allowed.head],
          frames: [frame(plain), frame(deflate), frame(allowed)],
          refusals: [noDate(refused), noDate(badMethod), noDate(noKey)],
        });
      }
      const [shoal, go] = answers;
      assert.deepEqual(shoal!.heads, go!.heads);
      assert.deepEqual(shoal!.frames, go!.frames);
      assert.deepEqual(shoal!.refusals, go!.refusals);
    });
  },
);

test("client frames are unmasked by bufferutil's native code, which ws loads when it is installed", () => {
  // Without it ws unmasks in a JavaScript byte loop: a 1 KiB pub→sub over WebSocket cost the
  // server 2.9 µs per message instead of 1.4 (docs/benchmarks.md).
  const fromWs = createRequire(createRequire(import.meta.url).resolve("ws"));
  const native = fromWs("bufferutil") as { unmask(buf: Buffer, mask: Buffer): void };
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const data = Buffer.from(Array.from({ length: 1027 }, (_, i) => (i * 7) & 0xff));
  const masked = Buffer.from(data.map((b, i) => b ^ mask[i & 3]!));
  native.unmask(masked, mask);
  assert.deepEqual(masked, data);
});

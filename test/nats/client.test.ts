// Integration tests of shoal's message server with the official `nats` client (nats.js v2):
// publish/subscribe, wildcards, queue groups, request/reply, headers, no-responders, drain,
// flush, max payload, echo, auto-unsubscribe, and reconnecting after a server restart.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import {
  StringCodec,
  headers,
  Empty,
  ErrorCode,
  type Msg,
  type NatsError,
  type Subscription as NatsSubscription,
} from "nats";
import {
  checkFor,
  RawConn,
  runServer,
  type RunningServer,
  useServer,
  useClient,
} from "../helpers/servers.js";
import { defer } from "../helpers/defer.js";

const sc = StringCodec();

const server = useServer;

const client = useClient;

/** Collects the payloads of the first n messages of a subscription (or fewer if it ends). */
async function collect(sub: NatsSubscription, n: number, ms = 3000): Promise<string[]> {
  const got: string[] = [];
  const timer = setTimeout(() => sub.unsubscribe(), ms);
  try {
    for await (const m of sub) {
      got.push(sc.decode(m.data));
      if (got.length >= n) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return got;
}

/** A port that was free a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const l = createServer();
    l.once("error", reject);
    l.listen({ host: "127.0.0.1", port: 0 }, () => {
      const addr = l.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      l.close(() => resolve(port));
    });
  });
}

describe("nats.js client against shoal", () => {
  test("publish and subscribe", async (t) => {
    const s = await server(t);
    const sub = await client(t, s.port);
    const pub = await client(t, s.port);
    const it = sub.subscribe("greet");
    await sub.flush();
    for (let i = 0; i < 5; i++) pub.publish("greet", sc.encode(`hello ${i}`));
    assert.deepEqual(
      await collect(it, 5),
      [0, 1, 2, 3, 4].map((i) => `hello ${i}`),
    );
    assert.equal(s.inMsgs, 5);
    assert.equal(s.outMsgs, 5);
  });

  test("wildcards * and >", async (t) => {
    const s = await server(t);
    const nc = await client(t, s.port);
    const star = nc.subscribe("foo.*");
    const gt = nc.subscribe("foo.>");
    await nc.flush();
    for (const subj of ["foo.bar", "foo.bar.baz", "foo", "bar.foo", "foo.baz"]) {
      nc.publish(subj, sc.encode(subj));
    }
    await nc.flush();
    assert.deepEqual(await collect(star, 2), ["foo.bar", "foo.baz"]);
    assert.deepEqual(await collect(gt, 3), ["foo.bar", "foo.bar.baz", "foo.baz"]);
  });

  test("queue group: each message goes to exactly one member", async (t) => {
    const s = await server(t);
    const N = 300;
    const members = await Promise.all([0, 1, 2].map(() => client(t, s.port)));
    const seen: number[][] = [[], [], []];
    members.forEach((nc, i) =>
      nc.subscribe("work", {
        queue: "workers",
        callback: (_err, m) => seen[i]!.push(Number(sc.decode(m.data))),
      }),
    );
    // A plain subscriber on the same subject still gets every message.
    const watcher = await client(t, s.port);
    let watched = 0;
    watcher.subscribe("work", { callback: () => watched++ });
    await Promise.all([...members, watcher].map((nc) => nc.flush()));
    const pub = await client(t, s.port);
    for (let i = 0; i < N; i++) pub.publish("work", sc.encode(String(i)));
    await pub.flush();
    await checkFor(3000, () => seen.flat().length >= N && watched >= N);
    await Promise.all([...members, watcher].map((nc) => nc.flush()));
    const all = seen.flat().sort((a, b) => a - b);
    assert.equal(all.length, N, "N deliveries in total");
    assert.deepEqual(
      all,
      Array.from({ length: N }, (_, i) => i),
      "every message once",
    );
    for (const got of seen) assert.ok(got.length > 0, "each member got some messages");
    assert.equal(watched, N);
  });

  test("request and reply", async (t) => {
    const s = await server(t);
    const responder = await client(t, s.port);
    responder.subscribe("echo", {
      callback: (_err, m) => m.respond(sc.encode(`re: ${sc.decode(m.data)}`)),
    });
    await responder.flush();
    const nc = await client(t, s.port);
    const reply = await nc.request("echo", sc.encode("ping"), { timeout: 2000 });
    assert.equal(sc.decode(reply.data), "re: ping");
    // The old-style request (a reply subject per request, not the shared inbox) works too.
    const reply2 = await nc.request("echo", sc.encode("again"), { timeout: 2000, noMux: true });
    assert.equal(sc.decode(reply2.data), "re: again");
  });

  test("headers round trip (HPUB / HMSG)", async (t) => {
    const s = await server(t);
    const nc = await client(t, s.port);
    assert.equal(nc.info?.headers, true);
    const sub = nc.subscribe("hdr", { max: 1 });
    await nc.flush();
    const h = headers();
    h.set("X-Trace", "abc 123");
    h.append("X-Multi", "one");
    h.append("X-Multi", "two");
    nc.publish("hdr", sc.encode("body"), { headers: h });
    let got: Msg | undefined;
    for await (const m of sub) got = m;
    assert.ok(got, "message received");
    assert.equal(sc.decode(got.data), "body");
    assert.equal(got.headers?.get("X-Trace"), "abc 123");
    assert.deepEqual(got.headers?.values("X-Multi"), ["one", "two"]);
    // Headers-only message with an empty body.
    const sub2 = nc.subscribe("hdr2", { max: 1 });
    const h2 = headers();
    h2.set("Only", "headers");
    nc.publish("hdr2", Empty, { headers: h2 });
    for await (const m of sub2) {
      assert.equal(m.data.length, 0);
      assert.equal(m.headers?.get("Only"), "headers");
    }
  });

  test("request with no responders fails with 503", async (t) => {
    const s = await server(t);
    const nc = await client(t, s.port);
    // A 503, not a timeout (which would reject with ErrorCode.Timeout).
    await assert.rejects(
      nc.request("nobody.home", Empty, { timeout: 5000 }),
      (err: NatsError) => err.code === ErrorCode.NoResponders && err.code === "503",
    );
    await assert.rejects(
      nc.request("nobody.home", Empty, { timeout: 5000, noMux: true }),
      (err: NatsError) => err.code === "503",
    );
  });

  test("drain delivers what is pending", async (t) => {
    const s = await server(t);
    const nc = await client(t, s.port);
    const pub = await client(t, s.port);
    // Subscription drain: all published messages (flushed by the publisher) arrive.
    const got: string[] = [];
    const sub = nc.subscribe("d1", { callback: (_e, m) => got.push(sc.decode(m.data)) });
    await nc.flush();
    for (let i = 0; i < 100; i++) pub.publish("d1", sc.encode(String(i)));
    await pub.flush();
    await sub.drain();
    assert.equal(got.length, 100);
    assert.ok(sub.isClosed());
    await checkFor(2000, () => s.sublist.count() === 0);

    // Connection drain: pending messages on all subscriptions are delivered, then it closes.
    const a: string[] = [];
    const b: string[] = [];
    nc.subscribe("d2.a", { callback: (_e, m) => a.push(sc.decode(m.data)) });
    nc.subscribe("d2.b", { callback: (_e, m) => b.push(sc.decode(m.data)) });
    await nc.flush();
    for (let i = 0; i < 50; i++) {
      pub.publish("d2.a", sc.encode(String(i)));
      pub.publish("d2.b", sc.encode(String(i)));
    }
    await pub.flush();
    const closed = nc.closed();
    await nc.drain();
    assert.equal(await closed, undefined, "closed without error");
    assert.equal(a.length, 50);
    assert.equal(b.length, 50);
    assert.ok(nc.isClosed());
    await checkFor(2000, () => s.clients.size === 1);
  });

  test("flush round trips through the server", async (t) => {
    const s = await server(t);
    const nc = await client(t, s.port);
    nc.subscribe("f");
    await nc.flush();
    // After a flush the server has processed the SUB.
    assert.equal(s.sublist.count(), 1);
    for (let i = 0; i < 10; i++) nc.publish("f", sc.encode("x"));
    await nc.flush();
    assert.equal(s.inMsgs, 10);
    const rtt = await nc.rtt();
    assert.ok(rtt >= 0);
  });

  test("max_payload: the client refuses bigger messages, the server enforces it", async (t) => {
    const s = await server(t, { maxPayload: 1024 });
    const nc = await client(t, s.port);
    assert.equal(nc.info?.max_payload, 1024);
    const sub = nc.subscribe("big");
    await nc.flush();
    nc.publish("big", new Uint8Array(1024));
    // nats.js checks INFO's max_payload and throws MAX_PAYLOAD_EXCEEDED before sending.
    assert.throws(
      () => nc.publish("big", new Uint8Array(1025)),
      (err: NatsError) => err.code === ErrorCode.MaxPayloadExceeded,
    );
    await nc.flush();
    const got = await collect(sub, 1);
    assert.equal(got.length, 1);
    assert.equal(s.inMsgs, 1, "only the allowed message reached the server");
    assert.equal(nc.isClosed(), false);

    // A raw client that ignores the limit gets -ERR and is disconnected.
    const raw = await RawConn.connect(s.port);
    defer(t, () => raw.close());
    raw.send(`CONNECT {"verbose":false}\r\nPUB big 1025\r\n${"x".repeat(1025)}\r\n`);
    await raw.waitFor(/-ERR 'Maximum Payload Violation'/);
    await raw.waitClosed();
  });

  test("echo:false does not deliver a connection's own messages", async (t) => {
    const s = await server(t);
    const self = await client(t, s.port, { noEcho: true });
    const other = await client(t, s.port);
    const mine: string[] = [];
    self.subscribe("e", { callback: (_e, m) => mine.push(sc.decode(m.data)) });
    const theirs = other.subscribe("e");
    await Promise.all([self.flush(), other.flush()]);
    self.publish("e", sc.encode("from self"));
    await self.flush();
    other.publish("e", sc.encode("from other"));
    await other.flush();
    assert.deepEqual(await collect(theirs, 2), ["from self", "from other"]);
    await checkFor(2000, () => mine.length === 1);
    await self.flush();
    assert.deepEqual(mine, ["from other"]);
  });

  test("unsubscribe with max", async (t) => {
    const s = await server(t);
    const nc = await client(t, s.port);
    const pub = await client(t, s.port);
    const sub = nc.subscribe("m", { max: 3 });
    const later = nc.subscribe("later");
    await nc.flush();
    later.unsubscribe(2); // UNSUB sid 2 after the SUB
    await nc.flush();
    assert.equal(s.sublist.count(), 2);
    for (let i = 0; i < 5; i++) {
      pub.publish("m", sc.encode(String(i)));
      pub.publish("later", sc.encode(String(i)));
    }
    await pub.flush();
    assert.deepEqual(await collect(sub, 5), ["0", "1", "2"]);
    assert.deepEqual(await collect(later, 5), ["0", "1"]);
    await nc.flush();
    // The server stopped at the limits and dropped both subscriptions.
    assert.equal(s.outMsgs, 5);
    assert.equal(s.sublist.count(), 0);
  });

  test("reconnects after a server restart and resubscribes", async (t) => {
    const port = await freePort();
    let srv: RunningServer = await runServer(["-p", String(port)]);
    defer(t, () => srv.stop("SIGKILL"));
    const nc = await client(t, port, {
      reconnect: true,
      reconnectTimeWait: 50,
      maxReconnectAttempts: -1,
      reconnectJitter: 0,
      pingInterval: 60_000,
    });
    const got: string[] = [];
    nc.subscribe("again", { callback: (_e, m) => got.push(sc.decode(m.data)) });
    nc.publish("again", sc.encode("before"));
    await checkFor(2000, () => got.length === 1);

    const events: string[] = [];
    const reconnected = (async () => {
      for await (const st of nc.status()) {
        events.push(st.type);
        if (st.type === "reconnect") return true;
      }
      return false;
    })();
    assert.equal(await srv.stop(), 0);
    srv = await runServer(["-p", String(port)]);
    assert.equal(await reconnected, true);
    assert.ok(events.includes("disconnect"), `events: ${events.join(",")}`);
    nc.publish("again", sc.encode("after"));
    await checkFor(3000, () => got.length === 2);
    assert.deepEqual(got, ["before", "after"]);
  });
});

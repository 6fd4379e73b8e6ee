// Limits of shoal's message server, checked at the protocol level with raw sockets where the
// `nats` client would hide what happens: maximum connections and subscriptions, slow consumers
// (bounded memory), stale connections, the authentication timeout, and lame duck mode.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createConnection } from "node:net";
import { fork } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import type { Server } from "../../src/nats/server.js";
import { connz } from "../../src/nats/monitor.js";
import { checkFor, RawConn, runServer, useServer } from "../helpers/servers.js";
import { defer } from "../helpers/defer.js";
import type { GcServerStatus } from "../helpers/gc-server.js";

const GC_SERVER = new URL("../helpers/gc-server.js", import.meta.url);

const CRLF = Buffer.from("\r\n");

/** A process's peak resident set size in bytes (Linux's VmHWM). */
function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(m, "VmHWM in /proc/PID/status");
  return Number(m[1]) * 1024;
}

/** Waits until the server closes a raw connection; returns everything it sent. */
function closedText(c: RawConn, ms = 3000): Promise<string> {
  return c.waitFor(/(?!)/, ms, true);
}

const server = useServer;

/**
 * A subscriber on `subject` that counts the bytes delivered after its SUB took effect, reading
 * in bursts: `readMs` of reading, then `pauseMs` with its socket paused (pauseMs < 0: it never
 * reads at all once subscribed).
 */
async function burstyReader(
  t: TestContext,
  port: number,
  subject: string,
  readMs: number,
  pauseMs: number,
) {
  const socket = createConnection({ port, host: "127.0.0.1" });
  defer(t, () => socket.destroy());
  socket.on("error", () => {});
  let head = "";
  const r = { bytes: 0, closed: false };
  const subscribed = new Promise<void>((resolve) => {
    socket.on("data", (d: Buffer) => {
      if (head === null) {
        r.bytes += d.length;
        return;
      }
      head += d.toString("latin1");
      if (head.startsWith("INFO ") && head.includes("\r\n") && !head.includes("CONNECT_SENT")) {
        socket.write(`CONNECT {"verbose":false}\r\nSUB ${subject} 1\r\nPING\r\n`);
        head = "CONNECT_SENT";
      } else if (head.includes("PONG\r\n")) {
        r.bytes += head.length - head.indexOf("PONG\r\n") - 6;
        head = null as unknown as string;
        resolve();
      }
    });
  });
  socket.on("close", () => (r.closed = true));
  await subscribed;
  if (pauseMs < 0) {
    socket.pause();
  } else {
    let timer: NodeJS.Timeout;
    const phase = (reading: boolean) => {
      if (reading) socket.resume();
      else socket.pause();
      timer = setTimeout(() => phase(!reading), reading ? readMs : pauseMs);
    };
    phase(false);
    defer(t, () => clearTimeout(timer));
  }
  return r;
}

/** A raw connection that has read INFO and sent CONNECT (and seen the PONG of a PING). */
async function raw(t: TestContext, port: number, connectJson = `{"verbose":false}`) {
  const c = await RawConn.connect(port);
  defer(t, () => c.close());
  await c.waitFor(/^INFO .*\r\n/);
  c.send(`CONNECT ${connectJson}\r\nPING\r\n`);
  await c.waitFor(/PONG\r\n/);
  return c;
}

function closedReasons(s: Server): string[] {
  const list = connz(s, { state: "closed" })["connections"] as Array<{ reason: string }>;
  return list.map((c) => c.reason);
}

describe("limits", () => {
  test("max_connections exceeded", async (t) => {
    const s = await server(t, { maxConnections: 2 });
    await raw(t, s.port);
    await raw(t, s.port);
    const third = await RawConn.connect(s.port);
    defer(t, () => third.close());
    const text = await closedText(third);
    assert.match(text, /^INFO \{.*\} \r\n-ERR 'maximum connections exceeded'\r\n$/);
    assert.equal(s.clients.size, 2);
    // The official client fails to connect too, naming the error.
    await assert.rejects(
      connect({ servers: `127.0.0.1:${s.port}`, reconnect: false }),
      /maximum connections exceeded/,
    );
  });

  test("max_subscriptions exceeded", async (t) => {
    const s = await server(t, { maxSubscriptions: 2 });
    const c = await raw(t, s.port);
    c.data = "";
    c.send("SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nPING\r\n");
    const text = await c.waitFor(/PONG\r\n/);
    assert.equal(text, "-ERR 'maximum subscriptions exceeded'\r\nPONG\r\n");
    assert.equal(s.sublist.count(), 2);
    // The connection stays usable.
    c.data = "";
    c.send("PUB a 2\r\nhi\r\nPING\r\n");
    assert.equal(await c.waitFor(/PONG\r\n/), "MSG a 1 2\r\nhi\r\nPONG\r\n");
  });

  test("slow consumer is disconnected and memory stays bounded", async (t) => {
    // A separate server process, so its peak RSS is its own (not the test's publisher's).
    const dir = mkdtempSync(join(tmpdir(), "shoal-limits-"));
    defer(t, () => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "slow.conf");
    writeFileSync(file, `max_pending: 1MB\nmax_payload: 64KB\nwrite_deadline: "60s"\n`);
    const srv = await runServer(["-c", file, "-p", "-1", "-m", "-1"]);
    defer(t, () => srv.stop("SIGKILL"));
    const pid = srv.proc.pid!;

    const slow = await raw(t, srv.port);
    slow.send("SUB flood 1\r\nPING\r\n");
    await slow.waitFor(/PONG\r\nPONG\r\n/);
    slow.socket.pause(); // never read again

    const pub = await raw(t, srv.port);
    const payload = Buffer.alloc(64 * 1024, "x");
    const frame = Buffer.concat([Buffer.from(`PUB flood ${payload.length}\r\n`), payload, CRLF]);
    const peakBefore = peakRss(pid);
    const count = 2048; // 128 MiB: far more than max_pending and the kernel's buffers together
    for (let i = 0; i < count; i++) {
      if (!pub.socket.write(frame)) await new Promise((r) => pub.socket.once("drain", r));
    }
    pub.send("PING\r\n");
    await pub.waitFor(/PONG\r\nPONG\r\n/, 20_000);
    const grown = peakRss(pid) - peakBefore;

    const varz = (await (await fetch(`http://127.0.0.1:${srv.httpPort}/varz`)).json()) as Record<
      string,
      number
    >;
    const closed = (await (
      await fetch(`http://127.0.0.1:${srv.httpPort}/connz?state=closed`)
    ).json()) as { connections: Array<{ reason: string }> };
    assert.equal(varz["slow_consumers"], 1);
    assert.equal(varz["connections"], 1, "only the publisher is left");
    assert.equal(varz["in_msgs"], count);
    assert.deepEqual(
      closed.connections.map((c) => c.reason),
      ["Slow Consumer (Pending Bytes)"],
    );
    // The server gave up on the subscriber instead of queueing the flood for it.
    assert.ok(
      varz["out_bytes"]! < (count * payload.length) / 4,
      `delivered ${varz["out_bytes"]} bytes before cutting off the slow consumer`,
    );
    assert.ok(grown < 64 * 1024 * 1024, `peak RSS grew by ${(grown / 1048576).toFixed(1)} MiB`);
  });

  test("what slow consumers held goes back to the OS once they are cut off", async (t) => {
    // 20 subscribers that never read, 8 MiB max_pending each: the server holds over 100 MiB
    // for them until it cuts them off, and then lets go of it: nothing of theirs is kept
    // (closed clients stay listed in /connz), and the memory goes back to the OS. (At this size
    // malloc gave it back before mapped buffers too; with 20 x 64 MiB it kept 900 MiB, see
    // outbound.test.ts and the bench's slow-consumer row.)
    const opts = { maxPending: 8 * 1024 * 1024, maxPayload: 64 * 1024, writeDeadlineMs: 60_000 };
    const child = fork(GC_SERVER, [JSON.stringify(opts)], {
      execArgv: ["--expose-gc"],
      stdio: ["ignore", "ignore", "inherit", "ipc"],
    });
    defer(t, () => child.kill("SIGKILL"));
    const ask = async (what: "status" | "gc") => {
      const reply = once(child, "message");
      child.send(what);
      return (await reply)[0] as GcServerStatus;
    };
    const [first] = (await once(child, "message")) as [GcServerStatus];
    const subs = await Promise.all(
      Array.from({ length: 20 }, () => 0).map(() => burstyReader(t, first.port, "flood", 0, -1)),
    );
    const pub = await raw(t, first.port);
    const base = (await ask("gc")).rss;
    const frame = Buffer.from(`PUB flood 1024\r\n${"x".repeat(1024)}\r\n`);
    const batch = Buffer.concat(Array.from({ length: 64 }, () => frame));
    // Publish until every subscriber is cut off (each needs over 8 MiB queued for it).
    for (let sent = 0; (await ask("status")).slowConsumers < subs.length; sent += 4096) {
      assert.ok(sent < 1024 * 1024, "the subscribers were cut off within 1 GiB published");
      for (let i = 0; i < 64; i++) {
        if (!pub.socket.write(batch)) await once(pub.socket, "drain");
      }
    }
    pub.send("PING\r\n");
    await pub.waitFor(/PONG\r\nPONG\r\n/, 30_000);
    // The server goes on serving others: what they allocate now lies above the freed memory.
    const others = await Promise.all([0, 1, 2, 3].map(() => raw(t, first.port)));
    for (const o of others) o.send("SUB flood 1\r\nPING\r\n");
    pub.send(`PUB flood 1024\r\n${"x".repeat(1024)}\r\n`);
    await Promise.all(others.map((o) => o.waitFor(/MSG flood 1 1024\r\n/)));
    // (V8 frees the buffers of collected ArrayBuffers on a background thread, after gc().)
    const peak = (await ask("status")).peak;
    const grown = peak - base;
    let after = await ask("gc");
    await checkFor(
      20_000,
      async () => {
        after = await ask("gc");
        return after.rss - base < grown / 4;
      },
      200,
    ).catch(() => {});
    const kept = after.rss - base;
    const mib = (n: number) => `${(n / 1048576).toFixed(0)} MiB`;
    assert.ok(grown > 100 * 1048576, `the server held ${mib(grown)} at its peak`);
    assert.ok(kept < grown / 4, `of ${mib(grown)} at the peak, ${mib(kept)} is still resident`);
  });

  test("a subscriber slower than its publisher gets every message: the publisher is paused", async (t) => {
    // On a warm server a subscriber that reads, only more slowly than one publisher writes, was
    // cut off as a slow consumer and lost nearly all messages. Now the publisher's reads pause
    // while the subscriber is more than half of max_pending behind.
    const s = await server(t, {
      maxPending: 256 * 1024,
      maxPayload: 64 * 1024,
      writeDeadlineMs: 400,
    });
    const sub = await burstyReader(t, s.port, "flood", 10, 100);
    const pub = await raw(t, s.port);
    const count = 24 * 1024; // 24 MiB of payload: far beyond max_pending and the kernel's buffers
    const payload = Buffer.alloc(1024, "x");
    const frame = Buffer.concat([Buffer.from(`PUB flood ${payload.length}\r\n`), payload, CRLF]);
    const batch = Buffer.concat(Array.from({ length: 64 }, () => frame));
    for (let i = 0; i < count / 64; i++) {
      if (!pub.socket.write(batch)) await new Promise((r) => pub.socket.once("drain", r));
    }
    pub.send("PING\r\n");
    await pub.waitFor(/PONG\r\nPONG\r\n/, 60_000);
    const frameLen = `MSG flood 1 1024\r\n`.length + 1024 + 2;
    await checkFor(60_000, () => sub.bytes >= count * frameLen || sub.closed);
    assert.equal(s.slowConsumers, 0, "no slow consumer");
    assert.equal(sub.closed, false);
    assert.equal(sub.bytes, count * frameLen, "every message arrived");
    const producer = [...s.clients.values()].find((c) => c.inMsgs === count);
    assert.ok(producer && producer.stalls > 0, "the publisher was paused");
  });

  test("a subscriber that never reads is cut off, and its publisher goes on", async (t) => {
    const s = await server(t, { maxPending: 256 * 1024, maxPayload: 64 * 1024 });
    const sub = await burstyReader(t, s.port, "flood", 0, -1);
    const other = await raw(t, s.port);
    other.send("SUB after 1\r\nPING\r\n");
    await other.waitFor(/PONG\r\nPONG\r\n/);
    const pub = await raw(t, s.port);
    const frame = Buffer.from(`PUB flood 1024\r\n${"x".repeat(1024)}\r\n`);
    const batch = Buffer.concat(Array.from({ length: 64 }, () => frame));
    const count = 16 * 1024;
    for (let i = 0; i < count / 64; i++) {
      if (!pub.socket.write(batch)) await new Promise((r) => pub.socket.once("drain", r));
    }
    pub.send("PING\r\n");
    await pub.waitFor(/PONG\r\nPONG\r\n/, 30_000);
    // (A paused socket does not see its close: the server's own count says it was cut off.)
    await checkFor(10_000, () => s.slowConsumers === 1);
    assert.equal(sub.bytes, 0);
    const closed = connz(s, { state: "closed" }) as unknown as {
      connections: Array<{ reason: string }>;
    };
    assert.deepEqual(
      closed.connections.map((c) => c.reason),
      ["Slow Consumer (Pending Bytes)"],
    );
    const producer = [...s.clients.values()].find((c) => c.inMsgs === count);
    assert.ok(producer, "the publisher is still connected");
    assert.ok(producer.stalls > 0, "the publisher was paused while the subscriber fell behind");
    assert.equal(producer.stalled, false, "and is not paused any more");
    // The publisher is served as before.
    pub.send("PUB after 2\r\nok\r\nPING\r\n");
    await pub.waitFor(/PONG\r\nPONG\r\nPONG\r\n/);
    await other.waitFor(/MSG after 1 2\r\nok\r\n/);
  });

  test("stale connection: a client that never answers PING is closed", async (t) => {
    const s = await server(t, { pingIntervalMs: 100, pingMax: 2 });
    const c = await raw(t, s.port);
    // A real client answers the pings and stays.
    const nc: NatsConnection = await connect({ servers: `127.0.0.1:${s.port}`, reconnect: false });
    defer(t, () => nc.close());
    const text = await closedText(c);
    // Closed after pingMax (2) unanswered PINGs.
    assert.match(text, /\r\nPONG\r\nPING\r\nPING\r\n-ERR 'Stale Connection'\r\n$/);
    assert.deepEqual(closedReasons(s), ["Stale Connection"]);
    await nc.flush();
    assert.equal(nc.isClosed(), false);
    assert.equal(s.clients.size, 1);
  });

  test("authentication timeout", async (t) => {
    const s = await server(t, { username: "u", password: "p", authTimeoutMs: 200 });
    // The server runs in this process: a timer due before its 200 ms one fires first.
    let waited = false;
    const early = setTimeout(() => (waited = true), 150);
    defer(t, () => clearTimeout(early));
    const c = await RawConn.connect(s.port);
    defer(t, () => c.close());
    const text = await closedText(c);
    assert.ok(waited, "closed before the auth timeout");
    assert.match(text, /"auth_required":true/);
    assert.match(text, /-ERR 'Authentication Timeout'\r\n$/);
    assert.deepEqual(closedReasons(s), ["Authentication Timeout"]);
    // Authenticating in time is fine: a connection opened after it that never authenticates is
    // closed by its own timer, which is due after the first one's would have fired.
    const ok = await raw(t, s.port, `{"verbose":false,"user":"u","pass":"p"}`);
    const late = await RawConn.connect(s.port);
    defer(t, () => late.close());
    assert.match(await closedText(late), /-ERR 'Authentication Timeout'\r\n$/);
    ok.send("PING\r\n");
    await ok.waitFor(/PONG\r\nPONG\r\n/);
    assert.equal(ok.closed, false);
  });

  test("lame duck mode", async (t) => {
    const s = await server(t, { lameDuckDurationMs: 400, lameDuckGracePeriodMs: 100 });
    const a = await raw(t, s.port);
    const b = await raw(t, s.port);
    const nc = await connect({ servers: `127.0.0.1:${s.port}`, reconnect: false });
    defer(t, () => nc.close());
    const ldmEvent = (async () => {
      for await (const st of nc.status()) if (st.type === "ldm") return true;
      return false;
    })();
    const entering = s.enterLameDuckMode();
    await a.waitFor(/INFO \{[^\r]*"ldm":true[^\r]*\} \r\n/);
    await b.waitFor(/INFO \{[^\r]*"ldm":true[^\r]*\} \r\n/);
    assert.equal(await ldmEvent, true, "nats.js reports the ldm status");
    await assert.rejects(RawConn.connect(s.port), /ECONNREFUSED/);
    await Promise.all([closedText(a), closedText(b), nc.closed()]);
    await entering;
    await s.done;
    assert.equal(s.clients.size, 0);
    await checkFor(1000, () => closedReasons(s).filter((r) => r === "Lame Duck Mode").length >= 3);
  });
});

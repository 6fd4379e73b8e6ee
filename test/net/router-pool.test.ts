// The router's backend connection pool (src/net/router/pool.ts) against a real TCP server on
// loopback: a connection goes back to the pool reading, even when the exchange that held it had
// paused it (a slow client), so the next exchange gets its response.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { BackendPool, type BackendConn, type ConnOwner } from "../../src/net/router/pool.js";
import { defer } from "../helpers/defer.js";
import { checkFor } from "../helpers/servers.js";

/** An owner that collects what its connection receives. */
function owner(): ConnOwner & { conn?: BackendConn; got: string; errors: string[] } {
  const o: ConnOwner & { conn?: BackendConn; got: string; errors: string[] } = {
    got: "",
    errors: [],
    onUp(conn) {
      o.conn = conn;
    },
    onUpData(d) {
      o.got += d.toString("latin1");
    },
    onUpEnd() {},
    onUpError(err) {
      o.errors.push(err.message);
    },
    onUpDrain() {},
  };
  return o;
}

test("a connection released while paused is handed out reading", async (t) => {
  // Echoes every line it receives.
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    s.on("data", (d) => s.write(d));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  defer(t, () => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const pool = new BackendPool("127.0.0.1", (server.address() as AddressInfo).port, {
    max: 1,
    idleMs: 30_000,
  });
  defer(t, () => pool.close());

  const first = owner();
  pool.acquire(first);
  const conn = first.conn!;
  conn.sock.write("one\n");
  await checkFor(5000, () => first.got === "one\n");
  // The exchange paused it (its client was slow) and ended while it was paused.
  conn.sock.pause();
  pool.release(conn, true);

  const second = owner();
  pool.acquire(second);
  assert.equal(second.conn, conn, "the kept connection is reused");
  conn.sock.write("two\n");
  await checkFor(5000, () => {
    assert.equal(second.got, "two\n");
    return true;
  });
  assert.deepEqual(second.errors, []);
});

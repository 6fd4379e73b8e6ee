// readInto (a client socket reading into one buffer the server owns) and its use by the server:
// every read of a plain TCP client lands in the same memory, the socket still pauses, resumes,
// writes and closes, and the listener's count of connections does not keep the moved socket.

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { once } from "node:events";
import { MAX_READ, MIN_READ, readBufferSize } from "../../src/nats/readinto.js";
import { readInto } from "../../src/lib/readinto.js";
import { checkFor, useServer } from "../helpers/servers.js";

test("readInto: reads land in the given buffer; pause, resume, write and close work", async (t) => {
  const buffer = Buffer.alloc(MIN_READ);
  const chunks: string[] = [];
  const arenas = new Set<ArrayBufferLike>();
  let moved: net.Socket | null = null;
  const listener = net.createServer((s) => {
    moved = readInto(s, buffer, (chunk) => {
      arenas.add(chunk.buffer);
      chunks.push(chunk.toString("latin1"));
    });
    moved?.write("hello\n");
  });
  listener.listen(0, "127.0.0.1");
  await once(listener, "listening");
  t.after(() => listener.close());
  const port = (listener.address() as net.AddressInfo).port;
  const client = net.connect(port, "127.0.0.1");
  t.after(() => client.destroy());
  const [greeting] = (await once(client, "data")) as [Buffer];
  assert.equal(greeting.toString(), "hello\n");
  assert.ok(moved !== null, "the accepted socket was moved");
  const fast = moved as net.Socket;

  client.write("one");
  await checkFor(5000, () => chunks.join("") === "one");
  fast.pause();
  client.write("two");
  // Paused: nothing is read until resume (the kernel holds the bytes meanwhile).
  await new Promise((r) => setImmediate(r));
  fast.resume();
  await checkFor(5000, () => chunks.join("") === "onetwo");
  assert.deepEqual([...arenas], [buffer.buffer], "every chunk is a view of the given buffer");

  // The listener no longer counts the old socket: close() completes once the client goes.
  const closed = new Promise<void>((r) => listener.close(() => r()));
  const fastClosed = once(fast, "close");
  client.end();
  await fastClosed;
  await closed;
});

test("readInto refuses a socket without a reading handle, leaving it as it was", () => {
  const s = new net.Socket();
  assert.equal(
    readInto(s, Buffer.alloc(16), () => {}),
    null,
  );
  s.destroy();
});

test("the server reads every plain TCP client into one buffer", async (t) => {
  const srv = await useServer(t);
  const arenas = new Set<ArrayBufferLike>();
  const sockets: net.Socket[] = [];
  for (let k = 0; k < 2; k++) {
    const sock = net.connect(srv.port, "127.0.0.1");
    sockets.push(sock);
    t.after(() => sock.destroy());
    await once(sock, "data"); // INFO
    await checkFor(5000, () => srv.clients.size === k + 1);
  }
  // Watch the chunks the parser is handed.
  for (const c of srv.clients.values()) {
    const parse = c.parser.parse.bind(c.parser);
    c.parser.parse = (buf: Buffer) => {
      arenas.add(buf.buffer);
      parse(buf);
    };
  }
  let pongs = 0;
  for (const sock of sockets) {
    sock.on("data", (d: Buffer) => (pongs += d.toString().split("PONG").length - 1));
    sock.write('CONNECT {"verbose":false}\r\nPUB a 1\r\nx\r\nPING\r\n');
    sock.write("PUB a 2\r\nxy\r\nPING\r\n");
  }
  await checkFor(5000, () => pongs === 4);
  assert.equal(srv.inMsgs, 4);
  assert.equal(arenas.size, 1, "all reads of both clients landed in the same memory");
});

test("readBufferSize: 256 KiB reads, but no more than an eighth of max_pending, nor under 64 KiB", () => {
  assert.equal(readBufferSize(64 * 1024 * 1024), MAX_READ);
  assert.equal(readBufferSize(1024 * 1024), 128 * 1024);
  assert.equal(readBufferSize(256 * 1024), MIN_READ);
  assert.equal(MAX_READ, 256 * 1024);
});

// A connection's outbound queue (src/nats/outbound.ts): bytes go out intact and in order, and a
// connection that falls far behind holds its backlog in buffers mapped for it alone, which go
// back to the OS when it is cut off (malloc'd ones stayed in the process: 900 MiB after 20
// stalled subscribers of 64 MiB each were cut off).

import { test } from "node:test";
import assert from "node:assert/strict";
import { Outbound, SPILL_AT, type ByteSink } from "../../src/nats/outbound.js";

/** A socket stand-in that takes every chunk and reports `held` bytes as not yet sent. */
function sink(): ByteSink & { chunks: Buffer[]; held: number } {
  const s = {
    chunks: [] as Buffer[],
    held: 0,
    get writableLength() {
      return s.held;
    },
    write(chunk: Uint8Array) {
      s.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      return true;
    },
    cork() {},
    uncork() {},
  };
  return s;
}

const resizable = (b: Buffer) => (b.buffer as { resizable?: boolean }).resizable === true;

test("a connection far behind gets mapped buffers, and its bytes go out intact", () => {
  const out = new Outbound();
  const s = sink();
  const frames: Buffer[] = [];
  // 4 MiB of numbered 1 KiB frames while the socket is full (nothing is handed over).
  s.held = Infinity;
  for (let i = 0; i < 4096; i++) {
    const frame = Buffer.alloc(1024, i % 251);
    frame.writeUInt32BE(i, 0);
    frames.push(frame);
    out.appendBytes(frame);
    out.flush(s, 512 * 1024);
  }
  assert.equal(s.chunks.length, 0);
  assert.equal(out.queued, 4096 * 1024);
  s.held = 0;
  out.flush(s, Infinity);
  assert.equal(out.queued, 0);
  assert.ok(Buffer.concat(s.chunks).equals(Buffer.concat(frames)), "every byte, in order");
  // What came before the backlog reached SPILL_AT is malloc'd; what came after is mapped, but
  // for the buffer still being filled (the last chunk).
  let offset = 0;
  for (const [i, c] of s.chunks.entries()) {
    const mapped = resizable(c);
    if (offset + c.length <= SPILL_AT) assert.equal(mapped, false, `chunk at ${offset}`);
    if (offset >= SPILL_AT + 64 * 1024 && i < s.chunks.length - 1) {
      assert.equal(mapped, true, `chunk at ${offset}`);
    }
    offset += c.length;
  }
  assert.ok(s.chunks.some(resizable));
});

test("frames are always written into ordinary buffers, behind or not", () => {
  // A Buffer on a resizable ArrayBuffer has another elements kind: the byte writers that met
  // both deoptimized for good (pub→sub at a quarter of its rate).
  const out = new Outbound();
  const s = sink();
  s.held = Infinity;
  for (let i = 0; i < 4096; i++) {
    const buf = out.reserve(1024);
    assert.equal(resizable(buf), false, `frame ${i}`);
    buf.fill(i % 251, out.at, out.at + 1024);
    out.advance(1024);
    out.flush(s, 512 * 1024);
  }
  assert.ok(out.queued > SPILL_AT);
});

test("a connection that keeps up never gets mapped buffers", () => {
  const out = new Outbound();
  const s = sink();
  for (let i = 0; i < 4096; i++) {
    out.appendBytes(Buffer.alloc(1024, 1));
    out.flush(s, 512 * 1024);
  }
  assert.equal(
    s.chunks.reduce((n, c) => n + c.length, 0),
    4096 * 1024,
  );
  assert.equal(s.chunks.filter(resizable).length, 0);
});

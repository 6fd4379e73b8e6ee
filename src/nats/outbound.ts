// A connection's outbound byte queue. Protocol frames are appended into a buffer we own;
// `flush` hands the filled part to the socket and keeps appending behind it in the same buffer.
// A full buffer is queued as it is (never copied) and a new one started, so a busy connection
// allocates one buffer per many messages, and an idle one holds none. Buffers grow with the
// traffic (up to 64 KiB a piece).
//
// A connection that falls behind (more than SPILL_AT bytes waiting here) keeps its further
// filled pieces in mappedBuffer memory: mapped from the OS for it alone, so that what a stalled
// consumer held goes back to the OS once it is cut off, instead of staying in malloc's heap
// (where freed 64 KiB pieces between live allocations are kept by the process for good). The
// pieces are copied there once full; frames are always written into ordinary buffers, because a
// Buffer on a resizable ArrayBuffer has another elements kind: the hot writers (bytes.ts) that
// met both deoptimized again and again and stayed several times slower for the server's life.

/** Where flushed bytes go: a net.Socket, or anything that writes like one. */
export interface ByteSink {
  readonly writableLength: number;
  write(chunk: Uint8Array, cb?: (err?: Error | null) => void): boolean;
  cork(): void;
  uncork(): void;
}

const MIN_CHUNK = 512;
const MAX_CHUNK = 64 * 1024;
/** Bytes waiting in one connection beyond which its new buffers are mapped (mappedBuffer). */
export const SPILL_AT = 1024 * 1024;
/** The size of a mapped buffer: large enough that mapping costs little per byte. */
const SPILL_CHUNK = 256 * 1024;

/**
 * A buffer whose memory V8 maps from the OS for it alone and unmaps when it is collected: a
 * resizable ArrayBuffer (maxByteLength) is reserved with mmap, not malloc'd. Measured on Node
 * 20: 800 MiB of 64 KiB malloc'd buffers freed between small live allocations left the RSS at
 * 900 MiB; the same as mapped buffers went back to 100 MiB.
 */
/**
 * Mapped buffers are unmapped only when V8 collects them, and a server whose load has stopped
 * allocates nothing that would make it collect: a closed connection that had mapped buffers
 * asks for one full collection a little later (after its socket let go of them; the socket
 * of a closed connection is destroyed within 2 s). Several such closes share one collection.
 */
const COLLECT_AFTER_MS = 2500;
let collectTimer: NodeJS.Timeout | null = null;
let collect: (() => void) | null = null;

export function collectMappedSoon(): void {
  if (collectTimer !== null) return;
  collectTimer = setTimeout(() => {
    collectTimer = null;
    if (collect === null) {
      // The documented way to reach V8's gc() without starting node with --expose-gc.
      process.getBuiltinModule("node:v8").setFlagsFromString("--expose-gc");
      collect = process.getBuiltinModule("node:vm").runInNewContext("gc") as () => void;
    }
    collect();
  }, COLLECT_AFTER_MS).unref();
}

export function mappedBuffer(size: number): Buffer {
  const Resizable = ArrayBuffer as unknown as new (
    n: number,
    o: { maxByteLength: number },
  ) => ArrayBuffer;
  return Buffer.from(new Resizable(size, { maxByteLength: size }));
}

export class Outbound {
  private buf: Buffer | null = null;
  private start = 0;
  private pos = 0;
  private nextSize = MIN_CHUNK;
  /** Filled pieces of earlier buffers, not yet handed to the socket (never copied again). */
  private full: Buffer[] = [];
  private fullBytes = 0;
  /** Some of this connection's buffers were mapped (see mappedBuffer). */
  private mapped = false;
  /** The mapped buffer that full pieces are copied into while the connection is behind. */
  private spill: Buffer | null = null;
  private spillPos = 0;
  /** Bytes appended but not yet handed to the socket. */
  get queued(): number {
    return this.fullBytes + this.pos - this.start;
  }

  /** Makes room for n more bytes and returns the buffer to write into at `this.at`. */
  reserve(n: number): Buffer {
    const buf = this.buf;
    if (buf !== null && buf.length - this.pos >= n) return buf;
    if (buf !== null && this.pos > this.start) this.keep(buf.subarray(this.start, this.pos));
    const size = Math.max(n, this.nextSize);
    this.nextSize = Math.min(MAX_CHUNK, this.nextSize * 2);
    const fresh = Buffer.allocUnsafe(size);
    this.pos = this.start = 0;
    this.buf = fresh;
    return fresh;
  }

  /** Queues a filled piece; behind by SPILL_AT or more, as a copy in mapped memory. */
  private keep(piece: Buffer): void {
    if (this.fullBytes >= SPILL_AT) {
      this.mapped = true;
      let spill = this.spill;
      if (spill === null || spill.length - this.spillPos < piece.length) {
        spill = this.spill = mappedBuffer(Math.max(piece.length, SPILL_CHUNK));
        this.spillPos = 0;
      }
      piece.copy(spill, this.spillPos);
      piece = spill.subarray(this.spillPos, this.spillPos + piece.length);
      this.spillPos += piece.length;
    }
    this.full.push(piece);
    this.fullBytes += piece.length;
  }

  get at(): number {
    return this.pos;
  }

  advance(n: number): void {
    this.pos += n;
  }

  /** Appends a latin1/ASCII string (protocol text). */
  appendString(s: string): void {
    const buf = this.reserve(s.length);
    this.pos += buf.write(s, this.pos, "latin1");
  }

  appendBytes(b: Buffer): void {
    const buf = this.reserve(b.length);
    b.copy(buf, this.pos);
    this.pos += b.length;
  }

  /**
   * Writes what is queued to the socket. With `window`, hands over only while the socket holds
   * fewer than `window` bytes not yet taken by the kernel, and keeps the rest here: the socket's
   * own buffer would send everything it holds as one write, which finishes (and reports progress)
   * only once the peer has read all of it. `done` is called as each write completes (the caller
   * flushes again from there).
   */
  flush(socket: ByteSink, window = Infinity, done?: () => void): void {
    if (socket.writableLength >= window) return;
    const full = this.full;
    if (full.length > 0) {
      // One writev for all the pieces.
      socket.cork();
      let i = 0;
      while (i < full.length) {
        const piece = full[i++]!;
        this.fullBytes -= piece.length;
        socket.write(piece, done);
        if (socket.writableLength >= window) break;
      }
      if (i < full.length) {
        full.splice(0, i);
        socket.uncork();
        return;
      }
      this.full = [];
      this.fullBytes = 0;
      if (this.pos > this.start && socket.writableLength < window) {
        const chunk = this.buf!.subarray(this.start, this.pos);
        this.start = this.pos;
        socket.write(chunk, done);
      }
      socket.uncork();
      return;
    }
    if (this.pos === this.start) return;
    const chunk = this.buf!.subarray(this.start, this.pos);
    this.start = this.pos;
    if (this.buf!.length - this.pos < MIN_CHUNK) {
      this.buf = null;
      this.start = this.pos = 0;
    }
    socket.write(chunk, done);
  }

  /** Lets go of the buffer once flushed (or unconditionally with `discard`, for a closed connection). */
  release(discard = false): void {
    if (discard && this.mapped) {
      this.mapped = false;
      collectMappedSoon();
    }
    if (discard || this.queued === 0) {
      this.full = [];
      this.fullBytes = 0;
      this.buf = null;
      this.start = this.pos = 0;
      this.nextSize = MIN_CHUNK;
      this.spill = null;
      this.spillPos = 0;
    }
  }
}

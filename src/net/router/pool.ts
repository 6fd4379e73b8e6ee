// Kept-alive connections to one backend (host:port): a request takes an idle one (the most
// recently used) or opens a new one up to the limit, and waits in line beyond it; after a response
// that leaves the connection reusable it goes back to the pool (or straight to the next in line),
// and an idle one is not used after a while (never later than the backend's own Keep-Alive
// timeout says, less a second). Each connection reports its bytes and events to the exchange that owns it
// at the moment; an idle connection that receives bytes or closes is dropped.
//
// Backend sockets read into one buffer shared by all of them (net's `onread`), not through the
// socket's Readable stream: no Buffer allocated, pushed and emitted per read. The bytes handed to
// `onUpData` are only valid during that call: an owner that keeps them (or a write that may queue
// them) copies them first.

import { createConnection, type Socket } from "node:net";

/** What a connection reports to the exchange that holds it. */
export interface ConnOwner {
  /** Handed a connection (maybe still connecting: writes are queued until it is). */
  onUp(conn: BackendConn): void;
  /** Bytes from the backend, in the shared read buffer: valid only during the call. */
  onUpData(data: Buffer): void;
  /** The backend ended its side. */
  onUpEnd(): void;
  onUpError(err: Error & { code?: string }): void;
  onUpDrain(): void;
}

export interface PoolOptions {
  max: number;
  /** How long an idle connection stays open at most. */
  idleMs: number;
}

/**
 * The read buffer of every backend socket. Reads run one at a time on the event loop and each is
 * handled (written on or copied) before the next, so one buffer serves them all.
 */
const READ_BUF = Buffer.allocUnsafe(64 * 1024);

export class BackendConn {
  owner: ConnOwner | null = null;
  connecting = true;
  /** When it was opened (ms since the epoch): the owner times the connect out (no socket timer). */
  readonly openedAt = Date.now();
  /** Served an exchange before (a failure before any answer may be the backend closing it). */
  reused = false;
  /** When it went idle (ms since the epoch), and how long it may stay so. */
  idleSince = 0;
  idleMs = 0;

  constructor(
    readonly sock: Socket,
    readonly pool: BackendPool,
  ) {}
}

export class BackendPool {
  private readonly idle: BackendConn[] = [];
  private readonly waiting: ConnOwner[] = [];
  private count = 0;
  private closed = false;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly opts: PoolOptions,
  ) {}

  /** Hands `owner` a connection now (onUp) or when one is free; `fresh` skips idle ones. */
  acquire(owner: ConnOwner, fresh = false): void {
    if (!fresh) {
      while (this.idle.length > 0) {
        const c = this.idle.pop()!;
        if (c.sock.destroyed) continue;
        if (Date.now() - c.idleSince >= c.idleMs) {
          c.sock.destroy();
          continue;
        }
        c.reused = true;
        this.give(c, owner);
        return;
      }
    }
    if (this.count >= this.opts.max || this.closed) {
      if (this.closed) {
        owner.onUpError(Object.assign(new Error("backend removed"), { code: "ECONNRESET" }));
      } else this.waiting.push(owner);
      return;
    }
    this.give(this.open(), owner);
  }

  /** Takes `owner` out of the line. */
  cancel(owner: ConnOwner): void {
    const i = this.waiting.indexOf(owner);
    if (i >= 0) this.waiting.splice(i, 1);
  }

  /**
   * Gives a connection back: kept for the next request when `reusable`, else closed.
   * `keepAliveS` is the backend's Keep-Alive timeout in seconds (-1 when it gave none).
   */
  release(c: BackendConn, reusable: boolean, keepAliveS = -1): void {
    c.owner = null;
    if (!reusable || this.closed || c.sock.destroyed) {
      c.sock.destroy();
      return;
    }
    c.reused = true;
    // The exchange may have paused it for a slow client: the next one (or the pool, to see the
    // backend close an idle connection) needs it reading.
    if (c.sock.isPaused()) c.sock.resume();
    const next = this.waiting.shift();
    if (next !== undefined) {
      this.give(c, next);
      return;
    }
    let idleMs = this.opts.idleMs;
    if (keepAliveS >= 0) idleMs = Math.min(idleMs, Math.max(keepAliveS * 1000 - 1000, 0));
    if (idleMs === 0) {
      c.sock.destroy();
      return;
    }
    // Checked when it is taken again (no timer per request); the backend closes it sooner or
    // later, which drops it from the pool.
    c.idleSince = Date.now();
    c.idleMs = idleMs;
    this.idle.push(c);
  }

  /** Closes idle connections now and busy ones when their exchange ends. */
  close(): void {
    this.closed = true;
    for (const c of this.idle) c.sock.destroy();
    this.idle.length = 0;
    const waiting = this.waiting.splice(0);
    for (const o of waiting) {
      o.onUpError(Object.assign(new Error("backend removed"), { code: "ECONNRESET" }));
    }
  }

  private give(c: BackendConn, owner: ConnOwner): void {
    c.owner = owner;
    owner.onUp(c);
  }

  private open(): BackendConn {
    // `c` is assigned before the socket can read: the callback runs on a later tick.
    // eslint-disable-next-line prefer-const
    let c: BackendConn;
    const sock = createConnection({
      host: this.host,
      port: this.port,
      noDelay: true,
      onread: {
        buffer: READ_BUF,
        callback: (n: number, buf: Uint8Array) => {
          if (c.owner !== null) c.owner.onUpData((buf as Buffer).subarray(0, n));
          else sock.destroy();
          return true;
        },
      },
    });
    c = new BackendConn(sock, this);
    this.count++;
    sock.once("connect", () => {
      c.connecting = false;
    });
    sock.on("end", () => c.owner?.onUpEnd());
    sock.on("error", (err) => c.owner?.onUpError(err));
    sock.on("drain", () => c.owner?.onUpDrain());
    sock.on("close", () => {
      this.count--;
      const i = this.idle.indexOf(c);
      if (i >= 0) this.idle.splice(i, 1);
      const o = c.owner;
      if (o !== null) {
        o.onUpError(Object.assign(new Error("connection closed"), { code: "ECONNRESET" }));
      }
      if (!this.closed && this.waiting.length > 0 && this.count < this.opts.max) {
        this.give(this.open(), this.waiting.shift()!);
      }
    });
    return c;
  }
}

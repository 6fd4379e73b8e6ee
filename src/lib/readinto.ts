// Reading an accepted TCP socket into one buffer its owner keeps, instead of a fresh one per read.
//
// A 'data' socket gets a newly allocated 64 KiB buffer for every read, pushed through its
// Readable (a buffer allocated, pushed, emitted and a tick scheduled per read): the kernel copies
// into cold memory the allocator has just handed out, and the garbage collector frees it later.
// Node's `onread` option reads into a given buffer instead, but a net.Server cannot pass it to the
// sockets it accepts: readInto hands an accepted socket's handle to a new Socket made with it.
// Used by the message server (src/nats/server.ts), the HTTP router (src/net/router/router.ts)
// and the routing mesh (src/net/mesh.ts).
//
// `_handle` is not a documented property: where it is missing (another runtime, a socket with no
// handle), readInto returns null and the caller reads the socket through 'data' as usual.

import { Socket } from "node:net";

interface HandleOwner {
  _handle?: { readStart?: unknown } | null;
}

/**
 * Moves the handle of a freshly accepted socket (reading already, or accepted with
 * `pauseOnConnect`) to a new Socket that reads into `buffer` and hands each chunk (a view of
 * `buffer`, valid only during the call) to `onChunk`; the old Socket is destroyed without closing
 * the connection (and leaves the listener's count). Returns null, leaving `socket` as it was, when
 * the socket has no handle this works for.
 */
export function readInto(
  socket: Socket,
  buffer: Buffer,
  onChunk: (chunk: Buffer) => void,
  opts: { allowHalfOpen?: boolean } = {},
): Socket | null {
  const owner = socket as unknown as HandleOwner;
  const handle = owner._handle;
  if (handle === null || typeof handle !== "object" || typeof handle.readStart !== "function")
    return null;
  owner._handle = null;
  const fast = new Socket({
    handle,
    readable: true,
    writable: true,
    allowHalfOpen: opts.allowHalfOpen === true,
    onread: {
      buffer,
      callback: (n: number, buf: Uint8Array): void => {
        onChunk((buf as Buffer).subarray(0, n));
      },
    },
  } as ConstructorParameters<typeof Socket>[0]);
  // Without its handle, destroy only lets go of the old Socket. A handle that was reading keeps
  // reading (the new Socket finds it started); one accepted paused starts now.
  socket.destroy();
  return fast;
}

/**
 * readInto for a socket accepted with `pauseOnConnect` whose reads must outlive the callback
 * (a proxy writes them on): `onData` gets a copy of each read (copyOf; cheaper than the
 * Readable's own buffer per read). Where readInto cannot move the handle, the accepted socket
 * is used as it is, through 'data'. Returns the socket to use.
 */
export function readCopies(
  socket: Socket,
  buffer: Buffer,
  onData: (d: Buffer) => void,
  opts: { allowHalfOpen?: boolean } = {},
): Socket {
  const fast = readInto(socket, buffer, (chunk) => onData(copyOf(chunk)), opts);
  if (fast !== null) return fast;
  socket.on("data", onData);
  socket.resume();
  return socket;
}

/** A copy of `chunk` in memory of its own (small ones from Node's buffer pool). */
export function copyOf(chunk: Uint8Array): Buffer {
  const d = Buffer.allocUnsafe(chunk.length);
  d.set(chunk);
  return d;
}

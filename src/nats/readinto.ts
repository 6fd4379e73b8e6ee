// Reading a client's TCP socket into one buffer the server owns, instead of a fresh one per read.
//
// A 'data' socket gets a newly allocated 64 KiB buffer for every read: a publisher streaming
// large messages makes the kernel copy into cold memory the allocator has just handed out (page
// faults, cache misses: most of the server's system time for 1 KiB messages), and leaves the
// garbage collector to free it. Node's `onread` option reads into a given buffer instead, but a
// net.Server cannot pass it to the sockets it accepts: readInto hands an accepted socket's
// handle to a new Socket made with it. The chunk is only valid during the callback, which suits
// the parser (it copies whatever it keeps: split lines, split payloads, subjects).

import { Socket } from "node:net";

/** The smallest and largest read: Node's (and nats-server's) usual 64 KiB, and four times that. */
export const MIN_READ = 64 * 1024;
export const MAX_READ = 256 * 1024;

/**
 * How much one read may take: up to 256 KiB (a busy publisher's bytes in a quarter of the reads,
 * so a quarter of the calls, wake-ups and, over loopback, window updates the kernel sends on the
 * reader's time; still within a core's L2 cache), but no more than an eighth of max_pending, so
 * that what one read produces for a subscriber cannot by itself push it past the slow-consumer
 * limits.
 */
export function readBufferSize(maxPending: number): number {
  return Math.max(MIN_READ, Math.min(MAX_READ, Math.floor(maxPending / 8)));
}

interface HandleOwner {
  _handle?: { reading?: boolean } | null;
}

/**
 * Moves the handle of a freshly accepted socket to a new Socket that reads into `buffer` and
 * hands each chunk (a view of `buffer`, valid during the call) to `onChunk`; the old Socket is
 * destroyed without closing the connection. Returns null, leaving `socket` as it was, when the
 * socket is not one this works for (no handle, or not reading yet).
 */
export function readInto(
  socket: Socket,
  buffer: Buffer,
  onChunk: (chunk: Buffer) => void,
): Socket | null {
  const owner = socket as unknown as HandleOwner;
  const handle = owner._handle;
  // The accepted socket has started reading: the new one must find `reading` set, or it would
  // start the handle a second time (an error).
  if (handle === null || handle === undefined || handle.reading !== true) return null;
  owner._handle = null;
  const opts = {
    handle,
    readable: true,
    writable: true,
    onread: {
      buffer,
      callback: (n: number, buf: Uint8Array): void => {
        onChunk((buf as Buffer).subarray(0, n));
      },
    },
  };
  const fast = new Socket(opts as ConstructorParameters<typeof Socket>[0]);
  // Without its handle, destroy only lets go of the old Socket (and the listener's count of it).
  socket.destroy();
  return fast;
}

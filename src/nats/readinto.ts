// How large the one buffer is that the server reads plain TCP clients into (src/lib/readinto.ts).
//
// A 'data' socket gets a newly allocated 64 KiB buffer for every read: a publisher streaming
// large messages makes the kernel copy into cold memory the allocator has just handed out (page
// faults, cache misses: most of the server's system time for 1 KiB messages). The chunk readInto
// hands over is only valid during the callback, which suits the parser (it copies whatever it
// keeps: split lines, split payloads, subjects).

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

// Pieces of Node.js that a process at rest should not pay for, loaded on first use. Importing
// `node:crypto` loads some twenty internal modules (+0.7 MiB resident) and the `performance`
// global loads `perf_hooks` (+0.25 MiB), so a message server with no TLS, no NKeys and no
// passwords never loads them: its identifiers come from Math.random (V8 seeds it per process
// from the OS's entropy), its clock from process.hrtime, and only secrets (nonces) and
// certificates from node:crypto. Built-in modules loaded on use come through
// process.getBuiltinModule, not createRequire: `node:module` itself loads Node's ES module loader
// (its modules, in a CommonJS process: `shoal nats-server`, src/cli/entry.cts). See
// docs/benchmarks.md ("RSS at rest").

import type * as Crypto from "node:crypto";

let cryptoLib: typeof Crypto | null = null;

/** `node:crypto`, loaded the first time it is asked for. */
export function nodeCrypto(): typeof Crypto {
  return (cryptoLib ??= process.getBuiltinModule("node:crypto"));
}

/**
 * `n` bytes from Math.random: unique enough for identifiers (server ids, reply prefixes,
 * generated names), never for secrets — use nodeCrypto().randomBytes for those.
 */
export function idBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (Math.random() * 256) | 0;
  return b;
}

/** A uniformly chosen integer in [0, n), for spreading load (not for secrets). */
export function pick(n: number): number {
  return (Math.random() * n) | 0;
}

const originNs = process.hrtime.bigint();
const originMs = Date.now();

/** Milliseconds (fractional) on a monotonic clock, like performance.now(). */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() - originNs) / 1e6;
}

/** The wall clock in fractional milliseconds, like performance.timeOrigin + performance.now(). */
export function wallMs(): number {
  return originMs + monotonicMs();
}

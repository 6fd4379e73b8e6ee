// Small byte helpers for the hot path. For the short strings and payloads most messages carry,
// a plain loop beats a call into Buffer's native code (whose fixed cost dominates below a few
// dozen bytes); longer data still goes through the native copy.

const SHORT = 48;

/** Writes a latin1/ASCII string at p; returns the new position. */
export function writeAscii(buf: Buffer, p: number, s: string): number {
  const n = s.length;
  if (n > SHORT) return p + buf.write(s, p, "latin1");
  for (let i = 0; i < n; i++) buf[p + i] = s.charCodeAt(i);
  return p + n;
}

/** Writes a non-negative integer in decimal at p; returns the new position. */
export function writeUint(buf: Buffer, p: number, n: number): number {
  if (n < 10) {
    buf[p] = 48 + n;
    return p + 1;
  }
  let digits = 0;
  for (let x = n; x > 0; x = Math.floor(x / 10)) digits++;
  let q = p + digits;
  for (let x = n; x > 0; x = Math.floor(x / 10)) buf[--q] = 48 + (x % 10);
  return p + digits;
}

/** Copies src[start, end) to dst at p; returns the new position. */
export function copyBytes(src: Buffer, start: number, end: number, dst: Buffer, p: number): number {
  const n = end - start;
  if (n > SHORT) return p + src.copy(dst, p, start, end);
  for (let i = 0; i < n; i++) dst[p + i] = src[start + i]!;
  return p + n;
}

/** Do buf[start, end) and other[0, end - start) hold the same bytes? */
export function bytesEqual(buf: Buffer, start: number, end: number, other: Buffer): boolean {
  const n = end - start;
  if (n > SHORT) return buf.compare(other, 0, n, start, end) === 0;
  for (let i = 0; i < n; i++) if (buf[start + i] !== other[i]) return false;
  return true;
}

// Identifiers and join tokens, shaped like Swarm's: 25-character base36 ids, and tokens
// `SHOAL-1-<CA digest>-<secret>` whose middle part lets a joining node check the manager's
// certificate authority before it sends the secret (ca.ts caDigest), and whose last part decides
// the role (worker or manager).

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

/** `bytes` as `length` base36 digits (least significant first). */
export function base36(bytes: Buffer, length: number): string {
  let n = BigInt("0x" + bytes.toString("hex"));
  let s = "";
  while (s.length < length) {
    s += ALPHABET[Number(n % 36n)];
    n /= 36n;
  }
  return s;
}

/** A random 25-character id (Swarm's node, service and task ids look like this). */
export function newId(): string {
  return base36(randomBytes(20), 25);
}

export function newSecret(): string {
  return base36(randomBytes(20), 25);
}

/** A join token: the CA's digest (ca.ts caDigest) and a role's secret. */
export function makeToken(caDigest: string, roleSecret: string): string {
  return `SHOAL-1-${caDigest}-${roleSecret}`;
}

/** Meta key of the digests of the nodes' own secrets (given at their first join), by node id. */
export const NODE_SECRETS = "nodeSecrets";
export type NodeSecrets = Record<string, string>;

/** What the manager keeps of a node's secret: its SHA-256, never the secret itself. */
export function secretDigest(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

export function secretsEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

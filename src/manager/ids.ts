// Identifiers and join tokens, shaped like Swarm's: 25-character base36 ids, and tokens
// `SHOAL-1-<cluster fingerprint>-<secret>` whose middle part lets a joining node check that it
// talks to the right cluster, and whose last part decides the role (worker or manager).

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

function base36(bytes: Buffer, length: number): string {
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

/** The cluster fingerprint: 50 base36 characters derived from the cluster's secret identity. */
export function fingerprint(clusterSecret: string): string {
  return base36(createHash("sha256").update(clusterSecret).digest(), 50);
}

export function newSecret(): string {
  return base36(randomBytes(20), 25);
}

export function makeToken(clusterSecret: string, roleSecret: string): string {
  return `SHOAL-1-${fingerprint(clusterSecret)}-${roleSecret}`;
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

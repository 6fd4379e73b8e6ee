// A full resolver's directory kept in step with the other servers' of its cluster, as
// nats-server 2.9's DirAccResolver does it, over `$SYS.REQ.CLAIMS.PACK`:
// - Every full resolver joins the queue group "responder" on that subject with the server's own
//   connection (internal.ts), so a request reaches one server of the cluster: the asker's
//   local system user gets its own server, another server's request gets one of the others.
//   The payload is the asker's hash of its JWTs (the XOR of each live JWT's SHA-256); when it
//   equals the directory's one empty message answers, else one `<key>|<jwt>` message per JWT
//   that has not expired, in name order, then an empty one.
// - Every `interval` (resolver.interval, 1 minute by default; the first one an interval after
//   start, not at start, as nats-server's ticker) the server asks with its own hash and inbox.
// - Each JWT it gets is merged as nats-server's DirJWTStore.saveIfNewer merges it: a key the
//   directory lacks is saved; one it has is replaced unless both JWTs have the same id (jti) or
//   the saved one was issued later (iat); when either cannot be decoded it is replaced. A saved
//   JWT that a trusted operator signed becomes (or replaces) the account, so its users can log in.
// The debug lines are nats-server 2.9.10's ("Checking store state: <hash>", "Merging succeeded
// and changed <hash> to <hash>", "Merging Finished and resulting in: <hash>").

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { idBytes, nodeCrypto } from "../lib/lazy.js";
import { apply, decodeGeneric, directoryKeys, type ClaimsHost } from "./claims.js";
import type { InternalClient } from "./internal.js";
import { accountFromJwt } from "./jwt.js";
import { ACCOUNT_KEY } from "./resolver.js";
import type { Subscription } from "./subscription.js";
import { installAccount, trustedIssuer } from "./urlresolver.js";

export const PACK_SUBJECT = "$SYS.REQ.CLAIMS.PACK";
/** The queue group of every full resolver's pack responder (nats-server's). */
const RESPONDERS = "responder";

/** A directory's live JWTs (in name order) and their hash. */
export interface DirectoryState {
  hash: Buffer;
  live: { pub: string; jwt: Buffer }[];
}

/**
 * The JWTs of directory `dir` that have not expired and the XOR of their SHA-256 (nats-server's
 * store hash). A JWT that cannot be decoded counts (nats-server keeps it).
 */
export function directoryState(dir: string, nowMs: number): DirectoryState {
  const hash = Buffer.alloc(32);
  const live: DirectoryState["live"] = [];
  for (const pub of directoryKeys(dir)) {
    let jwt: Buffer;
    try {
      jwt = readFileSync(join(dir, `${pub}.jwt`));
    } catch {
      continue; // removed since the directory was read
    }
    let exp = 0;
    try {
      exp = decodeGeneric(jwt.toString("utf8")).exp;
    } catch {
      // kept, as nats-server keeps it
    }
    if (exp > 0 && exp < Math.floor(nowMs / 1000)) continue;
    const h = nodeCrypto().createHash("sha256").update(jwt).digest();
    for (let i = 0; i < 32; i++) hash[i]! ^= h[i]!;
    live.push({ pub, jwt });
  }
  return { hash, live };
}

/**
 * The replies to a pack request whose payload is `theirHash`, in order, as nats-server's
 * DirAccResolver sends them (see the top of this file).
 */
export function packReplies(
  host: ClaimsHost,
  theirHash: Buffer,
  nowMs: number = Date.now(),
): Buffer[] {
  const { hash, live } = directoryState(host.opts.operator!.resolverDir, nowMs);
  const ours = hash.toString("hex");
  if (hash.equals(theirHash)) {
    host.log.debug(`pack request matches hash ${ours}`);
    return [Buffer.alloc(0)];
  }
  host.log.debug(
    `pack request hash ${theirHash.toString("hex")} - finished responding with hash ${ours}`,
  );
  return [...live.map((j) => Buffer.concat([Buffer.from(`${j.pub}|`), j.jwt])), Buffer.alloc(0)];
}

/**
 * Saves `token` as account `pub`'s JWT unless the directory's is the same one or newer
 * (nats-server's saveIfNewer). True when the file was written.
 */
export function saveIfNewer(dir: string, pub: string, token: string): boolean {
  // nats-server takes any name of two characters or more; shoal only account keys, so that a
  // peer cannot name a path.
  if (!ACCOUNT_KEY.test(pub)) throw new Error("invalid public key");
  const file = join(dir, `${pub}.jwt`);
  let saved: string | null = null;
  try {
    saved = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  if (saved !== null) {
    if (saved === token) return false;
    try {
      const next = decodeGeneric(token);
      const prev = decodeGeneric(saved);
      if (prev.jti === next.jti || prev.iat > next.iat) return false;
    } catch {
      // one of them cannot be decoded: replaced, as nats-server does
    }
  }
  writeFileSync(file, token);
  return true;
}

/**
 * Merges a pack message (`<key>|<jwt>` lines) into the directory, as nats-server's Merge: stops
 * at the first bad line with its words. A JWT written becomes the account when it may.
 */
export function mergePack(host: ClaimsHost, pack: string, nowMs: number): void {
  const dir = host.opts.operator!.resolverDir;
  for (const line of pack.split("\n")) {
    if (line === "") continue;
    const parts = line.split("|");
    if (parts.length !== 2) {
      throw new Error(`line in package didn't contain 2 entries: ${JSON.stringify(line)}`);
    }
    const [pub, token] = parts as [string, string];
    if (saveIfNewer(dir, pub, token)) applySynced(host, pub, token, nowMs);
  }
}

/**
 * A JWT the sync saved: an account the server holds is updated as a claims update updates it
 * (its failures logged); another becomes known when a trusted operator signed it, as the one
 * nats-server would load from the directory when a user of it logs in.
 */
function applySynced(host: ClaimsHost, pub: string, token: string, nowMs: number): void {
  if (host.holdsAccount(pub)) {
    apply(host, pub, token, nowMs);
    return;
  }
  let acc;
  try {
    acc = accountFromJwt(pub, token);
  } catch {
    return;
  }
  if (trustedIssuer(host.opts.operator!, acc.claims.iss)) installAccount(host, acc, nowMs);
}

/** The pack responder and the periodic pack requests of one server's full resolver. */
export class ClaimsSync {
  /** The reply subject of this server's requests (as nats-server's `$SYS._INBOX.<id>.<id>`). */
  readonly inbox = `$SYS._INBOX.${idBytes(4).toString("hex")}.${idBytes(4).toString("hex")}`;
  private timer: NodeJS.Timeout | null = null;
  private subs: Subscription[] = [];

  constructor(
    private readonly host: ClaimsHost,
    private readonly internal: InternalClient,
    private readonly nowMs: () => number = Date.now,
  ) {}

  /** Answers pack requests and asks every `intervalMs`. */
  start(intervalMs: number): void {
    this.subs.push(
      this.internal.subscribe(PACK_SUBJECT, RESPONDERS, (_s, reply, body) => {
        if (reply === "") return;
        for (const m of packReplies(this.host, body, this.nowMs())) {
          this.internal.publish(reply, "", m);
        }
      }),
      this.internal.subscribe(this.inbox, null, (_s, _r, body) => this.received(body)),
    );
    this.schedule(intervalMs);
  }

  /** A reload's new `interval`: the next request comes that long from now. */
  restartTimer(intervalMs: number): void {
    if (this.timer === null) return;
    clearInterval(this.timer);
    this.schedule(intervalMs);
  }

  private schedule(intervalMs: number): void {
    this.timer = setInterval(() => this.ask(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const sub of this.subs) this.internal.unsubscribe(sub);
    this.subs = [];
  }

  /** One pack request with this directory's hash (what the timer sends). */
  ask(): void {
    const hash = this.state().hash;
    this.host.log.debug(`Checking store state: ${hash.toString("hex")}`);
    this.internal.publish(PACK_SUBJECT, this.inbox, hash);
  }

  private state(): DirectoryState {
    return directoryState(this.host.opts.operator!.resolverDir, this.nowMs());
  }

  /** One reply to this server's request: JWTs to merge, or the empty end. */
  private received(body: Buffer): void {
    const log = this.host.log;
    // The hashes are for the debug lines only: reading the directory again is not free.
    const hash = () => (log.debugEnabled ? this.state().hash.toString("hex") : "");
    if (body.length === 0) {
      log.debug(`Merging Finished and resulting in: ${hash()}`);
      return;
    }
    const before = hash();
    try {
      mergePack(this.host, body.toString("utf8"), this.nowMs());
    } catch (err) {
      log.error(`Merging resulted in error: ${(err as Error).message}`);
      return;
    }
    log.debug(`Merging succeeded and changed ${before} to ${hash()}`);
  }
}

// Client authentication (user/password, token, a users list, NKeys signing the server's nonce;
// passwords and tokens may be bcrypt hashes)
// and per-user publish/subscribe permissions, as nats-server checks them. Permission results are cached per subject, since a
// publisher usually sends to few subjects; the cache is bounded.

import { monotonicMs, nodeCrypto } from "../lib/lazy.js";
import type {
  Options,
  Permissions,
  ResponsePermission,
  SubjectPermission,
  User,
} from "./options.js";
import { patternIsSubsetOf, subjectHasWildcard, subjectMatchesPattern } from "./subject.js";
import { sameDn } from "./tls.js";
import { authenticateJwt, verifyNonce, type JwtLimits } from "./jwt.js";

export { verifyNonce };

export interface ConnectAuth {
  user?: string;
  pass?: string;
  auth_token?: string;
  /** NKey authentication: the user's public key, and the server's nonce signed with its seed. */
  nkey?: string;
  sig?: string;
  /** The nonce this connection was sent in INFO ("" when none). */
  nonce?: string;
  /** With verify_and_map: the client certificate's identities (tls.ts certIdentities). */
  certIdentities?: string[];
  /** Operator mode: the user JWT (its key signs the nonce in `sig`). */
  jwt?: string;
  /** Operator mode: the client's IP address and connection type (STANDARD, WEBSOCKET). */
  host?: string;
  connectionType?: string;
}

/** What a client may do once authenticated; null permissions mean everything is allowed. */
export interface AuthResult {
  user: string;
  permissions: CompiledPermissions | null;
  /** The user's account name; undefined: the global account ($G). */
  account?: string | undefined;
  /** A JWT user's: when its authentication expires (ms since the epoch), and its limits. */
  expiresAt?: number | null;
  limits?: JwtLimits;
}

function equal(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && nodeCrypto().timingSafeEqual(ab, bb);
}

type BcryptLib = typeof import("bcryptjs");
let bcryptLib: BcryptLib | null = null;

/** bcryptjs, loaded the first time a bcrypt password is checked. */
function bcrypt(): BcryptLib {
  // node:module through getBuiltinModule: importing it loads Node's ES module loader (lazy.ts).
  const { createRequire } = process.getBuiltinModule("node:module");
  return (bcryptLib ??= createRequire(import.meta.url)("bcryptjs") as BcryptLib);
}

/** Digests of (hash, password) pairs that matched, so that a reconnecting client pays once. */
const bcryptMatches = new Set<string>();
const BCRYPT_MATCHES_MAX = 256;

/**
 * A configured password (or token) against the one a client sent, as nats-server's
 * comparePasswords: a bcrypt hash by bcrypt, anything else as text in constant time. bcrypt is
 * slow by design (about 150 ms at cost 11, on the event loop: CONNECT is handled synchronously),
 * so a pair that matched once is remembered (bounded); a wrong password costs the full check.
 */
export function passwordMatches(stored: string, given: string): boolean {
  if (!isBcrypt(stored)) return equal(stored, given);
  const key = nodeCrypto()
    .createHash("sha256")
    .update(stored)
    .update("\0")
    .update(given)
    .digest("base64");
  if (bcryptMatches.has(key)) return true;
  let ok: boolean;
  try {
    ok = bcrypt().compareSync(given, stored);
  } catch {
    ok = false; // a hash bcryptjs cannot read: nothing matches it
  }
  if (ok) {
    if (bcryptMatches.size >= BCRYPT_MATCHES_MAX) {
      bcryptMatches.delete(bcryptMatches.values().next().value as string);
    }
    bcryptMatches.add(key);
  }
  return ok;
}

export function authRequired(opts: Readonly<Options>): boolean {
  return (
    opts.username !== "" ||
    opts.authToken !== "" ||
    opts.users.length > 0 ||
    opts.nkeys.length > 0 ||
    opts.operator !== null
  );
}

/** INFO carries a nonce for the client to sign when any user is known by NKey (nats-server's nonceRequired). */
export function nonceRequired(opts: Readonly<Options>): boolean {
  return opts.nkeys.length > 0 || opts.operator !== null;
}

/** A fresh nonce as nats-server makes it: 11 random bytes, base64url without padding. */
export function newNonce(): string {
  return nodeCrypto().randomBytes(11).toString("base64url");
}

function userResult(u: User): AuthResult {
  return { user: u.user, permissions: compile(u.permissions), account: u.account };
}

/** A bcrypt hash as nats-server recognises one (`$2a$11$...`): compared by bcrypt, not as text. */
export function isBcrypt(password: string): boolean {
  return /^\$2[abxy]\$\d{2}\$/.test(password);
}

/**
 * nats-server's "Plaintext passwords detected" check: the single user's password, or any user's
 * that is not a bcrypt hash (users without one are skipped under verify_and_map).
 */
export function hasPlaintextPasswords(opts: Readonly<Options>): boolean {
  if (opts.password !== "" && !isBcrypt(opts.password)) return true;
  const mapped = opts.tls?.verifyAndMap === true;
  return opts.users.some((u) => !(u.password === "" && mapped) && !isBcrypt(u.password));
}

/**
 * Checks CONNECT credentials; null means the client is refused (Authorization Violation). With
 * `why`, a refusal's reason is told (nats-server's debug line, or error line when `error`). `nowMs` checks JWT times.
 */
export function authenticate(
  opts: Readonly<Options>,
  c: ConnectAuth,
  why?: (reason: string, error?: boolean) => void,
  nowMs: number = Date.now(),
): AuthResult | null {
  // Operator mode: a user JWT, and nothing else (nats-server's trustedKeys).
  if (opts.operator !== null) {
    const r = authenticateJwt(opts.operator.accounts, c, nowMs);
    if (!r.ok) {
      why?.(r.why, r.error);
      return null;
    }
    const u = r.user;
    return {
      user: u.pub,
      permissions: compile(u.permissions),
      account: u.account,
      expiresAt: u.expiresAt,
      limits: u.limits,
    };
  }
  // As nats-server: a CONNECT naming an nkey is checked against the nkey users alone.
  if (opts.nkeys.length > 0 && (c.nkey ?? "") !== "") {
    const n = opts.nkeys.find((x) => x.nkey === c.nkey);
    if (n === undefined || !verifyNonce(n.nkey, c.nonce ?? "", c.sig ?? "")) return null;
    return { user: n.nkey, permissions: compile(n.permissions), account: n.account };
  }
  if (opts.users.length > 0 && opts.tls?.verifyAndMap) {
    // The user is the first identity of the certificate that names one; no password.
    const ids = c.certIdentities ?? [];
    const dn = ids[ids.length - 1];
    for (const id of ids) {
      const u = opts.users.find((x) => x.user === id);
      if (u) return userResult(u);
    }
    const u = dn === undefined ? undefined : opts.users.find((x) => sameDn(x.user, dn));
    return u ? userResult(u) : null;
  }
  if (opts.users.length > 0) {
    const name = c.user ?? "";
    if (name === "" && opts.noAuthUser !== "") {
      const u = opts.users.find((x) => x.user === opts.noAuthUser)!;
      return userResult(u);
    }
    const u = opts.users.find((x) => x.user === name);
    if (!u || !passwordMatches(u.password, c.pass ?? "")) return null;
    return userResult(u);
  }
  if (opts.nkeys.length > 0) return null;
  if (opts.authToken !== "") {
    return passwordMatches(opts.authToken, c.auth_token ?? "")
      ? { user: "", permissions: null }
      : null;
  }
  if (opts.username !== "") {
    const ok = equal(opts.username, c.user ?? "") && passwordMatches(opts.password, c.pass ?? "");
    return ok ? { user: opts.username, permissions: null } : null;
  }
  return { user: "", permissions: null };
}

const CACHE_MAX = 1024;

/** "subject" or "subject queue" (a subscribe permission for one queue group), as nats-server splits it. */
export function splitSubjectQueue(entry: string): { subject: string; queue: string | null } {
  const parts = entry.trim().split(/\s+/);
  return { subject: parts[0] ?? "", queue: parts[1] ?? null };
}

/** Does a SUB's queue name match a queue permission (literally, or as a wildcard pattern)? */
function queueMatches(queue: string, patterns: readonly string[]): boolean {
  return patterns.some(
    (q) => q === queue || (subjectHasWildcard(q) && subjectMatchesPattern(queue, q)),
  );
}

/** The queue names of the queue entries whose subject covers a SUB's subject. */
function queuesCovering(entries: Array<{ subject: string; queue: string }>, subject: string) {
  return entries.filter((e) => patternIsSubsetOf(subject, e.subject)).map((e) => e.queue);
}

class SubjectRule {
  private readonly cache = new Map<string, boolean>();
  private readonly denyCache = new Map<string, boolean>();
  /** Entries without a queue, and queue entries ("subject queue") split. */
  private readonly allow: string[] = [];
  private readonly deny: string[] = [];
  private readonly allowQ: Array<{ subject: string; queue: string }> = [];
  private readonly denyQ: Array<{ subject: string; queue: string }> = [];
  /** An allow list was given (an empty one allows nothing: allow_responses sets one). */
  private readonly hasAllow: boolean;

  constructor(p: SubjectPermission, emptyAllowDeniesAll = false) {
    for (const [list, plain, queued] of [
      [p.allow, this.allow, this.allowQ],
      [p.deny, this.deny, this.denyQ],
    ] as const) {
      for (const e of list) {
        const { subject, queue } = splitSubjectQueue(e);
        if (queue === null) plain.push(subject);
        else queued.push({ subject, queue });
      }
    }
    this.hasAllow = p.allow.length > 0 || emptyAllowDeniesAll;
  }

  /** May a message be published to this literal subject? */
  allowsLiteral(subject: string): boolean {
    const hit = this.cache.get(subject);
    if (hit !== undefined) return hit;
    const ok =
      (!this.hasAllow || this.allow.some((a) => subjectMatchesPattern(subject, a))) &&
      !this.deny.some((d) => subjectMatchesPattern(subject, d));
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(subject, ok);
    return ok;
  }

  /** Is this literal subject outside every deny entry (messages to wildcard subscriptions)? */
  notDenied(subject: string): boolean {
    if (this.deny.length === 0) return true;
    const hit = this.denyCache.get(subject);
    if (hit !== undefined) return hit;
    const ok = !this.deny.some((d) => subjectMatchesPattern(subject, d));
    if (this.denyCache.size >= CACHE_MAX) this.denyCache.clear();
    this.denyCache.set(subject, ok);
    return ok;
  }

  /**
   * May a subscription on this (possibly wildcard) subject, in this queue group or none, be made?
   * As nats-server's canSubscribe: an allow entry without a queue must cover the subject, but when
   * queue entries cover it the SUB's queue decides; a covering deny entry without a queue refuses
   * it, and covering queue deny entries refuse the queues they name.
   */
  allowsPattern(subject: string, queue: string | null = null): boolean {
    let ok = true;
    if (this.hasAllow) {
      ok = this.allow.some((a) => patternIsSubsetOf(subject, a));
      if (queue !== null) {
        const names = queuesCovering(this.allowQ, subject);
        if (names.length > 0) ok = queueMatches(queue, names);
      }
    }
    if (ok && (this.deny.length > 0 || this.denyQ.length > 0)) {
      ok = !this.deny.some((d) => patternIsSubsetOf(subject, d));
      if (queue !== null) {
        const names = queuesCovering(this.denyQ, subject);
        if (names.length > 0) ok = !queueMatches(queue, names);
      }
    }
    return ok;
  }
}

/** nats-server's replyPermLimit: reply subjects remembered before expired ones are pruned. */
const REPLY_PRUNE_AT = 4096;

/**
 * allow_responses: the reply subjects of messages delivered to a connection, each of which it may
 * publish to (beyond its publish permissions) up to maxMsgs times within expiresMs of receiving it.
 */
export class ResponsePermits {
  private readonly replies = new Map<string, { at: number; n: number }>();
  constructor(
    private readonly perm: ResponsePermission,
    private readonly now: () => number = monotonicMs,
  ) {}

  /** A message with this reply subject was delivered to the connection. */
  delivered(reply: string): void {
    this.replies.set(reply, { at: this.now(), n: 0 });
    if (this.replies.size > REPLY_PRUNE_AT) this.prune();
  }

  /** May the connection publish to this subject as a response? Counts the use. */
  use(subject: string): boolean {
    const r = this.replies.get(subject);
    if (r === undefined) return false;
    r.n++;
    const { maxMsgs, expiresMs } = this.perm;
    if ((maxMsgs > 0 && r.n > maxMsgs) || (expiresMs > 0 && this.now() - r.at > expiresMs)) {
      this.replies.delete(subject);
      return false;
    }
    return true;
  }

  get size(): number {
    return this.replies.size;
  }

  private prune(): void {
    const { maxMsgs, expiresMs } = this.perm;
    const now = this.now();
    for (const [k, r] of this.replies) {
      if ((maxMsgs > 0 && r.n >= maxMsgs) || (expiresMs > 0 && now - r.at > expiresMs)) {
        this.replies.delete(k);
      }
    }
  }
}

export class CompiledPermissions {
  private readonly pub: SubjectRule | null;
  private readonly sub: SubjectRule | null;
  /** allow_responses: reply subjects this connection may answer (null when not enabled). */
  readonly responses: ResponsePermits | null;
  constructor(
    /** The permissions as configured (what $SYS.REQ.USER.INFO shows). */
    readonly config: Permissions,
    now?: () => number,
  ) {
    const p = config;
    this.responses = p.response ? new ResponsePermits(p.response, now) : null;
    // nats-server: allow_responses turns off the blanket publish allow.
    const pub = p.publish ?? (p.response ? { allow: [], deny: [] } : undefined);
    this.pub = pub ? new SubjectRule(pub, p.response !== undefined) : null;
    this.sub = p.subscribe ? new SubjectRule(p.subscribe) : null;
  }
  /** May this connection publish here (a reply it was sent counts once more, see ResponsePermits)? */
  canPublish(subject: string): boolean {
    if (this.pub === null || this.pub.allowsLiteral(subject)) return true;
    return this.responses !== null && this.responses.use(subject);
  }
  canSubscribe(subject: string, queue: string | null = null): boolean {
    return this.sub === null || this.sub.allowsPattern(subject, queue);
  }
  /**
   * Should a message on this subject be delivered to this subscriber? Only the subscribe deny
   * list filters deliveries (a wildcard subscription may cover denied subjects), as nats-server.
   */
  canDeliver(subject: string): boolean {
    return this.sub === null || this.sub.notDenied(subject);
  }
}

function compile(p: Permissions | undefined): CompiledPermissions | null {
  return p && (p.publish || p.subscribe || p.response) ? new CompiledPermissions(p) : null;
}

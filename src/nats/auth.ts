// Client authentication (user/password, token, a users list) and per-user publish/subscribe
// permissions, as nats-server checks them. Permission results are cached per subject, since a
// publisher usually sends to few subjects; the cache is bounded.

import { timingSafeEqual } from "node:crypto";
import type { Options, Permissions, SubjectPermission } from "./options.js";
import { patternIsSubsetOf, subjectMatchesPattern } from "./subject.js";
import { sameDn } from "./tls.js";

export interface ConnectAuth {
  user?: string;
  pass?: string;
  auth_token?: string;
  /** With verify_and_map: the client certificate's identities (tls.ts certIdentities). */
  certIdentities?: string[];
}

/** What a client may do once authenticated; null permissions mean everything is allowed. */
export interface AuthResult {
  user: string;
  permissions: CompiledPermissions | null;
}

function equal(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

export function authRequired(opts: Readonly<Options>): boolean {
  return opts.username !== "" || opts.authToken !== "" || opts.users.length > 0;
}

/** Checks CONNECT credentials; null means the client is refused (Authorization Violation). */
export function authenticate(opts: Readonly<Options>, c: ConnectAuth): AuthResult | null {
  if (opts.users.length > 0 && opts.tls?.verifyAndMap) {
    // The user is the first identity of the certificate that names one; no password.
    const ids = c.certIdentities ?? [];
    const dn = ids[ids.length - 1];
    for (const id of ids) {
      const u = opts.users.find((x) => x.user === id);
      if (u) return { user: u.user, permissions: compile(u.permissions) };
    }
    const u = dn === undefined ? undefined : opts.users.find((x) => sameDn(x.user, dn));
    return u ? { user: u.user, permissions: compile(u.permissions) } : null;
  }
  if (opts.users.length > 0) {
    const name = c.user ?? "";
    if (name === "" && opts.noAuthUser !== "") {
      const u = opts.users.find((x) => x.user === opts.noAuthUser)!;
      return { user: u.user, permissions: compile(u.permissions) };
    }
    const u = opts.users.find((x) => x.user === name);
    if (!u || !equal(u.password, c.pass ?? "")) return null;
    return { user: u.user, permissions: compile(u.permissions) };
  }
  if (opts.authToken !== "") {
    return equal(opts.authToken, c.auth_token ?? "") ? { user: "", permissions: null } : null;
  }
  if (opts.username !== "") {
    const ok = equal(opts.username, c.user ?? "") && equal(opts.password, c.pass ?? "");
    return ok ? { user: opts.username, permissions: null } : null;
  }
  return { user: "", permissions: null };
}

const CACHE_MAX = 1024;

class SubjectRule {
  private readonly cache = new Map<string, boolean>();
  constructor(private readonly p: SubjectPermission) {}

  /** May a message be published to this literal subject? */
  allowsLiteral(subject: string): boolean {
    const hit = this.cache.get(subject);
    if (hit !== undefined) return hit;
    const ok =
      (this.p.allow.length === 0 || this.p.allow.some((a) => subjectMatchesPattern(subject, a))) &&
      !this.p.deny.some((d) => subjectMatchesPattern(subject, d));
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(subject, ok);
    return ok;
  }

  /**
   * May a subscription on this (possibly wildcard) subject be made? nats-server allows it when an
   * allow pattern covers it and no deny pattern covers it.
   */
  allowsPattern(subject: string): boolean {
    const ok =
      (this.p.allow.length === 0 || this.p.allow.some((a) => patternIsSubsetOf(subject, a))) &&
      !this.p.deny.some((d) => patternIsSubsetOf(subject, d));
    return ok;
  }
}

export class CompiledPermissions {
  private readonly pub: SubjectRule | null;
  private readonly sub: SubjectRule | null;
  constructor(p: Permissions) {
    this.pub = p.publish ? new SubjectRule(p.publish) : null;
    this.sub = p.subscribe ? new SubjectRule(p.subscribe) : null;
  }
  canPublish(subject: string): boolean {
    return this.pub === null || this.pub.allowsLiteral(subject);
  }
  canSubscribe(subject: string): boolean {
    return this.sub === null || this.sub.allowsPattern(subject);
  }
  /** Should a message on this subject be delivered to this subscriber (deny on wildcard subs)? */
  canDeliver(subject: string): boolean {
    return this.sub === null || this.sub.allowsLiteral(subject);
  }
}

function compile(p: Permissions | undefined): CompiledPermissions | null {
  return p && (p.publish || p.subscribe) ? new CompiledPermissions(p) : null;
}

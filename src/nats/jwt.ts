// Decentralized authentication (nats-server's operator mode): the operator JWT the server trusts,
// the account JWTs of `resolver_preload` (resolver: MEMORY), and the user JWTs clients present in
// CONNECT with the server's nonce signed by the user's key. A NATS JWT is three base64url parts,
// `header.claims.signature`, the signature being the issuer's ed25519 signature (an NKey) over
// "header.claims". Decoding and checking here, as nats-io/jwt v2 and nats-server's
// processClientOrLeafAuthentication do; nkeys.js is loaded only when a JWT is first checked.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { AccountConfig, ExportConfig, ImportConfig, Permissions } from "./options.js";

/** A JWT that cannot be used, with what is wrong with it. */
export class JwtError extends Error {
  readonly code = "ERR_NATS_JWT";
  constructor(message: string) {
    super(message);
    this.name = "JwtError";
  }
}

type NkeysLib = typeof import("nkeys.js");
let nkeysLib: NkeysLib | null = null;

/** nkeys.js, loaded on first use (a server without JWTs or NKeys never loads it). */
export function nkeys(): NkeysLib {
  return (nkeysLib ??= createRequire(import.meta.url)("nkeys.js") as NkeysLib);
}

export type ClaimType = "operator" | "account" | "user";

export interface JwtClaims {
  jti: string;
  iat: number;
  iss: string;
  sub: string;
  name?: string;
  /** Seconds since the epoch; absent: never. */
  exp?: number;
  nbf?: number;
  nats: Record<string, unknown>;
}

/** The key prefixes of each claim type's subject, and of the keys that may sign it. */
const PREFIX: Record<ClaimType, { sub: string; iss: string; issName: string }> = {
  operator: { sub: "O", iss: "O", issName: "operator" },
  account: { sub: "A", iss: "O", issName: "operator" },
  user: { sub: "U", iss: "A", issName: "account" },
};

function decodePart(part: string, what: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
    if (typeof v === "object" && v !== null && !Array.isArray(v)) {
      return v as Record<string, unknown>;
    }
  } catch {
    // reported below
  }
  throw new JwtError(`the JWT's ${what} is not base64url JSON`);
}

/** Did the holder of public key `pub` sign `data` (signature bytes)? */
export function verifySignature(pub: string, data: Uint8Array, sig: Uint8Array): boolean {
  try {
    return nkeys().fromPublic(pub).verify(data, sig);
  } catch {
    return false;
  }
}

/** Did the holder of `nkey`'s seed sign `nonce` (sig in base64url, or standard base64)? */
export function verifyNonce(nkey: string, nonce: string, sig: string): boolean {
  if (nonce === "" || sig === "") return false;
  const bytes = /[+/=]/.test(sig) ? Buffer.from(sig, "base64") : Buffer.from(sig, "base64url");
  return verifySignature(nkey, Buffer.from(nonce, "latin1"), bytes);
}

/**
 * Decodes a JWT of the given type and checks its form and its signature by the issuer it names
 * (not whether that issuer is trusted, nor the times: see timeIssue).
 */
export function decodeJwt(token: string, type: ClaimType): JwtClaims {
  const parts = token.trim().split(".");
  if (parts.length !== 3) throw new JwtError("not a JWT: expected 3 parts separated by dots");
  const [h, c, s] = parts as [string, string, string];
  const header = decodePart(h, "header");
  if (String(header["typ"]).toUpperCase() !== "JWT") {
    throw new JwtError(`not a JWT: header type ${JSON.stringify(header["typ"])}`);
  }
  if (header["alg"] !== "ed25519-nkey") {
    throw new JwtError(
      `unsupported JWT algorithm ${JSON.stringify(header["alg"])} (only v2 "ed25519-nkey")`,
    );
  }
  const claims = decodePart(c, "claims") as unknown as JwtClaims;
  const nats = claims.nats as Record<string, unknown> | undefined;
  if (typeof nats !== "object" || nats === null) throw new JwtError("the JWT has no nats claims");
  if (nats["type"] !== type) {
    throw new JwtError(`expected a JWT of type ${type}, got ${JSON.stringify(nats["type"])}`);
  }
  if (typeof claims.iss !== "string" || typeof claims.sub !== "string") {
    throw new JwtError("the JWT has no issuer or subject");
  }
  const p = PREFIX[type];
  if (!claims.iss.startsWith(p.iss)) {
    throw new JwtError(`a ${type} JWT must be signed by an ${p.issName} key, not ${claims.iss}`);
  }
  if (!claims.sub.startsWith(p.sub)) {
    throw new JwtError(`the subject of a ${type} JWT must be a ${type} public key`);
  }
  const sig = Buffer.from(s, "base64url");
  if (!verifySignature(claims.iss, Buffer.from(`${h}.${c}`, "latin1"), sig)) {
    throw new JwtError(
      "the JWT's signature does not verify (claim failed V2 signature verification)",
    );
  }
  return claims;
}

/** nats-io/jwt's time checks: why the claims are not valid at `nowSec`, or null. */
export function timeIssue(claims: JwtClaims, nowSec: number): string | null {
  if (typeof claims.exp === "number" && claims.exp > 0 && nowSec > claims.exp) {
    return "claim is expired";
  }
  if (typeof claims.nbf === "number" && claims.nbf > 0 && nowSec < claims.nbf) {
    return "claim is not yet valid";
  }
  return null;
}

/** nsc's decorated form: `-----BEGIN ...-----\n<jwt>\n------END ...------`. */
const DECORATED = /-{3,}[^\n]*-{3,}\r?\n\s*([A-Za-z0-9_.=-]+)\s*\r?\n\s*-{3,}[^\n]*-{3,}/;

export interface TrustedOperator {
  pub: string;
  name: string;
  signingKeys: string[];
  /** The operator's `system_account` claim ("" when none). */
  systemAccount: string;
}

/** `operator: <file or JWT>`: the operator JWT, inline or read from a (possibly decorated) file. */
export function readOperatorJwt(value: string): TrustedOperator {
  let text = value.trim();
  if (!text.startsWith("eyJ")) {
    try {
      text = readFileSync(text, "utf8");
    } catch (err) {
      throw new JwtError(`cannot read ${value}: ${(err as Error).message}`);
    }
    const m = DECORATED.exec(text);
    text = (m?.[1] ?? text).trim();
  }
  const c = decodeJwt(text, "operator");
  if (c.iss !== c.sub) throw new JwtError("an operator JWT must be self-signed");
  return {
    pub: c.sub,
    name: c.name ?? "",
    signingKeys: signingKeyList(c.nats["signing_keys"]).map((k) => k.key),
    systemAccount: typeof c.nats["system_account"] === "string" ? c.nats["system_account"] : "",
  };
}

/** A signing key of an account: a plain key, or a scoped one whose users get its template. */
export interface SigningKey {
  key: string;
  /** A scoped key's template (user permissions and limits); null for a plain key. */
  scope: Record<string, unknown> | null;
}

function signingKeyList(v: unknown): SigningKey[] {
  if (!Array.isArray(v)) return [];
  const out: SigningKey[] = [];
  for (const e of v) {
    if (typeof e === "string") out.push({ key: e, scope: null });
    else if (
      typeof e === "object" &&
      e !== null &&
      typeof (e as { key?: unknown }).key === "string"
    ) {
      const o = e as { key: string; template?: Record<string, unknown> };
      out.push({ key: o.key, scope: o.template ?? {} });
    }
  }
  return out;
}

/** The limits shoal enforces from JWTs (-1: no limit, as nats-io/jwt's NoLimit). */
export interface JwtLimits {
  subs: number;
  payload: number;
}

/** An account of `resolver_preload`, as the server uses it. */
export interface JwtAccount {
  pub: string;
  claims: JwtClaims;
  signingKeys: SigningKey[];
  /** Account-wide limits, and `conn`: connections at most. */
  limits: JwtLimits & { conn: number };
  /** User keys (or "*") revoked for JWTs issued at or before the time (seconds). */
  revocations: Record<string, number>;
  /** Permissions of users whose JWT has none (`default_permissions`). */
  defaultPermissions: Permissions | undefined;
  config: AccountConfig;
}

const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : -1);
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];

/** A JWT's `pub`/`sub`/`resp` (user claims, a scope template, default_permissions) as Permissions. */
export function jwtPermissions(n: Record<string, unknown>): Permissions | undefined {
  const p: Permissions = {};
  for (const [k, key] of [
    ["pub", "publish"],
    ["sub", "subscribe"],
  ] as const) {
    const o = (n[k] ?? {}) as Record<string, unknown>;
    const allow = strings(o["allow"]);
    const deny = strings(o["deny"]);
    if (allow.length > 0 || deny.length > 0) p[key] = { allow, deny };
  }
  const resp = n["resp"] as { max?: unknown; ttl?: unknown } | undefined | null;
  if (typeof resp === "object" && resp !== null) {
    // ttl is a Go duration in nanoseconds; 0 takes nats-server's defaults.
    p.response = {
      maxMsgs: num(resp.max) > 0 ? num(resp.max) : 1,
      expiresMs: num(resp.ttl) > 0 ? num(resp.ttl) / 1e6 : 2 * 60 * 1000,
    };
  }
  return p.publish || p.subscribe || p.response ? p : undefined;
}

/** The account a preloaded account JWT describes (its imports not yet checked against exporters). */
export function accountFromJwt(pub: string, token: string): JwtAccount {
  const claims = decodeJwt(token, "account");
  if (claims.sub !== pub) {
    throw new JwtError(`the account JWT is for ${claims.sub}, not for ${pub}`);
  }
  const n = claims.nats;
  const lim = (n["limits"] ?? {}) as Record<string, unknown>;
  const exports: ExportConfig[] = [];
  for (const e of Array.isArray(n["exports"]) ? (n["exports"] as Record<string, unknown>[]) : []) {
    const kind = e["type"] === "service" ? "service" : "stream";
    if (typeof e["subject"] !== "string") continue;
    // An export that needs an activation token is imported by none here (tokens are not read).
    exports.push({ kind, subject: e["subject"], accounts: e["token_req"] ? [" token"] : [] });
  }
  const imports: ImportConfig[] = [];
  for (const i of Array.isArray(n["imports"]) ? (n["imports"] as Record<string, unknown>[]) : []) {
    const subject = typeof i["subject"] === "string" ? i["subject"] : "";
    const account = typeof i["account"] === "string" ? i["account"] : "";
    const local = typeof i["local_subject"] === "string" ? i["local_subject"] : "";
    const to = typeof i["to"] === "string" ? i["to"] : "";
    if (subject === "" || account === "") continue;
    if (i["type"] === "service") {
      // nats-server: with local_subject, local → subject; else subject (local) → to (exported).
      if (local !== "") imports.push({ kind: "service", account, subject, to: local });
      else imports.push({ kind: "service", account, subject: to || subject, to: subject });
    } else {
      // A stream's `to` is a prefix (nats-server's AddStreamImportWithClaim).
      const mapped =
        local !== "" ? local : to !== "" ? `${to.replace(/\.$/, "")}.${subject}` : subject;
      imports.push({ kind: "stream", account, subject, to: mapped });
    }
  }
  const rev = (n["revocations"] ?? {}) as Record<string, unknown>;
  return {
    pub,
    claims,
    signingKeys: signingKeyList(n["signing_keys"]),
    limits: { subs: num(lim["subs"]), payload: num(lim["payload"]), conn: num(lim["conn"]) },
    revocations: Object.fromEntries(Object.entries(rev).map(([k, v]) => [k, num(v)])),
    defaultPermissions: jwtPermissions((n["default_permissions"] ?? {}) as Record<string, unknown>),
    config: { name: pub, exports, imports },
  };
}

/** What a user JWT grants once checked. */
export interface JwtUser {
  pub: string;
  account: string;
  permissions: Permissions | undefined;
  limits: JwtLimits;
  /** When the user's authentication expires (ms since the epoch); null: never. */
  expiresAt: number | null;
}

/** Why a CONNECT's JWT is refused (nats-server's debug line), or the user it authenticates. */
export type JwtAuthResult = { ok: true; user: JwtUser } | { ok: false; why: string };

/**
 * nats-server's processClientOrLeafAuthentication with trusted operators: the user JWT, its
 * account (preloaded, trusted, not expired), the signer (the account or one of its signing keys),
 * the nonce signature (unless a bearer token), revocations. `nowMs` is injected for tests.
 */
export function authenticateJwt(
  accounts: ReadonlyMap<string, JwtAccount>,
  c: { jwt?: string | undefined; sig?: string | undefined; nonce?: string | undefined },
  nowMs: number,
): JwtAuthResult {
  const fail = (why: string): JwtAuthResult => ({ ok: false, why });
  if ((c.jwt ?? "") === "") return fail("Authentication requires a user JWT");
  let juc: JwtClaims;
  try {
    juc = decodeJwt(c.jwt!, "user");
  } catch (err) {
    return fail(`User JWT not valid: ${(err as Error).message}`);
  }
  const nowSec = Math.floor(nowMs / 1000);
  const t = timeIssue(juc, nowSec);
  if (t !== null) return fail(`User JWT no longer valid: ${t}`);
  const issuerAccount =
    typeof juc.nats["issuer_account"] === "string" ? juc.nats["issuer_account"] : "";
  const accPub = issuerAccount !== "" ? issuerAccount : juc.iss;
  const acc = accounts.get(accPub);
  if (acc === undefined) return fail("Account JWT lookup error: account missing");
  let perms = jwtPermissions(juc.nats);
  let limits: JwtLimits = { subs: num(juc.nats["subs"]), payload: num(juc.nats["payload"]) };
  if (juc.iss !== acc.pub) {
    const sk = acc.signingKeys.find((k) => k.key === juc.iss);
    if (sk === undefined) return fail("User JWT issuer is not known");
    if (sk.scope !== null) {
      // A scoped signer's users get the scope's permissions and limits, not their own.
      perms = jwtPermissions(sk.scope);
      limits = { subs: num(sk.scope["subs"]), payload: num(sk.scope["payload"]) };
    }
  }
  if (timeIssue(acc.claims, nowSec) !== null) return fail("Account JWT has expired");
  if (juc.nats["bearer_token"] !== true) {
    if ((c.sig ?? "") === "") return fail("Signature missing");
    if (!verifyNonce(juc.sub, c.nonce ?? "", c.sig!)) return fail("Signature not verified");
  }
  const revokedAt = Math.max(acc.revocations[juc.sub] ?? -1, acc.revocations["*"] ?? -1);
  if (revokedAt >= 0 && juc.iat <= revokedAt) return fail("User authentication revoked");
  return {
    ok: true,
    user: {
      pub: juc.sub,
      account: acc.pub,
      permissions: perms ?? acc.defaultPermissions,
      limits,
      expiresAt: typeof juc.exp === "number" && juc.exp > 0 ? juc.exp * 1000 : null,
    },
  };
}

/** The tighter of two limits where -1 (or below) is none. */
export function tighter(a: number, b: number): number {
  if (a < 0) return b;
  if (b < 0) return a;
  return Math.min(a, b);
}

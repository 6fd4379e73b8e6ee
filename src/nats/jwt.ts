// Decentralized authentication (nats-server's operator mode): the operator JWT the server trusts,
// the account JWTs of `resolver_preload` (resolver: MEMORY), and the user JWTs clients present in
// CONNECT with the server's nonce signed by the user's key. A NATS JWT is three base64url parts,
// `header.claims.signature`, the signature being the issuer's ed25519 signature (an NKey) over
// "header.claims". Decoding and checking here, as nats-io/jwt v2 and nats-server's
// processClientOrLeafAuthentication do; nkeys.js is loaded only when a JWT is first checked.

import { readFileSync } from "node:fs";
import { BlockList, isIP } from "node:net";
import type { AccountConfig, ExportConfig, ImportConfig, Permissions } from "./options.js";
import { patternIsSubsetOf } from "./subject.js";

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
  // node:module through getBuiltinModule: importing it loads Node's ES module loader (lazy.ts).
  const { createRequire } = process.getBuiltinModule("node:module");
  return (nkeysLib ??= createRequire(import.meta.url)("nkeys.js") as NkeysLib);
}

export type ClaimType = "operator" | "account" | "user" | "activation";

export interface JwtClaims {
  jti: string;
  iat: number;
  iss: string;
  sub: string;
  name?: string;
  aud?: string;
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
  // An activation is issued by the exporting account (or its signing key) to the importing one.
  activation: { sub: "A", iss: "A", issName: "account" },
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
    const what = type === "activation" ? "an account" : `a ${type}`;
    throw new JwtError(`the subject of a ${type} JWT must be ${what} public key`);
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
  /** The decoded claims (a reload compares them, and prints them as nats-server does). */
  claims: JwtClaims;
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
    claims: c,
  };
}

/** The fields of nats-io/jwt's OperatorClaims as Go marshals them, in its struct order. */
const OPERATOR_CLAIM_FIELDS = ["aud", "exp", "jti", "iat", "iss", "name", "nbf", "sub"];
const OPERATOR_NATS_FIELDS = [
  "signing_keys",
  "account_server_url",
  "operator_service_urls",
  "system_account",
  "assert_server_version",
  "strict_signing_key_usage",
  "tags",
  "type",
  "version",
];

/**
 * Operator claims as nats-io/jwt's OperatorClaims.String() prints them: Go's json.MarshalIndent
 * (two spaces) of its struct, fields in struct order, empty ones left out, <, > and & escaped.
 */
export function operatorClaimsText(claims: JwtClaims): string {
  const pick = (from: Record<string, unknown>, keys: string[]) => {
    const out: Record<string, unknown> = {};
    for (const k of keys) {
      const v = from[k];
      const empty =
        v === undefined ||
        v === null ||
        v === "" ||
        v === 0 ||
        v === false ||
        (Array.isArray(v) && v.length === 0);
      if (!empty) out[k] = v;
    }
    return out;
  };
  const c = pick(claims as unknown as Record<string, unknown>, OPERATOR_CLAIM_FIELDS);
  // A struct, so never left out.
  c["nats"] = pick(claims.nats, OPERATOR_NATS_FIELDS);
  return JSON.stringify(c, null, 2).replace(
    /[<>&\u2028\u2029]/g,
    (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
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

/** An export of an account JWT as the JWT states it (token_req and revoked activations). */
export interface JwtExport {
  kind: "stream" | "service";
  subject: string;
  tokenReq: boolean;
  /** Importing account (or "*") → activations issued at or before this time (seconds) are revoked. */
  revocations: Record<string, number>;
}

/** An import of an account JWT as the JWT states it: `subject` is the exporter's subject. */
export interface JwtImport {
  kind: "stream" | "service";
  account: string;
  subject: string;
  /** The activation token ("" when none). */
  token: string;
}

/** An account of `resolver_preload` (or of a directory resolver), as the server uses it. */
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
  exportClaims: JwtExport[];
  /** One per entry of config.imports, in the same order. */
  importClaims: JwtImport[];
}

const num = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : -1);
/** A limit of a JWT: one it leaves out is 0, as nats-server decodes it (nsc writes -1, none). */
const limit = (v: unknown): number => (typeof v === "number" && Number.isFinite(v) ? v : 0);
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
const revocationList = (v: unknown): Record<string, number> =>
  Object.fromEntries(
    Object.entries((v ?? {}) as Record<string, unknown>).map(([k, t]) => [k, num(t)]),
  );

/** nats-server's isRevoked: is `key` (or "*") revoked for tokens issued at `iat`? */
function isRevoked(revocations: Record<string, number>, key: string, iat: number): boolean {
  const t = Math.max(revocations[key] ?? -1, revocations["*"] ?? -1);
  return t >= 0 && t >= iat;
}

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

/**
 * nats-io/jwt's Import.Validate of an import's activation token (errors there make the whole
 * account JWT invalid, as in nats-server): the token decodes and verifies, was issued by the
 * exporting account to `importer`, for the import's kind and a subject containing its subject.
 */
function validateImportToken(imp: JwtImport, importer: string): JwtClaims | null {
  if (imp.token === "") return null;
  let act: JwtClaims;
  try {
    act = decodeJwt(imp.token, "activation");
  } catch {
    throw new JwtError(
      `import ${JSON.stringify(imp.subject)} contains an invalid activation token`,
    );
  }
  if (act.iss !== imp.account && act.nats["issuer_account"] !== imp.account) {
    throw new JwtError(
      `activation token doesn't match account for import ${JSON.stringify(imp.subject)}`,
    );
  }
  if (act.sub !== importer) {
    throw new JwtError(
      `activation token doesn't match account it is being included in, ${JSON.stringify(imp.subject)}`,
    );
  }
  const kind = act.nats["kind"];
  if (kind !== imp.kind) {
    throw new JwtError(
      `mismatch between token import type ${String(kind)} and type of import ${imp.kind}`,
    );
  }
  const actSubject = typeof act.nats["subject"] === "string" ? act.nats["subject"] : "";
  if (!patternIsSubsetOf(imp.subject, actSubject)) {
    throw new JwtError(
      `activation token import subject ${JSON.stringify(actSubject)} doesn't match import ${JSON.stringify(imp.subject)}`,
    );
  }
  return act;
}

/**
 * nats-server's checkActivation: may `importer` import `exporter`'s token_req export with the
 * import's activation token at `nowSec`? The token's issuer must be the exporter (or, with
 * issuer_account, one of its signing keys), not expired, not revoked by the export. On success,
 * when the activation expires (seconds; null: never).
 */
export function checkActivation(
  exporter: JwtAccount,
  exp: JwtExport,
  importer: string,
  imp: JwtImport,
  nowSec: number,
): { ok: true; expires: number | null } | { ok: false } {
  let act: JwtClaims | null;
  try {
    act = validateImportToken(imp, importer);
  } catch {
    return { ok: false };
  }
  if (act === null) return { ok: false };
  const issuerAccount =
    typeof act.nats["issuer_account"] === "string" ? act.nats["issuer_account"] : "";
  if (issuerAccount !== "") {
    if (issuerAccount !== exporter.pub) return { ok: false };
    if (!exporter.signingKeys.some((k) => k.key === act.iss)) return { ok: false };
  }
  if (typeof act.nbf === "number" && act.nbf > 0 && nowSec < act.nbf) return { ok: false };
  const expires = typeof act.exp === "number" && act.exp > 0 ? act.exp : null;
  if (expires !== null && expires <= nowSec) return { ok: false };
  if (isRevoked(exp.revocations, act.sub, act.iat)) return { ok: false };
  return { ok: true, expires };
}

/**
 * The export of `exporter` that an import of `subject` falls under, as nats-server's
 * checkStreamExportApproved / checkServiceExportApproved look for it: the export of that very
 * subject, else one the subject is a subset of.
 */
export function exportFor(
  exporter: JwtAccount,
  kind: "stream" | "service",
  subject: string,
): JwtExport | undefined {
  const same = exporter.exportClaims.filter((e) => e.kind === kind);
  return (
    same.find((e) => e.subject === subject) ??
    same.find((e) => patternIsSubsetOf(subject, e.subject))
  );
}

/** nats-io/jwt's OperatorLimits.IsEmpty: every limit zero (absent), nested ones too. */
function emptyLimits(o: Record<string, unknown>): boolean {
  return Object.values(o).every((v) =>
    typeof v === "number"
      ? v === 0
      : typeof v === "boolean"
        ? !v
        : typeof v === "object" && v !== null
          ? emptyLimits(v as Record<string, unknown>)
          : true,
  );
}

/**
 * The account a preloaded account JWT describes (its imports not yet checked against exporters).
 * An account JWT that nats-io/jwt finds invalid (more imports or exports than its limits allow,
 * an import with a bad activation token) throws.
 */
export function accountFromJwt(pub: string, token: string): JwtAccount {
  const claims = decodeJwt(token, "account");
  if (claims.sub !== pub) {
    throw new JwtError(`the account JWT is for ${claims.sub}, not for ${pub}`);
  }
  const n = claims.nats;
  const lim = (n["limits"] ?? {}) as Record<string, unknown>;
  const exports: ExportConfig[] = [];
  const exportClaims: JwtExport[] = [];
  for (const e of Array.isArray(n["exports"]) ? (n["exports"] as Record<string, unknown>[]) : []) {
    const kind = e["type"] === "service" ? "service" : "stream";
    if (typeof e["subject"] !== "string") continue;
    const tokenReq = e["token_req"] === true;
    exports.push({ kind, subject: e["subject"], accounts: [], ...(tokenReq ? { tokenReq } : {}) });
    exportClaims.push({
      kind,
      subject: e["subject"],
      tokenReq,
      revocations: revocationList(e["revocations"]),
    });
  }
  const imports: ImportConfig[] = [];
  const importClaims: JwtImport[] = [];
  for (const i of Array.isArray(n["imports"]) ? (n["imports"] as Record<string, unknown>[]) : []) {
    const subject = typeof i["subject"] === "string" ? i["subject"] : "";
    const account = typeof i["account"] === "string" ? i["account"] : "";
    const local = typeof i["local_subject"] === "string" ? i["local_subject"] : "";
    const to = typeof i["to"] === "string" ? i["to"] : "";
    const token = typeof i["token"] === "string" ? i["token"] : "";
    if (subject === "" || account === "") continue;
    const kind = i["type"] === "service" ? "service" : "stream";
    const claim: JwtImport = { kind, account, subject, token };
    validateImportToken(claim, pub);
    importClaims.push(claim);
    if (kind === "service") {
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
  // nats-io/jwt's Account.Validate: the operator's limits on imports, exports and wildcards.
  const limited = !emptyLimits(lim);
  if (limited && limit(lim["imports"]) >= 0 && importClaims.length > limit(lim["imports"])) {
    throw new JwtError("the account contains more imports than allowed by the operator");
  }
  if (limited && limit(lim["exports"]) >= 0 && exportClaims.length > limit(lim["exports"])) {
    throw new JwtError("the account contains more exports than allowed by the operator");
  }
  // (`wildcards: false` is not checked: nats-server 2.9 lets such an account in too.)
  return {
    pub,
    claims,
    signingKeys: signingKeyList(n["signing_keys"]),
    limits: { subs: limit(lim["subs"]), payload: limit(lim["payload"]), conn: limit(lim["conn"]) },
    revocations: revocationList(n["revocations"]),
    defaultPermissions: jwtPermissions((n["default_permissions"] ?? {}) as Record<string, unknown>),
    config: { name: pub, exports, imports },
    exportClaims,
    importClaims,
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

/**
 * Why a CONNECT's JWT is refused (nats-server's log line, at debug level unless `error`), or the
 * user it authenticates.
 */
export type JwtAuthResult =
  { ok: true; user: JwtUser } | { ok: false; why: string; error?: boolean };

/** What the server knows of the connection a JWT is presented on. */
export interface JwtConnection {
  jwt?: string | undefined;
  sig?: string | undefined;
  nonce?: string | undefined;
  /** The client's IP address ("" when unknown), for the user's `src` CIDRs. */
  host?: string | undefined;
  /** nats-server's connection type (STANDARD, WEBSOCKET...), for `allowed_connection_types`. */
  connectionType?: string | undefined;
}

/** The connection types nats-server 2.9 knows (jwt.ConnectionType*). */
const CONNECTION_TYPES = new Set([
  "STANDARD",
  "WEBSOCKET",
  "LEAFNODE",
  "LEAFNODE_WS",
  "MQTT",
  "MQTT_WS",
]);

/**
 * nats-server's convertAllowedConnectionTypes and connectionTypeAllowed: null when `type` may
 * connect, else why not. Unknown types are left out; if only unknown ones are listed, none may.
 */
export function connectionTypeIssue(allowed: string[], type: string): string | null {
  if (allowed.length === 0) return null;
  const known = allowed.map((t) => t.toUpperCase()).filter((t) => CONNECTION_TYPES.has(t));
  const unknown = allowed.map((t) => t.toUpperCase()).filter((t) => !CONNECTION_TYPES.has(t));
  if (known.length === 0) {
    return `invalid connection types [${unknown.map((t) => JSON.stringify(t)).join(" ")}]`;
  }
  return known.includes(type) ? null : "Connection type not allowed";
}

/** nats-server's validateSrc: does one of the user's `src` CIDRs contain `host`? */
export function sourceAllowed(src: string[], host: string): boolean {
  if (src.length === 0) return true;
  const family = isIP(host);
  if (family === 0) return false;
  const list = new BlockList();
  for (const cidr of src) {
    const [addr = "", bits = ""] = cidr.trim().split("/");
    const f = isIP(addr);
    const prefix = Number(bits);
    // An entry that is not a CIDR makes nats-server refuse (ParseCIDR fails).
    if (f === 0 || bits === "" || !Number.isInteger(prefix)) return false;
    if (prefix < 0 || prefix > (f === 4 ? 32 : 128)) return false;
    list.addSubnet(addr, prefix, f === 4 ? "ipv4" : "ipv6");
  }
  return list.check(host, family === 4 ? "ipv4" : "ipv6");
}

/** The wall-clock time of day at `nowMs` in `zone` ("" : the server's local time), in ms. */
function timeOfDayMs(nowMs: number, zone: string): number {
  const d = new Date(nowMs);
  if (zone === "") {
    return (
      ((d.getHours() * 60 + d.getMinutes()) * 60 + d.getSeconds()) * 1000 + d.getMilliseconds()
    );
  }
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    hourCycle: "h23",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(d);
  const part = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? 0);
  return ((part("hour") * 60 + part("minute")) * 60 + part("second")) * 1000 + d.getMilliseconds();
}

const HMS = /^(\d{2}):(\d{2}):(\d{2})$/;
const hmsMs = (s: unknown): number | null => {
  const m = typeof s === "string" ? HMS.exec(s) : null;
  if (m === null) return null;
  const [h, mi, se] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return h < 24 && mi < 60 && se < 60 ? ((h * 60 + mi) * 60 + se) * 1000 : null;
};

/**
 * nats-server's validateTimes: may the user connect at `nowMs`, given its `times` ranges
 * ("HH:MM:SS" start and end, in `times_location` or the server's zone), and for how long (ms;
 * null: no limit)? As there, a range whose start is after its end runs from the start today to
 * the end tomorrow (so before today's start, e.g. at 01:00 in 22:00–02:00, it does not allow).
 */
export function validateTimes(
  user: Record<string, unknown>,
  nowMs: number,
): { allowed: boolean; validForMs: number | null } {
  const times = Array.isArray(user["times"]) ? (user["times"] as Record<string, unknown>[]) : [];
  if (times.length === 0) return { allowed: true, validForMs: null };
  const zone = typeof user["times_location"] === "string" ? user["times_location"] : "";
  let now: number;
  try {
    now = timeOfDayMs(nowMs, zone);
  } catch {
    return { allowed: false, validForMs: null }; // an unknown zone (nats-server: LoadLocation fails)
  }
  const DAY = 24 * 60 * 60 * 1000;
  for (const r of times) {
    const start = hmsMs(r["start"]);
    let end = hmsMs(r["end"]);
    if (start === null || end === null) return { allowed: false, validForMs: null };
    if (start > end) end += DAY;
    if (start < now && end > now) return { allowed: true, validForMs: end - now };
  }
  return { allowed: false, validForMs: null };
}

/**
 * nats-server's processClientOrLeafAuthentication with trusted operators: the user JWT, the
 * connection type, its account (preloaded, trusted, not expired), the signer (the account or one
 * of its signing keys), the nonce signature (unless a bearer token), revocations, the source
 * address and the connect times. `nowMs` is injected for tests.
 */
export function authenticateJwt(
  accounts: ReadonlyMap<string, JwtAccount>,
  c: JwtConnection,
  nowMs: number,
): JwtAuthResult {
  const fail = (why: string, error = false): JwtAuthResult => ({ ok: false, why, error });
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
  const ct = connectionTypeIssue(
    strings(juc.nats["allowed_connection_types"]),
    c.connectionType ?? "STANDARD",
  );
  if (ct !== null) return fail(ct);
  const issuerAccount =
    typeof juc.nats["issuer_account"] === "string" ? juc.nats["issuer_account"] : "";
  const accPub = issuerAccount !== "" ? issuerAccount : juc.iss;
  const acc = accounts.get(accPub);
  if (acc === undefined) return fail("Account JWT lookup error: account missing");
  let perms = jwtPermissions(juc.nats);
  let limits: JwtLimits = { subs: limit(juc.nats["subs"]), payload: limit(juc.nats["payload"]) };
  let rules: Record<string, unknown> = juc.nats;
  if (juc.iss !== acc.pub) {
    const sk = acc.signingKeys.find((k) => k.key === juc.iss);
    if (sk === undefined) return fail("User JWT issuer is not known");
    if (sk.scope !== null) {
      // A scoped signer's users get the scope's permissions and limits, not their own.
      perms = jwtPermissions(sk.scope);
      limits = { subs: limit(sk.scope["subs"]), payload: limit(sk.scope["payload"]) };
      rules = sk.scope;
    }
  }
  if (timeIssue(acc.claims, nowSec) !== null) return fail("Account JWT has expired");
  if (rules["bearer_token"] !== true) {
    if ((c.sig ?? "") === "") return fail("Signature missing");
    if (!verifyNonce(juc.sub, c.nonce ?? "", c.sig!)) return fail("Signature not verified");
  }
  if (isRevoked(acc.revocations, juc.sub, juc.iat)) return fail("User authentication revoked");
  // src, times and times_location are user limits: a scope's template replaces the user's.
  const src = rules["src"];
  const cidrs =
    typeof src === "string" ? src.split(",").filter((x) => x.trim() !== "") : strings(src);
  if (!sourceAllowed(cidrs, c.host ?? "")) return fail(`Bad src Ip ${c.host ?? ""}`, true);
  const times = validateTimes(rules, nowMs);
  if (!times.allowed) return fail("Outside connect times", true);
  let expiresAt = typeof juc.exp === "number" && juc.exp > 0 ? juc.exp * 1000 : null;
  if (times.validForMs !== null) {
    const end = nowMs + times.validForMs;
    expiresAt = expiresAt === null ? end : Math.min(expiresAt, end);
  }
  return {
    ok: true,
    user: {
      pub: juc.sub,
      account: acc.pub,
      permissions: perms ?? acc.defaultPermissions,
      limits,
      expiresAt,
    },
  };
}

/** The tighter of two limits where -1 (or below) is none. */
export function tighter(a: number, b: number): number {
  if (a < 0) return b;
  if (b < 0) return a;
  return Math.min(a, b);
}

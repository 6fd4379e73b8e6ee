// Account claim requests over $SYS, answered as nats-server 2.9 answers them for each resolver.
// A system-account user publishes to:
// - `$SYS.REQ.ACCOUNT.<key>.CLAIMS.UPDATE` (or the old `$SYS.ACCOUNT.<key>.CLAIMS.UPDATE`) a new
//   account JWT, and with a directory resolver `$SYS.REQ.CLAIMS.UPDATE` too. A full resolver
//   (DirAccResolver) writes it to its directory as `<key>.jwt` and applies it; a cache resolver
//   (CacheDirAccResolver) and MEMORY/URL resolvers (the server's accountClaimUpdate) take it
//   only for an account the server holds ("jwt update skipped" otherwise), each in its own words.
// - `$SYS.REQ.ACCOUNT.<key>.CLAIMS.LOOKUP` (full): the reply is the JWT in the directory, or none.
// - `$SYS.REQ.CLAIMS.LIST` (full, cache): the account keys in the directory.
// - `$SYS.REQ.CLAIMS.DELETE` (full with allow_delete, cache): a JWT signed by the operator, with
//   `nats.accounts` the keys to delete; a full resolver renames `<key>.jwt` to `<key>.jwt.deleted`
//   (as 2.9.10 does), a cache resolver removes it; a held account is disabled: its connections
//   get `Account Authentication Expired`.
// (`$SYS.REQ.CLAIMS.PACK`, which servers ask each other to sync their directories, is
// claimsync.ts's.)
// Replies are nats-server's JSON: {"data": {account, code: 200, message}} or {"error": {account,
// code: 500, description}}, then the server block ("account" left out where nats-server has none).

import { renameSync, rmSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { accountFromJwt, decodeJwt, verifySignature, type JwtAccount } from "./jwt.js";
import type { SysReqServer } from "./sysreq.js";
import { installAccount, trustedIssuer, type AccountHost } from "./urlresolver.js";
import { ACCOUNT_KEY } from "./resolver.js";

/** What a claims request needs of the server. */
export interface ClaimsHost extends AccountHost, SysReqServer {
  /** Does the server hold the account (nats-server: loaded in its accounts map)? */
  holdsAccount(pub: string): boolean;
  /** Drops a deleted account: its connections get `Account Authentication Expired`. */
  removeAccount(pub: string): void;
}

export type ClaimsRequest =
  | { op: "update"; target: string }
  | { op: "lookup"; target: string }
  | { op: "list" }
  | { op: "delete" };

const ACCOUNT_REQ = /^\$SYS\.REQ\.ACCOUNT\.([^.]+)\.CLAIMS\.(UPDATE|LOOKUP)$/;
const ACCOUNT_UPDATE_OLD = /^\$SYS\.ACCOUNT\.([^.]+)\.CLAIMS\.UPDATE$/;

/**
 * The claims request a subject makes of a resolver (type as in OperatorOptions.resolver), or
 * null when that resolver does not answer the subject. The target is "" for CLAIMS.UPDATE.
 */
export function claimsRequest(subject: string, resolver: string): ClaimsRequest | null {
  const dir = resolver === "FULL" || resolver === "CACHE";
  let m = ACCOUNT_REQ.exec(subject);
  if (m !== null) {
    if (m[2] === "UPDATE") return { op: "update", target: m[1]! };
    return resolver === "FULL" ? { op: "lookup", target: m[1]! } : null;
  }
  m = ACCOUNT_UPDATE_OLD.exec(subject);
  if (m !== null) return { op: "update", target: m[1]! };
  if (!dir) return null;
  switch (subject) {
    case "$SYS.REQ.CLAIMS.UPDATE":
      return { op: "update", target: "" };
    case "$SYS.REQ.CLAIMS.LIST":
      return { op: "list" };
    case "$SYS.REQ.CLAIMS.DELETE":
      return { op: "delete" };
    default:
      return null;
  }
}

let seq = 0;

/** nats-server's server block of a reply. */
function serverBlock(host: SysReqServer, nowMs: number): Record<string, unknown> {
  const cluster = host.clusterName();
  return {
    name: host.name,
    host: host.host,
    id: host.id,
    ...(cluster ? { cluster } : {}),
    ver: host.version,
    seq: ++seq,
    jetstream: false,
    time: new Date(nowMs).toISOString(),
  };
}

/** nats-server's respondToUpdate: logs the outcome and makes the reply. */
function respond(
  host: ClaimsHost,
  acc: string,
  message: string,
  err: string | null,
  nowMs: number,
): Buffer {
  const who = acc === "" ? "" : ` - ${acc}`;
  if (err === null) host.log.debug(`${message}${who}`);
  else host.log.error(`${message}${who} - ${err}`);
  const m: Record<string, unknown> = acc === "" ? {} : { account: acc };
  const out: Record<string, unknown> =
    err === null
      ? { data: { ...m, code: 200, message } }
      : { error: { ...m, code: 500, description: `${message} - ${err}` } };
  out["server"] = serverBlock(host, nowMs);
  return Buffer.from(JSON.stringify(out));
}

/**
 * Answers one claims request (from claimsRequest) of a system-account user; `body` is the
 * message's payload. Returns the reply, or null when nats-server sends none. `nowMs` is injected
 * for tests.
 */
export function answerClaims(
  host: ClaimsHost,
  req: ClaimsRequest,
  body: string,
  nowMs: number = Date.now(),
): Buffer | null {
  switch (req.op) {
    case "update": {
      const type = host.opts.operator!.resolver;
      if (type === "FULL") return fullUpdate(host, req.target, body, nowMs);
      if (type === "CACHE") return cacheUpdate(host, req.target, body, nowMs);
      return memoryUpdate(host, req.target, body, nowMs);
    }
    case "lookup":
      return lookup(host, req.target);
    case "list":
      return list(host, nowMs);
    case "delete":
      return deleteAccounts(host, body, nowMs);
  }
}

/** The account key of an account JWT (its signature checked), or throws with nats-server's words. */
function accountKeyOf(token: string): string {
  if (token.split(".").length !== 3) throw new Error("expected 3 chunks");
  return decodeJwt(token, "account").sub;
}

/** DirAccResolver: the JWT is saved whatever it is, and applied when a trusted operator signed it. */
function fullUpdate(host: ClaimsHost, target: string, body: string, nowMs: number): Buffer {
  const failed = "jwt update resulted in error";
  const token = body.trim();
  let pub: string;
  try {
    pub = accountKeyOf(token);
  } catch (err) {
    return respond(host, "n/a", failed, (err as Error).message, nowMs);
  }
  if (target !== "" && pub !== target) {
    return respond(host, target, failed, "subject does not match jwt content", nowMs);
  }
  try {
    writeFileSync(join(host.opts.operator!.resolverDir, `${pub}.jwt`), token);
  } catch (err) {
    return respond(host, pub, failed, (err as Error).message, nowMs);
  }
  apply(host, pub, token, nowMs);
  return respond(host, pub, "jwt updated", null, nowMs);
}

/** CacheDirAccResolver: only an account the server holds is saved and applied. */
function cacheUpdate(host: ClaimsHost, target: string, body: string, nowMs: number): Buffer {
  const failed = "jwt update cache resulted in error";
  const token = body.trim();
  let pub: string;
  try {
    pub = accountKeyOf(token);
  } catch (err) {
    return respond(host, target === "" ? "n/a" : target, failed, (err as Error).message, nowMs);
  }
  if (target !== "" && pub !== target) {
    return respond(host, target, failed, "subject does not match jwt content", nowMs);
  }
  if (!host.holdsAccount(pub)) return respond(host, pub, "jwt update cache skipped", null, nowMs);
  try {
    accountFromJwt(pub, token);
  } catch (err) {
    return respond(host, pub, "jwt update cache validation failed", (err as Error).message, nowMs);
  }
  try {
    writeFileSync(join(host.opts.operator!.resolverDir, `${pub}.jwt`), token);
  } catch (err) {
    return respond(host, pub, failed, (err as Error).message, nowMs);
  }
  apply(host, pub, token, nowMs);
  return respond(host, pub, "jwt updated cache", null, nowMs);
}

/** The server's accountClaimUpdate (MEMORY and URL resolvers): a held account is replaced. */
function memoryUpdate(host: ClaimsHost, pub: string, body: string, nowMs: number): Buffer {
  const failed = "jwt update resulted in error";
  if (body.length === 0)
    return respond(host, pub, "jwt update error", "request body is empty", nowMs);
  const token = body.trim();
  let sub: string;
  try {
    sub = accountKeyOf(token);
  } catch (err) {
    return respond(host, pub, failed, (err as Error).message, nowMs);
  }
  if (sub !== pub) return respond(host, pub, failed, "subject does not match jwt content", nowMs);
  if (!host.holdsAccount(pub)) return respond(host, pub, "jwt update skipped", null, nowMs);
  let acc: JwtAccount;
  try {
    acc = accountFromJwt(pub, token);
  } catch {
    return respond(host, pub, failed, "account validation failed", nowMs);
  }
  if (!trustedIssuer(host.opts.operator!, acc.claims.iss)) {
    return respond(host, pub, failed, "account validation failed", nowMs);
  }
  installAccount(host, acc, nowMs);
  return respond(host, pub, "jwt updated", null, nowMs);
}

/** A saved JWT replaces the running account when a trusted operator signed it. */
export function apply(host: ClaimsHost, pub: string, token: string, nowMs: number): void {
  const op = host.opts.operator!;
  let acc: JwtAccount;
  try {
    acc = accountFromJwt(pub, token);
  } catch (err) {
    host.log.error(`Account [${pub}] update failed: ${(err as Error).message}`);
    return;
  }
  if (!trustedIssuer(op, acc.claims.iss)) {
    host.log.error(`Account [${pub}] update failed: not signed by a trusted operator`);
    return;
  }
  installAccount(host, acc, nowMs);
}

/** The directory's JWT of account `pub`; a missing one is logged, and nothing is answered. */
function lookup(host: ClaimsHost, pub: string): Buffer | null {
  if (!ACCOUNT_KEY.test(pub)) {
    host.log.error("Merging resulted in error: invalid public key");
    return null;
  }
  const file = join(host.opts.operator!.resolverDir, `${pub}.jwt`);
  try {
    return readFileSync(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === "ENOENT" ? "no such file or directory" : e.message;
    host.log.error(`Merging resulted in error: open ${file}: ${why}`);
    return null;
  }
}

/** The account keys of the directory's JWTs, in name order. */
export function directoryKeys(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith(".jwt") && ACCOUNT_KEY.test(n.slice(0, -4)))
    .map((n) => n.slice(0, -4))
    .sort();
}

/** The account keys of the directory, in name order, as nats-server's handleListRequest. */
function list(host: ClaimsHost, nowMs: number): Buffer {
  const ids = directoryKeys(host.opts.operator!.resolverDir);
  host.log.debug(`list request responded with ${ids.length} account ids`);
  return Buffer.from(JSON.stringify({ data: ids, server: serverBlock(host, nowMs) }));
}

export interface GenericClaims {
  iss: string;
  sub: string;
  jti: string;
  /** Issued at and expires, in seconds since the epoch (0 when missing). */
  iat: number;
  exp: number;
  nats: unknown;
}

/**
 * The generic claims of a JWT (a delete request, a synced account), as nats-io/jwt's DecodeGeneric: three parts, the
 * signature by the issuer it names.
 */
export function decodeGeneric(token: string): GenericClaims {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error("expected 3 chunks");
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8")) as typeof claims;
  } catch {
    throw new Error("claims are not JSON");
  }
  const iss = typeof claims["iss"] === "string" ? claims["iss"] : "";
  const sig = Buffer.from(parts[2]!, "base64url");
  if (!verifySignature(iss, Buffer.from(`${parts[0]}.${parts[1]}`, "latin1"), sig)) {
    throw new Error("claim failed V2 signature verification");
  }
  const num = (k: string) => (typeof claims[k] === "number" ? claims[k] : 0);
  return {
    iss,
    sub: typeof claims["sub"] === "string" ? claims["sub"] : "",
    jti: typeof claims["jti"] === "string" ? claims["jti"] : "",
    iat: num("iat"),
    exp: num("exp"),
    nats: claims["nats"],
  };
}

/** nats-server's handleDeleteRequest. */
function deleteAccounts(host: ClaimsHost, body: string, nowMs: number): Buffer {
  const op = host.opts.operator!;
  let subj = "";
  let ids: string[] = [];
  let err: string | null = null;
  try {
    const g = decodeGeneric(body.trim());
    subj = g.sub;
    const accounts = (g.nats as Record<string, unknown> | undefined)?.["accounts"];
    if (op.resolver === "FULL" && !op.resolverAllowDelete) {
      err = "delete must be enabled in server config";
    } else if (g.sub !== g.iss) err = "not self signed";
    else if (!trustedIssuer(op, g.iss)) err = "not trusted";
    else if (!Array.isArray(accounts)) err = "malformed request";
    else {
      for (const a of accounts as unknown[]) {
        if (typeof a !== "string" || !ACCOUNT_KEY.test(a)) {
          err = "malformed request";
          break;
        }
        if (a === host.opts.systemAccount) {
          err = "not allowed to delete system account";
          break;
        }
      }
      ids = accounts as string[];
    }
  } catch (e) {
    err = (e as Error).message;
  }
  if (err !== null) {
    return respond(host, "", `delete accounts request by ${subj} failed`, err, nowMs);
  }
  const errs: string[] = [];
  for (const pub of ids) {
    const file = join(op.resolverDir, `${pub}.jwt`);
    try {
      if (op.resolver === "FULL") renameSync(file, `${file}.deleted`);
      else rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
        errs.push((e as Error).message);
        continue;
      }
    }
    host.removeAccount(pub);
  }
  const passed = ids.length - errs.length;
  if (errs.length === 0) return respond(host, "", `deleted ${passed} accounts`, null, nowMs);
  return respond(
    host,
    "",
    `deleted ${passed} accounts, failed for ${errs.length}`,
    errs.join("\n"),
    nowMs,
  );
}

// Test helper that makes NATS JWTs as nsc does (operator → account → user), signed with nkeys.js:
// header `{"typ":"JWT","alg":"ed25519-nkey"}`, the claims, and the issuer's ed25519 signature
// over "header.payload", each part base64url. Also the creds file the official clients read.

import { createHash } from "node:crypto";
import { createAccount, createOperator, createUser, type KeyPair } from "nkeys.js";

const b64 = (s: string) => Buffer.from(s).toString("base64url");

/** A JWT of `sub` with `nats` claims, signed by `issuer`; `extra` adds or replaces top-level claims. */
export function signJwt(
  issuer: KeyPair,
  sub: string,
  nats: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): string {
  const claims: Record<string, unknown> = {
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name: sub.slice(0, 8),
    sub,
    nats: { version: 2, ...nats },
    ...extra,
  };
  claims["jti"] = createHash("sha256").update(JSON.stringify(claims)).digest("hex").toUpperCase();
  const head = b64(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" }));
  const body = b64(JSON.stringify(claims));
  const sig = Buffer.from(issuer.sign(Buffer.from(`${head}.${body}`))).toString("base64url");
  return `${head}.${body}.${sig}`;
}

export interface TestOperator {
  kp: KeyPair;
  pub: string;
  jwt: string;
}

export interface TestAccount {
  kp: KeyPair;
  pub: string;
  jwt: string;
}

export interface TestUser {
  kp: KeyPair;
  pub: string;
  jwt: string;
  seed: Uint8Array;
}

export function makeOperator(nats: Record<string, unknown> = {}): TestOperator {
  const kp = createOperator();
  const pub = kp.getPublicKey();
  return { kp, pub, jwt: signJwt(kp, pub, { type: "operator", ...nats }) };
}

const NO_LIMITS = {
  subs: -1,
  data: -1,
  payload: -1,
  imports: -1,
  exports: -1,
  wildcards: true,
  conn: -1,
  leaf: -1,
};

/** An account signed by `signer` (the operator's key, or one of its signing keys). */
export function makeAccount(
  signer: KeyPair,
  nats: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
  kp: KeyPair = createAccount(),
): TestAccount {
  const pub = kp.getPublicKey();
  const limits = { ...NO_LIMITS, ...((nats["limits"] as object | undefined) ?? {}) };
  return { kp, pub, jwt: signJwt(signer, pub, { type: "account", ...nats, limits }, extra) };
}

/** A user of `account`, signed by the account's key (or, with issuer_account, a signing key). */
export function makeUser(
  signer: KeyPair,
  nats: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
): TestUser {
  const kp = createUser();
  const pub = kp.getPublicKey();
  const claims = { type: "user", pub: {}, sub: {}, subs: -1, data: -1, payload: -1, ...nats };
  return { kp, pub, seed: kp.getSeed(), jwt: signJwt(signer, pub, claims, extra) };
}

/** The creds file of a user, as nsc writes it (credsAuthenticator reads it). */
export function credsFile(u: TestUser): string {
  return [
    "-----BEGIN NATS USER JWT-----",
    u.jwt,
    "------END NATS USER JWT------",
    "",
    "************************* IMPORTANT *************************",
    "NKEY Seed printed below can be used to sign and prove identity.",
    "",
    "-----BEGIN USER NKEY SEED-----",
    new TextDecoder().decode(u.seed),
    "------END USER NKEY SEED------",
    "",
  ].join("\n");
}

/**
 * An activation token (nsc's `generate activation`): `exporter` lets account `importer` import
 * `subject` of the given kind. `extra` adds or replaces top-level claims (exp, iat...).
 */
export function makeActivation(
  exporter: KeyPair,
  importer: string,
  subject: string,
  kind: "stream" | "service",
  nats: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
): string {
  return signJwt(exporter, importer, { type: "activation", subject, kind, ...nats }, extra);
}

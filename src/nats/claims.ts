// Account claim updates over $SYS, as nats-server 2.9's full directory resolver (DirAccResolver)
// answers them: a system-account user publishes a new account JWT (signed by the operator) to
// `$SYS.REQ.CLAIMS.UPDATE` or `$SYS.REQ.ACCOUNT.<account key>.CLAIMS.UPDATE`; the JWT is written
// to the resolver's directory as `<account key>.jwt` and, when signed by a trusted operator,
// replaces the account in the running server (its connections are checked again). The reply is
// nats-server's JSON: {"data": {account, code: 200, message}} or {"error": {account, code: 500,
// description}}, with the server block. Other resolvers do not answer these subjects.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { accountFromJwt, decodeJwt, type JwtAccount } from "./jwt.js";
import type { SysReqServer } from "./sysreq.js";
import { installAccount, trustedIssuer, type AccountHost } from "./urlresolver.js";

export const CLAIMS_UPDATE_SUBJECT = "$SYS.REQ.CLAIMS.UPDATE";
const ACCOUNT_UPDATE = /^\$SYS\.REQ\.ACCOUNT\.([^.]+)\.CLAIMS\.UPDATE$/;

/** What a claims update needs of the server. */
export type ClaimsHost = AccountHost & SysReqServer;

/** The account key a claims-update subject names ("" for CLAIMS.UPDATE), or null for others. */
export function claimsUpdateTarget(subject: string): string | null {
  if (subject === CLAIMS_UPDATE_SUBJECT) return "";
  const m = ACCOUNT_UPDATE.exec(subject);
  return m === null ? null : m[1]!;
}

let seq = 0;

/**
 * Handles one update (`target` from claimsUpdateTarget, `body` the JWT) on a server with a full
 * directory resolver; returns the reply. `nowMs` is injected for tests.
 */
export function claimsUpdate(
  host: ClaimsHost,
  target: string,
  body: string,
  nowMs: number = Date.now(),
): Buffer {
  const op = host.opts.operator!;
  const reply = (acc: string, message: string, err: string | null): Buffer => {
    if (err === null) host.log.debug(`${message} - ${acc}`);
    else host.log.error(`${message} - ${acc} - ${err}`);
    const cluster = host.clusterName();
    const out: Record<string, unknown> =
      err === null
        ? { data: { account: acc, code: 200, message } }
        : { error: { account: acc, code: 500, description: `${message} - ${err}` } };
    out["server"] = {
      name: host.name,
      host: host.host,
      id: host.id,
      ...(cluster ? { cluster } : {}),
      ver: host.version,
      seq: ++seq,
      jetstream: false,
      time: new Date(nowMs).toISOString(),
    };
    return Buffer.from(JSON.stringify(out));
  };
  const token = body.trim();
  let pub: string;
  try {
    if (token.split(".").length !== 3) throw new Error("expected 3 chunks");
    pub = decodeJwt(token, "account").sub;
  } catch (err) {
    return reply("n/a", "jwt update resulted in error", (err as Error).message);
  }
  if (target !== "" && pub !== target) {
    return reply(target, "jwt update resulted in error", "subject does not match jwt content");
  }
  try {
    writeFileSync(join(op.resolverDir, `${pub}.jwt`), token);
  } catch (err) {
    return reply(pub, "jwt update resulted in error", (err as Error).message);
  }
  apply(host, pub, token, nowMs);
  return reply(pub, "jwt updated", null);
}

/** The saved JWT replaces the running account when a trusted operator signed it. */
function apply(host: ClaimsHost, pub: string, token: string, nowMs: number): void {
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

// Requests the server answers itself: $SYS.REQ.USER.INFO tells the requesting connection who it
// is (user, account, permissions), in nats-server 2.10's response shape ({"server": {...},
// "data": {...}}). The client hands such a request to the server only when no subscription of
// its account took it, so a server pays nothing for this on messages without a reply.

import type { Permissions, SubjectPermission } from "./options.js";
import type { Account } from "./accounts.js";

export const USER_INFO_SUBJECT = "$SYS.REQ.USER.INFO";

/** What a response needs of the server. */
export interface SysReqServer {
  readonly id: string;
  readonly name: string;
  readonly version: string;
  readonly host: string;
  clusterName(): string;
}

/** What it needs of the requesting connection. */
export interface Requester {
  user: string;
  acc: Account;
  perms: { config: Permissions } | null;
}

/** nats-server's SubjectPermission JSON: empty lists left out. */
function subjectPerm(p: SubjectPermission | undefined): Record<string, string[]> | null {
  if (p === undefined) return null;
  const out: Record<string, string[]> = {};
  if (p.allow.length > 0) out["allow"] = p.allow;
  if (p.deny.length > 0) out["deny"] = p.deny;
  return out;
}

/** A user's permissions as nats-server's Permissions JSON (ttl in nanoseconds). */
export function permissionsJson(p: Permissions): Record<string, unknown> {
  const out: Record<string, unknown> = {
    publish: subjectPerm(p.publish),
    subscribe: subjectPerm(p.subscribe),
  };
  if (p.response) {
    out["responses"] = { max: p.response.maxMsgs, ttl: p.response.expiresMs * 1_000_000 };
  }
  return out;
}

let seq = 0;

/** The $SYS.REQ.USER.INFO response for connection `c`. */
export function userInfoResponse(s: SysReqServer, c: Requester): Buffer {
  const cluster = s.clusterName();
  const data: Record<string, unknown> = { user: c.user, account: c.acc.name };
  if (c.perms !== null) data["permissions"] = permissionsJson(c.perms.config);
  return Buffer.from(
    JSON.stringify({
      server: {
        name: s.name,
        host: s.host,
        id: s.id,
        ...(cluster ? { cluster } : {}),
        ver: s.version,
        jetstream: false,
        flags: 0,
        seq: ++seq,
        time: new Date().toISOString(),
      },
      data,
    }),
  );
}

// The dashboard's login: a dashboard bound to a loopback address is this machine's only and
// asks nothing; bound anywhere else it asks for the login token (`shoal dashboard token`,
// kept in the store's cluster metadata with the manager's other secrets). A right token gets
// a session cookie (HttpOnly, SameSite=Strict) whose value is derived from the token, so the
// token itself never sits in the browser and rotating it ends every session.

import { createHmac } from "node:crypto";
import { isLoopback, isWildcard } from "../../lib/addr.js";
import { secretsEqual } from "../ids.js";

export const SESSION_COOKIE = "shoal_dashboard";

/** Whether a dashboard bound to `host` asks for the token ("" and wildcards: every address). */
export function needsToken(host: string): boolean {
  return host === "" || isWildcard(host) || !isLoopback(host);
}

/** The session cookie's value for a token. */
export function sessionValue(token: string): string {
  return createHmac("sha256", token).update("shoal dashboard session").digest("base64url");
}

/** The `Set-Cookie` header that opens a session. */
export function sessionCookie(token: string): string {
  return `${SESSION_COOKIE}=${sessionValue(token)}; Path=/; HttpOnly; SameSite=Strict`;
}

/** A cookie's value from a `Cookie` header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Whether a request's Cookie header carries a session for `token`. */
export function hasSession(cookieHeader: string | undefined, token: string): boolean {
  const v = cookieValue(cookieHeader, SESSION_COOKIE);
  return v !== undefined && secretsEqual(v, sessionValue(token));
}

/** Whether a presented login token is the right one (constant time). */
export function tokenMatches(given: string, token: string): boolean {
  return secretsEqual(given.trim(), token);
}

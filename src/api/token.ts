// Join tokens (`SHOAL-1-<cluster fingerprint>-<role secret>`), read by the manager's join
// endpoint, the worker daemon and the CLI alike.

export interface ParsedToken {
  fingerprint: string;
  secret: string;
}

export function parseToken(token: string): ParsedToken | null {
  const m = /^SHOAL-1-([0-9a-z]{50})-([0-9a-z]{25})$/.exec(token.trim());
  return m ? { fingerprint: m[1]!, secret: m[2]! } : null;
}

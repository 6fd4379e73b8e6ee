// Join tokens (`SHOAL-1-<CA digest>-<role secret>`), read by the manager's join endpoint, the
// worker daemon and the CLI alike. The digest is the SHA-256 of the cluster's root CA
// certificate in 50 base36 characters: a joining node checks the manager's CA against it before
// it sends the secret.

export interface ParsedToken {
  digest: string;
  secret: string;
}

export const TOKEN_FORMAT = "SHOAL-1-<CA digest>-<secret>";

export function parseToken(token: string): ParsedToken | null {
  const m = /^SHOAL-1-([0-9a-z]{50})-([0-9a-z]{25})$/.exec(token.trim());
  return m ? { digest: m[1]!, secret: m[2]! } : null;
}

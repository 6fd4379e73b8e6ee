// The control bus's users on a manager's embedded message server: the agent user (whose password
// derives from the cluster secret) may use $SHOAL.>; applications, the default user, may not.

import { createHash } from "node:crypto";
import type { User } from "../nats/options.js";
import { AGENT_USER, APP_USER, SUBJECT_PREFIX } from "../api/bus.js";

/** The agent user's password, derived from the cluster secret (never sent in a token). */
export function agentPassword(clusterSecret: string): string {
  return createHash("sha256").update(`${clusterSecret}:agent`).digest("base64url");
}

/**
 * The embedded message server's users: the agent user may do anything; applications (the
 * default user when a client gives no credentials) may use every subject but $SHOAL.>.
 */
export function busUsers(clusterSecret: string): User[] {
  const deny = { allow: [], deny: [`${SUBJECT_PREFIX}.>`] };
  return [
    { user: AGENT_USER, password: agentPassword(clusterSecret) },
    { user: APP_USER, password: "", permissions: { publish: deny, subscribe: deny } },
  ];
}

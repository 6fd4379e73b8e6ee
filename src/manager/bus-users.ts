// The control bus's users on a manager's embedded message server:
//   - the agent user (password derived from the cluster secret, never leaves the managers) may
//     use all of $SHOAL.>: the dispatcher and the managers' own node runtimes;
//   - each worker has a user of its own whose password derives from the cluster secret and its
//     node id, handed out only in that node's join answer; it may publish and subscribe only to
//     the subjects carrying its node id (api/bus.ts); a removed node's user is gone from the
//     list, so its connections are cut off at once (Server.reloadUsers);
//   - the events user (password derived from the cluster secret, given by `shoal events
//     credentials`) may only subscribe to the cluster events, $SHOAL.events.>: for dashboards
//     and tools with any NATS client;
//   - applications, the default user, may use every subject but $SHOAL.>.

import { createHmac, createHash } from "node:crypto";
import type { User } from "../nats/options.js";
import {
  AGENT_USER,
  APP_USER,
  SUBJECT_PREFIX,
  INBOX_PREFIX,
  assignSubject,
  hbSubject,
  logControlSubject,
  logsSubject,
  nodeUser,
  statusSubject,
  type BusCredentials,
} from "../api/bus.js";
import { EVENTS_SUBJECT_PREFIX, EVENTS_USER } from "../api/events.js";

/** The agent user's password, derived from the cluster secret (never sent in a token). */
export function agentPassword(clusterSecret: string): string {
  return createHash("sha256").update(`${clusterSecret}:agent`).digest("base64url");
}

/** The events user's password, derived from the cluster secret. */
export function eventsPassword(clusterSecret: string): string {
  return createHmac("sha256", clusterSecret).update("events").digest("base64url");
}

/** The events user: subscribes to the cluster events, publishes nothing. */
export function eventsBusUser(clusterSecret: string): User {
  return {
    user: EVENTS_USER,
    password: eventsPassword(clusterSecret),
    permissions: {
      publish: { allow: [], deny: [">"] },
      subscribe: { allow: [`${EVENTS_SUBJECT_PREFIX}.>`], deny: [] },
    },
  };
}

/** A worker's credentials on the bus: nothing stored, any manager derives them again. */
export function nodeCredentials(clusterSecret: string, nodeId: string): BusCredentials {
  const pass = createHmac("sha256", clusterSecret).update(`node:${nodeId}`).digest("base64url");
  return { user: nodeUser(nodeId), pass };
}

/** A worker's user: its own subjects only. */
export function nodeBusUser(clusterSecret: string, nodeId: string): User {
  const { user, pass } = nodeCredentials(clusterSecret, nodeId);
  return {
    user,
    password: pass,
    permissions: {
      publish: {
        allow: [
          hbSubject(nodeId),
          statusSubject(nodeId),
          `${INBOX_PREFIX}.${nodeId}.>`,
          `${SUBJECT_PREFIX}.logfollow.${nodeId}.>`,
        ],
        deny: [],
      },
      subscribe: {
        allow: [assignSubject(nodeId), logsSubject(nodeId), logControlSubject(nodeId)],
        deny: [],
      },
    },
  };
}

/** The embedded message server's users, given the workers now in the cluster. */
export function busUsers(clusterSecret: string, workerIds: readonly string[] = []): User[] {
  const deny = { allow: [], deny: [`${SUBJECT_PREFIX}.>`] };
  return [
    { user: AGENT_USER, password: agentPassword(clusterSecret) },
    { user: APP_USER, password: "", permissions: { publish: deny, subscribe: deny } },
    eventsBusUser(clusterSecret),
    ...workerIds.map((id) => nodeBusUser(clusterSecret, id)),
  ];
}

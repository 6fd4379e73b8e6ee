// The control bus's users on a manager's embedded message server:
//   - the agent user (password derived from the cluster secret, never leaves the managers) may
//     use all of $SHOAL.>: the dispatcher and the manager's own node runtime, over loopback on
//     the message server's plain port;
//   - each node has a user named by its certificate's subject (RFC 2253 DN
//     `CN=<node id>,OU=<swarm-worker|swarm-manager>,O=<cluster id>`, ca.ts certUser), which the
//     message server's nodes' listener maps a client certificate to (verify_and_map): a node's
//     identity on the bus is its certificate. A worker may publish and subscribe only to the
//     subjects carrying its node id (api/bus.ts); a manager's certificate may use all of
//     $SHOAL.>. These users also carry a password that is derived from the cluster secret and
//     never sent anywhere, so they cannot be used on the plain port. A removed node's user is
//     gone from the list: its connections are cut off at once (Server.reloadUsers) and a new
//     connection with its certificate maps to no user;
//   - the events user (password derived from the cluster secret, given by `shoal events
//     credentials`) may only subscribe to the cluster events, $SHOAL.events.>: for dashboards
//     and tools with any NATS client;
//   - applications: each service has a user of its own (`svc-<service id>`, password derived
//     from the cluster secret and the service id, sent only to the nodes that run its tasks, in
//     their assignments), in its stack's account (`stack-<name>`) or, outside stacks, the
//     `apps` account, where the anonymous default user is too when the swarm enables it
//     (`--nats-anonymous`; off by default, so a client without credentials is refused). One
//     stack's subjects are private to it; no application user may use $SHOAL.> (the control
//     bus lives in $G).

import { createHash, createHmac } from "node:crypto";
import type { AccountConfig, Permissions, User } from "../nats/options.js";
import {
  AGENT_USER,
  APP_USER,
  SUBJECT_PREFIX,
  INBOX_PREFIX,
  assignSubject,
  hbSubject,
  logControlSubject,
  logsSubject,
  statusSubject,
} from "../api/bus.js";
import { EVENTS_SUBJECT_PREFIX, EVENTS_USER } from "../api/events.js";
import type { NodeRole, Service } from "../api/types.js";
import type { AppCredentials } from "../api/bus.js";
import { NAMESPACE_LABEL } from "../api/model.js";
import { certUser } from "./ca.js";

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

/** What a worker may do on the bus: its own subjects only. */
export function workerPermissions(nodeId: string): Permissions {
  return {
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
  };
}

/** A node's user: named by its certificate, with its role's permissions. */
export function nodeBusUser(
  clusterSecret: string,
  clusterId: string,
  node: { id: string; role: NodeRole },
): User {
  const password = createHmac("sha256", clusterSecret)
    .update(`cert-only:${node.id}`)
    .digest("base64url");
  const user = certUser(node.id, node.role, clusterId);
  return node.role === "manager"
    ? { user, password }
    : { user, password, permissions: workerPermissions(node.id) };
}

/** The account of applications outside stacks, and of the anonymous default user (if enabled). */
export const APPS_ACCOUNT = "apps";

/** What a service is, for its user: its id and labels (the stack's namespace label). */
export type AppService = Pick<Service, "id"> & { spec: Pick<Service["spec"], "labels"> };

/** The account a service's user belongs to: its stack's, or the applications' one. */
export function appAccountOf(s: AppService): string {
  const stack = s.spec.labels[NAMESPACE_LABEL];
  return stack ? `stack-${stack}` : APPS_ACCOUNT;
}

/** A service's user and password on the message server. */
export function appCredentials(clusterSecret: string, serviceId: string): AppCredentials {
  return {
    serviceId,
    user: `svc-${serviceId}`,
    password: createHmac("sha256", clusterSecret).update(`app:${serviceId}`).digest("base64url"),
  };
}

/** The accounts applications live in: the applications' one and one per stack. */
export function appAccounts(services: readonly AppService[]): AccountConfig[] {
  const names = new Set([APPS_ACCOUNT, ...services.map(appAccountOf)]);
  return [...names].sort().map((name) => ({ name, exports: [], imports: [] }));
}

/**
 * The embedded message server's users, given the nodes and services now in the cluster. The
 * anonymous default user (clients that send no credentials, in the applications' account) is
 * there only when the swarm enables it (`shoal init/swarm update --nats-anonymous`).
 */
export function busUsers(
  clusterSecret: string,
  clusterId: string,
  nodes: readonly { id: string; role: NodeRole }[] = [],
  services: readonly AppService[] = [],
  anonymous = false,
): User[] {
  const deny = { allow: [], deny: [`${SUBJECT_PREFIX}.>`] };
  const app = { publish: deny, subscribe: deny };
  return [
    { user: AGENT_USER, password: agentPassword(clusterSecret) },
    ...(anonymous
      ? [{ user: APP_USER, password: "", permissions: app, account: APPS_ACCOUNT }]
      : []),
    eventsBusUser(clusterSecret),
    ...nodes.map((n) => nodeBusUser(clusterSecret, clusterId, n)),
    ...services.map((s) => {
      const c = appCredentials(clusterSecret, s.id);
      return { user: c.user, password: c.password, permissions: app, account: appAccountOf(s) };
    }),
  ];
}

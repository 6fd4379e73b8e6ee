// The control bus between managers and agents: subjects and message shapes. Everything is
// level-triggered: a heartbeat carries the agent's full task list, an assignment message the
// node's full task set, so a lost or duplicated message costs latency, never correctness.
//
//   $SHOAL.hb.<nodeId>      agent → manager   Heartbeat (every period)
//   $SHOAL.status.<nodeId>  agent → manager   StatusMessage (as soon as a task changes)
//   $SHOAL.assign.<nodeId>  manager → agent   Assignments (on change and on a timer)
//   $SHOAL.logs.<nodeId>    manager → agent   LogsRequest, answered with LogsReply
//
// Only the agent user may use $SHOAL.>; applications connect as the default user, which is
// denied publish and subscribe there (see busAuthorization).

import { createHash } from "node:crypto";
import type { Task } from "./types.js";
import type { StatusReport } from "./manager.js";
import type { User } from "../nats/options.js";

export const SUBJECT_PREFIX = "$SHOAL";
export const hbSubject = (nodeId: string) => `${SUBJECT_PREFIX}.hb.${nodeId}`;
export const statusSubject = (nodeId: string) => `${SUBJECT_PREFIX}.status.${nodeId}`;
export const assignSubject = (nodeId: string) => `${SUBJECT_PREFIX}.assign.${nodeId}`;
/** Request/reply: a task's log lines from the node that ran it. */
export const logsSubject = (nodeId: string) => `${SUBJECT_PREFIX}.logs.${nodeId}`;

export interface LogsRequest {
  taskId: string;
  /** Last N lines per stream; negative = all. */
  tail: number;
}

export interface LogsReply {
  lines: string[];
}

export interface Heartbeat {
  nodeId: string;
  hostname: string;
  /** Every task the agent knows of, with its latest status. */
  tasks: StatusReport[];
}

export interface StatusMessage {
  nodeId: string;
  reports: StatusReport[];
}

export interface Endpoint {
  host: string;
  port: number;
}

export interface Assignments {
  nodeId: string;
  /** The node's full set of non-terminal tasks. */
  tasks: Task[];
  /** Published port → running task endpoints anywhere in the cluster (for the routing mesh). */
  endpoints: Record<string, Endpoint[]>;
  /** The next heartbeat period the manager wants, ms. */
  heartbeatMs: number;
}

export const AGENT_USER = "shoal-agent";
export const APP_USER = "app";

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

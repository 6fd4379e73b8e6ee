// The control bus between managers and agents: subjects and message shapes. Everything is
// level-triggered: a heartbeat carries the agent's full task list, an assignment message the
// node's full task set, so a lost or duplicated message costs latency, never correctness.
//
//   $SHOAL.hb.<nodeId>      agent → manager   Heartbeat (every period)
//   $SHOAL.status.<nodeId>  agent → manager   StatusMessage (as soon as a task changes)
//   $SHOAL.assign.<nodeId>  manager → agent   Assignments (on change and on a timer)
//   $SHOAL.logs.<nodeId>    manager → agent   LogsRequest, answered with LogsReply
//   $SHOAL.logfollow.<id>   agent → manager   LogsReply batches of a followed log (`logs -f`)
//   $SHOAL.logctl.<nodeId>  manager → agent   LogControl: end a followed log
//
// Only the agent user may use $SHOAL.>; applications connect as the default user, which is
// denied publish and subscribe there (the manager's bus-users.ts).

import type { LimitSupport, NodeResources, Task, TaskReport } from "./types.js";

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
  /** Follow: the reply is an empty acknowledgement; the tail and every later line are sent in
   * batches to this subject (a `logFollowSubject`). The follower resends the request every
   * FOLLOW_RENEW_MS (with tail 0 once acknowledged): that renews the stream, or restarts it
   * with new lines only on an agent that restarted meanwhile. */
  follow?: string;
}

/** The agent ends a followed log not renewed within FOLLOW_LEASE_MS (its follower went away
 * without a cancel). */
export const FOLLOW_RENEW_MS = 2000;
export const FOLLOW_LEASE_MS = 10_000;
export const logFollowSubject = (id: string) => `${SUBJECT_PREFIX}.logfollow.${id}`;
export const logControlSubject = (nodeId: string) => `${SUBJECT_PREFIX}.logctl.${nodeId}`;

export interface LogControl {
  /** The `follow` subject of a LogsRequest. */
  stream: string;
  op: "cancel";
}

export interface LogsReply {
  lines: string[];
  /** Set when the agent refused the request (a malformed task id or follow subject). */
  error?: string;
}

export interface Heartbeat {
  nodeId: string;
  hostname: string;
  /** Every task the agent knows of, with its latest status. */
  tasks: TaskReport[];
  /** The task drivers the agent has (for the scheduler's driver filter). */
  drivers?: string[];
  /** The shoal version the node runs. */
  engineVersion?: string;
  /** The node's CPUs and memory (for reservations). */
  resources?: NodeResources;
  /** Per driver, the limits it can enforce here (for the scheduler's limits filter). */
  limits?: Record<string, LimitSupport>;
}

export interface StatusMessage {
  nodeId: string;
  reports: TaskReport[];
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

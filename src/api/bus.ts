// The control bus between managers and agents: subjects and message shapes. Everything is
// level-triggered: a heartbeat carries the agent's full task list, an assignment message the
// node's full task set, so a lost or duplicated message costs latency, never correctness.
//
//   $SHOAL.hb.<nodeId>      agent → manager   Heartbeat (every period)
//   $SHOAL.status.<nodeId>  agent → manager   StatusMessage (as soon as a task changes)
//   $SHOAL.assign.<nodeId>  manager → agent   Assignments (on change and on a timer)
//   $SHOAL.logs.<nodeId>    manager → agent   LogsRequest, answered on $SHOAL.inbox.<nodeId>.*
//   $SHOAL.logfollow.<nodeId>.<id>  agent → manager   LogsReply batches of a followed log
//   $SHOAL.logctl.<nodeId>  manager → agent   LogControl: end a followed log
//
// Who may use which subject (the manager's bus-users.ts): the managers' own clients (the
// dispatcher, a manager's node runtime) are the agent user, for all of $SHOAL.>; each worker
// is the user its certificate maps to, which may publish and subscribe only to the subjects
// above that carry its node id, so a worker can neither read nor forge another node's
// messages; applications connect as the default user, kept out of $SHOAL.> entirely.
//
// Every message is a schema; receivers `decode(XSchema, msg.data)` (schema.ts) and drop what
// does not match. Messages accept properties they do not know, so a newer node can send more.

import { RouteTableSchema } from "./routes.js";
import { Type, type Static } from "@sinclair/typebox";
import type { PeerCertificate } from "node:tls";
import {
  BASE64_PATTERN,
  FILE_DATA_MAX_BYTES,
  NodeLimitsSchema,
  NodeNetworkingSchema,
  NodeTlsInfoSchema,
  NodeResourcesSchema,
  TaskReportSchema,
  TaskSchema,
} from "./types.js";
import { DnsTableSchema } from "./dns.js";

export const SUBJECT_PREFIX = "$SHOAL";
/** Replies to control-plane requests (a task's log lines...) travel under $SHOAL. too, never on
 * `_INBOX.`, which any application may subscribe to. */
export const INBOX_PREFIX = `${SUBJECT_PREFIX}.inbox`;
export const hbSubject = (nodeId: string) => `${SUBJECT_PREFIX}.hb.${nodeId}`;
export const statusSubject = (nodeId: string) => `${SUBJECT_PREFIX}.status.${nodeId}`;
export const assignSubject = (nodeId: string) => `${SUBJECT_PREFIX}.assign.${nodeId}`;
/** Request/reply: a task's log lines from the node that ran it. */
export const logsSubject = (nodeId: string) => `${SUBJECT_PREFIX}.logs.${nodeId}`;

export const LogsRequestSchema = Type.Object(
  {
    taskId: Type.String(),
    tail: Type.Integer({ description: "Last N lines per stream; negative = all." }),
    follow: Type.Optional(
      Type.String({
        description:
          "Follow: the reply is an empty acknowledgement; the tail and every later line are sent in batches to this subject (a `logFollowSubject`). The follower resends the request every FOLLOW_RENEW_MS (with tail 0 once acknowledged): that renews the stream, or restarts it with new lines only on an agent that restarted meanwhile.",
      }),
    ),
  },
  { title: "LogsRequest" },
);
export type LogsRequest = Static<typeof LogsRequestSchema>;

/** The agent ends a followed log not renewed within FOLLOW_LEASE_MS (its follower went away
 * without a cancel). */
export const FOLLOW_RENEW_MS = 2000;
export const FOLLOW_LEASE_MS = 10_000;
export const logFollowSubject = (nodeId: string, id: string) =>
  `${SUBJECT_PREFIX}.logfollow.${nodeId}.${id}`;
/** The reply subject of a request to a node: only that node may publish there. */
export const nodeInbox = (nodeId: string, id: string) => `${INBOX_PREFIX}.${nodeId}.${id}`;
export const logControlSubject = (nodeId: string) => `${SUBJECT_PREFIX}.logctl.${nodeId}`;

export const LogControlSchema = Type.Object(
  {
    stream: Type.String({ description: "The `follow` subject of a LogsRequest." }),
    op: Type.Literal("cancel"),
  },
  { title: "LogControl" },
);
export type LogControl = Static<typeof LogControlSchema>;

export const LogsReplySchema = Type.Object(
  {
    lines: Type.Array(Type.String()),
    error: Type.Optional(
      Type.String({
        description:
          "Set when the agent refused the request (a malformed task id or follow subject).",
      }),
    ),
  },
  { title: "LogsReply" },
);
export type LogsReply = Static<typeof LogsReplySchema>;

/** What one running task uses, as its node last sampled it (src/node/metrics.ts). */
export const TaskStatsSchema = Type.Object(
  {
    taskId: Type.String(),
    cpuCores: Type.Number({
      minimum: 0,
      description: "CPU used over the last sampling interval, in cores (1.5 = one and a half).",
    }),
    memoryBytes: Type.Number({ minimum: 0, description: "Resident memory, bytes." }),
    memoryLimitBytes: Type.Optional(
      Type.Number({ minimum: 0, description: "The task's memory limit, when it has one." }),
    ),
    netRxBytes: Type.Optional(
      Type.Number({
        minimum: 0,
        description: "Bytes received, cumulative (tasks with a network namespace of their own).",
      }),
    ),
    netTxBytes: Type.Optional(Type.Number({ minimum: 0, description: "Bytes sent, cumulative." })),
    blockReadBytes: Type.Optional(Type.Number({ minimum: 0, description: "Cumulative." })),
    blockWriteBytes: Type.Optional(Type.Number({ minimum: 0, description: "Cumulative." })),
    pids: Type.Optional(Type.Integer({ minimum: 0, description: "Processes in the task." })),
    sampledAt: Type.Number({ description: "When it was sampled, ms since epoch (node clock)." }),
  },
  { title: "TaskStats" },
);
export type TaskStats = Static<typeof TaskStatsSchema>;

/** Requests one node's HTTP router or routing mesh passed to a service since its last heartbeat. */
export const ServiceRequestsSchema = Type.Object(
  {
    serviceId: Type.String(),
    count: Type.Integer({ minimum: 0 }),
    latencyMsSum: Type.Optional(
      Type.Number({ minimum: 0, description: "The sum of their latencies, ms." }),
    ),
  },
  { title: "ServiceRequests" },
);
export type ServiceRequests = Static<typeof ServiceRequestsSchema>;

export const HeartbeatSchema = Type.Object(
  {
    nodeId: Type.String(),
    hostname: Type.String(),
    tasks: Type.Array(TaskReportSchema, {
      description: "Every task the agent knows of, with its latest status.",
    }),
    drivers: Type.Optional(
      Type.Array(Type.String(), {
        description: "The task drivers the agent has (for the scheduler's driver filter).",
      }),
    ),
    engineVersion: Type.Optional(Type.String({ description: "The shoal version the node runs." })),
    resources: Type.Optional(NodeResourcesSchema),
    limits: Type.Optional(NodeLimitsSchema),
    networks: Type.Optional(NodeNetworkingSchema),
    tls: Type.Optional(NodeTlsInfoSchema),
    stats: Type.Optional(
      Type.Array(TaskStatsSchema, {
        description: "What the node's running tasks use, sent after each new sample.",
      }),
    ),
    metricsPort: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 65535,
        description: "The port of the node's /metrics (`--metrics-addr`), when it serves one.",
      }),
    ),
    requests: Type.Optional(
      Type.Array(ServiceRequestsSchema, {
        description:
          "Requests per service through this node's router, and new connections through its routing mesh, since its last heartbeat.",
      }),
    ),
  },
  { title: "Heartbeat" },
);
export type Heartbeat = Static<typeof HeartbeatSchema>;

/** Every manager's beat to the others (several managers; daemon/leader-silence.ts). */
export const managerBeatSubject = `${SUBJECT_PREFIX}.mgr.beat`;

export const ManagerBeatSchema = Type.Object(
  {
    nodeId: Type.String({ description: "The manager that beats." }),
    leaderId: Type.Optional(Type.String({ description: "The leader it sees (none: absent)." })),
    leaderSilentMs: Type.Number({
      minimum: 0,
      description: "How long it has not heard that leader's beats (0 when it is the leader).",
    }),
  },
  { title: "ManagerBeat" },
);
export type ManagerBeat = Static<typeof ManagerBeatSchema>;

/** An API write a follower sends to the leader (`$SHOAL.mgr.<leader id>.api`). */
export const ForwardRequestSchema = Type.Object(
  {
    method: Type.String(),
    url: Type.String(),
    body: Type.Optional(Type.Unknown()),
  },
  { title: "ForwardRequest" },
);
export type ForwardRequest = Static<typeof ForwardRequestSchema>;

/** The leader's answer to a forwarded write: its API's status, content type and body. */
export const ForwardReplySchema = Type.Object(
  {
    status: Type.Integer({ minimum: 100, maximum: 599 }),
    contentType: Type.String(),
    body: Type.String(),
  },
  { title: "ForwardReply" },
);
export type ForwardReply = Static<typeof ForwardReplySchema>;

export const StatusMessageSchema = Type.Object(
  {
    nodeId: Type.String(),
    reports: Type.Array(TaskReportSchema),
  },
  { title: "StatusMessage" },
);
export type StatusMessage = Static<typeof StatusMessageSchema>;

export const EndpointSchema = Type.Object(
  {
    host: Type.String(),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    serviceId: Type.Optional(
      Type.String({ description: "The service it is a task of (the mesh counts under it)." }),
    ),
    service: Type.Optional(Type.String({ description: "That service's name." })),
  },
  { title: "Endpoint" },
);
export type Endpoint = Static<typeof EndpointSchema>;

/** A network as one node needs it for the tasks it runs there (the manager's view of it). */
export const NodeNetworkSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    driver: Type.String({ description: '"overlay" or "bridge".' }),
    vni: Type.Integer({ minimum: 1, maximum: 16_777_215 }),
    subnet: Type.String({ description: "IPv4 CIDR." }),
    internal: Type.Boolean(),
    nodeAddr: Type.String({
      description:
        "This node's own address on the network with the prefix length (`10.0.1.2/24`): on its bridge; its tasks' DNS server and, unless internal, their default gateway.",
    }),
    peers: Type.Array(Type.String(), {
      description:
        "The underlay addresses of the other nodes with tasks on this network (VXLAN peers).",
    }),
    vips: Type.Array(
      Type.Object({
        addr: Type.String({ description: "A service's virtual IP on this network." }),
        backends: Type.Array(Type.String(), {
          description: "The addresses (no prefix) of the service's running tasks on this network.",
        }),
      }),
      { description: "Virtual IPs to balance over their backends (every port, every protocol)." },
    ),
  },
  { title: "NodeNetwork" },
);
export type NodeNetwork = Static<typeof NodeNetworkSchema>;

/** The data of a secret or config one of the node's tasks uses (only that node is sent it). */
export const TaskFileDataSchema = Type.Object(
  {
    id: Type.String(),
    data: Type.String({
      maxLength: Math.ceil(FILE_DATA_MAX_BYTES / 3) * 4,
      pattern: BASE64_PATTERN,
      description: "base64",
    }),
  },
  { title: "TaskFileData" },
);
export type TaskFileData = Static<typeof TaskFileDataSchema>;

/** A service's user on the message server: its tasks get it in NATS_URL, NATS_USER and
 * NATS_PASSWORD; it belongs to its stack's account. */
export const AppCredentialsSchema = Type.Object(
  {
    serviceId: Type.String(),
    user: Type.String(),
    password: Type.String(),
  },
  { title: "AppCredentials" },
);
export type AppCredentials = Static<typeof AppCredentialsSchema>;

export const AssignmentsSchema = Type.Object(
  {
    nodeId: Type.String(),
    tasks: Type.Array(TaskSchema, { description: "The node's full set of non-terminal tasks." }),
    endpoints: Type.Record(Type.String(), Type.Array(EndpointSchema), {
      description:
        "Published port → running task endpoints anywhere in the cluster (for the routing mesh).",
    }),
    heartbeatMs: Type.Number({
      minimum: 100,
      maximum: 60_000,
      description:
        "The next heartbeat period the manager wants, ms (the range `swarm update` allows: a message asking for less is dropped, not obeyed with a heartbeat storm).",
    }),
    networks: Type.Optional(
      Type.Array(NodeNetworkSchema, {
        description:
          "The networks of the node's tasks; the node removes those it made and no longer sees.",
      }),
    ),
    dns: Type.Optional(DnsTableSchema),
    routes: Type.Optional(RouteTableSchema),
    secrets: Type.Optional(
      Type.Array(TaskFileDataSchema, {
        description: "The data of each secret the node's tasks use (by id), and no other.",
      }),
    ),
    configs: Type.Optional(
      Type.Array(TaskFileDataSchema, {
        description: "The data of each config the node's tasks use (by id), and no other.",
      }),
    ),
    role: Type.Optional(
      Type.Literal("manager", {
        description:
          "Set when the node is a manager in the store: a worker daemon that reads it was promoted (`node promote`) and becomes a manager.",
      }),
    ),
    trustRoots: Type.Optional(
      Type.Array(Type.String(), {
        description:
          "The digests of the root CAs nodes should trust, the one that signs first: a node whose certificate is from another root, or that trusts other roots, renews its certificate (a root CA rotation).",
      }),
    ),
    appCredentials: Type.Optional(
      Type.Array(AppCredentialsSchema, {
        description:
          "The message server's user of each service the node's tasks belong to, and no other.",
      }),
    ),
  },
  { title: "Assignments" },
);
export type Assignments = Static<typeof AssignmentsSchema>;

export const AGENT_USER = "shoal-agent";

/** How a node's runtime authenticates on the bus: a user and password (a manager's own runtime,
 * over loopback), or its certificate (`tls`, PEM; the user is then the one the certificate maps
 * to, for logs only). The client reads `tls` again at every reconnect: a renewal replaces its
 * fields in place, all at once, so a reconnect never sees a new key with an old certificate. */
export interface BusCredentials {
  user: string;
  pass: string;
  tls?: {
    ca: string;
    cert: string;
    key: string;
    /** Checks the server's certificate beyond its chain (a manager's role, not a host name). */
    checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined;
  };
}
export const APP_USER = "app";

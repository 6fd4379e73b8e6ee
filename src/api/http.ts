// The daemon's HTTP API and the join endpoint as data: every route's method, path, request
// schemas (path parameters, query, body) and reply schema. The manager attaches a handler to each
// (src/manager/api.ts, join.ts) and its HTTP server validates every request against these before
// the handler runs; docs/api.md is generated from them (`npm run docs:api`).
//
// Request schemas are `closed()`: a field the schema does not declare is refused by name. Reply
// schemas describe what the handlers send (the API tests check replies against them).

import { Type, type Static, type TObject, type TSchema } from "@sinclair/typebox";
import { closed } from "./schema.js";
import { TaskStatsSchema } from "./bus.js";
import {
  ConfigInfoSchema,
  ConfigSchema,
  NetworkSchema,
  SecretInfoSchema,
  SecretSchema,
  NodeAvailabilitySchema,
  NodeRoleSchema,
  NodeSchema,
  ServiceSchema,
  ServiceSpecInputSchema,
  SPEC_LIMITS,
  TaskSchema,
  DEFAULT_MAX_REPLICAS,
  MAX_REPLICAS_CEILING,
} from "./types.js";
import { EventCredentialsSchema } from "./events.js";

// ---- bodies -------------------------------------------------------------------------------------

/** Every error: `{ "message", "code" }`, the status derived from the code. */
export const ErrorBodySchema = Type.Object(
  {
    message: Type.String({ description: "What went wrong, naming the field or object." }),
    code: Type.String({ description: "ERR_INVALID, ERR_NOT_FOUND, ERR_TOKEN, ..." }),
  },
  { title: "Error" },
);
export type ErrorBody = Static<typeof ErrorBodySchema>;

export const NodeUpdateSchema = Type.Object(
  {
    availability: Type.Optional(NodeAvailabilitySchema),
    labelAdd: Type.Optional(
      Type.Record(Type.String(), Type.String({ maxLength: SPEC_LIMITS.labelValueLength }), {
        maxProperties: SPEC_LIMITS.labels,
        description: `Labels to add or change (at most ${SPEC_LIMITS.labels}).`,
      }),
    ),
    labelRm: Type.Optional(
      Type.Array(Type.String({ maxLength: SPEC_LIMITS.labelKeyLength }), {
        maxItems: SPEC_LIMITS.labels,
        description: "Labels to remove.",
      }),
    ),
    role: Type.Optional(NodeRoleSchema),
  },
  { title: "NodeUpdate" },
);
export type NodeUpdate = Static<typeof NodeUpdateSchema>;

export const ServiceBodySchema = Type.Object(
  { spec: ServiceSpecInputSchema },
  { title: "ServiceBody" },
);
export type ServiceBody = Static<typeof ServiceBodySchema>;

/** `network create`: what a client sends. */
export const NetworkCreateSchema = Type.Object(
  {
    name: NetworkSchema.properties.name,
    driver: Type.Optional(NetworkSchema.properties.driver),
    subnet: Type.Optional(
      Type.String({ maxLength: 43, description: "IPv4 CIDR; default: a /24 from the pool." }),
    ),
    gateway: Type.Optional(
      Type.String({ maxLength: 39, description: "Default: the subnet's first address." }),
    ),
    internal: Type.Optional(Type.Boolean()),
    attachable: Type.Optional(Type.Boolean()),
    labels: Type.Optional(
      Type.Record(Type.String(), Type.String({ maxLength: SPEC_LIMITS.labelValueLength }), {
        maxProperties: SPEC_LIMITS.labels,
        description: `Network labels (at most ${SPEC_LIMITS.labels}).`,
      }),
    ),
  },
  { title: "NetworkCreate" },
);
export type NetworkCreate = Static<typeof NetworkCreateSchema>;

/** A network as `docker network inspect` shows it (Docker's field names). */
export const NetworkInspectSchema = Type.Object(
  {
    Name: Type.String(),
    Id: Type.String(),
    Created: Type.String({ description: "RFC 3339." }),
    Scope: Type.String({ description: "swarm (overlay) or local (bridge, host)." }),
    Driver: Type.String(),
    EnableIPv6: Type.Boolean(),
    IPAM: Type.Object({
      Driver: Type.String(),
      Options: Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()]),
      Config: Type.Array(Type.Object({ Subnet: Type.String(), Gateway: Type.String() })),
    }),
    Internal: Type.Boolean(),
    Attachable: Type.Boolean(),
    Ingress: Type.Boolean(),
    ConfigFrom: Type.Object({ Network: Type.String() }),
    ConfigOnly: Type.Boolean(),
    Containers: Type.Union(
      [
        Type.Record(
          Type.String(),
          Type.Object({
            Name: Type.String({ description: "The task's name, `service.slot.taskid`." }),
            EndpointID: Type.String(),
            MacAddress: Type.String(),
            IPv4Address: Type.String(),
            IPv6Address: Type.String(),
          }),
        ),
        Type.Null(),
      ],
      { description: "The live tasks on the network, by task id (one-network-wide, all nodes)." },
    ),
    Options: Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()]),
    Labels: Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()]),
    Peers: Type.Optional(
      Type.Array(Type.Object({ Name: Type.String(), IP: Type.String() }), {
        description: "The nodes with tasks on the network (overlay networks).",
      }),
    ),
  },
  { title: "NetworkInspect" },
);
export type NetworkInspect = Static<typeof NetworkInspectSchema>;

/** `secret create` / `config create`: what a client sends. */
const fileCreate = (title: string, data: typeof SecretSchema.properties.data) =>
  Type.Object(
    {
      name: SecretSchema.properties.name,
      labels: Type.Optional(
        Type.Record(Type.String(), Type.String({ maxLength: SPEC_LIMITS.labelValueLength }), {
          maxProperties: SPEC_LIMITS.labels,
          description: `Labels (at most ${SPEC_LIMITS.labels}).`,
        }),
      ),
      data,
    },
    { title },
  );
export const SecretCreateSchema = fileCreate("SecretCreate", SecretSchema.properties.data);
export type SecretCreate = Static<typeof SecretCreateSchema>;
export const ConfigCreateSchema = fileCreate("ConfigCreate", ConfigSchema.properties.data);
export type ConfigCreate = Static<typeof ConfigCreateSchema>;

export const ScaleBodySchema = Type.Object(
  {
    replicas: Type.Integer({
      minimum: 0,
      maximum: MAX_REPLICAS_CEILING,
      description: "Tasks to run (at most the swarm's maxReplicas).",
    }),
  },
  { title: "ScaleBody" },
);
export type ScaleBody = Static<typeof ScaleBodySchema>;

/** Cluster-wide settings (`shoal swarm update`). */
export const SwarmSettingsSchema = Type.Object(
  {
    heartbeatMs: Type.Number({
      minimum: 100,
      maximum: 60_000,
      errorMessage: "must be between 100 ms and 60 s",
      description: "Agents heartbeat this often, ms; a node is down after 3 missed periods.",
    }),
    maxReplicas: Type.Integer({
      minimum: 1,
      maximum: MAX_REPLICAS_CEILING,
      description: `The most replicas a service may have (default ${DEFAULT_MAX_REPLICAS}, at most ${MAX_REPLICAS_CEILING}): every task is kept in the manager's memory. It cannot be set below a service's replica count.`,
    }),
    natsAnonymous: Type.Optional(
      Type.Boolean({
        description:
          "Whether clients that send no credentials may use the managers' message server, as the anonymous user of the applications' account (`--nats-anonymous`, default false: they are refused with Authorization Violation).",
      }),
    ),
    certExpiryMs: Type.Optional(
      Type.Integer({
        minimum: 1000,
        errorMessage: "must be at least 1 s",
        description:
          "Node certificates' lifetime, ms (`--cert-expiry`, default 90 days): certificates issued or renewed from now on.",
      }),
    ),
  },
  { title: "SwarmSettings" },
);
export type SwarmSettings = Static<typeof SwarmSettingsSchema>;

/** The swarm's root CA and a rotation's progress (`shoal swarm ca`). */
export const SwarmCaSchema = Type.Object(
  {
    certPem: Type.String({
      description: "The root CA certificate that signs node certificates (PEM).",
    }),
    digest: Type.String({
      description: "Its digest, as join tokens carry it once no rotation is under way.",
    }),
    rotating: Type.Boolean({
      description:
        "A rotation is under way: the previous root is still trusted (and still in the join tokens) until every node has a certificate from the new one.",
    }),
    nodes: Type.Integer({ description: "Nodes in the swarm." }),
    certsRotated: Type.Integer({
      description:
        'Nodes whose certificate is from this root (Docker\'s "rotated TLS certificates").',
    }),
    rootsRotated: Type.Integer({
      description: 'Nodes that trust this root only (Docker\'s "rotated CA certificates").',
    }),
  },
  { title: "SwarmCa" },
);
export type SwarmCa = Static<typeof SwarmCaSchema>;

export const CaRotateSchema = Type.Object(
  {
    certExpiryMs: Type.Optional(
      Type.Integer({
        minimum: 1000,
        errorMessage: "must be at least 1 s",
        description: "Also set the node certificates' lifetime, ms (`--cert-expiry`).",
      }),
    ),
  },
  { title: "CaRotate" },
);
export type CaRotate = Static<typeof CaRotateSchema>;

export const SwarmUpdateSchema = Type.Partial(SwarmSettingsSchema, { title: "SwarmUpdate" });
export type SwarmUpdate = Static<typeof SwarmUpdateSchema>;

/** A service with its task counts (REPLICAS running/desired, as Swarm counts them). */
export const ServiceSummarySchema = Type.Object(
  {
    ...ServiceSchema.properties,
    running: Type.Integer({ minimum: 0, description: "Tasks running now." }),
    desired: Type.Integer({
      minimum: 0,
      description: "Replicas wanted (global services: tasks meant to run).",
    }),
  },
  { title: "ServiceSummary" },
);
export type ServiceSummary = Static<typeof ServiceSummarySchema>;

export const InfoSchema = Type.Object(
  {
    nodeId: Type.String({ description: "This node's id." }),
    leaderId: Type.Optional(
      Type.String({
        description:
          "The leading manager's node id, as this manager knows it (absent: none leads).",
      }),
    ),
    advertiseAddr: Type.String({
      description: "The address other nodes join and reach this manager on (host:port).",
    }),
    version: Type.String(),
    dataDir: Type.String(),
    natsUrl: Type.String({
      description: "The embedded message server, as this machine reaches it.",
    }),
    managers: Type.Integer({ minimum: 0 }),
    nodes: Type.Integer({ minimum: 0 }),
    services: Type.Integer({ minimum: 0 }),
    tasks: Type.Integer({ minimum: 0 }),
    running: Type.Integer({ minimum: 0, description: "Tasks running." }),
    pid: Type.Integer({ description: "The daemon's process id." }),
    heartbeats: Type.Integer({
      minimum: 0,
      description: "Heartbeats the dispatcher received from known nodes since the start.",
    }),
    passes: Type.Integer({
      minimum: 0,
      description: "Reconcile passes the orchestrator finished since the start.",
    }),
    invalidServices: Type.Array(
      Type.Object({ id: Type.String(), name: Type.String(), problem: Type.String() }),
      {
        description:
          "Stored services that no longer pass validation (stored by an older version or before a limit): the orchestrator leaves them and their tasks alone until they are updated or removed.",
      },
    ),
  },
  { title: "Info" },
);
export type Info = Static<typeof InfoSchema>;

export const TokenSchema = Type.Object({ token: Type.String() }, { title: "Token" });
export const OkSchema = Type.Object({ ok: Type.Literal(true) }, { title: "Ok" });

/** A request without a body (an absent body counts as `{}`). */
export const NoBodySchema = Type.Object({}, { title: "NoBody" });

export const JoinRequestSchema = Type.Object(
  {
    token: Type.String({
      maxLength: 256,
      description: "The join token (`SHOAL-1-<CA digest>-<secret>`).",
    }),
    csr: Type.String({
      maxLength: 8192,
      description:
        "The node's certificate request (PKCS #10, PEM): the node keeps its key, the manager signs.",
    }),
    hostname: Type.String({ maxLength: 255 }),
    addr: Type.String({
      maxLength: 1024,
      description: "The address the node is reachable on (its routing mesh and task ports).",
    }),
    nodeId: Type.Optional(
      Type.String({
        maxLength: 128,
        description:
          "A node that joined before and rejoins keeps its id, if it proves it is that node (nodeSecret).",
      }),
    ),
    nodeSecret: Type.Optional(
      Type.String({
        maxLength: 128,
        description: "The secret the manager gave the node when it first joined.",
      }),
    ),
    etcd: Type.Optional(
      Type.Boolean({
        description:
          "Whether the joining machine has etcd installed; false: a manager's join on managed etcd is refused before anything changes (its member could not start).",
      }),
    ),
  },
  { title: "JoinRequest" },
);
export type JoinRequest = Static<typeof JoinRequestSchema>;

export const EtcdJoinSchema = Type.Object(
  {
    initialCluster: Type.String({
      maxLength: 65536,
      description:
        "The managed etcd's members (`name=peerURL,...`, etcd's --initial-cluster) the joining manager starts its own member with; the member was added already.",
    }),
    memberId: Type.Optional(
      Type.String({
        maxLength: 32,
        description:
          "The etcd id of the joining manager's member, added as a raft learner: the joining manager promotes it to a voting member once it has caught up.",
      }),
    ),
    endpoints: Type.Optional(
      Type.Array(Type.String({ maxLength: 1024 }), {
        maxItems: 64,
        description: "The voting members' etcd client URLs, through which the learner is promoted.",
      }),
    ),
  },
  {
    description:
      "A manager's join on a swarm whose managers run their own etcd members (managed): the joining manager starts its member and opens the store on it.",
  },
);

export const JoinResponseSchema = Type.Object(
  {
    nodeId: Type.String(),
    role: NodeRoleSchema,
    caCert: Type.String({ description: "The cluster's root CA certificate (PEM)." }),
    cert: Type.String({
      description:
        "The node's certificate (PEM): CN its id, OU its role, O the cluster; its identity on the bus.",
    }),
    natsUrls: Type.Array(Type.String(), {
      description:
        "The managers' message servers for nodes (mutual TLS with the node's certificate).",
    }),
    appNatsUrls: Type.Array(Type.String(), {
      description: "The managers' message servers for applications (no certificate).",
    }),
    busUser: Type.String({ description: "The bus user the node's certificate maps to (its DN)." }),
    heartbeatMs: Type.Number({ description: "The heartbeat period, ms." }),
    nodeSecret: Type.Optional(
      Type.String({
        description:
          "The node's own secret: a rejoin with its node id must present it (kept in join.json, 0600).",
      }),
    ),
    store: Type.Optional(
      Type.Array(Type.String(), {
        description:
          "A manager's join: the etcd client URLs of the cluster store its manager daemon opens.",
      }),
    ),
    etcd: Type.Optional(EtcdJoinSchema),
  },
  { title: "JoinResponse" },
);
export type JoinResponse = Static<typeof JoinResponseSchema>;
/** A manager's join on managed etcd: how its member, added already, starts and is promoted. */
export type EtcdJoin = Static<typeof EtcdJoinSchema>;

export const RenewRequestSchema = Type.Object(
  { csr: Type.String({ maxLength: 8192, description: "A new certificate request (PEM)." }) },
  { title: "RenewRequest" },
);
export type RenewRequest = Static<typeof RenewRequestSchema>;

export const PromoteRequestSchema = Type.Object(
  {
    csr: Type.String({
      maxLength: 8192,
      description: "A certificate request for the manager's certificate (PEM).",
    }),
    etcd: Type.Optional(
      Type.Boolean({
        description:
          "Whether the promoted machine has an etcd binary (a manager on managed etcd runs a member of its own).",
      }),
    ),
  },
  { title: "PromoteRequest" },
);
export type PromoteRequest = Static<typeof PromoteRequestSchema>;

export const RenewResponseSchema = Type.Object(
  {
    caCert: Type.String({ description: "The cluster's root CA certificate(s) (PEM)." }),
    cert: Type.String({ description: "The node's new certificate (PEM)." }),
  },
  { title: "RenewResponse" },
);
export type RenewResponse = Static<typeof RenewResponseSchema>;

// ---- routes -------------------------------------------------------------------------------------

export interface RouteSchema {
  method: "GET" | "POST" | "DELETE";
  /** fastify syntax: `/v1/services/:ref`. */
  url: string;
  summary: string;
  params?: TObject;
  querystring?: TObject;
  body?: TObject;
  /** The 200 reply; null for a streamed text reply (`text` says what it is). */
  reply: TSchema | null;
  text?: string;
}

/** A route with its request schemas closed (unknown fields refused). */
function route<const R extends RouteSchema>(r: R): R {
  return {
    ...r,
    ...(r.params ? { params: closed(r.params) } : {}),
    ...(r.querystring ? { querystring: closed(r.querystring) } : {}),
    ...(r.body ? { body: closed(r.body) } : {}),
  };
}

const Ref = Type.Object({
  ref: Type.String({ minLength: 1, description: "id, name, or a unique id prefix" }),
});
/** A time in a query: Unix seconds, with up to nine decimals (as Docker's CLI sends it). */
const unixTime = (description: string) =>
  Type.String({
    pattern: "^[0-9]{1,12}(\\.[0-9]{1,9})?$",
    errorMessage: "must be Unix seconds (e.g. 1700000000.5)",
    description,
  });

/** A query flag: `1` sets it. */
const flag = (description: string) =>
  Type.Optional(Type.Union([Type.Literal("1"), Type.Literal("0")], { description }));

/** One running task's current figures, for `shoal stats` (`GET /v1/tasks/stats`). */
export const TaskStatsRowSchema = Type.Composite(
  [
    TaskStatsSchema,
    Type.Object({
      name: Type.String({ description: "`<service>.<slot>.<task id>` (global: the node id)." }),
      serviceId: Type.String(),
      serviceName: Type.String(),
      nodeId: Type.String(),
      node: Type.String({ description: "The node's hostname." }),
      nodeMemoryBytes: Type.Number({
        description: "The memory the node offers (what a task without a limit may use).",
      }),
    }),
  ],
  { title: "TaskStatsRow" },
);
export type TaskStatsRow = Static<typeof TaskStatsRowSchema>;

export const apiRoutes = {
  info: route({
    method: "GET",
    url: "/v1/info",
    summary:
      "This daemon: node id, version, counts of nodes/services/tasks, NATS URL, data dir, pid.",
    reply: InfoSchema,
  }),
  listNodes: route({
    method: "GET",
    url: "/v1/nodes",
    summary: "Every node.",
    reply: Type.Array(NodeSchema),
  }),
  getNode: route({
    method: "GET",
    url: "/v1/nodes/:ref",
    summary: "One node, by id, hostname or unique id prefix.",
    params: Ref,
    reply: NodeSchema,
  }),
  updateNode: route({
    method: "POST",
    url: "/v1/nodes/:ref/update",
    summary: "Availability and labels (`node update`); role changes are refused (one manager).",
    params: Ref,
    body: NodeUpdateSchema,
    reply: NodeSchema,
  }),
  removeNode: route({
    method: "DELETE",
    url: "/v1/nodes/:ref",
    summary: "Removes a node that is down (`force=1`: even if it is not). Returns it.",
    params: Ref,
    querystring: Type.Object({ force: flag("Remove a node that is not down.") }),
    reply: NodeSchema,
  }),
  listServices: route({
    method: "GET",
    url: "/v1/services",
    summary: "Every service, each with its `running` and `desired` task counts.",
    reply: Type.Array(ServiceSummarySchema),
  }),
  createService: route({
    method: "POST",
    url: "/v1/services",
    summary: "Creates a service. Returns it.",
    body: ServiceBodySchema,
    reply: ServiceSchema,
  }),
  getService: route({
    method: "GET",
    url: "/v1/services/:ref",
    summary: "One service with its `running` and `desired` task counts.",
    params: Ref,
    reply: ServiceSummarySchema,
  }),
  updateService: route({
    method: "POST",
    url: "/v1/services/:ref/update",
    summary:
      "Replaces the spec (the whole new spec); the version is bumped when tasks must be replaced.",
    params: Ref,
    body: ServiceBodySchema,
    reply: ServiceSchema,
  }),
  rollbackService: route({
    method: "POST",
    url: "/v1/services/:ref/rollback",
    summary:
      "The previous spec back, rolled out like an update (version bumped; `updateStatus` rollback_started).",
    params: Ref,
    body: NoBodySchema,
    reply: ServiceSchema,
  }),
  scaleService: route({
    method: "POST",
    url: "/v1/services/:ref/scale",
    summary: "Sets the replica count of a replicated service.",
    params: Ref,
    body: ScaleBodySchema,
    reply: ServiceSchema,
  }),
  removeService: route({
    method: "DELETE",
    url: "/v1/services/:ref",
    summary: "Removes a service (its tasks stop). Returns it.",
    params: Ref,
    reply: ServiceSchema,
  }),
  serviceLogs: route({
    method: "GET",
    url: "/v1/services/:ref/logs",
    summary:
      "The service's task logs as a text stream: the last `tail` lines of each task (a number, or `all`: the default), and with `follow=1` every new line until the client closes.",
    params: Ref,
    querystring: Type.Object({
      tail: Type.Optional(
        Type.String({
          pattern: "^(-?[0-9]+|all)$",
          errorMessage: "must be a number of lines or all",
          description: "Last N lines of each task (default: all).",
        }),
      ),
      follow: flag("Keep streaming new lines."),
    }),
    reply: null,
    text: "`text/plain`, one line per log line: `name.slot.taskid@host    | line`",
  }),
  listNetworks: route({
    method: "GET",
    url: "/v1/networks",
    summary:
      "Every network as `docker network inspect` shows it, the predefined `bridge`, `host` and `ingress` first (without their tasks and peers).",
    reply: Type.Array(NetworkInspectSchema),
  }),
  createNetwork: route({
    method: "POST",
    url: "/v1/networks",
    summary:
      "Creates a network (a /24 from the default address pool unless `subnet` is given). Returns it.",
    body: NetworkCreateSchema,
    reply: NetworkSchema,
  }),
  getNetwork: route({
    method: "GET",
    url: "/v1/networks/:ref",
    summary:
      "One network by id, name or unique id prefix, as `docker network inspect` shows it, with its tasks and their addresses and its peers.",
    params: Ref,
    reply: NetworkInspectSchema,
  }),
  removeNetwork: route({
    method: "DELETE",
    url: "/v1/networks/:ref",
    summary:
      "Removes a network no service or task uses (predefined networks cannot be removed). Returns it.",
    params: Ref,
    reply: NetworkSchema,
  }),
  listSecrets: route({
    method: "GET",
    url: "/v1/secrets",
    summary: "Every secret, without its data.",
    reply: Type.Array(SecretInfoSchema),
  }),
  createSecret: route({
    method: "POST",
    url: "/v1/secrets",
    summary: "Creates a secret (data: base64, 1 byte to 500 KiB). Returns it without its data.",
    body: SecretCreateSchema,
    reply: SecretInfoSchema,
  }),
  getSecret: route({
    method: "GET",
    url: "/v1/secrets/:ref",
    summary: "One secret by id, name or unique id prefix, without its data.",
    params: Ref,
    reply: SecretInfoSchema,
  }),
  removeSecret: route({
    method: "DELETE",
    url: "/v1/secrets/:ref",
    summary: "Removes a secret no service uses. Returns it without its data.",
    params: Ref,
    reply: SecretInfoSchema,
  }),
  listConfigs: route({
    method: "GET",
    url: "/v1/configs",
    summary: "Every config, without its data.",
    reply: Type.Array(ConfigInfoSchema),
  }),
  createConfig: route({
    method: "POST",
    url: "/v1/configs",
    summary: "Creates a config (data: base64, 1 byte to 500 KiB). Returns it without its data.",
    body: ConfigCreateSchema,
    reply: ConfigInfoSchema,
  }),
  getConfig: route({
    method: "GET",
    url: "/v1/configs/:ref",
    summary: "One config by id, name or unique id prefix, with its data (base64).",
    params: Ref,
    reply: ConfigSchema,
  }),
  removeConfig: route({
    method: "DELETE",
    url: "/v1/configs/:ref",
    summary: "Removes a config no service uses. Returns it without its data.",
    params: Ref,
    reply: ConfigInfoSchema,
  }),
  listTasks: route({
    method: "GET",
    url: "/v1/tasks",
    summary: "Tasks of one service (`service=ref`), or every task.",
    querystring: Type.Object({
      service: Type.Optional(Type.String({ description: "A service id, name or id prefix." })),
    }),
    reply: Type.Array(TaskSchema),
  }),
  events: route({
    method: "GET",
    url: "/v1/events",
    summary:
      "Cluster events as a stream, like Docker's /events: the recorded ones since `since` (or after `after`), then new ones as they happen, until `until` (or until the client closes).",
    querystring: Type.Object({
      since: Type.Optional(unixTime("Show recorded events from this time on (Unix seconds).")),
      until: Type.Optional(
        unixTime("Stop at this time (Unix seconds); in the past: history only."),
      ),
      after: Type.Optional(
        Type.String({
          pattern: "^[0-9]{1,15}$",
          errorMessage: "must be an event seq",
          description: "Resume: recorded events with a greater seq, then new ones.",
        }),
      ),
      filters: Type.Optional(
        Type.String({
          maxLength: 4096,
          description:
            'Docker\'s form, JSON: `{"type":["service"],"service":["web"]}`; keys type, event, service, node, network, stack, scope (values of one key: any may match).',
        }),
      ),
    }),
    reply: null,
    text: "`application/json`, one [ClusterEvent](#clusterevent) per line",
  }),
  eventCredentials: route({
    method: "GET",
    url: "/v1/events/credentials",
    summary:
      "The bus user that may only subscribe to the events (`$SHOAL.events.<type>.<id>`), for dashboards and tools with any NATS client.",
    reply: EventCredentialsSchema,
  }),
  taskStats: route({
    method: "GET",
    url: "/v1/tasks/stats",
    summary:
      "What each running task uses now (of one service with `service=ref`), as its node last sampled it.",
    querystring: Type.Object({
      service: Type.Optional(Type.String({ description: "A service id, name or id prefix." })),
    }),
    reply: Type.Array(TaskStatsRowSchema),
  }),
  joinToken: route({
    method: "GET",
    url: "/v1/swarm/join-token/:role",
    summary: "The join token of a role (`rotate=1`: a new one; the old one stops working).",
    params: Type.Object({ role: NodeRoleSchema }),
    querystring: Type.Object({ rotate: flag("Replace the token.") }),
    reply: TokenSchema,
  }),
  dashboardToken: route({
    method: "GET",
    url: "/v1/dashboard/token",
    summary:
      "The web dashboard's login token, made at first use (`rotate=1`: a new one; open sessions end).",
    querystring: Type.Object({ rotate: flag("Replace the token.") }),
    reply: TokenSchema,
  }),
  updateSwarm: route({
    method: "POST",
    url: "/v1/swarm/update",
    summary: "Changes cluster settings. Returns them all.",
    body: SwarmUpdateSchema,
    reply: SwarmSettingsSchema,
  }),
  swarmCa: route({
    method: "GET",
    url: "/v1/swarm/ca",
    summary: "The root CA certificate, and how far a rotation has come.",
    reply: SwarmCaSchema,
  }),
  rotateCa: route({
    method: "POST",
    url: "/v1/swarm/ca/rotate",
    summary:
      "A new root CA (Docker's `swarm ca --rotate`): nodes renew their certificates from it, trusting both roots meanwhile; when every node has, the old root is dropped and the join tokens change. Refused while a rotation is under way.",
    body: CaRotateSchema,
    reply: SwarmCaSchema,
  }),
  leave: route({
    method: "POST",
    url: "/v1/swarm/leave",
    summary: "Stops the daemon and its tasks (a manager needs `force=1`).",
    querystring: Type.Object({ force: flag("Leave even as the last manager.") }),
    body: NoBodySchema,
    reply: OkSchema,
  }),
} as const;

/** The join endpoint (Swarm's port 2377), served on the network. */
export const joinRoutes = {
  join: route({
    method: "POST",
    url: "/v1/swarm/join",
    summary: "A node presents a join token and gets what it needs to join the control bus.",
    body: JoinRequestSchema,
    reply: JoinResponseSchema,
  }),
  renew: route({
    method: "POST",
    url: "/v1/swarm/renew",
    summary:
      "A node renews its certificate: it connects with its current certificate (mutual TLS) and sends a new request.",
    body: RenewRequestSchema,
    reply: RenewResponseSchema,
  }),
  promote: route({
    method: "POST",
    url: "/v1/swarm/promote",
    summary:
      "A promoted worker (`node promote`) becomes a manager: it connects with its worker certificate (mutual TLS) and gets a manager's certificate and the store to open (an etcd member added for it, on managed etcd).",
    body: PromoteRequestSchema,
    reply: JoinResponseSchema,
  }),
} as const;

type Part<S> = S extends TSchema ? Static<S> : undefined;

/** What a route's handler gets: the request's parts, validated. */
export interface RouteInput<R extends RouteSchema> {
  params: Part<R["params"]>;
  query: Part<R["querystring"]>;
  body: Part<R["body"]>;
}

/** What a route's handler returns. */
export type RouteReply<R extends RouteSchema> = R["reply"] extends TSchema
  ? Static<R["reply"]>
  : void;

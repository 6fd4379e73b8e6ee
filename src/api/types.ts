// The cluster's state model, in Swarm's words: nodes, services (a spec and a version) and
// tasks (one running instance of a service in a slot, with a desired and an observed state).
// Everything here is plain JSON so it can be stored, sent over the bus and shown by the API.
//
// Each object is a TypeBox schema (`XSchema`) and its TypeScript type is derived from it
// (`type X = Static<typeof XSchema>`), so the check and the type cannot drift apart. Fields that
// state written by an older version may lack are optional (`spec.update`, `spec.network`,
// `node.drivers`, `service.updateStatus`). To add a field, add it to the schema: the type follows.
// These schemas accept unknown properties (a newer node may send more); request bodies use
// `closed()` copies that refuse them (see http.ts).

import { Type, type Static, type TLiteral, type TUnion } from "@sinclair/typebox";
import { TASK_STATES } from "./model.js";

/** A union of string literals (`"a" | "b"`), checked as "must be one of a, b". */
export function oneOf<const T extends readonly string[]>(
  values: T,
  opts: { description?: string } = {},
): TUnion<TLiteral<T[number]>[]> {
  return Type.Union(
    values.map((v) => Type.Literal(v)),
    opts,
  );
}

/** A count or a size: a non-negative integer. */
const count = (description: string) => Type.Integer({ minimum: 0, description });
/** A duration in milliseconds (may be fractional: `500us` is 0.5). */
const millis = (description: string) => Type.Number({ minimum: 0, description });
/** Milliseconds since the epoch. */
const time = (description: string) => Type.Number({ description });
const stringMap = (description: string) =>
  Type.Record(Type.String(), Type.String(), { description });

// ---- nodes --------------------------------------------------------------------------------------

export const NodeRoleSchema = oneOf(["manager", "worker"]);
export type NodeRole = Static<typeof NodeRoleSchema>;
export const NodeAvailabilitySchema = oneOf(["active", "pause", "drain"]);
export type NodeAvailability = Static<typeof NodeAvailabilitySchema>;
export const NodeStatusSchema = oneOf(["ready", "down", "unknown"]);
export type NodeStatus = Static<typeof NodeStatusSchema>;

export const NodeResourcesSchema = Type.Object(
  {
    nanoCpus: Type.Number({ minimum: 0, description: "CPUs (e.g. 2, or 0.5)." }),
    memoryBytes: count("Memory, bytes."),
  },
  { title: "NodeResources" },
);
export type NodeResources = Static<typeof NodeResourcesSchema>;

export const LimitSupportSchema = Type.Object(
  { cpu: Type.Boolean(), memory: Type.Boolean() },
  { title: "LimitSupport", description: "Which resource limits a driver can enforce on a node." },
);
export type LimitSupport = Static<typeof LimitSupportSchema>;

export const NodeLimitsSchema = Type.Record(Type.String(), LimitSupportSchema, {
  description: "Per driver, which resource limits it can enforce on the node.",
});

/** What a node's runtime reports about itself in every heartbeat (one registration path). */
export interface NodeFacts {
  /** The shoal version the node runs (node ls: ENGINE VERSION). */
  engineVersion: string;
  drivers: string[];
  resources: NodeResources;
  limits: Record<string, LimitSupport>;
  /** Whether the node can have overlay networks, and why not. */
  networks?: NodeNetworking;
  /** Who issued the node's certificate and which roots it trusts (`swarm ca --rotate`). */
  tls?: NodeTlsInfo;
}

export const NodeTlsInfoSchema = Type.Object(
  {
    certIssuer: Type.String({
      description:
        "The digest of the root CA that issued the node's certificate (as join tokens carry it; empty: none of the roots it trusts).",
    }),
    trustRoots: Type.Array(Type.String(), {
      description: "The digests of the root CAs the node trusts.",
    }),
  },
  { title: "NodeTlsInfo", description: "Docker's TLSInfo: what a root CA rotation waits for." },
);
export type NodeTlsInfo = Static<typeof NodeTlsInfoSchema>;

export const NodeNetworkingSchema = Type.Object(
  {
    overlay: Type.Boolean({ description: "The node can run tasks on overlay networks." }),
    reason: Type.Optional(Type.String({ description: "Why it cannot (not root, no vxlan...)." })),
  },
  { title: "NodeNetworking" },
);
export type NodeNetworking = Static<typeof NodeNetworkingSchema>;

export const NodeSchema = Type.Object(
  {
    id: Type.String(),
    hostname: Type.String(),
    role: NodeRoleSchema,
    availability: NodeAvailabilitySchema,
    status: NodeStatusSchema,
    addr: Type.String({ description: "Address other nodes reach it on." }),
    labels: stringMap("Node labels (`node update --label-add`)."),
    resources: NodeResourcesSchema,
    engineVersion: Type.String(),
    drivers: Type.Optional(
      Type.Array(Type.String(), {
        description:
          "The task drivers the node's agent has (process, docker); absent = not reported.",
      }),
    ),
    limits: Type.Optional(NodeLimitsSchema),
    networks: Type.Optional(NodeNetworkingSchema),
    tls: Type.Optional(NodeTlsInfoSchema),
    lastSeen: time(
      "The heartbeat that last made the node ready (ms since epoch); later heartbeats are kept in the manager's memory, not written here.",
    ),
    createdAt: time("ms since epoch"),
    updatedAt: time("ms since epoch"),
  },
  { title: "Node" },
);
export type Node = Static<typeof NodeSchema>;

// ---- service specs ------------------------------------------------------------------------------

export const RestartConditionSchema = oneOf(["none", "on-failure", "any"]);
export type RestartCondition = Static<typeof RestartConditionSchema>;

export const RestartPolicySchema = Type.Object(
  {
    condition: RestartConditionSchema,
    delayMs: millis("Delay before a replacement starts, ms (Swarm's default 5 s)."),
    maxAttempts: count("0 = unlimited."),
    windowMs: millis("Window in which attempts are counted, ms; 0 = forever."),
  },
  { title: "RestartPolicy" },
);
export type RestartPolicy = Static<typeof RestartPolicySchema>;

const port = (description: string) => Type.Integer({ minimum: 1, maximum: 65535, description });

export const PortConfigSchema = Type.Object(
  {
    published: port("Published port on every node (routing mesh)."),
    target: port("Port the task listens on."),
    protocol: oneOf(["tcp", "udp"]),
    mode: oneOf(["ingress", "host"], {
      description: '"ingress" (routing mesh) or "host" (the node\'s own port, one task per node).',
    }),
  },
  { title: "PortConfig" },
);
export type PortConfig = Static<typeof PortConfigSchema>;

export const ResourcesSchema = Type.Object(
  {
    cpus: Type.Number({ minimum: 0, description: "CPUs (0 = none)." }),
    memoryBytes: count("Memory in bytes (0 = none)."),
  },
  { title: "Resources" },
);
export type Resources = Static<typeof ResourcesSchema>;

export const NetworkModeSchema = oneOf(["host", "bridge"], {
  description:
    "host: the task shares the node's network and gets a free port per published target in PORT / SHOAL_PORT_<target>. bridge: the task runs in a network namespace of its own, on the node's task bridge, and listens on the target port itself (Linux, as root).",
});
export type NetworkMode = Static<typeof NetworkModeSchema>;

/** Docker's health check (`--health-cmd`..., compose `healthcheck:`); defaults are Docker's. */
export const HealthConfigSchema = Type.Object(
  {
    test: Type.Array(Type.String(), {
      description:
        'Docker\'s forms: ["CMD", arg...] runs the command, ["CMD-SHELL", "cmd"] runs it with /bin/sh -c, ["NONE"] disables the check.',
    }),
    intervalMs: millis("Between two checks (Docker's default 30 s)."),
    timeoutMs: millis("A check that takes longer fails (default 30 s)."),
    retries: count("Consecutive failures that make the task unhealthy (default 3)."),
    startPeriodMs: millis("Failures in this time after the start do not count (default 0)."),
    startIntervalMs: millis("Between checks during the start period (default 5 s)."),
  },
  { title: "HealthConfig" },
);
export type HealthConfig = Static<typeof HealthConfigSchema>;

export const HealthStateSchema = oneOf(["starting", "healthy", "unhealthy"]);
export type HealthState = Static<typeof HealthStateSchema>;

/** What the agent knows of a task's health: Docker's State.Health. */
export const TaskHealthSchema = Type.Object(
  {
    status: HealthStateSchema,
    failingStreak: count("Consecutive failed checks."),
    log: Type.Array(
      Type.Object({
        start: time("ms since epoch"),
        end: time("ms since epoch"),
        exitCode: Type.Integer(),
        output: Type.String({ description: "The check's output (cut to 4 KiB)." }),
      }),
      { description: "The last 5 results, oldest first." },
    ),
  },
  { title: "TaskHealth" },
);
export type TaskHealth = Static<typeof TaskHealthSchema>;

/** A service's attachment to a user-defined network (`--network NAME[,alias=A]`). */
export const NetworkAttachmentConfigSchema = Type.Object(
  {
    target: Type.String({
      description:
        "The network's id (a client may send its name or an id prefix; the manager stores the id).",
    }),
    aliases: Type.Optional(
      Type.Array(Type.String(), { description: "Other names of the service on this network." }),
    ),
  },
  { title: "NetworkAttachmentConfig" },
);
export type NetworkAttachmentConfig = Static<typeof NetworkAttachmentConfigSchema>;

export const EndpointModeSchema = oneOf(["vip", "dnsrr"], {
  description:
    "vip: the service's name resolves to one virtual IP per network that balances over its tasks; dnsrr: to the addresses of its running tasks.",
});
export type EndpointMode = Static<typeof EndpointModeSchema>;

/** Swarm's rolling update settings (`--update-parallelism`, `--update-delay`, `--update-order`). */
export const UpdateConfigSchema = Type.Object(
  {
    parallelism: count("Slots replaced at the same time; 0 = all at once."),
    delayMs: millis("Wait after a slot's new task runs before that worker takes the next slot."),
    order: oneOf(["stop-first", "start-first"], {
      description:
        "stop-first: the old task stops, then the new one starts; start-first: the reverse.",
    }),
    failureAction: oneOf(["pause", "continue", "rollback"], {
      description:
        "What a failed replacement does to the update: pause it, ignore it, or roll back.",
    }),
    monitorMs: millis("A replacement that fails within this long of running counts as a failure."),
    maxFailureRatio: Type.Number({
      minimum: 0,
      maximum: 1,
      description:
        "The share of replacements that may fail before the failure action (0: none may).",
    }),
  },
  { title: "UpdateConfig" },
);
export type UpdateConfig = Static<typeof UpdateConfigSchema>;

/** Swarm's rollback settings (`--rollback-*`): an update's settings, with no rollback on failure. */
export const RollbackConfigSchema = Type.Object(
  {
    ...UpdateConfigSchema.properties,
    parallelism: count("Slots rolled back at the same time; 0 = all at once."),
    failureAction: oneOf(["pause", "continue"], {
      description: "What a failed task does to the rollback: pause it, or ignore it.",
    }),
  },
  { title: "RollbackConfig" },
);
export type RollbackConfig = Static<typeof RollbackConfigSchema>;

/** A placement preference (`--placement-pref spread=node.labels.zone`): Swarm knows only spread. */
export const PlacementPreferenceSchema = Type.Object(
  {
    spread: Type.String({
      description:
        "node.labels.<name> or engine.labels.<name>: tasks are spread evenly over the label's values (nodes without it are one more group).",
    }),
  },
  { title: "PlacementPreference" },
);
export type PlacementPreference = Static<typeof PlacementPreferenceSchema>;

export const ServiceModeSchema = Type.Union(
  [
    Type.Object({ replicated: Type.Object({ replicas: count("Tasks to run.") }) }),
    Type.Object({ global: Type.Object({}) }, { description: "One task per eligible node." }),
  ],
  { title: "ServiceMode" },
);
export type ServiceMode = Static<typeof ServiceModeSchema>;

export const SERVICE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** Compose's `depends_on` conditions: what a dependency must have reached. */
export const DependencyConditionSchema = oneOf(
  ["service_started", "service_healthy", "service_completed_successfully"],
  {
    description:
      "service_started: its tasks run (or start); service_healthy: its tasks run and pass their health check; service_completed_successfully: its tasks exited 0.",
  },
);
export type DependencyCondition = Static<typeof DependencyConditionSchema>;

/** A service this one waits for before its first tasks start (compose's `depends_on`). */
export const ServiceDependencySchema = Type.Object(
  {
    service: Type.String({
      pattern: SERVICE_NAME.source,
      description: "The other service's name.",
      errorMessage: "must be a service name",
    }),
    condition: DependencyConditionSchema,
    required: Type.Boolean({
      description: "false: a dependency that does not exist is not waited for.",
    }),
  },
  { title: "ServiceDependency" },
);
export type ServiceDependency = Static<typeof ServiceDependencySchema>;
/** A mount of a task (`--mount`, compose `volumes:`): Docker's Mount fields. */
export const MountSchema = Type.Object(
  {
    type: oneOf(["bind", "volume", "tmpfs"], {
      description:
        "bind: a path of the node; volume: a named local volume (created on first use, kept after the task); tmpfs: a memory file system.",
    }),
    source: Type.String({
      description:
        'bind: an absolute path on the node; volume: the volume\'s name ("" = an anonymous volume); tmpfs: "".',
    }),
    target: Type.String({ description: "Where the task sees it (an absolute path)." }),
    readOnly: Type.Boolean(),
  },
  { title: "Mount" },
);
export type Mount = Static<typeof MountSchema>;
/** The pattern of a string without NUL characters (checked as "must not contain NUL"). */
export const NO_NUL = "^[^\\u0000]*$";

/** Secrets and configs a task gets (Docker's SecretReference / ConfigReference, flattened). */
const fileReference = (what: "secret" | "config", title: string) =>
  Type.Object(
    {
      source: Type.String({
        minLength: 1,
        maxLength: 64,
        pattern: NO_NUL,
        description: `The ${what}'s name (a client may send its name, id or a unique id prefix; the manager stores the name).`,
      }),
      id: Type.Optional(
        Type.String({ maxLength: 64, description: `The ${what}'s id, set by the manager.` }),
      ),
      target: Type.String({
        minLength: 1,
        maxLength: 4096,
        pattern: NO_NUL,
        description:
          what === "secret"
            ? "The file's name: /run/secrets/<target> in a container, $SHOAL_SECRETS_DIR/<target> for a process (default: the name)."
            : "The file's path: <target> in a container (`/<name>` by default), under $SHOAL_CONFIGS_DIR for a process.",
      }),
      uid: Type.String({
        pattern: "^[0-9]{1,10}$",
        description: 'The file\'s owner (default "0").',
      }),
      gid: Type.String({
        pattern: "^[0-9]{1,10}$",
        description: 'The file\'s group (default "0").',
      }),
      mode: Type.Integer({
        minimum: 0,
        maximum: 0o777,
        description: "The file's permission bits (default 0444 = 292).",
      }),
    },
    { title },
  );

export const SecretReferenceSchema = fileReference("secret", "SecretReference");
export type SecretReference = Static<typeof SecretReferenceSchema>;
export const ConfigReferenceSchema = fileReference("config", "ConfigReference");
export type ConfigReference = Static<typeof ConfigReferenceSchema>;
/** Secrets or configs a service may use (each). */
export const MAX_FILE_REFERENCES = 64;

/**
 * A service's autoscaling policy (`--autoscale-*`, compose `x-shoal-autoscale`): Kubernetes'
 * HPA rules between min and max replicas, towards each target given (at least one). Durations
 * not given take the defaults (stabilization 5 min, evaluation every 15 s); see
 * src/manager/autoscale/hpa.ts.
 */
export const AutoscalePolicySchema = Type.Object(
  {
    min: Type.Integer({ minimum: 1, maximum: 100_000, description: "The fewest replicas." }),
    max: Type.Integer({ minimum: 1, maximum: 100_000, description: "The most replicas." }),
    cpuPercent: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 100_000,
        description:
          "Target CPU use per task, percent of its CPU limit (else its reservation, else one core).",
      }),
    ),
    memoryPercent: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 100_000,
        description:
          "Target memory use per task, percent of its memory limit (else its reservation; one of them is required).",
      }),
    ),
    rps: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 1e9,
        description: "Target requests per second per task (through the router or the mesh).",
      }),
    ),
    stabilizationMs: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 2_147_483_647,
        description:
          "Scale down only to the highest recommendation of this window, ms (default 300000).",
      }),
    ),
    evaluationMs: Type.Optional(
      Type.Number({
        minimum: 1000,
        maximum: 2_147_483_647,
        description: "How often the service is evaluated, ms (default 15000).",
      }),
    ),
  },
  { title: "AutoscalePolicy" },
);
export type AutoscalePolicy = Static<typeof AutoscalePolicySchema>;

export const ServiceSpecSchema = Type.Object(
  {
    name: Type.String({
      pattern: SERVICE_NAME.source,
      description: "Letters, digits, '_', '.', '-' (max 63), starting with a letter or digit.",
      errorMessage:
        "must be letters, digits, '_', '.', '-' (max 63), starting with a letter or digit",
    }),
    driver: oneOf(["process", "docker"], {
      description: 'Driver: "process" runs a command on the node; "docker" runs an image.',
    }),
    image: Type.String({ description: "For the docker driver." }),
    command: Type.Array(Type.String(), {
      description:
        "Command and arguments (process driver: required; docker: overrides the image's).",
    }),
    env: stringMap("Environment variables of the task."),
    workdir: Type.String(),
    labels: stringMap("Service labels."),
    mode: ServiceModeSchema,
    ports: Type.Array(PortConfigSchema),
    restartPolicy: RestartPolicySchema,
    limits: ResourcesSchema,
    reservations: ResourcesSchema,
    constraints: Type.Array(Type.String(), {
      description: 'Placement constraints like "node.role==worker", "node.labels.zone==a".',
    }),
    stopGracePeriodMs: millis("How long a task has to stop after its stop signal."),
    stopSignal: Type.String(),
    update: Type.Optional(
      Type.Partial(UpdateConfigSchema, {
        description:
          "How a spec change replaces running tasks (Swarm's UpdateConfig); missing fields take Swarm's defaults.",
      }),
    ),
    network: Type.Optional(NetworkModeSchema),
    networks: Type.Optional(
      Type.Array(NetworkAttachmentConfigSchema, {
        description:
          "User-defined networks the tasks join (each task gets an address on each, in its own network namespace).",
      }),
    ),
    endpointMode: Type.Optional(EndpointModeSchema),
    healthcheck: Type.Optional(HealthConfigSchema),
    dependsOn: Type.Optional(
      Type.Array(ServiceDependencySchema, {
        description:
          "Services whose condition must hold before this service's first tasks start (compose's depends_on); later restarts and updates do not wait.",
      }),
    ),
    preferences: Type.Optional(
      Type.Array(PlacementPreferenceSchema, {
        description:
          "Placement preferences, highest precedence first (each nests in the one before).",
      }),
    ),
    maxReplicasPerNode: Type.Optional(
      count("Live tasks of the service one node may have (replicated services); 0 = no limit."),
    ),
    rollback: Type.Optional(
      Type.Partial(RollbackConfigSchema, {
        description:
          "How a rollback replaces running tasks (Swarm's RollbackConfig); missing fields take Swarm's defaults.",
      }),
    ),
    mounts: Type.Optional(Type.Array(MountSchema, { description: "The tasks' mounts." })),
    user: Type.Optional(
      Type.String({
        description:
          'Who the task runs as: "name", "uid", "uid:gid", "name:group" (default: the node\'s or image\'s user).',
      }),
    ),
    secrets: Type.Optional(
      Type.Array(SecretReferenceSchema, {
        maxItems: MAX_FILE_REFERENCES,
        description: "Secrets the tasks get as files (`--secret`).",
      }),
    ),
    configs: Type.Optional(
      Type.Array(ConfigReferenceSchema, {
        maxItems: MAX_FILE_REFERENCES,
        description: "Configs the tasks get as files (`--config`).",
      }),
    ),
    autoscale: Type.Optional(AutoscalePolicySchema),
  },
  { title: "ServiceSpec" },
);
export type ServiceSpec = Static<typeof ServiceSpecSchema>;

// ---- bounds of a spec a client sends -------------------------------------------------------------

/**
 * What a service spec sent to the API may hold at most. Stored specs and bus messages keep the
 * open schema above (what older versions stored stays readable); the manager checks stored specs
 * against these bounds too and skips, with a report, a service that breaks them. The replica
 * count has a cluster-wide limit besides (`maxReplicas` in the swarm settings, default
 * DEFAULT_MAX_REPLICAS, at most MAX_REPLICAS_CEILING).
 */
export const SPEC_LIMITS = {
  /** Arguments of the command, and the length of each (Linux's MAX_ARG_STRLEN is 128 KiB). */
  commandArgs: 4096,
  argLength: 65_536,
  /** Characters of the whole command, arguments together. */
  commandLength: 262_144,
  envVars: 1024,
  envNameLength: 1024,
  envValueLength: 65_536,
  labels: 256,
  labelKeyLength: 1024,
  labelValueLength: 4096,
  ports: 256,
  constraints: 64,
  constraintLength: 1024,
  imageLength: 1024,
  pathLength: 4096,
  signalLength: 32,
  /** Networks a service joins, aliases per network, and an alias's length (a DNS name). */
  networks: 16,
  aliases: 16,
  aliasLength: 253,
  /** Durations (ms) must fit a timer (setTimeout's limit, about 24.8 days). */
  durationMs: 2_147_483_647,
  cpus: 4096,
  /** Services a service depends on. */
  dependsOn: 64,
  /** Counts that are not replicas (restart attempts, update parallelism). */
  count: 1_000_000,
  /** Mounts of a task; a user name or id (`name:group`). */
  mounts: 64,
  userLength: 256,
} as const;

/** The replicas a service may have unless the swarm settings say otherwise. */
export const DEFAULT_MAX_REPLICAS = 10_000;
/** The highest `maxReplicas` the swarm settings accept (the manager keeps every task in memory). */
export const MAX_REPLICAS_CEILING = 100_000;

const L = SPEC_LIMITS;
const text = (maxLength: number, description?: string) =>
  Type.String({ maxLength, pattern: NO_NUL, ...(description ? { description } : {}) });
const boundedCount = (maximum: number, description?: string) =>
  Type.Integer({ minimum: 0, maximum, ...(description ? { description } : {}) });
const boundedMillis = (description?: string) =>
  Type.Number({ minimum: 0, maximum: L.durationMs, ...(description ? { description } : {}) });
const boundedResources = Type.Object(
  {
    cpus: Type.Number({ minimum: 0, maximum: L.cpus, description: "CPUs (0 = none)." }),
    memoryBytes: boundedCount(Number.MAX_SAFE_INTEGER, "Memory in bytes (0 = none)."),
  },
  { title: "Resources" },
);

/** A service spec as a client sends it: ServiceSpecSchema with every size and count bounded. */
export const ServiceSpecInputSchema = Type.Object(
  {
    ...ServiceSpecSchema.properties,
    image: text(L.imageLength, "For the docker driver."),
    command: Type.Array(text(L.argLength), {
      maxItems: L.commandArgs,
      description: `Command and arguments (process driver: required; docker: overrides the image's); at most ${L.commandArgs} arguments of ${L.argLength} characters, ${L.commandLength} in all.`,
    }),
    env: Type.Record(Type.String(), text(L.envValueLength), {
      maxProperties: L.envVars,
      description: `Environment variables of the task (at most ${L.envVars}; a name is not empty and has no '=' or NUL).`,
    }),
    workdir: text(L.pathLength),
    labels: Type.Record(Type.String(), text(L.labelValueLength), {
      maxProperties: L.labels,
      description: `Service labels (at most ${L.labels}).`,
    }),
    mode: Type.Union(
      [
        Type.Object({
          replicated: Type.Object({
            replicas: boundedCount(
              MAX_REPLICAS_CEILING,
              "Tasks to run (at most the swarm's maxReplicas).",
            ),
          }),
        }),
        Type.Object({ global: Type.Object({}) }, { description: "One task per eligible node." }),
      ],
      { title: "ServiceMode" },
    ),
    ports: Type.Array(PortConfigSchema, { maxItems: L.ports }),
    dependsOn: Type.Optional(
      Type.Array(ServiceDependencySchema, {
        maxItems: L.dependsOn,
        description: `Services whose condition must hold before this service's first tasks start (at most ${L.dependsOn}).`,
      }),
    ),
    networks: Type.Optional(
      Type.Array(
        Type.Object(
          {
            target: Type.String({
              minLength: 1,
              maxLength: 64,
              pattern: NO_NUL,
              description: "A network's name, id or id prefix (stored as its id).",
            }),
            aliases: Type.Optional(
              Type.Array(
                Type.String({
                  minLength: 1,
                  maxLength: L.aliasLength,
                  pattern: "^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
                }),
                { maxItems: L.aliases },
              ),
            ),
          },
          { title: "NetworkAttachmentConfig" },
        ),
        {
          maxItems: L.networks,
          description: `User-defined networks the tasks join (at most ${L.networks}, each with at most ${L.aliases} aliases).`,
        },
      ),
    ),
    restartPolicy: Type.Object(
      {
        condition: RestartConditionSchema,
        delayMs: boundedMillis("Delay before a replacement starts, ms (Swarm's default 5 s)."),
        maxAttempts: boundedCount(L.count, "0 = unlimited."),
        windowMs: boundedMillis("Window in which attempts are counted, ms; 0 = forever."),
      },
      { title: "RestartPolicy" },
    ),
    limits: boundedResources,
    reservations: boundedResources,
    constraints: Type.Array(text(L.constraintLength), {
      maxItems: L.constraints,
      description: 'Placement constraints like "node.role==worker", "node.labels.zone==a".',
    }),
    stopGracePeriodMs: boundedMillis("How long a task has to stop after its stop signal."),
    stopSignal: Type.String({
      minLength: 1,
      maxLength: L.signalLength,
      description: "A signal name (SIGTERM, TERM) or number (15).",
    }),
    healthcheck: Type.Optional(
      Type.Object(
        {
          test: Type.Array(text(L.argLength), {
            maxItems: L.commandArgs,
            description: HealthConfigSchema.properties.test.description,
          }),
          intervalMs: boundedMillis("Between two checks; 0 = Docker's default 30 s."),
          timeoutMs: boundedMillis("A check that takes longer fails; 0 = 30 s."),
          retries: boundedCount(L.count, "Failures in a row that make the task unhealthy; 0 = 3."),
          startPeriodMs: boundedMillis("Failures in this time after the start do not count."),
          startIntervalMs: boundedMillis("Between checks during the start period; 0 = 5 s."),
        },
        { title: "HealthConfig" },
      ),
    ),
    mounts: Type.Optional(
      Type.Array(
        Type.Object(
          {
            ...MountSchema.properties,
            source: text(L.pathLength, MountSchema.properties.source.description),
            target: Type.String({
              minLength: 1,
              maxLength: L.pathLength,
              pattern: NO_NUL,
              description: MountSchema.properties.target.description,
            }),
          },
          { title: "Mount" },
        ),
        { maxItems: L.mounts, description: `The tasks' mounts (at most ${L.mounts}).` },
      ),
    ),
    user: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: L.userLength,
        pattern: "^[^\\u0000:]+(:[^\\u0000:]+)?$",
        errorMessage: 'must be "user" or "user:group" (a name or a number each)',
        description: ServiceSpecSchema.properties.user.description,
      }),
    ),
    update: Type.Optional(
      Type.Partial(
        Type.Object({
          ...UpdateConfigSchema.properties,
          parallelism: boundedCount(L.count, "Slots replaced at the same time; 0 = all at once."),
          delayMs: boundedMillis(
            "Wait after a slot's new task runs before that worker takes the next slot.",
          ),
          monitorMs: boundedMillis(
            "A replacement that fails within this long of running counts as a failure.",
          ),
        }),
        {
          description:
            "How a spec change replaces running tasks (Swarm's UpdateConfig); missing fields take Swarm's defaults.",
        },
      ),
    ),
    preferences: Type.Optional(
      Type.Array(
        Type.Object(
          {
            spread: text(
              L.constraintLength,
              PlacementPreferenceSchema.properties.spread.description,
            ),
          },
          { title: "PlacementPreference" },
        ),
        {
          maxItems: L.constraints,
          description: `Placement preferences, highest precedence first (at most ${L.constraints}).`,
        },
      ),
    ),
    maxReplicasPerNode: Type.Optional(
      boundedCount(
        MAX_REPLICAS_CEILING,
        "Live tasks of the service one node may have (replicated services); 0 = no limit.",
      ),
    ),
    rollback: Type.Optional(
      Type.Partial(
        Type.Object({
          ...RollbackConfigSchema.properties,
          parallelism: boundedCount(
            L.count,
            "Slots rolled back at the same time; 0 = all at once.",
          ),
          delayMs: boundedMillis(
            "Wait after a slot's task runs before that worker takes the next slot.",
          ),
          monitorMs: boundedMillis(
            "A task that fails within this long of running counts as a failure.",
          ),
        }),
        {
          description:
            "How a rollback replaces running tasks (Swarm's RollbackConfig); missing fields take Swarm's defaults.",
        },
      ),
    ),
  },
  { title: "ServiceSpecInput" },
);

// ---- services -----------------------------------------------------------------------------------

/** The autoscaler's last decision on a service (`service inspect`). */
export const AutoscaleStatusSchema = Type.Object(
  {
    lastDecisionAt: time("ms since epoch"),
    metric: Type.Union([oneOf(["cpu", "memory", "rps"]), Type.Null()], {
      description: "The target that decided (null: none had figures, or min/max did).",
    }),
    value: Type.Union([Type.Number(), Type.Null()], {
      description: "The metric's value per task (percent, or requests per second).",
    }),
    target: Type.Union([Type.Number(), Type.Null()], { description: "The metric's target." }),
    current: count("Replicas when the decision was made."),
    desired: count("Replicas decided."),
    reason: Type.String({ description: 'Why, e.g. "cpu 95% above target 70%".' }),
    lastScaleAt: Type.Optional(time("When the autoscaler last changed the replicas.")),
  },
  { title: "AutoscaleStatus" },
);
export type AutoscaleStatus = Static<typeof AutoscaleStatusSchema>;

/** Where the service's last update (or rollback) is, as Swarm's UpdateStatus. */
export const UpdateStatusSchema = Type.Object(
  {
    state: oneOf([
      "updating",
      "paused",
      "completed",
      "rollback_started",
      "rollback_paused",
      "rollback_completed",
    ]),
    version: Type.Integer({ description: "The service version this update moves to." }),
    startedAt: time("ms since epoch"),
    completedAt: Type.Union([time("ms since epoch"), Type.Null()]),
    message: Type.String(),
  },
  { title: "UpdateStatus" },
);
export type UpdateStatus = Static<typeof UpdateStatusSchema>;

export const ServiceSchema = Type.Object(
  {
    id: Type.String(),
    spec: ServiceSpecSchema,
    version: Type.Integer({
      description: "Incremented on every spec change; tasks carry the version they were made from.",
    }),
    previousSpec: Type.Union([ServiceSpecSchema, Type.Null()]),
    virtualIps: Type.Optional(
      Type.Array(
        Type.Object({
          networkId: Type.String(),
          addr: Type.String({ description: "The virtual IP on that network (no prefix)." }),
        }),
        { description: "One virtual IP per network (vip endpoint mode), given by the manager." },
      ),
    ),
    updateStatus: Type.Optional(
      Type.Union([UpdateStatusSchema, Type.Null()], {
        description: "Set by the first update; null (or absent) for a service never updated.",
      }),
    ),
    autoscaleStatus: Type.Optional(
      Type.Union([AutoscaleStatusSchema, Type.Null()], {
        description: "The autoscaler's last decision (services with spec.autoscale).",
      }),
    ),
    createdAt: time("ms since epoch"),
    updatedAt: time("ms since epoch"),
  },
  { title: "Service" },
);
export type Service = Static<typeof ServiceSchema>;

// ---- networks -----------------------------------------------------------------------------------

/** Docker's predefined networks: listed, never removable, never a user network's name. */
export const PREDEFINED_NETWORKS = ["bridge", "host", "ingress"] as const;

export const NetworkSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String({
      pattern: SERVICE_NAME.source,
      description: "Letters, digits, '_', '.', '-' (max 63), starting with a letter or digit.",
    }),
    driver: oneOf(["overlay", "bridge"], {
      description: "overlay: spans the swarm's machines (VXLAN); bridge: one machine's tasks.",
    }),
    subnet: Type.String({ description: "IPv4 CIDR, e.g. `10.0.1.0/24`." }),
    gateway: Type.String({ description: "The subnet's gateway address (IPAM config)." }),
    vni: Type.Integer({ minimum: 1, maximum: 16_777_215, description: "The VXLAN id (overlay)." }),
    internal: Type.Boolean({ description: "No route out of the network." }),
    attachable: Type.Boolean(),
    labels: stringMap("Network labels."),
    nodeAddrs: Type.Record(Type.String(), Type.String(), {
      description:
        "Node id → that node's own address on the network (its bridge: its tasks' DNS server and, unless internal, their way out), given by the manager when the node first runs a task of the network.",
    }),
    createdAt: time("ms since epoch"),
    updatedAt: time("ms since epoch"),
  },
  { title: "Network" },
);
export type Network = Static<typeof NetworkSchema>;

// ---- secrets and configs ------------------------------------------------------------------------

/** Docker's limit on a secret's or config's data (swarmkit's MaxSecretSize, MaxConfigSize). */
export const FILE_DATA_MAX_BYTES = 500 * 1024;
/** Base64 (standard alphabet, padded). */
export const BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$";
const base64Data = (description: string) =>
  Type.String({
    maxLength: Math.ceil(FILE_DATA_MAX_BYTES / 3) * 4,
    pattern: BASE64_PATTERN,
    errorMessage: "must be base64 of at most 500 KiB",
    description,
  });

const fileObject = (what: "secret" | "config", title: string) =>
  Type.Object(
    {
      id: Type.String(),
      name: Type.String({
        pattern: SERVICE_NAME.source,
        description: "Letters, digits, '_', '.', '-' (max 63), starting with a letter or digit.",
        errorMessage:
          "must be letters, digits, '_', '.', '-' (max 63), starting with a letter or digit",
      }),
      labels: stringMap(`${what === "secret" ? "Secret" : "Config"} labels.`),
      data: base64Data(
        what === "secret"
          ? "The secret's value, base64 (at most 500 KiB decoded). Kept in the store and sent only to the nodes that run a task using it; the API never returns it."
          : "The config's value, base64 (at most 500 KiB decoded).",
      ),
      createdAt: time("ms since epoch"),
      updatedAt: time("ms since epoch"),
    },
    { title },
  );

export const SecretSchema = fileObject("secret", "Secret");
export type Secret = Static<typeof SecretSchema>;
export const ConfigSchema = fileObject("config", "Config");
export type Config = Static<typeof ConfigSchema>;
/** A secret as the API shows it: everything but its data. */
export const SecretInfoSchema = Type.Omit(SecretSchema, ["data"], { title: "SecretInfo" });
export type SecretInfo = Static<typeof SecretInfoSchema>;
/** A config as lists show it: everything but its data (inspect shows the data). */
export const ConfigInfoSchema = Type.Omit(ConfigSchema, ["data"], { title: "ConfigInfo" });
export type ConfigInfo = Static<typeof ConfigInfoSchema>;

// ---- tasks --------------------------------------------------------------------------------------

export const TaskStateSchema = oneOf(TASK_STATES);
export type TaskState = Static<typeof TaskStateSchema>;

/** What the orchestrator wants of a task: run it, keep it ready (restart delay), or stop it. */
export const DesiredStateSchema = oneOf(["running", "ready", "shutdown", "remove"]);
export type DesiredState = Static<typeof DesiredStateSchema>;

const hostPorts = (description: string) =>
  Type.Record(Type.String(), port("host port"), { description });

/** What an agent reports about one of its tasks (on a change, and in every heartbeat). */
export const TaskReportSchema = Type.Object(
  {
    taskId: Type.String(),
    state: TaskStateSchema,
    message: Type.String(),
    err: Type.Optional(Type.String()),
    exitCode: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
    pid: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
    hostPorts: Type.Optional(hostPorts("Ports the agent chose: target → host port.")),
    health: Type.Optional(TaskHealthSchema),
  },
  { title: "TaskReport" },
);
export type TaskReport = Static<typeof TaskReportSchema>;

export const TaskStatusSchema = Type.Object(
  {
    state: TaskStateSchema,
    timestamp: time("When the state was entered (ms since epoch)."),
    message: Type.String(),
    err: Type.String({
      description: "Error text shown in `service ps` ERROR, e.g. `task: non-zero exit (1)`.",
    }),
    exitCode: Type.Union([Type.Integer(), Type.Null()]),
    pid: Type.Union([Type.Integer(), Type.Null()], {
      description: "OS process id (process driver).",
    }),
    containerId: Type.Union([Type.String(), Type.Null()], {
      description: "Container id (docker driver).",
    }),
    health: Type.Optional(TaskHealthSchema),
  },
  { title: "TaskStatus" },
);
export type TaskStatus = Static<typeof TaskStatusSchema>;

/** A task's place on one network. */
export const TaskNetworkSchema = Type.Object(
  {
    networkId: Type.String(),
    addr: Type.String({ description: "The task's address with the prefix length, `10.0.1.5/24`." }),
    aliases: Type.Optional(Type.Array(Type.String())),
  },
  { title: "TaskNetwork" },
);
export type TaskNetwork = Static<typeof TaskNetworkSchema>;

export const TaskSchema = Type.Object(
  {
    id: Type.String(),
    serviceId: Type.String(),
    serviceName: Type.String(),
    slot: count("Replicated services: 1..N. Global services: 0 (one per node)."),
    nodeId: Type.String({ description: "Empty until scheduled." }),
    specVersion: Type.Integer({ description: "The service version this task was made from." }),
    spec: ServiceSpecSchema,
    desiredState: DesiredStateSchema,
    status: TaskStatusSchema,
    hostPorts: hostPorts(
      "Ports the agent chose for this task (host networking): target → host port.",
    ),
    notBefore: time("Earliest time the task may start (restart delay), ms since epoch; 0 = now."),
    networks: Type.Optional(
      Type.Array(TaskNetworkSchema, {
        description:
          "The task's address on each network of its service, given by the manager before the task is assigned.",
      }),
    ),
    createdAt: time("ms since epoch"),
    updatedAt: time("ms since epoch"),
  },
  { title: "Task" },
);
export type Task = Static<typeof TaskSchema>;

// ---- helpers (in model.ts, which loads without TypeBox: the CLI starts faster) ------------------

export {
  TASK_STATES,
  AUTOSCALE_DEFAULTS,
  autoscaleOf,
  defaultRestartPolicy,
  defaultServiceSpec,
  defaultUpdateConfig,
  defaultRollbackConfig,
  isTerminal,
  networkOf,
  replicasOf,
  servesTraffic,
  stateIndex,
  updateConfigOf,
  rollbackConfigOf,
  activeUpdateConfig,
} from "./model.js";

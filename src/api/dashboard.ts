// The dashboard's HTTP contract (src/manager/dashboard/ serves it, web/ reads it): the cluster
// view its live stream pushes (`GET /api/state`, server-sent events), the event feed's events
// (`GET /api/events`, Docker's event shape), and the bodies of its few actions. The front end
// declares the same shapes in web/src/types.ts; test/manager/dashboard.test.ts checks the
// server's messages against these schemas.

import { Type, type Static } from "@sinclair/typebox";
import { closed } from "./schema.js";
import { OkSchema, ScaleBodySchema, type RouteSchema } from "./http.js";
import {
  AutoscaleStatusSchema,
  NodeAvailabilitySchema,
  NodeRoleSchema,
  NodeSchema,
  ServiceSchema,
  NodeStatusSchema,
  PortConfigSchema,
  TaskStateSchema,
  DesiredStateSchema,
  HealthStateSchema,
  UpdateStatusSchema,
} from "./types.js";

export const DashNodeSchema = Type.Object(
  {
    id: Type.String(),
    hostname: Type.String(),
    role: NodeRoleSchema,
    availability: NodeAvailabilitySchema,
    status: NodeStatusSchema,
    addr: Type.String(),
    nanoCpus: Type.Number({ description: "CPUs the node offers." }),
    memoryBytes: Type.Number({ description: "Memory the node offers, bytes." }),
    engineVersion: Type.String(),
    labels: Type.Record(Type.String(), Type.String()),
  },
  { title: "DashNode" },
);
export type DashNode = Static<typeof DashNodeSchema>;

/** One autoscaler decision on the dashboard's chart. */
export const AutoscalePointSchema = Type.Object(
  {
    at: Type.Number({ description: "When it was decided, ms since epoch." }),
    replicas: Type.Integer({ minimum: 0, description: "The replicas it decided." }),
    value: Type.Union([Type.Number(), Type.Null()], {
      description: "The deciding metric's value per task (null: no figures).",
    }),
  },
  { title: "AutoscalePoint" },
);
export type AutoscalePoint = Static<typeof AutoscalePointSchema>;

export const DashServiceSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    mode: Type.Union([Type.Literal("replicated"), Type.Literal("global")]),
    desired: Type.Integer({ minimum: 0 }),
    running: Type.Integer({ minimum: 0 }),
    ports: Type.Array(PortConfigSchema),
    image: Type.String({ description: "The image (docker) or the command (process)." }),
    version: Type.Integer(),
    updateStatus: Type.Union([UpdateStatusSchema, Type.Null()]),
    canRollback: Type.Boolean({ description: "The service has a previous spec." }),
    autoscale: Type.Optional(
      Type.Unknown({ description: "The spec's `autoscale` section, when it has one." }),
    ),
    autoscaleStatus: Type.Optional(AutoscaleStatusSchema),
    autoscaleHistory: Type.Optional(
      Type.Array(AutoscalePointSchema, { description: "The last hour's decisions, oldest first." }),
    ),
  },
  { title: "DashService" },
);
export type DashService = Static<typeof DashServiceSchema>;

export const DashTaskSchema = Type.Object(
  {
    id: Type.String(),
    serviceId: Type.String(),
    serviceName: Type.String(),
    slot: Type.Integer({ minimum: 0 }),
    nodeId: Type.String(),
    state: TaskStateSchema,
    desiredState: DesiredStateSchema,
    health: Type.Optional(HealthStateSchema),
    message: Type.String(),
    err: Type.String(),
    timestamp: Type.Number({ description: "When the state was entered (ms since epoch)." }),
  },
  { title: "DashTask" },
);
export type DashTask = Static<typeof DashTaskSchema>;

/** One message of `GET /api/state`: the whole view, sent at connect and after each change. */
export const DashStateSchema = Type.Object(
  {
    revision: Type.Integer({ description: "The store revision the view was read at." }),
    nodes: Type.Array(DashNodeSchema),
    services: Type.Array(DashServiceSchema),
    tasks: Type.Array(DashTaskSchema),
  },
  { title: "DashState" },
);
export type DashState = Static<typeof DashStateSchema>;

export const DashLoginSchema = closed(
  Type.Object({ token: Type.String({ minLength: 1, maxLength: 256 }) }, { title: "DashLogin" }),
);
export type DashLogin = Static<typeof DashLoginSchema>;

export const DashSessionSchema = Type.Object(
  {
    required: Type.Boolean({ description: "This dashboard asks for the login token." }),
    ok: Type.Boolean({ description: "The request carries a valid session (or none is needed)." }),
  },
  { title: "DashSession" },
);
export type DashSession = Static<typeof DashSessionSchema>;

export const DashAvailabilitySchema = closed(
  Type.Object({ availability: NodeAvailabilitySchema }, { title: "DashAvailability" }),
);
export type DashAvailability = Static<typeof DashAvailabilitySchema>;

export const DashLogsSchema = Type.Object(
  { lines: Type.Array(Type.String()) },
  { title: "DashLogs" },
);
export type DashLogs = Static<typeof DashLogsSchema>;

export const DashRefSchema = closed(
  Type.Object({ ref: Type.String({ minLength: 1, maxLength: 256 }) }, { title: "DashRef" }),
);

export const DashLogsQuerySchema = closed(
  Type.Object(
    { tail: Type.Optional(Type.String({ pattern: "^[0-9]{1,4}$" })) },
    { title: "DashLogsQuery" },
  ),
);

const route = <const R extends RouteSchema>(r: R): R => r;

/** The dashboard's routes (its static files aside); every one but login and session needs the
 * session cookie when the dashboard asks for a token. */
export const dashRoutes = {
  session: route({
    method: "GET",
    url: "/api/session",
    summary: "Whether a login token is needed, and whether this request has a session.",
    reply: DashSessionSchema,
  }),
  login: route({
    method: "POST",
    url: "/api/login",
    summary: "Checks the token (`shoal dashboard token`) and sets the session cookie.",
    body: DashLoginSchema,
    reply: OkSchema,
  }),
  state: route({
    method: "GET",
    url: "/api/state",
    summary: "Server-sent events: `state` (a DashState) at connect and after each change.",
    reply: null,
    text: "`text/event-stream`",
  }),
  events: route({
    method: "GET",
    url: "/api/events",
    summary:
      "Server-sent events: `event` (a [ClusterEvent](#clusterevent), as `shoal events` gives it) for the recent history, then live.",
    reply: null,
    text: "`text/event-stream`",
  }),
  scale: route({
    method: "POST",
    url: "/api/services/:ref/scale",
    summary: "Sets a replicated service's replica count.",
    params: DashRefSchema,
    body: closed(ScaleBodySchema),
    reply: ServiceSchema,
  }),
  rollback: route({
    method: "POST",
    url: "/api/services/:ref/rollback",
    summary: "Rolls a service back to its previous spec.",
    params: DashRefSchema,
    reply: ServiceSchema,
  }),
  logs: route({
    method: "GET",
    url: "/api/services/:ref/logs",
    summary: "The last lines of each of the service's tasks (default 50).",
    params: DashRefSchema,
    querystring: DashLogsQuerySchema,
    reply: DashLogsSchema,
  }),
  availability: route({
    method: "POST",
    url: "/api/nodes/:ref/availability",
    summary: "Drains, pauses or activates a node.",
    params: DashRefSchema,
    body: DashAvailabilitySchema,
    reply: NodeSchema,
  }),
} as const;

// Cluster events (`shoal events`, `GET /v1/events`, `$SHOAL.events.<type>.<id>` on the bus): one
// event is shaped like Docker's events.Message as `docker events --format '{{json .}}'` prints
// it — Type, Action, Actor { ID, Attributes }, scope, time, timeNano — plus shoal's own `seq`,
// which only grows (across manager restarts too) and orders and resumes a stream. The filters
// (`--filter type=service`, `service=web`...) are here too, so the manager and the CLI check them
// with the same words.
//
// timeNano: Docker's is an int64 of nanoseconds, beyond JavaScript's safe integers. Ours is the
// event's time in milliseconds times 1e6, a plain JSON number: its text is exact (the
// milliseconds' digits and six zeros, which a Go int64 decodes exactly), and in JavaScript it
// prints back as the same digits; only its precision is the millisecond.

import { Type, type Static } from "@sinclair/typebox";
import { NAMESPACE_LABEL } from "./model.js";

export const EVENT_TYPES = [
  "service",
  "task",
  "node",
  "network",
  "stack",
  "autoscale",
  "manager",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** How many events the managers keep (in the cluster store, the oldest dropped first). */
export const EVENT_HISTORY_LIMIT = 1000;

export const EventActorSchema = Type.Object(
  {
    ID: Type.String({ description: "The object's id (a stack's name: stacks have no id)." }),
    Attributes: Type.Record(Type.String(), Type.String(), {
      description:
        "Always `name`; tasks: `service`, `service.id`, `node`, `node.id` (once scheduled), `error` (when there is one), `exitCode`; updates: `replicas.old`/`replicas.new`, `state.old`/`state.new`... as Docker names them.",
    }),
  },
  { title: "EventActor" },
);

export const ClusterEventSchema = Type.Object(
  {
    Type: Type.Union(
      EVENT_TYPES.map((t) => Type.Literal(t)),
      { description: EVENT_TYPES.join(", ") },
    ),
    Action: Type.String({
      description:
        "service: create, update, scale, remove; task: its new state (running, failed...) or `health_status: healthy|unhealthy`; node: join, ready, down, active, pause, drain, remove; network: create, remove; stack: create, remove; manager: leader; autoscale: scale-up, scale-down.",
    }),
    Actor: EventActorSchema,
    scope: Type.Literal("swarm"),
    time: Type.Integer({ description: "Unix seconds." }),
    timeNano: Type.Integer({
      description: "Unix time in ms × 1e6 (exact as JSON text; millisecond precision).",
    }),
    seq: Type.Integer({
      minimum: 1,
      description: "Grows by one per event, across manager restarts: order and resume (`after`).",
    }),
  },
  { title: "ClusterEvent" },
);
export type ClusterEvent = Static<typeof ClusterEventSchema>;

/** An event before the event log stamps it with its time and seq. */
export type EventInput = Pick<ClusterEvent, "Type" | "Action" | "Actor">;

/** The read-only bus credentials for event subscribers (`shoal events credentials`). */
export const EventCredentialsSchema = Type.Object(
  {
    urls: Type.Array(Type.String(), { description: "The managers' message servers." }),
    user: Type.String(),
    password: Type.String(),
    subject: Type.String({ description: "What the user may subscribe to: `$SHOAL.events.>`." }),
  },
  { title: "EventCredentials" },
);
export type EventCredentials = Static<typeof EventCredentialsSchema>;

/** The bus user that may only subscribe to the events. */
export const EVENTS_USER = "shoal-events";
export const EVENTS_SUBJECT_PREFIX = "$SHOAL.events";

/** Where an event is published: `$SHOAL.events.<type>.<actor id>` (a token-safe id). */
export function eventSubject(e: Pick<ClusterEvent, "Type" | "Actor">): string {
  const id = e.Actor.ID.replace(/[.*>\s]/g, "_") || "_";
  return `${EVENTS_SUBJECT_PREFIX}.${e.Type}.${id}`;
}

/** Unix seconds and the nano field of a time in ms. */
export function eventTimes(ms: number): { time: number; timeNano: number } {
  const whole = Math.floor(ms);
  return { time: Math.floor(whole / 1000), timeNano: whole * 1e6 };
}

// ---- filters ------------------------------------------------------------------------------------

/** Filters as Docker's API takes them: key → alternatives (any may match; keys all must). */
export type EventFilters = Record<string, string[]>;

const attr = (e: ClusterEvent, k: string) => e.Actor.Attributes[k];

/** How each filter key tests an event. */
export const EVENT_FILTERS: Record<string, (e: ClusterEvent, v: string) => boolean> = {
  type: (e, v) => e.Type === v,
  event: (e, v) => e.Action === v || (v === "health_status" && e.Action.startsWith(v)),
  scope: (e, v) => e.scope === v,
  // A service's own events and those of its tasks (and its autoscaler).
  service: (e, v) =>
    e.Type === "service" || e.Type === "autoscale"
      ? e.Actor.ID === v || attr(e, "name") === v
      : e.Type === "task" && (attr(e, "service") === v || attr(e, "service.id") === v),
  // A node's own events and those of the tasks on it.
  node: (e, v) =>
    e.Type === "node" || e.Type === "manager"
      ? e.Actor.ID === v || attr(e, "name") === v
      : e.Type === "task" && (attr(e, "node") === v || attr(e, "node.id") === v),
  network: (e, v) => e.Type === "network" && (e.Actor.ID === v || attr(e, "name") === v),
  stack: (e, v) => (e.Type === "stack" ? e.Actor.ID === v : attr(e, NAMESPACE_LABEL) === v),
};

/** Docker's words for a filter it does not know; null when the filters are good. */
export function eventFiltersProblem(f: EventFilters): string | null {
  for (const [k, values] of Object.entries(f)) {
    if (!Object.hasOwn(EVENT_FILTERS, k)) {
      return `invalid filter '${k}' (events filter by ${Object.keys(EVENT_FILTERS).join(", ")})`;
    }
    if (!Array.isArray(values) || values.some((v) => typeof v !== "string")) {
      return `invalid filter '${k}': its values must be strings`;
    }
    if (k === "type") {
      const bad = values.find((v) => !(EVENT_TYPES as readonly string[]).includes(v));
      if (bad !== undefined) {
        return `invalid filter 'type=${bad}' (types are ${EVENT_TYPES.join(", ")})`;
      }
    }
  }
  return null;
}

export function eventMatches(e: ClusterEvent, f: EventFilters): boolean {
  return Object.entries(f).every(
    ([k, values]) => values.length === 0 || values.some((v) => EVENT_FILTERS[k]!(e, v)),
  );
}

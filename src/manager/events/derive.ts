// From the store's watch feed to cluster events (pure): each write of a committed batch, with the
// value it replaced, becomes zero or more events in Docker's words (src/api/events.ts).
//
//   service  create / update / remove, as Docker's daemon logs them (an update carries
//            replicas.old/new, updatestate.old/new when they changed). A change of the replica
//            count is an `update` as in Docker, so scripts that watch `event=update` see it,
//            followed by a `scale` with the same attributes, so `--filter event=scale` shows
//            scaling alone. A write that changes neither the spec nor the update state (a
//            virtual IP given) is no event.
//   task     its new state, only when the state changes (`running`, `failed` with `error`...),
//            and `health_status: healthy|unhealthy` when its health check's verdict changes.
//   node     join, then its status (ready, down) and availability (active, pause, drain) when
//            they change; remove.
//   network  create / remove (address bookkeeping is no event).
//   stack    create when the first service with a stack's label appears, remove when its last
//            one goes (a stack is only a label: `stack deploy` is driven by the client).
//
// Autoscaler decisions and leader changes are not store writes: `autoscaleEvent` and
// `leaderEvent` build theirs, which the manager hands to the event log's `emit`.

import type { StoreEvent } from "../../store/store.js";
import type { EventInput } from "../../api/events.js";
import { NAMESPACE_LABEL, replicasOf } from "../../api/model.js";
import type { Network, Node, Service, Task } from "../../api/types.js";

/** One write of a batch and the value it replaced (undefined: there was none). */
export interface Change {
  event: StoreEvent;
  prev: unknown;
}

/** What derivation looks up in the state as it is after the change. */
export interface DeriveContext {
  /** A node's hostname. */
  nodeName(id: string): string | undefined;
  /** How many services carry the stack's label. */
  stackSize(namespace: string): number;
}

/** Attributes with their keys sorted (as Docker's map prints), empty values left out. */
function attrs(a: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(a).sort()) {
    const v = a[k];
    if (v !== undefined && v !== "") out[k] = v;
  }
  return out;
}

const stackOf = (labels: Record<string, string> | undefined) => labels?.[NAMESPACE_LABEL];

export function deriveEvents(c: Change, ctx: DeriveContext): EventInput[] {
  switch (c.event.kind) {
    case "service":
      return serviceEvents(
        c.prev as Service | undefined,
        c.event.value as Service | null,
        c.event.id,
        ctx,
      );
    case "task":
      return taskEvents(c.prev as Task | undefined, c.event.value as Task | null, ctx);
    case "node":
      return nodeEvents(c.prev as Node | undefined, c.event.value as Node | null, c.event.id);
    case "network":
      return networkEvents(c.prev as Network | undefined, c.event.value as Network | null);
    default:
      return [];
  }
}

function serviceEvents(
  prev: Service | undefined,
  next: Service | null,
  id: string,
  ctx: DeriveContext,
): EventInput[] {
  const cur = next ?? prev;
  if (!cur) return [];
  const name = cur.spec.name;
  const ns = stackOf(cur.spec.labels);
  const actor = (a: Record<string, string | undefined>) => ({
    ID: id,
    Attributes: attrs({ name, [NAMESPACE_LABEL]: ns, ...a }),
  });
  const stack = (Action: string): EventInput[] =>
    ns === undefined
      ? []
      : [{ Type: "stack", Action, Actor: { ID: ns, Attributes: { name: ns } } }];
  if (!prev) {
    return [
      { Type: "service", Action: "create", Actor: actor({}) },
      ...(ns !== undefined && ctx.stackSize(ns) === 1 ? stack("create") : []),
    ];
  }
  if (!next) {
    return [
      { Type: "service", Action: "remove", Actor: actor({}) },
      ...(ns !== undefined && ctx.stackSize(ns) === 0 ? stack("remove") : []),
    ];
  }
  const a: Record<string, string | undefined> = {};
  const [r0, r1] = [replicasOf(prev.spec), replicasOf(next.spec)];
  const scaled = r0 !== null && r1 !== null && r0 !== r1;
  if (scaled) {
    a["replicas.old"] = String(r0);
    a["replicas.new"] = String(r1);
  }
  if (prev.spec.image !== next.spec.image) {
    a["image.old"] = prev.spec.image;
    a["image.new"] = next.spec.image;
  }
  const [u0, u1] = [prev.updateStatus?.state, next.updateStatus?.state];
  if (u1 !== undefined && u0 !== u1) {
    a["updatestate.old"] = u0;
    a["updatestate.new"] = u1;
  }
  const specChanged = JSON.stringify(prev.spec) !== JSON.stringify(next.spec);
  if (!specChanged && u0 === u1) return [];
  const update: EventInput = { Type: "service", Action: "update", Actor: actor(a) };
  if (!scaled) return [update];
  return [update, { Type: "service", Action: "scale", Actor: actor(a) }];
}

/** A task's name as `service ps` shows it: `web.1`, or `web.<node>` for a global service's. */
export function taskName(t: Task): string {
  return `${t.serviceName}.${t.slot > 0 ? t.slot : t.nodeId}`;
}

function taskEvents(prev: Task | undefined, next: Task | null, ctx: DeriveContext): EventInput[] {
  if (!next) return []; // a deleted task is history trimmed, not news
  const out: EventInput[] = [];
  const actor = () => ({
    ID: next.id,
    Attributes: attrs({
      name: taskName(next),
      service: next.serviceName,
      "service.id": next.serviceId,
      node: next.nodeId ? (ctx.nodeName(next.nodeId) ?? next.nodeId) : undefined,
      "node.id": next.nodeId || undefined,
      error: next.status.err || undefined,
      exitCode:
        next.status.exitCode === null || next.status.exitCode === undefined
          ? undefined
          : String(next.status.exitCode),
      [NAMESPACE_LABEL]: stackOf(next.spec.labels),
    }),
  });
  if (prev?.status.state !== next.status.state) {
    out.push({ Type: "task", Action: next.status.state, Actor: actor() });
  }
  const [h0, h1] = [prev?.status.health?.status, next.status.health?.status];
  if (h1 !== h0 && (h1 === "healthy" || h1 === "unhealthy")) {
    out.push({ Type: "task", Action: `health_status: ${h1}`, Actor: actor() });
  }
  return out;
}

function nodeEvents(prev: Node | undefined, next: Node | null, id: string): EventInput[] {
  const cur = next ?? prev;
  if (!cur) return [];
  const actor = (a: Record<string, string | undefined>) => ({
    ID: id,
    Attributes: attrs({ name: cur.hostname, role: cur.role, ...a }),
  });
  if (!next) return [{ Type: "node", Action: "remove", Actor: actor({}) }];
  if (!prev) return [{ Type: "node", Action: "join", Actor: actor({}) }];
  const out: EventInput[] = [];
  if (prev.status !== next.status) {
    out.push({
      Type: "node",
      Action: next.status,
      Actor: actor({ "state.old": prev.status, "state.new": next.status }),
    });
  }
  if (prev.availability !== next.availability) {
    out.push({
      Type: "node",
      Action: next.availability,
      Actor: actor({
        "availability.old": prev.availability,
        "availability.new": next.availability,
      }),
    });
  }
  return out;
}

function networkEvents(prev: Network | undefined, next: Network | null): EventInput[] {
  if (prev && next) return [];
  const n = (next ?? prev)!;
  return [
    {
      Type: "network",
      Action: next ? "create" : "remove",
      Actor: {
        ID: n.id,
        Attributes: attrs({ name: n.name, type: n.driver, [NAMESPACE_LABEL]: stackOf(n.labels) }),
      },
    },
  ];
}

/** An autoscaler's decision on a service. */
export function autoscaleEvent(
  service: { id: string; name: string },
  from: number,
  to: number,
  reason = "",
): EventInput {
  return {
    Type: "autoscale",
    Action: to > from ? "scale-up" : "scale-down",
    Actor: {
      ID: service.id,
      Attributes: attrs({
        name: service.name,
        "replicas.old": String(from),
        "replicas.new": String(to),
        reason,
      }),
    },
  };
}

/** A manager became the leader. */
export function leaderEvent(node: { id: string; hostname: string }): EventInput {
  return {
    Type: "manager",
    Action: "leader",
    Actor: { ID: node.id, Attributes: { name: node.hostname } },
  };
}

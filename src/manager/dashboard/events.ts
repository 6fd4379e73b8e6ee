// The dashboard's event feed, derived from the store's changes until `shoal events` (issue 16)
// gives the cluster an event history of its own: each committed batch is compared with the
// values seen before it, and what a user would call an event — a service created, scaled,
// updated or removed; a node joined, going down or ready, drained or activated; a task changing
// state (where it ends up: running, failed, shut down...; or pending with a reason) — becomes one Docker-shaped event (`{Type, Action, Actor: {ID, Attributes}, time,
// seq}`). The last `limit` events are kept so a page that connects sees the recent past.

import type { StoreEvent } from "../../store/store.js";
import type { DashEvent } from "../../api/dashboard.js";
import type { Node, Service, Task } from "../../api/types.js";
import { replicasOf } from "../../api/types.js";

type Attrs = Record<string, string>;

const QUIET_STATES: ReadonlySet<string> = new Set([
  "new",
  "pending",
  "assigned",
  "accepted",
  "preparing",
  "ready",
  "starting",
]);

export class EventLog {
  private seq = 0;
  private readonly recent: DashEvent[] = [];
  private readonly nodes = new Map<string, Node>();
  private readonly services = new Map<string, Service>();
  private readonly tasks = new Map<string, Task>();

  constructor(
    initial: { nodes: Node[]; services: Service[]; tasks: Task[] },
    private readonly limit = 500,
  ) {
    for (const n of initial.nodes) this.nodes.set(n.id, n);
    for (const s of initial.services) this.services.set(s.id, s);
    for (const t of initial.tasks) this.tasks.set(t.id, t);
  }

  /** The events of one committed batch, at `nowMs`; they are also kept in the history. */
  derive(batch: StoreEvent[], nowMs: number): DashEvent[] {
    const out: DashEvent[] = [];
    const emit = (type: string, action: string, id: string, attrs: Attrs) => {
      const e: DashEvent = {
        Type: type,
        Action: action,
        Actor: { ID: id, Attributes: attrs },
        time: Math.floor(nowMs / 1000),
        timeNano: nowMs * 1e6,
        seq: ++this.seq,
      };
      out.push(e);
      this.recent.push(e);
    };
    for (const ev of batch) {
      if (ev.kind === "service") this.service(ev, emit);
      else if (ev.kind === "node") this.node(ev, emit);
      else if (ev.kind === "task") this.task(ev, emit);
    }
    if (this.recent.length > this.limit) this.recent.splice(0, this.recent.length - this.limit);
    return out;
  }

  /** The kept events, oldest first. */
  history(): DashEvent[] {
    return [...this.recent];
  }

  private service(ev: StoreEvent, emit: Emit): void {
    const prev = this.services.get(ev.id);
    if (ev.action === "delete") {
      this.services.delete(ev.id);
      if (prev) emit("service", "remove", ev.id, { name: prev.spec.name });
      return;
    }
    const s = ev.value as Service;
    this.services.set(ev.id, s);
    const name = s.spec.name;
    if (!prev) {
      emit("service", "create", s.id, { name });
      return;
    }
    const [was, now] = [replicasOf(prev.spec), replicasOf(s.spec)];
    if (was !== now && was !== null && now !== null) {
      emit("service", "scale", s.id, {
        name,
        "replicas.old": String(was),
        "replicas.new": String(now),
      });
    }
    const [u0, u1] = [prev.updateStatus?.state, s.updateStatus?.state];
    if (u1 !== undefined && u0 !== u1) {
      emit("service", "update", s.id, {
        name,
        "updatestate.new": u1,
        ...(u0 ? { "updatestate.old": u0 } : {}),
        ...(s.updateStatus?.message ? { message: s.updateStatus.message } : {}),
      });
    } else if (prev.version !== s.version && (was === now || u1 === undefined)) {
      emit("service", "update", s.id, { name, version: String(s.version) });
    }
  }

  private node(ev: StoreEvent, emit: Emit): void {
    const prev = this.nodes.get(ev.id);
    if (ev.action === "delete") {
      this.nodes.delete(ev.id);
      if (prev) emit("node", "remove", ev.id, { name: prev.hostname });
      return;
    }
    const n = ev.value as Node;
    this.nodes.set(ev.id, n);
    const name = n.hostname;
    if (!prev) {
      emit("node", "create", n.id, { name, role: n.role });
      return;
    }
    if (prev.status !== n.status) {
      emit("node", "update", n.id, { name, "state.old": prev.status, "state.new": n.status });
    }
    if (prev.availability !== n.availability) {
      emit("node", "update", n.id, {
        name,
        "availability.old": prev.availability,
        "availability.new": n.availability,
      });
    }
  }

  private task(ev: StoreEvent, emit: Emit): void {
    const prev = this.tasks.get(ev.id);
    if (ev.action === "delete") {
      this.tasks.delete(ev.id);
      return; // a task leaving the history is no news
    }
    const t = ev.value as Task;
    this.tasks.set(ev.id, t);
    const [s0, s1] = [prev?.status.state, t.status.state];
    const [h0, h1] = [prev?.status.health?.status, t.status.health?.status];
    if (s0 === s1 && h0 === h1) return;
    // The steps on the way to running are not news; where a task ends up, or why it waits, is.
    if (h0 === h1 && QUIET_STATES.has(s1) && !(s1 === "pending" && t.status.err)) return;
    const node = t.nodeId ? (this.nodes.get(t.nodeId)?.hostname ?? t.nodeId) : "";
    emit("task", "update", t.id, {
      service: t.serviceName,
      slot: String(t.slot),
      name: `${t.serviceName}.${t.slot || t.nodeId.slice(0, 12)}`,
      ...(node ? { node } : {}),
      "state.new": s1,
      ...(s0 ? { "state.old": s0 } : {}),
      ...(h1 ? { health: h1 } : {}),
      ...(t.status.err ? { err: t.status.err } : {}),
    });
  }
}

type Emit = (type: string, action: string, id: string, attrs: Attrs) => void;

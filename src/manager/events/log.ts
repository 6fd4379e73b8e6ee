// The event log: turns the store's watch feed into cluster events (derive.ts), takes events the
// manager emits itself (autoscaler decisions, leader changes), and keeps a bounded history of them
// in the cluster store (kind "event", under their seq), so it survives a manager restart.
//
// Events are stamped (time, seq) as they are derived, queued, and written once per turn of the
// event loop: one store batch puts the new events and deletes the oldest beyond the limit. Only
// after that batch commits are they added to the in-memory copy of the history and handed to
// listeners (the API's streams, the bus), so what a stream reads from the history and what it
// hears live never overlap or leave a gap (`subscribe` does both in one turn). Batches are
// written one after another, so listeners get events in seq order.

import type { Store, StoreEvent } from "../../store/store.js";
import {
  EVENT_HISTORY_LIMIT,
  eventTimes,
  type ClusterEvent,
  type EventInput,
} from "../../api/events.js";
import { NAMESPACE_LABEL } from "../../api/model.js";
import type { Network, Node, Service, Task } from "../../api/types.js";
import type { Logger } from "../../lib/log.js";
import { deriveEvents, type DeriveContext } from "./derive.js";

export interface EventLogOptions {
  /** Events kept (default EVENT_HISTORY_LIMIT). */
  limit?: number;
  /** The clock events are stamped with (ms). */
  now?: () => number;
  log: Pick<Logger, "warn">;
  /**
   * Whether this log records events (default: always). With several managers only the leader
   * does; the others drop what they derive and instead follow the events the leader stored.
   */
  recording?: () => boolean;
}

type Listener = (e: ClusterEvent) => void;

export class EventLog {
  private readonly limit: number;
  private readonly now: () => number;
  /** The last value of each object events are derived from (the feed has only the new one). */
  private readonly services = new Map<string, Service>();
  private readonly tasks = new Map<string, Task>();
  private readonly nodes = new Map<string, Node>();
  private readonly networks = new Map<string, Network>();
  /** Services per stack label. */
  private readonly stacks = new Map<string, number>();
  private readonly ctx: DeriveContext = {
    nodeName: (id) => this.nodes.get(id)?.hostname,
    stackSize: (ns) => this.stacks.get(ns) ?? 0,
  };
  /** Committed events, oldest first (at most `limit`). */
  private history: ClusterEvent[] = [];
  private pending: ClusterEvent[] = [];
  private seq = 0;
  private scheduled = false;
  private chain: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<Listener>();
  private unwatch: (() => void) | null = null;

  constructor(
    private readonly store: Store,
    private readonly opts: EventLogOptions,
  ) {
    this.limit = opts.limit ?? EVENT_HISTORY_LIMIT;
    if (!Number.isSafeInteger(this.limit) || this.limit < 1) {
      throw new RangeError(`event history limit must be a positive integer, not ${this.limit}`);
    }
    this.now = opts.now ?? Date.now;
  }

  /** Loads the stored history and the current state, then follows the store. */
  start(): void {
    if (this.unwatch) return;
    this.store.view((tx) => {
      this.history = tx.listEvents().slice(-this.limit);
      this.seq = this.history.at(-1)?.seq ?? 0;
      for (const s of tx.listServices()) {
        this.services.set(s.id, s);
        this.trackService(undefined, s);
      }
      for (const t of tx.listTasks()) this.tasks.set(t.id, t);
      for (const n of tx.listNodes()) this.nodes.set(n.id, n);
      for (const n of tx.listNetworks()) this.networks.set(n.id, n);
    });
    this.unwatch = this.store.watch((events) => this.onBatch(events));
  }

  /** Records an event that is not a store change (an autoscaler decision, a new leader). */
  emit(e: EventInput): void {
    this.queue(e);
  }

  /** Hears every event once it is recorded, in seq order. Returns an unsubscribe function. */
  listen(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /**
   * The recorded history with seq above `afterSeq` (all by default), and from now on every new
   * event to `fn`: together exactly the events after `afterSeq`, each once.
   */
  subscribe(fn: Listener, afterSeq = 0): { history: ClusterEvent[]; close: () => void } {
    const history = this.history.filter((e) => e.seq > afterSeq);
    return { history, close: this.listen(fn) };
  }

  /** The recorded history, oldest first. */
  recent(): ClusterEvent[] {
    return [...this.history];
  }

  /** Resolves once every event queued so far is recorded. */
  async flushed(): Promise<void> {
    while (this.pending.length > 0 || this.scheduled) {
      this.schedule();
      await this.chain;
      await new Promise<void>((r) => setImmediate(r));
    }
    await this.chain;
  }

  /** Stops following the store; events queued so far are still written. */
  async stop(): Promise<void> {
    this.unwatch?.();
    this.unwatch = null;
    await this.flushed();
    this.listeners.clear();
  }

  private onBatch(events: StoreEvent[]): void {
    const following = this.opts.recording ? !this.opts.recording() : false;
    for (const ev of events) {
      if (ev.kind === "event" && following && ev.value) this.followed(ev.value as ClusterEvent);
      let prev: unknown;
      switch (ev.kind) {
        case "service":
          prev = this.services.get(ev.id);
          this.trackService(prev as Service | undefined, ev.value as Service | null);
          if (ev.value) this.services.set(ev.id, ev.value as Service);
          else this.services.delete(ev.id);
          break;
        case "task":
          prev = this.track(this.tasks, ev);
          break;
        case "node":
          prev = this.track(this.nodes, ev);
          break;
        case "network":
          prev = this.track(this.networks, ev);
          break;
        default:
          continue;
      }
      for (const e of deriveEvents({ event: ev, prev }, this.ctx)) this.queue(e);
    }
  }

  private track<T>(map: Map<string, T>, ev: StoreEvent): T | undefined {
    const prev = map.get(ev.id);
    if (ev.value) map.set(ev.id, ev.value as T);
    else map.delete(ev.id);
    return prev;
  }

  private trackService(prev: Service | undefined, next: Service | null | undefined): void {
    const was = prev?.spec.labels[NAMESPACE_LABEL];
    const is = next?.spec.labels[NAMESPACE_LABEL];
    if (was === is) return;
    if (was !== undefined) {
      const n = (this.stacks.get(was) ?? 1) - 1;
      if (n > 0) this.stacks.set(was, n);
      else this.stacks.delete(was);
    }
    if (is !== undefined) this.stacks.set(is, (this.stacks.get(is) ?? 0) + 1);
  }

  /** An event the leader stored, heard by a manager that does not lead. */
  private followed(e: ClusterEvent): void {
    if (e.seq <= this.seq) return;
    this.seq = e.seq;
    this.history = [...this.history, e].slice(-this.limit);
    this.tell([e]);
  }

  private queue(e: EventInput): void {
    if (this.opts.recording && !this.opts.recording()) return; // the leader records it
    this.pending.push({
      Type: e.Type,
      Action: e.Action,
      Actor: { ID: e.Actor.ID, Attributes: { ...e.Actor.Attributes } },
      scope: "swarm",
      ...eventTimes(this.now()),
      seq: ++this.seq,
    });
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.chain = this.chain.then(() => this.write());
    });
  }

  /** Writes what is queued as one batch, then makes it history and tells the listeners. */
  private async write(): Promise<void> {
    const batch = this.pending.splice(0).slice(-this.limit);
    if (batch.length === 0) return;
    const drop = Math.max(0, this.history.length + batch.length - this.limit);
    const dropped = this.history.slice(0, drop);
    try {
      await this.store.update((tx) => {
        for (const e of batch) tx.putEvent(e);
        for (const e of dropped) tx.deleteEvent(e.seq);
      });
    } catch (err) {
      // Only the history's durability is lost (a store closing at shutdown): the events still
      // reach the listeners.
      this.opts.log.warn(
        `events ${batch[0]!.seq}..${batch.at(-1)!.seq} not stored: ${String(err)}`,
      );
    }
    this.history = [...this.history.slice(drop), ...batch];
    this.tell(batch);
  }

  private tell(batch: ClusterEvent[]): void {
    for (const e of batch) {
      for (const fn of [...this.listeners]) {
        try {
          fn(e);
        } catch (err) {
          this.opts.log.warn(`an event listener failed: ${String(err)}`);
        }
      }
    }
  }
}

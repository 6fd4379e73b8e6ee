// Consul's indexes and blocking queries on shoal's store.
//
// Every index is a store revision (durable, so it never goes back across a restart). The KV index
// is the revision of the last batch that wrote a KV key. The catalog's indexes move only when
// what an answer shows changes: per service name, the revision at which its instances or checks
// last changed (compared without indexes); for the service list and for the nodes likewise; and
// `any` (health/state) when any of them did. So a task's health log or a heartbeat that changes
// nothing Consul shows wakes no one, and a blocking query on `web` returns when `web` changes,
// not when another service does.
//
// The catalog is rebuilt lazily: a store change marks it stale and wakes the waiters (once per
// turn of the event loop, however many batches came); the first reader rebuilds it. A blocking
// query waits for a wake-up, never polls.

import type { Store, StoreEvent } from "../../store/store.js";
import { EXTERNAL_SERVICES_META, type ExternalService } from "../../api/consul.js";
import {
  buildCatalog,
  catalogServices,
  nodesSignature,
  serviceSignature,
  type Catalog,
  type EntryIndexes,
} from "./catalog.js";

/** Consul's default and longest wait of a blocking query (ms). */
export const DEFAULT_WAIT_MS = 5 * 60_000;
export const MAX_WAIT_MS = 10 * 60_000;

/** The services registered through the agent endpoint, from a read of the store. */
export function externalServices(get: <T>(key: string) => T | undefined): ExternalService[] {
  return Object.values(get<Record<string, ExternalService>>(EXTERNAL_SERVICES_META) ?? {});
}

function touchesCatalog(e: StoreEvent): boolean {
  return e.kind === "meta"
    ? e.id === EXTERNAL_SERVICES_META
    : e.kind !== "kv" && e.kind !== "event";
}

export class ConsulIndexes implements EntryIndexes {
  private kvIndex: number;
  private servicesIndex: number;
  private nodesIndex: number;
  private anyIndex: number;
  private readonly perService = new Map<string, { sig: string; index: number }>();
  private servicesSig = "";
  private nodesSig = "";
  private catalog: Catalog | undefined;
  /** The revision of the last catalog change not yet looked at; 0: none. */
  private staleAt = 0;
  private readonly waiters = new Set<() => void>();
  private wakeScheduled = false;
  private readonly unwatch: () => void;
  private closed = false;

  constructor(private readonly store: Store) {
    const rev = Math.max(
      1,
      store.view((tx) => tx.revision()),
    );
    this.kvIndex = this.servicesIndex = this.nodesIndex = this.anyIndex = rev;
    this.staleAt = rev;
    this.unwatch = store.watch((events) => this.onEvents(events));
  }

  /** Stops watching the store; waiting queries return now. */
  close(): void {
    this.closed = true;
    this.unwatch();
    for (const w of [...this.waiters]) w();
  }

  get kv(): number {
    return this.kvIndex;
  }

  /** The current catalog, rebuilt if the store changed since. */
  current(): Catalog {
    if (this.catalog !== undefined && this.staleAt === 0) return this.catalog;
    const rev = this.staleAt;
    this.staleAt = 0;
    const c = this.store.view((tx) =>
      buildCatalog({
        nodes: tx.listNodes(),
        services: tx.listServices(),
        tasks: tx.listTasks(),
        external: externalServices((k) => tx.getMeta(k)),
      }),
    );
    const first = this.catalog === undefined;
    this.catalog = c;
    const names = new Set([...this.perService.keys(), ...c.instances.map((i) => i.service)]);
    let changed = false;
    for (const name of names) {
      const sig = serviceSignature(c, name);
      const old = this.perService.get(name);
      if (old?.sig === sig) continue;
      changed = true;
      if (sig === "[]") this.perService.delete(name);
      else this.perService.set(name, { sig, index: first ? this.anyIndex : rev });
    }
    const servicesSig = JSON.stringify(catalogServices(c));
    if (servicesSig !== this.servicesSig) {
      this.servicesSig = servicesSig;
      if (!first) this.servicesIndex = rev;
      changed = true;
    }
    const nodesSig = nodesSignature(c);
    if (nodesSig !== this.nodesSig) {
      this.nodesSig = nodesSig;
      if (!first) this.nodesIndex = rev;
      changed = true;
    }
    if (changed && !first) this.anyIndex = rev;
    return c;
  }

  service(name: string): number {
    this.current();
    return this.perService.get(name)?.index ?? this.servicesIndex;
  }

  services(): number {
    this.current();
    return this.servicesIndex;
  }

  nodes(): number {
    this.current();
    return this.nodesIndex;
  }

  any(): number {
    this.current();
    return this.anyIndex;
  }

  /**
   * A blocking query: resolves at once when `index()` is past `after` (or `after` is 0), else
   * when it moves past it, when `waitMs` runs out, or when `abort` fires.
   */
  block(index: () => number, after: number, waitMs: number, abort?: AbortSignal): Promise<void> {
    if (after <= 0 || index() > after || abort?.aborted || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
        abort?.removeEventListener("abort", done);
        resolve();
      };
      const check = () => {
        if (index() > after || this.closed) done();
      };
      const timer = setTimeout(done, waitMs);
      abort?.addEventListener("abort", done);
      this.waiters.add(check);
    });
  }

  private onEvents(events: StoreEvent[]): void {
    let catalog = false;
    let kv = false;
    for (const e of events) {
      if (e.kind === "kv") kv = true;
      else if (touchesCatalog(e)) catalog = true;
    }
    if (!kv && !catalog) return;
    const rev = this.store.view((tx) => tx.revision());
    if (kv) this.kvIndex = rev;
    if (catalog) this.staleAt = rev;
    if (this.wakeScheduled) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      for (const w of [...this.waiters]) w();
    });
  }
}

// The cluster state store's interface: nodes, services, tasks, networks, secrets, configs, Consul KV keys, the recent cluster events and a few meta keys, read through
// consistent synchronous views and written in atomic, durable, serialized batches, with a watch
// feed of what each committed batch changed. `embedded.ts` implements it on the local disk (one
// manager); `memory.ts` keeps it in memory only (tests); an etcd adapter can implement it for
// several managers.
//
// Returned objects are deep-frozen: a value is copied (through JSON) and frozen when it is put,
// and every read or event hands out that same frozen object. Callers must not mutate it (strict
// mode code gets a TypeError if it tries); derive a new value with a spread or structuredClone.
// Because values go through JSON on the way in, what a read returns is exactly what a restart
// replays from disk (undefined fields dropped, no class instances).

import type { Config, Network, Node, Secret, Service, Task } from "../api/types.js";
import type { KvEntry } from "../api/consul.js";
import type { ClusterEvent } from "../api/events.js";

export { StoreError, type StoreErrorCode } from "./errors.js";

export type Kind =
  "node" | "service" | "task" | "network" | "secret" | "config" | "kv" | "event" | "meta";

/** One write of a committed batch; `value` is the new (frozen) value, null for a delete. */
export interface StoreEvent {
  kind: Kind;
  action: "put" | "delete";
  id: string;
  value: unknown | null;
}

/** Whether a batch's events change anything but the event history (which watchers that follow
 * the cluster's state can ignore: the event log writes one batch per turn of the event loop). */
export function changesState(events: readonly StoreEvent[]): boolean {
  return events.some((e) => e.kind !== "event");
}

export interface ReadTx {
  getNode(id: string): Node | undefined;
  listNodes(): Node[];
  getService(id: string): Service | undefined;
  getServiceByName(name: string): Service | undefined;
  listServices(): Service[];
  getTask(id: string): Task | undefined;
  /** Tasks, optionally only those of one service and/or one node (`nodeId: ""`: unassigned). */
  listTasks(filter?: { serviceId?: string; nodeId?: string }): Task[];
  getNetwork(id: string): Network | undefined;
  getNetworkByName(name: string): Network | undefined;
  listNetworks(): Network[];
  getSecret(id: string): Secret | undefined;
  listSecrets(): Secret[];
  getConfig(id: string): Config | undefined;
  listConfigs(): Config[];
  getMeta<T = unknown>(key: string): T | undefined;
  /** A key of the Consul-compatible KV store. */
  getKv(key: string): KvEntry | undefined;
  /** The KV entries whose keys start with `prefix`, sorted by key. */
  listKv(prefix: string): KvEntry[];
  /** The recorded cluster events (a bounded history), oldest first. */
  listEvents(): ClusterEvent[];
  /**
   * The store's revision: in a view, the number of the last committed batch that wrote
   * something; in an update, the number this batch commits as if it writes. Durable: it only
   * grows, across restarts too.
   */
  revision(): number;
}

export interface WriteTx extends ReadTx {
  putNode(n: Node): void;
  deleteNode(id: string): void;
  /** Refuses a name used by another service: throws StoreError code "ERR_NAME_IN_USE". */
  putService(s: Service): void;
  deleteService(id: string): void;
  putTask(t: Task): void;
  deleteTask(id: string): void;
  /** Refuses a name used by another network: throws StoreError code "ERR_NAME_IN_USE". */
  putNetwork(n: Network): void;
  deleteNetwork(id: string): void;
  /** Refuses a name used by another secret: throws StoreError code "ERR_NAME_IN_USE". */
  putSecret(s: Secret): void;
  deleteSecret(id: string): void;
  /** Refuses a name used by another config: throws StoreError code "ERR_NAME_IN_USE". */
  putConfig(c: Config): void;
  deleteConfig(id: string): void;
  /** Stores `e` under `e.key`. */
  putKv(e: KvEntry): void;
  deleteKv(key: string): void;
  /** Stores a cluster event under its seq. */
  putEvent(e: ClusterEvent): void;
  deleteEvent(seq: number): void;
  putMeta(key: string, value: unknown): void;
  deleteMeta(key: string): void;
}

export interface Store {
  /**
   * A consistent read of the current committed state (synchronous). Returned objects are frozen
   * and shared: never mutate them. The tx must not be used after `fn` returns.
   */
  view<T>(fn: (tx: ReadTx) => T): T;
  /**
   * An atomic batch: every write in fn is applied together or not at all (if fn throws, nothing
   * changes and the promise rejects with that error). fn must be synchronous. Resolves with fn's
   * result only after the batch is fsync'd to disk. Updates are serialized: fn sees every batch
   * queued before it, and its own writes.
   */
  update<T>(fn: (tx: WriteTx) => T): Promise<T>;
  /**
   * Called after each committed batch that wrote something, with its events in order, once the
   * batch is durable and visible to `view`. Returns an unsubscribe function.
   */
  watch(listener: (events: StoreEvent[]) => void): () => void;
  /** Waits for queued updates, then releases the files. Later calls reject with ERR_CLOSED. */
  close(): Promise<void>;
}

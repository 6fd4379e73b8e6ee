// The store's in-memory state and its transactions. `State` is the committed state: one Map per
// kind (secrets, configs, Consul KV keys and cluster events too) plus the indexes (service name → id, network name → id, serviceId → task ids, nodeId → task ids). A `Layer`
// is a copy-on-write overlay of pending changes over another source; an update's batch writes
// into a Layer over the group's Layer over the State, so reads inside the batch see its own
// writes and the earlier batches of its group, and a batch that throws is simply dropped. `Tx`
// is the ReadTx/WriteTx handed to `view` and `update` functions: it validates and freezes what
// is put and records the batch's operations, which become its log record and its events.

import type { Config, Network, Node, Secret, Service, Task } from "../api/types.js";
import type { KvEntry } from "../api/consul.js";
import type { ClusterEvent } from "../api/events.js";
import type { Kind, ReadTx, StoreEvent, WriteTx } from "./store.js";
import { StoreError } from "./errors.js";

export const KINDS: readonly Kind[] = [
  "node",
  "service",
  "task",
  "network",
  "secret",
  "config",
  "kv",
  "event",
  "meta",
];

/** One write of a batch. `json` is the value's JSON text (new writes only; replay has none). */
export interface Op {
  action: "put" | "delete";
  kind: Kind;
  id: string;
  /** The frozen value for a put, null for a delete. */
  value: unknown;
  json?: string;
}

export type TaskField = "serviceId" | "nodeId";

/** What a transaction reads from: the committed state or an overlay over it. */
export interface Source {
  /** The stored value, or undefined when absent (stored values are never undefined). */
  get(kind: Kind, id: string): unknown;
  /** Ids of one kind, in a stable order. */
  ids(kind: Kind): Iterable<string>;
  /** Ids of the tasks whose `field` equals `key`. */
  taskIdsBy(field: TaskField, key: string): Iterable<string>;
  serviceIdByName(name: string): string | undefined;
  networkIdByName(name: string): string | undefined;
}

const NONE: ReadonlySet<string> = new Set();

function kindMaps<V>(): Record<Kind, Map<string, V>> {
  return {
    node: new Map(),
    service: new Map(),
    task: new Map(),
    network: new Map(),
    secret: new Map(),
    config: new Map(),
    kv: new Map(),
    event: new Map(),
    meta: new Map(),
  };
}

/** The committed state with its indexes. Only the store's commit loop (and recovery) applies to it. */
export class State implements Source {
  private readonly maps = kindMaps<unknown>();
  private readonly byName = new Map<string, string>();
  private readonly networkByName = new Map<string, string>();
  private readonly byService = new Map<string, Set<string>>();
  private readonly byNode = new Map<string, Set<string>>();

  get(kind: Kind, id: string): unknown {
    return this.maps[kind].get(id);
  }

  ids(kind: Kind): Iterable<string> {
    return this.maps[kind].keys();
  }

  values(kind: Kind): IterableIterator<unknown> {
    return this.maps[kind].values();
  }

  entries(kind: Kind): IterableIterator<[string, unknown]> {
    return this.maps[kind].entries();
  }

  size(kind: Kind): number {
    return this.maps[kind].size;
  }

  taskIdsBy(field: TaskField, key: string): Iterable<string> {
    return (field === "serviceId" ? this.byService : this.byNode).get(key) ?? NONE;
  }

  serviceIdByName(name: string): string | undefined {
    return this.byName.get(name);
  }

  networkIdByName(name: string): string | undefined {
    return this.networkByName.get(name);
  }

  apply(op: Op): void {
    const map = this.maps[op.kind];
    const old = map.get(op.id);
    if (op.kind === "service") {
      const prev = old as Service | undefined;
      if (prev && this.byName.get(prev.spec.name) === op.id) this.byName.delete(prev.spec.name);
      if (op.action === "put") this.byName.set((op.value as Service).spec.name, op.id);
    } else if (op.kind === "network") {
      const prev = old as Network | undefined;
      if (prev && this.networkByName.get(prev.name) === op.id) this.networkByName.delete(prev.name);
      if (op.action === "put") this.networkByName.set((op.value as Network).name, op.id);
    } else if (op.kind === "task") {
      const prev = old as Task | undefined;
      const next = op.action === "put" ? (op.value as Task) : undefined;
      reindex(this.byService, op.id, prev?.serviceId, next?.serviceId);
      reindex(this.byNode, op.id, prev?.nodeId, next?.nodeId);
    }
    if (op.action === "put") map.set(op.id, op.value);
    else map.delete(op.id);
  }
}

function reindex(
  index: Map<string, Set<string>>,
  id: string,
  from: string | undefined,
  to: string | undefined,
): void {
  if (from === to) return;
  if (from !== undefined) {
    const set = index.get(from);
    set?.delete(id);
    if (set && set.size === 0) index.delete(from);
  }
  if (to !== undefined) {
    let set = index.get(to);
    if (!set) index.set(to, (set = new Set()));
    set.add(id);
  }
}

const DELETED: unique symbol = Symbol("deleted");

/** Pending changes over a base source; the base must not change while the layer is in use. */
export class Layer implements Source {
  private readonly changes = kindMaps<unknown>();

  constructor(private readonly base: Source) {}

  get(kind: Kind, id: string): unknown {
    const c = this.changes[kind];
    if (!c.has(id)) return this.base.get(kind, id);
    const v = c.get(id);
    return v === DELETED ? undefined : v;
  }

  *ids(kind: Kind): Iterable<string> {
    const c = this.changes[kind];
    for (const id of this.base.ids(kind)) if (c.get(id) !== DELETED) yield id;
    for (const [id, v] of c) if (v !== DELETED && this.base.get(kind, id) === undefined) yield id;
  }

  *taskIdsBy(field: TaskField, key: string): Iterable<string> {
    const c = this.changes.task;
    for (const id of this.base.taskIdsBy(field, key)) {
      if (!c.has(id)) yield id;
      else {
        const v = c.get(id);
        if (v !== DELETED && (v as Task)[field] === key) yield id;
      }
    }
    for (const [id, v] of c) {
      if (v === DELETED || (v as Task)[field] !== key) continue;
      const old = this.base.get("task", id) as Task | undefined;
      if (old === undefined || old[field] !== key) yield id; // not yielded by the base above
    }
  }

  serviceIdByName(name: string): string | undefined {
    const c = this.changes.service;
    for (const [id, v] of c) if (v !== DELETED && (v as Service).spec.name === name) return id;
    const id = this.base.serviceIdByName(name);
    // A changed service with this name was found above; a changed one here was renamed or deleted.
    return id === undefined || c.has(id) ? undefined : id;
  }

  networkIdByName(name: string): string | undefined {
    const c = this.changes.network;
    for (const [id, v] of c) if (v !== DELETED && (v as Network).name === name) return id;
    const id = this.base.networkIdByName(name);
    return id === undefined || c.has(id) ? undefined : id;
  }

  apply(op: Op): void {
    this.changes[op.kind].set(op.id, op.action === "put" ? op.value : DELETED);
  }
}

/** Recursively freezes a JSON value (fresh from JSON.parse, so it has no cycles). */
export function deepFreeze<T>(v: T): T {
  if (typeof v === "object" && v !== null && !Object.isFrozen(v)) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}

/** The events of a batch's operations, in order. */
export function eventsOf(ops: readonly Op[]): StoreEvent[] {
  return ops.map((op) => ({
    kind: op.kind,
    action: op.action,
    id: op.id,
    value: op.action === "put" ? op.value : null,
  }));
}

/**
 * A transaction over a source. Read-only when `layer` is null; otherwise writes go to `layer`
 * (which reads through to the source) and are recorded in `ops`. Unusable after `close()`.
 */
export class Tx implements WriteTx {
  readonly ops: Op[] = [];
  private open = true;

  constructor(
    private readonly src: Source,
    private readonly layer: Layer | null,
    private readonly rev = 0,
  ) {}

  close(): void {
    this.open = false;
  }

  // ---- reads ------------------------------------------------------------------------------

  getNode(id: string): Node | undefined {
    return this.get("node", id) as Node | undefined;
  }

  listNodes(): Node[] {
    return this.list<Node>("node");
  }

  getService(id: string): Service | undefined {
    return this.get("service", id) as Service | undefined;
  }

  getServiceByName(name: string): Service | undefined {
    this.check();
    const id = this.src.serviceIdByName(name);
    return id === undefined ? undefined : (this.src.get("service", id) as Service | undefined);
  }

  listServices(): Service[] {
    return this.list<Service>("service");
  }

  getTask(id: string): Task | undefined {
    return this.get("task", id) as Task | undefined;
  }

  listTasks(filter?: { serviceId?: string; nodeId?: string }): Task[] {
    this.check();
    const serviceId = filter?.serviceId;
    const nodeId = filter?.nodeId;
    if (serviceId === undefined && nodeId === undefined) return this.list<Task>("task");
    const out: Task[] = [];
    const ids =
      serviceId !== undefined
        ? this.src.taskIdsBy("serviceId", serviceId)
        : this.src.taskIdsBy("nodeId", nodeId!);
    for (const id of ids) {
      const t = this.src.get("task", id) as Task;
      if (serviceId !== undefined && nodeId !== undefined && t.nodeId !== nodeId) continue;
      out.push(t);
    }
    return out;
  }

  getNetwork(id: string): Network | undefined {
    return this.get("network", id) as Network | undefined;
  }

  getNetworkByName(name: string): Network | undefined {
    this.check();
    const id = this.src.networkIdByName(name);
    return id === undefined ? undefined : (this.src.get("network", id) as Network | undefined);
  }

  listNetworks(): Network[] {
    return this.list<Network>("network");
  }

  getSecret(id: string): Secret | undefined {
    return this.get("secret", id) as Secret | undefined;
  }

  listSecrets(): Secret[] {
    return this.list<Secret>("secret");
  }

  getConfig(id: string): Config | undefined {
    return this.get("config", id) as Config | undefined;
  }

  listConfigs(): Config[] {
    return this.list<Config>("config");
  }

  getMeta<T = unknown>(key: string): T | undefined {
    return this.get("meta", key) as T | undefined;
  }

  getKv(key: string): KvEntry | undefined {
    return this.get("kv", key) as KvEntry | undefined;
  }

  listKv(prefix: string): KvEntry[] {
    this.check();
    const out: KvEntry[] = [];
    for (const key of this.src.ids("kv")) {
      if (key.startsWith(prefix)) out.push(this.src.get("kv", key) as KvEntry);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  listEvents(): ClusterEvent[] {
    return this.list<ClusterEvent>("event").sort((a, b) => a.seq - b.seq);
  }

  revision(): number {
    this.check();
    return this.rev;
  }

  private get(kind: Kind, id: string): unknown {
    this.check();
    return this.src.get(kind, id);
  }

  private list<T>(kind: Kind): T[] {
    this.check();
    const out: T[] = [];
    for (const id of this.src.ids(kind)) out.push(this.src.get(kind, id) as T);
    return out;
  }

  // ---- writes -----------------------------------------------------------------------------

  putNode(n: Node): void {
    this.put("node", n?.id, n);
  }

  deleteNode(id: string): void {
    this.delete("node", id);
  }

  putService(s: Service): void {
    const name: unknown = s?.spec?.name;
    if (typeof name !== "string" || name === "") {
      throw new StoreError("ERR_INVALID", "cannot store a service without a spec name");
    }
    this.writable();
    const other = this.getServiceByName(name);
    if (other && other.id !== s.id) {
      throw new StoreError(
        "ERR_NAME_IN_USE",
        `service name "${name}" is already in use by service ${other.id}`,
      );
    }
    this.put("service", s.id, s);
  }

  deleteService(id: string): void {
    this.delete("service", id);
  }

  putTask(t: Task): void {
    if (typeof t?.serviceId !== "string" || typeof t.nodeId !== "string") {
      throw new StoreError(
        "ERR_INVALID",
        "cannot store a task without string serviceId and nodeId",
      );
    }
    this.put("task", t.id, t);
  }

  deleteTask(id: string): void {
    this.delete("task", id);
  }

  putNetwork(n: Network): void {
    const name: unknown = n?.name;
    if (typeof name !== "string" || name === "") {
      throw new StoreError("ERR_INVALID", "cannot store a network without a name");
    }
    this.writable();
    const other = this.getNetworkByName(name);
    if (other && other.id !== n.id) {
      throw new StoreError(
        "ERR_NAME_IN_USE",
        `network name "${name}" is already in use by network ${other.id}`,
      );
    }
    this.put("network", n.id, n);
  }

  deleteNetwork(id: string): void {
    this.delete("network", id);
  }

  putSecret(x: Secret): void {
    this.putNamed("secret", x);
  }

  deleteSecret(id: string): void {
    this.delete("secret", id);
  }

  putConfig(x: Config): void {
    this.putNamed("config", x);
  }

  deleteConfig(id: string): void {
    this.delete("config", id);
  }

  /** Secrets and configs are few: their names are checked by a scan, without an index. */
  private putNamed(kind: "secret" | "config", x: { id: string; name: string }): void {
    const name: unknown = x?.name;
    if (typeof name !== "string" || name === "") {
      throw new StoreError("ERR_INVALID", `cannot store a ${kind} without a name`);
    }
    this.writable();
    const other = this.list<{ id: string; name: string }>(kind).find((o) => o.name === name);
    if (other && other.id !== x.id) {
      throw new StoreError(
        "ERR_NAME_IN_USE",
        `${kind} name "${name}" is already in use by ${kind} ${other.id}`,
      );
    }
    this.put(kind, x.id, x);
  }

  putKv(e: KvEntry): void {
    this.put("kv", e?.key, e);
  }

  deleteKv(key: string): void {
    this.delete("kv", key);
  }

  putEvent(e: ClusterEvent): void {
    if (!Number.isSafeInteger(e?.seq)) {
      throw new StoreError("ERR_INVALID", "cannot store an event without an integer seq");
    }
    this.put("event", String(e.seq), e);
  }

  deleteEvent(seq: number): void {
    this.delete("event", String(seq));
  }

  putMeta(key: string, value: unknown): void {
    this.put("meta", key, value);
  }

  deleteMeta(key: string): void {
    this.delete("meta", key);
  }

  private put(kind: Kind, id: unknown, value: unknown): void {
    const layer = this.writable();
    if (typeof id !== "string" || id === "") {
      throw new StoreError("ERR_INVALID", `cannot store a ${kind} without a string id`);
    }
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch (err) {
      throw new StoreError("ERR_INVALID", `${kind} ${id} is not JSON: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (json === undefined) throw new StoreError("ERR_INVALID", `${kind} ${id} is not JSON`);
    const op: Op = { action: "put", kind, id, value: deepFreeze(JSON.parse(json)), json };
    layer.apply(op);
    this.ops.push(op);
  }

  private delete(kind: Kind, id: string): void {
    const layer = this.writable();
    if (layer.get(kind, id) === undefined) return; // deleting nothing is not an event
    const op: Op = { action: "delete", kind, id, value: null };
    layer.apply(op);
    this.ops.push(op);
  }

  private writable(): Layer {
    this.check();
    if (!this.layer) throw new StoreError("ERR_INVALID", "cannot write in a view (read-only tx)");
    return this.layer;
  }

  private check(): void {
    if (!this.open) {
      throw new StoreError("ERR_TX_CLOSED", "transaction used after its function returned");
    }
  }
}

/** Every object of a state at one revision (a consistent copy; the values are frozen, shared). */
export interface StateSnapshot {
  seq: number;
  entries: Array<{ kind: Kind; id: string; value: unknown }>;
}

export function snapshotOf(state: State, seq: number): StateSnapshot {
  const entries: StateSnapshot["entries"] = [];
  for (const kind of KINDS) {
    for (const [id, value] of state.entries(kind)) entries.push({ kind, id, value });
  }
  return { seq, entries };
}

/** A consistent read of `src` at revision `rev`: the `view` of every store built on State. */
export function readView<T>(src: Source, rev: number, fn: (tx: ReadTx) => T): T {
  const tx = new Tx(src, null, rev);
  try {
    return fn(tx);
  } finally {
    tx.close();
  }
}

/**
 * A store's watchers. Each subscription is a wrapper of its own, so the same function may be
 * subscribed twice and unsubscribed once; a watcher that throws is reported, and the others
 * still hear the batch.
 */
export class Watchers {
  private readonly set = new Set<(events: StoreEvent[]) => void>();

  add(listener: (events: StoreEvent[]) => void): () => void {
    const entry = (events: StoreEvent[]) => listener(events);
    this.set.add(entry);
    return () => void this.set.delete(entry);
  }

  emit(events: StoreEvent[], onWarning: (message: string) => void): void {
    for (const l of [...this.set]) {
      try {
        l(events);
      } catch (err) {
        onWarning(`a store watcher threw: ${(err as Error)?.stack ?? String(err)}`);
      }
    }
  }
}

/**
 * Runs one update function on a Tx over `layer` as batch `rev` (both stores' commit loops);
 * the Tx is closed after. Throws what `fn` throws, and ERR_ASYNC_TX for a function that returned
 * a promise (whose own rejection is then reported as this error, not left unhandled).
 */
export function runUpdate(
  fn: (tx: WriteTx) => unknown,
  layer: Layer,
  rev: number,
): { result: unknown; ops: Op[] } {
  const tx = new Tx(layer, layer, rev);
  try {
    const result = fn(tx);
    if (isThenable(result)) {
      result.then(undefined, () => {});
      throw new StoreError(
        "ERR_ASYNC_TX",
        "an update function must be synchronous (it returned a promise); nothing was written",
      );
    }
    return { result, ops: tx.ops };
  } finally {
    tx.close();
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    (typeof v === "object" || typeof v === "function") &&
    v !== null &&
    typeof (v as { then?: unknown }).then === "function"
  );
}

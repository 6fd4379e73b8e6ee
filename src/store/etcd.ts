// The etcd store: the Store interface over an etcd cluster, for several managers.
//
// Every manager keeps a local mirror of the whole state (a `State`, as the embedded store holds
// in memory), loaded by one range read at a revision and then fed by an etcd watch from the
// next revision, so `view` stays synchronous and consistent (it sees the state as of one etcd
// revision). Keys: `<prefix><kind>/<id>` holds a value's JSON (`/shoal/service/<id>`,
// `/shoal/kv/app/db/host`), and `<prefix>rev` holds `{seq, commit}`: seq counts the committed
// batches that wrote something (that is `revision()`: a number of the store's own, so that it
// behaves as the embedded store's, continues across a move from it, and does not jump when an
// election key changes), commit names the writer's transaction.
//
// `update` runs its function on a Tx over the mirror and the group's earlier batches (state.ts),
// as the embedded store's commit loop does, and commits the group's writes as ONE etcd
// transaction whose guards are
//   - the rev key's mod revision equals the one the mirror has: no other batch was committed
//     since the state the functions read (this also keeps names unique: they were checked
//     against that state); when it fails, the mirror catches up and the group runs again, so
//     an update function may run more than once and must not act outside its tx;
//   - with a fence (leader.ts), the leader key's create revision equals the one the leader
//     won with: a deposed leader's batch fails with ERR_NOT_LEADER and changes nothing.
// The promise resolves only when the watch has brought the commit into the mirror (a read after
// update sees it), and the watchers hear each batch's own events in order.
//
// Limits: etcd refuses a transaction with more than --max-txn-ops operations (default 128) or a
// request over --max-request-bytes (default 1.5 MiB). A group is cut before a batch that would
// cross `maxTxnOps`/`maxTxnBytes`; a single batch over them is refused whole (ERR_TOO_LARGE,
// naming the limit): splitting it over several transactions would let other managers see half
// of it and would leave half of it after a crash. The managed etcd members are started with
// raised limits, and the store is told them (DEFAULT_* below are etcd's defaults, for an etcd
// the user runs).
//
// A transaction whose answer is lost (etcd unreachable) has an unknown outcome; the store then
// settles it: a guarded write of the rev key (same seq) either succeeds — so the lost
// transaction can never apply — and the batch is reported not committed, or finds the rev key
// moved, and its commit field says whether it was ours.

import { randomUUID } from "node:crypto";
import { Etcd3, isRecoverableError, type IOptions, type Watcher } from "etcd3";
import { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen } from "cockatiel";
import { StoreError } from "./errors.js";
import { MemberProbe, PROBE_TIMEOUT_MS } from "./etcd-probe.js";
import { EtcdTlsSource } from "./etcd-tls.js";
import {
  KINDS,
  Layer,
  State,
  Watchers,
  deepFreeze,
  eventsOf,
  readView,
  runUpdate,
  snapshotOf,
  type Op,
  type StateSnapshot,
} from "./state.js";
import type { Kind, ReadTx, Store, StoreEvent, WriteTx } from "./store.js";

/** etcd's default --max-txn-ops. */
export const DEFAULT_MAX_TXN_OPS = 128;
/** What a transaction may carry under etcd's default --max-request-bytes (1.5 MiB), with room. */
export const DEFAULT_MAX_TXN_BYTES = 1_400_000;

/** The leader's claim, checked by every transaction: its key still has this create revision. */
export interface Fence {
  key: string;
  createRevision: string;
}

/**
 * Client TLS for etcd (PEM): the CA that signed the members' certificates and, for mutual TLS
 * (the managed members require it), this client's certificate and key — a manager's node
 * certificate from the cluster CA.
 */
export interface EtcdTls {
  ca: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface EtcdClientOptions {
  /** etcd client URLs or host:port (https when `tls` is given). */
  endpoints: string[];
  /** Fixed, or a source whose changes the connections made from then on take (etcd-tls.ts). */
  tls?: EtcdTls | EtcdTlsSource;
  /** Extra etcd3 client options. */
  clientOptions?: Omit<IOptions, "hosts">;
  /** Told when a member is benched (it did not answer the probe) or let back. */
  onMember?: (host: string, benched: boolean) => void;
}

/**
 * gRPC keep-alive of the client's connections: a ping every ETCD_KEEPALIVE_TIME_MS while a call
 * is open, and a connection whose ping is not answered in ETCD_KEEPALIVE_TIMEOUT_MS is given up.
 * Without it a connection to a member cut off the network (no reset ever comes) holds the
 * watches on it forever: the mirror and the election's view freeze, and a follower never hears
 * that the leader's key expired. With it the watch fails, and etcd3 opens it again on another
 * member from the revision it had. etcd refuses pings more often than its
 * --grpc-keepalive-min-time (5 s by default), hence 6 s.
 */
export const ETCD_KEEPALIVE_TIME_MS = 6000;
export const ETCD_KEEPALIVE_TIMEOUT_MS = 2000;

/**
 * How long the circuit breaker of a client of one endpoint stays open (etcd3's default, for
 * every host, is 5 s: it opens after 3 failures in a row). A client of several endpoints goes on
 * with the others meanwhile; one of a single endpoint (a manager's, on its own etcd member) has
 * nowhere else to go, and a member that restarts is back in 1-2 s: with 5 s its lease
 * keep-alives (the leader's) stayed refused long enough for the lease to lapse.
 */
export const SINGLE_ENDPOINT_HALF_OPEN_MS = 1000;

/**
 * An etcd3 client of `endpoints`, over TLS when `tls` is given. A call etcd does not answer
 * fails after 5 s (streams excepted), so a commit never hangs the store's loop.
 */
export function etcdClient(opts: EtcdClientOptions): Etcd3 {
  if (opts.endpoints.length === 0) {
    throw new StoreError("ERR_INVALID", "an etcd client needs at least one endpoint");
  }
  const source = opts.tls instanceof EtcdTlsSource ? opts.tls : undefined;
  const tls = opts.tls instanceof EtcdTlsSource ? opts.tls.current : opts.tls;
  if (tls && (tls.cert === undefined) !== (tls.key === undefined)) {
    throw new StoreError("ERR_INVALID", "etcd client TLS needs both a certificate and its key");
  }
  const hosts = opts.endpoints.map((e) => {
    if (!tls) return e;
    if (e.startsWith("http://")) {
      throw new StoreError("ERR_INVALID", `etcd endpoint ${e} is http:// but TLS is configured`);
    }
    return e.startsWith("https://") ? e : `https://${e}`;
  });
  const credentials = tls
    ? {
        credentials: {
          rootCertificate: Buffer.from(tls.ca),
          ...(tls.key !== undefined ? { privateKey: Buffer.from(tls.key) } : {}),
          ...(tls.cert !== undefined ? { certChain: Buffer.from(tls.cert) } : {}),
        },
      }
    : {};
  // With several members, a member that does not answer is benched before calls wait on it.
  // The probe's connections take the source's TLS as the client's do.
  const probeOptions = {
    ...credentials,
    ...(source ? { grpcOptions: source.channelOptions() } : {}),
  };
  const probe = hosts.length > 1 ? new MemberProbe(hosts, probeOptions, opts.onMember) : undefined;
  const client = new Etcd3({
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 5000 }),
    faultHandling: {
      // A watch that failed (its member gone) is opened again within 2 s (the default backoff
      // grows to 30 s).
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }).next(),
      // Several members: the probe's breakers; one: a breaker that half-opens sooner.
      host: probe
        ? probe.policyFor
        : () =>
            circuitBreaker(handleWhen(isRecoverableError), {
              halfOpenAfter: SINGLE_ENDPOINT_HALF_OPEN_MS,
              breaker: new ConsecutiveBreaker(3),
            }),
    },
    ...credentials,
    ...opts.clientOptions,
    grpcOptions: {
      "grpc.keepalive_time_ms": ETCD_KEEPALIVE_TIME_MS,
      "grpc.keepalive_timeout_ms": ETCD_KEEPALIVE_TIMEOUT_MS,
      "grpc.keepalive_permit_without_calls": 0,
      ...opts.clientOptions?.grpcOptions,
      // etcd3's own credentials (above) are then left unused: the channels take the source's.
      ...source?.channelOptions(),
    },
    hosts,
  });
  if (probe) {
    probe.start();
    // The probe lives as long as the client: closing one closes the other.
    const close = client.close.bind(client);
    client.close = () => {
      probe.close();
      close();
    };
  }
  return client;
}

/** Where the store's warnings go when no `onWarning` is given. */
const emitStoreWarning = (msg: string) => process.emitWarning(msg, "ShoalStoreWarning");

export interface EtcdStoreOptions {
  /** etcd client URLs or host:port (ignored when `client` is given). */
  endpoints?: string[];
  /** Client TLS when the store makes its client (see `etcdClient`). */
  tls?: EtcdTls | EtcdTlsSource;
  /** A client to use (not closed by the store); otherwise the store makes and closes its own. */
  client?: Etcd3;
  /** Extra etcd3 client options, when the store makes its client. */
  clientOptions?: Omit<IOptions, "hosts">;
  /** Key prefix of the state (default "/shoal/"); must end with "/". */
  prefix?: string;
  /**
   * The leader's fence, asked before each group: null refuses writes (ERR_NOT_LEADER); undefined
   * writes this group unfenced (a manager registering itself before it campaigns). Without this
   * option the store writes unfenced (tests, tools).
   */
  fence?: () => Fence | null | undefined;
  maxTxnOps?: number;
  maxTxnBytes?: number;
  /** Most batches per group commit (default 512). */
  maxGroup?: number;
  /** How long to try to settle a transaction whose answer was lost (default 10 s). */
  settleTimeoutMs?: number;
  /** Watchers that threw, skipped keys, watch restarts. Default: process.emitWarning. */
  onWarning?: (msg: string) => void;
}

interface Pending {
  fn: (tx: WriteTx) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface Ran {
  p: Pending;
  result: unknown;
  ops: Op[];
}

/** A commit of this store that the watch has not brought back yet (keyed by its commit id). */
interface OwnCommit {
  batches: Op[][];
  seq: number;
}

interface RevValue {
  seq: number;
  commit: string;
}

const RANGE_PAGE = 1000;
const MAX_RERUNS = 16;
/** Bytes a put costs in a request beyond its key and value (a rough protobuf overhead). */
const OP_OVERHEAD = 32;

export class EtcdStore implements Store {
  private state = new State();
  /** The store's revision (committed batches that wrote) as of the mirror. */
  private seq = 0;
  /** Mod revision of the rev key in the mirror (0: absent). */
  private revMod = "0";
  /** The highest etcd revision the mirror has applied. */
  private etcdRev = 0n;
  private readonly revKey: string;
  private readonly queue: Pending[] = [];
  private readonly watchers = new Watchers();
  private readonly own = new Map<string, OwnCommit>();
  private readonly revWaiters: Array<{ rev: bigint; resolve: () => void }> = [];
  private loop: Promise<void> | null = null;
  private watcher: Watcher | null = null;
  private closing = false;
  private closed = false;
  private readonly onWarning: (msg: string) => void;
  private readonly maxTxnOps: number;
  private readonly maxTxnBytes: number;
  private readonly maxGroup: number;

  private constructor(
    readonly client: Etcd3,
    private readonly ownsClient: boolean,
    readonly prefix: string,
    private readonly opts: EtcdStoreOptions,
  ) {
    this.revKey = etcdRevKey(prefix);
    this.onWarning = opts.onWarning ?? emitStoreWarning;
    this.maxTxnOps = opts.maxTxnOps ?? DEFAULT_MAX_TXN_OPS;
    this.maxTxnBytes = opts.maxTxnBytes ?? DEFAULT_MAX_TXN_BYTES;
    this.maxGroup = opts.maxGroup ?? 512;
  }

  /** Connects, loads the state and starts the watch. */
  static async open(opts: EtcdStoreOptions): Promise<EtcdStore> {
    const prefix = opts.prefix ?? "/shoal/";
    if (!prefix.endsWith("/")) {
      throw new StoreError("ERR_INVALID", `the etcd key prefix must end with "/", not "${prefix}"`);
    }
    for (const [name, v] of [
      ["maxTxnOps", opts.maxTxnOps],
      ["maxTxnBytes", opts.maxTxnBytes],
      ["maxGroup", opts.maxGroup],
    ] as const) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < 2)) {
        throw new StoreError("ERR_INVALID", `${name} must be an integer of at least 2, not ${v}`);
      }
    }
    let client = opts.client;
    if (!client) {
      if (!opts.endpoints || opts.endpoints.length === 0) {
        throw new StoreError("ERR_INVALID", "the etcd store needs endpoints or a client");
      }
      client = etcdClient({
        endpoints: opts.endpoints,
        ...(opts.tls ? { tls: opts.tls } : {}),
        ...(opts.clientOptions ? { clientOptions: opts.clientOptions } : {}),
        onMember: (host, benched) =>
          (opts.onWarning ?? emitStoreWarning)(
            benched
              ? `etcd member ${host} did not answer within ${PROBE_TIMEOUT_MS} ms: calls go to the other members`
              : `etcd member ${host} answers again`,
          ),
      });
    }
    const store = new EtcdStore(client, !opts.client, prefix, opts);
    try {
      const moving = await client.kv.range({ key: Buffer.from(etcdMoveKey(prefix)) });
      if (moving.kvs.length > 0) {
        throw new StoreError(
          "ERR_MOVE_UNFINISHED",
          `a move of the state into etcd (${prefix}) was started and not finished ` +
            `(${etcdMoveKey(prefix)} is set): run the move again`,
        );
      }
      await store.load();
    } catch (err) {
      await store.stopWatch();
      if (store.ownsClient) client.close();
      throw unavailable(err, "loading the state from etcd failed");
    }
    return store;
  }

  view<T>(fn: (tx: ReadTx) => T): T {
    if (this.closed) throw new StoreError("ERR_CLOSED", "the store is closed");
    return readView(this.state, this.seq, fn);
  }

  update<T>(fn: (tx: WriteTx) => T): Promise<T> {
    if (this.closing) return Promise.reject(new StoreError("ERR_CLOSED", "the store is closed"));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      this.loop ??= this.drain();
    });
  }

  watch(listener: (events: StoreEvent[]) => void): () => void {
    return this.watchers.add(listener);
  }

  async close(): Promise<void> {
    this.closing = true;
    while (this.loop) await this.loop;
    if (this.closed) return;
    this.closed = true;
    await this.stopWatch();
    for (const w of this.revWaiters.splice(0)) w.resolve();
    if (this.ownsClient) this.client.close();
  }

  /** Every object of the mirror and its revision, at once (tests, tools). */
  snapshot(): StateSnapshot {
    if (this.closed) throw new StoreError("ERR_CLOSED", "the store is closed");
    return snapshotOf(this.state, this.seq);
  }

  /** The etcd revision the mirror is at (tests, monitoring). */
  get mirrorRevision(): bigint {
    return this.etcdRev;
  }

  /**
   * Waits until the mirror holds everything committed in etcd before now (a linearizable read
   * of the rev key): a new leader calls it before acting on the state.
   */
  async sync(): Promise<void> {
    const res = await this.client.kv.range({ key: Buffer.from(this.revKey) });
    const kv = res.kvs[0];
    await this.waitMirror(BigInt(kv ? kv.mod_revision : "0"));
  }

  // ---- the mirror -------------------------------------------------------------------------

  /** Loads the state into a new mirror, swapped in whole (a view never sees half of it). */
  private async load(): Promise<void> {
    const next = new State();
    let seq = 0;
    let revMod = "0";
    const key = Buffer.from(this.prefix);
    const rangeEnd = prefixEnd(key);
    let start = key;
    let at: string | undefined;
    for (;;) {
      const res = await this.client.kv.range({
        key: start,
        range_end: rangeEnd,
        limit: RANGE_PAGE,
        ...(at ? { revision: at } : {}),
      });
      at ??= res.header.revision;
      for (const kv of res.kvs) {
        const k = kv.key.toString();
        if (k === this.revKey) {
          seq = parseRev(kv.value)?.seq ?? seq;
          revMod = kv.mod_revision;
        } else this.applyKv(next, k, kv.value, kv.mod_revision);
      }
      if (!res.more || res.kvs.length === 0) break;
      start = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    this.state = next;
    this.seq = seq;
    this.revMod = revMod;
    this.etcdRev = BigInt(at);
    await this.startWatch(this.etcdRev + 1n);
  }

  private async startWatch(from: bigint): Promise<void> {
    const w = await this.client.watch().prefix(this.prefix).startRevision(String(from)).create();
    this.watcher = w;
    // etcd3 resumes a broken watch from the header revision of etcd's last answer, which can be
    // past the events it delivered (a created response comes before the events a resumed watch
    // catches up on): resume from what the mirror applied (these run after etcd3's listeners).
    const resumeFromMirror = () => {
      if (this.watcher === w) w.request.start_revision = String(this.etcdRev + 1n);
    };
    w.on("connected", resumeFromMirror);
    w.on("data", (res) => {
      if (this.watcher !== w) return;
      this.onWatch(res.events);
      resumeFromMirror();
    });
    w.on("error", (err) => {
      if (this.watcher !== w || this.closed) return;
      // Canceled by etcd (most often: the revision to resume from was compacted): load again.
      this.onWarning(`the etcd watch of ${this.prefix} stopped (${err.message}); reloading`);
      void this.reload();
    });
  }

  private async stopWatch(): Promise<void> {
    const w = this.watcher;
    this.watcher = null;
    if (w) await w.cancel().catch(() => {});
  }

  /** Replaces the mirror by a fresh load, announcing what changed as one batch of events. */
  private async reload(): Promise<void> {
    await this.stopWatch();
    const old = this.state;
    for (let delay = 100; !this.closed; delay = Math.min(delay * 2, 2000)) {
      try {
        await this.load();
        break;
      } catch (err) {
        this.onWarning(`reloading the state from etcd failed: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    const ops: Op[] = [];
    for (const kind of KINDS) {
      for (const [id, v] of this.state.entries(kind)) {
        if (JSON.stringify(old.get(kind, id)) !== JSON.stringify(v)) {
          ops.push({ action: "put", kind, id, value: v });
        }
      }
      for (const [id] of old.entries(kind)) {
        if (this.state.get(kind, id) === undefined) {
          ops.push({ action: "delete", kind, id, value: null });
        }
      }
    }
    if (ops.length > 0) this.emit(eventsOf(ops));
    this.wakeWaiters();
  }

  private onWatch(events: Array<{ type: string; kv: EtcdKv }>): void {
    // A response holds whole revisions, in order; one revision is one transaction.
    let i = 0;
    while (i < events.length) {
      const rev = events[i]!.kv.mod_revision;
      let j = i;
      while (j < events.length && events[j]!.kv.mod_revision === rev) j++;
      const group = events.slice(i, j);
      i = j;
      if (BigInt(rev) <= this.etcdRev) continue; // already applied (a resumed watch)
      this.applyRevision(rev, group);
    }
    this.wakeWaiters();
  }

  private applyRevision(rev: string, group: Array<{ type: string; kv: EtcdKv }>): void {
    this.etcdRev = BigInt(rev);
    const revEv = group.find((ev) => ev.kv.key.toString() === this.revKey);
    const commit = revEv && revEv.type !== "Delete" ? parseRev(revEv.kv.value)?.commit : undefined;
    const mine = commit === undefined ? undefined : this.own.get(commit);
    if (mine) {
      // This store's own commit: its batches' events, as the functions wrote them.
      this.own.delete(commit!);
      let seq = mine.seq - mine.batches.length;
      this.revMod = rev;
      for (const ops of mine.batches) {
        for (const op of ops) this.state.apply(op);
        this.seq = ++seq;
        this.emit(eventsOf(ops));
      }
      return;
    }
    const ops: Op[] = [];
    for (const ev of group) {
      const key = ev.kv.key.toString();
      const value = ev.type === "Delete" ? null : ev.kv.value;
      const op = this.applyKv(this.state, key, value, rev);
      if (op) ops.push(op);
    }
    if (ops.length > 0) this.emit(eventsOf(ops));
  }

  /** Applies one key's new value (null: deleted) to the mirror; returns its op, if a state key. */
  private applyKv(state: State, key: string, value: Buffer | null, modRev: string): Op | null {
    if (key === this.revKey) {
      this.revMod = value === null ? "0" : modRev;
      if (value !== null) this.seq = parseRev(value)?.seq ?? this.seq;
      return null;
    }
    const rest = key.slice(this.prefix.length);
    const slash = rest.indexOf("/");
    const kind = rest.slice(0, slash) as Kind;
    const id = rest.slice(slash + 1);
    if (slash <= 0 || id === "" || !KINDS.includes(kind)) {
      this.onWarning(`skipped etcd key ${key}: not <prefix><kind>/<id>`);
      return null;
    }
    let op: Op;
    if (value === null) {
      if (state.get(kind, id) === undefined) return null;
      op = { action: "delete", kind, id, value: null };
    } else {
      let parsed: unknown;
      try {
        parsed = JSON.parse(value.toString());
      } catch {
        this.onWarning(`skipped etcd key ${key}: its value is not JSON`);
        return null;
      }
      op = { action: "put", kind, id, value: deepFreeze(parsed) };
    }
    state.apply(op);
    return op;
  }

  private waitMirror(rev: bigint): Promise<void> {
    if (this.etcdRev >= rev || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.revWaiters.push({ rev, resolve }));
  }

  private wakeWaiters(): void {
    for (let k = this.revWaiters.length - 1; k >= 0; k--) {
      const w = this.revWaiters[k]!;
      if (this.etcdRev >= w.rev) {
        this.revWaiters.splice(k, 1);
        w.resolve();
      }
    }
  }

  private emit(events: StoreEvent[]): void {
    this.watchers.emit(events, (m) => this.onWarning(m));
  }

  // ---- the commit loop --------------------------------------------------------------------

  private async drain(): Promise<void> {
    await null; // start on a microtask, so the updates of one synchronous run share a group
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0, this.maxGroup);
        const rest = await this.commitGroup(group);
        this.queue.unshift(...rest);
      }
    } finally {
      this.loop = null;
    }
  }

  /**
   * Commits a group (or its first part, returning the batches left for the next group); reruns
   * it when another writer committed first.
   */
  private async commitGroup(group: Pending[]): Promise<Pending[]> {
    let live = group;
    for (let attempt = 0; ; attempt++) {
      const fence = this.opts.fence ? this.opts.fence() : undefined;
      if (fence === null) {
        const err = new StoreError(
          "ERR_NOT_LEADER",
          "this manager is not the leader: the batch was not committed",
        );
        for (const p of live) p.reject(err);
        return [];
      }
      const { ran, rest } = this.runGroup(live);
      const writing = ran.filter((r) => r.ops.length > 0);
      if (writing.length === 0) {
        for (const r of ran) r.p.resolve(r.result);
        return rest;
      }
      const base = { seq: this.seq, revMod: this.revMod };
      const commit = randomUUID();
      const seq = base.seq + writing.length;
      const success = [
        ...collapse(writing.flatMap((r) => r.ops)).map((op) => this.requestOf(op)),
        put(this.revKey, JSON.stringify({ seq, commit } satisfies RevValue)),
      ];
      const compare: Array<Record<string, unknown>> = [
        {
          key: Buffer.from(this.revKey),
          target: "Mod",
          result: "Equal",
          mod_revision: base.revMod,
        },
      ];
      const failure: Array<Record<string, unknown>> = [
        { request_range: { key: Buffer.from(this.revKey) } },
      ];
      if (fence) {
        compare.push({
          key: Buffer.from(fence.key),
          target: "Create",
          result: "Equal",
          create_revision: fence.createRevision,
        });
        failure.push({ request_range: { key: Buffer.from(fence.key) } });
      }
      this.own.set(commit, { batches: writing.map((r) => r.ops), seq });
      let res: TxnResult;
      try {
        res = (await this.client.kv.txn({ compare, success, failure })) as TxnResult;
      } catch (err) {
        await this.settle(err, ran, base, commit);
        return rest;
      }
      if (res.succeeded) {
        await this.committed(res.header.revision, ran);
        return rest;
      }
      const revKv = res.responses[0]?.response_range?.kvs[0];
      // etcd3 sends a call that failed with a recoverable error (a deadline: the answer lost)
      // again, to another member; when the first one had committed, this answer is the retry's,
      // which finds the rev key moved — by this very commit, or by it and others after it. The
      // mirror then brings this commit in (`applyRevision` takes it out of `own`).
      if (revKv && parseRev(revKv.value)?.commit === commit) {
        await this.committed(revKv.mod_revision, ran);
        return rest;
      }
      await this.waitMirror(BigInt(revKv?.mod_revision ?? "0"));
      if (!this.own.has(commit)) {
        for (const r of ran) r.p.resolve(r.result);
        return rest;
      }
      this.own.delete(commit);
      const fenceKv = fence ? res.responses[1]?.response_range?.kvs[0] : undefined;
      if (fence && fenceKv?.create_revision !== fence.createRevision) {
        const err = new StoreError(
          "ERR_NOT_LEADER",
          "this manager is no longer the leader (its leader key is gone): the batch was not committed",
        );
        for (const p of live) p.reject(err);
        return [];
      }
      // Another writer committed since the mirror's state: catch up and run the group again.
      if (attempt >= MAX_RERUNS) {
        const err = new StoreError(
          "ERR_CONFLICT",
          `another writer committed first ${MAX_RERUNS + 1} times: the batch was not committed`,
        );
        for (const p of live) p.reject(err);
        return [];
      }
      live = [...ran.map((r) => r.p), ...rest];
    }
  }

  /**
   * Runs the group's functions in order on layers over the mirror, until one would make the
   * transaction cross a limit (that one and those after are returned as `rest`). A function
   * that throws rejects alone; a batch over the limits by itself is refused.
   */
  private runGroup(group: Pending[]): { ran: Ran[]; rest: Pending[] } {
    const layer = new Layer(this.state);
    const ran: Ran[] = [];
    let seq = this.seq;
    let ops = 1; // the rev key
    let bytes = this.revKey.length + 64 + OP_OVERHEAD;
    for (let k = 0; k < group.length; k++) {
      const p = group[k]!;
      let run: { result: unknown; ops: Op[] };
      try {
        run = runUpdate(p.fn, new Layer(layer), seq + 1);
      } catch (err) {
        p.reject(err);
        continue;
      }
      const { result, ops: written } = run;
      if (written.length > 0) {
        const size = this.sizeOf(written);
        if (ops + size.ops > this.maxTxnOps || bytes + size.bytes > this.maxTxnBytes) {
          if (ran.some((r) => r.ops.length > 0)) return { ran, rest: group.slice(k) };
          p.reject(
            new StoreError(
              "ERR_TOO_LARGE",
              `the batch writes ${size.ops} keys (${size.bytes} bytes), more than one etcd ` +
                `transaction may hold (${this.maxTxnOps - 1} keys, ${this.maxTxnBytes} bytes; ` +
                "etcd's --max-txn-ops and --max-request-bytes): nothing was written",
            ),
          );
          continue;
        }
        ops += size.ops;
        bytes += size.bytes;
        seq++;
        for (const op of written) layer.apply(op);
      }
      ran.push({ p, result, ops: written });
    }
    return { ran, rest: [] };
  }

  private sizeOf(batch: Op[]): { ops: number; bytes: number } {
    let bytes = 0;
    const keys = new Set<string>();
    for (const op of batch) {
      const key = this.keyOf(op);
      keys.add(key);
      bytes += key.length + (op.json?.length ?? 0) + OP_OVERHEAD;
    }
    return { ops: keys.size, bytes };
  }

  private keyOf(op: Op): string {
    return etcdStateKey(this.prefix, op.kind, op.id);
  }

  private requestOf(op: Op): Record<string, unknown> {
    const key = this.keyOf(op);
    if (op.action === "delete") return { request_delete_range: { key: Buffer.from(key) } };
    return put(key, op.json ?? JSON.stringify(op.value));
  }

  /** The group committed at etcd revision `rev`: wait for the mirror, then resolve. */
  private async committed(rev: string, ran: Ran[]): Promise<void> {
    await this.waitMirror(BigInt(rev));
    if (this.closed && this.etcdRev < BigInt(rev)) {
      const err = new StoreError(
        "ERR_CLOSED",
        "the store closed before the committed batch came back from etcd",
      );
      for (const r of ran) r.p.reject(err);
      return;
    }
    for (const r of ran) r.p.resolve(r.result);
  }

  /** Settles a transaction whose answer was lost (see the file's header). */
  private async settle(
    cause: unknown,
    ran: Ran[],
    base: { seq: number; revMod: string },
    commit: string,
  ): Promise<void> {
    const deadline = Date.now() + (this.opts.settleTimeoutMs ?? 10_000);
    for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
      try {
        const res = (await this.client.kv.txn({
          compare: [
            {
              key: Buffer.from(this.revKey),
              target: "Mod",
              result: "Equal",
              mod_revision: base.revMod,
            },
          ],
          success: [put(this.revKey, JSON.stringify({ seq: base.seq, commit: `void-${commit}` }))],
          failure: [{ request_range: { key: Buffer.from(this.revKey) } }],
        })) as TxnResult;
        if (res.succeeded) break; // ours can never apply now
        const kv = res.responses[0]?.response_range?.kvs[0];
        if (kv && parseRev(kv.value)?.commit === commit) {
          await this.committed(kv.mod_revision, ran);
          return;
        }
        // Moved by others; ours may be among the commits before theirs: the mirror tells.
        await this.waitMirror(BigInt(kv?.mod_revision ?? "0"));
        if (!this.own.has(commit)) {
          for (const r of ran) r.p.resolve(r.result);
          return;
        }
        break;
      } catch {
        if (Date.now() + delay > deadline) {
          const err = unavailable(
            cause,
            "etcd did not answer the commit and could not be asked again: the batch may or may not be committed",
          );
          for (const r of ran) r.p.reject(err);
          return;
        }
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    this.own.delete(commit);
    const err = unavailable(cause, "etcd did not answer the commit: the batch was not committed");
    for (const r of ran) r.p.reject(err);
  }
}

/** The key of one object: `<prefix><kind>/<id>`. */
export function etcdStateKey(prefix: string, kind: Kind, id: string): string {
  return `${prefix}${kind}/${id}`;
}

/** The key of the store's revision, `<prefix>rev`: {seq, commit}. */
export function etcdRevKey(prefix: string): string {
  return `${prefix}rev`;
}

/**
 * The key marking a move of the state into etcd under way (move-to-etcd.ts): beside the prefix,
 * not in it ("/shoal/" → "/shoal.move"), so the stores' watches never see it.
 */
export function etcdMoveKey(prefix: string): string {
  return `${prefix.slice(0, -1)}.move`;
}

export function openEtcdStore(opts: EtcdStoreOptions): Promise<EtcdStore> {
  return EtcdStore.open(opts);
}

interface EtcdKv {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
  create_revision: string;
}

interface TxnResult {
  header: { revision: string };
  succeeded: boolean;
  responses: Array<{ response_range?: { kvs: EtcdKv[] } }>;
}

function put(key: string, value: string): Record<string, unknown> {
  return { request_put: { key: Buffer.from(key), value: Buffer.from(value) } };
}

/** The last op per key, in the order of each key's last write (etcd refuses a key twice). */
function collapse(ops: Op[]): Op[] {
  const last = new Map<string, Op>();
  for (const op of ops) {
    const k = `${op.kind}/${op.id}`;
    last.delete(k);
    last.set(k, op);
  }
  return [...last.values()];
}

function parseRev(value: Buffer): RevValue | null {
  try {
    const v = JSON.parse(value.toString()) as RevValue;
    return typeof v?.seq === "number" && typeof v.commit === "string" ? v : null;
  } catch {
    return null;
  }
}

/** The end of the key range holding every key that starts with `key`. */
export function prefixEnd(key: Buffer): Buffer {
  const end = Buffer.from(key);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function unavailable(cause: unknown, what: string): StoreError {
  if (cause instanceof StoreError) return cause;
  return new StoreError("ERR_UNAVAILABLE", `${what}: ${(cause as Error)?.message ?? cause}`, {
    cause,
  });
}

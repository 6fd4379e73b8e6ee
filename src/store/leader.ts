// Leader election on etcd, for several managers: one of them is the leader at a time.
//
// Each candidate holds an etcd lease (TTL `ttlSeconds`, kept alive every TTL/3) and puts the key
// `<prefix><lease id>` = its id, attached to the lease. The leader is the candidate whose key
// has the smallest create revision (the oldest key alive): keys are only ever created newer, so
// once a candidate's key is the oldest it stays the leader until the key goes — resigned
// (`close` revokes the lease), or expired (the process died or lost etcd for a TTL). Every
// candidate also observes: it loads the prefix and watches it, so `leaderId`, `isLeader` and
// `onChange` follow the keys as etcd orders them (the same protocol as etcd's own
// concurrency.Election, written here on lease + txn + watch to expose the fence and to bound
// how long a candidate believes it leads).
//
// A leader that loses etcd keeps believing it leads only while its lease can still be alive:
// until the TTL after the last keep-alive it sent that etcd acknowledged. The store's writes do
// not rely on that belief: each transaction compares the leader key's create revision (the
// `fence()`), so a deposed leader's write fails in etcd itself (etcd.ts, ERR_NOT_LEADER).
//
// The watch alone is not trusted to keep the view current: a watch stream can stall without an
// error (its member cut off: until gRPC's keep-alive gives the connection up, and while etcd3
// reconnects it to members that cannot be reached, which took over a minute in the history
// test), and etcd3 resumes a broken watch from the revision in the header of etcd's last answer,
// which can be ahead of the events it delivered (a created response comes before the events a
// resumed watch catches up on). So every candidate also reads the prefix every `pollMs` (a
// linearizable range, on whichever member answers) and takes it whole when it is newer than
// what the watch brought; and the watch resumes from the revision the view has.
//
// Failover time: the old leader's key expires at most TTL after its last keep-alive; etcd checks
// expiries about every 500 ms; the watch (or the next read) then tells the next candidate. When
// the dead machine's etcd member was also etcd's raft leader, etcd first elects another (1-2 s
// with its default 1 s election timeout) and the new raft leader renews every lease by the
// election timeout plus the TTL, the dead leader's too: about TTL + 2.5-3 s then. On the managers
// bench (docs/benchmarks.md; the goal is < 5 s) a TTL of 3 s gave a new leader 2.4-2.7 s after
// the old one died, 7.1 s in the raft-leader case; 2 s (the least etcd grants with its default
// election timeout) gave 1.6-1.7 s and 4.9-5.5 s. The default stays 3 s: with 2 s, a leader's
// lease lapsed under a loaded CI run (a keep-alive every 667 ms, two lost in a row), and
// leadership moved in the middle of a test's manager joins. A keep-alive goes every TTL/3, and
// a new etcd raft leader extends leases rather than letting them lapse. The managers cut the
// slow case short: a leader none of them hears for 3.5 s is deposed (`depose` revokes its
// lease; src/daemon/leader-silence.ts says when).

import type { Etcd3, Lease, Watcher } from "etcd3";
import { etcdClient, prefixEnd, type EtcdTls, type Fence } from "./etcd.js";
import { StoreError } from "./errors.js";

export interface LeaderElectionOptions {
  /** A client to use (not closed by the election); otherwise give `endpoints` (and `tls`). */
  client?: Etcd3;
  /** etcd endpoints, when the election makes (and closes) its own client. */
  endpoints?: string[];
  /** Client TLS for `endpoints` (a manager's node certificate for the managed members). */
  tls?: EtcdTls;
  /** This candidate's id (the node id), what the others see as `leaderId`. */
  id: string;
  /** Key prefix of the election (default "/shoal-election/"); must end with "/". */
  prefix?: string;
  /** Lease TTL in whole seconds (default 3; etcd raises TTLs under 1.5 election timeouts). */
  ttlSeconds?: number;
  /** Only observe, never campaign (a reader that wants to know the leader). */
  observeOnly?: boolean;
  /** Delay before campaigning again after the lease was lost (default 500 ms). */
  retryMs?: number;
  /** How often the prefix is read besides the watch (default 1000 ms; 0: never). */
  pollMs?: number;
  /** The clock (tests inject one). */
  now?: () => number;
  onWarning?: (msg: string) => void;
}

export const DEFAULT_ELECTION_PREFIX = "/shoal-election/";
export const DEFAULT_LEADER_TTL_SECONDS = 3;
export const DEFAULT_ELECTION_POLL_MS = 1000;

interface Candidate {
  createRevision: bigint;
  id: string;
}

export class LeaderElection {
  private candidates = new Map<string, Candidate>();
  /** The etcd revision `candidates` is as of (a range's, or the last event's). */
  private rev = 0n;
  private pollTimer: NodeJS.Timeout | null = null;
  private polling = false;
  private readonly listeners = new Set<(leaderId: string | undefined) => void>();
  private watcher: Watcher | null = null;
  private lease: Lease | null = null;
  private myKey: string | null = null;
  private myCreate = "";
  /** When the last acknowledged keep-alive (or the grant) was sent. */
  private renewedAt = 0;
  private sentAt = 0;
  private expiryTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private last: { key: string | undefined; leaderId: string | undefined; mine: boolean } = {
    key: undefined,
    leaderId: undefined,
    mine: false,
  };
  private closed = false;
  private readonly prefix: string;
  private readonly ttl: number;
  private readonly now: () => number;
  private readonly onWarning: (msg: string) => void;
  private readonly client: Etcd3;
  private readonly ownsClient: boolean;

  private constructor(private readonly opts: LeaderElectionOptions) {
    if (opts.client) {
      this.client = opts.client;
      this.ownsClient = false;
    } else {
      this.client = etcdClient({
        endpoints: opts.endpoints ?? [],
        ...(opts.tls ? { tls: opts.tls } : {}),
      });
      this.ownsClient = true;
    }
    this.prefix = opts.prefix ?? DEFAULT_ELECTION_PREFIX;
    this.ttl = opts.ttlSeconds ?? DEFAULT_LEADER_TTL_SECONDS;
    this.now = opts.now ?? Date.now;
    this.onWarning =
      opts.onWarning ?? ((msg: string) => process.emitWarning(msg, "ShoalElectionWarning"));
  }

  /** Starts observing (resolves once the current leader is known) and campaigning. */
  static async start(opts: LeaderElectionOptions): Promise<LeaderElection> {
    const prefix = opts.prefix ?? DEFAULT_ELECTION_PREFIX;
    if (!prefix.endsWith("/")) {
      throw new StoreError("ERR_INVALID", `the election prefix must end with "/", not "${prefix}"`);
    }
    const ttl = opts.ttlSeconds ?? DEFAULT_LEADER_TTL_SECONDS;
    if (!Number.isSafeInteger(ttl) || ttl < 1) {
      throw new StoreError("ERR_INVALID", `the leader TTL must be whole seconds >= 1, not ${ttl}`);
    }
    if (typeof opts.id !== "string" || opts.id === "") {
      throw new StoreError("ERR_INVALID", "a leader election needs the candidate's id");
    }
    if (!opts.client && !opts.endpoints?.length) {
      throw new StoreError("ERR_INVALID", "a leader election needs an etcd client or endpoints");
    }
    const e = new LeaderElection(opts);
    try {
      await e.observe();
    } catch (err) {
      if (e.ownsClient) e.client.close();
      throw err;
    }
    if (!opts.observeOnly) void e.campaign();
    const pollMs = opts.pollMs ?? DEFAULT_ELECTION_POLL_MS;
    if (pollMs > 0) {
      e.pollTimer = setInterval(() => void e.poll(pollMs), pollMs);
      e.pollTimer.unref();
    }
    return e;
  }

  /** The current leader's id as this candidate knows it; undefined while there is none. */
  get leaderId(): string | undefined {
    return this.current().leaderId;
  }

  /** Whether this candidate is the leader (its key is the oldest and its lease can be alive). */
  get isLeader(): boolean {
    return this.myKey !== null && this.current().key === this.myKey;
  }

  /** The fence the store compares in each transaction, while this candidate leads. */
  fence(): Fence | null {
    return this.isLeader ? { key: this.myKey!, createRevision: this.myCreate } : null;
  }

  /**
   * Calls `fn` with the leader's id each time the leadership changes hands (a new leader key,
   * or none: undefined), and when this candidate learns the leader key is its own. Returns an
   * unsubscribe function.
   */
  onChange(fn: (leaderId: string | undefined) => void): () => void {
    const entry = (id: string | undefined) => fn(id);
    this.listeners.add(entry);
    return () => void this.listeners.delete(entry);
  }

  /**
   * Ends another candidate's term: revokes the lease under the leader's key when the leader seen
   * now is still `leaderId` (another manager's, never this one's). False when it is not (any
   * more); a lease etcd no longer has counts as revoked. The watch (or the next read) then
   * brings the next leader; this candidate reads the prefix at once.
   */
  async depose(leaderId: string): Promise<boolean> {
    const cur = this.current();
    if (cur.leaderId !== leaderId || cur.key === undefined || cur.key === this.myKey) return false;
    const leaseId = cur.key.slice(this.prefix.length);
    try {
      await this.client.leaseClient.leaseRevoke({ ID: leaseId });
    } catch (err) {
      if (!/lease not found/i.test((err as Error).message)) throw err;
    }
    void this.poll(DEFAULT_ELECTION_POLL_MS);
    return true;
  }

  /** Resigns (revokes the lease: the next candidate leads at once) and stops observing. */
  async close(): Promise<void> {
    if (this.closed) return;
    const lease = this.stop();
    if (lease) {
      await lease.revoke().catch((err: Error) => {
        this.onWarning(`resigning the leadership failed (it expires in ${this.ttl} s): ${err}`);
      });
    }
    await this.cancelWatch();
    if (this.ownsClient) this.client.close();
  }

  /** Stops without resigning, as a crashed candidate does: its key expires after the TTL. */
  async abandon(): Promise<void> {
    if (this.closed) return;
    this.stop()?.release();
    await this.cancelWatch();
    if (this.ownsClient) this.client.close();
  }

  private stop(): Lease | null {
    this.closed = true;
    const lease = this.lease;
    this.lease = null;
    this.myKey = null;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.changed();
    return lease;
  }

  private async cancelWatch(): Promise<void> {
    const w = this.watcher;
    this.watcher = null;
    if (w) await w.cancel().catch(() => {});
  }

  // ---- observing --------------------------------------------------------------------------

  /** Reads the prefix: the candidates as of the range's revision. */
  private async load(deadlineMs?: number): Promise<{ rev: bigint; found: Map<string, Candidate> }> {
    const key = Buffer.from(this.prefix);
    const res = await this.client.kv.range(
      { key, range_end: prefixEnd(key) },
      deadlineMs !== undefined ? { deadline: Date.now() + deadlineMs } : undefined,
    );
    const found = new Map<string, Candidate>();
    for (const kv of res.kvs) {
      found.set(kv.key.toString(), {
        createRevision: BigInt(kv.create_revision),
        id: kv.value.toString(),
      });
    }
    return { rev: BigInt(res.header.revision), found };
  }

  /** Takes a range's candidates when they are newer than the view. */
  private take(r: { rev: bigint; found: Map<string, Candidate> }): void {
    if (r.rev <= this.rev) return;
    this.candidates = r.found;
    this.rev = r.rev;
    this.changed();
  }

  /** One read of the prefix besides the watch (none while one is under way). */
  private async poll(deadlineMs: number): Promise<void> {
    if (this.polling || this.closed) return;
    this.polling = true;
    try {
      const r = await this.load(Math.max(deadlineMs, 500));
      if (!this.closed) this.take(r);
    } catch {
      // etcd unreachable from here for now: the watch, or the next poll
    } finally {
      this.polling = false;
    }
  }

  private async observe(): Promise<void> {
    this.take(await this.load());
    const w = await this.client
      .watch()
      .prefix(this.prefix)
      .startRevision(String(this.rev + 1n))
      .create();
    this.watcher = w;
    // etcd3 sets where a broken watch resumes from the header of etcd's last answer, which can
    // be past the events delivered: resume from the view's revision instead (after etcd3's own
    // listeners, which run first).
    const resumeFromView = () => {
      if (this.watcher === w) w.request.start_revision = String(this.rev + 1n);
    };
    w.on("connected", resumeFromView);
    w.on("data", (r) => {
      if (this.watcher !== w) return;
      // One answer holds whole revisions (a transaction's events share one).
      const had = this.rev;
      for (const ev of r.events) {
        const rev = BigInt(ev.kv.mod_revision);
        if (rev <= had) continue; // the view has it (a poll, or a resumed watch)
        if (rev > this.rev) this.rev = rev;
        const k = ev.kv.key.toString();
        if (ev.type === "Delete") this.candidates.delete(k);
        else {
          this.candidates.set(k, {
            createRevision: BigInt(ev.kv.create_revision),
            id: ev.kv.value.toString(),
          });
        }
      }
      resumeFromView();
      this.changed();
    });
    w.on("error", (err) => {
      if (this.watcher !== w || this.closed) return;
      this.onWarning(`the election watch stopped (${err.message}); observing again`);
      this.candidates.clear();
      this.rev = 0n;
      this.changed();
      void this.reobserve();
    });
    this.changed();
  }

  private async reobserve(): Promise<void> {
    await this.cancelWatch();
    for (let delay = 100; !this.closed; delay = Math.min(delay * 2, 2000)) {
      try {
        await this.observe();
        return;
      } catch (err) {
        this.onWarning(`observing the election failed: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** The oldest key and its id; my own key only while my lease can be alive. */
  private current(): { key: string | undefined; leaderId: string | undefined } {
    let best: [string, Candidate] | undefined;
    for (const entry of this.candidates) {
      if (!best || entry[1].createRevision < best[1].createRevision) best = entry;
    }
    if (!best) return { key: undefined, leaderId: undefined };
    if (best[0] === this.myKey && this.now() >= this.renewedAt + this.ttl * 1000) {
      return { key: undefined, leaderId: undefined }; // my lease may have expired: nobody known
    }
    return { key: best[0], leaderId: best[1].id };
  }

  private changed(): void {
    const cur = this.closed ? { key: undefined, leaderId: undefined } : this.current();
    // Whether the key is this candidate's: the watch can bring its key before the transaction
    // that put it answers, so "it is mine" may become known after the key did.
    const now = { ...cur, mine: cur.key !== undefined && cur.key === this.myKey };
    if (now.key === this.last.key && now.mine === this.last.mine) return;
    this.last = now;
    for (const l of [...this.listeners]) {
      try {
        l(now.leaderId);
      } catch (err) {
        this.onWarning(`a leader listener threw: ${(err as Error)?.stack ?? String(err)}`);
      }
    }
  }

  // ---- campaigning ------------------------------------------------------------------------

  private async campaign(): Promise<void> {
    this.retryTimer = null;
    if (this.closed) return;
    const lease = this.client.lease(this.ttl, { autoKeepAlive: true });
    this.lease = lease;
    lease.on("lost", (err) => this.lost(lease, err));
    lease.on("keepaliveFired", () => (this.sentAt = this.now()));
    lease.on("keepaliveSucceeded", () => this.renewed(lease, this.sentAt));
    try {
      const sent = this.now();
      const leaseId = await lease.grant();
      const key = `${this.prefix}${leaseId}`;
      const res = await this.client.kv.txn({
        compare: [{ key: Buffer.from(key), target: "Create", result: "Equal", create_revision: 0 }],
        success: [
          {
            request_put: {
              key: Buffer.from(key),
              value: Buffer.from(this.opts.id),
              lease: leaseId,
            },
          },
        ],
        failure: [],
      });
      if (this.lease !== lease) return; // closed or lost meanwhile
      this.myKey = key;
      this.myCreate = res.header.revision;
      this.renewed(lease, sent);
    } catch (err) {
      this.lost(lease, err as Error);
    }
  }

  private renewed(lease: Lease, sentAt: number): void {
    if (this.lease !== lease) return;
    this.renewedAt = Math.max(this.renewedAt, sentAt);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    // When the lease may have run out without a renewal heard: no longer the leader.
    const left = this.renewedAt + this.ttl * 1000 - this.now();
    this.expiryTimer = setTimeout(() => this.changed(), Math.max(0, left) + 1);
    this.expiryTimer.unref();
    this.changed();
  }

  private lost(lease: Lease, err: Error): void {
    if (this.lease !== lease || this.closed) return;
    this.onWarning(`the leader lease was lost (${err.message}); campaigning again`);
    this.lease = null;
    this.myKey = null;
    lease.release();
    this.changed();
    this.retryTimer = setTimeout(() => void this.campaign(), this.opts.retryMs ?? 500);
  }
}

/**
 * The leader's id as etcd holds it now (the id under the oldest key of the election prefix), for
 * a process that does not campaign; undefined when no candidate is there.
 */
export async function readLeaderId(
  client: Etcd3,
  prefix = DEFAULT_ELECTION_PREFIX,
): Promise<string | undefined> {
  const key = Buffer.from(prefix);
  const res = await client.kv.range({ key, range_end: prefixEnd(key) });
  let best: { rev: bigint; id: string } | undefined;
  for (const kv of res.kvs) {
    const rev = BigInt(kv.create_revision);
    if (!best || rev < best.rev) best = { rev, id: kv.value.toString() };
  }
  return best?.id;
}

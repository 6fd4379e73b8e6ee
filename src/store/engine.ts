// The store's commit loop, shared by the embedded (disk) and the in-memory store.
//
// `update` queues its function; one loop drains the queue in groups (group commit). For a group
// it runs each queued function in turn on a Tx over a Layer over the group's Layer over the
// committed State: a function that throws (or returns a promise) rejects alone and leaves no
// trace, the writes of one that returns join the group. The group's records are handed to the
// journal in one call (one write, one fsync); only when that returns does each batch, in order,
// get applied to the committed State and announced to the watchers, and its promise resolve.
// So `view` only ever sees durable state, and updates queued while a group is being written
// wait for the next group. A journal failure that leaves the disk unknown (ERR_FAILED) stops
// the store: that group and every later update reject.

import { StoreError } from "./errors.js";
import {
  Layer,
  State,
  Watchers,
  eventsOf,
  readView,
  runUpdate,
  snapshotOf,
  type Op,
  type StateSnapshot,
} from "./state.js";
import type { ReadTx, Store, StoreEvent, WriteTx } from "./store.js";

/** Where committed batches go. */
export interface Journal {
  /** Encodes one batch's record (seq counts batches that wrote something). */
  encode(seq: number, ops: readonly Op[]): Buffer;
  /** Makes records durable, all or none: throws ERR_IO (none written) or ERR_FAILED. */
  append(records: Buffer[]): Promise<void>;
  /** Runs after a group is committed, in the loop (no commit runs meanwhile): may snapshot. */
  afterCommit(state: State, seq: number): Promise<void>;
  close(): Promise<void>;
}

export interface EngineOptions {
  /** Told about things worth a log line that are not errors of a call (a watcher that threw). */
  onWarning: (msg: string) => void;
  /** Most batches per group commit. */
  maxGroup?: number;
}

interface Pending {
  type: "update";
  fn: (tx: WriteTx) => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** A job run in the loop between groups (e.g. a forced snapshot). */
interface Job {
  type: "job";
  run: () => Promise<void>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface Done {
  p: Pending;
  result: unknown;
  ops: Op[];
}

export class StoreEngine implements Store {
  private readonly queue: Array<Pending | Job> = [];
  private readonly watchers = new Watchers();
  private loop: Promise<void> | null = null;
  private closing = false;
  private closed = false;
  private failed: StoreError | null = null;
  private readonly maxGroup: number;

  constructor(
    protected readonly state: State,
    /** Seq of the last committed batch. */
    protected seq: number,
    private readonly journal: Journal | null,
    private readonly opts: EngineOptions,
  ) {
    this.maxGroup = opts.maxGroup ?? 512;
  }

  view<T>(fn: (tx: ReadTx) => T): T {
    if (this.closed) throw new StoreError("ERR_CLOSED", "the store is closed");
    return readView(this.state, this.seq, fn);
  }

  update<T>(fn: (tx: WriteTx) => T): Promise<T> {
    if (this.closing) return Promise.reject(new StoreError("ERR_CLOSED", "the store is closed"));
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<T>((resolve, reject) => {
      this.enqueue({ type: "update", fn, resolve: resolve as (v: unknown) => void, reject });
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
    await this.journal?.close();
    this.afterClose();
  }

  /** Every object of the committed state and its revision, at once (moving the state to etcd). */
  snapshot(): StateSnapshot {
    if (this.closed) throw new StoreError("ERR_CLOSED", "the store is closed");
    return snapshotOf(this.state, this.seq);
  }

  /**
   * Hands the state over (to etcd, when a second manager joins): runs `move` on a snapshot in
   * the commit loop, after every update queued before it and before any queued after it, so no
   * write lands between the snapshot and the end of the move. Once `move` succeeded, every
   * later write is refused (ERR_MOVED, the queued ones too): the state lives elsewhere now. A
   * move that fails changes nothing here (its error is thrown; writes go on).
   */
  async handOver(move: (snap: StateSnapshot) => Promise<void>): Promise<void> {
    let error: { err: unknown } | null = null;
    await this.runInLoop(async () => {
      try {
        await move(this.snapshot());
        this.failed = new StoreError(
          "ERR_MOVED",
          "the state moved to etcd (a second manager joined): this store takes no more writes",
        );
      } catch (err) {
        error = { err };
      }
    });
    if (error !== null) throw (error as { err: unknown }).err;
  }

  /** Seq of the last committed batch that wrote something. */
  get lastSeq(): number {
    return this.seq;
  }

  /** Runs `run` in the commit loop, after every update queued before it. */
  protected runInLoop(run: () => Promise<void>): Promise<void> {
    if (this.closing) return Promise.reject(new StoreError("ERR_CLOSED", "the store is closed"));
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<void>((resolve, reject) => {
      this.enqueue({ type: "job", run, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /** Called once, after the journal is closed. */
  protected afterClose(): void {}

  private enqueue(item: Pending | Job): void {
    this.queue.push(item);
    this.loop ??= this.drain();
  }

  private async drain(): Promise<void> {
    await null; // start on a microtask, so the updates of one synchronous run share a group
    try {
      while (this.queue.length > 0) {
        if (this.failed) {
          for (const item of this.queue.splice(0)) item.reject(this.failed);
          break;
        }
        const head = this.queue[0]!;
        if (head.type === "job") {
          this.queue.shift();
          try {
            await head.run();
            head.resolve(undefined);
          } catch (err) {
            this.noteFailure(err);
            head.reject(err);
          }
          continue;
        }
        let n = 0;
        while (n < this.queue.length && n < this.maxGroup && this.queue[n]!.type === "update") n++;
        await this.commitGroup(this.queue.splice(0, n) as Pending[]);
      }
    } finally {
      // Cleared in the same synchronous step as the empty-queue check: a later enqueue starts a
      // new loop, never finds a finished one.
      this.loop = null;
    }
  }

  private async commitGroup(batch: Pending[]): Promise<void> {
    const group = new Layer(this.state);
    const done: Done[] = [];
    const records: Buffer[] = [];
    let seq = this.seq;
    for (const p of batch) {
      let run: { result: unknown; ops: Op[] };
      try {
        run = runUpdate(p.fn, new Layer(group), seq + 1);
      } catch (err) {
        p.reject(err);
        continue;
      }
      const { result, ops } = run;
      if (ops.length > 0) {
        seq++;
        if (this.journal) records.push(this.journal.encode(seq, ops));
        for (const op of ops) group.apply(op);
      }
      done.push({ p, result, ops });
    }
    if (records.length > 0 && this.journal) {
      try {
        await this.journal.append(records);
      } catch (err) {
        this.noteFailure(err);
        for (const d of done) d.p.reject(err);
        return;
      }
    }
    this.seq = seq;
    for (const d of done) {
      if (d.ops.length === 0) continue;
      for (const op of d.ops) this.state.apply(op);
      this.emit(eventsOf(d.ops));
    }
    for (const d of done) d.p.resolve(d.result);
    if (records.length > 0 && this.journal) {
      try {
        await this.journal.afterCommit(this.state, this.seq);
      } catch (err) {
        this.noteFailure(err);
      }
    }
  }

  private emit(events: StoreEvent[]): void {
    this.watchers.emit(events, (m) => this.opts.onWarning(m));
  }

  private noteFailure(err: unknown): void {
    if (err instanceof StoreError && err.code === "ERR_FAILED" && !this.failed) {
      this.failed = err;
      this.opts.onWarning(`store stopped accepting updates: ${err.message}`);
    }
  }
}

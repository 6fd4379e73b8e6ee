// Errors of the state store. Every failure the store reports is a StoreError with a stable
// `code` (callers branch on the code, people read the message) and, when it wraps an I/O error,
// the original as `cause`.

export type StoreErrorCode =
  /** putService with a name another service already has. */
  | "ERR_NAME_IN_USE"
  /** A value that cannot be stored: no id, not JSON, a service without a spec name. */
  | "ERR_INVALID"
  /** An update function returned a promise; batches must be synchronous. */
  | "ERR_ASYNC_TX"
  /** A transaction object used after its function returned. */
  | "ERR_TX_CLOSED"
  /** The store was closed. */
  | "ERR_CLOSED"
  /** Another live process holds the store directory's LOCK. */
  | "ERR_LOCKED"
  /** The snapshot or the write-ahead log is damaged somewhere other than its torn tail. */
  | "ERR_CORRUPT"
  /** The store has no state, but its owner requires one (a node that belongs to a swarm). */
  | "ERR_NO_STATE"
  /** Writing or syncing the log failed; the batch was not committed. */
  | "ERR_IO"
  /** An earlier I/O failure left the disk state unknown; the store refuses further writes. */
  | "ERR_FAILED"
  /** etcd store: this manager is not (or no longer) the leader; the batch was not committed. */
  | "ERR_NOT_LEADER"
  /** etcd store: a batch larger than one etcd transaction may be (--max-txn-ops, request size). */
  | "ERR_TOO_LARGE"
  /** etcd store: another writer kept committing first; the batch was not committed. */
  | "ERR_CONFLICT"
  /** etcd store: etcd could not be reached; the message says whether the batch was committed. */
  | "ERR_UNAVAILABLE"
  /** Moving a state into etcd: the etcd prefix already holds keys (a state, or someone else's). */
  | "ERR_NOT_EMPTY"
  /** etcd store: a move of the state into etcd was started and not finished: run it again. */
  | "ERR_MOVE_UNFINISHED"
  /** Embedded store: its state was handed over to etcd (`handOver`); it takes no more writes. */
  | "ERR_MOVED";

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "StoreError";
  }
}

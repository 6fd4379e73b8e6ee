// Moves a state into an empty etcd prefix in one go: what the first manager does with its
// embedded store's state when a second manager joins and the state moves to etcd.
//
// Every object is written as the etcd store lays it out (`<prefix><kind>/<id>` = its JSON), and
// the store's revision counter continues: the rev key gets the source's seq, so the etcd
// store's `revision()` is the embedded store's and its next batch commits as seq + 1 (Consul
// indexes, watchers that resume by revision, keep working).
//
// A state may be larger than one etcd transaction, so the objects go in batches (under
// `maxTxnOps` / `maxTxnBytes`), and the move is made detectable and re-runnable:
//   1. the prefix must be empty (no rev key, no keys) — or hold only a half-done move of ours;
//   2. a marker key beside the prefix (`etcdMoveKey`, "/shoal.move") is put first;
//   3. each batch is a transaction guarded by the marker's value (two moves never interleave);
//   4. the last transaction writes the rev key and deletes the marker, guarded by the marker
//      and by the rev key being absent.
// A move that stops half way leaves the marker: an etcd store refuses to open on it
// (ERR_MOVE_UNFINISHED), and running the move again clears the prefix and starts over. Keys
// under the prefix without the marker are someone else's: the move refuses them (ERR_NOT_EMPTY).
//
// The source must not change while it is read: `snapshot()` is one synchronous copy, and the
// caller stops writing to the source (the leader pauses its writers) until the etcd store
// takes over.

import { randomUUID } from "node:crypto";
import type { Etcd3 } from "etcd3";
import {
  DEFAULT_MAX_TXN_BYTES,
  DEFAULT_MAX_TXN_OPS,
  etcdMoveKey,
  etcdRevKey,
  etcdStateKey,
  prefixEnd,
} from "./etcd.js";
import { StoreError } from "./errors.js";
import type { StateSnapshot } from "./state.js";

export interface MoveToEtcdOptions {
  client: Etcd3;
  /** The etcd store's prefix (default "/shoal/"). */
  prefix?: string;
  /** Limits of one transaction (default etcd's: 128 operations, about 1.4 MB). */
  maxTxnOps?: number;
  maxTxnBytes?: number;
  /** Called after each transaction with the objects written so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

export interface MoveReport {
  /** Objects written. */
  objects: number;
  /** Transactions used (the last one, writing the rev key, included). */
  transactions: number;
  /** The revision the etcd store continues from. */
  seq: number;
  /** Whether a half-done earlier move was cleared first. */
  resumed: boolean;
}

/** Bytes a put costs in a request beyond its key and value (a rough protobuf overhead). */
const OP_OVERHEAD = 32;

/** Moves `source`'s state into the empty etcd prefix (see the file's header). */
export async function moveStateToEtcd(
  source: { snapshot(): StateSnapshot },
  opts: MoveToEtcdOptions,
): Promise<MoveReport> {
  const prefix = opts.prefix ?? "/shoal/";
  if (!prefix.endsWith("/")) {
    throw new StoreError("ERR_INVALID", `the etcd key prefix must end with "/", not "${prefix}"`);
  }
  const maxOps = opts.maxTxnOps ?? DEFAULT_MAX_TXN_OPS;
  const maxBytes = opts.maxTxnBytes ?? DEFAULT_MAX_TXN_BYTES;
  const { client } = opts;
  const revKey = Buffer.from(etcdRevKey(prefix));
  const moveKey = Buffer.from(etcdMoveKey(prefix));
  const key = Buffer.from(prefix);

  const rev = await client.kv.range({ key: revKey });
  if (rev.kvs.length > 0) {
    throw new StoreError(
      "ERR_NOT_EMPTY",
      `etcd already holds a state under ${prefix} (its revision key ${etcdRevKey(prefix)} is set): ` +
        "nothing was moved",
    );
  }
  const count = Number(
    (await client.kv.range({ key, range_end: prefixEnd(key), count_only: true })).count,
  );
  const marker = await client.kv.range({ key: moveKey });
  const resumed = marker.kvs.length > 0;
  if (count > 0 && !resumed) {
    throw new StoreError(
      "ERR_NOT_EMPTY",
      `etcd holds ${count} keys under ${prefix} that are not a state shoal moved there: ` +
        "nothing was moved (use another prefix, or remove them)",
    );
  }

  const snap = source.snapshot();
  const id = randomUUID();
  const markerValue = JSON.stringify({ id, seq: snap.seq, objects: snap.entries.length });
  // Take the marker first (a concurrent move's batches then fail their guard), then clear what a
  // half-done move left.
  await client.kv.put({ key: moveKey, value: Buffer.from(markerValue) });
  if (count > 0) await client.kv.deleteRange({ key, range_end: prefixEnd(key) });

  const guard = [
    { key: moveKey, target: "Value", result: "Equal", value: Buffer.from(markerValue) },
  ];
  let transactions = 0;
  const send = async (success: Array<Record<string, unknown>>, last = false) => {
    const compare: Array<Record<string, unknown>> = [...guard];
    if (last) compare.push({ key: revKey, target: "Create", result: "Equal", create_revision: 0 });
    let res;
    try {
      res = await client.kv.txn({ compare, success, failure: [] });
    } catch (err) {
      const msg = (err as Error).message;
      if (/too many operations|request is too large/.test(msg)) {
        throw new StoreError(
          "ERR_TOO_LARGE",
          `etcd refused a transaction of ${success.length} keys (${msg}): give the move the ` +
            "limits etcd runs with (--max-txn-ops, --max-request-bytes), then run it again",
          { cause: err },
        );
      }
      throw new StoreError("ERR_UNAVAILABLE", `moving the state into etcd failed: ${msg}`, {
        cause: err,
      });
    }
    transactions++;
    if (!res.succeeded) {
      throw new StoreError(
        "ERR_CONFLICT",
        `another move into ${prefix} (or a store) wrote there meanwhile: this move stopped; ` +
          "run it again once the other is done",
      );
    }
  };

  let batch: Array<Record<string, unknown>> = [];
  let bytes = 0;
  let done = 0;
  const total = snap.entries.length;
  for (const e of snap.entries) {
    const k = etcdStateKey(prefix, e.kind, e.id);
    const v = JSON.stringify(e.value);
    const size = k.length + v.length + OP_OVERHEAD;
    if (batch.length > 0 && (batch.length + 1 > maxOps || bytes + size > maxBytes)) {
      await send(batch);
      done += batch.length;
      opts.onProgress?.(done, total);
      batch = [];
      bytes = 0;
    }
    batch.push({ request_put: { key: Buffer.from(k), value: Buffer.from(v) } });
    bytes += size;
  }
  if (batch.length > 0) {
    await send(batch);
    done += batch.length;
    opts.onProgress?.(done, total);
  }
  await send(
    [
      {
        request_put: {
          key: revKey,
          value: Buffer.from(JSON.stringify({ seq: snap.seq, commit: `move-${id}` })),
        },
      },
      { request_delete_range: { key: moveKey } },
    ],
    true,
  );
  return { objects: total, transactions, seq: snap.seq, resumed };
}

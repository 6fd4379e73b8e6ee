// Consul's KV store on shoal's cluster store (pure over a transaction): GET of a key, a prefix
// (?recurse) or the key names under a prefix cut at a separator (?keys&separator); PUT with
// ?flags and check-and-set (?cas=N: write only if the key's ModifyIndex is N, 0: only if it does
// not exist); DELETE of a key, a prefix (?recurse) or check-and-delete (?cas). Indexes are store
// revisions: a write's ModifyIndex is the revision of its batch, so ?cas compares against
// exactly what a read returned.

import type { KvEntry, KvPair } from "../../api/consul.js";
import type { ReadTx, WriteTx } from "../../store/store.js";

/** Consul's answer shape of a stored entry (an empty value is null, as Consul writes it). */
export function kvPair(e: KvEntry): KvPair {
  return {
    LockIndex: e.lockIndex,
    Key: e.key,
    Flags: e.flags,
    Value: e.value === "" ? null : e.value,
    CreateIndex: e.createIndex,
    ModifyIndex: e.modifyIndex,
  };
}

/**
 * The key names under `prefix` (sorted); with a separator, a key that has the separator after
 * the prefix is cut just after it, and repeats are dropped: the "folders" one level down.
 */
export function listKeys(keys: readonly string[], prefix: string, separator: string): string[] {
  const out: string[] = [];
  let last = "";
  for (const k of [...keys].sort()) {
    if (!k.startsWith(prefix)) continue;
    let name = k;
    if (separator !== "") {
      const at = k.indexOf(separator, prefix.length);
      if (at >= 0) name = k.slice(0, at + separator.length);
    }
    if (name !== last) out.push(name);
    last = name;
  }
  return out;
}

export interface KvGet {
  key: string;
  recurse: boolean;
}

/** The entries a GET answers: one key, or every key under the prefix. */
export function kvGet(tx: ReadTx, q: KvGet): KvEntry[] {
  if (q.recurse) return tx.listKv(q.key);
  const e = tx.getKv(q.key);
  return e ? [e] : [];
}

/** A PUT: `value` is base64; with `cas`, only when the key's ModifyIndex is `cas` (0: new key).
 * Returns whether it wrote. Flags not given keep 0, as in Consul. */
export function kvPut(
  tx: WriteTx,
  key: string,
  value: string,
  opts: { flags?: number; cas?: number },
): boolean {
  const old = tx.getKv(key);
  if (opts.cas !== undefined && (old?.modifyIndex ?? 0) !== opts.cas) return false;
  const rev = tx.revision();
  tx.putKv({
    key,
    value,
    flags: opts.flags ?? 0,
    createIndex: old?.createIndex ?? rev,
    modifyIndex: rev,
    lockIndex: 0,
  });
  return true;
}

/** A DELETE of one key, or (recurse) every key under the prefix; with `cas`, only when the key's
 * ModifyIndex is `cas` (a missing key: true, nothing to do). Returns whether it deleted. */
export function kvDelete(
  tx: WriteTx,
  key: string,
  opts: { recurse?: boolean; cas?: number },
): boolean {
  if (opts.recurse) {
    for (const e of tx.listKv(key)) tx.deleteKv(e.key);
    return true;
  }
  const old = tx.getKv(key);
  if (opts.cas !== undefined && old !== undefined && old.modifyIndex !== opts.cas) return false;
  tx.deleteKv(key);
  return true;
}

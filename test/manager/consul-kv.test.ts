// The Consul KV store's pure parts over an in-memory store: key listing with a separator,
// check-and-set and check-and-delete by ModifyIndex (a store revision), recursive reads and
// deletes, Consul's answer shape; and that KV entries survive a snapshot and a reopen.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createMemoryStore } from "../../src/store/memory.js";
import { openEmbeddedStore } from "../../src/store/embedded.js";
import { kvDelete, kvGet, kvPair, kvPut, listKeys } from "../../src/manager/consul/kv.js";
import { tmpStoreDir, warnings } from "../store/helpers.js";

test("listKeys: every key under the prefix, cut after the separator, without repeats", () => {
  const keys = ["app/db/host", "app/db/port", "app/name", "apple", "b", "app/"];
  const cases: Array<[prefix: string, sep: string, want: string[]]> = [
    ["", "", ["app/", "app/db/host", "app/db/port", "app/name", "apple", "b"]],
    ["", "/", ["app/", "apple", "b"]],
    ["app/", "/", ["app/", "app/db/", "app/name"]],
    ["app/db/", "/", ["app/db/host", "app/db/port"]],
    ["app", "/", ["app/", "apple"]],
    ["nothing/", "/", []],
    ["app/", "", ["app/", "app/db/host", "app/db/port", "app/name"]],
  ];
  for (const [prefix, sep, want] of cases) {
    assert.deepEqual(listKeys(keys, prefix, sep), want, `prefix ${prefix} separator ${sep}`);
  }
});

test("kvPut: ModifyIndex is the batch's revision; ?cas=0 only creates, ?cas=N only over N", async () => {
  const store = createMemoryStore();
  const rev0 = store.view((tx) => tx.revision());
  assert.equal(await store.update((tx) => kvPut(tx, "k", "dg==", { flags: 42 })), true);
  const first = store.view((tx) => tx.getKv("k"))!;
  assert.equal(first.modifyIndex, rev0 + 1);
  assert.equal(first.createIndex, rev0 + 1);
  assert.equal(first.flags, 42);
  assert.equal(
    store.view((tx) => tx.revision()),
    rev0 + 1,
  );

  const cases: Array<[cas: number, wrote: boolean]> = [
    [0, false], // exists: ?cas=0 refuses
    [first.modifyIndex + 5, false], // not its index
    [first.modifyIndex, true],
    [first.modifyIndex, false], // that index is gone now
  ];
  for (const [cas, wrote] of cases) {
    assert.equal(await store.update((tx) => kvPut(tx, "k", "eA==", { cas })), wrote, `cas ${cas}`);
  }
  const now = store.view((tx) => tx.getKv("k"))!;
  assert.equal(now.createIndex, first.createIndex, "CreateIndex stays");
  assert.ok(now.modifyIndex > first.modifyIndex);
  assert.equal(now.flags, 0, "flags not given: 0, as in Consul");
  assert.equal(await store.update((tx) => kvPut(tx, "new", "", { cas: 0 })), true);
  // A refused CAS wrote nothing: no revision taken.
  const rev = store.view((tx) => tx.revision());
  await store.update((tx) => kvPut(tx, "new", "", { cas: 999 }));
  assert.equal(
    store.view((tx) => tx.revision()),
    rev,
  );
});

test("kvDelete: one key, ?cas (a missing key is true), ?recurse under a prefix", async () => {
  const store = createMemoryStore();
  for (const k of ["a/1", "a/2", "a/b/3", "ab", "z"]) {
    await store.update((tx) => kvPut(tx, k, "", {}));
  }
  const z = store.view((tx) => tx.getKv("z"))!;
  assert.equal(await store.update((tx) => kvDelete(tx, "z", { cas: z.modifyIndex + 1 })), false);
  assert.equal(await store.update((tx) => kvDelete(tx, "z", { cas: z.modifyIndex })), true);
  assert.equal(await store.update((tx) => kvDelete(tx, "gone", { cas: 7 })), true);
  assert.equal(await store.update((tx) => kvDelete(tx, "a/", { recurse: true })), true);
  const left = store.view((tx) => tx.listKv("").map((e) => e.key));
  assert.deepEqual(left, ["ab"]);
  assert.deepEqual(
    store.view((tx) => kvGet(tx, { key: "a", recurse: true })).map((e) => e.key),
    ["ab"],
  );
  assert.deepEqual(
    store.view((tx) => kvGet(tx, { key: "a", recurse: false })),
    [],
  );
});

test("kvPair: Consul's shape; an empty value is null", () => {
  const e = { key: "k", value: "", flags: 3, createIndex: 4, modifyIndex: 5, lockIndex: 0 };
  assert.deepEqual(kvPair(e), {
    LockIndex: 0,
    Key: "k",
    Flags: 3,
    Value: null,
    CreateIndex: 4,
    ModifyIndex: 5,
  });
  assert.equal(kvPair({ ...e, value: "aGk=" }).Value, "aGk=");
});

test("KV entries and the revision survive a snapshot and a reopen", async (t) => {
  const dir = tmpStoreDir(t);
  const w = warnings();
  let store = await openEmbeddedStore(dir, { compactEvery: 2, onWarning: w.onWarning });
  for (const k of ["x/1", "x/2", "x/3"]) await store.update((tx) => kvPut(tx, k, "dg==", {}));
  await store.update((tx) => kvDelete(tx, "x/2", {}));
  const before = store.view((tx) => ({ kv: tx.listKv(""), rev: tx.revision() }));
  await store.close();
  store = await openEmbeddedStore(dir, { onWarning: w.onWarning });
  t.after(() => store.close());
  const after = store.view((tx) => ({ kv: tx.listKv(""), rev: tx.revision() }));
  assert.deepEqual(after, before);
  assert.deepEqual(
    after.kv.map((e) => e.key),
    ["x/1", "x/3"],
  );
  assert.deepEqual(w.list, []);
});

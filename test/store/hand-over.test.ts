// The embedded store hands its state over (to etcd, when a second manager joins): the move sees
// every write queued before it and none queued after it; once it succeeded every later write is
// refused (ERR_MOVED), the queued ones too; a failed move changes nothing and writes go on.

import { test } from "node:test";
import assert from "node:assert/strict";
import { openEmbeddedStore } from "../../src/store/embedded.js";
import { StoreError } from "../../src/store/errors.js";
import type { StateSnapshot } from "../../src/store/state.js";
import { node, tmpStoreDir } from "./helpers.js";

test("a hand-over sees the writes before it; writes after it are refused", async (t) => {
  const s = await openEmbeddedStore(tmpStoreDir(t));
  t.after(() => s.close());
  await s.update((tx) => tx.putNode(node("n1")));
  const queuedBefore = s.update((tx) => tx.putNode(node("n2")));
  let release!: () => void;
  let seen: StateSnapshot | undefined;
  const moving = s.handOver(async (snap) => {
    seen = snap;
    await new Promise<void>((r) => (release = r));
  });
  const queuedAfter = s.update((tx) => tx.putNode(node("n3")));
  await queuedBefore;
  // The move holds the commit loop until it is done.
  await new Promise((r) => setImmediate(r));
  assert.ok(seen, "the move started");
  assert.deepEqual(
    seen.entries
      .filter((e) => e.kind === "node")
      .map((e) => e.id)
      .sort(),
    ["n1", "n2"],
  );
  release();
  await moving;
  await assert.rejects(
    queuedAfter,
    (e: unknown) => e instanceof StoreError && e.code === "ERR_MOVED",
  );
  await assert.rejects(
    s.update((tx) => tx.putNode(node("n4"))),
    (e: unknown) => e instanceof StoreError && e.code === "ERR_MOVED",
  );
  assert.deepEqual(
    s.view((tx) => tx.listNodes().map((n) => n.id)).sort(),
    ["n1", "n2"],
    "reads go on; nothing written after the snapshot",
  );
});

test("a failed hand-over changes nothing: its error is thrown, writes go on", async (t) => {
  const s = await openEmbeddedStore(tmpStoreDir(t));
  t.after(() => s.close());
  await assert.rejects(
    s.handOver(async () => {
      throw new Error("etcd went away");
    }),
    /etcd went away/,
  );
  await s.update((tx) => tx.putNode(node("n1")));
  assert.deepEqual(
    s.view((tx) => tx.listNodes().map((n) => n.id)),
    ["n1"],
  );
});

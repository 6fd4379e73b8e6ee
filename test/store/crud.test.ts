// The store conformance suite (conformance.ts) against the embedded store (on disk) and the
// in-memory store; etcd.test.ts runs it against the etcd store.

import { openEmbeddedStore } from "../../src/store/embedded.js";
import { createMemoryStore } from "../../src/store/memory.js";
import { storeConformance } from "./conformance.js";
import { tmpStoreDir, warnings } from "./helpers.js";

storeConformance("embedded", async (t, opts = {}) => {
  const s = await openEmbeddedStore(tmpStoreDir(t), {
    onWarning: opts.onWarning ?? warnings().onWarning,
  });
  t.after(() => s.close());
  return s;
});

storeConformance("memory", async (t, opts = {}) => {
  const s = createMemoryStore({ onWarning: opts.onWarning ?? warnings().onWarning });
  t.after(() => s.close());
  return s;
});

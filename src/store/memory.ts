// A store kept in memory only: the same semantics as the embedded store (atomic serialized
// batches, frozen values, name uniqueness, watch events) without a disk, for tests of the layers
// above and for throwaway clusters. Nothing survives the process.

import { StoreEngine } from "./engine.js";
import { State } from "./state.js";
import type { Store } from "./store.js";

export function createMemoryStore(opts: { onWarning?: (msg: string) => void } = {}): Store {
  const onWarning =
    opts.onWarning ?? ((msg: string) => process.emitWarning(msg, "ShoalStoreWarning"));
  return new StoreEngine(new State(), 0, null, { onWarning });
}

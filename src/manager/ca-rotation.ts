// Root CA rotation (`shoal swarm ca --rotate`, Swarm's model): the store's CA meta gets a new
// root that signs from then on, with the old root still trusted and the new root cross-signed by
// it (ca.ts rotateRootCa). Managers serve the cross-signed root after their certificates, so a
// node that trusts the old root only can still reach them; the assignments tell nodes the roots
// to trust (trustRoots), and a node whose certificate or trust differs renews at once. Nodes
// report who issued their certificate and what they trust with their heartbeats (Node.tls), which
// is the rotation's progress; when every node's certificate is from the new root, the leader
// drops the old root (finishCaRotation): the join tokens change to the new digest, the managers
// trust the new root only, and the nodes renew once more to drop the old one from their trust.

import type { SwarmCa } from "../api/http.js";
import type { Node } from "../api/types.js";
import type { ReadTx, Store } from "../store/store.js";
import { CA_META, CaError, caDigest, rotateRootCa, type CaMeta } from "./ca.js";
import { ManagerError } from "./errors.js";

function caOf(tx: ReadTx): CaMeta {
  const ca = tx.getMeta<CaMeta>(CA_META);
  if (!ca) throw new ManagerError("ERR_INVALID", "the swarm has no certificate authority");
  return ca;
}

/** Whether a node's certificate is from the root with `digest`. */
const certFrom = (n: Node, digest: string) => n.tls?.certIssuer === digest;

/** The root CA and how many nodes have moved to it. */
export function swarmCa(tx: ReadTx): SwarmCa {
  const ca = caOf(tx);
  const digest = caDigest(ca.certPem);
  const nodes = tx.listNodes();
  return {
    certPem: ca.certPem,
    digest,
    rotating: ca.rotation !== undefined,
    nodes: nodes.length,
    certsRotated: nodes.filter((n) => certFrom(n, digest)).length,
    rootsRotated: nodes.filter((n) => n.tls?.trustRoots.join() === digest).length,
  };
}

/** Starts a rotation (a new root; the old one trusted until every node has moved). */
export async function rotateCa(
  store: Store,
  now: Date,
  o: { certExpiryMs?: number } = {},
): Promise<SwarmCa> {
  const current = store.view(caOf);
  let next: CaMeta;
  try {
    next = await rotateRootCa(current, now);
  } catch (err) {
    if (err instanceof CaError) throw new ManagerError("ERR_INVALID", err.message);
    throw err;
  }
  return store.update((tx) => {
    // Another rotation may have begun while the key was made: that one stands.
    if (caOf(tx).certPem !== current.certPem) {
      throw new ManagerError("ERR_INVALID", "a root CA rotation began meanwhile: try again");
    }
    tx.putMeta(CA_META, {
      ...next,
      ...(o.certExpiryMs !== undefined ? { certExpiryMs: o.certExpiryMs } : {}),
    });
    return swarmCa(tx);
  });
}

/** Ends a rotation once every node's certificate is from the new root (the leader's duty; a
 * no-op otherwise). Returns whether it ended one. */
export async function finishCaRotation(store: Store): Promise<boolean> {
  const ready = (tx: ReadTx) => {
    const ca = caOf(tx);
    // Called on every node event: without a rotation under way, nothing to hash or scan.
    if (ca.rotation === undefined) return false;
    const digest = caDigest(ca.certPem);
    return tx.listNodes().every((n) => certFrom(n, digest));
  };
  if (!store.view(ready)) return false;
  return store.update((tx) => {
    if (!ready(tx)) return false;
    const { rotation: _done, ...ca } = caOf(tx);
    tx.putMeta(CA_META, ca);
    return true;
  });
}

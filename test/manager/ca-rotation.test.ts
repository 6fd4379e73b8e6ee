// Root CA rotation's parts (issue 14): the new root cross-signed by the old, so a client that
// trusts the old root only verifies a certificate from the new one (and one that trusts the new
// root only does too); the join tokens keep the old digest until the rotation ends; the
// progress counts nodes by what their heartbeats said; the rotation ends only when every node's
// certificate is from the new root; a second rotation while one is under way is refused.

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, createServer, type TLSSocket } from "node:tls";
import type { AddressInfo } from "node:net";
import { X509Certificate } from "node:crypto";
import {
  CA_META,
  caDigest,
  chainReaches,
  createRootCa,
  issueNodeCert,
  joinPem,
  newKeyAndCsr,
  rotateRootCa,
  splitPem,
  tokenDigest,
  trustDigests,
  trustPem,
  type CaMeta,
} from "../../src/manager/ca.js";
import { finishCaRotation, rotateCa, swarmCa } from "../../src/manager/ca-rotation.js";
import { createMemoryStore } from "../../src/store/memory.js";
import type { Node } from "../../src/api/types.js";
import { defer } from "../helpers/defer.js";

const now = new Date(Date.UTC(2026, 0, 1));

async function leafOf(ca: CaMeta) {
  const { keyPem, csrPem } = await newKeyAndCsr();
  const cert = await issueNodeCert(ca, csrPem, {
    nodeId: "m1",
    role: "manager",
    addrs: ["127.0.0.1"],
    now: new Date(),
  });
  return { cert, key: keyPem };
}

/** Whether a TLS client trusting `ca` accepts a server with this chain; and the chain it saw. */
async function handshake(chain: string, key: string, ca: string) {
  const srv = createServer({ cert: chain, key }, (s) => s.end());
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  try {
    const port = (srv.address() as AddressInfo).port;
    return await new Promise<{ authorized: boolean; error?: string; seen: string[] }>((resolve) => {
      const c: TLSSocket = connect({
        host: "127.0.0.1",
        port,
        ca,
        rejectUnauthorized: false,
        checkServerIdentity: () => undefined,
      });
      c.once("secureConnect", () => {
        const seen: string[] = [];
        type Peer = ReturnType<TLSSocket["getPeerCertificate"]> & { issuerCertificate?: Peer };
        let p: Peer | undefined = c.getPeerCertificate(true) as Peer;
        while (p?.raw && !seen.some((x) => x === p!.fingerprint256)) {
          seen.push(p.fingerprint256);
          p = p.issuerCertificate;
        }
        resolve({
          authorized: c.authorized,
          ...(c.authorizationError ? { error: String(c.authorizationError) } : {}),
          seen,
        });
        c.destroy();
      });
      c.once("error", (err) => resolve({ authorized: false, error: err.message, seen: [] }));
    });
  } finally {
    srv.close();
  }
}

test("a certificate from the new root verifies against the old root, through the cross-signed root", async () => {
  const old = await createRootCa(now);
  const ca = await rotateRootCa(old, now);
  assert.equal(ca.clusterId, old.clusterId);
  assert.equal(ca.rotation?.previousPem, old.certPem);
  assert.deepEqual(trustDigests(ca), [caDigest(ca.certPem), caDigest(old.certPem)]);
  assert.equal(tokenDigest(ca), caDigest(old.certPem), "tokens keep the old digest meanwhile");
  const leaf = await leafOf(ca);
  // What a manager serves during a rotation: its certificate, the cross-signed root, the roots.
  const chain = joinPem(leaf.cert, ca.rotation!.crossSignedPem, trustPem(ca));
  const [cross] = splitPem(ca.rotation!.crossSignedPem);
  assert.ok(chainReaches([leaf.cert, cross!, old.certPem], 2), "leaf -> cross-signed -> old root");
  assert.ok(!chainReaches([leaf.cert, old.certPem], 1), "the old root did not sign the leaf");
  for (const [name, trust] of [
    ["old root only", old.certPem],
    ["new root only", ca.certPem],
    ["both", trustPem(ca)],
  ] as const) {
    const r = await handshake(chain, leaf.key, trust);
    assert.equal(r.authorized, true, `${name}: ${r.error ?? ""}`);
  }
  // Without the cross-signed root, a client that trusts the old root only is refused.
  const bare = await handshake(joinPem(leaf.cert, ca.certPem), leaf.key, old.certPem);
  assert.equal(bare.authorized, false);
  // The chain a joining node reads (without trusting anything) ends at the token's root.
  const seen = await handshake(chain, leaf.key, "");
  assert.equal(seen.seen.length, 3);
  assert.equal(
    seen.seen[2],
    new X509Certificate(old.certPem).fingerprint256,
    "the walk from the leaf ends at the old root",
  );
});

test("a rotation is refused while another is under way", async () => {
  const ca = await rotateRootCa(await createRootCa(now), now);
  await assert.rejects(rotateRootCa(ca, now), /a root CA rotation is already in progress/);
});

test("the rotation's progress comes from the nodes' reports, and it ends when all have moved", async (t) => {
  const store = createMemoryStore();
  defer(t, () => store.close());
  const old = await createRootCa(now);
  const node = (id: string, tls?: Node["tls"]): Node => ({
    id,
    hostname: id,
    role: id === "m" ? "manager" : "worker",
    availability: "active",
    status: "ready",
    addr: "127.0.0.1",
    labels: {},
    resources: { nanoCpus: 0, memoryBytes: 0 },
    engineVersion: "",
    ...(tls ? { tls } : {}),
    lastSeen: 0,
    createdAt: 0,
    updatedAt: 0,
  });
  const oldD = caDigest(old.certPem);
  await store.update((tx) => {
    tx.putMeta(CA_META, old);
    tx.putNode(node("m", { certIssuer: oldD, trustRoots: [oldD] }));
    tx.putNode(node("w", { certIssuer: oldD, trustRoots: [oldD] }));
  });
  assert.equal(await finishCaRotation(store), false, "no rotation: nothing to end");
  const started = await rotateCa(store, now, { certExpiryMs: 3_600_000 });
  const newD = started.digest;
  assert.notEqual(newD, oldD);
  assert.deepEqual(
    { ...started, certPem: "" },
    { certPem: "", digest: newD, rotating: true, nodes: 2, certsRotated: 0, rootsRotated: 0 },
  );
  assert.equal(store.view((tx) => tx.getMeta<CaMeta>(CA_META))!.certExpiryMs, 3_600_000);
  await assert.rejects(rotateCa(store, now), /already in progress/);

  // One node renewed: not the end.
  await store.update((tx) => tx.putNode(node("m", { certIssuer: newD, trustRoots: [newD, oldD] })));
  assert.equal(store.view(swarmCa).certsRotated, 1);
  assert.equal(await finishCaRotation(store), false);
  assert.equal(store.view(swarmCa).rotating, true);
  // Both: the old root is dropped, the tokens' digest is the new root's.
  await store.update((tx) => tx.putNode(node("w", { certIssuer: newD, trustRoots: [newD, oldD] })));
  assert.equal(await finishCaRotation(store), true);
  const ca = store.view((tx) => tx.getMeta<CaMeta>(CA_META))!;
  assert.equal(ca.rotation, undefined);
  assert.equal(tokenDigest(ca), newD);
  assert.deepEqual(trustDigests(ca), [newD]);
  const after = store.view(swarmCa);
  assert.deepEqual([after.rotating, after.certsRotated, after.rootsRotated], [false, 2, 0]);
  // The nodes renew again to trust the new root only.
  await store.update((tx) => {
    tx.putNode(node("m", { certIssuer: newD, trustRoots: [newD] }));
    tx.putNode(node("w", { certIssuer: newD, trustRoots: [newD] }));
  });
  assert.equal(store.view(swarmCa).rootsRotated, 2);
});

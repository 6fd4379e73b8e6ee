// Certificate renewal at the join endpoint (issue 14's security tests): only a node that shows
// its current certificate from this swarm's CA gets a new one; a client without a certificate,
// with another CA's certificate naming a node of the swarm, or with the certificate of a node
// that was removed, is refused; and a worker's renewal is a worker's certificate — renewing
// cannot make a manager.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  certInfo,
  createRootCa,
  issueNodeCert,
  newKeyAndCsr,
  signedBy,
} from "../../src/manager/ca.js";
import { requestRenew } from "../../src/daemon/worker-daemon.js";
import { startJoinServer, testToken } from "../helpers/pki.js";

test("renewal needs the node's current certificate from the CA and keeps its role", async (t) => {
  const { meta, store, ca, server, addr } = await startJoinServer(t);

  const mine = await newKeyAndCsr();
  const joined = await server.join({
    token: await testToken(meta.workerSecret),
    hostname: "w1",
    addr: "127.0.0.1",
    csr: mine.csrPem,
  });
  const next = await newKeyAndCsr();

  // Its own certificate: a new one, still a worker's, from the CA.
  const renewed = await requestRenew(addr, next.csrPem, {
    caPem: ca.certPem,
    certPem: joined.cert,
    keyPem: mine.keyPem,
  });
  assert.ok(signedBy(renewed.cert, ca.certPem));
  assert.equal(certInfo(renewed.cert).nodeId, joined.nodeId);
  assert.equal(certInfo(renewed.cert).role, "worker");

  // No certificate.
  await assert.rejects(
    requestRenew(addr, next.csrPem, { caPem: ca.certPem, certPem: "", keyPem: "" }),
    /certificate renewal needs the node's current certificate from this swarm's CA/,
  );
  // Another CA's certificate naming the worker, even as a manager of this cluster id.
  const other = await createRootCa(new Date());
  const forged = await issueNodeCert({ ...other, clusterId: ca.clusterId }, mine.csrPem, {
    nodeId: joined.nodeId,
    role: "manager",
    addrs: ["127.0.0.1"],
    now: new Date(),
  });
  await assert.rejects(
    requestRenew(addr, next.csrPem, { caPem: ca.certPem, certPem: forged, keyPem: mine.keyPem }),
    /certificate renewal needs the node's current certificate from this swarm's CA/,
  );
  // A removed node's (valid) certificate.
  await store.update((tx) => tx.deleteNode(joined.nodeId));
  await assert.rejects(
    requestRenew(addr, next.csrPem, {
      caPem: ca.certPem,
      certPem: renewed.cert,
      keyPem: next.keyPem,
    }),
    new RegExp(`node ${joined.nodeId} is not part of the swarm`),
  );
});

// The cluster trusts only its own nodes (issue 14): a manager daemon and a worker that joins it
// with `shoal join`, on this machine. The certificates are files only their owner can read and
// name the node, its role and the cluster; the worker's agent is on the bus by its certificate
// alone; the bus's nodes' port refuses a connection without a certificate and one with a
// certificate of another CA (even naming the worker); a manager token cannot be used to join as
// a manager (the swarm's store is the embedded one); both nodes renew their certificates at 80% of a short --cert-expiry, and `swarm
// update --cert-expiry` sets the lifetime of the next ones; `node rm`
// refuses the removed node's certificate on new connections.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { connect, ErrorCode, type NatsError } from "nats";
import type { Info } from "../../src/api/http.js";
import type { Node } from "../../src/api/types.js";
import {
  certInfo,
  certPaths,
  createRootCa,
  issueNodeCert,
  newKeyAndCsr,
} from "../../src/manager/ca.js";
import { apiAt, checkFor, startDaemon } from "../helpers/daemon.js";
import { joinLocalWorker, nodePair, nodeTls } from "../helpers/pki.js";
import { defer } from "../helpers/defer.js";

const mode = (p: string) => statSync(p).mode & 0o777;

function checkFiles(dataDir: string): void {
  const p = certPaths(dataDir);
  assert.equal(mode(p.dir), 0o700, p.dir);
  for (const f of [p.ca, p.cert, p.key]) assert.equal(mode(f), 0o600, f);
}

test("a worker joins with the CA's token, is on the bus by its certificate, renews it, and loses it with node rm", async (t) => {
  const d = await startDaemon({ args: ["--cert-expiry", "4s"] });
  defer(t, () => d.cleanup());
  const info = await apiAt<Info>(d.dataDir, "/v1/info");
  checkFiles(d.dataDir);
  const mine = certInfo(readFileSync(certPaths(d.dataDir).cert, "utf8"));
  assert.equal(mine.nodeId, info.nodeId);
  assert.equal(mine.role, "manager");
  assert.match(mine.clusterId, /^[0-9a-z]{25}$/);

  const jt = await d.cli("swarm", "join-token", "worker");
  const [, token, addr] = /--token (\S+) (\S+)/.exec(jt.stdout) ?? [];
  assert.ok(token && addr, jt.stdout);
  const worker = await joinLocalWorker(t, token, addr);
  const wdir = worker.dir;
  checkFiles(wdir);
  const wid = worker.nodeId;
  const first = readFileSync(certPaths(wdir).cert, "utf8");
  assert.deepEqual(
    { ...certInfo(first), notBefore: 0, notAfter: 0 },
    { nodeId: wid, role: "worker", clusterId: mine.clusterId, notBefore: 0, notAfter: 0 },
  );
  assert.equal(worker.answer.busUser, `CN=${wid},OU=swarm-worker,O=${mine.clusterId}`);
  // Its agent is on the bus with that certificate: the worker is Ready.
  await checkFor(20_000, async () => {
    const nodes = await apiAt<Node[]>(d.dataDir, "/v1/nodes");
    return nodes.find((n) => n.id === wid)?.status === "ready";
  });

  // The nodes' port: no certificate, or a certificate of another CA naming the worker: refused.
  const busUrl = worker.answer.natsUrls[0]!;
  const caPem = readFileSync(certPaths(wdir).ca, "utf8");
  const handshakeErrors = () => d.log().match(/TLS handshake error/g)?.length ?? 0;
  const noCert = nodeTls({ ca: caPem });
  await assert.rejects(connect({ servers: busUrl, reconnect: false, tls: noCert }));
  await checkFor(5000, () => handshakeErrors() === 1);
  const other = await createRootCa(new Date());
  const forged = await newKeyAndCsr();
  const forgedCert = await issueNodeCert({ ...other, clusterId: mine.clusterId }, forged.csrPem, {
    nodeId: wid,
    role: "worker",
    addrs: ["127.0.0.1"],
    now: new Date(),
  });
  const forgedTls = nodeTls({ ca: caPem, cert: forgedCert, key: forged.keyPem });
  await assert.rejects(connect({ servers: busUrl, reconnect: false, tls: forgedTls }));
  await checkFor(5000, () => handshakeErrors() === 2);

  // (A manager token on this embedded-store swarm would move its state to etcd:
  // test/cluster/managed-etcd.test.ts.)

  // Both renew at 80% of the 4 s lifetime: the worker through the join port, with its
  // certificate; the worker stays Ready on the bus.
  await checkFor(15_000, () => /node certificate renewed/.test(d.log()), 100);
  await checkFor(
    15_000,
    () => /node certificate renewed/.test(readFileSync(join(wdir, "daemon.log"), "utf8")),
    100,
  );
  const renewed = readFileSync(certPaths(wdir).cert, "utf8");
  assert.notEqual(renewed, first);
  assert.equal(certInfo(renewed).nodeId, wid);
  assert.equal(certInfo(renewed).role, "worker");
  checkFiles(wdir);

  // swarm update --cert-expiry: the next renewal is for the new lifetime.
  const upd = await d.cli("swarm", "update", "--cert-expiry", "1h");
  assert.equal(upd.code, 0, upd.stderr);
  await checkFor(
    15_000,
    () => {
      const c = certInfo(readFileSync(certPaths(wdir).cert, "utf8"));
      return c.notAfter - c.notBefore > 3_600_000;
    },
    100,
  );

  // node rm: a new connection with the worker's (renewed, valid) certificate is refused.
  const workerTls = nodeTls({ ca: caPem, ...(await nodePair(wdir)) });
  const asWorker = { servers: busUrl, reconnect: false, tls: workerTls };
  const nc = await connect(asWorker);
  await nc.close();
  const rm = await d.cli("node", "rm", "--force", wid);
  assert.equal(rm.code, 0, rm.stderr);
  await assert.rejects(
    connect(asWorker),
    (e: NatsError) => e.code === ErrorCode.AuthorizationViolation,
  );
});

// `shoal swarm ca --rotate` (issue 14), on this machine: a manager with a TCP API (mutual TLS)
// and a worker that joined it. The rotation runs to its end as Docker's does — the worker renews
// from the new root while it still trusts only the old one (the managers serve the new root
// cross-signed by the old), the old root is dropped when both nodes have moved, and the worker
// renews again to trust the new root only; the CLI shows the progress and prints the new root.
// Afterwards the join tokens carry the new digest, a token with the old digest is refused
// before its secret is sent, and a client whose certificate is from the old root only is
// refused by the bus's nodes' port and by the TCP API.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import type { JoinResponse } from "../../src/api/http.js";
import type { Node } from "../../src/api/types.js";
import { caDigest, certPaths, signedBy, splitPem } from "../../src/manager/ca.js";
import { parseToken } from "../../src/api/token.js";
import { CaMismatchError, joinManager } from "../../src/daemon/worker-daemon.js";
import { apiAt, checkFor, runCliEnv, startDaemon } from "../helpers/daemon.js";
import { joinLocalWorker, nodePair, nodeTls } from "../helpers/pki.js";
import { SHOAL_BIN } from "../helpers/servers.js";
import { defer } from "../helpers/defer.js";

test("swarm ca --rotate moves every node to a new root; the old root is then refused", async (t) => {
  const d = await startDaemon({ args: ["--api-addr", "127.0.0.1:0", "--api-tls"] });
  defer(t, () => d.cleanup());
  const apiPort = /API listening on tcp:\/\/127\.0\.0\.1:(\d+) \(mutual TLS/.exec(d.log())?.[1];
  assert.ok(apiPort, d.log());

  const shown = await d.cli("swarm", "ca");
  assert.equal(shown.code, 0, shown.stderr);
  const oldRoot = shown.stdout.trim();
  assert.equal(splitPem(oldRoot).length, 1, shown.stdout);
  const oldDigest = caDigest(oldRoot);
  const oldToken = (await d.cli("swarm", "join-token", "-q", "worker")).stdout.trim();
  assert.equal(parseToken(oldToken)?.digest, oldDigest);
  const addr = (await apiAt<{ advertiseAddr: string }>(d.dataDir, "/v1/info")).advertiseAddr;

  const worker = await joinLocalWorker(t, oldToken, addr);
  const wdir = worker.dir;
  const wid = worker.nodeId;
  const busUrl = worker.answer.natsUrls[0]!;
  await checkFor(20_000, async () => {
    const nodes = await apiAt<Node[]>(d.dataDir, "/v1/nodes");
    return nodes.length === 2 && nodes.every((n) => n.tls?.certIssuer === oldDigest);
  });
  // What the old root issued: the worker's pair for the bus, the manager's for the TCP API.
  const oldWorker = await nodePair(wdir);
  const oldManager = await nodePair(d.dataDir);

  const rotated = await d.cli("swarm", "ca", "--rotate");
  assert.equal(rotated.code, 0, rotated.stderr + rotated.stdout);
  const out = rotated.stdout;
  assert.match(out, /^desired root digest: [0-9a-z]{50}\n/);
  assert.match(out, / {2}rotated TLS certificates: \[=+\] 2\/2 nodes\n/);
  assert.match(out, / {2}rotated CA certificates: {2}\[=+\] 2\/2 nodes\n/);
  const newRoot = splitPem(out).at(-1)!;
  assert.ok(newRoot, out);
  const newDigest = caDigest(newRoot);
  assert.notEqual(newDigest, oldDigest);
  assert.ok(out.includes(`desired root digest: ${newDigest}\n`), out);
  assert.equal((await d.cli("swarm", "ca")).stdout.trim(), newRoot);

  // Every node: a certificate from the new root, and trust in it alone.
  const nodes = await apiAt<Node[]>(d.dataDir, "/v1/nodes");
  for (const n of nodes) {
    assert.deepEqual(n.tls, { certIssuer: newDigest, trustRoots: [newDigest] }, n.id);
  }
  const w = await nodePair(wdir);
  assert.ok(signedBy(w.cert, newRoot));
  assert.deepEqual(splitPem(readFileSync(certPaths(wdir).ca, "utf8")).map(caDigest), [newDigest]);
  assert.ok(signedBy((await nodePair(d.dataDir)).cert, newRoot));
  assert.ok((await apiAt<Node[]>(d.dataDir, "/v1/nodes")).find((n) => n.id === wid));

  // The tokens carry the new digest; one with the old digest is refused by the joining node
  // itself, before it sends the secret.
  const newToken = (await d.cli("swarm", "join-token", "-q", "worker")).stdout.trim();
  assert.equal(parseToken(newToken)?.digest, newDigest);
  assert.equal(parseToken(newToken)?.secret, parseToken(oldToken)?.secret);
  await assert.rejects(
    joinManager(addr, { token: oldToken, hostname: "old", addr: "127.0.0.1" }),
    (e: Error) => e instanceof CaMismatchError && /the token was not sent/.test(e.message),
  );

  // A client that has only the old root's certificate: the bus refuses it in the handshake...
  const handshakeErrors = () => d.log().match(/TLS handshake error/g)?.length ?? 0;
  const before = handshakeErrors();
  const oldTls = nodeTls({ ca: newRoot, ...oldWorker });
  await assert.rejects(connect({ servers: busUrl, reconnect: false, tls: oldTls }));
  await checkFor(5000, () => handshakeErrors() > before);
  // ...while the worker's new pair is taken.
  const newTls = nodeTls({ ca: newRoot, ...w });
  const nc = await connect({ servers: busUrl, reconnect: false, tls: newTls });
  await nc.close();

  // ...and so does the TCP API (the manager's old certificate, in SHOAL_CERT_PATH).
  const certDir = mkdtempSync(join(tmpdir(), "shoal-oldcert-"));
  defer(t, () => rmSync(certDir, { recursive: true, force: true }));
  writeFileSync(join(certDir, "ca.pem"), newRoot);
  writeFileSync(join(certDir, "cert.pem"), oldManager.cert);
  writeFileSync(join(certDir, "key.pem"), oldManager.key);
  const env = {
    SHOAL_HOST: `tcp://127.0.0.1:${apiPort}`,
    SHOAL_TLS_VERIFY: "1",
    SHOAL_CERT_PATH: certDir,
  };
  const refused = await runCliEnv(env, ["node", "ls", "-q"]);
  assert.notEqual(refused.code, 0, refused.stdout);
  writeFileSync(join(certDir, "cert.pem"), (await nodePair(d.dataDir)).cert);
  writeFileSync(join(certDir, "key.pem"), (await nodePair(d.dataDir)).key);
  const ok = await runCliEnv(env, ["node", "ls", "-q"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.trim().split("\n").length, 2);

  // The worker restarts: its saved token names the old root, so it rejoins with the root it
  // trusts now (same secret), as the same node.
  const pid = Number(readFileSync(join(wdir, "daemon.pid"), "utf8"));
  process.kill(pid, "SIGTERM");
  await checkFor(20_000, () => !existsSync(join(wdir, "daemon.pid")));
  const log = openSync(join(wdir, "restart.log"), "a");
  const again = spawn(process.execPath, [SHOAL_BIN, "daemon", "--data-dir", wdir], {
    stdio: ["ignore", log, log],
    detached: true,
    env: { ...process.env, SHOAL_DATA_DIR: wdir },
  });
  again.unref();
  closeSync(log);
  await checkFor(20_000, () =>
    /ready: worker node/.test(readFileSync(join(wdir, "restart.log"), "utf8")),
  );
  const restarted = JSON.parse(readFileSync(join(wdir, "join.json"), "utf8")) as {
    token: string;
    answer: JoinResponse;
  };
  assert.equal(restarted.answer.nodeId, wid);
  assert.equal(parseToken(restarted.token)?.digest, newDigest);
});

// A manager on an external etcd that serves clients over TLS and asks for their certificates
// (issue 14): `--store etcds://...` with `--store-cacert`, `--store-cert`, `--store-key` (etcdctl's
// names) works, and its state is in that etcd; a file the daemon cannot read, a CA that is not the
// members', and no client certificate are each an error that says what is wrong.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRootCa, issueNodeCert, newKeyAndCsr, type CaMeta } from "../../src/manager/ca.js";
import { etcdClient } from "../../src/store/etcd.js";
import { etcdSkip, startEtcd } from "../helpers/etcd.js";
import { isolatedFlags, runCli, startDaemon } from "../helpers/daemon.js";
import { defer } from "../helpers/defer.js";

async function pair(ca: CaMeta, nodeId: string) {
  const { keyPem, csrPem } = await newKeyAndCsr();
  const cert = await issueNodeCert(ca, csrPem, {
    nodeId,
    role: "manager",
    addrs: ["127.0.0.1"],
    now: new Date(),
  });
  return { cert, key: keyPem };
}

/** `shoal daemon` in the foreground on a new data dir: it fails before it is ready. */
function failedStart(dir: string, store: string[]) {
  return runCli(dir, ["daemon", ...isolatedFlags(dir), ...store], 40_000);
}

describe("a manager on an etcd with TLS", { skip: etcdSkip() }, () => {
  test("works with --store-cacert/--store-cert/--store-key; says what is wrong otherwise", async (t) => {
    const files = mkdtempSync(join(tmpdir(), "shoal-etcd-tls-"));
    defer(t, () => rmSync(files, { recursive: true, force: true }));
    const ca = await createRootCa(new Date());
    const server = await pair(ca, "etcd");
    const client = await pair(ca, "client");
    const path = (name: string, data: string) => {
      const p = join(files, name);
      writeFileSync(p, data, { mode: 0o600 });
      return p;
    };
    const caFile = path("ca.pem", ca.certPem);
    const etcd = await startEtcd({
      tls: {
        ca: caFile,
        cert: path("server.pem", server.cert),
        key: path("server-key.pem", server.key),
        clientCertAuth: true,
      },
    });
    defer(t, () => etcd.stop());
    const url = etcd.endpoints[0]!;
    assert.match(url, /^https:\/\//);
    const store = `etcds://${url.slice("https://".length)}`;
    const certFile = path("client.pem", client.cert);
    const keyFile = path("client-key.pem", client.key);

    const d = await startDaemon({
      args: [
        "--store",
        store,
        "--store-cacert",
        caFile,
        "--store-cert",
        certFile,
        "--store-key",
        keyFile,
      ],
    });
    defer(t, () => d.cleanup());
    const ls = await d.cli("node", "ls", "-q");
    assert.equal(ls.code, 0, ls.stderr);
    // The swarm's state is in that etcd.
    const c = etcdClient({
      endpoints: etcd.endpoints,
      tls: { ca: ca.certPem, cert: client.cert, key: client.key },
    });
    defer(t, () => c.close());
    const nodes = await c.getAll().prefix("/shoal/node/").keys();
    assert.equal(nodes.length, 1);
    assert.ok(nodes[0]!.endsWith(ls.stdout.trim()), `${nodes.join()} vs ${ls.stdout}`);

    const dir = mkdtempSync(join(tmpdir(), "shoal-etcd-tls-d-"));
    defer(t, () => rmSync(dir, { recursive: true, force: true }));
    // A file it cannot read: named, with its flag.
    const missing = join(files, "nope.pem");
    const r1 = await failedStart(dir, ["--store", store, "--store-cacert", missing]);
    assert.notEqual(r1.code, 0);
    assert.match(r1.stderr, new RegExp(`cannot read --store-cacert ${missing} \\(ENOENT\\)`));
    // A CA that is not the members': the TLS failure says which flags to check.
    const other = await createRootCa(new Date());
    const otherCa = path("other-ca.pem", other.certPem);
    const r2 = await failedStart(dir, [
      "--store",
      store,
      "--store-cacert",
      otherCa,
      "--store-cert",
      certFile,
      "--store-key",
      keyFile,
    ]);
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /cannot use the etcd store at https:\/\/127\.0\.0\.1:\d+/);
    assert.match(r2.stderr, /Does --store-cacert name the CA of its certificates/);
    // No client certificate, where etcd asks for one.
    const r3 = await failedStart(dir, ["--store", store, "--store-cacert", caFile]);
    assert.notEqual(r3.code, 0);
    assert.match(r3.stderr, /cannot use the etcd store at https:\/\/127\.0\.0\.1:\d+/);
    // etcds:// without the CA, a certificate without its key: usage errors.
    const r4 = await failedStart(dir, ["--store", store]);
    assert.match(r4.stderr, /an etcds:\/\/ \(TLS\) store needs "--store-cacert"/);
    const r5 = await failedStart(dir, [
      "--store",
      store,
      "--store-cacert",
      caFile,
      "--store-cert",
      certFile,
    ]);
    assert.match(r5.stderr, /"--store-cert" and "--store-key" go together/);
  });
});

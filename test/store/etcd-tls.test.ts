// EtcdTlsSource (src/store/etcd-tls.ts), without etcd: it tells gRPC's listeners the TLS it has
// and each change, and refuses a change that would not make a TLS context (keeping what it
// had). That a client on it follows new files through a member's restart is tested with real
// etcd in test/daemon/etcd-member.test.ts.

import { test } from "node:test";
import assert from "node:assert/strict";
import { EtcdTlsSource } from "../../src/store/etcd-tls.js";
import { StoreError } from "../../src/store/errors.js";
import { createRootCa, issueNodeCert, newKeyAndCsr } from "../../src/manager/ca.js";

async function pair(nodeId: string) {
  const ca = await createRootCa(new Date());
  const { keyPem, csrPem } = await newKeyAndCsr();
  const cert = await issueNodeCert(ca, csrPem, {
    nodeId,
    role: "manager",
    addrs: ["127.0.0.1"],
    now: new Date(),
  });
  return { ca: ca.certPem, cert, key: keyPem };
}

const invalid = (err: unknown) => err instanceof StoreError && err.code === "ERR_INVALID";

test("an EtcdTlsSource tells its listeners each change and refuses a broken one", async () => {
  const first = await pair("one");
  const second = await pair("two");
  const source = new EtcdTlsSource(first);
  const cas: string[] = [];
  const certs: string[] = [];
  const onCa = (u: { caCertificate: Buffer } | null) => cas.push(String(u?.caCertificate));
  const onId = (u: { certificate: Buffer } | null) => certs.push(String(u?.certificate));
  source.addCaCertificateListener(onCa);
  source.addIdentityCertificateListener(onId);
  assert.deepEqual([cas, certs], [[first.ca], [first.cert]], "the current TLS at once");

  source.set(second);
  assert.deepEqual(
    [cas, certs],
    [
      [first.ca, second.ca],
      [first.cert, second.cert],
    ],
  );
  assert.equal(String(source.current.cert), second.cert);

  // A key that is not the certificate's, a certificate without its key, none at all: refused,
  // and the source keeps what it had.
  assert.throws(() => source.set({ ...second, key: first.key }), invalid);
  assert.throws(() => source.set({ ca: second.ca, cert: second.cert }), invalid);
  assert.throws(() => source.set({ ca: second.ca }), invalid);
  assert.equal(String(source.current.key), second.key);
  assert.equal(cas.length, 2);

  // A listener removed hears no more.
  source.removeCaCertificateListener(onCa);
  source.removeIdentityCertificateListener(onId);
  source.set(first);
  assert.equal(cas.length, 2);
  assert.equal(certs.length, 2);
});

// The cluster CA for in-process tests: one root CA per test process (in the store's `ca` meta
// key, as a daemon keeps it), a manager certificate for the join endpoint's TLS, a certificate
// request to join with, and the token that carries the CA's digest.

import {
  CA_META,
  caDigest,
  createRootCa,
  issueNodeCert,
  newKeyAndCsr,
  type CaMeta,
} from "../../src/manager/ca.js";
import type { JoinTls } from "../../src/manager/join.js";
import { makeToken } from "../../src/manager/ids.js";
import type { Store } from "../../src/store/store.js";

let ca: Promise<CaMeta> | undefined;
let csr: Promise<{ keyPem: string; csrPem: string }> | undefined;

export const testCa = (): Promise<CaMeta> => (ca ??= createRootCa(new Date()));
/** A certificate request (and its key) to join with. */
export const testCsr = () => (csr ??= newKeyAndCsr());

/** Puts the test CA in `store`. */
export async function storeCa(store: Store): Promise<CaMeta> {
  const c = await testCa();
  await store.update((tx) => tx.putMeta(CA_META, c));
  return c;
}

/** The join endpoint's TLS: a manager certificate for 127.0.0.1 from the test CA. */
export async function managerTls(): Promise<JoinTls> {
  const c = await testCa();
  const { keyPem, csrPem } = await newKeyAndCsr();
  const certPem = await issueNodeCert(c, csrPem, {
    nodeId: "mgr",
    role: "manager",
    addrs: ["127.0.0.1"],
    now: new Date(),
  });
  return { certPem, keyPem, caPem: c.certPem };
}

/** A join token of the test CA for a role secret. */
export async function testToken(secret: string): Promise<string> {
  return makeToken(caDigest((await testCa()).certPem), secret);
}

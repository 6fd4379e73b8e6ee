// The cluster CA for in-process tests: one root CA per test process (in the store's `ca` meta
// key, as a daemon keeps it), a manager certificate for the join endpoint's TLS, a certificate
// request to join with, and the token that carries the CA's digest. For tests with daemons: a
// node's TLS options for the bus, a node's certificate pair as on disk, a worker joined on
// loopback.

import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { TlsOptions } from "nats";
import {
  CA_META,
  certPaths,
  caDigest,
  createRootCa,
  issueNodeCert,
  newKeyAndCsr,
  type CaMeta,
} from "../../src/manager/ca.js";
import {
  JoinServer,
  type ClusterMeta,
  type JoinManagers,
  type JoinTls,
} from "../../src/manager/join.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { createMemoryStore } from "../../src/store/memory.js";
import { quietLog } from "./bus.js";
import { makeToken, newSecret } from "../../src/manager/ids.js";
import type { JoinResponse } from "../../src/api/http.js";
import { managerIdentity } from "../../src/daemon/worker-daemon.js";
import { checkFor, runCli } from "./daemon.js";
import { defer } from "./defer.js";
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

/**
 * A NATS client's TLS options as a node's: the cluster's root(s) and, if given, a certificate
 * and key; the server is checked as a manager of the swarm (managerIdentity), as agents do.
 */
export function nodeTls(pair: { ca: string; cert?: string; key?: string }): TlsOptions {
  const tls: TlsOptions = { ...pair };
  return Object.assign(tls, { checkServerIdentity: managerIdentity });
}

/** A node's certificate and key as last written whole (a renewal may be writing them). */
export async function nodePair(dataDir: string): Promise<{ cert: string; key: string }> {
  const pair = await checkFor(5000, () => {
    const p = certPaths(dataDir);
    const cert = readFileSync(p.cert, "utf8");
    const key = readFileSync(p.key, "utf8");
    return new X509Certificate(cert).checkPrivateKey(createPrivateKey(key)) && { cert, key };
  });
  return pair as { cert: string; key: string };
}

/** A worker daemon joined with `shoal join` on this machine (loopback), killed after the test. */
export interface LocalWorker {
  dir: string;
  nodeId: string;
  answer: JoinResponse;
}

export async function joinLocalWorker(
  t: TestContext,
  token: string,
  addr: string,
): Promise<LocalWorker> {
  const dir = mkdtempSync(join(tmpdir(), "shoal-worker-"));
  defer(t, () => {
    const pidFile = join(dir, "daemon.pid");
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, "utf8")), "SIGKILL");
      } catch {
        // gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const local = ["--advertise-addr", "127.0.0.1", "--publish-addr", "127.0.0.1"];
  const joined = await runCli(dir, ["join", "--token", token, "--data-dir", dir, ...local, addr]);
  assert.equal(joined.code, 0, joined.stderr + joined.stdout);
  const saved = JSON.parse(readFileSync(join(dir, "join.json"), "utf8")) as {
    answer: JoinResponse;
  };
  return { dir, nodeId: saved.answer.nodeId, answer: saved.answer };
}

/** A join endpoint over TLS on 127.0.0.1 in this process: a memory store with a new cluster's
 * secrets and the test CA, a manager on it; closed when the test ends. */
export interface JoinBed {
  meta: ClusterMeta;
  store: Store;
  ca: CaMeta;
  manager: Manager;
  server: JoinServer;
  /** `127.0.0.1:<port>` of the join endpoint. */
  addr: string;
}

export async function startJoinServer(
  t: TestContext,
  opts: { managers?: JoinManagers; setup?: (manager: Manager) => void } = {},
): Promise<JoinBed> {
  const meta: ClusterMeta = {
    secret: newSecret(),
    workerSecret: newSecret(),
    managerSecret: newSecret(),
    createdAt: 1,
  };
  const store = createMemoryStore();
  defer(t, () => store.close());
  await store.update((tx) => tx.putMeta("cluster", meta));
  const ca = await storeCa(store);
  const manager = new Manager(store, quietLog, defaultManagerOptions());
  opts.setup?.(manager);
  const server = new JoinServer(
    manager,
    () => ({ nodes: ["nats://127.0.0.1:4223"], apps: ["nats://127.0.0.1:4222"] }),
    () => 1000,
    undefined,
    opts.managers,
  );
  const port = await server.listen("127.0.0.1", 0, await managerTls());
  defer(t, () => server.close());
  return { meta, store, ca, manager, server, addr: `127.0.0.1:${port}` };
}

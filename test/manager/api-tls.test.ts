// The TCP API with mutual TLS (issue 14): only a manager's certificate from the swarm's CA, of a
// manager still in the swarm, may call it; no certificate, another CA's, a worker's or a removed
// manager's is refused with a message saying why. Real TLS on loopback, an in-process API.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:https";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { Api } from "../../src/manager/api.js";
import { tlsOptions } from "../../src/manager/join.js";
import { apiPeerRefusal, peerOf } from "../../src/manager/api-tls.js";
import { createRootCa, issueNodeCert, newKeyAndCsr, type CaMeta } from "../../src/manager/ca.js";
import type { NodeRole } from "../../src/api/types.js";
import { quietLog } from "../helpers/bus.js";
import { defer } from "../helpers/defer.js";
import { node } from "../store/helpers.js";

interface Pair {
  cert: string;
  key: string;
}

async function pair(ca: CaMeta, nodeId: string, role: NodeRole): Promise<Pair> {
  const { keyPem, csrPem } = await newKeyAndCsr();
  const cert = await issueNodeCert(ca, csrPem, {
    nodeId,
    role,
    addrs: ["127.0.0.1"],
    now: new Date(),
  });
  return { cert, key: keyPem };
}

function get(port: number, caPem: string, client: Pair | null) {
  return new Promise<{ status: number; json: { message?: string; code?: string } }>(
    (resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          path: "/v1/nodes",
          ca: caPem,
          ...(client ?? {}),
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (text += c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
        },
      );
      req.setTimeout(5000, () => req.destroy(new Error("no answer")));
      req.on("error", reject);
      req.end();
    },
  );
}

async function setup(t: TestContext) {
  const ca = await createRootCa(new Date());
  const store = createMemoryStore();
  const manager = new Manager(store, quietLog, defaultManagerOptions());
  defer(t, () => manager.stop());
  await store.update((tx) => {
    tx.putNode(node("m1", { role: "manager" }));
    tx.putNode(node("m2", { role: "manager" }));
    tx.putNode(node("w1", { role: "worker" }));
  });
  const api = new Api(manager, {
    info: () => {
      throw new Error("not used");
    },
    joinToken: async () => "",
    logs: async () => {},
    checkPortsFree: async () => {},
    leave: async () => {},
  });
  defer(t, () => api.close());
  const server = pair(ca, "m1", "manager");
  const s = await server;
  const srv = await api.listenTls(
    "127.0.0.1",
    0,
    { ...tlsOptions({ certPem: s.cert, keyPem: s.key, caPem: ca.certPem }), requestCert: true },
    (req) => apiPeerRefusal(peerOf(req), ca.clusterId, (id) => store.view((tx) => tx.getNode(id))),
  );
  const a = srv.address();
  const port = typeof a === "object" && a ? a.port : 0;
  return { ca, store, port };
}

describe("the TCP API with mutual TLS", () => {
  test("answers a manager's certificate from the swarm's CA", async (t) => {
    const { ca, port } = await setup(t);
    const r = await get(port, ca.certPem, await pair(ca, "m2", "manager"));
    assert.equal(r.status, 200);
    assert.deepEqual((r.json as unknown as { id: string }[]).map((n) => n.id).sort(), [
      "m1",
      "m2",
      "w1",
    ]);
  });

  test("refuses a client without a certificate, saying how to present one", async (t) => {
    const { ca, port } = await setup(t);
    const r = await get(port, ca.certPem, null);
    assert.equal(r.status, 401);
    assert.equal(r.json.code, "ERR_UNAUTHORIZED");
    assert.match(
      r.json.message!,
      /needs a client certificate from the swarm's CA: set SHOAL_TLS_VERIFY=1/,
    );
  });

  test("refuses a certificate from another CA", async (t) => {
    const { ca, port } = await setup(t);
    const other = await createRootCa(new Date());
    const r = await get(port, ca.certPem, await pair(other, "m2", "manager"));
    assert.equal(r.status, 401);
    assert.equal(
      r.json.message,
      "the client certificate is not from this swarm's certificate authority",
    );
  });

  test("refuses a worker's certificate", async (t) => {
    const { ca, port } = await setup(t);
    const r = await get(port, ca.certPem, await pair(ca, "w1", "worker"));
    assert.equal(r.status, 403);
    assert.equal(r.json.code, "ERR_FORBIDDEN");
    assert.equal(
      r.json.message,
      "the client certificate is a worker's (node w1): only a manager's certificate may use the API",
    );
  });

  test("refuses a removed or demoted manager's certificate at once", async (t) => {
    const { ca, store, port } = await setup(t);
    const m2 = await pair(ca, "m2", "manager");
    assert.equal((await get(port, ca.certPem, m2)).status, 200);
    await store.update((tx) => tx.putNode(node("m2", { role: "worker" })));
    const demoted = await get(port, ca.certPem, m2);
    assert.equal(demoted.status, 403);
    assert.equal(demoted.json.message, "node m2 is not a manager of this swarm");
    await store.update((tx) => tx.deleteNode("m2"));
    assert.equal((await get(port, ca.certPem, m2)).status, 403);
  });
});

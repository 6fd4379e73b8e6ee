// The join endpoint: its body is checked against the JoinRequest schema (400 naming the field,
// no node registered), errors have the API's one shape `{ message, code }` (403 ERR_TOKEN for a
// token of another cluster, 404 for other routes), and a good join answers a JoinResponse.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:https";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { JoinServer, type ClusterMeta } from "../../src/manager/join.js";
import { makeToken, newSecret } from "../../src/manager/ids.js";
import { JoinResponseSchema } from "../../src/api/http.js";
import { problems } from "../../src/api/schema.js";
import { quietLog } from "../helpers/bus.js";
import { defer } from "../helpers/defer.js";
import { managerTls, storeCa, testCsr, testToken } from "../helpers/pki.js";

const CSR = (await testCsr()).csrPem;

const META: ClusterMeta = {
  secret: newSecret(),
  workerSecret: newSecret(),
  managerSecret: newSecret(),
  createdAt: 1,
};

async function setup(t: TestContext) {
  const store = createMemoryStore();
  await store.update((tx) => tx.putMeta("cluster", META));
  await storeCa(store);
  const manager = new Manager(store, quietLog, defaultManagerOptions());
  const server = new JoinServer(
    manager,
    () => ({ nodes: ["nats://10.0.0.1:4223"], apps: ["nats://10.0.0.1:4222"] }),
    () => 1000,
  );
  const port = await server.listen("127.0.0.1", 0, await managerTls());
  defer(t, () => server.close());
  const post = (path: string, body: unknown) =>
    new Promise<{ status: number; json: unknown }>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          method: "POST",
          path,
          headers: { "Content-Type": "application/json" },
          rejectUnauthorized: false,
        },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => (text += c.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
        },
      );
      req.on("error", reject);
      req.end(typeof body === "string" ? body : JSON.stringify(body));
    });
  const nodes = () => store.view((tx) => tx.listNodes().length);
  return { post, nodes };
}

const worker = await testToken(META.workerSecret);

describe("join endpoint", () => {
  test("a bad body gets 400 naming the field, and no node is registered", async (t) => {
    const { post, nodes } = await setup(t);
    const cases: Array<[unknown, string]> = [
      [{ csr: CSR, token: 5, hostname: "h", addr: "10.0.0.2" }, "token must be a string"],
      [{ csr: CSR, token: worker, addr: "10.0.0.2" }, "hostname is required"],
      [
        { csr: CSR, token: worker, hostname: "h", addr: "10.0.0.2", role: "manager" },
        "role is not a known field",
      ],
      ["[1,2]", "body must be an object"],
    ];
    for (const [body, message] of cases) {
      const r = await post("/v1/swarm/join", body);
      assert.equal(r.status, 400);
      assert.deepEqual(r.json, { message, code: "ERR_INVALID" });
    }
    assert.equal(nodes(), 0);
  });

  test("a token of another cluster is 403 ERR_TOKEN; other paths 404, same shape", async (t) => {
    const { post, nodes } = await setup(t);
    const r = await post("/v1/swarm/join", {
      token: makeToken("0".repeat(50), META.workerSecret),
      csr: CSR,
      hostname: "h",
      addr: "10.0.0.2",
    });
    assert.equal(r.status, 403);
    assert.deepEqual(r.json, {
      message: "invalid join token: it belongs to another cluster",
      code: "ERR_TOKEN",
    });
    const nf = await post("/v1/services", {});
    assert.equal(nf.status, 404);
    assert.deepEqual(nf.json, {
      message: "no such endpoint: POST /v1/services",
      code: "ERR_NOT_FOUND",
    });
    assert.equal(nodes(), 0);
  });

  test("a good join registers the node and answers a JoinResponse", async (t) => {
    const { post, nodes } = await setup(t);
    const r = await post("/v1/swarm/join", {
      csr: CSR,
      token: worker,
      hostname: "h",
      addr: "10.0.0.2",
    });
    assert.equal(r.status, 200);
    assert.deepEqual(problems(JoinResponseSchema, r.json, "reply"), []);
    assert.equal((r.json as { role: string }).role, "worker");
    assert.equal(nodes(), 1);
  });
});

// The join port on the network (issue 9, item 8): bodies are bounded (a 400 MB body once took the
// manager to 1.3 GB), every refused join is logged with its source address, and an address that
// fails too often is answered 429 without its request being looked at, until its bucket refills.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:https";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import {
  FailureLimiter,
  JOIN_BODY_LIMIT,
  JoinServer,
  type ClusterMeta,
} from "../../src/manager/join.js";
import { newSecret } from "../../src/manager/ids.js";
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
const worker = await testToken(META.workerSecret);
const wrong = await testToken(newSecret());

async function setup(t: TestContext, burst = 3) {
  const store = createMemoryStore();
  await store.update((tx) => tx.putMeta("cluster", META));
  await storeCa(store);
  const warnings: string[] = [];
  const manager = new Manager(
    store,
    { ...quietLog, warn: (m: string) => warnings.push(m) },
    defaultManagerOptions(),
  );
  let now = 1_000_000;
  let notLeader: string | null = null;
  const limiter = new FailureLimiter({ burst, refillMs: 60_000, maxTracked: 100 }, () => now);
  const server = new JoinServer(
    manager,
    () => ({ nodes: ["nats://10.0.0.1:4223"], apps: ["nats://10.0.0.1:4222"] }),
    () => 1000,
    limiter,
    { store: () => null, notLeader: () => notLeader },
  );
  const port = await server.listen("127.0.0.1", 0, await managerTls());
  defer(t, () => server.close());
  const post = (body: string) =>
    new Promise<{ status: number; json: unknown }>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/v1/swarm/join",
          headers: { "Content-Type": "application/json" },
          rejectUnauthorized: false,
        },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => (text += c.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
        },
      );
      req.setTimeout(5000, () => req.destroy(new Error("no answer")));
      req.on("error", reject);
      req.end(body);
    });
  const join = (token: string) =>
    post(JSON.stringify({ csr: CSR, token, hostname: "w", addr: "10.0.0.2" }));
  return {
    post,
    join,
    warnings,
    advance: (ms: number) => (now += ms),
    /** Makes this manager a follower (joins answered 503, "ask the leader") or the leader. */
    follow: (why: string | null) => (notLeader = why),
    nodes: () => store.view((tx) => tx.listNodes().length),
  };
}

describe("join limits", () => {
  test("a body over 64 KiB is refused (413) before it is parsed", async (t) => {
    const s = await setup(t, 100);
    const body = JSON.stringify({
      csr: CSR,
      token: worker,
      hostname: "w",
      addr: "x".repeat(70_000),
    });
    assert.ok(body.length > JOIN_BODY_LIMIT);
    const r = await s.post(body);
    assert.equal(r.status, 413);
    assert.equal((r.json as { code: string }).code, "ERR_INVALID");
    assert.equal(s.nodes(), 0);
  });

  test("fields have bounded lengths", async (t) => {
    const s = await setup(t, 100);
    const r = await s.post(
      JSON.stringify({ csr: CSR, token: worker, hostname: "h".repeat(256), addr: "a" }),
    );
    assert.deepEqual(r.json, {
      message: "hostname must be at most 255 characters",
      code: "ERR_INVALID",
    });
  });

  test("a join the manager cannot take now (503: no leader, a move under way) is no failure", async (t) => {
    const s = await setup(t, 3);
    s.follow("this manager does not lead: join through the leader");
    for (let i = 0; i < 5; i++) assert.equal((await s.join(worker)).status, 503);
    assert.equal(s.warnings.length, 5, "each is still logged");
    s.follow(null);
    assert.equal((await s.join(worker)).status, 200);
    assert.equal(s.nodes(), 1);
  });

  test("failed joins are logged with the source address, then refused with 429", async (t) => {
    const s = await setup(t, 3);
    for (let i = 0; i < 3; i++) assert.equal((await s.join(wrong)).status, 403);
    assert.equal(s.warnings.length, 3);
    assert.match(
      s.warnings[0]!,
      /^join from (::ffff:)?127\.0\.0\.1 refused \(403\): invalid join token: it was rotated or is wrong$/,
    );
    assert.match(s.warnings[2]!, /further attempts from this address are refused for a while$/);
    // Now even a good token is refused unseen, and not logged again.
    const limited = await s.join(worker);
    assert.equal(limited.status, 429);
    assert.deepEqual(limited.json, {
      message: "too many failed joins from this address: try again later",
      code: "ERR_RATE_LIMITED",
    });
    assert.equal(s.nodes(), 0);
    assert.equal(s.warnings.length, 3);
    // One token comes back after a third of the refill period.
    s.advance(20_000);
    assert.equal((await s.join(worker)).status, 200);
    assert.equal(s.nodes(), 1);
  });

  test("a bad body counts as a failure too", async (t) => {
    const s = await setup(t, 2);
    assert.equal((await s.post("{not json")).status, 400);
    assert.equal((await s.post("[]")).status, 400);
    assert.equal((await s.post("{}")).status, 429);
    assert.match(s.warnings[0]!, /refused \(400\): invalid JSON body/);
  });
});

describe("FailureLimiter", () => {
  test("buckets per address, refilled over time, the oldest forgotten past maxTracked", () => {
    let now = 0;
    const l = new FailureLimiter({ burst: 2, refillMs: 1000, maxTracked: 2 }, () => now);
    assert.equal(l.failed("a"), true);
    assert.equal(l.failed("a"), false);
    assert.equal(l.allowed("a"), false);
    assert.equal(l.allowed("b"), true);
    now = 499;
    assert.equal(l.allowed("a"), false);
    now = 500;
    assert.equal(l.allowed("a"), true);
    l.failed("b");
    l.failed("c");
    assert.equal(l.size, 2);
    assert.equal(l.allowed("a"), true); // forgotten
  });
});

// Fuzzing the daemon API and the join endpoint (issue 9): random and mutated JSON bodies on every
// route, random paths (`//`, `%`, odd bytes) and methods, over a real socket. No request may
// crash the server or get a 5xx; the server still answers afterwards. Bounded: a fixed number of
// runs with the property tests' seed (test/helpers/property.ts).

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { connect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import fc from "fast-check";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { Api } from "../../src/manager/api.js";
import { FailureLimiter, JoinServer, type ClusterMeta } from "../../src/manager/join.js";
import { newSecret } from "../../src/manager/ids.js";
import { apiRoutes, joinRoutes, type RouteSchema } from "../../src/api/http.js";
import { defaultServiceSpec } from "../../src/api/types.js";
import { quietLog } from "../helpers/bus.js";
import { defer } from "../helpers/defer.js";
import { managerTls, storeCa, testCsr, testToken } from "../helpers/pki.js";

const CSR = (await testCsr()).csrPem;
import { propertyParams } from "../helpers/property.js";
import { node } from "../store/helpers.js";

const META: ClusterMeta = {
  secret: newSecret(),
  workerSecret: newSecret(),
  managerSecret: newSecret(),
  createdAt: 1,
};

/** One raw HTTP/1.1 request; resolves with the status code (0: the connection closed early) once
 * the answer ends, or once the headers of a 200 without a length are in (a stream: GET
 * /v1/events may never end). */
function raw(
  port: number,
  method: string,
  path: string,
  body: string,
  secure = false,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = secure
      ? tlsConnect({ port, host: "127.0.0.1", rejectUnauthorized: false })
      : connect(port, "127.0.0.1");
    let text = "";
    s.setTimeout(5000, () => s.destroy(new Error(`no answer to ${method} ${path}`)));
    s.on(secure ? "secureConnect" : "connect", () => {
      const len = Buffer.byteLength(body);
      s.write(
        `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${len}\r\n\r\n${body}`,
      );
    });
    s.on("data", (c: Buffer) => {
      text += c.toString("latin1");
      const head = /^HTTP\/1\.1 200 [^]*?\r\n\r\n/.exec(text)?.[0];
      if (head !== undefined && !/content-length:/i.test(head)) {
        resolve(200);
        s.destroy();
      }
    });
    s.on("end", () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve(m ? Number(m[1]) : 0);
    });
    s.on("error", reject);
  });
}

async function servers(t: TestContext) {
  const store = createMemoryStore();
  await storeCa(store);
  await store.update((tx) => {
    tx.putMeta("cluster", META);
    tx.putNode(node("n1", { role: "manager" }));
  });
  const errors: string[] = [];
  const log = { ...quietLog, error: (m: string) => errors.push(m) };
  const manager = new Manager(store, log, defaultManagerOptions());
  defer(t, () => manager.stop());
  await manager.createService({ ...defaultServiceSpec("web"), command: ["sleep", "1"] });
  const api = new Api(manager, {
    info: () => ({
      nodeId: "n1",
      advertiseAddr: "127.0.0.1:2377",
      version: "test",
      dataDir: "/tmp",
      natsUrl: "nats://127.0.0.1:4222",
      managers: 1,
      nodes: 1,
      services: 1,
      tasks: 0,
      running: 0,
      pid: process.pid,
      heartbeats: 0,
      passes: 0,
      invalidServices: [],
    }),
    joinToken: async () => "token",
    logs: async () => {},
    checkPortsFree: async () => {},
    leave: async () => {},
  });
  defer(t, () => api.close());
  const apiPort = await api.listenTcp("127.0.0.1", 0);
  // The fuzzer fails many joins from one address: no rate limit here (tested in join-limits).
  const join = new JoinServer(
    manager,
    () => ({ nodes: ["nats://127.0.0.1:4223"], apps: ["nats://127.0.0.1:4222"] }),
    () => 1000,
    new FailureLimiter({ burst: 1e9, refillMs: 1, maxTracked: 10 }),
  );
  defer(t, () => join.close());
  const joinPort = await join.listen("127.0.0.1", 0, await managerTls());
  return { apiPort, joinPort, errors };
}

const json = fc.jsonValue({ maxDepth: 4 });

/** A valid body of a route, with one part replaced by something random. */
function mutated(valid: Record<string, unknown>): fc.Arbitrary<unknown> {
  const keys = Object.keys(valid);
  return fc
    .record({ key: fc.constantFrom(...keys, "extra"), value: json })
    .map(({ key, value }) => ({
      ...valid,
      [key]: value,
    }));
}

const spec = { ...defaultServiceSpec("fuzz"), command: ["sleep", "1"] };
const specMutations = fc
  .record({ key: fc.constantFrom(...Object.keys(spec)), value: json })
  .map(({ key, value }) => ({ spec: { ...spec, [key]: value } }));

const pathChars = fc.constantFrom(..."/%?&=.:@[]#~ab1_- \u00e9".split(""));
const paths = fc.oneof(
  fc.constantFrom(
    "//",
    "//x",
    "/%",
    "/%zz",
    "/v1/services/%E0%A4%A",
    "/v1/services/web?tail=%",
    "*",
    "http://[",
    "/v1/nodes/../..",
  ),
  fc.string({ unit: pathChars, maxLength: 30 }).map((s) => "/" + s.replace(/ /g, "%20")),
  fc
    .constantFrom(...Object.values(apiRoutes).map((r) => r.url))
    .chain((u) =>
      fc
        .string({ unit: pathChars, maxLength: 8 })
        .map((s) => u.replace(":ref", "web" + s).replace(":role", "worker")),
    )
    .map((p) => p.replace(/ /g, "%20")),
);
const bodies = fc.oneof(
  json.map((v) => JSON.stringify(v)),
  specMutations.map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 40 }),
  fc.constant(""),
  fc.constant("{"),
);
const methods = fc.constantFrom("GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD");

test("fuzzed API requests: no crash, no 5xx", async (t) => {
  const s = await servers(t);
  await fc.assert(
    fc.asyncProperty(methods, paths, bodies, async (method, path, body) => {
      // No route that stops the daemon (leave is a hook here); a stream counts once it starts.
      const status = await raw(s.apiPort, method, path, body);
      assert.ok(status >= 200 && status < 500, `${method} ${path} ${body}: ${status}`);
    }),
    propertyParams(300),
  );
  assert.deepEqual(s.errors, []);
  assert.equal(await raw(s.apiPort, "GET", "/v1/info", ""), 200);
});

test("mutated JSON bodies on every body route: refused or done, never 5xx", async (t) => {
  const s = await servers(t);
  const routes = (Object.values(apiRoutes) as RouteSchema[]).filter((r) => r.body);
  const body = fc.oneof(
    specMutations,
    mutated({ replicas: 2 }),
    mutated({ heartbeatMs: 500 }),
    mutated({ availability: "active" }),
    json,
  );
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...routes), body, async (r, b) => {
      const path = r.url.replace(":ref", r.url.includes("nodes") ? "n1" : "web");
      const status = await raw(s.apiPort, r.method, path, JSON.stringify(b));
      assert.ok(
        status >= 200 && status < 500,
        `${r.method} ${path} ${JSON.stringify(b)}: ${status}`,
      );
    }),
    propertyParams(300),
  );
  assert.deepEqual(s.errors, []);
});

test("fuzzed join requests: no crash, no 5xx", async (t) => {
  const s = await servers(t);
  const valid = {
    token: await testToken(META.workerSecret),
    csr: CSR,
    hostname: "w",
    addr: "10.0.0.2",
  };
  const body = fc.oneof(
    mutated(valid).map((v) => JSON.stringify(v)),
    bodies,
  );
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(fc.constant(joinRoutes.join.url), paths),
      methods,
      body,
      async (path, method, b) => {
        const status = await raw(s.joinPort, method, path, b, true);
        assert.ok(status >= 200 && status < 500, `${method} ${path} ${b}: ${status}`);
      },
    ),
    propertyParams(300),
  );
  assert.deepEqual(s.errors, []);
});

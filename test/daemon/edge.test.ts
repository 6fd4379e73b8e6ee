// The node's edge: what the heartbeat takes for the autoscaler is the router's requests and the
// mesh's new connections, summed per service; and its traffic figures for /metrics.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, request } from "node:http";
import { createConnection, type AddressInfo } from "node:net";
import { NodeEdge } from "../../src/daemon/edge.js";
import { silentLogger } from "../../src/lib/log.js";
import { freePort } from "../helpers/cluster.js";

function get(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, headers: { Host: host }, agent: false }, (r) => {
      r.resume();
      r.on("end", () => resolve(r.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end();
  });
}

/** One connection through the mesh: a request, its whole answer, then closed. */
function viaMesh(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = createConnection({ host: "127.0.0.1", port });
    c.on("data", () => {});
    c.on("close", () => resolve());
    c.on("error", reject);
    c.write("GET / HTTP/1.0\r\n\r\n");
  });
}

test("the heartbeat's request counts: router requests plus mesh connections, per service", async (t) => {
  const app = createServer((_q, r) => r.end("ok"));
  await new Promise<void>((r) => app.listen(0, "127.0.0.1", r));
  t.after(() => {
    app.closeAllConnections();
    app.close();
  });
  const appPort = (app.address() as AddressInfo).port;
  const edge = new NodeEdge({
    publishHost: "127.0.0.1",
    httpAddr: "127.0.0.1:0",
    httpAccessLog: false,
    ownHost: "10.255.255.1",
    log: silentLogger,
  });
  t.after(() => edge.close());
  await edge.start();
  const backend = { host: "127.0.0.1", port: appPort };
  edge.routes({
    routes: [
      {
        service: "web",
        serviceId: "s-web",
        router: "web",
        rule: "Host(`web.test`)",
        priority: 1,
        backends: [backend],
      },
    ],
  });
  const [webPort, dbPort] = [await freePort(), await freePort()];
  await edge.mesh.sync(
    new Map([
      [webPort, [{ ...backend, serviceId: "s-web", service: "web" }]],
      [dbPort, [{ ...backend, serviceId: "s-db", service: "db" }]],
    ]),
  );
  for (let i = 0; i < 3; i++) assert.equal(await get(edge.httpPort, "web.test"), 200);
  for (let i = 0; i < 2; i++) await viaMesh(webPort);
  await viaMesh(dbPort);
  const sorted = edge.takeRequestCounts().sort((x, y) => (x.serviceId < y.serviceId ? -1 : 1));
  assert.deepEqual(sorted, [
    { serviceId: "s-db", count: 1 },
    { serviceId: "s-web", count: 5 },
  ]);
  assert.deepEqual(edge.takeRequestCounts(), [], "taken: counting starts again");
  const traffic = edge.traffic();
  assert.deepEqual(
    traffic.router.map((r) => [r.service, r.serviceId, r.requests, r.latency.count]),
    [["web", "s-web", 3, 3]],
  );
  assert.deepEqual(traffic.mesh.map((m) => [m.service, m.connections]).sort(), [
    ["db", 1],
    ["web", 2],
  ]);
});

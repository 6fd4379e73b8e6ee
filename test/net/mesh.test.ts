// The routing mesh on loopback: round robin over the backends of a published port, listeners
// opened and closed by sync(), a port without backends or with a dead backend closes the
// client's connection; connections and bytes counted per service; and meshBackends, which maps
// this node's own endpoints to loopback.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createConnection, createServer, type Server } from "node:net";
import { RoutingMesh, type Backend } from "../../src/net/mesh.js";
import { meshBackends } from "../../src/daemon/state.js";
import { silentLogger } from "../../src/lib/log.js";
import { freePort } from "../helpers/cluster.js";

/** A TCP server that answers every connection with its name and closes. */
async function named(name: string): Promise<{ server: Server; backend: Backend }> {
  const server = createServer((s) => s.end(name));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const a = server.address();
  return { server, backend: { host: "127.0.0.1", port: typeof a === "object" && a ? a.port : 0 } };
}

/** Connects to the port and reads until the peer closes ("" when closed without data). */
function read(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection({ host: "127.0.0.1", port });
    let text = "";
    c.on("data", (d: Buffer) => (text += d.toString()));
    c.on("close", () => resolve(text));
    c.on("error", reject);
  });
}

test("round robin over the backends, in order", async (t) => {
  const servers = await Promise.all(["a", "b", "c"].map(named));
  t.after(() => servers.forEach((s) => s.server.close()));
  const mesh = new RoutingMesh(silentLogger, "127.0.0.1");
  t.after(() => mesh.close());
  const port = await freePort();
  await mesh.sync(new Map([[port, servers.map((s) => s.backend)]]));
  const got: string[] = [];
  for (let i = 0; i < 6; i++) got.push(await read(port));
  assert.deepEqual(got, ["a", "b", "c", "a", "b", "c"]);
});

test("sync opens new published ports, closes dropped ones, and swaps backends in place", async (t) => {
  const [a, b] = await Promise.all(["a", "b"].map(named));
  t.after(() => [a, b].forEach((s) => s!.server.close()));
  const mesh = new RoutingMesh(silentLogger, "127.0.0.1");
  t.after(() => mesh.close());
  const [p1, p2] = [await freePort(), await freePort()];
  await mesh.sync(new Map([[p1, [a!.backend]]]));
  assert.equal(await read(p1), "a");
  await mesh.sync(
    new Map([
      [p1, [b!.backend]],
      [p2, [a!.backend]],
    ]),
  );
  assert.equal(await read(p1), "b", "the same listener, new backends");
  assert.equal(await read(p2), "a");
  await mesh.sync(new Map([[p2, [a!.backend]]]));
  await assert.rejects(read(p1), /ECONNREFUSED/, "a dropped port is closed");
});

test("no backend, or a backend that refuses: the client's connection is closed", async (t) => {
  const mesh = new RoutingMesh(silentLogger, "127.0.0.1");
  t.after(() => mesh.close());
  const [empty, dead] = [await freePort(), await freePort()];
  await mesh.sync(
    new Map([
      [empty, []],
      [dead, [{ host: "127.0.0.1", port: await freePort() }]],
    ]),
  );
  assert.equal(await read(empty), "");
  assert.equal(await read(dead), "");
});

/** A TCP server that echoes what it reads and closes when the client does. */
async function echo(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const a = server.address();
  return { server, port: typeof a === "object" && a ? a.port : 0 };
}

/** Sends `text` through the port, reads the echo of all of it, then closes. */
function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection({ host: "127.0.0.1", port });
    let got = "";
    c.on("data", (d: Buffer) => {
      got += d.toString();
      if (got.length >= text.length) c.end();
    });
    c.on("close", () => resolve(got));
    c.on("error", reject);
    c.write(text);
  });
}

test("connections and bytes are counted per service; new connections are taken once", async (t) => {
  const e = await echo();
  t.after(() => e.server.close());
  const mesh = new RoutingMesh(silentLogger, "127.0.0.1");
  t.after(() => mesh.close());
  const [web, anon, empty] = [await freePort(), await freePort(), await freePort()];
  const b = { host: "127.0.0.1", port: e.port };
  await mesh.sync(
    new Map([
      [web, [{ ...b, serviceId: "s-web", service: "web" }]],
      [anon, [b]],
      [empty, []],
    ]),
  );
  for (let i = 0; i < 3; i++) assert.equal(await roundTrip(web, "hello"), "hello");
  assert.equal(await roundTrip(anon, "0123456789"), "0123456789");
  assert.equal(await read(empty), "", "no backend: not counted");
  const byId = <T extends { serviceId: string }>(s: T[]) =>
    [...s].sort((x, y) => (x.serviceId < y.serviceId ? -1 : 1));
  // Exact by now: the mesh counts a chunk before it passes it on, and every echo came back.
  assert.deepEqual(
    byId(mesh.stats()).map(({ taken: _t, ...m }) => m),
    [
      {
        serviceId: `port:${anon}`,
        service: `port:${anon}`,
        connections: 1,
        bytesIn: 10,
        bytesOut: 10,
      },
      { serviceId: "s-web", service: "web", connections: 3, bytesIn: 15, bytesOut: 15 },
    ],
  );
  assert.deepEqual(byId(mesh.takeConnectionCounts()), [
    { serviceId: `port:${anon}`, count: 1 },
    { serviceId: "s-web", count: 3 },
  ]);
  assert.deepEqual(mesh.takeConnectionCounts(), [], "taken: counting starts again");
  await roundTrip(web, "x");
  assert.deepEqual(mesh.takeConnectionCounts(), [{ serviceId: "s-web", count: 1 }]);
});

test("meshBackends: this node's own endpoints over loopback, others as they are", () => {
  const map = meshBackends(
    {
      "8080": [
        { host: "10.0.0.1", port: 31000, serviceId: "s1", service: "web" },
        { host: "10.0.0.2", port: 32000 },
      ],
      "9090": [],
    },
    "10.0.0.1",
  );
  assert.deepEqual(
    [...map],
    [
      [
        8080,
        [
          { host: "127.0.0.1", port: 31000, serviceId: "s1", service: "web" },
          { host: "10.0.0.2", port: 32000 },
        ],
      ],
      [9090, []],
    ],
  );
});

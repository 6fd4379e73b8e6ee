// The HTTP monitoring endpoints of shoal's message server (/varz, /connz, /subsz, /routez,
// /healthz) fetched over HTTP while `nats` clients connect, subscribe and publish: the fields
// nats-server's tools read, paging and sorting, closed connections, and counters that move.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { StringCodec } from "nats";
import { Server } from "../../src/nats/server.js";
import { checkFor, useServer, useClient } from "../helpers/servers.js";
import { clientUrl, clusterOpts, createCluster, defer, monitorGet } from "../helpers/cluster.js";
import { defaultOptions, validateOptions } from "../../src/nats/options.js";
import { ServerLogger } from "../../src/nats/log.js";
import { clientUrlsFor } from "../../src/nats/cluster.js";

const sc = StringCodec();

type Json = Record<string, unknown>;

interface ConnInfo {
  cid: number;
  name?: string;
  lang?: string;
  in_msgs: number;
  out_msgs: number;
  in_bytes: number;
  subscriptions: number;
  subscriptions_list?: string[];
  subscriptions_list_detail?: Array<{
    subject: string;
    sid: string;
    msgs: number;
    qgroup?: string;
  }>;
  reason?: string;
  stop?: string;
}

interface Connz {
  server_id: string;
  num_connections: number;
  total: number;
  offset: number;
  limit: number;
  connections: ConnInfo[];
}

const server = (t: TestContext) => useServer(t, { httpPort: -1 });
const client = (t: TestContext, s: Server, name: string) =>
  useClient(t, s.port, { name, reconnect: false });

async function get<T = Json>(s: Server, path: string, status = 200): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${s.monitor!.port}${path}`);
  assert.equal(res.status, status, `${path} -> ${res.status}`);
  assert.match(res.headers.get("content-type") ?? "", /application\/json/);
  return (await res.json()) as T;
}

describe("monitoring endpoints", () => {
  test("/varz fields and counters that move with traffic", async (t) => {
    const s = await server(t);
    const v0 = await get(s, "/varz");
    assert.equal(v0["server_id"], s.id);
    assert.equal(typeof v0["version"], "string");
    assert.match(v0["version"] as string, /^\d+\.\d+\.\d+/);
    assert.equal(v0["port"], s.port);
    assert.equal(v0["http_port"], s.monitor!.port);
    assert.equal(v0["max_payload"], 1024 * 1024);
    assert.equal(v0["connections"], 0);
    assert.equal(v0["in_msgs"], 0);
    assert.equal(v0["out_msgs"], 0);
    assert.equal(v0["subscriptions"], 0);
    assert.ok((v0["mem"] as number) > 0, "mem is the RSS in bytes");
    assert.equal(typeof v0["uptime"], "string");
    assert.ok(!Number.isNaN(Date.parse(v0["start"] as string)));

    const a = await client(t, s, "a");
    const b = await client(t, s, "b");
    b.subscribe("v.>");
    b.subscribe("v.one");
    await b.flush();
    for (let i = 0; i < 4; i++) a.publish("v.one", sc.encode("12345"));
    await a.flush();
    await checkFor(2000, () => s.outMsgs === 8);
    const v1 = await get(s, "/varz");
    assert.equal(v1["connections"], 2);
    assert.equal(v1["total_connections"], 2);
    assert.equal(v1["subscriptions"], 2);
    assert.equal(v1["in_msgs"], 4);
    assert.equal(v1["in_bytes"], 20);
    assert.equal(v1["out_msgs"], 8);
    assert.equal(v1["out_bytes"], 40);
    assert.equal(v1["slow_consumers"], 0);
    assert.deepEqual(v1["http_req_stats"], { "/varz": 1 });
  });

  test("/connz: subs, subs=detail, sort, limit/offset, closed connections", async (t) => {
    const s = await server(t);
    const c1 = await client(t, s, "c1");
    const c2 = await client(t, s, "c2");
    const c3 = await client(t, s, "c3");
    c1.subscribe("one");
    c1.subscribe("two", { queue: "q" });
    c3.subscribe("one");
    await Promise.all([c1.flush(), c3.flush()]);
    for (let i = 0; i < 3; i++) c1.publish("one", sc.encode("x"));
    for (let i = 0; i < 7; i++) c2.publish("one", sc.encode("y"));
    await Promise.all([c1.flush(), c2.flush(), c3.flush()]);
    await checkFor(2000, () => s.outMsgs === 20);

    const all = await get<Connz>(s, "/connz");
    assert.equal(all.server_id, s.id);
    assert.equal(all.num_connections, 3);
    assert.equal(all.total, 3);
    assert.deepEqual(
      all.connections.map((c) => [c.name, c.lang, c.subscriptions, c.in_msgs, c.out_msgs]),
      [
        ["c1", "nats.js", 2, 3, 10],
        ["c2", "nats.js", 0, 7, 0],
        ["c3", "nats.js", 1, 0, 10],
      ],
    );
    assert.equal(all.connections[0]!.subscriptions_list, undefined);

    const subs = await get<Connz>(s, "/connz?subs=1");
    assert.deepEqual(subs.connections[0]!.subscriptions_list!.sort(), ["one", "two"]);
    assert.deepEqual(subs.connections[1]!.subscriptions_list, []);

    const detail = await get<Connz>(s, "/connz?subs=detail");
    const d = detail.connections[0]!.subscriptions_list_detail!;
    assert.deepEqual(d.map((x) => [x.subject, x.qgroup, x.msgs]).sort(), [
      ["one", undefined, 10],
      ["two", "q", 0],
    ]);
    assert.ok(d.every((x) => typeof x.sid === "string" && x.sid !== ""));

    const byFrom = await get<Connz>(s, "/connz?sort=msgs_from");
    assert.deepEqual(
      byFrom.connections.map((c) => c.name),
      ["c2", "c1", "c3"],
    );

    const page = await get<Connz>(s, "/connz?sort=msgs_from&limit=1&offset=1");
    assert.equal(page.num_connections, 1);
    assert.equal(page.total, 3);
    assert.equal(page.offset, 1);
    assert.equal(page.limit, 1);
    assert.equal(page.connections[0]!.name, "c1");

    const bad = await get<Json>(s, "/connz?sort=bogus", 400);
    assert.match(String(bad["error"]), /bogus/);

    await c2.close();
    await checkFor(2000, () => s.clients.size === 2);
    const closed = await get<Connz>(s, "/connz?state=closed");
    assert.equal(closed.num_connections, 1);
    assert.equal(closed.connections[0]!.name, "c2");
    assert.equal(closed.connections[0]!.reason, "Client Closed");
    assert.ok(!Number.isNaN(Date.parse(closed.connections[0]!.stop!)));
    assert.equal((await get<Connz>(s, "/connz")).total, 2);
    assert.equal((await get<Connz>(s, "/connz?state=any")).total, 3);
  });

  test("/subsz, /routez, /healthz", async (t) => {
    const s = await server(t);
    const nc = await client(t, s, "subs");
    nc.subscribe("a.b");
    nc.subscribe("a.*", { queue: "workers" });
    nc.subscribe("c.>");
    await nc.flush();

    const subsz = await get(s, "/subsz");
    assert.equal(subsz["server_id"], s.id);
    assert.equal(subsz["num_subscriptions"], 3);
    assert.equal(subsz["subscriptions_list"], undefined);
    const list = await get<{ total: number; subscriptions_list: Array<Json> }>(s, "/subsz?subs=1");
    assert.equal(list.total, 3);
    assert.deepEqual(list.subscriptions_list.map((x) => [x["subject"], x["qgroup"]]).sort(), [
      ["a.*", "workers"],
      ["a.b", undefined],
      ["c.>", undefined],
    ]);
    const tested = await get<{ total: number }>(s, "/subsz?subs=1&test=a.x");
    assert.equal(tested.total, 1);

    nc.publish("a.b", sc.encode("m"));
    await nc.flush();
    const after = await get(s, "/subsz");
    assert.ok((after["num_matches"] as number) >= 1);

    const routez = await get(s, "/routez");
    assert.equal(routez["num_routes"], 0);
    assert.deepEqual(routez["routes"], []);

    assert.deepEqual(await get(s, "/healthz"), { status: "ok" });
    const missing = await fetch(`http://127.0.0.1:${s.monitor!.port}/nope`);
    assert.equal(missing.status, 404);
    await missing.arrayBuffer();
  });
});

describe("cluster monitoring and logs, as nats-server", () => {
  test("/routez rtt is measured; /varz connect_urls lists the cluster's client URLs", async (t) => {
    const [a, b] = await createCluster(t, 2);
    const rtt = await checkFor(5000, () => {
      const r = a!.routeInfos(false)[0]?.["rtt"] as string | undefined;
      return r !== undefined && r !== "0s" ? r : "";
    });
    assert.match(rtt, /^\d+(\.\d+)?(ns|µs|ms|s)$/);
    const varz = await monitorGet<{ connect_urls?: string[] }>(a!.monitor!.port, "/varz");
    assert.deepEqual(varz.connect_urls?.sort(), [clientUrl(a!), clientUrl(b!)].sort());
    const alone = await server(t);
    assert.equal((await get(alone, "/varz"))["connect_urls"], undefined, "no cluster, none");
  });

  test("a generated cluster name is warned about", async (t) => {
    const lines: string[] = [];
    const opts = validateOptions({
      ...defaultOptions(),
      host: "127.0.0.1",
      port: -1,
      cluster: clusterOpts([], { name: "" }),
    });
    const s = new Server(opts, new ServerLogger({ sink: (l) => lines.push(l) }));
    defer(t, () => s.shutdown());
    await s.startServer();
    const i = lines.findIndex((l) => /\[INF\] Cluster name is /.test(l));
    assert.ok(i >= 0, lines.join("\n"));
    assert.match(
      lines[i + 1]!,
      /\[WRN\] Cluster name was dynamically generated, consider setting one$/,
    );
  });

  test("client URLs of a wildcard host: none on a machine with only loopback", () => {
    const lo = { lo: [{ address: "127.0.0.1", internal: true, family: "IPv4" }] };
    const eth = {
      ...lo,
      eth0: [
        { address: "10.1.2.3", internal: false, family: "IPv4" },
        { address: "fe80::1", internal: false, family: "IPv6" },
      ],
    };
    type Ifaces = Parameters<typeof clientUrlsFor>[3];
    assert.deepEqual(clientUrlsFor("0.0.0.0", 4222, "", lo as unknown as Ifaces), []);
    assert.deepEqual(clientUrlsFor("0.0.0.0", 4222, "", eth as unknown as Ifaces), [
      "10.1.2.3:4222",
    ]);
    assert.deepEqual(clientUrlsFor("127.0.0.1", 4222, "", lo as unknown as Ifaces), [
      "127.0.0.1:4222",
    ]);
  });
});

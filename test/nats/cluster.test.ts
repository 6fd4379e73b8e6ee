// Integration tests of shoal's clustering with the official `nats` client: servers that route
// only to a seed gossip their way to a full mesh; messages, queue groups and requests cross it;
// interest propagation keeps unwanted messages off the routes; clients learn every server from
// connect_urls and fail over; the mesh heals after the seed restarts; duplicate routes collapse
// to one; mismatched cluster names refuse each other; --no_advertise hides cluster members.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import {
  connect,
  createInbox,
  Events,
  StringCodec,
  type ConnectionOptions,
  type Msg,
  type NatsConnection,
  type Subscription as NatsSubscription,
} from "nats";
import type { Server } from "../../src/nats/server.js";
import {
  checkFor,
  goServerPath,
  RawConn,
  runGoServer,
  runServer,
  startServer,
} from "../helpers/servers.js";
import {
  clientUrl,
  clusterOpts,
  createCluster,
  defer,
  freePort,
  routePortOf,
  routeUrl,
  routez,
  startClusterServer,
  waitClusterFormed,
  waitRoutez,
  waitRoutezInterest,
} from "../helpers/cluster.js";

const sc = StringCodec();

async function client(
  t: TestContext,
  servers: string | string[],
  opts: Partial<ConnectionOptions> = {},
): Promise<NatsConnection> {
  const nc = await connect({
    servers,
    reconnectTimeWait: 50,
    maxReconnectAttempts: -1,
    ...opts,
  });
  defer(t, () => nc.close());
  return nc;
}

/** Records every message of a subscription as it arrives. */
function record(sub: NatsSubscription): string[] {
  const got: string[] = [];
  void (async () => {
    for await (const m of sub) got.push(sc.decode(m.data));
  })();
  return got;
}

/** Waits until s has remote interest in `subject` from `routes` routes (default: any). */
async function waitRemoteInterest(s: Server, subject: string, routes = 1): Promise<void> {
  await checkFor(3000, () => {
    const n = s
      .routeInfos(true)
      .filter((r) => (r["subscriptions_list"] as string[]).includes(subject)).length;
    return n >= routes;
  });
}

/** The sum of a field over a server's routes. */
function routeSum(s: Server, field: "in_msgs" | "out_msgs"): number {
  return s.routeInfos(false).reduce((n, r) => n + (r[field] as number), 0);
}

/** The out_msgs of s's route to the server `to`. */
function routeOut(s: Server, to: Server): number {
  const r = s.routeInfos(false).find((x) => x["remote_id"] === to.id);
  assert.ok(r, `no route from ${s.name} to ${to.name}`);
  return r["out_msgs"] as number;
}

function byPort(servers: Server[], hostPort: string): Server {
  const s = servers.find((x) => hostPort.endsWith(`:${x.port}`));
  assert.ok(s, `no server for ${hostPort}`);
  return s;
}

describe("cluster", () => {
  test("seed: B and C route only to A; full mesh, pub/sub everywhere, interest", async (t) => {
    const [a, b, c] = (await createCluster(t, 3, { seed: true })) as [Server, Server, Server];
    // The seed has the configured routes of B and C; B and C found each other by gossip.
    for (const s of [a, b, c]) {
      const rz = await routez(s.monitor!.port);
      assert.equal(rz.num_routes, 2, `/routez of ${s.name}`);
      const remotes = new Set((rz.routes ?? []).map((r) => r.remote_id));
      assert.deepEqual(remotes, new Set([a, b, c].filter((x) => x !== s).map((x) => x.id)));
    }
    const bToC = b.routeInfos(false).find((r) => r["remote_id"] === c.id)!;
    const cToB = c.routeInfos(false).find((r) => r["remote_id"] === b.id)!;
    assert.equal(bToC["is_configured"] || cToB["is_configured"], false, "B–C came from gossip");

    const ncA = await client(t, clientUrl(a));
    const ncB = await client(t, clientUrl(b));
    const ncC = await client(t, clientUrl(c));
    const got = record(ncA.subscribe("walk.>"));
    await ncA.flush();
    await waitRemoteInterest(b, "walk.>");
    await waitRemoteInterest(c, "walk.>");
    ncA.publish("walk.a", sc.encode("from A"));
    ncB.publish("walk.b", sc.encode("from B"));
    ncC.publish("walk.c", sc.encode("from C"));
    await checkFor(3000, () => got.length === 3);
    assert.deepEqual([...got].sort(), ["from A", "from B", "from C"]);

    // A client given every URL works wherever it lands.
    const all = [a, b, c].map(clientUrl);
    const ncAll = await client(t, all);
    assert.ok(all.includes(ncAll.getServer()));
    const reply = record(ncAll.subscribe("walk-back"));
    await ncAll.flush();
    const elsewhere = [a, b, c].filter((s) => !ncAll.getServer().endsWith(`:${s.port}`));
    for (const s of elsewhere) await waitRemoteInterest(s, "walk-back");
    ncAll.publish("walk.all", sc.encode("from all"));
    for (const nc of [ncA, ncB, ncC]) nc.publish("walk-back", sc.encode("back"));
    await checkFor(3000, () => got.length === 4 && reply.length === 3);
    assert.equal(got[3], "from all");

    // Interest propagation: no subscriber anywhere, nothing leaves C over a route.
    await Promise.all([ncA.flush(), ncB.flush()]);
    const cOut = routeSum(c, "out_msgs");
    const aIn = routeSum(a, "in_msgs");
    const bIn = routeSum(b, "in_msgs");
    for (let i = 0; i < 20; i++) ncC.publish("nobody.listens", sc.encode("x"));
    await ncC.flush();
    assert.equal(routeSum(c, "out_msgs"), cOut, "C sent messages nobody wants");
    // A subscriber on A only: exactly one copy goes C → A, none to B (and B forwards nothing).
    const toA = routeOut(c, a);
    const toB = routeOut(c, b);
    ncC.publish("walk.only-a", sc.encode("only A"));
    await ncC.flush();
    await checkFor(3000, () => got.includes("only A"));
    assert.equal(routeOut(c, a), toA + 1);
    assert.equal(routeOut(c, b), toB);
    assert.equal(routeSum(b, "in_msgs"), bIn);
    assert.equal(routeSum(a, "in_msgs"), aIn + 1);
  });

  test("servers joining later complete the mesh and grow clients' server pool", async (t) => {
    const [a, b, c] = (await createCluster(t, 3)) as [Server, Server, Server];
    const nc = await client(t, clientUrl(a));
    assert.deepEqual(new Set(nc.info?.connect_urls), new Set([a, b, c].map(clientUrl)));
    const added = new Set<string>();
    const disruptions: string[] = [];
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === Events.Update) {
          for (const u of (s.data as { added?: string[] }).added ?? []) added.add(u);
        } else if (s.type === Events.Disconnect || s.type === Events.Reconnect) {
          disruptions.push(s.type);
        }
      }
    })();

    const d = await startClusterServer(t, [routeUrl(a)]);
    const e = await startClusterServer(t, [routeUrl(a)]);
    await waitClusterFormed([a, b, c, d, e]);
    for (const s of [a, b, c, d, e]) assert.equal(s.numRoutes(), 4);

    await checkFor(3000, () => added.has(clientUrl(d)) && added.has(clientUrl(e)));
    assert.deepEqual(new Set(nc.info?.connect_urls), new Set([a, b, c, d, e].map(clientUrl)));
    assert.deepEqual(disruptions, [], "the client never left A");
    assert.equal(nc.getServer(), clientUrl(a));
    // A client on the newcomer is told about everyone, and its messages reach A.
    const ncE = await client(t, clientUrl(e));
    assert.deepEqual(new Set(ncE.info?.connect_urls), new Set([a, b, c, d, e].map(clientUrl)));
    const got = record(nc.subscribe("late"));
    await nc.flush();
    await waitRemoteInterest(e, "late");
    ncE.publish("late", sc.encode("hi from E"));
    await checkFor(3000, () => got.length === 1);
  });

  test("a client whose server dies fails over to a server it learned by gossip", async (t) => {
    const servers = await createCluster(t, 3);
    const [a, b, c] = servers as [Server, Server, Server];
    const nc = await client(t, clientUrl(a));
    await checkFor(3000, () => nc.info?.connect_urls?.length === 3);
    const reconnected = (async () => {
      for await (const s of nc.status()) if (s.type === Events.Reconnect) return s.data;
      return null;
    })();
    const got = record(nc.subscribe("failover"));
    await nc.flush();

    await a.shutdown();
    assert.ok(await reconnected);
    const now = byPort(servers, nc.getServer());
    assert.ok(now === b || now === c, `reconnected to ${nc.getServer()}`);
    const other = now === b ? c : b;
    await waitClusterFormed([b, c]);
    // The subscription was re-sent to the new server, which told the other one.
    await waitRemoteInterest(other, "failover");
    const ncB = await client(t, clientUrl(b));
    const ncC = await client(t, clientUrl(c));
    ncB.publish("failover", sc.encode("b"));
    ncC.publish("failover", sc.encode("c"));
    await checkFor(3000, () => got.length === 2);
    assert.deepEqual([...got].sort(), ["b", "c"]);
  });

  test("a queue group without a local member: routes picked by their weight (members there)", async (t) => {
    const servers = await createCluster(t, 3);
    const [a, b, c] = servers as [Server, Server, Server];
    // One member on B, three on C: A forwards about a quarter to B, three quarters to C.
    const ncB = await client(t, clientUrl(b));
    const ncC = await client(t, clientUrl(c));
    const onB = record(ncB.subscribe("w", { queue: "q" }));
    const onC = [1, 2, 3].map(() => record(ncC.subscribe("w", { queue: "q" })));
    await Promise.all([ncB.flush(), ncC.flush()]);
    await checkFor(5000, () => {
      const weights = [...a.sublist.match("w").qsubs.flat()].map((s) => s.weight).sort();
      return weights.join() === "1,3" || undefined;
    });
    const ncA = await client(t, clientUrl(a));
    const n = 2000;
    for (let i = 0; i < n; i++) ncA.publish("w", sc.encode(String(i)));
    await ncA.flush();
    const total = () => onB.length + onC.reduce((x, g) => x + g.length, 0);
    await checkFor(10_000, () => total() === n || undefined);
    // Binomial(2000, 1/4): mean 500, standard deviation 19; unweighted it would be 1000.
    assert.ok(onB.length > 350 && onB.length < 650, `B got ${onB.length} of ${n}`);
  });

  test("queue group members on three servers: each message delivered exactly once", async (t) => {
    const servers = await createCluster(t, 4);
    const [a, b, c, d] = servers as [Server, Server, Server, Server];
    const members = await Promise.all([a, b, c].map((s) => client(t, clientUrl(s))));
    const got = members.map((nc) => record(nc.subscribe("work", { queue: "workers" })));
    const barriers = members.map((nc) => record(nc.subscribe("work.barrier")));
    await Promise.all(members.map((nc) => nc.flush()));
    for (const s of servers) {
      await waitRemoteInterest(s, "work", s === d ? 3 : 2);
      await waitRemoteInterest(s, "work.barrier", s === d ? 3 : 2);
    }

    /** Publishes n messages from nc, then a barrier every member must see. */
    async function round(
      nc: NatsConnection,
      tag: string,
      n: number,
      active = [0, 1, 2],
    ): Promise<string[][]> {
      const before = got.map((g) => g.length);
      const seen = barriers.map((b) => b.length);
      for (let i = 0; i < n; i++) nc.publish("work", sc.encode(`${tag}-${i}`));
      nc.publish("work.barrier", sc.encode(tag));
      // A message to a member crosses the same route (in order) as the barrier behind it.
      await checkFor(5000, () => active.every((i) => barriers[i]!.length > seen[i]!));
      const mine = got.map((g, i) => g.slice(before[i]));
      const all = mine.flat();
      assert.equal(all.length, n, `${tag}: ${all.length} deliveries for ${n} messages`);
      assert.equal(new Set(all).size, n, `${tag}: a message was delivered twice`);
      return mine;
    }

    // From D, which has no member: spread over the members on A, B and C.
    const ncD = await client(t, clientUrl(d));
    const spread = await round(ncD, "d", 300);
    for (const [i, m] of spread.entries()) assert.ok(m.length > 0, `member ${i} got nothing`);
    // From B, which has a member: exactly once, the local member preferred (as nats-server).
    const ncB = await client(t, clientUrl(b));
    const local = await round(ncB, "b", 200);
    assert.deepEqual(
      local.map((m) => m.length),
      [0, 200, 0],
    );
    // The member on B leaves: B, now without one, spreads over A and C.
    await members[1]!.close();
    await checkFor(3000, () =>
      [a, c, d].every((s) =>
        s.routeInfos(true).every((r) => {
          const subs = r["subscriptions_list"] as string[];
          return r["remote_id"] !== b.id || !subs.includes("work");
        }),
      ),
    );
    const after = await round(ncB, "b2", 200, [0, 2]);
    assert.equal(after[1]!.length, 0);
    assert.ok(after[0]!.length > 0 && after[2]!.length > 0);
  });

  test("request/reply across servers: every request gets its own reply", async (t) => {
    const [a, , c] = (await createCluster(t, 3)) as [Server, Server, Server];
    const responder = await client(t, clientUrl(c));
    const requester = await client(t, clientUrl(a));
    responder.subscribe("greet.*", {
      callback: (_err, m: Msg) => m.respond(sc.encode(`hello ${sc.decode(m.data)}`)),
    });
    await responder.flush();
    await waitRemoteInterest(a, "greet.*");

    // The request pattern of nats.js: one inbox wildcard, a reply per request.
    const ids = Array.from({ length: 200 }, (_, i) => String(i).padStart(3, "0"));
    const replies = await Promise.all(
      ids.map((id) => requester.request(`greet.${id}`, sc.encode(id), { timeout: 5000 })),
    );
    assert.deepEqual(
      replies.map((m) => sc.decode(m.data)),
      ids.map((id) => `hello ${id}`),
    );

    // The explicit pattern: a subscription on an inbox, requests published with it as reply.
    const inbox = createInbox();
    const got = record(requester.subscribe(inbox));
    await requester.flush();
    await waitRemoteInterest(c, inbox);
    for (const id of ids) requester.publish(`greet.${id}`, sc.encode(id), { reply: inbox });
    await checkFor(5000, () => got.length === ids.length);
    assert.deepEqual(
      [...got].sort(),
      ids.map((id) => `hello ${id}`),
    );
  });

  test("partition and heal: the seed stops and comes back on the same ports", async (t) => {
    const [a, b, c] = (await createCluster(t, 3)) as [Server, Server, Server];
    const ports = { port: a.port, cluster: a.clusterPort() };
    const ncB = await client(t, clientUrl(b));
    const ncC = await client(t, clientUrl(c));
    const onB = record(ncB.subscribe("heal"));
    await ncB.flush();
    await waitRemoteInterest(c, "heal");

    const seedUrl = clientUrl(a);
    assert.ok(ncB.info?.connect_urls?.includes(seedUrl));
    await a.shutdown();
    // B and C keep the route gossip gave them, and stop telling clients about A.
    await checkFor(3000, () => b.numRoutes() === 1 && c.numRoutes() === 1);
    await waitClusterFormed([b, c]);
    await checkFor(3000, () => !ncB.info?.connect_urls?.includes(seedUrl));
    ncC.publish("heal", sc.encode("during"));
    await checkFor(3000, () => onB.includes("during"));

    const a2 = await startServer({
      port: ports.port,
      httpPort: -1,
      cluster: clusterOpts([], { port: ports.cluster }),
    });
    defer(t, () => a2.shutdown());
    // B and C re-dial their configured route to the seed's address.
    await waitClusterFormed([a2, b, c]);
    await checkFor(3000, () => ncB.info?.connect_urls?.includes(seedUrl));
    const ncA = await client(t, clientUrl(a2));
    const onA = record(ncA.subscribe("heal"));
    await ncA.flush();
    // Subscribers on A and B: C hears of both, A and B of each other.
    await waitRemoteInterest(b, "heal", 1);
    await waitRemoteInterest(c, "heal", 2);
    await waitRemoteInterest(a2, "heal", 1);
    ncC.publish("heal", sc.encode("after-c"));
    ncA.publish("heal", sc.encode("after-a"));
    await checkFor(3000, () => onA.length === 2 && onB.length === 3);
    assert.deepEqual([...onA].sort(), ["after-a", "after-c"]);
    assert.deepEqual(onB.slice(1).sort(), ["after-a", "after-c"]);
  });

  test("a route learned by gossip that breaks is dialled again", async (t) => {
    const [a, b, c] = (await createCluster(t, 3)) as [Server, Server, Server];
    // Neither B nor C was configured with the other: only gossip made the B–C route.
    const bc = b.cluster!.routes.get(c.id)!;
    assert.equal(bc.isConfigured, false);
    bc.socket.destroy(); // the network drops it; both servers live on
    await checkFor(3000, () => b.cluster!.routes.get(c.id) !== bc);
    await waitClusterFormed([a, b, c]);
    const ncB = await client(t, clientUrl(b));
    const ncC = await client(t, clientUrl(c));
    const got = record(ncC.subscribe("mended"));
    await ncC.flush();
    await waitRemoteInterest(b, "mended");
    ncB.publish("mended", sc.encode("again"));
    await checkFor(3000, () => got.length === 1);
  });

  test("two servers routing to each other keep exactly one route", async (t) => {
    const [pa, pb] = [await freePort(), await freePort()];
    const url = (p: number) => `nats-route://127.0.0.1:${p}`;
    // Both start at once, so both dial while the other is up.
    const starting = [
      startServer({ httpPort: -1, cluster: clusterOpts([url(pb)], { port: pa }) }),
      startServer({ httpPort: -1, cluster: clusterOpts([url(pa)], { port: pb }) }),
    ];
    for (const p of starting)
      p.then(
        (s) => defer(t, () => s.shutdown()),
        () => {},
      );
    const [a, b] = (await Promise.all(starting)) as [Server, Server];
    await waitClusterFormed([a, b]);
    const rid = (s: Server) => s.routeInfos(false).map((r) => r["rid"]);
    const before = [rid(a), rid(b)];
    // Several passes of the re-dial check on both sides must not add or replace a route.
    const checks = [a, b].map((s) => s.cluster!.routeChecks);
    await checkFor(5000, () => [a, b].every((s, i) => s.cluster!.routeChecks >= checks[i]! + 5));
    assert.deepEqual([rid(a), rid(b)], before, "the route was replaced or duplicated");
    assert.equal((await routez(a.monitor!.port)).num_routes, 1);
    assert.equal((await routez(b.monitor!.port)).num_routes, 1);
    // The kept connection is the same one on both sides.
    const ra = a.routeInfos(false)[0]!;
    const rb = b.routeInfos(false)[0]!;
    assert.notEqual(ra["did_solicit"], rb["did_solicit"]);

    const ncA = await client(t, clientUrl(a));
    const ncB = await client(t, clientUrl(b));
    const got = record(ncB.subscribe("dup.>"));
    await ncB.flush();
    await waitRemoteInterest(a, "dup.>");
    for (let i = 0; i < 100; i++) ncA.publish("dup.msg", sc.encode(String(i)));
    ncA.publish("dup.end", sc.encode("end"));
    await checkFor(3000, () => got.includes("end"));
    assert.equal(got.length, 101);
    assert.equal(new Set(got).size, 101);
  });

  test("a configured peer that never answers is dialled once per timeout, gossip still flows", async (t) => {
    // Accepts route connections and never says a word (a wrong port, a hung server).
    let accepted = 0;
    const open = new Set<Socket>();
    const silent = createServer((s) => {
      accepted++;
      open.add(s);
      s.on("close", () => open.delete(s));
      s.on("error", () => {});
      s.resume(); // reads (and drops) what it is sent, so it sees D hang up
    });
    await new Promise<void>((r) => silent.listen({ host: "127.0.0.1", port: 0 }, r));
    defer(t, () => new Promise((r) => silent.close(r)));
    defer(t, () => open.forEach((s) => s.destroy()));
    const silentUrl = `nats-route://127.0.0.1:${(silent.address() as { port: number }).port}`;

    const [a, b] = (await createCluster(t, 2)) as [Server, Server];
    const handshakeMs = 400;
    const started = Date.now();
    const d = await startClusterServer(t, [silentUrl, routeUrl(a)], {
      authTimeoutMs: handshakeMs,
    });
    await waitClusterFormed([a, b, d]);
    // E routes only to A: D hears of E by gossip alone, while its dial to the silent peer is
    // still waiting for an INFO.
    const e = await startClusterServer(t, [routeUrl(a)]);
    await waitClusterFormed([a, b, d, e]);

    // The unanswered handshake is given up after the timeout and dialled again, one at a time.
    await checkFor(5000, () => accepted >= 3);
    const elapsed = Date.now() - started;
    assert.ok(
      accepted <= Math.ceil(elapsed / handshakeMs) + 1,
      `${accepted} connections in ${elapsed}ms to a peer that never answered`,
    );
    await checkFor(3000, () => open.size <= 1);
    assert.equal(d.numRoutes(), 3);
  });

  for (const [kind, run] of [
    ["shoal", runServer],
    ["Go nats-server", runGoServer],
  ] as const) {
    test(
      `${kind}: different cluster names refuse each other, logged as nats-server logs it`,
      { skip: kind !== "shoal" && !goServerPath() ? "Go nats-server not installed" : false },
      async (t) => {
        const a = await run(["-cluster", "nats://127.0.0.1:-1", "--cluster_name", "alpha"]);
        defer(t, () => a.stop());
        const pa = await routePortOf(a);
        const b = await run([
          "-cluster",
          "nats://127.0.0.1:-1",
          "--cluster_name",
          "beta",
          "-routes",
          `nats-route://127.0.0.1:${pa}`,
          "-m",
          "-1",
        ]);
        defer(t, () => b.stop());
        // The server that reads the CONNECT says why, and that the remote conflicts; the one
        // that dialled closes on the other's INFO without a word of its own (the Go server, when
        // the acceptor's -ERR reaches it first, also logs that as "Route Error '...'": timing).
        const rid = String.raw`127\.0\.0\.1:\d+ - rid:\d+ - `;
        await checkFor(5000, () =>
          new RegExp(`\\[ERR\\] ${rid}cluster name from remote server conflicts`).test(a.output()),
        );
        assert.match(
          a.output(),
          new RegExp(
            `\\[ERR\\] ${rid}Rejecting connection, cluster name "beta" does not match "alpha"\\n` +
              `.*\\[INF\\] ${rid}Router connection closed: Cluster Name Conflict\\n`,
          ),
        );
        await checkFor(5000, () =>
          new RegExp(`\\[INF\\] ${rid}Router connection closed: Cluster Name Conflict`).test(
            b.output(),
          ),
        );
        assert.doesNotMatch(b.output(), /Protocol Violation/);
        assert.doesNotMatch(b.output(), /rid:\d+ - Rejecting connection/);
        assert.equal((await routez(b.httpPort)).num_routes, 0);
      },
    );
  }

  for (const [kind, run] of [
    ["shoal", runServer],
    ["Go nats-server", runGoServer],
  ] as const) {
    test(
      `${kind}: connect_urls appear once a route told of a client URL, and stay`,
      {
        skip: kind !== "shoal" && !goServerPath() ? "Go nats-server not installed" : false,
      },
      async (t) => {
        const common = ["-cluster", "nats://127.0.0.1:-1", "--cluster_name", "test", "-m", "-1"];
        const infoOf = async (port: number) => {
          const raw = await RawConn.connect(port);
          try {
            const line = /^INFO (\{.*\}) ?\r\n/.exec(await raw.waitFor(/\r\n/))![1]!;
            return JSON.parse(line) as { connect_urls?: string[] };
          } finally {
            raw.close();
          }
        };
        const a = await run(common);
        defer(t, () => a.stop());
        assert.equal((await infoOf(a.port)).connect_urls, undefined, "alone: none");
        const b = await run([
          ...common,
          "-routes",
          `nats-route://127.0.0.1:${await routePortOf(a)}`,
        ]);
        await waitRoutez([a.httpPort, b.httpPort]);
        await checkFor(5000, async () => ((await infoOf(a.port)).connect_urls ?? []).length === 2);
        await b.stop();
        await checkFor(5000, async () => ((await infoOf(a.port)).connect_urls ?? []).length === 1);
        assert.deepEqual((await infoOf(a.port)).connect_urls, [`127.0.0.1:${a.port}`]);
      },
    );
  }

  test("--no_advertise: the server's clients get no connect_urls", async (t) => {
    const common = ["-cluster", "nats://127.0.0.1:-1", "--cluster_name", "test", "-m", "-1"];
    const a = await runServer([...common, "--no_advertise"]);
    defer(t, () => a.stop());
    const b = await runServer([
      ...common,
      "-routes",
      `nats-route://127.0.0.1:${await routePortOf(a)}`,
    ]);
    defer(t, () => b.stop());
    await waitRoutez([a.httpPort, b.httpPort]);

    const raw = await RawConn.connect(a.port);
    defer(t, () => raw.close());
    const info = JSON.parse(/^INFO (\{.*\}) ?\r\n/.exec(await raw.waitFor(/\r\n/))![1]!) as {
      connect_urls?: string[];
    };
    assert.equal(info.connect_urls, undefined);
    const ncA = await client(t, `127.0.0.1:${a.port}`);
    assert.equal(ncA.info?.connect_urls, undefined);
    // A server without the flag learns no client URL from A, so (like nats-server, checked by
    // hand against 2.9.10) it sends its clients no connect_urls at all.
    const ncB = await client(t, `127.0.0.1:${b.port}`);
    assert.equal(ncB.info?.connect_urls, undefined);
    // The cluster still works.
    const got = record(ncA.subscribe("quiet"));
    await ncA.flush();
    await waitRoutezInterest(b.httpPort, "quiet");
    ncB.publish("quiet", sc.encode("psst"));
    await checkFor(3000, () => got.length === 1);
  });
});

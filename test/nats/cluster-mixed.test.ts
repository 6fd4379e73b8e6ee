// Integration tests of a cluster that mixes shoal with the Go nats-server (2.9): a Go seed with
// two shoal servers routing to it, and a shoal seed with two Go servers. Each must gossip into a
// full mesh (seen on every server's /routez) and carry pub/sub in every direction, queue groups
// with exactly-once delivery, headers and request/reply over the mixed routes. A shoal and a Go
// server that each list the other keep the first route and drop only the duplicate. Skipped when
// the Go nats-server is not installed.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import {
  connect,
  headers,
  StringCodec,
  type Msg,
  type NatsConnection,
  type Subscription as NatsSubscription,
} from "nats";
import {
  checkFor,
  goServerPath,
  runGoServer,
  runServer,
  type RunningServer,
} from "../helpers/servers.js";
import {
  defer,
  freePort,
  routePortOf,
  routez,
  waitRoutez,
  waitRoutezInterest,
} from "../helpers/cluster.js";

const sc = StringCodec();
const NAME = "mixed";

type Kind = "go" | "shoal";

function record(sub: NatsSubscription): string[] {
  const got: string[] = [];
  void (async () => {
    for await (const m of sub) got.push(sc.decode(m.data));
  })();
  return got;
}

/** Starts a server of the given kind on a route port (random by default), routing to `routes`. */
async function start(
  t: TestContext,
  kind: Kind,
  routes: string[] = [],
  routePort = -1,
): Promise<RunningServer> {
  const args = ["-cluster", `nats://127.0.0.1:${routePort}`, "--cluster_name", NAME, "-m", "-1"];
  if (routes.length > 0) args.push("-routes", routes.join(","));
  const s = kind === "go" ? await runGoServer(args) : await runServer(args);
  defer(t, () => s.stop());
  return s;
}

/** A seed of one kind and two servers of the other kind that route only to it. */
async function mixedCluster(t: TestContext, seedKind: Kind): Promise<RunningServer[]> {
  const other: Kind = seedKind === "go" ? "shoal" : "go";
  const seed = await start(t, seedKind);
  const url = `nats-route://127.0.0.1:${await routePortOf(seed)}`;
  const rest = [await start(t, other, [url]), await start(t, other, [url])];
  return [seed, ...rest];
}

/** Everything a mixed cluster must do; servers[0] is the seed. */
async function exercise(t: TestContext, servers: RunningServer[]): Promise<void> {
  const label = (i: number) => `server ${i} (${i === 0 ? "seed" : "member"})`;
  // Full mesh, as every server reports it.
  const all = await waitRoutez(servers.map((s) => s.httpPort));
  for (const [i, rz] of all.entries()) assert.equal(rz.num_routes, 2, label(i));

  const ncs: NatsConnection[] = [];
  for (const s of servers) {
    const nc = await connect({ servers: `127.0.0.1:${s.port}` });
    defer(t, () => nc.close());
    ncs.push(nc);
  }
  // Every client learns every server, whoever runs it.
  const urls = new Set(servers.map((s) => `127.0.0.1:${s.port}`));
  await checkFor(5000, () =>
    ncs.every((nc) => {
      const got = new Set(nc.info?.connect_urls ?? []);
      return got.size === urls.size && [...urls].every((u) => got.has(u));
    }),
  );

  /** Waits until every server but the ones in `except` has heard of interest from `routes`. */
  async function interest(subject: string, routesAt: (i: number) => number): Promise<void> {
    await Promise.all(
      servers.map((s, i) =>
        routesAt(i) > 0 ? waitRoutezInterest(s.httpPort, subject, routesAt(i)) : null,
      ),
    );
  }

  // Pub/sub in every direction.
  const inbox = ncs.map((nc) => record(nc.subscribe("mix.>")));
  await Promise.all(ncs.map((nc) => nc.flush()));
  await interest("mix.>", () => 2);
  ncs.forEach((nc, i) => nc.publish(`mix.from.${i}`, sc.encode(String(i))));
  await checkFor(5000, () => inbox.every((g) => g.length >= 3));
  for (const [j, got] of inbox.entries()) {
    assert.deepEqual([...got].sort(), ["0", "1", "2"], `subscriber on ${label(j)}`);
  }

  // Queue groups: from each server, to members on the two others (over both kinds of route),
  // and to members on all three (the local one preferred): every message exactly once.
  for (let p = 0; p < 3; p++) {
    const subject = `work.${p}`;
    const barrier = `work.${p}.done`;
    const others = [0, 1, 2].filter((i) => i !== p);
    const got = others.map((i) => record(ncs[i]!.subscribe(subject, { queue: "workers" })));
    const done = others.map((i) => record(ncs[i]!.subscribe(barrier)));
    await Promise.all(others.map((i) => ncs[i]!.flush()));
    await interest(subject, (i) => (i === p ? 2 : 1));
    await interest(barrier, (i) => (i === p ? 2 : 1));
    const n = 200;
    for (let k = 0; k < n; k++) ncs[p]!.publish(subject, sc.encode(`${p}-${k}`));
    ncs[p]!.publish(barrier, Buffer.alloc(0));
    // Messages to a member travel the same route as the barrier behind them, in order.
    await checkFor(5000, () => done.every((d) => d.length === 1));
    const deliveries = got.flat();
    assert.equal(deliveries.length, n, `queue from ${label(p)}: ${deliveries.length} of ${n}`);
    assert.equal(new Set(deliveries).size, n, `queue from ${label(p)}: a duplicate`);
    for (const [k, g] of got.entries()) {
      assert.ok(g.length > 0, `member on ${label(others[k]!)} got none from ${label(p)}`);
    }
  }
  const members = ncs.map((nc) => record(nc.subscribe("work.all", { queue: "workers" })));
  const flushed = ncs.map((nc) => record(nc.subscribe("work.all.done")));
  await Promise.all(ncs.map((nc) => nc.flush()));
  await interest("work.all", () => 2);
  await interest("work.all.done", () => 2);
  for (const [p, nc] of ncs.entries()) {
    for (let k = 0; k < 100; k++) nc.publish("work.all", sc.encode(`${p}-${k}`));
    nc.publish("work.all.done", Buffer.alloc(0));
  }
  await checkFor(5000, () => flushed.every((d) => d.length === 3));
  const everyDelivery = members.flat();
  assert.equal(everyDelivery.length, 300);
  assert.equal(new Set(everyDelivery).size, 300);

  // Headers survive every mixed hop, both ways.
  const hdrs = ncs.map(() => [] as Array<{ from: string | undefined; multi: string[] }>);
  ncs.forEach((nc, j) =>
    nc.subscribe(`hdr.${j}`, {
      callback: (_err, m: Msg) =>
        hdrs[j]!.push({
          from: m.headers?.get("X-From"),
          multi: m.headers?.values("X-Multi") ?? [],
        }),
    }),
  );
  await Promise.all(ncs.map((nc) => nc.flush()));
  for (let j = 0; j < 3; j++) await interest(`hdr.${j}`, (i) => (i === j ? 0 : 1));
  ncs.forEach((nc, i) => {
    for (let j = 0; j < 3; j++) {
      if (i === j) continue;
      const h = headers();
      h.set("X-From", String(i));
      h.append("X-Multi", "a");
      h.append("X-Multi", "b");
      nc.publish(`hdr.${j}`, sc.encode("h"), { headers: h });
    }
  });
  await checkFor(5000, () => hdrs.every((h) => h.length === 2));
  for (const [j, got] of hdrs.entries()) {
    const want = [0, 1, 2].filter((i) => i !== j).map(String);
    assert.deepEqual(got.map((x) => x.from).sort(), want, `headers at ${label(j)}`);
    for (const x of got) assert.deepEqual(x.multi, ["a", "b"]);
  }

  // Request/reply between every pair of servers.
  ncs.forEach((nc, j) =>
    nc.subscribe(`svc.${j}`, {
      callback: (_err, m: Msg) => m.respond(sc.encode(`${j}:${sc.decode(m.data)}`)),
    }),
  );
  await Promise.all(ncs.map((nc) => nc.flush()));
  for (let j = 0; j < 3; j++) await interest(`svc.${j}`, (i) => (i === j ? 0 : 1));
  const asks: Array<Promise<void>> = [];
  for (const [i, nc] of ncs.entries()) {
    for (let j = 0; j < 3; j++) {
      if (i === j) continue;
      for (let k = 0; k < 20; k++) {
        const q = `${i}-${k}`;
        asks.push(
          nc.request(`svc.${j}`, sc.encode(q), { timeout: 5000 }).then((m) => {
            assert.equal(sc.decode(m.data), `${j}:${q}`);
          }),
        );
      }
    }
  }
  await Promise.all(asks);
}

/** The rid of every route connection a server logged as created, in order. */
function createdRids(s: RunningServer): number[] {
  return [...s.output().matchAll(/ - rid:(\d+) - Route connection created/g)].map((m) =>
    Number(m[1]),
  );
}

/**
 * A shoal and a Go server whose configurations each name the other, `first` started first: its
 * dial fails, the second dials it, and then its own retry makes a duplicate. Both must keep the
 * first connection and close only the duplicate. (The rule that kept the connection dialled by
 * the smaller server id dropped both whenever that was the duplicate, over and over.)
 */
async function eachListsTheOther(t: TestContext, first: Kind): Promise<void> {
  const shoalRoute = await freePort();
  const goRoute = await freePort();
  const routeTo = (port: number) => [`nats-route://127.0.0.1:${port}`];
  const startKind = (kind: Kind) =>
    kind === "go"
      ? start(t, "go", routeTo(shoalRoute), goRoute)
      : start(t, "shoal", routeTo(goRoute), shoalRoute);
  const a = await startKind(first);
  const b = await startKind(first === "go" ? "shoal" : "go");
  const [go, shoal] = first === "go" ? [a, b] : [b, a];
  // The duplicate was made and the Go server closed a route connection (the duplicate, or with
  // the old rule maybe the first one too).
  await checkFor(
    10_000,
    () => createdRids(go).length >= 2 && /connection closed/.test(go.output()),
  );
  const [shoalRz, goRz] = await waitRoutez([shoal.httpPort, go.httpPort]);
  assert.equal(
    shoalRz!.routes![0]!.rid,
    createdRids(shoal)[0],
    `shoal kept its first route\n${shoal.output()}`,
  );
  assert.equal(
    goRz!.routes![0]!.rid,
    createdRids(go)[0],
    `Go kept its first route\n${go.output()}`,
  );
  assert.equal((await routez(shoal.httpPort)).routes![0]!.rid, shoalRz!.routes![0]!.rid);
}

const skip = goServerPath() === null ? "the Go nats-server is not installed" : false;

describe("mixed cluster (shoal and Go nats-server)", { skip }, () => {
  test("Go seed, two shoal servers routing to it", async (t) => {
    await exercise(t, await mixedCluster(t, "go"));
  });

  test("shoal seed, two Go servers routing to it", async (t) => {
    await exercise(t, await mixedCluster(t, "shoal"));
  });

  // Which connection the old rule dropped depended on the random server ids: two rounds of each
  // start order make a run that misses the case unlikely.
  for (const [round, first] of (["go", "shoal", "go", "shoal"] as const).entries()) {
    test(`a shoal and a Go server that each list the other, ${first} first (round ${round + 1}): one route, kept`, async (t) => {
      await eachListsTheOther(t, first);
    });
  }
});

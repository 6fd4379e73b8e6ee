// Exports and imports between stacks' accounts (issue 14), on a real daemon with the official
// client: stack a exports a stream and a service by labels, stack b imports both, stack c
// imports nothing. b's import is declared before a exists and starts working when a comes;
// removing a's export labels (service update) stops the flow to b on live connections.

import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { connect, StringCodec, type NatsConnection } from "nats";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { checkFor } from "../helpers/servers.js";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));

/** A task that prints its service's credentials and stays up. */
const SHOW_CREDS =
  "console.log('creds '+process.env.NATS_USER+' '+process.env.NATS_PASSWORD);setInterval(()=>{},1e6)";

const sc = StringCodec();

async function create(d: TestDaemon, name: string, stack: string, labels: string[]) {
  const r = await d.cli(
    "service",
    "create",
    "--detach",
    "--name",
    name,
    "-w",
    REPO,
    "--label",
    `com.docker.stack.namespace=${stack}`,
    ...labels.flatMap((l) => ["--label", l]),
    "--",
    process.execPath,
    "-e",
    SHOW_CREDS,
  );
  assert.equal(r.code, 0, r.stderr);
}

/** A connection as the service's own user (its task's credentials, from its logs). */
async function connectAs(d: TestDaemon, service: string, port: number): Promise<NatsConnection> {
  const m = await checkFor(
    30_000,
    async () => /creds (\S+) (\S+)/.exec((await d.cli("service", "logs", service)).stdout),
    200,
  );
  return connect({ servers: `127.0.0.1:${port}`, user: m![1], pass: m![2], reconnect: false });
}

/** Counts what a connection receives on `subject`, by payload. */
function collect(nc: NatsConnection, subject: string): string[] {
  const got: string[] = [];
  const sub = nc.subscribe(subject);
  void (async () => {
    for await (const m of sub) got.push(sc.decode(m.data));
  })();
  return got;
}

const noResponders = (e: Error) => /503|no responders/i.test(e.message);

test("a stack's exports reach the stacks that import them, and only them, on live connections", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const port = Number(/NATS nats:\/\/127\.0\.0\.1:(\d+)/.exec(d.log())?.[1]);
  assert.ok(port > 0, d.log());

  // Bad values are refused at create, naming the label; nothing is stored.
  const bad = await d.cli(
    "service",
    "create",
    "--name",
    "bad",
    "--label",
    "shoal.nats.import.stream=orders.>",
    "--",
    "true",
  );
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /shoal\.nats\.import\.stream.*must be <stack>:<subject>/);

  // b imports from a before a exists: left out, with a warning naming both.
  await create(d, "b_app", "b", [
    "shoal.nats.import.stream=a:orders.>,a:keep.>",
    "shoal.nats.import.service=a:rpc.price",
  ]);
  await create(d, "c_app", "c", []);
  await checkFor(30_000, () =>
    d
      .log()
      .includes(
        'bus: account "stack-b" imports stream "orders.>" from account "stack-a", which does not export it',
      ),
  );
  const b = await connectAs(d, "b_app", port);
  const c = await connectAs(d, "c_app", port);
  t.after(() => Promise.all([b.close(), c.close()]));
  const bOrders = collect(b, "orders.>");
  const bKeep = collect(b, "keep.>");
  const cOrders = collect(c, "orders.>");
  const cKeep = collect(c, "keep.>");
  await Promise.all([b.flush(), c.flush()]);

  // a comes: b's imports start working without b being deployed again.
  await create(d, "a_app", "a", [
    "shoal.nats.export.stream=orders.>,keep.>",
    "shoal.nats.export.service=rpc.price",
  ]);
  const a = await connectAs(d, "a_app", port);
  t.after(() => a.close());
  const rpc = a.subscribe("rpc.price");
  void (async () => {
    for await (const m of rpc) m.respond(sc.encode(`price from a for ${sc.decode(m.data)}`));
  })();
  await a.flush();
  await checkFor(
    30_000,
    async () => {
      a.publish("orders.new", sc.encode("order-1"));
      await a.flush();
      return bOrders.includes("order-1");
    },
    200,
  );
  const reply = await b.request("rpc.price", sc.encode("b"), { timeout: 5000 });
  assert.equal(sc.decode(reply.data), "price from a for b");

  // c imports nothing: a's service has no responders for it, and a's stream never reaches it
  // (a marker that b receives after the orders proves they would have arrived by then).
  await assert.rejects(c.request("rpc.price", sc.encode("c"), { timeout: 5000 }), noResponders);
  for (let i = 0; i < 5; i++) a.publish("orders.more", sc.encode(`more-${i}`));
  a.publish("keep.mark", sc.encode("mark-1"));
  await a.flush();
  await checkFor(10_000, () => bKeep.includes("mark-1"));
  await c.flush();
  assert.equal(bOrders.filter((o) => o.startsWith("more-")).length, 5);
  assert.deepEqual([cOrders, cKeep], [[], []]);

  // a stops exporting orders.> and rpc.price: the flow to b stops on the same connections.
  const upd = await d.cli(
    "service",
    "update",
    "--detach",
    "--label-add",
    "shoal.nats.export.stream=keep.>",
    "--label-rm",
    "shoal.nats.export.service",
    "a_app",
  );
  assert.equal(upd.code, 0, upd.stderr);
  await checkFor(
    30_000,
    () =>
      b.request("rpc.price", sc.encode("b"), { timeout: 2000 }).then(
        () => false,
        (e: Error) => noResponders(e),
      ),
    200,
  );
  const before = bOrders.length;
  for (let i = 0; i < 5; i++) a.publish("orders.late", sc.encode(`late-${i}`));
  a.publish("keep.mark", sc.encode("mark-2"));
  await a.flush();
  await checkFor(10_000, () => bKeep.includes("mark-2"));
  assert.equal(bOrders.length, before, bOrders.join(","));
  assert.ok(!a.isClosed() && !b.isClosed() && !c.isClosed());
  assert.match(
    d.log(),
    /bus: account "stack-b" imports service "rpc\.price" from account "stack-a", which does not export it/,
  );
});

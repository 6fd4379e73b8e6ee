// Applications on the message server (issue 14): each service's tasks get the service's own
// user (NATS_URL, NATS_USER, NATS_PASSWORD), in its stack's account, so one stack's subjects are
// private to it; services outside stacks share the applications' account with anonymous clients.

import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { connect, StringCodec } from "nats";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { checkFor } from "../helpers/servers.js";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));

/** A task that connects as its service's user and subscribes to `greet`, printing each message. */
const SUBSCRIBER =
  "const {connect}=require('nats');(async()=>{" +
  "const u=new URL(process.env.NATS_URL);" +
  "if(u.username!==process.env.NATS_USER)throw new Error('NATS_URL without the user');" +
  "const nc=await connect({servers:u.host,user:process.env.NATS_USER,pass:process.env.NATS_PASSWORD});" +
  "const sub=nc.subscribe('greet');await nc.flush();console.log('ready');" +
  "for await(const m of sub)console.log('got '+new TextDecoder().decode(m.data));})()" +
  ".catch(e=>{console.log('error '+e.message);process.exit(1)})";

/** A task that publishes `from-<what>` on `greet` every 100 ms, printing a count. */
const publisher = (what: string) =>
  "const {connect}=require('nats');(async()=>{" +
  "const u=new URL(process.env.NATS_URL);" +
  "const nc=await connect({servers:u.host,user:process.env.NATS_USER,pass:process.env.NATS_PASSWORD});" +
  `let n=0;setInterval(async()=>{nc.publish('greet','from-${what}');await nc.flush();console.log('sent '+(++n))},100);})()` +
  ".catch(e=>{console.log('error '+e.message);process.exit(1)})";

async function logsOf(d: TestDaemon, service: string): Promise<string> {
  const r = await d.cli("service", "logs", service);
  return r.stdout + r.stderr;
}

const count = (text: string, re: RegExp) => text.split("\n").filter((l) => re.test(l)).length;

async function sentBy(d: TestDaemon, service: string): Promise<number> {
  const m = [...(await logsOf(d, service)).matchAll(/sent (\d+)/g)];
  return m.length ? Number(m[m.length - 1]![1]) : 0;
}

test("a stack's subjects are private to it; other applications share the default account", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const port = Number(/NATS nats:\/\/127\.0\.0\.1:(\d+)/.exec(d.log())?.[1]);
  assert.ok(port > 0, d.log());
  const create = async (name: string, code: string, stack?: string) => {
    const r = await d.cli(
      "service",
      "create",
      "--detach",
      "--name",
      name,
      "-w",
      REPO,
      ...(stack ? ["--label", `com.docker.stack.namespace=${stack}`] : []),
      "--",
      process.execPath,
      "-e",
      code,
    );
    assert.equal(r.code, 0, r.stderr);
  };
  await create("shop_sub", SUBSCRIBER, "shop");
  await create("shop_pub", publisher("shop"), "shop");
  await create("blog_pub", publisher("blog"), "blog");
  await create("plain_pub", publisher("plain"));

  // Clients without credentials are refused until the swarm enables the anonymous user.
  await assert.rejects(connect({ servers: `127.0.0.1:${port}`, reconnect: false }), (e: Error) =>
    /Authorization Violation/i.test(e.message),
  );
  const on = await d.cli("swarm", "update", "--nats-anonymous");
  assert.equal(on.code, 0, on.stderr);

  // An anonymous client (the applications' account) hears a service outside stacks.
  const nc = await connect({ servers: `127.0.0.1:${port}`, reconnect: false });
  t.after(() => nc.close());
  const sc = StringCodec();
  const heard = new Set<string>();
  const sub = nc.subscribe("greet");
  void (async () => {
    for await (const m of sub) heard.add(sc.decode(m.data));
  })();
  await checkFor(30_000, () => heard.has("from-plain"), 100);
  assert.ok(!heard.has("from-shop") && !heard.has("from-blog"), [...heard].join(","));

  // The stack's subscriber hears its own stack and nothing else, while the others publish.
  await checkFor(30_000, async () => /got from-shop/.test(await logsOf(d, "shop_sub")), 200);
  const blog0 = await sentBy(d, "blog_pub");
  const plain0 = await sentBy(d, "plain_pub");
  for (let i = 0; i < 10; i++) nc.publish("greet", sc.encode("from-anon"));
  await nc.flush();
  await checkFor(
    30_000,
    async () =>
      (await sentBy(d, "blog_pub")) >= blog0 + 10 && (await sentBy(d, "plain_pub")) >= plain0 + 10,
    200,
  );
  const got = await logsOf(d, "shop_sub");
  assert.ok(count(got, /got from-shop/) > 0);
  assert.equal(count(got, /got from-(blog|plain|anon)/), 0, got);
  assert.ok(!heard.has("from-shop") && !heard.has("from-blog"), [...heard].join(","));

  // Turned off again: the anonymous connection is cut off at once, and a new one refused.
  const closed = nc.closed();
  const off = await d.cli("swarm", "update", "--nats-anonymous=false");
  assert.equal(off.code, 0, off.stderr);
  await closed;
  await assert.rejects(connect({ servers: `127.0.0.1:${port}`, reconnect: false }), (e: Error) =>
    /Authorization Violation/i.test(e.message),
  );
  const bad = await d.cli("swarm", "update", "--nats-anonymous=maybe");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /invalid argument "maybe" for "--nats-anonymous" flag/);
});

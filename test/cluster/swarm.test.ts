// Several machines on the network-namespace test bed: one manager and two workers joined with
// tokens, services spread over them, a worker killed outright and brought back, a wrong token,
// an application connection kept out of $SHOAL.>, drain, global services, cut and heal, and the
// seed "000" scenario.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { SHOAL_BIN, checkFor, httpGet, RawConn } from "../helpers/servers.js";
import { startSwarm } from "../helpers/swarm.js";
import { watchCounters } from "../helpers/daemon.js";
import { findIptables } from "../../src/node/drivers/netns.js";
import type { Node, Task } from "../../src/api/types.js";

function perNode(ts: Task[]): number[] {
  const c = new Map<string, number>();
  for (const x of ts) c.set(x.nodeId, (c.get(x.nodeId) ?? 0) + 1);
  return [...c.values()].sort();
}

test("one manager and two workers: spread, node loss, return, tokens, $SHOAL.> closed to apps", async (t) => {
  const s = await startSwarm(3, 0);
  t.after(() => s.cleanup());
  if (s.bed.mode !== "netns")
    t.diagnostic("network namespaces unavailable: hosts share the loopback stack");
  const [w1, w2] = s.workers as [(typeof s.workers)[0], (typeof s.workers)[0]];

  // A wrong token is refused with a clear error, and no node is added.
  const wrong = s.token.slice(0, -5) + "aaaaa";
  const bad = await w1.exec(process.execPath, [
    SHOAL_BIN,
    "join",
    "--token",
    wrong,
    "--data-dir",
    s.dirs[1]!,
    "--advertise-addr",
    w1.addr,
    `${s.manager.addr}:2377`,
  ]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /invalid join token: it was rotated or is wrong/);
  assert.equal((await s.api<Node[]>("/v1/nodes")).length, 1);

  await s.joinWorker(0);
  await s.joinWorker(1);
  await checkFor(
    10_000,
    async () => (await s.api<Node[]>("/v1/nodes")).filter((n) => n.status === "ready").length === 3,
  );
  const nodeLs = await s.cli("node", "ls");
  assert.equal(nodeLs.stdout.trim().split("\n").length, 4, nodeLs.stdout);

  // 6 replicas spread 2/2/2.
  const created = await s.cli(
    "service",
    "create",
    "--name",
    "s",
    "--replicas",
    "6",
    "--restart-delay",
    "0s",
    "--",
    "sleep",
    "100000",
  );
  assert.equal(created.code, 0, created.stderr + created.stdout);
  await checkFor(20_000, async () => (await s.running("s")).length === 6);
  assert.deepEqual(perNode(await s.running("s")), [2, 2, 2]);

  // Logs come from whichever node ran the task.
  const talk = await s.cli(
    "service",
    "create",
    "--name",
    "talk",
    "--replicas",
    "3",
    "--",
    "sh",
    "-c",
    "echo hi-$SHOAL_TASK_SLOT; i=0; while :; do i=$((i+1)); echo tick-$SHOAL_TASK_SLOT-$i; sleep 0.2; done",
  );
  assert.equal(talk.code, 0, talk.stderr);
  assert.equal(
    new Set((await s.api<Task[]>("/v1/tasks?service=talk")).map((x) => x.nodeId)).size,
    3,
  );
  await checkFor(10_000, async () => {
    const out = (await s.cli("service", "logs", "talk")).stdout;
    return /\| hi-1$/m.test(out) && /\| hi-2$/m.test(out) && /\| hi-3$/m.test(out);
  });
  // `logs -f`: each task's new lines keep coming, from whichever node runs it.
  const follower = spawn(process.execPath, [SHOAL_BIN, "service", "logs", "-f", "talk"], {
    env: { ...process.env, SHOAL_DATA_DIR: s.dirs[0]!, SHOAL_HOST: "" },
  });
  t.after(() => follower.kill("SIGKILL"));
  let followed = "";
  follower.stdout.on("data", (d: Buffer) => (followed += d.toString()));
  const lastTick = (slot: number) =>
    Math.max(
      0,
      ...[...followed.matchAll(new RegExp(`\\| tick-${slot}-(\\d+)$`, "gm"))].map((m) =>
        Number(m[1]),
      ),
    );
  await checkFor(10_000, () => [1, 2, 3].every((slot) => lastTick(slot) > 0));
  const first = [1, 2, 3].map(lastTick);
  await checkFor(10_000, () => [1, 2, 3].every((slot, i) => lastTick(slot) >= first[i]! + 5));
  for (const slot of [1, 2, 3]) {
    const ticks = [...followed.matchAll(new RegExp(`\\| tick-${slot}-(\\d+)$`, "gm"))].map((m) =>
      Number(m[1]),
    );
    assert.deepEqual(
      ticks,
      ticks.map((_, i) => i + 1),
      `slot ${slot}: every line once, in order`,
    );
  }
  follower.kill("SIGINT");
  assert.equal((await s.cli("service", "rm", "talk")).code, 0);

  // Kill a worker outright: its tasks come back on the survivors within seconds.
  const victim = (await s.api<Node[]>("/v1/nodes")).find((n) => n.addr === w2.addr)!;
  const t0 = Date.now();
  await w2.kill();
  await checkFor(
    15_000,
    async () => {
      const r = await s.running("s");
      return r.length === 6 && r.every((x) => x.nodeId !== victim.id);
    },
    100,
  );
  t.diagnostic(`node loss to 6/6 running elsewhere: ${Date.now() - t0} ms`);
  assert.equal((await s.api<Node[]>("/v1/nodes")).find((n) => n.id === victim.id)!.status, "down");

  // Bring it back: it rejoins, and there are still exactly 6.
  s.restartWorker(1);
  await checkFor(
    15_000,
    async () => (await s.api<Node[]>("/v1/nodes")).every((n) => n.status === "ready"),
    100,
  );
  // Six heartbeats (two per node) and three passes later, still exactly 6.
  await watchCounters(s.dirs[0]!, { passes: 3, heartbeats: 6 }, async () => {
    const all = (await s.api<Task[]>("/v1/tasks?service=s")).filter(
      (x) => x.status.state === "running",
    );
    assert.equal(all.length, 6);
  });

  // A client without credentials is refused, unless the swarm lets anonymous clients in; even
  // then applications cannot use $SHOAL.>.
  const refused = await RawConn.connect(4222, s.manager.addr);
  t.after(() => refused.close());
  refused.send('CONNECT {"verbose":false}\r\nPING\r\n');
  assert.match(await refused.waitFor(/-ERR/), /Authorization Violation/);
  assert.equal((await s.cli("swarm", "update", "--nats-anonymous")).code, 0);
  const app = await RawConn.connect(4222, s.manager.addr);
  t.after(() => app.close());
  app.send('CONNECT {"verbose":false}\r\nSUB $SHOAL.> 1\r\nPUB $SHOAL.hb.x 2\r\nhi\r\nPING\r\n');
  const seen = await app.waitFor(/PONG/);
  assert.match(seen, /Permissions Violation for Subscription to "\$SHOAL\.>"/);
  assert.match(seen, /Permissions Violation for Publish to "\$SHOAL\.hb\.x"/);
});

test("drain moves tasks, a global service follows a joining node, cut and heal leaves no duplicates", async (t) => {
  const s = await startSwarm(3, 1);
  t.after(() => s.cleanup());
  const [w1, w2] = s.workers as [(typeof s.workers)[0], (typeof s.workers)[0]];
  const g = await s.cli(
    "service",
    "create",
    "-d",
    "--name",
    "g",
    "--mode",
    "global",
    "--",
    "sleep",
    "100000",
  );
  assert.equal(g.code, 0, g.stderr);
  await checkFor(15_000, async () => (await s.running("g")).length === 2);
  await s.joinWorker(1);
  await checkFor(15_000, async () => (await s.running("g")).length === 3);

  const r = await s.cli(
    "service",
    "create",
    "-d",
    "--name",
    "r",
    "--replicas",
    "4",
    "--",
    "sleep",
    "100000",
  );
  assert.equal(r.code, 0, r.stderr);
  await checkFor(15_000, async () => (await s.running("r")).length === 4);
  const nodes = await s.api<Node[]>("/v1/nodes");
  const n1 = nodes.find((n) => n.addr === w1.addr)!;
  const drained = await s.cli("node", "update", "--availability", "drain", n1.id);
  assert.equal(drained.code, 0, drained.stderr);
  await checkFor(
    15_000,
    async () => {
      const rs = await s.running("r");
      const gs = await s.running("g");
      return (
        rs.length === 4 &&
        rs.every((x) => x.nodeId !== n1.id) &&
        gs.length === 2 &&
        gs.every((x) => x.nodeId !== n1.id)
      );
    },
    100,
  );
  assert.match((await s.cli("node", "ls")).stdout, /Drain/);
  await s.cli("node", "update", "--availability", "active", n1.id);

  // Cut a worker off the network, let the manager replace its tasks, heal: no duplicates.
  if (s.bed.mode !== "netns") {
    t.diagnostic("cut/heal skipped: network namespaces are unavailable (loopback fallback)");
    return;
  }
  const n2 = nodes.find((n) => n.addr === w2.addr)!;
  await checkFor(10_000, async () => (await s.running("r")).some((x) => x.nodeId === n2.id));
  await w2.cut();
  await checkFor(
    15_000,
    async () => {
      const rs = await s.running("r");
      return rs.length === 4 && rs.every((x) => x.nodeId !== n2.id);
    },
    100,
  );
  await w2.heal();
  await checkFor(
    15_000,
    async () => (await s.api<Node[]>("/v1/nodes")).every((n) => n.status === "ready"),
    100,
  );
  // The healed node stops the tasks that were replaced: watch a few heartbeats and passes.
  await watchCounters(s.dirs[0]!, { passes: 3, heartbeats: 6 }, async () => {
    const all = (await s.api<Task[]>("/v1/tasks?service=r")).filter(
      (x) => x.status.state === "running",
    );
    assert.ok(all.length <= 4, `more than 4 running replicas after healing: ${all.length}`);
  });
  assert.equal((await s.running("r")).length, 4);
});

test('the seed "000" scenario: a NATS cluster deployed as shoal services, greeters spread over it', async (t) => {
  const s = await startSwarm(3);
  t.after(() => s.cleanup());
  const m = s.manager;
  const server = [
    process.execPath,
    SHOAL_BIN,
    "nats-server",
    "-a",
    "0.0.0.0",
    "-p",
    "4333",
    "--cluster_name",
    "seed000",
  ];
  // The seed on the manager, one more server on each worker routing to the seed.
  let r = await s.cli(
    "service",
    "create",
    "-d",
    "--name",
    "seed",
    "--constraint",
    "node.role==manager",
    "--",
    ...server,
    "-cluster",
    "nats://0.0.0.0:4348",
  );
  assert.equal(r.code, 0, r.stderr);
  r = await s.cli(
    "service",
    "create",
    "-d",
    "--name",
    "natsnode",
    "--mode",
    "global",
    "--constraint",
    "node.role==worker",
    "--",
    ...server,
    "-cluster",
    "nats://0.0.0.0:4348",
    "-routes",
    `nats://${m.addr}:4348`,
  );
  assert.equal(r.code, 0, r.stderr);
  const greeter = join(SHOAL_BIN, "../../dist/test/cluster/fixtures/greeter.js");
  r = await s.cli(
    "service",
    "create",
    "-d",
    "--name",
    "greeter",
    "--replicas",
    "1",
    "-e",
    "GREETER_NATS=nats://127.0.0.1:4333",
    "--",
    process.execPath,
    greeter,
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await s.cli("service", "scale", "-d", "greeter=3")).code, 0);
  await checkFor(20_000, async () => (await s.running("greeter")).length === 3);
  assert.equal(
    new Set((await s.running("greeter")).map((x) => x.nodeId)).size,
    3,
    "greeters spread over the machines",
  );

  // Every greeter said hi and got a reply through the mesh.
  await checkFor(
    20_000,
    async () => {
      const out = (await s.cli("service", "logs", "greeter")).stdout;
      return (out.match(/got: hi from \d/g) ?? []).length === 3;
    },
    200,
  );
  // Clients of each machine's server get every reply; queue groups prefer the local member, so
  // across the three machines all three greeters answer.
  const { connect, StringCodec } = await import("nats");
  const sc = StringCodec();
  const from = new Set<string>();
  for (const h of s.bed.hosts) {
    const nc = await connect({ servers: `nats://${h.addr}:4333` });
    t.after(() => nc.close());
    for (let i = 0; i < 20; i++) {
      const reply = await nc.request("greet", sc.encode(`hi ${i}`), { timeout: 3000 });
      from.add(sc.decode(reply.data));
    }
  }
  assert.deepEqual([...from].sort(), ["hi from 1", "hi from 2", "hi from 3"]);
});

test("the routing mesh: a published port answers on every node, from tasks on every node", async (t) => {
  const s = await startSwarm(3);
  t.after(() => s.cleanup());
  await checkFor(
    10_000,
    async () => (await s.api<Node[]>("/v1/nodes")).filter((n) => n.status === "ready").length === 3,
  );
  // Tasks listen on all of their host's addresses: the mesh of another node reaches them there.
  const server =
    "require('http').createServer((q,r)=>r.end(process.env.SHOAL_TASK_SLOT)).listen(+process.env.PORT,'0.0.0.0')";
  const created = await s.cli(
    "service",
    "create",
    "--name",
    "web",
    "--replicas",
    "3",
    "-p",
    "8080:8000",
    "--",
    "node",
    "-e",
    server,
  );
  assert.equal(created.code, 0, created.stderr + created.stdout);
  assert.deepEqual(perNode(await s.running("web")), [1, 1, 1]);
  // Every node's published port balances over the three tasks, two of which run elsewhere.
  for (const h of s.bed.hosts) {
    const seen = new Set<string>();
    await checkFor(15_000, async () => {
      seen.add(await httpGet(h.addr, 8080));
      return seen.size === 3;
    });
    assert.deepEqual([...seen].sort(), ["1", "2", "3"], `published port on ${h.addr}`);
  }
});

test("a bridge task on a worker reaches the message server on the manager (outbound NAT)", async (t) => {
  const s = await startSwarm(2);
  t.after(() => s.cleanup());
  if (s.bed.mode !== "netns") return t.skip("needs network namespaces (bridge tasks, NAT)");
  if (findIptables() === null)
    return t.skip("iptables is not installed (apt-get install iptables)");
  await checkFor(
    10_000,
    async () => (await s.api<Node[]>("/v1/nodes")).filter((n) => n.status === "ready").length === 2,
  );
  // Connects to NATS_URL (the manager's address: another machine) and prints the server's
  // first word, INFO; then stays up.
  const probe =
    "const u=new URL(process.env.NATS_URL);require('net').connect(+u.port,u.hostname)" +
    ".once('data',d=>console.log('got '+d.toString().slice(0,4)));setInterval(()=>{},1e9)";
  const created = await s.cli(
    "service",
    "create",
    "--name",
    "probe",
    "--network",
    "bridge",
    "--constraint",
    "node.role==worker",
    "--",
    "node",
    "-e",
    probe,
  );
  assert.equal(created.code, 0, created.stderr + created.stdout);
  const [task] = await s.running("probe");
  const worker = (await s.api<Node[]>("/v1/nodes")).find((n) => n.role === "worker")!;
  assert.equal(task!.nodeId, worker.id);
  await checkFor(10_000, async () =>
    /\| got INFO$/m.test((await s.cli("service", "logs", "probe")).stdout),
  );
});

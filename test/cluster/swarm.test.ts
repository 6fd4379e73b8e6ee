// Several machines on the network-namespace test bed: one manager and two workers joined with
// tokens, services spread over them, a worker killed outright and brought back, a wrong token,
// and an application connection kept out of $SHOAL.>.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:http";
import { createTestBed, type Host } from "./netns.js";
import { SHOAL_BIN, checkFor, RawConn } from "../helpers/servers.js";
import { runCli } from "../helpers/daemon.js";
import type { Node, Task } from "../../src/manager/types.js";

function api<T>(dataDir: string, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: join(dataDir, "shoal.sock"), path }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve(JSON.parse(body) as T));
    });
    req.on("error", reject);
    req.end();
  });
}

function startManager(h: Host, dir: string): { output: () => string } {
  let out = "";
  const p = h.spawn(process.execPath, [
    SHOAL_BIN,
    "daemon",
    "--data-dir",
    dir,
    "--listen-addr",
    `${h.addr}:2377`,
    "--advertise-addr",
    `${h.addr}:2377`,
    "--nats-port",
    "4222",
    "--publish-addr",
    h.addr,
  ]);
  p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  p.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  return { output: () => out };
}

function startWorkerDaemon(h: Host, dir: string): void {
  h.spawn(process.execPath, [
    SHOAL_BIN,
    "daemon",
    "--data-dir",
    dir,
    "--advertise-addr",
    h.addr,
    "--publish-addr",
    h.addr,
  ]);
}

test("one manager and two workers: spread, node loss, return, tokens, $SHOAL.> closed to apps", async (t) => {
  const bed = await createTestBed(3);
  const dirs = bed.hosts.map(() => mkdtempSync(join(tmpdir(), "shoal-node-")));
  t.after(async () => {
    for (const h of bed.hosts) await h.kill().catch(() => {});
    await bed.cleanup();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  if (bed.mode !== "netns")
    t.diagnostic("network namespaces unavailable: hosts share the loopback stack");
  const [m, w1, w2] = bed.hosts as [Host, Host, Host];
  const mgr = startManager(m, dirs[0]!);
  await checkFor(20_000, () => /ready/.test(mgr.output()), 50);

  const token = (await runCli(dirs[0]!, ["swarm", "join-token", "-q", "worker"])).stdout.trim();
  assert.match(token, /^SHOAL-1-/);

  // A wrong token is refused with a clear error, and no node is added.
  const wrong = token.slice(0, -5) + "aaaaa";
  const bad = await w1.exec(process.execPath, [
    SHOAL_BIN,
    "join",
    "--token",
    wrong,
    "--data-dir",
    dirs[1]!,
    "--advertise-addr",
    w1.addr,
    `${m.addr}:2377`,
  ]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /invalid join token: it was rotated or is wrong/);

  for (const [h, dir] of [
    [w1, dirs[1]!],
    [w2, dirs[2]!],
  ] as const) {
    const r = await h.exec(
      process.execPath,
      [
        SHOAL_BIN,
        "join",
        "--token",
        token,
        "--data-dir",
        dir,
        "--advertise-addr",
        h.addr,
        "--publish-addr",
        h.addr,
        `${m.addr}:2377`,
      ],
      { timeoutMs: 30_000 },
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /This node joined a swarm as a worker/);
  }
  await checkFor(
    10_000,
    async () =>
      (await api<Node[]>(dirs[0]!, "/v1/nodes")).filter((n) => n.status === "ready").length === 3,
  );
  const nodeLs = await runCli(dirs[0]!, ["node", "ls"]);
  assert.equal(nodeLs.stdout.trim().split("\n").length, 4, nodeLs.stdout);

  // 6 replicas spread 2/2/2.
  const created = await runCli(dirs[0]!, [
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
  ]);
  assert.equal(created.code, 0, created.stderr + created.stdout);
  const running = async () =>
    (await api<Task[]>(dirs[0]!, "/v1/tasks?service=s")).filter(
      (x) => x.status.state === "running" && x.desiredState === "running",
    );
  await checkFor(20_000, async () => (await running()).length === 6);
  const perNode = (ts: Task[]) => {
    const c = new Map<string, number>();
    for (const x of ts) c.set(x.nodeId, (c.get(x.nodeId) ?? 0) + 1);
    return [...c.values()].sort();
  };
  assert.deepEqual(perNode(await running()), [2, 2, 2]);

  // Logs come from whichever node ran the task.
  const talk = await runCli(dirs[0]!, [
    "service",
    "create",
    "--name",
    "talk",
    "--replicas",
    "3",
    "--",
    "sh",
    "-c",
    "echo hi-$SHOAL_TASK_SLOT; sleep 100000",
  ]);
  assert.equal(talk.code, 0, talk.stderr);
  const talkNodes = new Set(
    (await api<Task[]>(dirs[0]!, "/v1/tasks?service=talk")).map((x) => x.nodeId),
  );
  assert.equal(talkNodes.size, 3);
  await checkFor(10_000, async () => {
    const out = (await runCli(dirs[0]!, ["service", "logs", "talk"])).stdout;
    return /\| hi-1$/m.test(out) && /\| hi-2$/m.test(out) && /\| hi-3$/m.test(out);
  });
  assert.equal((await runCli(dirs[0]!, ["service", "rm", "talk"])).code, 0);

  // Kill a worker outright: its tasks come back on the survivors within seconds.
  const nodes = await api<Node[]>(dirs[0]!, "/v1/nodes");
  const victim = nodes.find((n) => n.addr === w2.addr)!;
  const t0 = Date.now();
  await w2.kill();
  await checkFor(
    15_000,
    async () => {
      const r = await running();
      return r.length === 6 && r.every((x) => x.nodeId !== victim.id);
    },
    100,
  );
  t.diagnostic(`node loss to 6/6 running elsewhere: ${Date.now() - t0} ms`);
  const down = (await api<Node[]>(dirs[0]!, "/v1/nodes")).find((n) => n.id === victim.id)!;
  assert.equal(down.status, "down");

  // Bring it back: it rejoins, and there are still exactly 6.
  startWorkerDaemon(w2, dirs[2]!);
  await checkFor(
    15_000,
    async () => (await api<Node[]>(dirs[0]!, "/v1/nodes")).every((n) => n.status === "ready"),
    100,
  );
  await new Promise((r) => setTimeout(r, 2500));
  const after = await api<Task[]>(dirs[0]!, "/v1/tasks?service=s");
  assert.equal(after.filter((x) => x.status.state === "running").length, 6);

  // Applications (no credentials) cannot use $SHOAL.>.
  const app = await RawConn.connect(4222, m.addr);
  t.after(() => app.close());
  app.send('CONNECT {"verbose":false}\r\nSUB $SHOAL.> 1\r\nPUB $SHOAL.hb.x 2\r\nhi\r\nPING\r\n');
  const seen = await app.waitFor(/PONG/);
  assert.match(seen, /Permissions Violation for Subscription to "\$SHOAL\.>"/);
  assert.match(seen, /Permissions Violation for Publish to "\$SHOAL\.hb\.x"/);
});

test("drain moves tasks, a global service follows a joining node, cut and heal leaves no duplicates", async (t) => {
  const bed = await createTestBed(3);
  const dirs = bed.hosts.map(() => mkdtempSync(join(tmpdir(), "shoal-node-")));
  t.after(async () => {
    for (const h of bed.hosts) await h.kill().catch(() => {});
    await bed.cleanup();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const [m, w1, w2] = bed.hosts as [Host, Host, Host];
  const mgr = startManager(m, dirs[0]!);
  await checkFor(20_000, () => /ready/.test(mgr.output()), 50);
  const token = (await runCli(dirs[0]!, ["swarm", "join-token", "-q", "worker"])).stdout.trim();
  const joinNode = async (h: Host, dir: string) => {
    const r = await h.exec(
      process.execPath,
      [
        SHOAL_BIN,
        "join",
        "--token",
        token,
        "--data-dir",
        dir,
        "--advertise-addr",
        h.addr,
        "--publish-addr",
        h.addr,
        `${m.addr}:2377`,
      ],
      { timeoutMs: 30_000 },
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
  };
  await joinNode(w1, dirs[1]!);
  const tasksOf = async (svc: string) =>
    (await api<Task[]>(dirs[0]!, `/v1/tasks?service=${svc}`)).filter(
      (x) => x.status.state === "running" && x.desiredState === "running",
    );

  const g = await runCli(dirs[0]!, [
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
  ]);
  assert.equal(g.code, 0, g.stderr);
  await checkFor(15_000, async () => (await tasksOf("g")).length === 2);
  await joinNode(w2, dirs[2]!);
  await checkFor(15_000, async () => (await tasksOf("g")).length === 3);

  const r = await runCli(dirs[0]!, [
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
  ]);
  assert.equal(r.code, 0, r.stderr);
  await checkFor(15_000, async () => (await tasksOf("r")).length === 4);
  const nodes = await api<Node[]>(dirs[0]!, "/v1/nodes");
  const n1 = nodes.find((n) => n.addr === w1.addr)!;
  const drained = await runCli(dirs[0]!, ["node", "update", "--availability", "drain", n1.id]);
  assert.equal(drained.code, 0, drained.stderr);
  await checkFor(
    15_000,
    async () => {
      const rs = await tasksOf("r");
      const gs = await tasksOf("g");
      return (
        rs.length === 4 &&
        rs.every((x) => x.nodeId !== n1.id) &&
        gs.length === 2 &&
        gs.every((x) => x.nodeId !== n1.id)
      );
    },
    100,
  );
  const ls = await runCli(dirs[0]!, ["node", "ls"]);
  assert.match(ls.stdout, /Drain/);
  await runCli(dirs[0]!, ["node", "update", "--availability", "active", n1.id]);

  // Cut a worker off the network, let the manager replace its tasks, heal: no duplicates.
  if (bed.mode !== "netns") {
    t.diagnostic("cut/heal skipped: network namespaces are unavailable (loopback fallback)");
    return;
  }
  const n2 = nodes.find((n) => n.addr === w2.addr)!;
  await checkFor(10_000, async () => (await tasksOf("r")).some((x) => x.nodeId === n2.id));
  await w2.cut();
  await checkFor(
    15_000,
    async () => {
      const rs = await tasksOf("r");
      return rs.length === 4 && rs.every((x) => x.nodeId !== n2.id);
    },
    100,
  );
  await w2.heal();
  await checkFor(
    15_000,
    async () => (await api<Node[]>(dirs[0]!, "/v1/nodes")).every((n) => n.status === "ready"),
    100,
  );
  // The healed node stops the tasks that were replaced: watch a few heartbeats.
  for (let i = 0; i < 6; i++) {
    const all = (await api<Task[]>(dirs[0]!, "/v1/tasks?service=r")).filter(
      (x) => x.status.state === "running",
    );
    assert.ok(all.length <= 4, `more than 4 running replicas after healing: ${all.length}`);
    await new Promise((res) => setTimeout(res, 500));
  }
  assert.equal((await tasksOf("r")).length, 4);
});

test('the seed "000" scenario: a NATS cluster deployed as shoal services, greeters spread over it', async (t) => {
  const bed = await createTestBed(3);
  const dirs = bed.hosts.map(() => mkdtempSync(join(tmpdir(), "shoal-node-")));
  t.after(async () => {
    for (const h of bed.hosts) await h.kill().catch(() => {});
    await bed.cleanup();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  const [m, w1, w2] = bed.hosts as [Host, Host, Host];
  const mgr = startManager(m, dirs[0]!);
  await checkFor(20_000, () => /ready/.test(mgr.output()), 50);
  const token = (await runCli(dirs[0]!, ["swarm", "join-token", "-q", "worker"])).stdout.trim();
  for (const [h, dir] of [
    [w1, dirs[1]!],
    [w2, dirs[2]!],
  ] as const) {
    const r = await h.exec(
      process.execPath,
      [
        SHOAL_BIN,
        "join",
        "--token",
        token,
        "--data-dir",
        dir,
        "--advertise-addr",
        h.addr,
        "--publish-addr",
        h.addr,
        `${m.addr}:2377`,
      ],
      { timeoutMs: 30_000 },
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
  }
  const cli = (...args: string[]) => runCli(dirs[0]!, args);
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
  let r = await cli(
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
  r = await cli(
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
  r = await cli(
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
  assert.equal((await cli("service", "scale", "-d", "greeter=3")).code, 0);
  const running = async (svc: string) =>
    (await api<Task[]>(dirs[0]!, `/v1/tasks?service=${svc}`)).filter(
      (x) => x.status.state === "running",
    );
  await checkFor(20_000, async () => (await running("greeter")).length === 3);
  assert.equal(
    new Set((await running("greeter")).map((x) => x.nodeId)).size,
    3,
    "greeters spread over the machines",
  );

  // Every greeter said hi and got a reply through the mesh.
  await checkFor(
    20_000,
    async () => {
      const out = (await cli("service", "logs", "greeter")).stdout;
      return (out.match(/got: hi from \d/g) ?? []).length === 3;
    },
    200,
  );
  // Clients of each machine's server get every reply; queue groups prefer the local member, so
  // across the three machines all three greeters answer.
  const { connect, StringCodec } = await import("nats");
  const sc = StringCodec();
  const from = new Set<string>();
  for (const h of [m, w1, w2]) {
    const nc = await connect({ servers: `nats://${h.addr}:4333` });
    t.after(() => nc.close());
    for (let i = 0; i < 20; i++) {
      const reply = await nc.request("greet", sc.encode(`hi ${i}`), { timeout: 3000 });
      from.add(sc.decode(reply.data));
    }
  }
  assert.deepEqual([...from].sort(), ["hi from 1", "hi from 2", "hi from 3"]);
});

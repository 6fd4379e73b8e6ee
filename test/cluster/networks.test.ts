// Issue 10's walkthrough on three machines of the namespace test bed, as the Swarm walkthrough
// we follow types it: an overlay network, a NATS server found by its service name, three clients
// that connect to `nats-cluster-node-1:4222` by name and talk to each other, and a second server
// that routes to the first by name. Then `network inspect` lists the tasks with their addresses,
// and a task that stops is at once in no DNS answer.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startSwarm, type Swarm } from "../helpers/swarm.js";
import { checkFor } from "../helpers/servers.js";
import { killTaskProcesses } from "../helpers/daemon.js";
import type { Task } from "../../src/api/types.js";

const NODE_MODULES = resolve("node_modules");

// Connects by the server's service name, says hi on a shared subject every 300 ms, and logs what
// the other clients say.
const CLIENT = `
const { connect, StringCodec } = require("nats");
const sc = StringCodec();
const me = "client-" + process.env.SHOAL_TASK_SLOT;
(async () => {
  for (;;) {
    try {
      const nc = await connect({ servers: "nats://nats-cluster-node-1:4222", maxReconnectAttempts: -1 });
      console.log(me + " connected to " + nc.getServer());
      nc.subscribe("chat", { callback: (_e, m) => {
        const text = sc.decode(m.data);
        if (!text.startsWith(me + ":")) console.log("got " + text);
      } });
      setInterval(() => nc.publish("chat", sc.encode(me + ": hi")), 300);
      return;
    } catch (err) {
      console.log("connect failed: " + err.message);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
})();
`;

test("the overlay walkthrough: servers and clients find each other by service name", async (t) => {
  let swarm: Swarm;
  try {
    swarm = await startSwarm(3);
  } catch (err) {
    return t.skip(`no test bed: ${(err as Error).message}`);
  }
  const dir = mkdtempSync(join(tmpdir(), "shoal-client-"));
  writeFileSync(join(dir, "client.js"), CLIENT);
  t.after(async () => {
    await swarm.cli("service", "rm", "client", "nats-cluster-node-1", "nats-cluster-node-2");
    for (const d of swarm.dirs) killTaskProcesses(d);
    await swarm.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  if (swarm.bed.mode !== "netns") return t.skip("needs network namespaces");
  const ok = swarm.ok;

  const netId = (
    await ok("network", "create", "--driver", "overlay", "nats-cluster-example")
  ).trim();
  assert.match(netId, /^[0-9a-z]{12,}$/);
  await ok(
    "service",
    "create",
    "--network",
    "nats-cluster-example",
    "--name",
    "nats-cluster-node-1",
    "--",
    "shoal",
    "nats-server",
    "-cluster",
    "nats://0.0.0.0:6222",
    "-DV",
  );
  await ok(
    "service",
    "create",
    "--name",
    "client",
    "--network",
    "nats-cluster-example",
    "--env",
    `NODE_PATH=${NODE_MODULES}`,
    "--workdir",
    dir,
    "--",
    "node",
    "client.js",
  );
  await ok(
    "service",
    "create",
    "--network",
    "nats-cluster-example",
    "--name",
    "nats-cluster-node-2",
    "--",
    "shoal",
    "nats-server",
    "-cluster",
    "nats://0.0.0.0:6222",
    "-routes",
    "nats://nats-cluster-node-1:6222",
    "-DV",
  );
  await ok("service", "scale", "client=3");
  await checkFor(60_000, async () => (await swarm.running("client")).length === 3, 250);
  const ps = await ok("service", "ps", "client");
  assert.equal(ps.split("\n").filter((l) => /\bRunning\b/.test(l)).length, 3, ps);

  // Every client connected by name and hears the two others.
  await checkFor(
    60_000,
    async () => {
      const logs = await ok("service", "logs", "client");
      return [1, 2, 3].every(
        (slot) =>
          logs.includes(`client-${slot} connected to`) &&
          [1, 2, 3].filter((o) => o !== slot).every((o) => logs.includes(`got client-${o}: hi`)),
      );
    },
    500,
  ).catch(async (err: unknown) => {
    throw new Error(`${String(err)}\n${await ok("service", "logs", "client")}`);
  });
  // The second server routed to the first by its service name.
  await checkFor(60_000, async () =>
    /Route connection created/.test(await ok("service", "logs", "nats-cluster-node-2")),
  );

  // network inspect lists the tasks with their addresses on the network.
  const [inspected] = JSON.parse(await ok("network", "inspect", "nats-cluster-example")) as Array<{
    Id: string;
    Containers?: Record<string, { Name: string; IPv4Address: string }>;
    Tasks?: Array<{ Name: string; IPv4Address: string }>;
  }>;
  assert.equal(inspected!.Id, netId);
  const listed = Object.values(inspected!.Containers ?? {}).concat(inspected!.Tasks ?? []);
  const tasks = [
    ...(await swarm.running("client")),
    ...(await swarm.running("nats-cluster-node-1")),
    ...(await swarm.running("nats-cluster-node-2")),
  ] as Task[];
  for (const task of tasks) {
    const addr = task.networks?.[0]?.addr;
    assert.ok(addr, `task ${task.id} has an address`);
    assert.ok(
      listed.some((c) => c.IPv4Address === addr),
      `${addr} in ${JSON.stringify(listed)}`,
    );
  }

  // DNS from inside a task: the server's VIP, every client task, NXDOMAIN for an unknown task
  // name; a client that stops is gone from the answers at once (no TTL to wait out).
  const server = (await swarm.running("nats-cluster-node-1"))[0]!;
  // The task's resolv.conf names its node's DNS server; ask it from inside the task's network
  // namespace (nsenter: the test bed's namespaces are not all visible to `ip netns exec`).
  const resolvConf = readFileSync(`/etc/netns/shoal-${server.id}/resolv.conf`, "utf8");
  const nameserver = /^nameserver (\S+)$/m.exec(resolvConf)?.[1];
  assert.ok(nameserver, resolvConf);
  const resolve4 = async (name: string): Promise<string> => {
    const script = `const r = new (require("dns").promises.Resolver)(); r.setServers([${JSON.stringify(nameserver)}]); r.resolve4(${JSON.stringify(name)}).then((a) => console.log(a.sort().join(" ")), (e) => console.log(e.code))`;
    const r = await swarm.manager.exec("nsenter", [
      "-t",
      String(server.status.pid),
      "-n",
      process.execPath,
      "-e",
      script,
    ]);
    assert.equal(r.code, 0, `resolving ${name} in the task's namespace: ${r.stderr}`);
    return r.stdout.trim();
  };
  const vip = await resolve4("nats-cluster-node-1");
  assert.match(vip, /^10\.\d+\.\d+\.\d+$/);
  assert.notEqual(vip, server.networks![0]!.addr.split("/")[0], "the VIP, not the task");
  assert.equal(
    await resolve4("tasks.nats-cluster-node-1"),
    server.networks![0]!.addr.split("/")[0],
  );
  assert.equal(await resolve4("tasks.no-such-service"), "ENOTFOUND");
  const clients = await swarm.running("client");
  const addrOf = (x: Task) => x.networks![0]!.addr.split("/")[0]!;
  assert.equal(await resolve4("tasks.client"), clients.map(addrOf).sort().join(" "));
  const victim = clients[0]!;
  process.kill(victim.status.pid!, "SIGKILL");
  await checkFor(
    30_000,
    async () => !(await swarm.running("client")).some((x) => x.id === victim.id),
  );
  await checkFor(3_000, async () => !(await resolve4("tasks.client")).includes(addrOf(victim)));

  // kill -9 of a worker's daemon (its tasks live on in their own namespaces): restarted, it
  // adopts what it made. Once the services are gone, no node keeps a bridge, VXLAN device,
  // veth or firewall chain of the network.
  const worker = swarm.workers[0]!;
  await worker.kill();
  swarm.restartWorker(0);
  await checkFor(60_000, async () => {
    const nodes = await swarm.api<Array<{ status: string }>>("/v1/nodes");
    return nodes.filter((n) => n.status === "ready").length === 3;
  });
  // (What the check below looks for is there while the network has tasks: on the machines
  // that run them, whichever those are.)
  let links = "";
  let chains = "";
  for (const h of swarm.bed.hosts) {
    links += (await h.exec("ip", ["-o", "link"])).stdout;
    chains += (await h.exec("iptables-save", [])).stdout;
  }
  assert.match(links, /: sob[0-9a-f]{5}/, links);
  assert.match(chains, /SO-[0-9A-F]{5}-/i);
  await ok("service", "rm", "client", "nats-cluster-node-1", "nats-cluster-node-2");
  for (const h of swarm.bed.hosts) {
    let left = "";
    await checkFor(60_000, async () => {
      const links = (await h.exec("ip", ["-o", "link"])).stdout;
      const rules = (await h.exec("iptables-save", [])).stdout;
      left = [
        ...links.split("\n").filter((l) => /: so[bxt][0-9a-f]{5}/.test(l)),
        ...rules.split("\n").filter((l) => /SO-[0-9A-F]{5}-/i.test(l)),
      ].join("\n");
      return left === "";
    }).catch(() => assert.fail(`${h.name} keeps:\n${left}`));
  }
});

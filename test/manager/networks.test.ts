// Networks through the HTTP API over an in-memory store and a real Manager: create, list (with
// the predefined networks), inspect, rm and Docker's errors; a service's network targets
// resolved to ids; and the allocator at work in the manager's passes: task addresses before
// assignment, VIPs, the nodes' addresses, and their freeing (terminal tasks, service update
// leaving a network, service rm, node rm), a full network leaving tasks pending.

import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { Api, type ApiHooks } from "../../src/manager/api.js";
import { apiRoutes } from "../../src/api/http.js";
import { matches } from "../../src/api/schema.js";
import {
  defaultServiceSpec,
  type Network,
  type Service,
  type ServiceSpec,
  type Task,
} from "../../src/api/types.js";
import { quietLog } from "../helpers/bus.js";
import { node } from "../store/helpers.js";

interface Reply {
  status: number;
  json: unknown;
}

async function setup(t: TestContext) {
  const store = createMemoryStore();
  const manager = new Manager(store, quietLog, defaultManagerOptions());
  await store.update((tx) => {
    tx.putNode(node("n1", { role: "manager", addr: "192.168.1.1" }));
    tx.putNode(node("n2", { addr: "192.168.1.2" }));
  });
  const hooks = {
    checkPortsFree: async () => {},
  } as unknown as ApiHooks;
  const api = new Api(manager, hooks);
  t.after(() => api.close());
  const call = async (method: string, url: string, body?: unknown): Promise<Reply> => {
    const res = await api.app.inject({
      method: method as "GET",
      url,
      ...(body !== undefined ? { payload: body as object } : {}),
    });
    return { status: res.statusCode, json: res.body ? JSON.parse(res.body) : undefined };
  };
  const ok = async <T>(method: string, url: string, body?: unknown): Promise<T> => {
    const r = await call(method, url, body);
    assert.equal(r.status, 200, `${method} ${url}: ${JSON.stringify(r.json)}`);
    return r.json as T;
  };
  /** One reconcile + allocate + schedule pass. */
  const pass = async () => {
    manager.markDirty();
    await manager.tick();
  };
  const tasks = () => store.view((tx) => tx.listTasks());
  const live = (serviceId: string) =>
    tasks().filter(
      (t) =>
        t.serviceId === serviceId && !["shutdown", "failed", "complete"].includes(t.status.state),
    );
  const net = (id: string) => store.view((tx) => tx.getNetwork(id)!);
  const report = async (t: Task, state: Task["status"]["state"]) =>
    manager.reportStatus(t.nodeId, [{ taskId: t.id, state, message: state }]);
  return { store, manager, call, ok, pass, tasks, live, net, report };
}

function spec(name: string, over: Partial<ServiceSpec> = {}): ServiceSpec {
  return { ...defaultServiceSpec(name), command: ["sleep", "1000"], ...over };
}

function errorOf(r: Reply): string {
  return (r.json as { message: string }).message;
}

test("create, list, inspect and remove networks; Docker's errors", async (t) => {
  const s = await setup(t);
  const a = await s.ok<Network>("POST", "/v1/networks", { name: "backend" });
  assert.equal(a.driver, "overlay");
  assert.equal(a.subnet, "10.0.1.0/24", "10.0.0.0/24 is the ingress network's");
  assert.equal(a.gateway, "10.0.1.1");
  assert.equal(a.vni, 4096);
  const b = await s.ok<Network>("POST", "/v1/networks", {
    name: "front",
    driver: "bridge",
    subnet: "172.30.0.0/16",
    gateway: "172.30.0.254",
    internal: true,
    attachable: true,
    labels: { team: "a" },
  });
  assert.deepEqual(
    [b.subnet, b.gateway, b.vni, b.internal],
    ["172.30.0.0/16", "172.30.0.254", 4097, true],
  );

  const dup = await s.call("POST", "/v1/networks", { name: "backend" });
  assert.equal(dup.status, 409);
  assert.equal(errorOf(dup), "network with name backend already exists");
  const pre = await s.call("POST", "/v1/networks", { name: "ingress" });
  assert.equal(errorOf(pre), "network with name ingress already exists");
  const overlap = await s.call("POST", "/v1/networks", { name: "x", subnet: "172.30.5.0/24" });
  assert.equal(overlap.status, 409);
  assert.equal(errorOf(overlap), "Pool overlaps with other one on this address space");
  const ingressOverlap = await s.call("POST", "/v1/networks", { name: "x", subnet: "10.0.0.0/16" });
  assert.equal(errorOf(ingressOverlap), "Pool overlaps with other one on this address space");
  const badName = await s.call("POST", "/v1/networks", { name: "-bad" });
  assert.equal(badName.status, 400);
  const badSubnet = await s.call("POST", "/v1/networks", { name: "y", subnet: "10.9.0.1/24" });
  assert.equal(badSubnet.status, 400);
  assert.match(errorOf(badSubnet), /host bits/);

  const list = await s.ok<Array<{ Name: string; Driver: string; Scope: string }>>(
    "GET",
    "/v1/networks",
  );
  assert.ok(matches(apiRoutes.listNetworks.reply, list), "list matches its reply schema");
  assert.deepEqual(
    list.map((n) => [n.Name, n.Driver, n.Scope]),
    [
      ["bridge", "bridge", "local"],
      ["host", "host", "local"],
      ["ingress", "overlay", "swarm"],
      ["backend", "overlay", "swarm"],
      ["front", "bridge", "local"],
    ],
  );
  const byPrefix = await s.ok<{ Name: string; IPAM: { Config: unknown[] }; Labels: unknown }>(
    "GET",
    `/v1/networks/${b.id.slice(0, 5)}`,
  );
  assert.equal(byPrefix.Name, "front");
  assert.deepEqual(byPrefix.IPAM.Config, [{ Subnet: "172.30.0.0/16", Gateway: "172.30.0.254" }]);
  assert.deepEqual(byPrefix.Labels, { team: "a" });
  const ingress = await s.ok<{ Ingress: boolean; IPAM: { Config: unknown[] } }>(
    "GET",
    "/v1/networks/ingress",
  );
  assert.equal(ingress.Ingress, true);
  assert.deepEqual(ingress.IPAM.Config, [{ Subnet: "10.0.0.0/24", Gateway: "10.0.0.1" }]);
  assert.equal((await s.call("GET", "/v1/networks/nope")).status, 404);
  assert.equal(errorOf(await s.call("GET", "/v1/networks/nope")), "network nope not found");

  const rmPre = await s.call("DELETE", "/v1/networks/bridge");
  assert.equal(rmPre.status, 403);
  assert.equal(errorOf(rmPre), "bridge is a pre-defined network and cannot be removed");
  // In use by a service.
  const svc = await s.ok<Service>("POST", "/v1/services", {
    spec: spec("web", { networks: [{ target: "backend" }] }),
  });
  const inUse = await s.call("DELETE", "/v1/networks/backend");
  assert.equal(inUse.status, 409);
  assert.equal(errorOf(inUse), `network ${a.id} is in use by service ${svc.id}`);
  const gone = await s.ok<Network>("DELETE", "/v1/networks/front");
  assert.equal(gone.id, b.id);
  assert.equal(
    s.store.view((tx) => tx.getNetworkByName("front")),
    undefined,
  );
  // The freed subnet and name can be used again.
  await s.ok<Network>("POST", "/v1/networks", { name: "front", subnet: "172.30.0.0/16" });
});

test("service network targets: names, ids and prefixes become ids; errors", async (t) => {
  const s = await setup(t);
  const a = await s.ok<Network>("POST", "/v1/networks", { name: "backend" });
  const b = await s.ok<Network>("POST", "/v1/networks", { name: "front" });
  const svc = await s.ok<Service>("POST", "/v1/services", {
    spec: spec("web", {
      networks: [{ target: "backend", aliases: ["db"] }, { target: b.id.slice(0, 6) }],
    }),
  });
  assert.deepEqual(svc.spec.networks, [{ target: a.id, aliases: ["db"] }, { target: b.id }]);
  // vip mode (the default): one VIP per network, from the upper half.
  assert.deepEqual(svc.virtualIps, [
    { networkId: a.id, addr: "10.0.1.128" },
    { networkId: b.id, addr: "10.0.2.128" },
  ]);
  const cases: Array<[Partial<ServiceSpec>, number, RegExp]> = [
    [{ networks: [{ target: "nope" }] }, 404, /^network nope not found$/],
    [{ networks: [{ target: "backend" }, { target: a.id }] }, 400, /given more than once/],
    [{ networks: [{ target: "ingress" }] }, 400, /cannot be used with services/],
    [
      {
        endpointMode: "dnsrr",
        ports: [{ published: 8080, target: 80, protocol: "tcp", mode: "ingress" }],
      },
      400,
      /^EndpointSpec: port published with ingress mode can't be used with dnsrr mode$/,
    ],
    [{ networks: [{ target: "backend", aliases: ["bad alias"] }] }, 400, /aliases/],
    [{ networks: Array.from({ length: 17 }, (_, i) => ({ target: `n${i}` })) }, 400, /networks/],
  ];
  for (const [over, status, re] of cases) {
    const r = await s.call("POST", "/v1/services", { spec: spec("other", over) });
    assert.equal(r.status, status, JSON.stringify(over));
    assert.match(errorOf(r), re);
  }
  // dnsrr with a host-mode port is fine, and gets no VIP.
  const dns = await s.ok<Service>("POST", "/v1/services", {
    spec: spec("dns", {
      endpointMode: "dnsrr",
      networks: [{ target: "backend" }],
      ports: [{ published: 8081, target: 80, protocol: "tcp", mode: "host" }],
    }),
  });
  assert.equal(dns.virtualIps, undefined);
});

test("tasks get addresses before assignment, nodes get theirs; all freed again", async (t) => {
  const s = await setup(t);
  const a = await s.ok<Network>("POST", "/v1/networks", { name: "backend" });
  const svc = await s.ok<Service>("POST", "/v1/services", {
    spec: spec("web", {
      mode: { replicated: { replicas: 3 } },
      networks: [{ target: "backend", aliases: ["www"] }],
    }),
  });
  await s.pass();
  const live = s.live(svc.id);
  assert.equal(live.length, 3);
  for (const task of live) {
    assert.equal(task.status.state, "assigned");
    assert.equal(task.networks?.length, 1);
    assert.equal(task.networks![0]!.networkId, a.id);
    assert.deepEqual(task.networks![0]!.aliases, ["www"]);
  }
  const addrs = live.map((x) => x.networks![0]!.addr);
  assert.equal(new Set(addrs).size, 3, "no address given twice");
  for (const x of addrs) assert.match(x, /^10\.0\.1\.([2-9]|[1-9]\d|1[01]\d|12[0-7])\/24$/);
  // Each node running a task has its own address, distinct from the tasks'.
  await s.pass();
  const nodes = new Set(live.map((x) => x.nodeId));
  const na = s.net(a.id).nodeAddrs;
  assert.deepEqual(Object.keys(na).sort(), [...nodes].sort());
  for (const v of Object.values(na)) assert.ok(!addrs.includes(v), `${v} also a task's`);

  // Inspect shows the tasks with their addresses and the peers.
  const view = await s.ok<{
    Containers: Record<string, { IPv4Address: string }>;
    Peers: unknown[];
  }>("GET", "/v1/networks/backend");
  assert.deepEqual(
    Object.values(view.Containers)
      .map((c) => c.IPv4Address)
      .sort(),
    [...addrs].sort(),
  );
  assert.equal(view.Peers.length, nodes.size);

  // Node rm frees the node's address (its tasks are done).
  const victim = live.find((x) => x.nodeId === "n2") ?? live[0]!;
  const gone = victim.nodeId;
  for (const x of live.filter((y) => y.nodeId === gone)) await s.report(x, "shutdown");
  await s.manager.removeNode(gone, true);
  await s.pass();
  assert.equal(s.net(a.id).nodeAddrs[gone], undefined);
  await s.store.update((tx) => tx.putNode(node(gone, { addr: "192.168.1.9" })));
  await s.pass();

  // A task that fails frees its address; its replacement may reuse it, never while it is held.
  const first = s.live(svc.id).find((x) => x.networks !== undefined)!;
  await s.report(first, "failed");
  await s.pass();
  const now = s.live(svc.id);
  const held = now.map((x) => x.networks![0]!.addr);
  assert.equal(new Set(held).size, held.length);
  assert.equal(now.length, 3);

  // The service leaves the network: VIP dropped, new tasks without addresses, old ones stop.
  const upd = await s.ok<Service>("POST", `/v1/services/${svc.id}/update`, {
    spec: spec("web", { mode: { replicated: { replicas: 3 } } }),
  });
  assert.equal(upd.virtualIps, undefined);
  for (let i = 0; i < 12; i++) {
    await s.pass();
    for (const x of s.live(svc.id)) {
      if (x.desiredState !== "running") await s.report(x, "shutdown");
      else if (x.status.state === "assigned") await s.report(x, "running");
    }
  }
  assert.ok(s.live(svc.id).every((x) => x.networks === undefined));
  assert.deepEqual(s.net(a.id).nodeAddrs, {}, "no node runs a task of the network");
  // Now the network can go.
  await s.ok("DELETE", "/v1/networks/backend");
});

test("update adds a network: VIP given; service rm frees it; a full network keeps tasks pending", async (t) => {
  const s = await setup(t);
  const a = await s.ok<Network>("POST", "/v1/networks", { name: "tiny", subnet: "10.50.0.0/29" });
  const svc = await s.ok<Service>("POST", "/v1/services", { spec: spec("web") });
  assert.equal(svc.virtualIps, undefined);
  const upd = await s.ok<Service>("POST", `/v1/services/${svc.id}/update`, {
    spec: spec("web", { networks: [{ target: "tiny" }] }),
  });
  assert.deepEqual(upd.virtualIps, [{ networkId: a.id, addr: "10.50.0.4" }]);
  assert.equal(upd.version, 2, "joining a network replaces the tasks");
  const other = await s.ok<Service>("POST", "/v1/services", {
    spec: spec("api", { networks: [{ target: "tiny" }] }),
  });
  assert.deepEqual(other.virtualIps, [{ networkId: a.id, addr: "10.50.0.5" }]);
  await s.ok("DELETE", `/v1/services/${svc.id}`);
  const third = await s.ok<Service>("POST", "/v1/services", {
    spec: spec("third", { networks: [{ target: "tiny" }] }),
  });
  assert.deepEqual(third.virtualIps, [{ networkId: a.id, addr: "10.50.0.4" }], "freed by rm");

  // A /29 has 2 task/node addresses (.2, .3): 3 replicas of api cannot all get one.
  await s.ok(`POST`, `/v1/services/${other.id}/scale`, { replicas: 3 });
  await s.pass();
  const tasks = s.live(other.id).concat(s.live(third.id));
  const pending = tasks.filter((x) => x.status.state === "pending");
  assert.ok(pending.length >= 1, JSON.stringify(tasks.map((x) => x.status)));
  for (const p of pending) {
    assert.equal(p.status.err, "no addresses left on network tiny");
    assert.equal(p.networks, undefined);
    assert.equal(p.nodeId, "");
  }
  const withAddr = tasks.filter((x) => x.networks !== undefined);
  assert.ok(withAddr.every((x) => x.status.state === "assigned"));

  // Tasks take the addresses first: a full lower half leaves no node address.
  await s.pass();
  assert.deepEqual(s.net(a.id).nodeAddrs, {});
});

test("where every node reported it cannot have overlay networks, create says why", async (t) => {
  const s = await setup(t);
  const unable = {
    overlay: false,
    reason: "overlay networks need root (the agent runs as uid 65534)",
  };
  // One node that can is enough.
  await s.manager.heartbeat("n1", Date.now(), { networks: unable });
  await s.ok("POST", "/v1/networks", { name: "one-can", driver: "overlay" });
  await s.manager.heartbeat("n2", Date.now(), { networks: unable });
  const r = await s.call("POST", "/v1/networks", { name: "none-can", driver: "overlay" });
  assert.equal(r.status, 400);
  assert.equal(
    errorOf(r),
    "no node of the swarm can have overlay networks: overlay networks need root (the agent runs as uid 65534)",
  );
});

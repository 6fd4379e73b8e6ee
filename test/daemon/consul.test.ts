// The Consul-compatible catalog of a real `shoal daemon`, read and written with the real `consul`
// npm client: KV (put, get, cas, recurse, keys, delete), catalog and health reads, agent
// registration, a watch that follows a scale from 2 to 5; a blocking query that returns when its
// service scales and not before (unrelated changes and reconcile passes first); DNS
// `<service>.service.consul` answering the healthy tasks only; and a start that fails naming
// the catalog address when it is taken.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { createServer, type AddressInfo } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Consul from "consul";
import packet from "dns-packet";
import {
  HTTP_TASK,
  apiAt,
  checkFor,
  runCli,
  startDaemon,
  watchCounters,
  type TestDaemon,
} from "../helpers/daemon.js";
import type { Task } from "../../src/api/types.js";
import type { ServiceEntry } from "../../src/api/consul.js";

const SLEEP = ["sleep", "600"];

interface KvItem {
  Key: string;
  Value: string;
  Flags: number;
  ModifyIndex: number;
}

const tasksOf = (d: TestDaemon, service: string) =>
  apiAt<Task[]>(d.dataDir, `/v1/tasks?service=${service}`);

async function ok(d: TestDaemon, ...args: string[]): Promise<string> {
  const r = await d.cli(...args);
  assert.equal(r.code, 0, `shoal ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

async function passing(d: TestDaemon, name: string): Promise<ServiceEntry[]> {
  const res = await fetch(`http://127.0.0.1:${d.consulPort}/v1/health/service/${name}?passing`);
  return (await res.json()) as ServiceEntry[];
}

test("the consul client: KV, catalog, health, registration, and a watch that follows a scale from 2 to 5", async (t) => {
  const d = await startDaemon({ consul: true });
  t.after(() => d.cleanup());
  const consul = new Consul({ host: "127.0.0.1", port: d.consulPort! });

  // ---- KV ----
  assert.equal(await consul.kv.set("app/db/host", "h1"), true);
  const got = (await consul.kv.get("app/db/host")) as unknown as KvItem;
  assert.equal(got.Value, "h1");
  // A CAS that loses: Consul answers `false` (the client resolves it as a falsy value).
  assert.ok((await consul.kv.set({ key: "app/db/host", value: "h2", cas: 0 })) !== true);
  assert.equal(
    await consul.kv.set({ key: "app/db/host", value: "h2", cas: got.ModifyIndex }),
    true,
  );
  assert.ok(
    (await consul.kv.set({ key: "app/db/host", value: "h3", cas: got.ModifyIndex })) !== true,
    "a stale index loses",
  );
  assert.equal(((await consul.kv.get("app/db/host")) as unknown as KvItem).Value, "h2");
  assert.equal(await consul.kv.set({ key: "app/name", value: "shop", flags: 9 }), true);
  const all = (await consul.kv.get({ key: "app/", recurse: true })) as unknown as KvItem[];
  assert.deepEqual(
    all.map((e) => [e.Key, e.Value, e.Flags]),
    [
      ["app/db/host", "h2", 0],
      ["app/name", "shop", 9],
    ],
  );
  assert.deepEqual(await consul.kv.keys({ key: "app/", separator: "/" }), ["app/db/", "app/name"]);
  assert.equal(await consul.kv.del("app/name"), true);
  assert.equal(await consul.kv.get("app/name"), undefined);
  await consul.kv.del({ key: "app/", recurse: true });
  assert.equal(await consul.kv.get({ key: "app/", recurse: true }), undefined);
  // Consul's limit and words.
  const big = await fetch(`http://127.0.0.1:${d.consulPort}/v1/kv/big`, {
    method: "PUT",
    body: Buffer.alloc(512 * 1024 + 1),
  });
  assert.equal(big.status, 413);
  assert.equal(await big.text(), "Value exceeds 524288 byte limit");
  assert.equal(big.headers.get("x-consul-knownleader"), "true");
  assert.equal(big.headers.get("x-consul-lastcontact"), "0");
  const fits = await fetch(`http://127.0.0.1:${d.consulPort}/v1/kv/big`, {
    method: "PUT",
    body: Buffer.alloc(512 * 1024, 1),
  });
  assert.equal(await fits.text(), "true");

  // ---- agent, status, registration ----
  const self = (await consul.agent.self()) as { Config: { Datacenter: string } };
  assert.equal(self.Config.Datacenter, "dc1");
  assert.match(await consul.status.leader(), /:8300$/);
  await consul.agent.service.register({
    name: "billing",
    id: "billing-1",
    address: "10.9.9.9",
    port: 443,
    tags: ["ext"],
  });
  const billing = await consul.catalog.service.nodes("billing");
  assert.deepEqual(
    billing.map((e: { ServiceID: string; ServiceAddress: string; ServicePort: number }) => [
      e.ServiceID,
      e.ServiceAddress,
      e.ServicePort,
    ]),
    [["billing-1", "10.9.9.9", 443]],
  );
  await consul.agent.service.deregister("billing-1");
  assert.deepEqual(await consul.catalog.service.nodes("billing"), []);
  await assert.rejects(consul.agent.service.deregister("billing-1"), /not found/);
  const gone = await fetch(
    `http://127.0.0.1:${d.consulPort}/v1/agent/service/deregister/billing-1`,
    {
      method: "PUT",
    },
  );
  assert.equal(gone.status, 404);
  assert.match(await gone.text(), /^Unknown service ID "billing-1"/);

  // ---- a service, watched from 2 to 5 passing instances ----
  await ok(
    d,
    ...["service", "create", "--name", "web", "--replicas", "2", "-d"],
    ...["--label", "consul.tags=blue,v2", "--", ...SLEEP],
  );
  const seen: number[] = [];
  const watch = consul.watch({
    method: consul.health.service,
    options: { service: "web", passing: "true", wait: "30s" } as Record<string, string>,
  });
  const errors: string[] = [];
  watch.on("change", (data: ServiceEntry[]) => seen.push(data.length));
  watch.on("error", (err: Error) => errors.push(err.message));
  await checkFor(30_000, () => seen.at(-1) === 2, 50);
  const before = seen.length;
  await ok(d, "service", "scale", "web=5", "-d");
  await checkFor(30_000, () => seen.at(-1) === 5, 50);
  const during = seen.slice(before);
  assert.deepEqual(
    during.filter((n, i) => i > 0 && n < during[i - 1]!),
    [],
    `a scale up never shows fewer: ${seen.join(",")}`,
  );
  watch.end();
  assert.deepEqual(errors, []);

  const services = await consul.catalog.service.list();
  assert.deepEqual(services, { web: ["blue", "v2"] });
  const nodes = await consul.catalog.node.list();
  assert.equal(nodes.length, 1);
  const entries = (await consul.health.service({
    service: "web",
    passing: true,
  })) as ServiceEntry[];
  const running = (await tasksOf(d, "web")).filter((x) => x.status.state === "running");
  assert.deepEqual(entries.map((e) => e.Service.ID).sort(), running.map((x) => x.id).sort());
  for (const e of entries) {
    assert.equal(e.Service.Service, "web");
    assert.deepEqual(e.Service.Tags, ["blue", "v2"]);
    assert.deepEqual(
      e.Checks.map((c) => [c.CheckID, c.Status]),
      [
        ["serfHealth", "passing"],
        [`service:${e.Service.ID}`, "passing"],
      ],
    );
  }
  const critical = (await consul.health.state("critical")) as unknown[];
  assert.deepEqual(critical, []);
});

test("a blocking query returns when its service scales, and not before", async (t) => {
  const d = await startDaemon({ consul: true });
  t.after(() => d.cleanup());
  const base = `http://127.0.0.1:${d.consulPort}`;
  await ok(d, "service", "create", "--name", "web", "--replicas", "2", "-d", "--", ...SLEEP);
  await checkFor(30_000, async () => (await passing(d, "web")).length === 2, 100);
  const first = await fetch(`${base}/v1/health/service/web?passing`);
  const index = Number(first.headers.get("x-consul-index"));
  assert.ok(index > 0);

  let answered: Response | undefined;
  const blocked = fetch(`${base}/v1/health/service/web?passing&index=${index}&wait=2m`).then(
    (r) => (answered = r),
  );
  // Other changes: a KV write, another service that starts, reconcile passes and heartbeats.
  await fetch(`${base}/v1/kv/noise`, { method: "PUT", body: "x" });
  await ok(d, "service", "create", "--name", "other", "-d", "--", ...SLEEP);
  await checkFor(30_000, async () => (await passing(d, "other")).length === 1, 100);
  await watchCounters(d.dataDir, { passes: 3, heartbeats: 2 }, () => {
    assert.equal(answered, undefined, "the blocking query answered before web changed");
  });

  await ok(d, "service", "scale", "web=3", "-d");
  const res = await blocked;
  assert.equal(res.status, 200);
  const next = Number(res.headers.get("x-consul-index"));
  assert.ok(next > index, `index ${next} after ${index}`);
  // Following the index, the third instance arrives passing.
  let idx = next;
  let body = (await res.json()) as ServiceEntry[];
  while (body.length < 3) {
    const r = await fetch(`${base}/v1/health/service/web?passing&index=${idx}&wait=30s`);
    idx = Number(r.headers.get("x-consul-index"));
    body = (await r.json()) as ServiceEntry[];
  }
  assert.equal(body.length, 3);
});

/** The SRV answers (ports) and A answers of `name` from the Consul DNS port. */
async function dnsAsk(port: number, name: string, type: "A" | "SRV") {
  const sock = createSocket("udp4");
  try {
    const res = await new Promise<packet.DecodedPacket>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no DNS answer in 3 s")), 3000);
      sock.on("message", (m) => {
        clearTimeout(timer);
        resolve(packet.decode(m));
      });
      sock.send(
        packet.encode({ type: "query", id: 7, questions: [{ type, name, class: "IN" }] }),
        port,
        "127.0.0.1",
      );
    });
    return (res.answers ?? []).map((a) =>
      a.type === "SRV" ? (a.data as { port: number }).port : (a as { data: string }).data,
    );
  } finally {
    sock.close();
  }
}

test("DNS web.service.consul answers the healthy tasks only: one made unhealthy leaves the answer", async (t) => {
  const d = await startDaemon({ consul: true });
  t.after(() => d.cleanup());
  const wd = mkdtempSync(join(tmpdir(), "shoal-consul-"));
  t.after(() => rmSync(wd, { recursive: true, force: true }));
  const free = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => free.once("listening", r));
  const published = (free.address() as AddressInfo).port;
  await new Promise((r) => free.close(r));
  await ok(
    d,
    "service",
    "create",
    "--name",
    "web",
    "--replicas",
    "3",
    "-d",
    "-p",
    `${published}:8000`,
    "-w",
    wd,
    "--restart-delay",
    "0s",
    "--health-cmd",
    "test ! -f down.$SHOAL_TASK_SLOT",
    "--health-interval",
    "200ms",
    "--health-retries",
    "2",
    "--",
    ...HTTP_TASK,
  );
  // Running and passing its check: a task of slot 2 can still be running, unhealthy or starting
  // (its replacement), for a moment after its check fails; the answer leaves it out.
  const healthyPorts = async () =>
    (await tasksOf(d, "web"))
      .filter(
        (x) =>
          x.status.state === "running" &&
          x.desiredState === "running" &&
          x.status.health?.status === "healthy",
      )
      .map((x) => x.hostPorts["8000"]!)
      .sort();
  const answer = async () =>
    ((await dnsAsk(d.consulDnsPort!, "web.service.consul", "SRV")) as number[]).sort();
  await checkFor(30_000, async () => (await healthyPorts()).length === 3, 100);
  await checkFor(10_000, async () => (await answer()).length === 3, 100);
  const first = await answer();
  const health = (await tasksOf(d, "web")).map((x) => [x.status.state, x.status.health?.status]);
  assert.deepEqual(first, await healthyPorts(), JSON.stringify(health));
  assert.deepEqual(await dnsAsk(d.consulDnsPort!, "web.service.consul", "A"), ["127.0.0.1"]);

  // Slot 2's check starts failing: its task leaves the answer, the others stay.
  const slot2 = (await tasksOf(d, "web")).find(
    (x) => x.slot === 2 && x.status.state === "running",
  )!;
  writeFileSync(join(wd, "down.2"), "");
  await checkFor(30_000, async () => !(await answer()).includes(slot2.hostPorts["8000"]!), 100);
  const left = await answer();
  assert.equal(left.length, 2);
  assert.deepEqual(left, await healthyPorts());
  assert.ok(
    (await passing(d, "web")).every((e) => e.Service.ID !== slot2.id),
    "nor is it passing in the health API",
  );
});

test("a daemon whose catalog address is taken fails at start, naming it", async (t) => {
  const taken = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => taken.once("listening", r));
  t.after(() => taken.close());
  const port = (taken.address() as AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), "shoal-consul-taken-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = await runCli(
    dir,
    [
      "daemon",
      "--data-dir",
      dir,
      "--nats-port",
      "-1",
      "--listen-addr",
      "127.0.0.1:0",
      "--consul-addr",
      `127.0.0.1:${port}`,
      "--consul-dns-addr",
      "",
      "--http-addr",
      "",
      "--metrics-addr",
      "",
    ],
    30_000,
  );
  assert.notEqual(r.code, 0);
  assert.match(r.stdout + r.stderr, new RegExp(`consul: cannot listen on 127\\.0\\.0\\.1:${port}`));
});

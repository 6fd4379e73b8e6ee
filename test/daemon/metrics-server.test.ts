// The node's metrics endpoint: /metrics in Prometheus' text format with the task gauges and
// node totals, /sd where a discovery function is given, 404 elsewhere; "" serves nothing; a
// taken port is a warning and the daemon goes on.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { startMetricsServer } from "../../src/daemon/metrics-server.js";
import { NodeMetrics, type TrafficFigures } from "../../src/node/prometheus.js";
import type { SampledStats } from "../../src/node/metrics.js";

const stats: SampledStats[] = [
  {
    taskId: "t1",
    name: "web.1.t1",
    serviceId: "s1",
    serviceName: "web",
    cpuCores: 0.75,
    memoryBytes: 1000,
    memoryLimitBytes: 4000,
    sampledAt: 1,
  },
  {
    taskId: "t2",
    name: "web.2.t2",
    serviceId: "s1",
    serviceName: "web",
    cpuCores: 0.25,
    memoryBytes: 500,
    sampledAt: 1,
  },
];

function metrics(latest: SampledStats[]) {
  return new NodeMetrics({
    nodeId: "n1",
    hostname: "host1",
    latest: () => latest,
    resources: { nanoCpus: 4, memoryBytes: 8000 },
  });
}

const logs = () => {
  const warnings: string[] = [];
  return { warnings, log: { info() {}, warn: (m: string) => warnings.push(m), error() {} } };
};

test("/metrics: per-task gauges with their labels, node totals, the daemon's own figures", async (t) => {
  const { log } = logs();
  const m = await startMetricsServer({
    addr: "127.0.0.1:0",
    metrics: metrics(stats),
    sd: () => [{ targets: ["a:1"], labels: {} }],
    log,
  });
  t.after(() => m.close());
  assert.ok(m.port);
  const res = await fetch(`http://127.0.0.1:${m.port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  assert.match(
    text,
    /^shoal_task_cpu_cores\{task_id="t1",task_name="web\.1\.t1",service_id="s1",service_name="web",node_id="n1",node="host1"\} 0\.75$/m,
  );
  assert.match(text, /^shoal_task_memory_limit_bytes\{task_id="t1",.*\} 4000$/m);
  assert.doesNotMatch(text, /^shoal_task_memory_limit_bytes\{task_id="t2"/m);
  assert.match(text, /^shoal_node_cpu_cores_used\{node_id="n1",node="host1"\} 1$/m);
  assert.match(text, /^shoal_node_memory_used_bytes\{node_id="n1",node="host1"\} 1500$/m);
  assert.match(text, /^shoal_node_tasks\{node_id="n1",node="host1"\} 2$/m);
  assert.match(text, /^process_cpu_seconds_total /m);
  const sd = await fetch(`http://127.0.0.1:${m.port}/sd`);
  assert.deepEqual(await sd.json(), [{ targets: ["a:1"], labels: {} }]);
  assert.equal((await fetch(`http://127.0.0.1:${m.port}/nope`)).status, 404);
});

test("a task gone since the last scrape is no longer listed", async (t) => {
  const latest = [...stats];
  const { log } = logs();
  const m = await startMetricsServer({ addr: "127.0.0.1:0", metrics: metrics(latest), log });
  t.after(() => m.close());
  assert.match(await (await fetch(`http://127.0.0.1:${m.port}/metrics`)).text(), /task_id="t2"/);
  latest.pop();
  const text = await (await fetch(`http://127.0.0.1:${m.port}/metrics`)).text();
  assert.doesNotMatch(text, /task_id="t2"/);
  // Without a discovery function (a worker), /sd is not there.
  assert.equal((await fetch(`http://127.0.0.1:${m.port}/sd`)).status, 404);
});

test('"" serves nothing; a taken port is a warning, not a failure', async (t) => {
  const { warnings, log } = logs();
  const off = await startMetricsServer({ addr: "", metrics: metrics([]), log });
  assert.equal(off.port, undefined);
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
  t.after(() => blocker.close());
  const port = (blocker.address() as { port: number }).port;
  const taken = await startMetricsServer({ addr: `127.0.0.1:${port}`, metrics: metrics([]), log });
  assert.equal(taken.port, undefined);
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0]!,
    new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE.*going on without /metrics`),
  );
});

test("/metrics: the router's requests and latency histogram, the mesh's connections and bytes", async () => {
  // 13 bounds then +Inf, per bucket (not cumulative): 2 under 1 ms, 3 in (5 ms, 10 ms], 1 beyond.
  const bounds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  const buckets = [2, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  const traffic: TrafficFigures = {
    router: [
      {
        serviceId: "s1",
        service: "web",
        requests: 7,
        latency: { bounds, buckets, count: 6, sumSeconds: 12.5 },
      },
    ],
    mesh: [{ serviceId: "s2", service: "db", connections: 4, bytesIn: 100, bytesOut: 2000 }],
  };
  const m = new NodeMetrics({
    nodeId: "n1",
    hostname: "host1",
    latest: () => [],
    resources: { nanoCpus: 1, memoryBytes: 1 },
    traffic: () => traffic,
  });
  const text = await m.render();
  const lines = (prefix: string) => text.split("\n").filter((l) => l.startsWith(prefix));
  assert.deepEqual(lines("shoal_router_requests_total"), [
    'shoal_router_requests_total{service="web",service_id="s1"} 7',
  ]);
  assert.match(text, /^# TYPE shoal_router_requests_total counter$/m);
  assert.match(text, /^# TYPE shoal_router_request_duration_seconds histogram$/m);
  const l = 'service="web",service_id="s1"';
  assert.deepEqual(lines("shoal_router_request_duration_seconds"), [
    ...bounds.map((b, i) => {
      const cum = buckets.slice(0, i + 1).reduce((x, y) => x + y, 0);
      return `shoal_router_request_duration_seconds_bucket{${l},le="${b}"} ${cum}`;
    }),
    `shoal_router_request_duration_seconds_bucket{${l},le="+Inf"} 6`,
    `shoal_router_request_duration_seconds_sum{${l}} 12.5`,
    `shoal_router_request_duration_seconds_count{${l}} 6`,
  ]);
  assert.deepEqual(lines("shoal_mesh_connections_total"), [
    'shoal_mesh_connections_total{service="db",service_id="s2"} 4',
  ]);
  assert.deepEqual(lines("shoal_mesh_bytes_total"), [
    'shoal_mesh_bytes_total{service="db",service_id="s2",direction="in"} 100',
    'shoal_mesh_bytes_total{service="db",service_id="s2",direction="out"} 2000',
  ]);
  // Figures that grew are read again at the next scrape (cumulative, not added twice).
  traffic.router[0]!.requests = 9;
  traffic.mesh[0]!.connections = 5;
  const again = await m.render();
  assert.match(again, /^shoal_router_requests_total\{service="web",service_id="s1"\} 9$/m);
  assert.match(again, /^shoal_mesh_connections_total\{service="db",service_id="s2"\} 5$/m);
});

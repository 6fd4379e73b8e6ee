// Task metrics end to end on a real daemon: a process task that burns CPU shows most of a core
// in `shoal stats --no-stream` and on the node's /metrics, with nonzero memory; the manager's
// /sd lists the node and the task (a service labelled prometheus.io/port); with the real
// Debian `prometheus` (when installed), its http_sd_configs discovers both and scrapes them;
// and `--metrics-addr ""` serves nothing. The router's requests and latency histogram and the
// mesh's connections and bytes show per service, exactly as many as were sent.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createConnection, createServer } from "node:net";
import { checkFor, startDaemon } from "../helpers/daemon.js";
import { routedGet, routerTaskScript } from "../helpers/router.js";

/** Most of a core, or on a machine busier than its CPUs (other tests share it) most of the
 * share of a core it can give. */
function enoughCores(): number {
  return 0.5 * Math.min(1, cpus().length / Math.max(1, loadavg()[0]!));
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const PROMETHEUS = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].find((p) => existsSync(p));

test("a task burning CPU shows in shoal stats and /metrics; /sd lists the node and the task", async (t) => {
  const d = await startDaemon({ metrics: true });
  t.after(() => d.cleanup());
  assert.ok(d.metricsPort, "the daemon logs its /metrics address");
  // A task that burns CPU and serves a metrics page on its published port.
  const app = [
    'require("http").createServer((q, r) => r.end("app_up 1\\n")).listen(process.env.PORT);',
    "setImmediate(function burn() { const e = Date.now() + 50; while (Date.now() < e); setImmediate(burn); });",
  ].join(" ");
  const created = await d.cli(
    ...["service", "create", "--name", "burn", "--label", "prometheus.io/port=8000"],
    ...["-p", `${await freePort()}:8000`, "--", process.execPath, "-e", app],
  );
  assert.equal(created.code, 0, created.stderr);

  let row = "";
  await checkFor(30_000, async () => {
    const r = await d.cli(
      "stats",
      "--no-stream",
      "--format",
      "{{.Name}} {{.CPUPerc}} {{.MemUsage}}",
      "burn",
    );
    row = r.stdout.trim();
    const m = /^burn\.1\.\S+ ([\d.]+)% (\S+) \//.exec(row);
    return m !== null && Number(m[1]) / 100 > enoughCores() && m[2] !== "0B";
  }).catch(() => {});
  const m = /^burn\.1\.\S+ ([\d.]+)% (\S+) \//.exec(row);
  assert.ok(m, `a row for the task: ${row}`);
  assert.ok(Number(m[1]) / 100 > enoughCores(), `CPU % ${m[1]}, wanted > ${enoughCores() * 100}`);
  assert.notEqual(m[2], "0B", "memory in use");
  const table = await d.cli("stats", "--no-stream");
  assert.match(
    table.stdout,
    /^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O\s+BLOCK I\/O\s+PIDS$/m,
  );

  let cores = 0;
  let text = "";
  await checkFor(30_000, async () => {
    text = await (await fetch(`http://127.0.0.1:${d.metricsPort}/metrics`)).text();
    const g = /^shoal_task_cpu_cores\{[^}]*service_name="burn"[^}]*\} (\S+)$/m.exec(text);
    cores = Number(g?.[1] ?? 0);
    return cores > enoughCores();
  }).catch(() => {});
  assert.ok(cores > enoughCores(), `shoal_task_cpu_cores ${cores}`);
  const mem = /^shoal_task_memory_bytes\{[^}]*service_name="burn"[^}]*\} (\S+)$/m.exec(text);
  assert.ok(Number(mem?.[1]) > 0, "shoal_task_memory_bytes");
  assert.match(text, /^process_resident_memory_bytes \d+/m);

  const groups = await checkFor(10_000, async () => {
    const sd = (await (await fetch(`http://127.0.0.1:${d.metricsPort}/sd`)).json()) as Array<{
      targets: string[];
      labels: Record<string, string>;
    }>;
    return sd.length === 2 ? sd : undefined;
  });
  assert.deepEqual(
    groups!.map((g) => g.labels["shoal_kind"]),
    ["node", "task"],
  );
  assert.equal(groups![0]!.targets[0]!.endsWith(`:${d.metricsPort}`), true);

  if (!PROMETHEUS) return t.diagnostic("prometheus is not installed: its discovery is not tested");
  // The real Prometheus, pointed at /sd: it discovers the node and the task and scrapes both.
  const dir = mkdtempSync(join(tmpdir(), "hme-prometheus-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, "prometheus.yml"),
    [
      "global: { scrape_interval: 1s, evaluation_interval: 1s }",
      "scrape_configs:",
      "  - job_name: shoal",
      "    http_sd_configs:",
      `      - url: http://127.0.0.1:${d.metricsPort}/sd`,
      "        refresh_interval: 1s",
      "",
    ].join("\n"),
  );
  const port = await freePort();
  const prom = spawn(
    PROMETHEUS,
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  prom.stderr!.on("data", (b: Buffer) => (log += b.toString()));
  t.after(() => {
    if (prom.exitCode === null) prom.kill("SIGKILL");
  });
  type Target = { labels: Record<string, string>; health: string; scrapeUrl: string };
  let targets: Target[] = [];
  await checkFor(
    60_000,
    async () => {
      if (prom.exitCode !== null) throw new Error(`prometheus exited: ${log.slice(-2000)}`);
      const r = await fetch(`http://127.0.0.1:${port}/api/v1/targets`);
      const body = (await r.json()) as { data: { activeTargets: Target[] } };
      targets = body.data.activeTargets;
      return targets.length === 2 && targets.every((x) => x.health === "up");
    },
    250,
  ).catch(() => {});
  assert.deepEqual(
    targets.map((x) => [x.labels["shoal_kind"], x.health]).sort(),
    [
      ["node", "up"],
      ["task", "up"],
    ],
    `prometheus targets: ${JSON.stringify(targets)}`,
  );
  t.diagnostic(`prometheus scraped ${targets.map((x) => x.scrapeUrl).join(" and ")}`);
});

test('--metrics-addr "" serves nothing', async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  assert.match(d.log(), /shoal daemon .* ready/);
  assert.doesNotMatch(d.log(), /metrics: listening/);
  assert.doesNotMatch(d.log(), /cannot listen/);
});

/** The value of the series `name{labels...}` whose labels include all of `has` (0: absent). */
function series(text: string, name: string, has: string[]): number {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{`) && has.every((h) => line.includes(h))) {
      return Number(line.split(" ").pop());
    }
  }
  return 0;
}

/** One raw HTTP/1.0 exchange through a TCP port: the bytes sent and received. */
function rawGet(port: number): Promise<{ sent: number; received: number }> {
  const req = "GET / HTTP/1.0\r\nHost: web.test\r\n\r\n";
  return new Promise((resolve, reject) => {
    const c = createConnection({ host: "127.0.0.1", port });
    let received = 0;
    c.on("data", (d: Buffer) => (received += d.length));
    c.on("close", () => resolve({ sent: Buffer.byteLength(req), received }));
    c.on("error", reject);
    c.write(req);
  });
}

test("/metrics counts the router's requests (with their latency) and the mesh's connections and bytes", async (t) => {
  const d = await startDaemon({ metrics: true, http: true });
  const dir = mkdtempSync(join(tmpdir(), "hme-traffic-"));
  t.after(async () => {
    await d.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  assert.ok(d.metricsPort && d.httpPort, `the daemon logs both ports:\n${d.log()}`);
  const published = await freePort();
  const created = await d.cli(
    ...["service", "create", "--name", "web", "-p", `${published}:8000`],
    ...["--label", "traefik.http.routers.web.rule=Host(`web.test`)"],
    ...["--label", "traefik.http.services.web.loadbalancer.server.port=8000"],
    ...["--", process.execPath, routerTaskScript(dir)],
  );
  assert.equal(created.code, 0, created.stderr);
  const scrape = async () => (await fetch(`http://127.0.0.1:${d.metricsPort}/metrics`)).text();
  // Both ways in reach the task (the waiting itself is counted: figures are compared after it).
  await checkFor(30_000, async () => (await routedGet(d.httpPort!, "web.test")).status === 200);
  await checkFor(30_000, async () => (await rawGet(published)).received > 0);
  const svc = 'service="web"';
  const before = await scrape();
  const figure = (text: string, name: string, more = "") => series(text, name, [svc, more]);
  for (let i = 0; i < 5; i++) assert.equal((await routedGet(d.httpPort!, "web.test")).status, 200);
  let sent = 0;
  let received = 0;
  for (let i = 0; i < 4; i++) {
    const x = await rawGet(published);
    sent += x.sent;
    received += x.received;
  }
  const after = await scrape();
  const delta = (name: string, more = "") => figure(after, name, more) - figure(before, name, more);
  assert.equal(delta("shoal_router_requests_total"), 5, "router requests");
  const hist = "shoal_router_request_duration_seconds";
  assert.equal(delta(`${hist}_count`), 5, "latencies observed");
  assert.equal(delta(`${hist}_bucket`, 'le="+Inf"'), 5);
  assert.ok(delta(`${hist}_sum`) > 0, "their sum");
  assert.equal(
    figure(after, `${hist}_bucket`, 'le="+Inf"'),
    figure(after, `${hist}_count`),
    "+Inf holds every observation",
  );
  assert.equal(delta("shoal_mesh_connections_total"), 4, "mesh connections");
  assert.equal(delta("shoal_mesh_bytes_total", 'direction="in"'), sent, "bytes in");
  assert.equal(delta("shoal_mesh_bytes_total", 'direction="out"'), received, "bytes out");
  assert.match(after, /^# TYPE shoal_router_request_duration_seconds histogram$/m);
});

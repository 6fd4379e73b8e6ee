// Task metrics end to end on a real daemon: a process task that burns CPU shows most of a core
// in `shoal stats --no-stream` and on the node's /metrics, with nonzero memory; the manager's
// /sd lists the node and the task (a service labelled prometheus.io/port); with the real
// Debian `prometheus` (when installed), its http_sd_configs discovers both and scrapes them;
// and `--metrics-addr ""` serves nothing.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { checkFor, startDaemon } from "../helpers/daemon.js";

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

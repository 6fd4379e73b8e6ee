// `npm run bench -- router`: requests per second and p50/p99 latency through shoal's HTTP router
// (src/net/router/) to 3 backends, against HAProxy and nginx configured for the same 3 backends,
// with load from wrk (keep-alive connections, a Host header the routers route by). With --repeat N
// the systems take turns N times and each keeps its best numbers.
//
// - Backends: 3 small Node.js HTTP servers, one process each, answering "hello" (keep-alive).
// - shoal: the router in its own Node.js process, one route Host(`web.bench`) → the 3 backends.
// - HAProxy (`haproxy -db -f`) and nginx (`nginx -p DIR -c DIR/nginx.conf`, `daemon off`), from
//   the Debian packages, with config files in a temp dir, started and stopped by pid; both round
//   robin with keep-alive to the backends, one thread/worker each (the router is one thread too;
//   HAProxy would otherwise start a thread per CPU), and each sets the same X-Forwarded-For,
//   -Proto, -Host, -Port and X-Real-Ip as shoal's router, so the backends parse the same requests.
//   A proxy that is not installed is reported as "not installed", not failed.
// - wrk: `wrk -t2 -c<connections> -d<duration>s --latency -H "Host: web.bench"`, after 3 s of the
//   same load as a warm-up.
// - "CPU per request": the CPU time (user + system, /proc/PID/stat) the proxy's processes used
//   during the timed run divided by the requests wrk completed; unlike requests/s it hardly
//   depends on what else the machine runs.
//
// - The routing mesh (L4) rows: shoal's RoutingMesh (src/net/mesh.ts, TCP connection forwarding,
//   round robin per connection) against HAProxy in `mode tcp` (balance roundrobin) to the same 3
//   backends, the same wrk load through each (keep-alive connections, forwarded as TCP streams).
//
// Options: --router-connections N (wrk connections, default 64); --router-prof DIR writes a CPU
// profile of the shoal router process (node --cpu-prof) into DIR.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUSY } from "./nats.js";
import { cpuSnapshot, otherLoad, processTree } from "./procfs.js";
import { track, waitExit } from "./procs.js";
import type { Row, Suite, SuiteContext, SuiteResult } from "./report.js";
import { freePort } from "./servers.js";

const HOST = "web.bench";
/** Seconds of wrk load on each proxy before its timed run. */
const WARM_UP_S = 3;

const BACKEND = `
const port = Number(process.argv[1]);
require("http")
  .createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "Content-Type": "text/plain", "Content-Length": "5" });
    res.end("hello");
  })
  .listen(port, "127.0.0.1", () => process.stdout.write("ready\\n"));
`;

const ROUTER = `
const [url, port, ...backends] = process.argv.slice(1);
const { HttpRouter } = await import(url);
const router = new HttpRouter();
router.update({
  routes: [{
    service: "web", router: "web", rule: "Host(\`${HOST}\`)", priority: 1,
    backends: backends.map((p) => ({ host: "127.0.0.1", port: Number(p) })),
  }],
});
await router.listen(Number(port), "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
process.stdout.write("ready\\n");
`;

const MESH = `
const [url, port, ...backends] = process.argv.slice(1);
const { RoutingMesh } = await import(url);
const log = { info() {}, warn: (m) => process.stderr.write(m + "\\n"), debug() {} };
const mesh = new RoutingMesh(log, "127.0.0.1");
await mesh.sync(
  new Map([[Number(port), backends.map((p) => ({ host: "127.0.0.1", port: Number(p) }))]]),
);
process.on("SIGTERM", () => process.exit(0));
process.stdout.write("ready\\n");
`;

interface Wrk {
  /** Requests completed. */
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

/** wrk's latency with its unit (`812.00us`, `1.20ms`, `2.01s`) in milliseconds. */
function ms(text: string): number {
  const m = /^([0-9.]+)(us|ms|s)$/.exec(text);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v;
}

export function parseWrk(out: string): Wrk {
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const rps = Number(/Requests\/sec:\s+([0-9.]+)/.exec(out)?.[1] ?? NaN);
  const p50 = /^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? "";
  const p99 = /^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? "";
  const e = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = (e ? e.slice(1).reduce((s, x) => s + Number(x), 0) : 0) + non2xx;
  return { requests, rps, p50Ms: ms(p50), p99Ms: ms(p99), errors };
}

/**
 * CPU seconds (user + system) the process and its descendants have used (/proc/PID/stat, in
 * clock ticks of 1/100 s as on Linux): the proxy's cost per request whatever else the machine runs.
 */
function cpuSeconds(pid: number): number {
  let sum = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "latin1");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      sum += (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      // gone meanwhile
    }
  }
  return sum;
}

/** Starts a child and waits for "ready" on its stdout (or for it to fail). */
function start(cmd: string, args: string[], readyLine: string | null): Promise<ChildProcess> {
  const child = track(spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] }));
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    if (readyLine === null) {
      child.once("spawn", () => resolve(child));
    } else {
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes(readyLine)) resolve(child);
      });
    }
    child.once("exit", (code) => reject(new Error(`${cmd} exited (${code}): ${err.trim()}`)));
    child.once("error", reject);
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  await waitExit(child, 5000);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await waitExit(child, 5000);
}

/** Waits until something accepts connections on the port (HAProxy and nginx print nothing). */
async function waitPort(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const { createConnection } = await import("node:net");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = createConnection({ host: "127.0.0.1", port });
      c.once("connect", () => {
        c.destroy();
        resolve(true);
      });
      c.once("error", () => resolve(false));
    });
    if (ok) return;
    if (child.exitCode !== null) throw new Error(`exited (${child.exitCode}) before listening`);
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function haproxyConfig(port: number, backends: number[], mode: "http" | "tcp"): string {
  const http = mode === "http";
  return [
    "global",
    "  nbthread 1",
    "  maxconn 4000",
    "defaults",
    `  mode ${mode}`,
    ...(http ? ["  option http-keep-alive", "  option forwardfor"] : []),
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    "frontend fe",
    `  bind 127.0.0.1:${port}`,
    // The other headers shoal's router sets, so that the backends parse the same requests.
    ...(http
      ? [
          "  http-request set-header X-Forwarded-Proto http",
          "  http-request set-header X-Forwarded-Host %[req.hdr(host)]",
          "  http-request set-header X-Forwarded-Port %[dst_port]",
          "  http-request set-header X-Real-Ip %[src]",
        ]
      : []),
    "  default_backend be",
    "backend be",
    "  balance roundrobin",
    ...(http ? ["  http-reuse always"] : []),
    ...backends.map((p, i) => `  server b${i} 127.0.0.1:${p}`),
    "",
  ].join("\n");
}

function nginxConfig(dir: string, port: number, backends: number[]): string {
  return `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 100000;
  upstream be {
${backends.map((p) => `    server 127.0.0.1:${p};`).join("\n")}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Real-Ip $remote_addr;
    }
  }
}
`;
}

function which(cmd: string): string | null {
  for (const dir of ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]) {
    const p = join(dir, cmd);
    if (spawnSync("test", ["-x", p]).status === 0) return p;
  }
  return null;
}

function runWrk(port: number, connections: number, seconds: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const args = ["-t2", `-c${connections}`, `-d${seconds}s`, "--latency", "-H", `Host: ${HOST}`];
    const child = track(spawn("wrk", [...args, `http://127.0.0.1:${port}/`]));
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}: ${out}`)),
    );
  });
}

interface Proxy {
  /** The column it fills. */
  id: string;
  label: string;
  /** HTTP proxies fill the HTTP rows, TCP ones (the routing mesh) the L4 rows. */
  layer: "http" | "tcp";
  /** Starts the proxy on `port` in front of `backends`; resolves with its process. */
  start(port: number, backends: number[], dir: string): Promise<ChildProcess>;
  available(): string | null;
}

function proxies(profDir: string | undefined): Proxy[] {
  const routerUrl = new URL("../src/net/router/router.js", import.meta.url).href;
  const meshUrl = new URL("../src/net/mesh.js", import.meta.url).href;
  const haproxy = (layer: "http" | "tcp"): Proxy => ({
    id: "haproxy",
    label: layer === "http" ? "HAProxy" : "HAProxy (mode tcp)",
    layer,
    available: () => which("haproxy"),
    async start(port, backends, dir) {
      const cfg = join(dir, `haproxy-${layer}.cfg`);
      writeFileSync(cfg, haproxyConfig(port, backends, layer));
      const child = await start(which("haproxy")!, ["-db", "-f", cfg], null);
      await waitPort(port, child);
      return child;
    },
  });
  return [
    haproxy("http"),
    {
      id: "nginx",
      label: "nginx",
      layer: "http",
      available: () => which("nginx"),
      async start(port, backends, dir) {
        const cfg = join(dir, "nginx.conf");
        writeFileSync(cfg, nginxConfig(dir, port, backends));
        const args = ["-p", dir, "-e", join(dir, "error.log"), "-c", cfg];
        const child = await start(which("nginx")!, args, null);
        await waitPort(port, child);
        return child;
      },
    },
    {
      id: "shoal",
      label: "shoal",
      layer: "http",
      available: () => process.execPath,
      start(port, backends) {
        const prof = profDir ? ["--cpu-prof", "--cpu-prof-dir", profDir] : [];
        const args = [...prof, "--input-type=module", "-e", ROUTER, routerUrl, String(port)];
        return start(process.execPath, [...args, ...backends.map(String)], "ready");
      },
    },
    haproxy("tcp"),
    {
      id: "shoal",
      label: "shoal mesh",
      layer: "tcp",
      available: () => process.execPath,
      start(port, backends) {
        const args = ["--input-type=module", "-e", MESH, meshUrl, String(port)];
        return start(process.execPath, [...args, ...backends.map(String)], "ready");
      },
    },
  ];
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const seconds = Math.max(1, Math.round(ctx.durationMs / 1000));
  const connections = Number(ctx.options["router-connections"] ?? 64);
  const profDir = ctx.options["router-prof"] as string | undefined;
  const dir = mkdtempSync(join(tmpdir(), "shoal-bench-router-"));
  const notes: string[] = [];
  const rows: Row[] = [
    { id: "rps", label: "requests/s", unit: "req/s", better: "higher", values: {} },
    { id: "p50", label: "latency p50", unit: "ms", better: "lower", values: {} },
    { id: "p99", label: "latency p99", unit: "ms", better: "lower", values: {} },
    { id: "cpu", label: "proxy CPU per request", unit: "us", better: "lower", values: {} },
    { id: "l4-rps", label: "L4 mesh requests/s", unit: "req/s", better: "higher", values: {} },
    { id: "l4-p50", label: "L4 mesh latency p50", unit: "ms", better: "lower", values: {} },
    { id: "l4-p99", label: "L4 mesh latency p99", unit: "ms", better: "lower", values: {} },
    { id: "l4-cpu", label: "L4 mesh CPU per request", unit: "us", better: "lower", values: {} },
  ];
  const rowsOf = (p: Proxy) => rows.filter((r) => r.id.startsWith("l4-") === (p.layer === "tcp"));
  for (const r of rows.filter((r) => r.id.startsWith("l4-"))) r.values.nginx = "not run";
  const all = proxies(profDir);
  const backendProcs: ChildProcess[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await freePort();
      backendProcs.push(await start(process.execPath, ["-e", BACKEND, String(p)], "ready"));
      ports.push(p);
    }
    const missing = all.filter((p) => p.available() === null);
    for (const proxy of missing) {
      for (const r of rowsOf(proxy)) r.values[proxy.id] = "not installed";
      notes.push(`${proxy.label} is not installed (apt-get install -y ${proxy.id})`);
    }
    // Rounds outside, systems inside: a change in the machine's other load hits all alike.
    for (let round = 0; round < ctx.repeat; round++) {
      for (const proxy of all.filter((p) => !missing.includes(p))) {
        const port = await freePort();
        let child: ChildProcess | undefined;
        try {
          child = await proxy.start(port, ports, dir);
          // Warm up: connections to the backends, the JIT (after 1 s of warm-up the router's timed
          // run still cost 2-120 % more CPU per request than the run right after it).
          await runWrk(port, connections, WARM_UP_S);
          const before = cpuSnapshot();
          const cpu0 = cpuSeconds(child.pid!);
          const out = await runWrk(port, connections, seconds);
          const cpuUs = (1e6 * (cpuSeconds(child.pid!) - cpu0)) / parseWrk(out).requests;
          const busy = otherLoad(before, cpuSnapshot());
          const w = parseWrk(out);
          ctx.log(
            `router: ${proxy.label}: ${w.rps.toFixed(0)} req/s, p50 ${w.p50Ms} ms, p99 ${w.p99Ms} ms, ` +
              `CPU ${cpuUs.toFixed(0)} µs/request` +
              (w.errors > 0 ? `, ${w.errors} errors` : "") +
              (busy > BUSY ? ` (other load ${(100 * busy).toFixed(0)}%)` : ""),
          );
          if (w.errors > 0) notes.push(`${proxy.label}: wrk counted ${w.errors} errors`);
          const pre = proxy.layer === "tcp" ? "l4-" : "";
          const best = (id: string, v: number, higher: boolean) => {
            const row = rows.find((r) => r.id === pre + id)!;
            const old = row.values[proxy.id];
            if (typeof old !== "number" || (higher ? v > old : v < old)) {
              row.values[proxy.id] = v;
              (row.marks ??= {})[proxy.id] = busy > BUSY ? "*" : "";
            }
          };
          best("rps", w.rps, true);
          best("p50", w.p50Ms, false);
          best("p99", w.p99Ms, false);
          best("cpu", cpuUs, false);
        } catch (err) {
          for (const r of rowsOf(proxy)) r.values[proxy.id] ??= "failed";
          notes.push(`${proxy.label}: ${(err as Error).message.split("\n")[0]}`);
        } finally {
          if (child) await stop(child);
        }
      }
    }
  } finally {
    for (const b of backendProcs) await stop(b);
    rmSync(dir, { recursive: true, force: true });
  }
  if (rows.some((r) => Object.values(r.marks ?? {}).includes("*"))) {
    notes.push(`* other processes used more than ${100 * BUSY}% of the CPUs meanwhile`);
  }
  const v = (row: string, col: string) => rows.find((r) => r.id === row)!.values[col];
  for (const [pre, other] of [
    ["", "haproxy"],
    ["", "nginx"],
    ["l4-", "haproxy"],
  ] as const) {
    const [sr, or, sp, op] = [
      v(`${pre}rps`, "shoal"),
      v(`${pre}rps`, other),
      v(`${pre}p99`, "shoal"),
      v(`${pre}p99`, other),
    ];
    if ([sr, or, sp, op].every((x) => typeof x === "number")) {
      const rps = (sr as number) / (or as number);
      const p99 = (sp as number) / (op as number);
      const goal = other === "haproxy" ? ` (goal: >= 0.80 and <= 1.50)` : "";
      const what = pre === "" ? `shoal/${other}` : `L4: shoal mesh/${other} mode tcp`;
      notes.push(`${what}: requests/s ${rps.toFixed(2)}x, p99 ${p99.toFixed(2)}x${goal}`);
    }
  }
  notes.push(
    "L4 mesh rows: the HAProxy column is HAProxy in mode tcp, the shoal column the routing mesh",
  );
  if (profDir) notes.push(`CPU profile of the shoal router written to ${profDir}`);
  return {
    suite: "router",
    title:
      `HTTP router and L4 routing mesh: ${connections} keep-alive connections from wrk, ` +
      "3 Node.js backends",
    columns: all.filter((p) => p.layer === "http").map((p) => ({ id: p.id, label: p.label })),
    rows,
    notes,
    params: { seconds, connections, repeat: ctx.repeat, wrk: "wrk -t2 --latency" },
  };
}

export const routerSuite: Suite = {
  name: "router",
  description:
    "HTTP router vs HAProxy and nginx, routing mesh vs HAProxy mode tcp, 3 backends, load from wrk",
  options: {
    "router-connections": { type: "string", description: "router: wrk connections (default 64)" },
    "router-prof": { type: "string", description: "router: write a CPU profile into this dir" },
  },
  run,
};

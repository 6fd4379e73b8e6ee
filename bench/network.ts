// `npm run bench -- network`: what shoal's overlay networks cost, measured against the plain
// network under them in the same run, on the network-namespace test bed (test/cluster/netns.ts;
// needs root and iproute2): two hosts, each a namespace on a bridge, each running an `Overlays`
// instance (src/node/drivers/overlay.ts) through the overlay agent the tests use
// (test/helpers/overlay-agent.ts). One overlay network (VXLAN, MTU 1450) with a task namespace
// on each host, and a virtual IP whose only backend is the task on host B.
//
// - TCP throughput, one stream, one direction, for --duration seconds: iperf3 (installed with
//   apt-get when missing; a Node.js sender/receiver pair otherwise) from task A to task B over
//   the overlay, against the same tool from host A to host B over the bed's plain link.
// - New TCP connections per second: wrk (`Connection: close`, so one connection per request)
//   from task A against a tiny HTTP server in task B, once through the virtual IP (DNAT on host
//   A, then the overlay), against once to task B's address directly (the same overlay path
//   without the DNAT).
//
// Everything it makes (namespaces, links, the agents' iptables chains inside the hosts'
// namespaces, processes) is removed when it ends, also on failure or Ctrl-C.

import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { createInterface } from "node:readline";
import type { NodeNetwork } from "../src/api/bus.js";
import { findIp } from "../src/node/drivers/netns.js";
import { overlayUnsupportedReason } from "../src/node/drivers/overlay.js";
import { createTestBed, netnsAvailable, type Host, type TestBed } from "../test/cluster/netns.js";
import { OverlayAgent } from "../test/helpers/overlay-agent.js";
import { BUSY } from "./nats.js";
import { cpuSnapshot, otherLoad } from "./procfs.js";
import { track, waitExit } from "./procs.js";
import type { Row, Suite, SuiteContext, SuiteResult } from "./report.js";

const SUBNET = "10.202.1";
const VIP = `${SUBNET}.100`;
const TASK_A = `${SUBNET}.10`;
const TASK_B = `${SUBNET}.20`;
const IPERF_PORT = 5201;
const HTTP_PORT = 8080;
const WRK_CONNECTIONS = 16;

/** The network as node `hostPart` (2 on A, 3 on B) sees it, with the other host as its peer. */
function network(hostPart: number, peer: string): NodeNetwork {
  return {
    id: "benchnet",
    name: "bench",
    driver: "overlay",
    vni: 4301,
    subnet: `${SUBNET}.0/24`,
    internal: false,
    vips: [{ addr: VIP, backends: [TASK_B] }],
    nodeAddr: `${SUBNET}.${hostPart}/24`,
    peers: [peer],
  } as NodeNetwork;
}

/** A one-line HTTP response for every connection, then close: as cheap as a server gets. */
const HTTP_SERVER = `
const res = "HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok";
require("net").createServer((s) => {
  s.on("error", () => {});
  s.once("data", () => s.end(res));
}).listen(+process.argv[1], "0.0.0.0", () => console.log("ready"));
`;

/** Fallback receiver: counts bytes of one connection, prints bits/s from first byte to end. */
const TCP_SINK = `
const srv = require("net").createServer((s) => {
  let n = 0, t0 = 0;
  s.on("data", (d) => { if (!t0) t0 = process.hrtime.bigint(); n += d.length; });
  s.on("end", () => {
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({ bps: (8 * n) / secs }));
    process.exit(0);
  });
}).listen(+process.argv[1], "0.0.0.0", () => console.log("ready"));
`;

/** Fallback sender: writes 256 KiB buffers to argv[1]:argv[2] for argv[3] seconds. */
const TCP_SOURCE = `
const [host, port, secs] = process.argv.slice(1);
const buf = Buffer.alloc(262144, 120);
const s = require("net").connect(+port, host, () => {
  const stop = Date.now() + 1000 * +secs;
  const pump = () => {
    while (Date.now() < stop) if (!s.write(buf)) return void s.once("drain", pump);
    s.end();
  };
  pump();
});
s.on("error", (e) => { console.error(e.message); process.exit(1); });
`;

function run(cmd: string, args: string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: timeoutMs }, (err, out, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(" ")}: ${stderr || err.message}`)) : resolve(out),
    ),
  );
}

function have(tool: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" }).status === 0;
}

/** Installs the missing load tools with apt-get (as root); returns those still missing. */
function ensureTools(tools: string[], log: (l: string) => void): string[] {
  const missing = () => tools.filter((t) => !have(t));
  if (missing().length === 0 || process.getuid?.() !== 0 || !have("apt-get")) return missing();
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () =>
    spawnSync("apt-get", ["install", "-y", ...missing()], { env, stdio: "ignore" }).status === 0;
  log(`network: installing ${missing().join(" ")} with apt-get`);
  if (!install()) {
    spawnSync("apt-get", ["update"], { env, stdio: "ignore" });
    install();
  }
  return missing();
}

/** Task namespaces of this run, removed on exit if the bench is stopped before it removes them. */
const taskNamespaces = new Set<string>();
let exitHook = false;

function removeTaskNamespaceSync(ip: string, ns: string): void {
  spawnSync(ip, ["netns", "del", ns], { stdio: "ignore" });
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
}

/** Runs argv in namespace ns, tracked (killed by pid when the bench ends). */
function inNs(ip: string, ns: string, argv: string[]): ChildProcess {
  return track(spawn(ip, ["netns", "exec", ns, ...argv], { stdio: ["ignore", "pipe", "pipe"] }));
}

/** Everything the child prints, once it has exited (rejects on a non-zero exit). */
function output(child: ChildProcess, what: string): Promise<string> {
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, signal) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`${what} failed (${signal ?? `code ${code}`}): ${(err || out).trim()}`)),
    );
  });
}

/** Waits until the server child prints a line matching `ready`. */
function serverUp(child: ChildProcess, ready: RegExp, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: not up within 10 s`)), 10_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (ready.test(line)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}`));
    });
  });
}

interface Measured {
  value: number;
  /** Share of the CPUs other processes used meanwhile. */
  busy: number;
  note?: string;
}

/** Runs fn and measures how much CPU other processes took meanwhile. */
async function timed(fn: () => Promise<{ value: number; note?: string }>): Promise<Measured> {
  const before = cpuSnapshot();
  const r = await fn();
  return { ...r, busy: otherLoad(before, cpuSnapshot()) };
}

/** One stream from client namespace to server namespace; bits per second received. */
async function throughput(
  ip: string,
  server: string,
  client: string,
  addr: string,
  seconds: number,
  iperf: boolean,
): Promise<{ value: number; note?: string }> {
  const srv = iperf
    ? inNs(ip, server, ["iperf3", "-s", "-1", "--forceflush", "-p", String(IPERF_PORT)])
    : inNs(ip, server, [process.execPath, "-e", TCP_SINK, String(IPERF_PORT)]);
  const sinkOut = iperf ? null : output(srv, "receiver");
  try {
    await serverUp(srv, iperf ? /listening/i : /ready/, iperf ? "iperf3 -s" : "receiver");
    if (iperf) {
      const args = ["iperf3", "-c", addr, "-p", String(IPERF_PORT), "-t", String(seconds), "-J"];
      const doc = JSON.parse(await output(inNs(ip, client, args), "iperf3 -c")) as {
        end?: {
          sum_received?: { bits_per_second?: number };
          sum_sent?: { retransmits?: number };
        };
        error?: string;
      };
      const bps = doc.end?.sum_received?.bits_per_second;
      if (typeof bps !== "number") throw new Error(`iperf3: ${doc.error ?? "no result"}`);
      return { value: bps / 1e6, note: `${doc.end?.sum_sent?.retransmits ?? "?"} retransmits` };
    }
    const src = [process.execPath, "-e", TCP_SOURCE, addr, String(IPERF_PORT), String(seconds)];
    await output(inNs(ip, client, src), "sender");
    const { bps } = JSON.parse(await sinkOut!) as { bps: number };
    return { value: bps / 1e6 };
  } finally {
    srv.kill("SIGKILL");
    await waitExit(srv, 5000);
  }
}

/** wrk with one connection per request against http://addr; connections (requests) per second. */
async function connectionRate(
  ip: string,
  client: string,
  addr: string,
  seconds: number,
): Promise<{ value: number; note?: string }> {
  const args = [
    "wrk",
    "-t1",
    `-c${WRK_CONNECTIONS}`,
    `-d${seconds}s`,
    "-H",
    "Connection: close",
    `http://${addr}:${HTTP_PORT}/`,
  ];
  const out = await output(inNs(ip, client, args), "wrk");
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!rate) throw new Error(`wrk: no Requests/sec in ${out.trim()}`);
  const errors = /Socket errors:[^\n]*/.exec(out)?.[0];
  const non2xx = /Non-2xx[^\n]*/.exec(out)?.[0];
  const note = [errors, non2xx].filter(Boolean).join("; ");
  return { value: Number(rate[1]), ...(note ? { note } : {}) };
}

export const networkSuite: Suite = {
  name: "network",
  description: "overlay networks: TCP throughput and VIP connections/s vs the plain network",
  options: {},
  async run(ctx: SuiteContext): Promise<SuiteResult> {
    const seconds = Math.max(1, Math.round(ctx.durationMs / 1000));
    const columns = [
      { id: "plain", label: "plain" },
      { id: "shoal", label: "shoal" },
    ];
    const rows: Row[] = [
      {
        id: "tput",
        label: "TCP throughput, 1 stream (plain: host→host link, shoal: task→task overlay)",
        unit: "Mbit/s",
        better: "higher",
        values: {},
      },
      {
        id: "conns",
        label: `new TCP conns/s, wrk -c${WRK_CONNECTIONS} Connection: close (plain: task address, shoal: VIP)`,
        unit: "conns/s",
        better: "higher",
        values: {},
      },
    ];
    const notes: string[] = [];
    const params: Record<string, unknown> = { seconds, repeat: ctx.repeat };
    const result = (): SuiteResult => {
      if (rows.some((r) => Object.values(r.marks ?? {}).includes("*"))) {
        notes.push(`* other processes used more than ${100 * BUSY}% of the CPUs meanwhile`);
      }
      return {
        suite: "network",
        title: "Overlay network (VXLAN, 2 hosts on the namespace test bed)",
        columns,
        rows,
        notes,
        params,
      };
    };
    const skip =
      (await overlayUnsupportedReason()) ??
      (netnsAvailable() ? null : "network namespaces are not available");
    if (skip) {
      for (const r of rows) for (const c of columns) r.values[c.id] = `not run: ${skip}`;
      return result();
    }
    const missing = ensureTools(["iperf3", "wrk"], ctx.log);
    const iperf = !missing.includes("iperf3");
    if (!iperf) notes.push("no iperf3: throughput measured with a Node.js sender/receiver pair");
    params["throughputTool"] = iperf ? "iperf3 -c ADDR -t SECONDS -J" : "node sender/receiver";
    params["connectionTool"] = `wrk -t1 -c${WRK_CONNECTIONS} -d SECONDS -H "Connection: close"`;

    const ip = findIp();
    const tag = `nbn-${process.pid.toString(36)}`;
    const tA = `${tag}-ta`;
    const tB = `${tag}-tb`;
    let bed: TestBed | undefined;
    const agents: OverlayAgent[] = [];
    const children: ChildProcess[] = [];
    const onExit = () => {
      for (const ns of taskNamespaces) removeTaskNamespaceSync(ip, ns);
    };
    if (!exitHook) {
      exitHook = true;
      process.on("exit", onExit);
    }
    const record = (row: Row, col: string, m: Measured, what: string) => {
      const old = row.values[col];
      if (typeof old !== "number" || m.value > old) {
        row.values[col] = m.value;
        (row.marks ??= {})[col] = m.busy > BUSY ? "*" : "";
      }
      const load = m.busy > BUSY ? `, other load ${(100 * m.busy).toFixed(0)}%` : "";
      ctx.log(
        `network: ${what}: ${m.value.toFixed(0)} ${row.unit}${m.note ? ` (${m.note})` : ""}${load}`,
      );
      if (m.note && row.id === "conns") notes.push(`${what}: ${m.note}`);
    };
    const attempt = async (row: Row, col: string, what: string, fn: () => Promise<Measured>) => {
      try {
        record(row, col, await fn(), what);
      } catch (err) {
        row.values[col] ??= "failed";
        notes.push(`${what}: ${(err as Error).message}`);
      }
    };
    try {
      ctx.log("network: setting up two hosts, an overlay network and a task on each");
      bed = await createTestBed(2, { prefix: "nbn", mode: "netns" });
      const [A, B] = bed.hosts as [Host, Host];
      const agentA = new OverlayAgent(A);
      const agentB = new OverlayAgent(B);
      agents.push(agentA, agentB);
      const netA = network(2, B.addr);
      const netB = network(3, A.addr);
      await agentA.call("sync", [netA]);
      await agentB.call("sync", [netB]);
      for (const ns of [tA, tB]) {
        await run(ip, ["netns", "add", ns]);
        taskNamespaces.add(ns);
      }
      await agentA.call("attach", tA, [{ network: netA, addr: `${TASK_A}/24` }]);
      await agentB.call("attach", tB, [{ network: netB, addr: `${TASK_B}/24` }]);
      params["hosts"] = [A.addr, B.addr];

      const tput = rows[0]!;
      const conns = rows[1]!;
      const http = inNs(ip, tB, [process.execPath, "-e", HTTP_SERVER, String(HTTP_PORT)]);
      children.push(http);
      await serverUp(http, /ready/, "HTTP server");
      for (let i = 0; i < ctx.repeat; i++) {
        const tool = iperf ? "iperf3" : "node";
        await attempt(tput, "plain", `${tool} host A → host B`, () =>
          timed(() => throughput(ip, B.ns, A.ns, B.addr, seconds, iperf)),
        );
        await attempt(tput, "shoal", `${tool} task A → task B (overlay)`, () =>
          timed(() => throughput(ip, tB, tA, TASK_B, seconds, iperf)),
        );
        if (missing.includes("wrk")) {
          conns.values["plain"] = conns.values["shoal"] = "not run: no wrk";
          continue;
        }
        await attempt(conns, "plain", "wrk task A → task B address", () =>
          timed(() => connectionRate(ip, tA, TASK_B, seconds)),
        );
        await attempt(conns, "shoal", "wrk task A → VIP (backend task B)", () =>
          timed(() => connectionRate(ip, tA, VIP, seconds)),
        );
      }
    } catch (err) {
      notes.push(`setup failed: ${(err as Error).message}`);
      for (const r of rows) for (const c of columns) r.values[c.id] ??= "failed";
    } finally {
      for (const c of children) c.kill("SIGKILL");
      await Promise.all(children.map((c) => waitExit(c, 5000)));
      for (const a of agents) await a.call("removeAll").catch(() => undefined);
      for (const a of agents) await a.kill9();
      for (const ns of taskNamespaces) {
        await run(ip, ["netns", "del", ns]).catch(() => undefined);
        rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
        taskNamespaces.delete(ns);
      }
      await bed?.cleanup();
    }
    notes.push(
      "one overlay network (VXLAN, MTU 1450) between two namespace hosts on one bridge (MTU 1500); " +
        "the virtual IP's only backend is task B; nothing pinned, 2 CPUs shared by senders, receivers and softirq",
    );
    return result();
  },
};

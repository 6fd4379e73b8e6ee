// `npm run bench -- dns`: queries per second and latency of shoal's embedded DNS server
// (src/net/dns.ts) next to dnsmasq (the Debian package, `apt-get install dnsmasq-base`) in the
// same run, both answering the same local A records from memory (no forwarding).
//
// Each server runs in its own process pinned to CPU 1 (`taskset`, when there is one), the load
// generator in this process: --dns-sockets UDP sockets (default 4), each keeping --dns-window
// queries (default 16) outstanding for the scenario's duration; an answer not back in 200 ms
// counts as lost and is replaced. The throughput row counts answers per second; the latency rows
// are the 50th/99th percentile of the round trip of the same answers. A second pass with one
// query outstanding gives the unloaded latency. Names alternate between `web` (one address) and
// `db` (three).

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import packet from "dns-packet";
import { track, waitExit } from "./procs.js";
import type { Row, Suite, SuiteContext, SuiteResult } from "./report.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const LOST_MS = 200;
const NAMES = ["web", "db"];

function dnsmasqPath(): string | undefined {
  for (const p of ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]) if (existsSync(p)) return p;
  return undefined;
}

function pinned(argv: string[]): string[] {
  const taskset = spawnSync("taskset", ["--version"]).status === 0;
  return taskset ? ["taskset", "-c", "1", ...argv] : argv;
}

/** A port free on 127.0.0.1 for UDP. */
async function freeUdpPort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Starts a server process and waits until it answers a query for `web`. */
async function startServer(argv: string[], port: number): Promise<ChildProcess> {
  const [cmd, ...args] = pinned(argv);
  const child = track(spawn(cmd!, args, { stdio: ["ignore", "pipe", "pipe"] }));
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${out.trim()}`);
    const r = await load(port, 1, 1, 100).catch(() => undefined);
    if (r && r.answers > 0) return child;
  }
  child.kill("SIGKILL");
  throw new Error(`did not answer within 10 s: ${out.trim()}`);
}

interface LoadResult {
  answers: number;
  lost: number;
  qps: number;
  p50us: number;
  p99us: number;
}

/** Runs `sockets` × `window` outstanding queries against 127.0.0.1:port for ms milliseconds. */
async function load(
  port: number,
  sockets: number,
  window: number,
  ms: number,
): Promise<LoadResult> {
  const lat: number[] = [];
  let lost = 0;
  let stopping = false;
  const socks: Socket[] = [];
  const encoded = NAMES.map((name) =>
    packet.encode({
      type: "query",
      id: 0,
      flags: packet.RECURSION_DESIRED,
      questions: [{ type: "A", name }],
    }),
  );
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: sockets }, async (_, s) => {
      const sock = createSocket("udp4");
      socks.push(sock);
      const sent = new Map<number, bigint>();
      let next = s * 4096;
      const send = () => {
        if (stopping) return;
        const id = next++ & 0xffff;
        const msg = Buffer.from(encoded[id % encoded.length]!);
        msg.writeUInt16BE(id, 0);
        sent.set(id, process.hrtime.bigint());
        sock.send(msg, port, "127.0.0.1");
      };
      sock.on("message", (res) => {
        const id = res.readUInt16BE(0);
        const t = sent.get(id);
        if (t === undefined) return;
        sent.delete(id);
        lat.push(Number(process.hrtime.bigint() - t) / 1000);
        send();
      });
      const sweep = setInterval(() => {
        const now = process.hrtime.bigint();
        for (const [id, t] of sent) {
          if (Number(now - t) / 1e6 > LOST_MS) {
            sent.delete(id);
            lost++;
            send();
          }
        }
      }, 50);
      await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
      for (let i = 0; i < window; i++) send();
      await new Promise((r) => setTimeout(r, ms));
      stopping = true;
      clearInterval(sweep);
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  for (const s of socks) s.close();
  lat.sort((a, b) => a - b);
  const pct = (p: number) =>
    lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * p))]! : NaN;
  return {
    answers: lat.length,
    lost,
    qps: lat.length / elapsed,
    p50us: pct(0.5),
    p99us: pct(0.99),
  };
}

export const dnsSuite: Suite = {
  name: "dns",
  description: "embedded DNS: queries/s and latency, shoal vs dnsmasq",
  options: {
    "dns-sockets": { type: "string", description: "dns: load-generator sockets (default 4)" },
    "dns-window": {
      type: "string",
      description: "dns: outstanding queries per socket (default 16)",
    },
  },
  async run(ctx: SuiteContext): Promise<SuiteResult> {
    const sockets = Number(ctx.options["dns-sockets"] ?? 4);
    const window = Number(ctx.options["dns-window"] ?? 16);
    const columns = [
      { id: "dnsmasq", label: "dnsmasq" },
      { id: "shoal", label: "shoal" },
    ];
    const rows: Row[] = [
      {
        id: "qps",
        label: `queries/s, ${sockets}x${window} outstanding`,
        unit: "msgs/s",
        better: "higher",
        values: {},
      },
      { id: "p50", label: "p50 latency under that load", unit: "us", better: "lower", values: {} },
      { id: "p99", label: "p99 latency under that load", unit: "us", better: "lower", values: {} },
      {
        id: "p50one",
        label: "p50 latency, 1 outstanding",
        unit: "us",
        better: "lower",
        values: {},
      },
      {
        id: "p99one",
        label: "p99 latency, 1 outstanding",
        unit: "us",
        better: "lower",
        values: {},
      },
      {
        id: "lost",
        label: "queries lost (no answer in 200 ms)",
        unit: "text",
        better: null,
        values: {},
      },
    ];
    const notes: string[] = [];
    const dnsmasq = dnsmasqPath();
    const servers: Array<
      { id: string; argv: (port: number) => string[] } | { id: string; skip: string }
    > = [
      dnsmasq
        ? {
            id: "dnsmasq",
            argv: (port) => [
              dnsmasq,
              "--keep-in-foreground",
              "--no-resolv",
              "--no-hosts",
              "--conf-file=/dev/null",
              "--bind-interfaces",
              "--listen-address=127.0.0.1",
              `--port=${port}`,
              "--user=root",
              "--cache-size=1000",
              "--host-record=web,10.0.0.2",
              "--host-record=db,10.0.0.5",
              "--host-record=db,10.0.0.6",
              "--host-record=db,10.0.0.7",
            ],
          }
        : { id: "dnsmasq", skip: "not run: no dnsmasq (apt-get install dnsmasq-base)" },
      {
        id: "shoal",
        argv: (port) => [process.execPath, join(here, "dns-server.js"), String(port)],
      },
    ];
    for (const s of servers) {
      if ("skip" in s) {
        for (const r of rows) r.values[s.id] = s.skip;
        continue;
      }
      const port = await freeUdpPort();
      let child: ChildProcess | undefined;
      try {
        child = await startServer(s.argv(port), port);
        let best: LoadResult | undefined;
        let one: LoadResult | undefined;
        for (let i = 0; i < ctx.repeat; i++) {
          ctx.log(`dns: ${s.id}, ${sockets}x${window} outstanding, ${ctx.durationMs} ms`);
          const r = await load(port, sockets, window, ctx.durationMs);
          if (!best || r.qps > best.qps) best = r;
          const o = await load(port, 1, 1, Math.min(ctx.durationMs, 2000));
          if (!one || o.p99us < one.p99us) one = o;
        }
        rows[0]!.values[s.id] = best!.qps;
        rows[1]!.values[s.id] = best!.p50us;
        rows[2]!.values[s.id] = best!.p99us;
        rows[3]!.values[s.id] = one!.p50us;
        rows[4]!.values[s.id] = one!.p99us;
        rows[5]!.values[s.id] = String(best!.lost + one!.lost);
      } catch (err) {
        for (const r of rows) r.values[s.id] = "failed";
        notes.push(`${s.id}: ${(err as Error).message}`);
      } finally {
        if (child) {
          child.kill("SIGKILL");
          await waitExit(child, 5000);
        }
      }
    }
    notes.push(
      "servers pinned to CPU 1 with taskset when present; the load generator is one node process",
    );
    return {
      suite: "dns",
      title: "Embedded DNS (UDP, local A records)",
      columns,
      rows,
      notes,
      params: { sockets, window, durationMs: ctx.durationMs, repeat: ctx.repeat },
    };
  },
};

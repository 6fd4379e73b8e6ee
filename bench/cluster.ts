// The `cluster` bench suite: the Go nats-server and shoal's server run as clusters of their own
// kind, started with the same flags. Rows: the pub→sub rate when every message crosses a route
// (subscriber on server A, publisher on server B, which routes to A), for 16 B and 1 KiB
// payloads, and the time five servers take to form a full mesh when four of them only know the
// seed. The servers are started with servers.ts, the load comes from the same forked raw-socket
// generators as the nats suite (nats-load.ts), and every process is killed after each
// measurement, also on errors and timeouts.
import { existsSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { MsgScanner, openConnection } from "./nats-proto.js";
import {
  BUSY,
  errorText,
  natsSuite,
  publisher,
  selectServers,
  timeDelivery,
  withTimeout,
  worker,
  type LoadParams,
} from "./nats.js";
import { cpuSnapshot, otherLoad } from "./procfs.js";
import {
  formatValue,
  type Row,
  type Suite,
  type SuiteContext,
  type SuiteResult,
} from "./report.js";
import { freePort, startServer, stopAll, type RunningServer, type ServerSpec } from "./servers.js";

const CLUSTER_NAME = "bench";
const MESH_SIZE = 5;
/** How often the monitoring ports are polled while waiting for routes. */
const POLL_MS = 20;
/** Other load is judged only over measurements at least this long (the mesh of Go takes ~0.1 s). */
const MIN_LOAD_WINDOW_MS = 500;
const SUBJECT = "bench.fwd";
const PROBE_SUBJECT = "bench.fwd.probe";

interface Scenario {
  row: string;
  name: string;
  /** Measures once on fresh servers built from spec; the caller stops them afterwards. */
  run(spec: ServerSpec, p: LoadParams, note: (s: string) => void): Promise<number>;
}

const ROWS: Array<Omit<Row, "values">> = [
  { id: "fwd-16", label: "forwarded pub→sub, 16 B", unit: "msgs/s", better: "higher" },
  { id: "fwd-1024", label: "forwarded pub→sub, 1 KiB", unit: "msgs/s", better: "higher" },
  {
    id: "mesh-5",
    label: `full mesh of ${MESH_SIZE} from one seed`,
    unit: "s",
    better: "lower",
  },
];

/** A cluster member's ports: clients (chosen by startServer), routes and HTTP monitoring. */
interface MemberPorts {
  cluster: number;
  monitor: number;
}

interface Member extends MemberPorts {
  server: RunningServer;
}

async function memberPorts(): Promise<MemberPorts> {
  return { cluster: await freePort(), monitor: await freePort() };
}

/** The server command plus monitoring, a cluster listener and, if given, a route to `seed`. */
function memberSpec(spec: ServerSpec, ports: MemberPorts, seed?: number): ServerSpec {
  const flags = ["-m", String(ports.monitor), "--cluster_name", CLUSTER_NAME];
  flags.push("-cluster", `nats://127.0.0.1:${ports.cluster}`);
  if (seed !== undefined) flags.push("-routes", `nats://127.0.0.1:${seed}`);
  return { ...spec, command: (port) => [...spec.command(port), ...flags] };
}

async function startMember(spec: ServerSpec, ports: MemberPorts, seed?: number): Promise<Member> {
  const server = await startServer(memberSpec(spec, ports, seed));
  return { ...ports, server };
}

/** num_routes from the server's /routez, or null while the monitoring port does not answer. */
async function numRoutes(monitorPort: number): Promise<number | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${monitorPort}/routez`, {
      signal: AbortSignal.timeout(1000),
    });
    if (!res.ok) return null;
    const body = (await res.json()) as { num_routes?: unknown };
    return typeof body.num_routes === "number" ? body.num_routes : null;
  } catch {
    return null;
  }
}

const allRoutes = (ports: MemberPorts[], n: number) => async () =>
  (await Promise.all(ports.map((m) => numRoutes(m.monitor)))).every((k) => k === n);

/** Calls check every intervalMs (start to start) until it returns true; throws after timeoutMs. */
async function poll(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean> | boolean,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const started = performance.now();
    if (await check()) return;
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    const wait = POLL_MS - (performance.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

/**
 * Waits until a message published on `b` reaches a subscriber on `a`. The probe subscribes on a
 * subject of its own, after the measured subscriber's SUB was processed by `a` (its worker is
 * ready only after its PONG). `a` sends interest over the route in the order it processes
 * subscriptions, so once `b` forwards a probe message it also knows the measured subscriber's
 * interest — and the measured subscriber never sees a probe message.
 */
async function waitForInterest(a: RunningServer, b: RunningServer): Promise<void> {
  const sub = await openConnection(a.port, "bench-probe-sub", `SUB ${PROBE_SUBJECT} 1\r\n`);
  try {
    const pub = await openConnection(b.port, "bench-probe-pub");
    try {
      const scanner = new MsgScanner((line) => {
        if (line === "PING") sub.socket.write("PONG\r\n");
      });
      sub.socket.on("data", (c: Buffer) => scanner.push(c));
      scanner.push(sub.rest);
      for (const s of [sub.socket, pub.socket]) s.on("error", () => {});
      await poll("interest to reach the publishing server", 10_000, () => {
        if (scanner.count > 0) return true;
        pub.socket.write(`PUB ${PROBE_SUBJECT} 0\r\n\r\n`);
        return false;
      });
    } finally {
      pub.socket.destroy();
    }
  } finally {
    sub.socket.destroy();
  }
}

/** Subscriber on A, publisher on B (which routes to A): what A's subscriber receives per second. */
function forwarded(size: number): Scenario {
  return {
    row: `fwd-${size}`,
    name: `forwarded pub→sub ${size} B`,
    async run(spec, p, note) {
      const a = await startMember(spec, await memberPorts());
      const b = await startMember(spec, await memberPorts(), a.cluster);
      await poll("route between the two servers", 15_000, allRoutes([a, b], 1));
      const sub = await worker(
        {
          role: "sub",
          port: a.server.port,
          subject: SUBJECT,
          conns: 1,
          idleMs: 1000,
          maxWaitMs: 20_000,
        },
        "subscriber",
      );
      await waitForInterest(a.server, b.server);
      const pub = await publisher(b.server, p, SUBJECT, size);
      return timeDelivery(pub, [sub], 1, p, note);
    },
  };
}

/**
 * Starts a seed, then MESH_SIZE-1 servers at once that route only to the seed (the rest they
 * learn by gossip), and returns the seconds from their spawn until every server's /routez shows
 * all the others.
 */
const mesh: Scenario = {
  row: "mesh-5",
  name: `full mesh of ${MESH_SIZE}`,
  async run(spec) {
    const seed = await startMember(spec, await memberPorts());
    const others: MemberPorts[] = [];
    for (let k = 1; k < MESH_SIZE; k++) others.push(await memberPorts());
    let failure: unknown = null;
    const t0 = performance.now();
    const starting = Promise.all(others.map((o) => startMember(spec, o, seed.cluster))).catch(
      (err: unknown) => {
        failure ??= err;
      },
    );
    const formed = allRoutes([seed, ...others], MESH_SIZE - 1);
    await poll(`full mesh of ${MESH_SIZE}`, 20_000, async () => {
      if (failure !== null) throw failure;
      return formed();
    });
    const seconds = (performance.now() - t0) / 1000;
    await starting;
    return seconds;
  },
};

const SCENARIOS: Scenario[] = [forwarded(16), forwarded(1024), mesh];

/** Whether a command names an existing file, directly or through $PATH. */
function findable(cmd: string): boolean {
  if (cmd.includes("/")) return existsSync(cmd);
  return (process.env.PATH ?? "").split(":").some((dir) => dir && existsSync(path.join(dir, cmd)));
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const p: LoadParams = {
    durationMs: ctx.durationMs,
    maxMsgs: 100_000_000,
    writeBytes: 256 * 1024,
  };
  const rows: Row[] = ROWS.map((r) => ({ ...r, values: {} }));
  const row = (id: string) => rows.find((r) => r.id === id) as Row;
  const notes: string[] = [];
  const versions: Record<string, string> = {};

  // A missing Go binary drops its column; a server that cannot start is reported in its column.
  const specs: ServerSpec[] = [];
  for (const spec of selectServers(ctx)) {
    const bin = spec.command(0)[0];
    if (spec.id === "go" && !findable(bin)) {
      const msg = `Go nats-server not found (${bin}), its column is left out; install it or pass --go-server PATH`;
      notes.push(msg);
      ctx.log(`cluster: ${msg}`);
      continue;
    }
    specs.push(spec);
  }
  const available: ServerSpec[] = [];
  for (const spec of specs) {
    try {
      const server = await startServer(spec);
      versions[spec.id] = server.version;
      available.push(spec);
      ctx.log(`cluster: ${spec.label} ${server.version} starts (${spec.command(0)[0]})`);
    } catch (err) {
      for (const r of rows) r.values[spec.id] = "not run";
      notes.push(errorText(err));
      ctx.log(`cluster: ${errorText(err)}`);
    } finally {
      await stopAll();
    }
  }

  for (const sc of SCENARIOS) {
    const r = row(sc.row);
    for (let rep = 1; rep <= ctx.repeat; rep++) {
      for (const spec of available) {
        const tag = ctx.repeat > 1 ? ` (run ${rep})` : "";
        const note = (s: string) => notes.push(`${sc.name} on ${spec.label}${tag}: ${s}`);
        let value: number | null = null;
        let busy = 0;
        try {
          const before = cpuSnapshot();
          const t0 = performance.now();
          value = await withTimeout(sc.run(spec, p, note), p.durationMs + 90_000, sc.name);
          // CPU time is counted in 10 ms ticks: a shorter window than this says nothing.
          if (performance.now() - t0 >= MIN_LOAD_WINDOW_MS) busy = otherLoad(before, cpuSnapshot());
        } catch (err) {
          note(errorText(err));
        } finally {
          await stopAll();
        }
        if (busy > BUSY) note(`other processes used ${(100 * busy).toFixed(0)}% of the CPUs`);
        const old = r.values[spec.id];
        if (value === null) r.values[spec.id] ??= "failed";
        else if (typeof old !== "number" || (r.better === "lower" ? value < old : value > old)) {
          r.values[spec.id] = value;
          (r.marks ??= {})[spec.id] = busy > BUSY ? "*" : "";
        }
        const shown = value === null ? "failed" : formatValue(value, r.unit) + ` ${r.unit}`;
        const load = busy > BUSY ? ` (other load ${(100 * busy).toFixed(0)}%)` : "";
        ctx.log(`cluster: ${(sc.name + tag).padEnd(34)} ${spec.label.padEnd(15)} ${shown}${load}`);
      }
    }
  }

  if (rows.some((r) => Object.values(r.marks ?? {}).includes("*"))) {
    notes.push(
      `* other processes used more than ${100 * BUSY}% of the CPUs during that measurement`,
    );
  }
  return {
    suite: "cluster",
    title: "cluster: routed servers, Go nats-server vs shoal",
    columns: specs.map((s) => ({ id: s.id, label: s.id === "go" ? "Go" : s.label })),
    rows,
    notes,
    params: {
      ...p,
      meshSize: MESH_SIZE,
      pollMs: POLL_MS,
      versions,
      servers: Object.fromEntries(specs.map((s) => [s.id, s.command(0).slice(0, -4).join(" ")])),
      memberFlags: `-a 127.0.0.1 -p PORT -m MONITOR --cluster_name ${CLUSTER_NAME} -cluster nats://127.0.0.1:CLUSTER [-routes nats://127.0.0.1:SEED]`,
    },
  };
}

export const clusterSuite: Suite = {
  name: "cluster",
  description: "routed servers: forwarded pub→sub, time to a full mesh of 5 (Go vs shoal)",
  options: natsSuite.options,
  run,
};

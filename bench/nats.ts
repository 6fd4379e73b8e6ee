// The `nats` bench suite: the same message-server scenarios against the Go nats-server and
// shoal's server, each scenario on a freshly started server, with load generators in forked
// processes (nats-load.ts) so the client side is not what gets measured. Scenarios: pub-only
// throughput, pub→sub and 1→4 fan-out delivery rates, request/reply latency, and resident memory
// idle, with 1,000 idle clients and during the pub→sub runs.
import type {
  IdleReady,
  Job,
  PubResult,
  RequesterResult,
  SubConnResult,
  SubResult,
} from "./nats-load.js";
import { Worker } from "./procs.js";
import type { Row, Suite, SuiteContext, SuiteResult, Unit } from "./report.js";
import { cpuSnapshot, otherLoad, processCpuSeconds, residentBytes, sampleRss } from "./procfs.js";
import { openConnection } from "./nats-proto.js";
import { makeCerts, type Certs } from "../test/helpers/certs.js";
import {
  goServer,
  shoalServer,
  startServer,
  stopAll,
  type RunningServer,
  type ServerSpec,
} from "./servers.js";

const LOAD = new URL("./nats-load.js", import.meta.url);

/** Share of the machine's CPU used by other processes above which a result is flagged. */
export const BUSY = 0.1;

interface Params {
  durationMs: number;
  /** Upper bound on messages per publisher, whichever of time and count comes first. */
  maxMsgs: number;
  writeBytes: number;
  idleConns: number;
  rrWarmup: number;
  rrCount: number;
  /** Set for TLS scenarios: the CA the load generators trust. */
  tlsCa?: string;
}

/** What a publisher (and the wait for its result) needs to know. */
export type LoadParams = Pick<Params, "durationMs" | "maxMsgs" | "writeBytes" | "tlsCa">;

type Metrics = Record<string, number>;

interface Scenario {
  name: string;
  /** The rows this scenario fills (so a failure marks exactly those). */
  rows: string[];
  /** The server also listens for WebSocket clients (a config file with a websocket block). */
  websocket?: boolean;
  /** Run on a server started with --tls (test certificates made for the run). */
  tls?: boolean;
  run(server: RunningServer, p: Params, note: (s: string) => void): Promise<Metrics>;
}

const ROWS: Array<Omit<Row, "values">> = [
  { id: "version", label: "server version", unit: "text", better: null },
  { id: "pub-16", label: "pub only, 16 B", unit: "msgs/s", better: "higher" },
  { id: "pub-1024", label: "pub only, 1 KiB", unit: "msgs/s", better: "higher" },
  { id: "pubsub-16", label: "pub→sub, 16 B", unit: "msgs/s", better: "higher" },
  { id: "pubsub-1024", label: "pub→sub, 1 KiB", unit: "msgs/s", better: "higher" },
  {
    id: "fanout4-16",
    label: "fan-out 1→4, 16 B, total delivered",
    unit: "msgs/s",
    better: "higher",
  },
  { id: "ws-pubsub-16", label: "pub→sub over WebSocket, 16 B", unit: "msgs/s", better: "higher" },
  {
    id: "ws-pubsub-1024",
    label: "pub→sub over WebSocket, 1 KiB",
    unit: "msgs/s",
    better: "higher",
  },
  { id: "rr-p50", label: "request/reply p50", unit: "us", better: "lower" },
  { id: "rr-p99", label: "request/reply p99", unit: "us", better: "lower" },
  { id: "tls-pubsub-16", label: "TLS pub→sub, 16 B", unit: "msgs/s", better: "higher" },
  { id: "tls-pubsub-1024", label: "TLS pub→sub, 1 KiB", unit: "msgs/s", better: "higher" },
  {
    id: "tls-handshakes",
    label: "TLS connects (INFO, handshake, CONNECT/PONG) per second",
    unit: "conns/s",
    better: "higher",
  },
  ...cpuRows(),
  { id: "rss-idle", label: "RSS, no clients", unit: "bytes", better: "lower" },
  {
    id: "rss-idle-settled",
    label: "RSS, no clients, 10 s after start",
    unit: "bytes",
    better: "lower",
  },
  { id: "rss-1000", label: "RSS, 1,000 idle clients", unit: "bytes", better: "lower" },
  { id: "rss-pubsub-16", label: "RSS peak during pub→sub 16 B", unit: "bytes", better: "lower" },
  { id: "rss-pubsub-1024", label: "RSS peak during pub→sub 1 KiB", unit: "bytes", better: "lower" },
  {
    id: "rss-stalled-peak",
    label: "RSS peak, 1 KiB pub→20 subscribers that never read",
    unit: "bytes",
    better: "lower",
  },
  {
    id: "rss-stalled-after",
    label: "RSS 10 s after those were cut off and the load stopped",
    unit: "bytes",
    better: "lower",
  },
];

/**
 * Server CPU time (user + system, /proc/PID/stat) per message published, for each throughput
 * row: a second figure that other load on the machine changes much less than the rates.
 */
function cpuRows(): Array<Omit<Row, "values">> {
  const of: Array<[string, string]> = [
    ["pub-16", "pub only, 16 B"],
    ["pub-1024", "pub only, 1 KiB"],
    ["pubsub-16", "pub→sub, 16 B"],
    ["pubsub-1024", "pub→sub, 1 KiB"],
    ["ws-pubsub-16", "pub→sub over WebSocket, 16 B"],
    ["ws-pubsub-1024", "pub→sub over WebSocket, 1 KiB"],
    ["tls-pubsub-16", "TLS pub→sub, 16 B"],
    ["tls-pubsub-1024", "TLS pub→sub, 1 KiB"],
  ];
  return of.map(([id, label]) => ({
    id: `${id}-cpu`,
    label: `server CPU per message, ${label}`,
    unit: "ns",
    better: "lower",
  }));
}

/** Server CPU nanoseconds per message from a reading taken before the run. */
const cpuPerMsg = (pid: number, cpu0: number, msgs: number) =>
  msgs > 0 ? ((processCpuSeconds(pid) - cpu0) * 1e9) / msgs : 0;

/** Forks a load generator, gives it its job and waits until it is connected. */
export async function worker(job: Job, name: string): Promise<Worker> {
  const w = new Worker(LOAD, name);
  w.send({ cmd: "start", job });
  await w.next("ready", 20_000);
  return w;
}

export function publisher(
  server: RunningServer,
  p: LoadParams,
  subject: string,
  size: number,
  ws = false,
) {
  return worker(
    {
      role: "pub",
      port: ws ? server.wsPort : server.port,
      ws,
      subject,
      size,
      durationMs: p.durationMs,
      maxMsgs: p.maxMsgs,
      writeBytes: p.writeBytes,
      tlsCa: p.tlsCa,
    },
    "publisher",
  );
}

/** Time to wait for a publisher's result: its run plus generous slack for a slow server. */
const resultTimeout = (p: LoadParams) => p.durationMs + 30_000;

function pubOnly(size: number): Scenario {
  return {
    name: `pub only ${size} B`,
    rows: [`pub-${size}`, `pub-${size}-cpu`],
    async run(server, p) {
      const pub = await publisher(server, p, "bench.pub", size);
      const cpu0 = processCpuSeconds(server.pid);
      pub.send({ cmd: "go" });
      const r = await pub.next<PubResult>("result", resultTimeout(p));
      return {
        [`pub-${size}`]: r.sent / ((r.endNs - r.startNs) / 1e9),
        [`pub-${size}-cpu`]: cpuPerMsg(server.pid, cpu0, r.sent),
      };
    },
  };
}

/**
 * One publisher, `subs` subscriber connections spread over `procs` processes. The rate is the
 * number of messages all subscribers received over the time from the first to the last of them.
 */
function pubSub(
  size: number,
  subs: number,
  procs: number,
  rowId: string,
  rssRow?: string,
  ws = false,
): Scenario {
  const name = subs === 1 ? `pub→sub ${size} B` : `fan-out 1→${subs} ${size} B`;
  const cpuRow = ROWS.some((r) => r.id === `${rowId}-cpu`) ? `${rowId}-cpu` : null;
  return {
    name: ws ? `${name} over WebSocket` : name,
    rows: [rowId, ...(cpuRow ? [cpuRow] : []), ...(rssRow ? [rssRow] : [])],
    websocket: ws,
    async run(server, p, note) {
      const subject = "bench.fan";
      const perProc = Array.from(
        { length: procs },
        (_, k) => Math.floor(subs / procs) + (k < subs % procs ? 1 : 0),
      );
      const subWorkers = await Promise.all(
        perProc.map((conns, k) =>
          worker(
            {
              role: "sub",
              port: ws ? server.wsPort : server.port,
              ws,
              subject,
              conns,
              idleMs: 1000,
              maxWaitMs: 20_000,
              tlsCa: p.tlsCa,
            },
            `subscriber-${k}`,
          ),
        ),
      );
      const pub = await publisher(server, p, subject, size, ws);
      const rss = sampleRss(server.pid, 50);
      let rate: number;
      let peak: number;
      const cpu0 = processCpuSeconds(server.pid);
      const counts = { sent: 0 };
      try {
        rate = await timeDelivery(pub, subWorkers, subs, p, note, counts);
      } finally {
        peak = rss.stop();
      }
      const out: Metrics = { [rowId]: rate };
      if (cpuRow) out[cpuRow] = cpuPerMsg(server.pid, cpu0, counts.sent);
      if (rssRow) out[rssRow] = peak;
      return out;
    },
  };
}

/** Every run that lost messages (any suite that uses timeDelivery): the bench then fails. */
export const messageLoss: string[] = [];

/**
 * Lets a ready publisher go, then tells the ready subscriber workers (`subs` connections in all)
 * how many messages to wait for, and returns the messages they received per second, from the
 * first to the last received over all connections. Any message missing fails the run (it throws
 * and is recorded in messageLoss).
 */
export async function timeDelivery(
  pub: Worker,
  subWorkers: Worker[],
  subs: number,
  p: LoadParams,
  _note: (s: string) => void,
  /** Filled with the number of messages published. */
  counts?: { sent: number },
): Promise<number> {
  pub.send({ cmd: "go" });
  const sent = (await pub.next<PubResult>("result", resultTimeout(p))).sent;
  if (counts) counts.sent = sent;
  for (const w of subWorkers) w.send({ cmd: "finish", expected: sent });
  const results = await Promise.all(subWorkers.map((w) => w.next<SubResult>("result", 30_000)));
  const conns: SubConnResult[] = results.flatMap((r) => r.conns);
  const delivered = conns.reduce((s, c) => s + c.count, 0);
  const got = conns.filter((c) => c.count > 0);
  const first = Math.min(...got.map((c) => c.firstNs));
  const last = Math.max(...got.map((c) => c.lastNs));
  if (got.length === 0 || last <= first) throw new Error("subscribers received nothing");
  const expected = sent * subs;
  if (delivered < expected) {
    const errors = [...new Set(conns.map((c) => c.error).filter((e) => e !== null))];
    const text =
      `MESSAGES LOST: delivered ${delivered} of ${expected} ` +
      `(${((100 * delivered) / expected).toFixed(1)}%)` +
      (errors.length ? `; subscriber: ${errors.join(", ")}` : "");
    // A rate over lost messages means nothing: the run fails, and the bench exits non-zero.
    messageLoss.push(text);
    throw new Error(text);
  }
  return delivered / ((last - first) / 1e9);
}

const requestReply: Scenario = {
  name: "request/reply",
  rows: ["rr-p50", "rr-p99"],
  async run(server, p) {
    const subject = "bench.req";
    await worker({ role: "responder", port: server.port, subject, size: 16 }, "responder");
    const req = await worker(
      {
        role: "requester",
        port: server.port,
        subject,
        size: 16,
        warmup: p.rrWarmup,
        count: p.rrCount,
      },
      "requester",
    );
    req.send({ cmd: "go" });
    const { latenciesUs: l } = await req.next<RequesterResult>("result", 60_000);
    const pct = (q: number) => l[Math.min(l.length - 1, Math.floor(q * l.length))];
    return { "rr-p50": pct(0.5), "rr-p99": pct(0.99) };
  },
};

/** How long after start the memory scenario reads the idle server's RSS a second time. */
const IDLE_SETTLE_MS = 10_000;

const memory: Scenario = {
  name: "memory",
  rows: ["rss-idle", "rss-idle-settled", "rss-1000"],
  async run(server, p, note) {
    const idle = residentBytes(server.pid);
    // A server at rest a while later: V8's memory reducer runs about 8 s after start.
    await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
    const settled = residentBytes(server.pid);
    const w = new Worker(LOAD, "idle clients");
    w.send({
      cmd: "start",
      job: { role: "idle", port: server.port, conns: p.idleConns, batch: 50 },
    });
    const r = await w.next<IdleReady>("ready", 60_000);
    if (r.connected !== p.idleConns) note(`only ${r.connected} idle clients connected`);
    return {
      "rss-idle": idle,
      "rss-idle-settled": settled,
      "rss-1000": residentBytes(server.pid),
    };
  },
};

/** How long the stalled-subscribers scenario publishes: past both servers' 10 s write deadline. */
const STALLED_PUB_MS = 15_000;
/** How long after the load it reads the RSS again. */
const STALLED_SETTLE_MS = 10_000;

/**
 * One publisher of 1 KiB messages and 20 subscribers that subscribe and never read: the server
 * queues up to max_pending (64 MiB) for each until it cuts them off as slow consumers. The rows
 * are the peak RSS meanwhile, and the RSS once the subscribers are gone, the load has stopped
 * and STALLED_SETTLE_MS have passed (whether the server gave the memory back).
 */
const stalledSubscribers: Scenario = {
  name: "20 stalled subscribers",
  rows: ["rss-stalled-peak", "rss-stalled-after"],
  async run(server, p, note) {
    const subs = await Promise.all(
      Array.from({ length: 20 }, async (_, k) => {
        const c = await openConnection(
          server.port,
          `bench-stalled-${k}`,
          "SUB bench.stalled 1\r\n",
        );
        c.socket.pause(); // never reads again
        c.socket.on("error", () => {});
        return c.socket;
      }),
    );
    const load = { ...p, durationMs: Math.max(p.durationMs, STALLED_PUB_MS) };
    const pub = await publisher(server, load, "bench.stalled", 1024);
    const rss = sampleRss(server.pid, 50);
    let peak: number;
    try {
      pub.send({ cmd: "go" });
      const r = await pub.next<PubResult>("result", resultTimeout(load));
      note(`${r.sent} messages published`);
    } finally {
      for (const s of subs) s.destroy();
      peak = rss.stop();
    }
    await new Promise((r) => setTimeout(r, STALLED_SETTLE_MS));
    return { "rss-stalled-peak": peak, "rss-stalled-after": residentBytes(server.pid) };
  },
};

/** The same pub→sub run over TLS connections (the server started with --tls). */
function tlsPubSub(size: number): Scenario {
  const inner = pubSub(size, 1, 1, `tls-pubsub-${size}`);
  return { ...inner, name: `TLS pub→sub ${size} B`, tls: true };
}

/** TLS connections opened and closed one after another over 4 parallel loops, for the duration. */
const tlsHandshakes: Scenario = {
  name: "TLS handshakes",
  rows: ["tls-handshakes"],
  tls: true,
  async run(server, p) {
    const start = performance.now();
    const deadline = start + p.durationMs;
    let n = 0;
    const loop = async (k: number) => {
      while (performance.now() < deadline) {
        const { socket } = await openConnection(server.port, `bench-tls-${k}`, "", false, p.tlsCa);
        socket.destroy();
        n++;
      }
    };
    await Promise.all([0, 1, 2, 3].map(loop));
    return { "tls-handshakes": n / ((performance.now() - start) / 1000) };
  },
};

const SCENARIOS: Scenario[] = [
  pubOnly(16),
  pubOnly(1024),
  pubSub(16, 1, 1, "pubsub-16", "rss-pubsub-16"),
  pubSub(1024, 1, 1, "pubsub-1024", "rss-pubsub-1024"),
  pubSub(16, 4, 2, "fanout4-16"),
  pubSub(16, 1, 1, "ws-pubsub-16", undefined, true),
  pubSub(1024, 1, 1, "ws-pubsub-1024", undefined, true),
  tlsPubSub(16),
  tlsPubSub(1024),
  tlsHandshakes,
  requestReply,
  memory,
  stalledSubscribers,
];

/** A server spec that requires TLS of clients, with the run's certificate. */
function withTls(spec: ServerSpec, certs: Certs): ServerSpec {
  const flags = ["--tls", "--tlscert", certs.server.cert, "--tlskey", certs.server.key];
  return { ...spec, command: (port) => [...spec.command(port), ...flags] };
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: gave up after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function selectServers(ctx: SuiteContext): ServerSpec[] {
  const o = ctx.options;
  const all = [
    goServer(typeof o["go-server"] === "string" ? o["go-server"] : undefined),
    shoalServer(typeof o["shoal-cmd"] === "string" ? o["shoal-cmd"].split(/\s+/) : undefined),
  ];
  const wanted = typeof o.servers === "string" ? o.servers.split(",") : ["go", "shoal"];
  for (const id of wanted) {
    if (!all.some((s) => s.id === id)) throw new Error(`unknown server "${id}" (go, shoal)`);
  }
  return all.filter((s) => wanted.includes(s.id));
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const specs = selectServers(ctx);
  const p: Params = {
    durationMs: ctx.durationMs,
    maxMsgs: 100_000_000,
    writeBytes: 256 * 1024,
    idleConns: 1000,
    rrWarmup: 1000,
    rrCount: 5000,
  };
  const rows: Row[] = ROWS.map((r) => ({ ...r, values: {} }));
  const row = (id: string) => rows.find((r) => r.id === id) as Row;
  const notes: string[] = [];
  const available: ServerSpec[] = [];

  const idle = cpuSnapshot();
  await new Promise((r) => setTimeout(r, 1000));
  const before = otherLoad(idle, cpuSnapshot());
  if (before > BUSY) {
    const msg = `other processes are using ${(100 * before).toFixed(0)}% of the CPUs; numbers will be low`;
    ctx.log(`nats: warning: ${msg}`);
    notes.push(`before the run, ${msg}`);
  }

  // A server that cannot start once is reported and left out, rather than failing every row.
  for (const spec of specs) {
    try {
      const server = await startServer(spec);
      row("version").values[spec.id] = server.version;
      available.push(spec);
      ctx.log(`nats: ${spec.label} ${server.version} starts (${spec.command(0)[0]})`);
    } catch (err) {
      row("version").values[spec.id] = "failed to start";
      for (const r of rows) if (r.id !== "version") r.values[spec.id] = "not run";
      notes.push(`${errorText(err)}`);
      ctx.log(`nats: ${errorText(err)}`);
    } finally {
      await stopAll();
    }
  }

  const only = typeof ctx.options["only"] === "string" ? ctx.options["only"].toLowerCase() : "";
  const scenarios = SCENARIOS.filter((sc) => only === "" || sc.name.toLowerCase().includes(only));
  const certs = scenarios.some((sc) => sc.tls) ? makeCerts() : null;
  try {
    for (const sc of scenarios) {
      for (let rep = 1; rep <= ctx.repeat; rep++) {
        for (const plain of available) {
          const spec = sc.tls && certs ? withTls(plain, certs) : plain;
          const sp: Params = sc.tls && certs ? { ...p, tlsCa: certs.ca } : p;
          const tag = ctx.repeat > 1 ? ` (run ${rep})` : "";
          const note = (s: string) => notes.push(`${sc.name} on ${spec.label}${tag}: ${s}`);
          const m = await measure(sc, spec, sp, note);
          // Other load slows timings down; it does not change memory readings.
          const timed = sc.rows.some((id) => row(id).unit !== "bytes");
          if (!timed) m.busy = 0;
          if (m.busy > BUSY) note(`other processes used ${(100 * m.busy).toFixed(0)}% of the CPUs`);
          for (const [id, v] of Object.entries(m.metrics ?? {})) {
            const r = row(id);
            const old = r.values[spec.id];
            const better = r.better === "lower" ? v < Number(old) : v > Number(old);
            if (typeof old !== "number" || better) {
              r.values[spec.id] = v;
              (r.marks ??= {})[spec.id] = m.busy > BUSY && r.unit !== "bytes" ? "*" : "";
            }
          }
          if (!m.metrics) for (const id of sc.rows) row(id).values[spec.id] ??= "failed";
          const shown = m.metrics
            ? Object.entries(m.metrics)
                .map(([id, v]) => `${id}=${fmt(v, row(id).unit)}`)
                .join(" ")
            : "failed";
          const load = m.busy > BUSY ? ` (other load ${(100 * m.busy).toFixed(0)}%)` : "";
          ctx.log(`nats: ${(sc.name + tag).padEnd(28)} ${spec.label.padEnd(15)} ${shown}${load}`);
        }
      }
    }
  } finally {
    certs?.remove();
  }

  const disturbed = rows.some((r) => Object.values(r.marks ?? {}).includes("*"));
  if (disturbed) {
    notes.push(
      `* other processes used more than ${100 * BUSY}% of the CPUs during that measurement`,
    );
  }
  return {
    suite: "nats",
    title: "nats: message server, Go nats-server vs shoal",
    columns: specs.map((s) => ({ id: s.id, label: s.id === "go" ? "Go" : s.label })),
    rows,
    notes,
    params: {
      ...p,
      servers: Object.fromEntries(specs.map((s) => [s.id, s.command(0).slice(0, -4).join(" ")])),
    },
  };
}

/**
 * Runs one scenario on a fresh server and stops everything afterwards. `busy` is the share of the
 * machine's CPU other processes took meanwhile; metrics is null if the scenario failed.
 */
async function measure(
  sc: Scenario,
  spec: ServerSpec,
  p: Params,
  note: (s: string) => void,
): Promise<{ metrics: Metrics | null; busy: number }> {
  try {
    const server = await startServer(spec, 10_000, { websocket: sc.websocket === true });
    const before = cpuSnapshot();
    const metrics = await withTimeout(sc.run(server, p, note), p.durationMs + 90_000, sc.name);
    return { metrics, busy: otherLoad(before, cpuSnapshot()) };
  } catch (err) {
    note(errorText(err));
    return { metrics: null, busy: 0 };
  } finally {
    await stopAll();
  }
}

function fmt(v: number, unit: Unit): string {
  if (unit === "msgs/s") return `${(v / 1e6).toFixed(2)}M/s`;
  if (unit === "conns/s") return `${v.toFixed(0)}/s`;
  if (unit === "us") return `${v.toFixed(0)}µs`;
  if (unit === "ns") return `${v.toFixed(0)}ns`;
  if (unit === "bytes") return `${(v / 1048576).toFixed(1)}MiB`;
  return String(v);
}

export const natsSuite: Suite = {
  name: "nats",
  description: "message server: throughput, fan-out, request/reply latency, memory (Go vs shoal)",
  options: {
    servers: { type: "string", description: "comma-separated servers to bench (default go,shoal)" },
    "go-server": { type: "string", description: "path of the Go nats-server binary" },
    only: {
      type: "string",
      description: "run only the scenarios whose name contains this (e.g. tls)",
    },
    "shoal-cmd": {
      type: "string",
      description: 'command that starts shoal\'s server (default "node bin/shoal.js nats-server")',
    },
  },
  run,
};

// `shoal stats` like `docker stats`: a live table of what running tasks use, refreshed every
// second (`--no-stream`: once), one row per task — Docker's columns and units:
//
//   CONTAINER ID   NAME   CPU %   MEM USAGE / LIMIT   MEM %   NET I/O   BLOCK I/O   PIDS
//
// CPU % is of one core (×100 per core: 150.00% is one and a half cores); MEM USAGE / LIMIT in
// binary units (go-units' BytesSize, "%.4g"), the node's memory when the task has no limit; NET
// I/O and BLOCK I/O in decimal units (HumanSizeWithPrecision, 3 digits); "--" where the node
// could not measure it (NET I/O of a task on the host's network). Arguments (task ids or id
// prefixes, task names, service names or ids) narrow the rows. The figures are those the nodes
// last sent (every 2 s, with their heartbeats): `GET /v1/tasks/stats`.
//
// `service inspect` shows the service's current figures from the same route (serviceFigures).

import { call } from "./api-client.js";
import { rowFormatter, type ListFormat, type Row } from "./template.js";
import { CliError } from "./errors.js";
import type { TaskStatsRow } from "../api/http.js";

export const STATS_FORMAT: ListFormat = {
  defaultTable:
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
  headers: {
    ID: "CONTAINER ID",
    Container: "CONTAINER",
    Name: "NAME",
    CPUPerc: "CPU %",
    MemUsage: "MEM USAGE / LIMIT",
    MemPerc: "MEM %",
    NetIO: "NET I/O",
    BlockIO: "BLOCK I/O",
    PIDs: "PIDS",
    Service: "SERVICE",
    Node: "NODE",
  },
};

/** go's %.Ng as go-units prints sizes: N significant digits, trailing zeros dropped. */
function sig(n: number, digits: number): string {
  return String(Number(n.toPrecision(digits)));
}

function customSize(n: number, base: number, units: string[], digits: number): string {
  let i = 0;
  while (n >= base && i < units.length - 1) {
    n /= base;
    i++;
  }
  return `${sig(n, digits)}${units[i]}`;
}

/** go-units BytesSize: "1.543MiB". */
export function bytesSize(n: number): string {
  return customSize(n, 1024, ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], 4);
}

/** go-units HumanSizeWithPrecision(n, 3): "1.05kB". */
export function humanSize(n: number): string {
  return customSize(n, 1000, ["B", "kB", "MB", "GB", "TB", "PB"], 3);
}

const pair = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? "--" : `${humanSize(a)} / ${humanSize(b)}`;

/** A row of the table (the template's fields). */
export function statsRow(s: TaskStatsRow, noTrunc = false): Row {
  const limit = s.memoryLimitBytes ?? s.nodeMemoryBytes;
  return {
    ID: noTrunc ? s.taskId : s.taskId.slice(0, 12),
    Container: s.taskId,
    Name: s.name,
    CPUPerc: `${(s.cpuCores * 100).toFixed(2)}%`,
    MemUsage: `${bytesSize(s.memoryBytes)} / ${bytesSize(limit)}`,
    MemPerc: `${(limit > 0 ? (s.memoryBytes / limit) * 100 : 0).toFixed(2)}%`,
    NetIO: pair(s.netRxBytes, s.netTxBytes),
    BlockIO: pair(s.blockReadBytes, s.blockWriteBytes),
    PIDs: s.pids === undefined ? "--" : String(s.pids),
    Service: s.serviceName,
    Node: s.node,
  };
}

/** Whether an argument names the row: task id or id prefix, task name (or its `svc.slot`
 * part), service name or id. */
export function matchesArg(s: TaskStatsRow, arg: string): boolean {
  return (
    s.taskId.startsWith(arg) ||
    s.name === arg ||
    s.name.startsWith(`${arg}.`) ||
    s.serviceName === arg ||
    s.serviceId === arg
  );
}

/** The rows the arguments name, in argument order (all, by name, without arguments). */
export function selectRows(all: TaskStatsRow[], args: string[]): TaskStatsRow[] {
  if (args.length === 0) return [...all].sort((a, b) => a.name.localeCompare(b.name));
  const out: TaskStatsRow[] = [];
  const seen = new Set<string>();
  for (const arg of args) {
    const hits = all.filter((s) => matchesArg(s, arg));
    if (hits.length === 0) throw new CliError("ERR_NOT_FOUND", `No such task or service: ${arg}`);
    for (const s of hits.sort((a, b) => a.name.localeCompare(b.name))) {
      if (seen.has(s.taskId)) continue;
      seen.add(s.taskId);
      out.push(s);
    }
  }
  return out;
}

export interface StatsOptions {
  stream?: boolean;
  format?: string;
  trunc?: boolean;
}

export async function stats(args: string[], o: StatsOptions): Promise<number> {
  const format = rowFormatter(o.format, STATS_FORMAT);
  const render = async () => {
    const all = await call<TaskStatsRow[]>("GET", "/v1/tasks/stats");
    return format(selectRows(all, args).map((s) => statsRow(s, o.trunc === false)));
  };
  if (o.stream === false) {
    process.stdout.write(await render());
    return 0;
  }
  // Live: the screen is redrawn every second until interrupted, as `docker stats` does.
  for (;;) {
    const text = await render();
    process.stdout.write(`\x1b[2J\x1b[H${text}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** A service's current figures for `service inspect`: sums and averages over its tasks. */
export interface ServiceFigures {
  tasks: number;
  cpuCores: number;
  cpuCoresAvg: number;
  memoryBytes: number;
  memoryBytesAvg: number;
}

export function serviceFigures(rows: TaskStatsRow[]): ServiceFigures | null {
  if (rows.length === 0) return null;
  const cpu = rows.reduce((a, s) => a + s.cpuCores, 0);
  const mem = rows.reduce((a, s) => a + s.memoryBytes, 0);
  const round = (n: number) => Math.round(n * 10_000) / 10_000;
  return {
    tasks: rows.length,
    cpuCores: round(cpu),
    cpuCoresAvg: round(cpu / rows.length),
    memoryBytes: mem,
    memoryBytesAvg: Math.round(mem / rows.length),
  };
}

/** The ` Current:` block of `service inspect --pretty`. */
export function prettyFigures(f: ServiceFigures): string {
  return [
    "Current:",
    ` Tasks sampled:\t${f.tasks}`,
    ` CPU:\t\t${(f.cpuCores * 100).toFixed(2)}% (avg ${(f.cpuCoresAvg * 100).toFixed(2)}% per task)`,
    ` Memory:\t${bytesSize(f.memoryBytes)} (avg ${bytesSize(f.memoryBytesAvg)} per task)`,
  ].join("\n");
}

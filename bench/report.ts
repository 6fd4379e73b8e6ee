// What every bench suite hands back, and how it is shown: a table with one column per system
// under test plus the ratio of every further column to the first (with which direction is better),
// notes under it, and the same data as JSON together with a description of the machine.
import os from "node:os";

export type Unit =
  "msgs/s" | "req/s" | "conns/s" | "Mbit/s" | "ns" | "us" | "ms" | "s" | "bytes" | "text";

export interface Row {
  id: string;
  label: string;
  unit: Unit;
  better: "higher" | "lower" | null;
  /** Column id → measured number, or a short text (an error, "not run", a version). */
  values: Record<string, number | string>;
  /** Column id → a mark shown after the value (e.g. "*" for a disturbed measurement). */
  marks?: Record<string, string>;
}

export interface Column {
  id: string;
  label: string;
}

export interface SuiteResult {
  suite: string;
  title: string;
  columns: Column[];
  rows: Row[];
  /** Things a reader of the numbers must know (a server that did not start, dropped messages). */
  notes: string[];
  /** Suite parameters worth recording (durations, sizes, commands). */
  params: Record<string, unknown>;
}

/** One option a suite accepts on the `npm run bench` command line. */
export interface SuiteOption {
  type: "string" | "boolean";
  description: string;
}

export interface SuiteContext {
  /** Time budget for one timed scenario, in milliseconds. */
  durationMs: number;
  /** How many times to run each scenario; the suite keeps the best value of each row. */
  repeat: number;
  /** Parsed command-line options (the suite's own and the common ones). */
  options: Record<string, string | boolean | undefined>;
  /** Progress output (stderr), kept out of the result table. */
  log(line: string): void;
}

export interface Suite {
  name: string;
  description: string;
  options: Record<string, SuiteOption>;
  run(ctx: SuiteContext): Promise<SuiteResult>;
}

export function machineInfo(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    nproc: os.availableParallelism(),
    cpuModel: cpus[0]?.model ?? "?",
    memoryMiB: Math.round(os.totalmem() / 1048576),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

const UNIT_LABEL: Record<Unit, string> = {
  "msgs/s": "msgs/s",
  "req/s": "req/s",
  "conns/s": "conns/s",
  ns: "ns",
  "Mbit/s": "Mbit/s",
  us: "µs",
  ms: "ms",
  s: "s",
  bytes: "MiB",
  text: "",
};

export function formatValue(v: number | string | undefined, unit: Unit): string {
  if (v === undefined) return "—";
  if (typeof v === "string") return v;
  switch (unit) {
    case "msgs/s":
    case "req/s":
      if (v >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
      if (v >= 1e3) return `${(v / 1e3).toFixed(1)} k`;
      return v.toFixed(0);
    case "conns/s":
    case "Mbit/s":
      return v.toFixed(0);
    case "ns":
      return v.toFixed(0);
    case "us":
      return v < 10 ? v.toFixed(1) : v.toFixed(0);
    case "ms":
      return v < 100 ? v.toFixed(1) : v.toFixed(0);
    case "s":
      return v.toFixed(2);
    case "bytes":
      return (v / 1048576).toFixed(1);
    case "text":
      return String(v);
  }
}

function rowLabel(r: Row): string {
  return r.unit === "text" ? r.label : `${r.label} (${UNIT_LABEL[r.unit]})`;
}

/**
 * A plain-text table: label | column values... | the ratio of each further column to the first |
 * better.
 */
export function formatTable(result: SuiteResult): string {
  const cols = result.columns;
  const [base, ...others] = cols;
  const ratioHeads = base ? others.map((c) => `${c.label}/${base.label}`) : [];
  const head = [
    "row",
    ...cols.map((c) => c.label),
    ...(ratioHeads.length > 0 ? [...ratioHeads, "better"] : []),
  ];
  const body = result.rows.map((r) => {
    const cell = (c: Column) => {
      const mark = r.marks?.[c.id];
      return formatValue(r.values[c.id], r.unit) + (mark ? ` ${mark}` : "");
    };
    const cells = [rowLabel(r), ...cols.map(cell)];
    if (base && ratioHeads.length > 0) {
      const a = r.values[base.id];
      for (const c of others) {
        const b = r.values[c.id];
        cells.push(
          typeof a === "number" && typeof b === "number" && a > 0 ? (b / a).toFixed(2) : "",
        );
      }
      cells.push(r.better ? `${r.better} is better` : "");
    }
    return cells;
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join(" | ")
      .trimEnd();
  const out = [
    result.title,
    line(head),
    widths.map((w) => "-".repeat(w)).join("-|-"),
    ...body.map(line),
  ];
  for (const note of result.notes) out.push(`note: ${note}`);
  return out.join("\n");
}

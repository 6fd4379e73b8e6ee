// Output helpers for the CLI: Docker-style tables (columns padded to the widest cell, three
// spaces apart), "Running 2 minutes ago" durations, and option parsing shared by commands.

import { parseGoDuration } from "../lib/duration.js";
export { formatGoDuration } from "../lib/duration.js";

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("   ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

/** Docker's go-units HumanDuration: "Less than a second", "5 seconds", "About a minute", "2 minutes", ... */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 1) return "Less than a second";
  if (s === 1) return "1 second";
  if (s < 60) return `${s} seconds`;
  const m = Math.floor(s / 60);
  if (m === 1) return "About a minute";
  if (m < 60) return `${m} minutes`;
  const h = Math.round(m / 60);
  if (h === 1) return "About an hour";
  if (h < 48) return `${h} hours`;
  const d = Math.floor(h / 24);
  if (d < 14) return `${d} days`;
  return `${Math.floor(d / 7)} weeks`;
}

export function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** "10s", "1m30s", "500ms", "2h" (Go's durations) or a bare number of seconds → ms. */
export function parseDurationFlag(flag: string, v: string): number {
  const ms = /^\d+(\.\d+)?$/.test(v) ? Number(v) * 1000 : parseGoDuration(v);
  if (ms === undefined) {
    throw new Error(`invalid argument "${v}" for "${flag}" flag: time: invalid duration "${v}"`);
  }
  return ms;
}

/** "512M", "1g", "100k", "1048576" → bytes (Docker's RAMInBytes: binary units). */
export function parseBytesFlag(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(v.trim());
  if (!m) throw new Error(`invalid argument "${v}" for "${flag}" flag: invalid size`);
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[
    m[2]!.toLowerCase() as "" | "k" | "m" | "g" | "t"
  ];
  return Math.round(Number(m[1]) * mult);
}

export function parseIntFlag(flag: string, v: string): number {
  if (!/^-?\d+$/.test(v))
    throw new Error(
      `invalid argument "${v}" for "${flag}" flag: strconv.ParseUint: parsing "${v}": invalid syntax`,
    );
  return Number(v);
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${+(n / 1024 ** 3).toFixed(2)}GiB`;
  if (n >= 1024 ** 2) return `${+(n / 1024 ** 2).toFixed(2)}MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(2)}KiB`;
  return `${n}B`;
}

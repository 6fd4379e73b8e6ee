// Output helpers for the CLI: "Running 2 minutes ago" durations, sizes, capitalized states.
// Tables and --format are in template.ts.

export { formatGoDuration } from "../lib/duration.js";

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

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${+(n / 1024 ** 3).toFixed(2)}GiB`;
  if (n >= 1024 ** 2) return `${+(n / 1024 ** 2).toFixed(2)}MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(2)}KiB`;
  return `${n}B`;
}

// Output helpers for the CLI: Docker-style tables (columns padded to the widest cell, three
// spaces apart), "Running 2 minutes ago" durations, and option parsing shared by commands.

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

/** "10s", "1m30s", "500ms", "2h" or a bare number of seconds → ms. */
export function parseDurationFlag(flag: string, v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|us|µs|ns|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(v); m; m = re.exec(v)) {
    const n = Number(m[1]);
    const unit = m[2]!;
    total +=
      unit === "h"
        ? n * 3_600_000
        : unit === "m"
          ? n * 60_000
          : unit === "s"
            ? n * 1000
            : unit === "ms"
              ? n
              : n / 1000;
    consumed += m[0].length;
  }
  if (consumed !== v.length || v.length === 0) {
    throw new Error(`invalid argument "${v}" for "${flag}" flag: time: invalid duration "${v}"`);
  }
  return total;
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

/** A duration as Go prints one (Docker's inspect output): 100ms, 2s, 1.5s, 1m30s, 1h0m0s. */
export function formatGoDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const sec = `${Number(((ms % 60_000) / 1000).toFixed(3))}s`;
  if (h > 0) return `${h}h${m}m${sec}`;
  if (m > 0) return `${m}m${sec}`;
  return sec;
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${+(n / 1024 ** 3).toFixed(2)}GiB`;
  if (n >= 1024 ** 2) return `${+(n / 1024 ** 2).toFixed(2)}MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(2)}KiB`;
  return `${n}B`;
}

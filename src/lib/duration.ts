// Go's time.Duration text ("1h30m", "1.5s", "500ms", "10us"), which nats-server's config files
// and Docker's flags both use: one parser and one printer, in milliseconds.

const UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3, // µs (micro sign)
  "\u03bcs": 1e-3, // μs (greek mu)
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Milliseconds of a Go duration; undefined when the text is not one. "0" alone needs no unit. */
export function parseGoDuration(text: string): number | undefined {
  let s = text.trim();
  let sign = 1;
  if (s[0] === "-" || s[0] === "+") {
    sign = s[0] === "-" ? -1 : 1;
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") return undefined;
  let total = 0;
  while (s !== "") {
    const m = /^(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/.exec(s);
    if (!m || (m[1] === "" && !m[2])) return undefined;
    total += Number(`${m[1] || "0"}.${m[2] ?? ""}`) * UNITS_MS[m[3]!]!;
    s = s.slice(m[0].length);
  }
  return sign * total;
}

/** A duration as Go prints one (Docker's inspect output): 100ms, 2s, 1.5s, 1m30s, 1h0m0s. */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return "0s"; // as Go prints a zero Duration
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const sec = `${Number(((ms % 60_000) / 1000).toFixed(3))}s`;
  if (h > 0) return `${h}h${m}m${sec}`;
  if (m > 0) return `${m}m${sec}`;
  return sec;
}

/**
 * Nanoseconds as Go's time.Duration prints them: 950ns, 1.873µs, 2.5ms, 1.5s (three, six and
 * nine decimals at most, trailing zeros dropped); a second or more as formatGoDuration.
 */
export function formatGoNanos(ns: number): string {
  const n = Math.round(ns);
  if (n < 1000) return `${n}ns`;
  if (n < 1_000_000) return `${Number((n / 1000).toFixed(3))}µs`;
  if (n < 1_000_000_000) return `${Number((n / 1_000_000).toFixed(6))}ms`;
  return formatGoDuration(n / 1_000_000);
}

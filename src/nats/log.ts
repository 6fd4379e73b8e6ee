// The message server's logger, in nats-server's format:
//   [1234] 2026/11/25 10:00:00.000000 [INF] Starting nats-server
// Debug ([DBG]) and protocol trace ([TRC]) lines are only written when enabled (-D, -V).

import { appendFileSync, openSync, closeSync, readlinkSync } from "node:fs";
import { childLogger, type Logger } from "../lib/log.js";
import { wallMs } from "../lib/lazy.js";

export type Level = "INF" | "WRN" | "ERR" | "FTL" | "DBG" | "TRC";

export type { Logger } from "../lib/log.js";

export interface LoggerOptions {
  debug?: boolean;
  trace?: boolean;
  /** Timestamps on each line (nats-server's logtime, default true). */
  logtime?: boolean;
  /** Write to this file instead of stderr. */
  file?: string;
  /** Receive lines instead of writing them (tests). */
  sink?: (line: string) => void;
  pid?: number;
}

function pad(n: number, w: number): string {
  return String(n).padStart(w, "0");
}

/**
 * `2026/11/25 10:00:00.000000` in local time, with microseconds as nats-server prints them;
 * `utc`: local time is known to be UTC (localTimeIsUtc), so the UTC fields are the same.
 */
export function logTimestamp(d: Date, micros: number, utc = false): string {
  return utc
    ? `${d.getUTCFullYear()}/${pad(d.getUTCMonth() + 1, 2)}/${pad(d.getUTCDate(), 2)} ` +
        `${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}.${pad(micros, 6)}`
    : `${d.getFullYear()}/${pad(d.getMonth() + 1, 2)}/${pad(d.getDate(), 2)} ` +
        `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}.${pad(micros, 6)}`;
}

/** Names of the UTC zone: `TZ` values and the ends of /etc/localtime's link into zoneinfo. */
const UTC_ZONE =
  /^:?(?:.*\/zoneinfo\/)?(?:Etc\/)?(?:UTC|UCT|Universal|Zulu|GMT|GMT0|GMT[+-]0|Greenwich)$/;

/**
 * Whether local time is UTC, found without asking the time zone database: `TZ` names UTC, or is
 * unset and /etc/localtime links to a UTC zone (as in most containers). Asking it (any local-time
 * getter of Date) pages in ICU's time zone code and data, 0.5 MiB resident for good, which a
 * server whose local time is UTC need not pay (docs/benchmarks.md, "RSS at rest"). Anything
 * else, /etc/localtime a copy or missing included, counts as not known to be UTC.
 */
export function localTimeIsUtc(
  tz: string | undefined = process.env["TZ"],
  localtimeLink: () => string = () => readlinkSync("/etc/localtime"),
): boolean {
  if (tz !== undefined) return UTC_ZONE.test(tz);
  try {
    return UTC_ZONE.test(localtimeLink());
  } catch {
    return false;
  }
}

const GO_ESCAPES: Record<number, string> = {
  7: "\\a",
  8: "\\b",
  9: "\\t",
  10: "\\n",
  11: "\\v",
  12: "\\f",
  13: "\\r",
  34: '\\"',
  92: "\\\\",
};

const hex = (n: number, w: number) => n.toString(16).padStart(w, "0");

/**
 * Bytes as Go's %q prints them (strconv.Quote): printable UTF-8 as is, the C escapes, other
 * control characters and invalid bytes as \xHH, unprintable runes as \uHHHH or \UHHHHHHHH.
 * The trace log quotes message payloads so.
 */
export function goQuote(buf: Buffer, start = 0, end = buf.length): string {
  let out = '"';
  let i = start;
  while (i < end) {
    const b = buf[i]!;
    if (b < 0x80) {
      const esc = GO_ESCAPES[b];
      if (esc !== undefined) out += esc;
      else if (b < 0x20 || b === 0x7f) out += `\\x${hex(b, 2)}`;
      else out += String.fromCharCode(b);
      i++;
      continue;
    }
    const n = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 0;
    const ch = n > 0 && i + n <= end ? utf8Char(buf, i, n) : null;
    if (ch === null) {
      out += `\\x${hex(b, 2)}`;
      i++;
      continue;
    }
    const cp = ch.codePointAt(0)!;
    if (/^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u.test(ch)) out += ch;
    else out += cp < 0x10000 ? `\\u${hex(cp, 4)}` : `\\U${hex(cp, 8)}`;
    i += n;
  }
  return out + '"';
}

/** One well-formed UTF-8 sequence of n bytes at i as a string, or null. */
function utf8Char(buf: Buffer, i: number, n: number): string | null {
  for (let k = 1; k < n; k++) if ((buf[i + k]! & 0xc0) !== 0x80) return null;
  const s = buf.toString("utf8", i, i + n);
  // Overlong forms and surrogates do not survive the round trip (Go treats them as bad bytes).
  return Buffer.from(s, "utf8").equals(buf.subarray(i, i + n)) ? s : null;
}

export class ServerLogger implements Logger {
  debugEnabled: boolean;
  traceEnabled: boolean;
  private logtime: boolean;
  /** Local time is UTC (localTimeIsUtc), asked at the first time stamp. */
  private utc: boolean | undefined;
  private readonly write: (line: string) => void;
  private readonly prefix: string;

  constructor(opts: LoggerOptions = {}) {
    this.debugEnabled = opts.debug ?? false;
    this.traceEnabled = opts.trace ?? false;
    this.logtime = opts.logtime ?? true;
    this.prefix = `[${opts.pid ?? process.pid}] `;
    if (opts.sink) {
      this.write = opts.sink;
    } else if (opts.file) {
      const file = opts.file;
      closeSync(openSync(file, "a"));
      this.write = (line) => appendFileSync(file, line + "\n");
    } else {
      this.write = (line) => process.stderr.write(line + "\n");
    }
  }

  private line(level: Level, msg: string): void {
    let ts = "";
    if (this.logtime) {
      const now = wallMs();
      const d = new Date(Math.floor(now));
      this.utc ??= localTimeIsUtc();
      ts = logTimestamp(d, Math.floor((now * 1000) % 1_000_000), this.utc) + " ";
    }
    this.write(`${this.prefix}${ts}[${level}] ${msg}`);
  }

  /** New levels and time stamps (a configuration reload). */
  configure(o: { debug: boolean; trace: boolean; logtime: boolean }): void {
    this.debugEnabled = o.debug;
    this.traceEnabled = o.trace;
    this.logtime = o.logtime;
  }

  info(msg: string): void {
    this.line("INF", msg);
  }
  warn(msg: string): void {
    this.line("WRN", msg);
  }
  error(msg: string): void {
    this.line("ERR", msg);
  }
  fatal(msg: string): void {
    this.line("FTL", msg);
  }
  debug(msg: string): void {
    if (this.debugEnabled) this.line("DBG", msg);
  }
  trace(msg: string): void {
    if (this.traceEnabled) this.line("TRC", msg);
  }
  child(name: string): Logger {
    return childLogger(this, name);
  }
}

export { silentLogger } from "../lib/log.js";

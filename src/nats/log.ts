// The message server's logger, in nats-server's format:
//   [1234] 2026/11/25 10:00:00.000000 [INF] Starting nats-server
// Debug ([DBG]) and protocol trace ([TRC]) lines are only written when enabled (-D, -V).

import { appendFileSync, openSync, closeSync } from "node:fs";
import { childLogger, type Logger } from "../lib/log.js";

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

/** `2026/11/25 10:00:00.000000` in local time, with microseconds as nats-server prints them. */
export function logTimestamp(d: Date, micros: number): string {
  return (
    `${d.getFullYear()}/${pad(d.getMonth() + 1, 2)}/${pad(d.getDate(), 2)} ` +
    `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}.${pad(micros, 6)}`
  );
}

export class ServerLogger implements Logger {
  debugEnabled: boolean;
  traceEnabled: boolean;
  private logtime: boolean;
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
      const now = performance.timeOrigin + performance.now();
      const d = new Date(Math.floor(now));
      ts = logTimestamp(d, Math.floor((now * 1000) % 1_000_000)) + " ";
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

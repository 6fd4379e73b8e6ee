// The one logger interface every layer takes. Components get a child logger that prefixes
// their lines ("dispatcher: ..."); the message server's ServerLogger implements it in
// nats-server's format, and tests pass a silent one.

export interface Logger {
  readonly debugEnabled: boolean;
  readonly traceEnabled: boolean;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  fatal(msg: string): void;
  debug(msg: string): void;
  trace(msg: string): void;
  /** A logger whose lines start with `name: `. */
  child(name: string): Logger;
}

/** A logger that writes nothing (tests, quiet components). */
export const silentLogger: Logger = {
  debugEnabled: false,
  traceEnabled: false,
  info() {},
  warn() {},
  error() {},
  fatal() {},
  debug() {},
  trace() {},
  child: () => silentLogger,
};

/** Prefixes every line of `log` with `name: `. */
export function childLogger(log: Logger, name: string): Logger {
  const p = `${name}: `;
  const c: Logger = {
    get debugEnabled() {
      return log.debugEnabled;
    },
    get traceEnabled() {
      return log.traceEnabled;
    },
    info: (m) => log.info(p + m),
    warn: (m) => log.warn(p + m),
    error: (m) => log.error(p + m),
    fatal: (m) => log.fatal(p + m),
    debug: (m) => log.debug(p + m),
    trace: (m) => log.trace(p + m),
    child: (n) => childLogger(c, n),
  };
  return c;
}

// A task's health check as Docker runs it (daemon/health.go), as pure functions of the settings,
// the task's start time and the check results: when the next check is due, and what a result
// does to the task's health. The agent runs the checks (through its driver's exec) on this
// schedule and reports what these functions return; time is always passed in.
//
// Docker's rules: a check that exits 0 is healthy, anything else (or one that takes longer than
// the timeout) fails. A task is `starting` until its first success, which makes it `healthy` at
// once. Failures inside the start period do not count while the task is still starting; outside
// it, `retries` failures in a row make the task `unhealthy`. During the start period, checks come
// every start interval instead of every interval. The last 5 results are kept, output cut to
// 4 KiB. Zero durations and retries take Docker's defaults.

import type { HealthConfig, TaskHealth } from "../api/types.js";

/** Docker's defaults (used for a zero or missing value, as Docker does). */
export const HEALTH_DEFAULTS = {
  intervalMs: 30_000,
  timeoutMs: 30_000,
  retries: 3,
  startPeriodMs: 0,
  startIntervalMs: 5_000,
} as const;

/** Results kept in a task's health log (Docker's maxLogEntries). */
export const HEALTH_LOG_ENTRIES = 5;
/** Bytes of a check's output kept per result (Docker's maxOutputLen). */
export const HEALTH_OUTPUT_MAX = 4096;

/** A health check ready to run: the command as argv and every setting filled in. */
export interface HealthCheck {
  /** What to run: ["CMD", ...] as is; ["CMD-SHELL", cmd] becomes ["/bin/sh", "-c", cmd]. */
  argv: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
  startIntervalMs: number;
}

/** The check a service spec asks for, or null when it has none (no test, or ["NONE"]). */
export function healthCheckOf(cfg: HealthConfig | undefined): HealthCheck | null {
  if (cfg === undefined) return null;
  const [kind, ...rest] = cfg.test;
  let argv: string[];
  if (kind === "CMD") argv = rest;
  else if (kind === "CMD-SHELL") argv = ["/bin/sh", "-c", rest.join(" ")];
  else return null; // "NONE", or an empty test (Docker: inherit, and shoal has no image config)
  if (argv.length === 0 || argv[0] === "") return null;
  const or = (v: number | undefined, d: number) => (v !== undefined && v > 0 ? v : d);
  return {
    argv,
    intervalMs: or(cfg.intervalMs, HEALTH_DEFAULTS.intervalMs),
    timeoutMs: or(cfg.timeoutMs, HEALTH_DEFAULTS.timeoutMs),
    retries: or(cfg.retries, HEALTH_DEFAULTS.retries),
    startPeriodMs: cfg.startPeriodMs ?? HEALTH_DEFAULTS.startPeriodMs,
    startIntervalMs: or(cfg.startIntervalMs, HEALTH_DEFAULTS.startIntervalMs),
  };
}

/** A task's health before its first check. */
export function initialHealth(): TaskHealth {
  return { status: "starting", failingStreak: 0, log: [] };
}

/** One check's result. exitCode -1: it could not run or took too long. */
export interface CheckResult {
  start: number;
  end: number;
  exitCode: number;
  output: string;
}

function inStartPeriod(check: HealthCheck, startedAt: number, now: number): boolean {
  return check.startPeriodMs > 0 && now - startedAt < check.startPeriodMs;
}

/** How long after `now` the next check is due. */
export function nextCheckDelay(
  check: HealthCheck,
  health: TaskHealth,
  startedAt: number,
  now: number,
): number {
  return health.status === "starting" && inStartPeriod(check, startedAt, now)
    ? check.startIntervalMs
    : check.intervalMs;
}

/** The result of a check that did not end within the timeout (Docker's wording). */
export function timedOut(check: HealthCheck, start: number, end: number): CheckResult {
  return {
    start,
    end,
    exitCode: -1,
    output: `Health check exceeded timeout (${formatSeconds(check.timeoutMs)})`,
  };
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** The task's health after one more result (a new object; `health` is not changed). */
export function recordResult(
  check: HealthCheck,
  health: TaskHealth,
  result: CheckResult,
  startedAt: number,
): TaskHealth {
  const entry = { ...result, output: cutOutput(result.output) };
  const log = [...health.log, entry].slice(-HEALTH_LOG_ENTRIES);
  if (result.exitCode === 0) return { status: "healthy", failingStreak: 0, log };
  if (health.status === "starting" && inStartPeriod(check, startedAt, result.start)) {
    return { ...health, log }; // does not count
  }
  const failingStreak = health.failingStreak + 1;
  const status = failingStreak >= check.retries ? "unhealthy" : health.status;
  return { status, failingStreak, log };
}

/** Output cut to HEALTH_OUTPUT_MAX bytes (UTF-8), never inside a character. */
export function cutOutput(s: string): string {
  const b = Buffer.from(s, "utf8");
  if (b.length <= HEALTH_OUTPUT_MAX) return s;
  return b
    .subarray(0, HEALTH_OUTPUT_MAX)
    .toString("utf8")
    .replace(/\uFFFD$/, "");
}

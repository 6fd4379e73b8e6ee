// Values of the CLI's flags, parsed as Docker parses them: integers, Go durations, sizes with
// binary units, CPUs, KEY=VALUE lists. Each error names the flag and the value, in Docker's words.

import { parseGoDuration } from "../lib/duration.js";
import { UsageError } from "./errors.js";

/** Commander's collector for repeatable flags (`-e A=1 -e B=2`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** "10s", "1m30s", "500ms", "2h" (Go's durations) or a bare number of seconds → ms. */
export function parseDurationFlag(flag: string, v: string): number {
  const ms = /^\d+(\.\d+)?$/.test(v) ? Number(v) * 1000 : parseGoDuration(v);
  if (ms === undefined) {
    throw new UsageError(
      `invalid argument "${v}" for "${flag}" flag: time: invalid duration "${v}"`,
    );
  }
  return ms;
}

/** "512M", "1g", "100k", "1048576" → bytes (Docker's RAMInBytes: binary units). */
export function parseBytesFlag(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(v.trim());
  if (!m) throw new UsageError(`invalid argument "${v}" for "${flag}" flag: invalid size`);
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[
    m[2]!.toLowerCase() as "" | "k" | "m" | "g" | "t"
  ];
  return Math.round(Number(m[1]) * mult);
}

export function parseIntFlag(flag: string, v: string): number {
  if (!/^-?\d+$/.test(v))
    throw new UsageError(
      `invalid argument "${v}" for "${flag}" flag: strconv.ParseUint: parsing "${v}": invalid syntax`,
    );
  return Number(v);
}

/** A non-negative number of CPUs ("0.5", "2"). */
export function parseCpusFlag(flag: string, v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n < 0)
    throw new UsageError(`invalid argument "${v}" for "${flag}" flag`);
  return n;
}

/** KEY=VALUE items; for env, a bare KEY takes the value from this process's environment. */
export function parseKeyValues(list: string[], what: "env" | "label"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq <= 0) {
      if (what === "env" && process.env[item] !== undefined) {
        out[item] = process.env[item]!;
        continue;
      }
      throw new UsageError(`invalid ${what} "${item}": expected KEY=VALUE`);
    }
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** "70%", "70" or 70 → 70 (a percent, > 0 and finite); null when it is not one. */
export function percentValue(v: string | number): number | null {
  const text = String(v).trim();
  const m = /^(\d+(?:\.\d+)?)\s*%?$/.exec(text);
  if (!m) return null;
  const n = Number(m[1]);
  return Number.isFinite(n) ? n : null;
}

/** Go's strconv.ParseBool, which Docker's boolean flags and `--mount ro=` use. */
export function parseGoBool(v: string): boolean | null {
  if (["1", "t", "T", "true", "TRUE", "True"].includes(v)) return true;
  if (["0", "f", "F", "false", "FALSE", "False"].includes(v)) return false;
  return null;
}

/** A boolean flag with an optional value (`--flag`, `--flag=false`), in pflag's error frame. */
export function parseBoolFlag(flag: string, v: string | boolean): boolean {
  if (v === true) return true;
  const b = parseGoBool(String(v));
  if (b === null)
    throw new UsageError(
      `invalid argument "${String(v)}" for "${flag}" flag: strconv.ParseBool: parsing "${String(v)}": invalid syntax`,
    );
  return b;
}

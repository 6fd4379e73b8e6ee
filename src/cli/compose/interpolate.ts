// Compose's variable interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
// `${VAR:?message}`, `${VAR?message}` and `$$` (a literal `$`), in every string value of a file
// (never in keys), with Docker's error texts. `.env` files are read by parseEnvFile.

import { ComposeError } from "../errors.js";

export type Lookup = (name: string) => string | undefined;

const NAME = /^[_a-zA-Z][_a-zA-Z0-9]*/;

/** One string with its variables replaced; `path` names the value in errors. */
export function interpolateString(s: string, lookup: Lookup, path: string): string {
  let out = "";
  let i = 0;
  const invalid = () =>
    new ComposeError(
      `invalid interpolation format for ${path}: ${JSON.stringify(s)}. You may need to escape any $ with another $.`,
    );
  while (i < s.length) {
    const c = s[i]!;
    if (c !== "$") {
      out += c;
      i++;
      continue;
    }
    const next = s[i + 1];
    if (next === "$") {
      out += "$";
      i += 2;
      continue;
    }
    if (next === "{") {
      const end = s.indexOf("}", i + 2);
      if (end < 0) throw invalid();
      out += braced(s.slice(i + 2, end), lookup, invalid);
      i = end + 1;
      continue;
    }
    const m = NAME.exec(s.slice(i + 1));
    if (!m) throw invalid();
    out += lookup(m[0]) ?? "";
    i += 1 + m[0].length;
  }
  return out;
}

/** The value of `${...}`'s inside. */
function braced(inner: string, lookup: Lookup, invalid: () => Error): string {
  const m = NAME.exec(inner);
  if (!m) throw invalid();
  const name = m[0];
  const rest = inner.slice(name.length);
  const value = lookup(name);
  if (rest === "") return value ?? "";
  const op = /^(:?)([-?+])/.exec(rest);
  if (!op) throw invalid();
  const arg = rest.slice(op[0].length);
  // With ':' an empty value counts as unset.
  const unset = op[1] === ":" ? value === undefined || value === "" : value === undefined;
  switch (op[2]) {
    case "-":
      return unset ? arg : value!;
    case "+":
      return unset ? "" : arg;
    default:
      if (unset) throw new ComposeError(`required variable ${name} is missing a value: ${arg}`);
      return value!;
  }
}

/** Every string value of a parsed document interpolated (keys are left alone). */
export function interpolate(v: unknown, lookup: Lookup, path = ""): unknown {
  if (typeof v === "string") return castInterpolated(path, interpolateString(v, lookup, path));
  if (Array.isArray(v)) return v.map((x, i) => interpolate(x, lookup, join(path, String(i))));
  if (v !== null && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = interpolate(x, lookup, join(path, k));
    return out;
  }
  return v;
}

function join(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

// Values the schema wants as numbers or booleans, which a variable can only give as text.
export const INTS = [
  /^services\.[^.]+\.deploy\.replicas$/,
  /^services\.[^.]+\.deploy\.(update_config|rollback_config)\.parallelism$/,
  /^services\.[^.]+\.deploy\.restart_policy\.max_attempts$/,
  /^services\.[^.]+\.deploy\.placement\.max_replicas_per_node$/,
  /^services\.[^.]+\.healthcheck\.retries$/,
  /^services\.[^.]+\.ports\.\d+\.(target|published)$/,
];
export const BOOLS = [
  /^services\.[^.]+\.healthcheck\.disable$/,
  /^networks\.[^.]+\.(external|attachable|internal)$/,
];

/** A text value as the type its key wants ("3" → 3 for replicas, as a variable gives it). */
function castInterpolated(path: string, value: string): unknown {
  if (/^-?\d+$/.test(value) && INTS.some((r) => r.test(path))) return Number(value);
  if (/^(true|false)$/i.test(value) && BOOLS.some((r) => r.test(path)))
    return value.toLowerCase() === "true";
  return value;
}

/**
 * A `.env` or `env_file` file: `KEY=VALUE` lines, `#` comments and blank lines skipped, values
 * optionally in single or double quotes; a bare `KEY` takes its value from `lookup` (and is left
 * out when that has none).
 */
export function parseEnvFile(text: string, file: string, lookup: Lookup): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const body = line.startsWith("export ") ? line.slice(7).trimStart() : line;
    const eq = body.indexOf("=");
    const key = (eq < 0 ? body : body.slice(0, eq)).trim();
    if (!/^[^\s=]+$/.test(key)) {
      throw new ComposeError(`${file}:${i + 1}: invalid variable name ${JSON.stringify(key)}`);
    }
    if (eq < 0) {
      const v = lookup(key);
      if (v !== undefined) out[key] = v;
      return;
    }
    let value = body.slice(eq + 1).trim();
    const q = value[0];
    if ((q === '"' || q === "'") && value.length >= 2 && value.endsWith(q)) {
      value = value.slice(1, -1);
      if (q === '"') value = value.replace(/\\n/g, "\n").replace(/\\(["\\])/g, "$1");
    } else {
      const hash = value.search(/\s#/);
      if (hash >= 0) value = value.slice(0, hash).trimEnd();
    }
    out[key] = value;
  });
  return out;
}

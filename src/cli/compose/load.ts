// Loading compose files as `docker stack deploy` does: each file is parsed (yaml), its values
// interpolated from the environment and the `.env` file beside the first file, checked for the
// keys Swarm refuses, validated against the Compose Specification's JSON schema (ajv; the schema
// is data, data/compose-spec.json), and the files merged in order, later ones overriding.
// Errors name the file, the line and column, and the path of the key.

import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createRequire } from "node:module";
import type { ErrorObject, ValidateFunction } from "ajv";
import { LineCounter, parseDocument, isMap, isPair, isScalar, type Document } from "yaml";
import { ComposeError } from "../errors.js";
import { COMPOSE_AJV_OPTIONS } from "./schema-options.js";
import { BOOLS, INTS, interpolate, parseEnvFile, type Lookup } from "./interpolate.js";

export type Dict = Record<string, unknown>;

/** A file's text and name (the name is only for messages and relative paths). */
export interface ComposeSource {
  file: string;
  text: string;
}

/** Swarm's refusals, with its hints (docker/cli's ForbiddenProperties). */
export const FORBIDDEN: Record<string, string> = {
  extends: "Support for `extends` is not implemented yet.",
  volume_driver:
    "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there.",
  volumes_from:
    "To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option.",
  cpu_quota: "Set resource limits using deploy.resources",
  cpu_shares: "Set resource limits using deploy.resources",
  cpuset: "Set resource limits using deploy.resources",
  mem_limit: "Set resource limits using deploy.resources",
  memswap_limit: "Set resource limits using deploy.resources",
};

/** Keys Swarm ignores, with a warning naming them (docker/cli's UnsupportedProperties). */
export const UNSUPPORTED = [
  "build",
  "cap_add",
  "cap_drop",
  "cgroupns_mode",
  "cgroup_parent",
  "devices",
  "domainname",
  "external_links",
  "ipc",
  "links",
  "mac_address",
  "network_mode",
  "pid",
  "privileged",
  "restart",
  "security_opt",
  "shm_size",
  "userns_mode",
];

/** Keys Swarm ignores as deprecated, with its reasons (docker/cli's DeprecatedProperties). */
export const DEPRECATED: Record<string, string> = {
  container_name: "Setting the container name is not supported.",
  expose:
    "Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
};

let validator: ValidateFunction | undefined;

function schemaValidator(): ValidateFunction {
  if (validator) return validator;
  // Built: the validator the build compiled (tools/compose-validator.ts), loaded in a few ms.
  const require = createRequire(import.meta.url);
  try {
    const mod = require("../../../data/compose-spec.validate.cjs") as {
      default: ValidateFunction;
    };
    validator = mod.default;
    return validator;
  } catch {
    // Not built yet (or removed): compile the schema here, the same way.
  }
  // dist/src/cli/compose/ when built, src/cli/compose/ when run from the sources.
  let text: string;
  try {
    text = readFileSync(new URL("../../../../data/compose-spec.json", import.meta.url), "utf8");
  } catch {
    text = readFileSync(new URL("../../../data/compose-spec.json", import.meta.url), "utf8");
  }
  // Loaded here only: the built path above does without Ajv's compiler.
  const { Ajv } = require("ajv") as typeof import("ajv");
  validator = new Ajv(COMPOSE_AJV_OPTIONS).compile(JSON.parse(text) as object);
  return validator;
}

/** A parsed file: its plain value (interpolated) and the document, for positions. */
interface Parsed {
  file: string;
  doc: Document;
  lines: LineCounter;
  value: Dict;
}

function parse(src: ComposeSource, lookup: Lookup): Parsed {
  const lines = new LineCounter();
  const doc = parseDocument(src.text, { lineCounter: lines, uniqueKeys: true, merge: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const at = e.linePos?.[0];
    const where = at ? `:${at.line}:${at.col}` : "";
    throw new ComposeError(`${src.file}${where}: ${e.message.split("\n")[0]}`);
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 1000 });
  if (raw === null || raw === undefined) throw new ComposeError(`${src.file}: the file is empty`);
  if (typeof raw !== "object" || Array.isArray(raw))
    throw new ComposeError(`${src.file}: Top-level object must be a mapping`);
  try {
    return { file: src.file, doc, lines, value: interpolate(raw, lookup) as Dict };
  } catch (err) {
    if (err instanceof ComposeError) throw new ComposeError(`${src.file}: ${err.message}`);
    throw err;
  }
}

/** "file:line:col" of the key at `path` (or of the nearest mapping above it that exists). */
function position(p: Parsed, path: string[]): string {
  for (let n = path.length; n >= 0; n--) {
    const parentPath = path.slice(0, n - 1);
    const parent = n === 0 ? undefined : p.doc.getIn(parentPath, true);
    let range: [number, number, number] | null | undefined;
    if (n === 0) range = p.doc.contents?.range;
    else if (isMap(parent)) {
      const pair = parent.items.find(
        (it) => isPair(it) && isScalar(it.key) && String(it.key.value) === path[n - 1],
      );
      range = pair && isScalar(pair.key) ? pair.key.range : undefined;
    } else {
      const node = p.doc.getIn(path.slice(0, n), true) as
        { range?: [number, number, number] } | undefined;
      range = node?.range;
    }
    if (range) {
      const { line, col } = p.lines.linePos(range[0]);
      return `${p.file}:${line}:${col}`;
    }
  }
  return p.file;
}

function splitPath(instancePath: string): string[] {
  return instancePath === ""
    ? []
    : instancePath
        .slice(1)
        .split("/")
        .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

/** The one error to show: the deepest, and not a "must match a schema in oneOf" summary. */
export function describeSchemaErrors(errors: ErrorObject[]): { path: string[]; message: string } {
  const depth = (e: ErrorObject) => splitPath(e.instancePath).length;
  const plain = errors.filter((e) => e.keyword !== "oneOf" && e.keyword !== "anyOf");
  const pool = plain.length > 0 ? plain : errors;
  const max = Math.max(...pool.map(depth));
  const deepest = pool.filter((e) => depth(e) === max);
  const first = deepest.find((e) => e.keyword === "additionalProperties") ?? deepest[0]!;
  const path = splitPath(first.instancePath);
  if (first.keyword === "additionalProperties") {
    const prop = (first.params as { additionalProperty: string }).additionalProperty;
    return { path: [...path, prop], message: `Additional property ${prop} is not allowed` };
  }
  const at = deepest.filter((e) => e.instancePath === first.instancePath);
  const types = at
    .filter((e) => e.keyword === "type")
    .map((e) => (e.params as { type: string }).type);
  if (types.length > 1) return { path, message: `must be ${[...new Set(types)].join(" or ")}` };
  return { path, message: first.message ?? "is invalid" };
}

/** The keys of a file's services that Swarm refuses: an error with its hints. */
function checkForbidden(p: Parsed): void {
  const services = (p.value["services"] ?? {}) as Dict;
  const found: string[] = [];
  let where: string | undefined;
  for (const [name, svc] of Object.entries(services)) {
    if (svc === null || typeof svc !== "object") continue;
    for (const key of Object.keys(svc)) {
      if (Object.hasOwn(FORBIDDEN, key)) {
        found.push(`${key}: ${FORBIDDEN[key]!}`);
        where ??= `${position(p, ["services", name, key])}: services.${name}.${key}`;
      }
    }
  }
  if (found.length > 0) {
    throw new ComposeError(
      `${where}: Compose file contains unsupported options:\n\n${[...new Set(found)].sort().join("\n\n")}\n`,
    );
  }
}

/**
 * Values the schema lets be text (so that a variable can give them) but Swarm needs as numbers
 * or booleans: text left there after interpolation is refused.
 */
function checkTyped(p: Parsed, v: unknown, path: string[]): void {
  if (Array.isArray(v)) v.forEach((x, i) => checkTyped(p, x, [...path, String(i)]));
  else if (isDict(v)) for (const [k, x] of Object.entries(v)) checkTyped(p, x, [...path, k]);
  else if (typeof v === "string") {
    const dotted = path.join(".");
    const want = INTS.some((r) => r.test(dotted))
      ? "integer"
      : BOOLS.some((r) => r.test(dotted))
        ? "boolean"
        : undefined;
    if (want) throw new ComposeError(`${position(p, path)}: ${dotted}: must be ${want}`);
  }
}

function validate(p: Parsed): void {
  checkForbidden(p);
  const v = schemaValidator();
  if (!v(p.value)) {
    const { path, message } = describeSchemaErrors(v.errors ?? []);
    const dotted = path.length > 0 ? path.join(".") : "(root)";
    throw new ComposeError(`${position(p, path)}: ${dotted}: ${message}`);
  }
  checkTyped(p, p.value, []);
}

// ---- merge -----------------------------------------------------------------------------------

const isDict = (v: unknown): v is Dict => v !== null && typeof v === "object" && !Array.isArray(v);

/** `[A=1, B]` or `{A: 1}` as a map (environment, labels, ...). */
export function toMap(v: unknown): Dict {
  if (isDict(v)) return v;
  const out: Dict = {};
  for (const item of Array.isArray(v) ? v : []) {
    const s = String(item);
    const eq = s.indexOf("=");
    out[eq < 0 ? s : s.slice(0, eq)] = eq < 0 ? null : s.slice(eq + 1);
  }
  return out;
}

// Lists that merge as maps; lists that merge as sets (each entry once); all others replace.
const AS_MAP = new Set(["environment", "labels", "extra_hosts", "sysctls"]);
const AS_SET = new Set(["ports", "dns", "dns_search", "env_file", "constraints", "preferences"]);

function mergeValue(key: string, a: unknown, b: unknown): unknown {
  if (b === undefined) return a;
  if (AS_MAP.has(key) && (Array.isArray(a) || Array.isArray(b)) && a !== undefined)
    return { ...toMap(a), ...toMap(b) };
  if (AS_SET.has(key) && Array.isArray(a) && Array.isArray(b)) {
    const seen = new Set(a.map((x) => JSON.stringify(x)));
    return [...a, ...b.filter((x) => !seen.has(JSON.stringify(x)))];
  }
  if (isDict(a) && isDict(b)) return mergeDicts(a, b);
  return b;
}

/** `b` over `a`, as compose merges an override file over its base. */
export function mergeDicts(a: Dict, b: Dict): Dict {
  const out: Dict = { ...a };
  for (const [k, v] of Object.entries(b)) out[k] = mergeValue(k, a[k], v);
  return out;
}

// ---- the loader --------------------------------------------------------------------------------

export interface Loaded {
  /** The merged, interpolated file. */
  config: Dict;
  /** The directory relative paths (env_file) are taken from: the first file's. */
  workingDir: string;
}

/** Loads, interpolates, validates and merges the sources (pure: the caller reads the files). */
export function loadSources(sources: ComposeSource[], lookup: Lookup): Dict {
  if (sources.length === 0)
    throw new ComposeError("Please specify a Compose file (with --compose-file).");
  let merged: Dict = {};
  for (const src of sources) {
    const p = parse(src, lookup);
    validate(p);
    merged = mergeDicts(merged, p.value);
  }
  return merged;
}

/**
 * Reads the files (`-` is stdin's text in `stdin`) and the `.env` beside the first one; the
 * process environment wins over `.env`.
 */
export function loadFiles(
  files: string[],
  env: NodeJS.ProcessEnv,
  read: (path: string) => string = (p) => readFileSync(p, "utf8"),
): Loaded {
  const workingDir =
    files.length > 0 && files[0] !== "-" ? dirname(resolve(files[0]!)) : process.cwd();
  let dotEnv: Record<string, string> = {};
  let envText: string | undefined;
  try {
    envText = read(join(workingDir, ".env"));
  } catch {
    envText = undefined;
  }
  const fromEnv: Lookup = (k) => env[k];
  if (envText !== undefined) dotEnv = parseEnvFile(envText, join(workingDir, ".env"), fromEnv);
  const lookup: Lookup = (k) => env[k] ?? dotEnv[k];
  const sources = files.map((file) => {
    try {
      return { file, text: read(file === "-" ? "/dev/stdin" : file) };
    } catch (err) {
      throw new ComposeError(
        `open ${file}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (err as Error).message}`,
      );
    }
  });
  return { config: loadSources(sources, lookup), workingDir };
}

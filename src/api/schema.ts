// Checking values against the contract's schemas: one compiled validator per schema (TypeBox's
// TypeCompiler, built on first use and kept), messages that name the field and the rule
// (`spec.update.failureAction must be one of pause, continue, rollback`, `spec.mode is
// required`, `spec.foo is not a known field`), `decode` for bus messages (bytes in, a value or an
// error out, never a throw) and a counter that logs dropped messages at most once per period.
//
// Schemas of stored objects and bus messages accept properties they do not know (a newer node or
// manager may send more); `closed(schema)` makes the variant request bodies use, which refuses
// them.

import { Kind, type Static, type TSchema } from "@sinclair/typebox";
import { TypeCompiler, type TypeCheck } from "@sinclair/typebox/compiler";
import { ValueErrorType, type ValueError } from "@sinclair/typebox/errors";
import { SchemaError } from "./errors.js";
import { NO_NUL } from "./types.js";

const checks = new WeakMap<TSchema, TypeCheck<TSchema>>();

/** The compiled validator of `schema` (compiled once, on first use). */
export function compiled<T extends TSchema>(schema: T): TypeCheck<T> {
  let c = checks.get(schema);
  if (c === undefined) {
    c = TypeCompiler.Compile(schema);
    checks.set(schema, c);
  }
  return c as TypeCheck<T>;
}

/** Whether `value` matches `schema`. */
export function matches<T extends TSchema>(schema: T, value: unknown): value is Static<T> {
  return compiled(schema).Check(value);
}

/**
 * What is wrong with `value`, one sentence per field, each naming it from `name` (`spec` →
 * `spec.update.delayMs`); empty when it matches. `root` names the value itself when `name` is
 * empty (`body must be an object`).
 */
export function problems(schema: TSchema, value: unknown, name = "", root = "value"): string[] {
  const c = compiled(schema);
  if (c.Check(value)) return [];
  const out: string[] = [];
  collect(c.Errors(value), value, name, root, out, new Set());
  // Never empty for a value the check refused.
  if (out.length === 0) out.push(`${name || root} is invalid`);
  return out;
}

/** Throws a SchemaError naming every problem unless `value` matches `schema`. */
export function check<T extends TSchema>(
  schema: T,
  value: unknown,
  name = "",
  root = "value",
): Static<T> {
  if (compiled(schema).Check(value)) return value;
  throw schemaError(problems(schema, value, name, root));
}

const MAX_LISTED = 3;

/** One error for a list of problems: the first few in the message, all in `problems`. */
export function schemaError(list: readonly string[], cause?: unknown): SchemaError {
  const more = list.length - MAX_LISTED;
  const message =
    list.slice(0, MAX_LISTED).join("; ") +
    (more > 0 ? `; and ${more} more problem${more > 1 ? "s" : ""}` : "");
  return new SchemaError(message, list, cause === undefined ? undefined : { cause });
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: SchemaError };

const utf8 = new TextDecoder();

/** A JSON message (bytes or text) checked against its schema: the value, or why it is refused. */
export function decode<T extends TSchema>(
  schema: T,
  data: Uint8Array | string,
  name = "message",
): Decoded<Static<T>> {
  let value: unknown;
  try {
    value = JSON.parse(typeof data === "string" ? data : utf8.decode(data));
  } catch (err) {
    const p = `${name} is not JSON (${(err as Error).message})`;
    return { ok: false, error: schemaError([p], err) };
  }
  if (compiled(schema).Check(value)) return { ok: true, value };
  return { ok: false, error: schemaError(problems(schema, value, name)) };
}

/**
 * Counts messages dropped as malformed and reports them through `warn` at most once per
 * `everyMs` (with how many were dropped since the last report), so a flood of bad messages
 * cannot flood the log. `now` is injectable for tests.
 */
export class DroppedMessages {
  /** Messages dropped so far. */
  count = 0;
  private unreported = 0;
  private lastReport = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly warn: (msg: string) => void,
    private readonly everyMs = 5000,
    private readonly now: () => number = Date.now,
  ) {}

  drop(subject: string, error: Error): void {
    this.count++;
    this.unreported++;
    const t = this.now();
    if (t - this.lastReport < this.everyMs) return;
    this.lastReport = t;
    const others = this.unreported - 1;
    this.unreported = 0;
    this.warn(
      `dropped a malformed message on ${subject}: ${error.message}` +
        (others > 0 ? ` (and ${others} more since the last report)` : ""),
    );
  }
}

type Json = Record<string | symbol, unknown>;

/**
 * A copy of `schema` in which every object refuses properties it does not declare (records,
 * whose keys are free, stay as they are). Request bodies use it: a misspelt field is an error,
 * not silently ignored.
 */
export function closed<T extends TSchema>(schema: T): T {
  const s: Json = { ...(schema as Json) };
  if (s["type"] === "object" && isRecord(s["properties"])) {
    s["additionalProperties"] = false;
    s["properties"] = mapValues(s["properties"], closed);
  }
  if (isRecord(s["patternProperties"])) {
    s["patternProperties"] = mapValues(s["patternProperties"], closed);
  }
  if (Array.isArray(s["anyOf"])) s["anyOf"] = (s["anyOf"] as TSchema[]).map(closed);
  if (isRecord(s["items"])) s["items"] = closed(s["items"] as TSchema);
  return s as T;
}

function mapValues(
  o: Record<string, unknown>,
  f: (s: TSchema) => TSchema,
): Record<string, TSchema> {
  const out: Record<string, TSchema> = {};
  for (const [k, v] of Object.entries(o)) out[k] = f(v as TSchema);
  return out;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// ---- messages ----------------------------------------------------------------------------------

const MAX_PROBLEMS = 20;

function collect(
  errors: Iterable<ValueError>,
  root: unknown,
  name: string,
  rootLabel: string,
  out: string[],
  seen: Set<string>,
): void {
  for (const e of errors) {
    if (out.length >= MAX_PROBLEMS) return;
    // The first error on a field says it best ("is required", then "must be a string").
    if (seen.has(e.path)) continue;
    seen.add(e.path);
    const label = fieldName(name, e.path, root) || rootLabel;
    if (e.type === ValueErrorType.Union) {
      union(e, root, name, rootLabel, label, out, seen);
      continue;
    }
    out.push(sentence(e, label));
  }
}

function union(
  e: ValueError,
  root: unknown,
  name: string,
  rootLabel: string,
  label: string,
  out: string[],
  seen: Set<string>,
): void {
  const variants = ((e.schema as unknown as Json)["anyOf"] ?? []) as Json[];
  if (variants.length > 0 && variants.every((v) => v[Kind] === "Literal")) {
    out.push(`${label} must be one of ${variants.map((v) => String(v["const"])).join(", ")}`);
    return;
  }
  // An object against a union with object variants (`spec | null`, or `mode: { replicated } |
  // { global }` told apart by their keys): when one variant is meant, its problems are the
  // useful ones.
  const required = (v: Json) => (v["required"] as string[] | undefined) ?? [];
  const objects = variants.every((v) => v["type"] === "object");
  if (isRecord(e.value)) {
    const value = e.value;
    let meant = variants.map((v, i) => ({ v, i })).filter(({ v }) => v["type"] === "object");
    if (meant.length > 1) meant = meant.filter(({ v }) => required(v).some((k) => k in value));
    const errors = meant.length === 1 ? e.errors[meant[0]!.i] : undefined;
    if (errors) {
      const before = out.length;
      collect(errors, root, name, rootLabel, out, seen);
      if (out.length > before) return;
    }
  }
  if (objects && variants.every((v) => required(v).length === 1)) {
    const names = variants.map((v) => required(v)[0]);
    out.push(`${label} must have exactly one of ${names.join(", ")}`);
    return;
  }
  out.push(`${label} must be ${variants.map(describe).join(" or ")}`);
}

function describe(s: Json): string {
  switch (s[Kind]) {
    case "Literal":
      return JSON.stringify(s["const"]);
    case "Null":
      return "null";
    case "String":
      return "a string";
    case "Number":
      return "a number";
    case "Integer":
      return "an integer";
    case "Boolean":
      return "a boolean";
    case "Array":
      return "an array";
    case "Object":
    case "Record":
      return "an object";
    default:
      return String(s[Kind] ?? "a value").toLowerCase();
  }
}

function sentence(e: ValueError, label: string): string {
  const s = e.schema as unknown as Json;
  if (e.type === ValueErrorType.ObjectRequiredProperty) return `${label} is required`;
  if (e.type === ValueErrorType.ObjectAdditionalProperties) return `${label} is not a known field`;
  // A schema may say its rule in words (`errorMessage`), for patterns and ranges.
  if (typeof s["errorMessage"] === "string") return `${label} ${s["errorMessage"]}`;
  switch (e.type) {
    case ValueErrorType.String:
      return `${label} must be a string`;
    case ValueErrorType.Number:
      return `${label} must be a number`;
    case ValueErrorType.Integer:
      return `${label} must be an integer`;
    case ValueErrorType.Boolean:
      return `${label} must be a boolean`;
    case ValueErrorType.Object:
      return `${label} must be an object`;
    case ValueErrorType.Array:
      return `${label} must be an array`;
    case ValueErrorType.Null:
      return `${label} must be null`;
    case ValueErrorType.Literal:
      return `${label} must be ${JSON.stringify(s["const"])}`;
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.IntegerMaximum:
      return `${label} must be <= ${String(s["maximum"])}`;
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.IntegerMinimum:
      return `${label} must be >= ${String(s["minimum"])}`;
    case ValueErrorType.NumberExclusiveMaximum:
    case ValueErrorType.IntegerExclusiveMaximum:
      return `${label} must be < ${String(s["exclusiveMaximum"])}`;
    case ValueErrorType.NumberExclusiveMinimum:
    case ValueErrorType.IntegerExclusiveMinimum:
      return `${label} must be > ${String(s["exclusiveMinimum"])}`;
    case ValueErrorType.StringPattern:
      if (s["pattern"] === NO_NUL) return `${label} must not contain NUL characters`;
      return `${label} must match ${String(s["pattern"])}`;
    case ValueErrorType.StringMinLength:
      return s["minLength"] === 1
        ? `${label} must not be empty`
        : `${label} must be at least ${String(s["minLength"])} characters`;
    case ValueErrorType.StringMaxLength:
      return `${label} must be at most ${String(s["maxLength"])} characters`;
    case ValueErrorType.ArrayMinItems:
      return `${label} must have at least ${String(s["minItems"])} items`;
    case ValueErrorType.ArrayMaxItems:
      return `${label} must have at most ${String(s["maxItems"])} items`;
    case ValueErrorType.ObjectMaxProperties:
      return `${label} must have at most ${String(s["maxProperties"])} entries`;
    default:
      return `${label}: ${e.message.toLowerCase()}`;
  }
}

const IDENT = /^[A-Za-z_$][\w$]*$/;

/** `spec` + `/ports/0/published` → `spec.ports[0].published`; odd keys as `labels["a.b"]`. */
function fieldName(name: string, pointer: string, root: unknown): string {
  let out = name;
  let at: unknown = root;
  if (pointer === "") return out;
  for (const raw of pointer.slice(1).split("/")) {
    const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (Array.isArray(at)) out += `[${key}]`;
    else if (IDENT.test(key)) out += out === "" ? key : `.${key}`;
    else out += `[${JSON.stringify(key)}]`;
    at = isRecord(at) || Array.isArray(at) ? (at as Record<string, unknown>)[key] : undefined;
  }
  return out;
}

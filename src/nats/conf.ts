// The nats-server configuration file format: `key: value` / `key = value` / `key value`,
// nested `{ }` blocks, `[ ]` arrays, `#` and `//` comments, quoted, raw and bare strings,
// `( )` block strings, numbers with size suffixes (`1MB`, `2m`), booleans, `$variables`
// (enclosing blocks first, then the environment) and `include` of other files.
//
// It is a recursive-descent parser over the text, written to accept what nats-server 2.9
// accepts and to produce the same values (an unquoted `2m` is the number 2000000, `3s` is the
// string "3s"). It only builds plain JS values: which keys mean what is the options layer's job.
// Errors are ConfigError, naming file, line and column (both 1-based).

import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { parseGoDuration } from "../lib/duration.js";

export class ConfigError extends Error {
  readonly code = "ERR_CONFIG";
  /** What is wrong, without the position prefix. */
  readonly reason: string;

  constructor(
    message: string,
    readonly file: string | undefined,
    readonly line: number,
    readonly column: number,
    options?: { cause?: unknown },
  ) {
    const where = line > 0 ? `${line}:${column}` : "";
    const prefix = [file, where].filter((p) => p).join(":");
    super(prefix ? `${prefix}: ${message}` : message, options);
    this.name = "ConfigError";
    this.reason = message;
  }
}

export type ConfValue = string | number | boolean | ConfValue[] | ConfObject;
export interface ConfObject {
  [key: string]: ConfValue;
}
export interface ParseOptions {
  file?: string;
  env?: Record<string, string | undefined>;
}

export function parseConfig(text: string, opts: ParseOptions = {}): ConfObject {
  const file = opts.file;
  return new Parser(text, {
    file,
    dir: file === undefined ? process.cwd() : dirname(file),
    env: opts.env ?? process.env,
    includes: file === undefined ? [] : [resolve(file)],
    envRefs: [],
  }).parse();
}

export function parseConfigFile(path: string, opts: Omit<ParseOptions, "file"> = {}): ConfObject {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`error opening config file: ${errText(err)}`, path, 0, 0, { cause: err });
  }
  return parseConfig(text, { ...opts, file: path });
}

// Keys of a block that were referenced as `$name` somewhere. nats-server does not report these
// as unknown fields, so the options layer needs to know them.
const usedVariables = new WeakMap<ConfObject, Set<string>>();

/** True when `key` of `block` was used as a variable (`$key`) while parsing. */
export function isUsedVariable(block: ConfObject, key: string): boolean {
  return usedVariables.get(block)?.has(key) ?? false;
}

function markUsed(block: ConfObject, key: string): void {
  let keys = usedVariables.get(block);
  if (!keys) usedVariables.set(block, (keys = new Set()));
  keys.add(key);
}

// Size suffixes exactly as the nats-server parser knows them; `b` and `i` are interchangeable.
const SIZE_UNITS: Record<string, bigint> = (() => {
  const units: Record<string, bigint> = {};
  ["k", "m", "g", "t", "p", "e"].forEach((s, i) => {
    const power = BigInt(i + 1);
    units[s] = 1000n ** power;
    for (const alias of [`${s}b`, `${s}i`, `${s}ib`]) units[alias] = 1024n ** power;
  });
  return units;
})();
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const BOOLEANS: Record<string, boolean> = {
  true: true,
  yes: true,
  on: true,
  false: false,
  no: false,
  off: false,
};

// A raw bcrypt hash (`$2a$11$...`) is a password, not a variable reference.
const BCRYPT_PREFIX = "2a$";

interface Context {
  file: string | undefined;
  dir: string; // includes are relative to this
  env: Record<string, string | undefined>;
  includes: string[]; // absolute paths of the files being parsed, outermost first
  envRefs: string[]; // environment variables being expanded, to stop cycles
}

/** Where the value is: decides which characters may end it. */
type Place = "top" | "map" | "array";

const isSpace = (c: string | undefined): boolean => c === " " || c === "\t";
const isNewline = (c: string | undefined): boolean => c === "\n" || c === "\r";
const isDigit = (c: string | undefined): boolean => c !== undefined && c >= "0" && c <= "9";
// Characters that end an unquoted value (a bare string or a number).
const endsBare = (c: string | undefined): boolean =>
  c === undefined || isSpace(c) || isNewline(c) || c === ";" || c === "," || c === "]" || c === "}";
// Characters that end (or may not start) an unquoted key.
const KEY_STOP = new Set([..."=:{}[],;#\"'"]);
const isKeyChar = (c: string | undefined): boolean =>
  c !== undefined && !KEY_STOP.has(c) && !/\s/.test(c);

const show = (c: string | undefined): string =>
  c === undefined ? "end of file" : isNewline(c) ? "new line" : `'${c}'`;

class Parser {
  private pos = 0;
  // The blocks being built, outermost first: where `$name` is looked up.
  private readonly scopes: ConfObject[] = [];

  constructor(
    private readonly src: string,
    private readonly ctx: Context,
  ) {
    if (src.startsWith("\uFEFF")) this.pos = 1;
  }

  parse(): ConfObject {
    const root: ConfObject = {};
    this.skipBlank();
    if (this.peek() === "{") {
      // The whole file may be wrapped in braces.
      const open = this.pos++;
      this.parseBody(root, open);
      this.skipBlank();
      if (this.peek() !== undefined) throw this.fail(this.pos, `unexpected ${show(this.peek())}`);
    } else {
      this.parseBody(root, undefined);
    }
    return root;
  }

  private peek(offset = 0): string | undefined {
    return this.src[this.pos + offset];
  }

  private fail(at: number, message: string, cause?: unknown): ConfigError {
    const before = this.src.slice(0, at);
    const line = before.split("\n").length;
    const column = at - before.lastIndexOf("\n");
    return new ConfigError(
      message,
      this.ctx.file,
      line,
      column,
      cause === undefined ? undefined : { cause },
    );
  }

  private skipSpaces(): void {
    while (isSpace(this.peek())) this.pos++;
  }

  private atComment(): boolean {
    return this.peek() === "#" || (this.peek() === "/" && this.peek(1) === "/");
  }

  private skipComment(): void {
    while (this.peek() !== undefined && !isNewline(this.peek())) this.pos++;
  }

  /** Skips white space, new lines and comments. */
  private skipBlank(): void {
    for (;;) {
      const c = this.peek();
      if (c !== undefined && /\s/.test(c)) this.pos++;
      else if (this.atComment()) this.skipComment();
      else return;
    }
  }

  /** Entries of the top level (open undefined) or of a `{` block opened at `open`. */
  private parseBody(block: ConfObject, open: number | undefined): void {
    this.scopes.push(block);
    const place: Place = open === undefined ? "top" : "map";
    for (;;) {
      this.skipBlank();
      const c = this.peek();
      if (c === undefined) {
        if (open !== undefined) throw this.fail(open, "unterminated block: missing '}'");
        break;
      }
      if (c === "}") {
        if (open === undefined) throw this.fail(this.pos, "unexpected '}'");
        this.pos++;
        break;
      }
      this.parseEntry(block, place);
      this.valueEnd(place);
    }
    this.scopes.pop();
  }

  /** After a value: spaces, then a separator, a new line, a comment or the closing bracket. */
  private valueEnd(place: Place): void {
    this.skipSpaces();
    const c = this.peek();
    if (c === undefined || (c === "}" && place === "map") || (c === "]" && place === "array")) {
      return; // the enclosing loop deals with it
    }
    if (this.atComment()) return this.skipComment();
    if (isNewline(c) || c === "," || (c === ";" && place !== "array")) {
      this.pos++;
      return;
    }
    const expected =
      place === "array"
        ? "',' or ']'"
        : place === "map"
          ? "',', ';', '}' or a new line"
          : "a new line";
    throw this.fail(this.pos, `unexpected ${show(c)} after value, expected ${expected}`);
  }

  private parseEntry(block: ConfObject, place: Place): void {
    const keyAt = this.pos;
    const c = this.peek();
    let key: string;
    if (c === '"' || c === "'") {
      const end = this.src.indexOf(c, this.pos + 1);
      if (end < 0) throw this.fail(keyAt, "unterminated quoted key");
      key = this.src.slice(this.pos + 1, end);
      this.pos = end + 1;
    } else if (isKeyChar(c)) {
      while (isKeyChar(this.peek())) this.pos++;
      key = this.src.slice(keyAt, this.pos);
      if (key.toLowerCase() === "include" && this.atIncludePath()) {
        return this.parseInclude(block, keyAt);
      }
    } else {
      throw this.fail(keyAt, `invalid key: unexpected ${show(c)}`);
    }
    this.skipSpaces();
    if (this.peek() === "=" || this.peek() === ":") {
      this.pos++;
      // Inside a block, nats-server lets the value start on a later line.
      if (place === "map") while (/\s/.test(this.peek() ?? "")) this.pos++;
      else this.skipSpaces();
    }
    const v = this.peek();
    if (v === undefined || isNewline(v) || v === "}" || v === "]" || v === "," || v === ";") {
      throw this.fail(this.pos, `missing value for key '${key}'`);
    }
    setKey(block, key, this.parseValue());
  }

  private parseValue(): ConfValue {
    const c = this.peek();
    switch (c) {
      case "[":
        return this.parseArray();
      case "{": {
        const block: ConfObject = {};
        this.parseBody(block, this.pos++);
        return block;
      }
      case '"':
        return this.parseQuoted();
      case "'": {
        const end = this.src.indexOf("'", this.pos + 1);
        if (end < 0) throw this.fail(this.pos, "unterminated string");
        const s = this.src.slice(this.pos + 1, end);
        this.pos = end + 1;
        return s;
      }
      case "(":
        return this.parseBlockString();
      case ".":
        throw this.fail(this.pos, "floats must start with a digit");
    }
    if (c === "-" || isDigit(c)) return this.parseNumber();
    return this.parseBare();
  }

  private parseArray(): ConfValue[] {
    const open = this.pos++;
    const items: ConfValue[] = [];
    for (;;) {
      this.skipBlank();
      const c = this.peek();
      if (c === undefined) throw this.fail(open, "unterminated array: missing ']'");
      if (c === "]") {
        this.pos++;
        return items;
      }
      if (c === ",") throw this.fail(this.pos, "unexpected ',' in array, expected a value");
      items.push(this.parseValue());
      this.valueEnd("array");
    }
  }

  /** A double-quoted string; may span lines. */
  private parseQuoted(): string {
    const open = this.pos++;
    const out = new StringBuilder();
    for (;;) {
      const c = this.peek();
      if (c === undefined) throw this.fail(open, "unterminated string");
      if (c === '"') {
        this.pos++;
        return out.toString();
      }
      if (c === "\\") this.parseEscape(out);
      else {
        out.add(c);
        this.pos++;
      }
    }
  }

  /** `\t \n \r \" \\ \xHH` as nats-server has them, and `\uHHHH`. */
  private parseEscape(out: StringBuilder): void {
    const at = this.pos;
    const c = this.src[at + 1];
    const simple: Record<string, string> = { t: "\t", n: "\n", r: "\r", '"': '"', "\\": "\\" };
    if (c !== undefined && c in simple) {
      out.add(simple[c]);
      this.pos += 2;
    } else if (c === "x" || c === "u") {
      const len = c === "x" ? 2 : 4;
      const hex = this.src.slice(at + 2, at + 2 + len);
      if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(hex)) {
        throw this.fail(at, `expected ${len} hexadecimal digits after '\\${c}'`);
      }
      if (c === "x") out.addByte(parseInt(hex, 16));
      else out.add(String.fromCharCode(parseInt(hex, 16)));
      this.pos += 2 + len;
    } else {
      throw this.fail(
        at,
        `invalid escape ${show(c === undefined ? c : "\\" + c)}; allowed are \\xXX, \\uXXXX, \\t, \\n, \\r, \\" and \\\\`,
      );
    }
  }

  /** `(` ... a line holding only `)`: the text between, new lines included. */
  private parseBlockString(): string {
    const open = this.pos;
    let from = open + 1;
    for (;;) {
      const nl = this.src.indexOf("\n)", from);
      if (nl < 0) {
        throw this.fail(open, "unterminated block string: missing ')' on a line of its own");
      }
      const after = this.src[nl + 2];
      if (after === undefined || isNewline(after)) {
        this.pos = nl + 2;
        return this.src.slice(open + 1, nl + 1);
      }
      from = nl + 1;
    }
  }

  /**
   * An unquoted value starting with a digit or '-': an integer (maybe with a size suffix), a
   * float, an IP address, a date, or, as nats-server does it, a string such as `3s` or `1h`.
   */
  private parseNumber(): ConfValue {
    const start = this.pos;
    let end = start;
    while (!endsBare(this.src[end])) end++;
    const word = this.src.slice(start, end);
    const fail = (i: number, what: string): never => {
      throw this.fail(start + i, what);
    };
    const m = /^(-?)(\d*)/.exec(word)!;
    const negative = m[1] === "-";
    const digits = m[2];
    if (digits === "") fail(1, `expected a digit after '-', got ${show(word[1])}`);
    let i = m[0].length;
    const c = word[i];
    const lower = c?.toLowerCase();
    if (c === undefined) {
      this.pos = end;
      return this.toInteger(word, 1n, start);
    }
    if (c === "-") {
      if (negative || digits.length !== 4) {
        fail(i, "dates must be in full Zulu form (2006-01-02T15:04:05Z)");
      }
      if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(word)) {
        fail(0, `invalid date '${word}': must be in full Zulu form (2006-01-02T15:04:05Z)`);
      }
      this.pos = end;
      return word;
    }
    if (c === ".") {
      const frac = /^\.(\d+)/.exec(word.slice(i));
      if (!frac) fail(i + 1, `floats must have a digit after the '.', got ${show(word[i + 1])}`);
      i += frac![0].length;
      if (i === word.length) {
        this.pos = end;
        return Number(word);
      }
      if (word[i] !== ".") fail(i, `unexpected ${show(word[i])} after number`);
      // A second '.': an address such as 127.0.0.1:4222.
      const ip = /^[\d.:-]*/.exec(word.slice(i))![0];
      if (i + ip.length < word.length) {
        fail(i + ip.length, `unexpected ${show(word[i + ip.length])}`);
      }
      this.pos = end;
      return word;
    }
    if (lower !== undefined && "kmgtpe".includes(lower)) {
      i++;
      while (i < word.length && "bBiI".includes(word[i])) i++;
      if (i === word.length) {
        const mult = SIZE_UNITS[word.slice(m[0].length).toLowerCase()];
        if (mult !== undefined) {
          this.pos = end;
          return this.toInteger(m[0], mult, start);
        }
        return this.parseBare();
      }
      if (isDigit(word[i])) fail(i, `unexpected ${show(word[i])} after number`);
      return this.parseBare(); // e.g. 2ms, 5min
    }
    if (negative) fail(i, `unexpected ${show(c)} after number`);
    return this.parseBare(); // e.g. 3s, 10us, 1h30m
  }

  private toInteger(digits: string, mult: bigint, at: number): number {
    const n = BigInt(digits) * mult;
    if (n < INT64_MIN || n > INT64_MAX) {
      throw this.fail(at, `integer '${this.src.slice(at, this.pos)}' is out of range`);
    }
    return Number(n);
  }

  /** An unquoted string, boolean or `$variable`; ends at a space, new line, `,;]}` or EOF. */
  private parseBare(): ConfValue {
    const start = this.pos;
    const out = new StringBuilder();
    let escaped = false;
    while (!endsBare(this.peek())) {
      if (this.peek() === "\\") {
        this.parseEscape(out);
        escaped = true;
      } else {
        out.add(this.src[this.pos++]);
      }
    }
    const s = out.toString();
    if (escaped) return s;
    const bool = BOOLEANS[s.toLowerCase()];
    if (bool !== undefined) return bool;
    if (s.startsWith("$")) return this.lookupVariable(s.slice(1), start);
    return s;
  }

  private lookupVariable(name: string, at: number): ConfValue {
    if (name.startsWith(BCRYPT_PREFIX)) return "$" + name;
    for (let i = this.scopes.length - 1; i >= 0; i--) {
      const scope = this.scopes[i];
      if (Object.hasOwn(scope, name)) {
        markUsed(scope, name);
        return scope[name];
      }
    }
    const raw = this.ctx.env[name];
    if (raw === undefined) throw this.fail(at, `variable reference for '${name}' can not be found`);
    if (this.ctx.envRefs.includes(name)) {
      throw this.fail(
        at,
        `variable reference for '${name}' refers to itself through the environment`,
      );
    }
    if (raw.trim() === "") return raw;
    // The environment gives text: parse it as a value, so a number stays a number.
    try {
      const parsed = new Parser(`pk=${raw}`, {
        ...this.ctx,
        file: undefined,
        envRefs: [...this.ctx.envRefs, name],
      }).parse();
      return parsed.pk;
    } catch (err) {
      const why = err instanceof ConfigError ? err.reason : errText(err);
      throw this.fail(at, `variable reference for '${name}' could not be parsed: ${why}`, err);
    }
  }

  /** After the word `include`: `include path` is a directive, `include: x` an ordinary key. */
  private atIncludePath(): boolean {
    let i = this.pos;
    const c = this.src[i];
    if (c !== undefined && !/\s/.test(c)) return false;
    while (isSpace(this.src[i])) i++;
    return this.src[i] !== "=" && this.src[i] !== ":";
  }

  /** `include path`: the entries of that file become entries of this block. */
  private parseInclude(block: ConfObject, keyAt: number): void {
    this.skipSpaces();
    const at = this.pos;
    const q = this.peek();
    let path: string;
    if (q === '"' || q === "'") {
      const end = this.src.indexOf(q, at + 1);
      if (end < 0) throw this.fail(at, "unterminated include path");
      path = this.src.slice(at + 1, end);
      this.pos = end + 1;
    } else {
      while (!endsBare(this.peek())) this.pos++;
      path = this.src.slice(at, this.pos);
    }
    if (path === "") throw this.fail(at, "missing include path");
    const full = isAbsolute(path) ? path : join(this.ctx.dir, path);
    const abs = resolve(full);
    if (this.ctx.includes.includes(abs)) {
      const chain = [...this.ctx.includes, abs].join(" -> ");
      throw this.fail(keyAt, `include cycle: ${chain}`);
    }
    let text: string;
    try {
      text = readFileSync(full, "utf8");
    } catch (err) {
      const what = (err as NodeJS.ErrnoException).code === "ENOENT" ? "not found" : errText(err);
      throw this.fail(at, `include file '${path}' (${full}) ${what}`, err);
    }
    const included = new Parser(text, {
      ...this.ctx,
      file: full,
      dir: dirname(full),
      includes: [...this.ctx.includes, abs],
    }).parse();
    for (const [key, value] of Object.entries(included)) {
      setKey(block, key, value);
      if (isUsedVariable(included, key)) markUsed(block, key);
    }
  }
}

/** Sets an own property, even one named `__proto__`. */
function setKey(block: ConfObject, key: string, value: ConfValue): void {
  Object.defineProperty(block, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/** Collects string text and raw `\x` bytes, decoding runs of bytes as UTF-8 as nats does. */
class StringBuilder {
  private text = "";
  private bytes: number[] = [];

  add(s: string): void {
    this.flush();
    this.text += s;
  }

  addByte(b: number): void {
    this.bytes.push(b);
  }

  toString(): string {
    this.flush();
    return this.text;
  }

  private flush(): void {
    if (this.bytes.length === 0) return;
    this.text += Buffer.from(this.bytes).toString("utf8");
    this.bytes = [];
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function describe(v: ConfValue): string {
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "a block";
  return `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * A duration in milliseconds. Strings use Go's time.ParseDuration syntax ("1h30m", "1.5s",
 * "500ms", "10us"); a number is a count of seconds (nats-server accepts it with a warning).
 */
export function parseDuration(v: ConfValue, key: string): number {
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`${key}: invalid duration ${v}`);
    return v * 1000;
  }
  if (typeof v !== "string") {
    throw new Error(`${key}: expected a duration such as "2m" or "500ms", got ${describe(v)}`);
  }
  const ms = parseGoDuration(v);
  if (ms === undefined) {
    throw new Error(
      `${key}: invalid duration ${JSON.stringify(v)} (use e.g. "2m", "1h30m", "500ms")`,
    );
  }
  return ms;
}

/** A size in bytes: a number as is, or a string such as "1MB", "64KB", "1GiB", "512". */
export function parseSize(v: ConfValue, key: string): number {
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`${key}: invalid size ${v}`);
    return v;
  }
  if (typeof v !== "string") {
    throw new Error(`${key}: expected a size such as 1048576 or "1MB", got ${describe(v)}`);
  }
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  const unit = m?.[2].toLowerCase();
  const mult = unit === "" || unit === "b" ? 1n : unit === undefined ? undefined : SIZE_UNITS[unit];
  if (!m || mult === undefined) {
    throw new Error(`${key}: invalid size ${JSON.stringify(v)} (use e.g. 1048576, "64KB", "1MB")`);
  }
  return Math.round(Number(m[1]) * Number(mult));
}

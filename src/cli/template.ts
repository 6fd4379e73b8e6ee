// `--format` for the list commands, as Docker reads it: a Go-template subset (`{{.ID}}`,
// `{{json .}}`, `{{if .Self}}*{{else}} {{end}}`, `{{.Name | upper}}`), a `table` prefix that adds
// a header row and aligns the tab-separated cells as Go's tabwriter does (minimum width 10,
// padding 3), and the word `json` for one JSON object per line (Docker 24+). What the subset does
// not have is an error that says what it has.

import { CliError } from "./errors.js";

export class TemplateError extends CliError {
  constructor(message: string) {
    super("ERR_TEMPLATE", `template: ${message}`);
  }
}

const SUPPORTED =
  "shoal's --format supports {{.Field}}, {{json .}}, {{if ...}}{{else}}{{end}}, pipes (|) and the functions json, upper, lower, title, truncate, pad, join, split";

// ---- parsing -----------------------------------------------------------------------------------

type Arg =
  | { kind: "dot" }
  | { kind: "field"; path: string[] }
  | { kind: "string"; value: string }
  | { kind: "number"; value: number };

/** One command of a pipeline: a function call (`truncate .Name 5`) or a bare value (`.Name`). */
interface Cmd {
  fn?: string;
  args: Arg[];
}

type Pipeline = Cmd[];

interface IfNode {
  kind: "if";
  cond: Pipeline;
  then: TNode[];
  else: TNode[];
}

type TNode = { kind: "text"; text: string } | { kind: "action"; pipe: Pipeline } | IfNode;

export interface Template {
  nodes: TNode[];
}

const FUNCS = new Set(["json", "upper", "lower", "title", "truncate", "pad", "join", "split"]);

/** Splits the text into literal text and `{{ ... }}` actions (with `{{-`/`-}}` trimming). */
function lex(src: string): Array<{ text: string } | { action: string }> {
  const out: Array<{ text: string } | { action: string }> = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf("{{", i);
    if (open < 0) {
      out.push({ text: src.slice(i) });
      break;
    }
    let text = src.slice(i, open);
    let start = open + 2;
    if (src[start] === "-" && /\s/.test(src[start + 1] ?? "")) {
      text = text.trimEnd();
      start += 1;
    }
    if (text) out.push({ text });
    const close = findClose(src, start);
    if (close < 0) throw new TemplateError(`unclosed action in "${src}"`);
    let body = src.slice(start, close);
    let next = close + 2;
    if (/\s-$/.test(body)) {
      body = body.slice(0, -1);
      while (next < src.length && /\s/.test(src[next]!)) next++;
    }
    out.push({ action: body.trim() });
    i = next;
  }
  return out;
}

/** The `}}` closing an action, skipping over quoted strings. */
function findClose(src: string, from: number): number {
  for (let i = from; i < src.length; i++) {
    const c = src[i];
    if (c === '"' || c === "`") {
      const end = c === "`" ? src.indexOf("`", i + 1) : endOfQuoted(src, i);
      if (end < 0) return -1;
      i = end;
    } else if (c === "}" && src[i + 1] === "}") return i;
  }
  return -1;
}

function endOfQuoted(src: string, start: number): number {
  for (let i = start + 1; i < src.length; i++) {
    if (src[i] === "\\") i++;
    else if (src[i] === '"') return i;
  }
  return -1;
}

/** Words of an action: quoted strings stay whole, `|` is a word of its own. */
function words(action: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < action.length) {
    const c = action[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "|") {
      out.push("|");
      i++;
    } else if (c === '"' || c === "`") {
      const end = c === "`" ? action.indexOf("`", i + 1) : endOfQuoted(action, i);
      if (end < 0) throw new TemplateError(`unterminated quoted string in {{${action}}}`);
      out.push(action.slice(i, end + 1));
      i = end + 1;
    } else if (c === "(" || c === ")") {
      throw new TemplateError(`parentheses are not supported in {{${action}}}: ${SUPPORTED}`);
    } else {
      let j = i;
      while (j < action.length && !/[\s|()]/.test(action[j]!)) j++;
      out.push(action.slice(i, j));
      i = j;
    }
  }
  return out;
}

function parseArg(w: string, action: string): Arg {
  if (w === ".") return { kind: "dot" };
  if (w.startsWith(".")) {
    const path = w.slice(1).split(".");
    if (path.some((p) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p)))
      throw new TemplateError(`bad field "${w}" in {{${action}}}`);
    return { kind: "field", path };
  }
  if (w.startsWith('"')) return { kind: "string", value: JSON.parse(w) as string };
  if (w.startsWith("`")) return { kind: "string", value: w.slice(1, -1) };
  if (/^-?\d+$/.test(w)) return { kind: "number", value: Number(w) };
  throw new TemplateError(`function "${w}" not defined: ${SUPPORTED}`);
}

function parsePipeline(action: string): Pipeline {
  const ws = words(action);
  if (ws.length === 0) throw new TemplateError("missing value for command: {{}}");
  const cmds: Pipeline = [];
  let cur: string[] = [];
  const flush = () => {
    if (cur.length === 0) throw new TemplateError(`missing command in pipeline {{${action}}}`);
    const [head, ...rest] = cur as [string, ...string[]];
    if (FUNCS.has(head)) cmds.push({ fn: head, args: rest.map((w) => parseArg(w, action)) });
    else {
      if (rest.length > 0) {
        throw new TemplateError(
          /^[a-z]+$/.test(head)
            ? `function "${head}" not defined: ${SUPPORTED}`
            : `${head} is not a function in {{${action}}}`,
        );
      }
      cmds.push({ args: [parseArg(head, action)] });
    }
    cur = [];
  };
  for (const w of ws) {
    if (w.startsWith("$"))
      throw new TemplateError(`variables ("${w}") are not supported: ${SUPPORTED}`);
    if (w === "|") flush();
    else cur.push(w);
  }
  flush();
  return cmds;
}

const KEYWORDS = new Set(["range", "with", "define", "template", "block", "break", "continue"]);

/** Parses a Go template (the subset); throws TemplateError naming what it cannot do. */
export function parseTemplate(src: string): Template {
  // Open {{if}}s; `chained` marks one opened by {{else if}}, closed by its parent's {{end}}.
  const stack: Array<{ node: IfNode; inElse: boolean; chained: boolean }> = [];
  const root: TNode[] = [];
  const target = (): TNode[] => {
    const top = stack[stack.length - 1];
    if (!top) return root;
    return top.inElse ? top.node.else : top.node.then;
  };
  for (const piece of lex(src)) {
    if ("text" in piece) {
      target().push({ kind: "text", text: piece.text });
      continue;
    }
    const a = piece.action;
    if (a.startsWith("/*")) continue; // a comment
    const word = a.split(/\s+/, 1)[0]!;
    if (word === "if") {
      const node: IfNode = { kind: "if", cond: parsePipeline(a.slice(2)), then: [], else: [] };
      target().push(node);
      stack.push({ node, inElse: false, chained: false });
    } else if (word === "else") {
      const top = stack[stack.length - 1];
      if (!top || top.inElse) throw new TemplateError(`unexpected {{else}} in "${src}"`);
      const rest = a.slice(4).trim();
      top.inElse = true;
      if (rest) {
        if (!rest.startsWith("if ")) throw new TemplateError(`unexpected {{${a}}}: ${SUPPORTED}`);
        // {{else if X}}: an if nested in the else branch, closed by the same {{end}}.
        const node: IfNode = { kind: "if", cond: parsePipeline(rest.slice(3)), then: [], else: [] };
        top.node.else.push(node);
        stack.push({ node, inElse: false, chained: true });
      }
    } else if (word === "end") {
      if (stack.length === 0) throw new TemplateError(`unexpected {{end}} in "${src}"`);
      // Pop the chain of {{else if}}s along with their if.
      while (stack.pop()!.chained);
    } else if (KEYWORDS.has(word)) {
      throw new TemplateError(`"${word}" is not supported: ${SUPPORTED}`);
    } else {
      target().push({ kind: "action", pipe: parsePipeline(a) });
    }
  }
  if (stack.length > 0)
    throw new TemplateError(`unexpected EOF: {{if}} without {{end}} in "${src}"`);
  return { nodes: root };
}

// ---- execution ---------------------------------------------------------------------------------

export type Row = Record<string, unknown>;

interface Ctx {
  row: Row;
  /** Header mode: fields give their column header, unknown fields and functions stay quiet. */
  header: boolean;
}

function lookup(ctx: Ctx, path: string[]): unknown {
  let v: unknown = ctx.row;
  for (const [i, name] of path.entries()) {
    if (v === null || typeof v !== "object" || !(name in v)) {
      if (ctx.header) return i === 0 ? undefined : "";
      const fields = i === 0 ? ` (fields: ${Object.keys(ctx.row).join(", ")})` : "";
      throw new TemplateError(`can't evaluate field ${name}${fields}`);
    }
    v = (v as Record<string, unknown>)[name];
  }
  return v;
}

function argValue(ctx: Ctx, a: Arg): unknown {
  switch (a.kind) {
    case "dot":
      return ctx.header ? "" : ctx.row;
    case "field":
      return lookup(ctx, a.path);
    case "string":
    case "number":
      return a.value;
  }
}

/** A value as Go's text/template prints it. */
export function printValue(v: unknown): string {
  if (v === undefined || v === null) return "<no value>";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return `[${v.map(printValue).join(" ")}]`;
  const entries = Object.entries(v as Record<string, unknown>).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  return `map[${entries.map(([k, x]) => `${k}:${printValue(x)}`).join(" ")}]`;
}

function truthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v).length > 0;
  return true;
}

/** JSON with object keys sorted, as Go's encoding/json writes maps. */
export function sortedJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(
          Object.entries(x as Record<string, unknown>).sort(([a], [b]) =>
            a < b ? -1 : a > b ? 1 : 0,
          ),
        )
      : x,
  );
}

function need(fn: string, args: unknown[], n: number): void {
  if (args.length !== n)
    throw new TemplateError(`wrong number of args for ${fn}: want ${n} got ${args.length}`);
}

function callFn(ctx: Ctx, fn: string, args: unknown[]): unknown {
  if (ctx.header) return fn === "json" ? "" : args[0] === undefined ? "" : printValue(args[0]);
  const str = (i: number) =>
    typeof args[i] === "string" ? (args[i] as string) : printValue(args[i]);
  const num = (i: number) => {
    const n = args[i];
    if (typeof n !== "number") throw new TemplateError(`${fn}: argument ${i + 1} must be a number`);
    return n;
  };
  switch (fn) {
    case "json":
      need(fn, args, 1);
      return sortedJson(args[0]);
    case "upper":
      need(fn, args, 1);
      return str(0).toUpperCase();
    case "lower":
      need(fn, args, 1);
      return str(0).toLowerCase();
    case "title":
      need(fn, args, 1);
      return str(0).replace(
        /(^|[^\p{L}\p{N}])(\p{L})/gu,
        (_m, a: string, b: string) => a + b.toUpperCase(),
      );
    case "truncate": {
      need(fn, args, 2);
      const s = [...str(0)];
      return s.length > num(1) ? s.slice(0, num(1)).join("") : str(0);
    }
    case "pad":
      need(fn, args, 3);
      return " ".repeat(num(1)) + str(0) + " ".repeat(num(2));
    case "join": {
      need(fn, args, 2);
      const list = args[0];
      if (!Array.isArray(list)) throw new TemplateError("join: argument 1 must be a list");
      return list.map(printValue).join(str(1));
    }
    case "split":
      need(fn, args, 2);
      return str(0).split(str(1));
    default:
      throw new TemplateError(`function "${fn}" not defined: ${SUPPORTED}`);
  }
}

function runPipeline(ctx: Ctx, pipe: Pipeline): unknown {
  let prev: unknown;
  pipe.forEach((cmd, i) => {
    const args = cmd.args.map((a) => argValue(ctx, a));
    if (i > 0) args.push(prev); // Go passes the previous result as the last argument
    if (cmd.fn) prev = callFn(ctx, cmd.fn, args);
    else if (i > 0) throw new TemplateError("only functions can follow | in a pipeline");
    else prev = args[0];
  });
  return prev;
}

function exec(ctx: Ctx, nodes: TNode[], out: string[]): void {
  for (const n of nodes) {
    if (n.kind === "text") out.push(n.text);
    else if (n.kind === "action") {
      const v = runPipeline(ctx, n.pipe);
      out.push(ctx.header && v === undefined ? "" : printValue(v));
    } else exec(ctx, truthy(runPipeline(ctx, n.cond)) ? n.then : n.else, out);
  }
}

export function execute(t: Template, row: Row): string {
  const out: string[] = [];
  exec({ row, header: false }, t.nodes, out);
  return out.join("");
}

/** The header row of a table: each field gives its header; fields without one give nothing. */
export function executeHeader(t: Template, headers: Record<string, string>): string {
  const out: string[] = [];
  exec({ row: headers, header: true }, t.nodes, out);
  return out.join("");
}

// ---- tables and list output --------------------------------------------------------------------

/** Aligns tab-separated cells as Go's tabwriter.NewWriter(w, 10, 1, 3, ' ', 0) in Docker's CLI. */
export function alignTabs(lines: string[]): string {
  const cells = lines.map((l) => l.split("\t"));
  const widths: number[] = [];
  for (const row of cells) {
    row.slice(0, -1).forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 10, [...c].length + 3);
    });
  }
  return cells
    .map((row) =>
      row
        .map((c, i) => (i === row.length - 1 ? c : c + " ".repeat(widths[i]! - [...c].length)))
        .join("")
        .trimEnd(),
    )
    .map((l) => l + "\n")
    .join("");
}

export interface ListFormat {
  /** The `table ...` template used when --format is not given. */
  defaultTable: string;
  /** Column headers of the fields (`{ ID: "ID", DesiredState: "DESIRED STATE" }`). */
  headers: Record<string, string>;
}

/**
 * The renderer of a `--format` value: undefined or "table" (the default table), "json" (one
 * object per line), "table TEMPLATE" (a header row and aligned columns) or a bare TEMPLATE (one
 * line per row). `\t` and `\n` typed as two characters become a tab and a newline, as in Docker.
 * The template is checked here, before anything is fetched.
 */
export function rowFormatter(
  format: string | undefined,
  list: ListFormat,
): (rows: Row[]) => string {
  let f = format ?? "table";
  if (f.trim() === "json") return (rows) => rows.map((r) => sortedJson(r) + "\n").join("");
  if (f.trim() === "table") f = list.defaultTable;
  const isTable = f.startsWith("table");
  if (isTable) f = f.slice("table".length);
  f = f.trim().replace(/\\t/g, "\t").replace(/\\n/g, "\n");
  const t = parseTemplate(f);
  return (rows) => {
    const lines = rows.map((r) => execute(t, r));
    if (!isTable) return lines.map((l) => l + "\n").join("");
    return alignTabs([executeHeader(t, list.headers), ...lines].join("\n").split("\n"));
  };
}

export function renderRows(rows: Row[], format: string | undefined, list: ListFormat): string {
  return rowFormatter(format, list)(rows);
}

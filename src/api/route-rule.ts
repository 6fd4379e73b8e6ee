// Routing rules in Traefik's syntax: `Host(`a`)`, `Host(`a`, `b`)` (the v2 form of several
// hosts), `PathPrefix(`/p`)`, `Path(`/p`)`, combined with `&&`, `||`, `!` and parentheses
// (`!` binds tighter than `&&`, which binds tighter than `||`, as in Traefik). Strings are quoted
// with backticks or double quotes. Host names are kept lower case (matching ignores case).
//
// `parseRule` turns the text into a tree or throws a RuleError that says what was expected and
// where (a 1-based character position), so a label's error can name the label and the spot.
// It lives in the contract layer because the CLI and the manager check labels with it too; the
// router (src/net/router/) compiles the tree into a matcher.

export type RuleNode =
  | { kind: "host"; hosts: string[] }
  | { kind: "pathPrefix"; prefixes: string[] }
  | { kind: "path"; paths: string[] }
  | { kind: "and"; left: RuleNode; right: RuleNode }
  | { kind: "or"; left: RuleNode; right: RuleNode }
  | { kind: "not"; expr: RuleNode };

export class RuleError extends Error {
  readonly code = "ERR_ROUTE_RULE";

  constructor(
    /** What is wrong, without the position. */
    readonly reason: string,
    /** 1-based character position in the rule. */
    readonly position: number,
  ) {
    super(`at position ${position}: ${reason}`);
    this.name = "RuleError";
  }
}

const MATCHERS: Record<string, RuleNode["kind"]> = {
  host: "host",
  pathprefix: "pathPrefix",
  path: "path",
};
/** Traefik matchers shoal does not route by (named in the error rather than "unknown"). */
const UNSUPPORTED = new Set([
  "hostregexp",
  "pathregexp",
  "method",
  "header",
  "headerregexp",
  "headers",
  "headersregexp",
  "query",
  "queryregexp",
  "clientip",
  "hostheader",
  "hostsni",
  "hostsniregexp",
  "alpn",
]);

/** A host name as a rule may claim it: labels of letters, digits, `-` and `_`, dot-separated. */
const HOST = /^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$/;

type Token =
  | { t: "ident"; v: string; pos: number }
  | { t: "str"; v: string; pos: number }
  | { t: "(" | ")" | "," | "&&" | "||" | "!" | "end"; pos: number };

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    const pos = i + 1;
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      i++;
    } else if (c === "(" || c === ")" || c === "," || c === "!") {
      out.push({ t: c, pos });
      i++;
    } else if (c === "&" || c === "|") {
      if (text[i + 1] !== c) throw new RuleError(`expected "${c}${c}"`, pos);
      out.push({ t: c === "&" ? "&&" : "||", pos });
      i += 2;
    } else if (c === "`" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw new RuleError(`unterminated string (no closing ${c})`, pos);
      out.push({ t: "str", v: text.slice(i + 1, end), pos });
      i = end + 1;
    } else if (/[A-Za-z]/.test(c)) {
      let j = i + 1;
      while (j < text.length && /[A-Za-z0-9]/.test(text[j]!)) j++;
      out.push({ t: "ident", v: text.slice(i, j), pos });
      i = j;
    } else {
      throw new RuleError(`unexpected character "${c}"`, pos);
    }
  }
  out.push({ t: "end", pos: text.length + 1 });
  return out;
}

function describe(tok: Token): string {
  switch (tok.t) {
    case "end":
      return "the end of the rule";
    case "ident":
      return `"${tok.v}"`;
    case "str":
      return `the string \`${tok.v}\``;
    default:
      return `"${tok.t}"`;
  }
}

/** Parses a rule; throws a RuleError naming the position of the first problem. */
export function parseRule(text: string): RuleNode {
  if (text.trim() === "") throw new RuleError("the rule is empty", 1);
  const toks = tokenize(text);
  let k = 0;
  const peek = () => toks[k]!;
  const expect = (t: Token["t"], what: string): Token => {
    const tok = toks[k]!;
    if (tok.t !== t) throw new RuleError(`expected ${what}, found ${describe(tok)}`, tok.pos);
    k++;
    return tok;
  };

  const or = (): RuleNode => {
    let left = and();
    while (peek().t === "||") {
      k++;
      left = { kind: "or", left, right: and() };
    }
    return left;
  };
  const and = (): RuleNode => {
    let left = unary();
    while (peek().t === "&&") {
      k++;
      left = { kind: "and", left, right: unary() };
    }
    return left;
  };
  const unary = (): RuleNode => {
    const tok = peek();
    if (tok.t === "!") {
      k++;
      return { kind: "not", expr: unary() };
    }
    if (tok.t === "(") {
      k++;
      const inner = or();
      expect(")", '")"');
      return inner;
    }
    if (tok.t === "ident") return matcher();
    throw new RuleError(
      `expected a matcher such as Host(\`example.com\`), found ${describe(tok)}`,
      tok.pos,
    );
  };
  const matcher = (): RuleNode => {
    const name = toks[k++] as Token & { t: "ident" };
    const lower = name.v.toLowerCase();
    const kind = MATCHERS[lower];
    if (kind === undefined) {
      const why = UNSUPPORTED.has(lower) ? "is not supported by shoal" : "is not a known matcher";
      throw new RuleError(`${name.v} ${why} (use Host, PathPrefix or Path)`, name.pos);
    }
    expect("(", `"(" after ${name.v}`);
    const args: string[] = [];
    for (;;) {
      const tok = expect("str", `a quoted argument of ${name.v}`) as Token & { t: "str" };
      args.push(checkArg(kind, name.v, tok));
      if (peek().t === ",") {
        k++;
        continue;
      }
      expect(")", `"," or ")" after an argument of ${name.v}`);
      break;
    }
    if (kind === "host") return { kind, hosts: args };
    if (kind === "pathPrefix") return { kind, prefixes: args };
    return { kind: "path", paths: args };
  };

  const tree = or();
  const rest = peek();
  if (rest.t !== "end") {
    throw new RuleError(
      `expected "&&", "||" or the end of the rule, found ${describe(rest)}`,
      rest.pos,
    );
  }
  return tree;
}

function checkArg(kind: RuleNode["kind"], name: string, tok: { v: string; pos: number }): string {
  if (kind === "host") {
    const host = tok.v.toLowerCase();
    if (!HOST.test(host))
      throw new RuleError(`${name}: "${tok.v}" is not a valid host name`, tok.pos);
    return host.endsWith(".") ? host.slice(0, -1) : host;
  }
  if (!tok.v.startsWith("/"))
    throw new RuleError(`${name}: "${tok.v}" must start with "/"`, tok.pos);
  return tok.v;
}

/** The host names a rule claims (those under a `!` are not claimed). */
export function ruleHosts(node: RuleNode): string[] {
  switch (node.kind) {
    case "host":
      return node.hosts;
    case "and":
    case "or":
      return [...new Set([...ruleHosts(node.left), ...ruleHosts(node.right)])];
    default:
      return [];
  }
}

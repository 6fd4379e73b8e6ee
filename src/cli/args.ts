// Docker-style flag parsing for the shoal CLI: `--flag value`, `--flag=value`, short aliases,
// repeatable flags, boolean switches, and positional arguments; `--` ends the flags (the rest is
// the task's command). An unknown flag is an error naming it.

export interface FlagSpec {
  name: string;
  short?: string;
  /** Takes a value; repeatable ones collect every occurrence. */
  value?: boolean;
  repeat?: boolean;
}

export interface Parsed {
  flags: Map<string, string[]>;
  args: string[];
  /** Everything after `--`, or after the first positional when `stopAtPositional` (the command). */
  rest: string[];
}

export class UsageError extends Error {}

export function parseArgs(
  argv: string[],
  specs: FlagSpec[],
  opts: { positionals?: number } = {},
): Parsed {
  const byName = new Map<string, FlagSpec>();
  for (const s of specs) {
    byName.set(s.name, s);
    if (s.short) byName.set(s.short, s);
  }
  const flags = new Map<string, string[]>();
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") return { flags, args, rest: argv.slice(i + 1) };
    if (a.startsWith("-") && a !== "-") {
      const body = a.replace(/^--?/, "");
      const eq = body.indexOf("=");
      const name = eq >= 0 ? body.slice(0, eq) : body;
      const spec = byName.get(name);
      if (!spec) throw new UsageError(`unknown flag: ${a.startsWith("--") ? "--" : "-"}${name}`);
      let value = "true";
      if (spec.value) {
        if (eq >= 0) value = body.slice(eq + 1);
        else {
          const next = argv[i + 1];
          if (next === undefined) throw new UsageError(`flag needs an argument: --${spec.name}`);
          value = next;
          i++;
        }
      } else if (eq >= 0) value = body.slice(eq + 1);
      const list = flags.get(spec.name) ?? [];
      if (!spec.repeat) list.length = 0;
      list.push(value);
      flags.set(spec.name, list);
      continue;
    }
    args.push(a);
    if (opts.positionals !== undefined && args.length === opts.positionals) {
      return { flags, args, rest: argv.slice(i + 1) };
    }
  }
  return { flags, args, rest: [] };
}

export function flag(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  return v ? v[v.length - 1] : undefined;
}

export function flagAll(p: Parsed, name: string): string[] {
  return p.flags.get(name) ?? [];
}

export function has(p: Parsed, name: string): boolean {
  const v = flag(p, name);
  return v !== undefined && v !== "false";
}

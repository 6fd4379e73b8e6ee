// `--filter key=value` for the list commands, with Docker's semantics: values of one key are
// alternatives (any may match), different keys must all match. Each command names the keys it
// knows; another key, or a filter without `=`, is an error that says which keys there are.
// (`events` sends its filters to the daemon, which knows its keys: `filterPairs`.)

import { UsageError } from "./errors.js";

export type Filters = Map<string, string[]>;

/** How each filter key tests an item against one value. */
export type FilterKeys<T> = Record<string, (item: T, value: string) => boolean>;

export function parseFilters<T>(list: string[], keys: FilterKeys<T>, what: string): Filters {
  const out = filterPairs(list);
  for (const key of out.keys()) {
    if (!Object.hasOwn(keys, key)) {
      throw new UsageError(
        `Invalid filter '${key}' (${what} filters by ${Object.keys(keys).join(", ")})`,
      );
    }
  }
  return out;
}

/** The `key=value` pairs (keys lower-cased), whatever the keys; a filter without `=` is an error. */
export function filterPairs(list: string[]): Filters {
  const out: Filters = new Map();
  for (const f of list) {
    const eq = f.indexOf("=");
    if (eq <= 0) {
      throw new UsageError(
        `invalid argument "${f}" for "-f, --filter" flag: bad format of filter (expected name=value)`,
      );
    }
    const key = f.slice(0, eq).trim().toLowerCase();
    out.set(key, [...(out.get(key) ?? []), f.slice(eq + 1)]);
  }
  return out;
}

export function applyFilters<T>(items: T[], filters: Filters, keys: FilterKeys<T>): T[] {
  if (filters.size === 0) return items;
  return items.filter((item) =>
    [...filters].every(([key, values]) => values.some((v) => keys[key]!(item, v))),
  );
}

/** `label=key` (the label is set) or `label=key=value` (set to value), as Docker's label filter. */
export function labelMatches(labels: Record<string, string>, value: string): boolean {
  const eq = value.indexOf("=");
  if (eq < 0) return Object.hasOwn(labels, value);
  const k = value.slice(0, eq);
  return Object.hasOwn(labels, k) && labels[k] === value.slice(eq + 1);
}

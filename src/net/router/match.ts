// Choosing a route for a request (pure): a route table compiled into a list of matchers sorted by
// priority (highest first; equal priorities by service and router name, so the order does not
// depend on the table's), and the host a request names (its Host header without the port, lower
// case). A route whose rule does not parse is left out and reported.

import { parseRule, RuleError, type RuleNode } from "../../api/route-rule.js";
import type { Route, RouteTable } from "../../api/routes.js";

export type Matcher = (host: string, path: string) => boolean;

export interface CompiledRoute {
  route: Route;
  match: Matcher;
}

/** A rule's tree as a function of (host, path); the path is the request's, without the query. */
export function compileRule(node: RuleNode): Matcher {
  switch (node.kind) {
    case "host": {
      const hosts = node.hosts;
      if (hosts.length === 1) {
        const h = hosts[0]!;
        return (host) => host === h;
      }
      const set = new Set(hosts);
      return (host) => set.has(host);
    }
    case "pathPrefix": {
      const ps = node.prefixes;
      return (_h, path) => ps.some((p) => path.startsWith(p));
    }
    case "path": {
      const ps = node.paths;
      return (_h, path) => ps.includes(path);
    }
    case "and": {
      const l = compileRule(node.left);
      const r = compileRule(node.right);
      return (h, p) => l(h, p) && r(h, p);
    }
    case "or": {
      const l = compileRule(node.left);
      const r = compileRule(node.right);
      return (h, p) => l(h, p) || r(h, p);
    }
    case "not": {
      const e = compileRule(node.expr);
      return (h, p) => !e(h, p);
    }
  }
}

/** The table's routes in the order they are tried, and why any were left out. */
export function compileTable(table: RouteTable): { routes: CompiledRoute[]; problems: string[] } {
  const routes: CompiledRoute[] = [];
  const problems: string[] = [];
  for (const route of table.routes) {
    try {
      routes.push({ route, match: compileRule(parseRule(route.rule)) });
    } catch (err) {
      if (!(err instanceof RuleError)) throw err;
      problems.push(`route ${route.service}/${route.router}: rule ${err.message}`);
    }
  }
  routes.sort(
    (a, b) =>
      b.route.priority - a.route.priority ||
      cmp(a.route.service, b.route.service) ||
      cmp(a.route.router, b.route.router),
  );
  return { routes, problems };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The first route that matches, or undefined. */
export function findRoute(
  routes: readonly CompiledRoute[],
  host: string,
  path: string,
): CompiledRoute | undefined {
  for (const r of routes) if (r.match(host, path)) return r;
  return undefined;
}

/** The host a Host header names: without the port (IPv6 literals keep their brackets), lower case. */
export function requestHost(header: string | undefined): string {
  if (header === undefined) return "";
  let h = header;
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    h = end < 0 ? h : h.slice(0, end + 1);
  } else {
    const colon = h.indexOf(":");
    if (colon >= 0) h = h.slice(0, colon);
  }
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h.toLowerCase();
}

/** The path of a request target (`/a/b?x=1` → `/a/b`). */
export function requestPath(url: string | undefined): string {
  if (url === undefined) return "/";
  const q = url.indexOf("?");
  return q < 0 ? url : url.slice(0, q);
}

// A service's labels → the routes it claims on the HTTP router (pure). Two label families are
// read, so compose files written for them work unchanged:
//
// - Traefik's (Swarm provider): `traefik.enable`, `traefik.http.routers.<r>.rule|priority|service`,
//   `traefik.http.services.<s>.loadbalancer.server.port` and `.loadbalancer.sticky.cookie[.name|
//   .secure|.httponly|.samesite]`. As in Traefik: a router's priority defaults to its rule's
//   length; a router without `.service` uses the one service the labels define; labels that
//   define a service but no router get a router named after the service with the rule
//   Host(`<name>`); Swarm cannot detect a port, so `server.port` is required; the sticky cookie's
//   default name is Traefik's: "_" and the first 5 hex digits of sha1("_TRAEFIK_BACKEND_" +
//   "<s>@swarm"). Option names ignore case (`loadBalancer` = `loadbalancer`), as Traefik's do.
//   A service with no traefik.* label (or `traefik.enable=false`) claims nothing.
// - interlock's: `com.docker.lb.hosts` (comma list), `com.docker.lb.port`,
//   `com.docker.lb.sticky_session_cookie` (the router sets a cookie of that name).
//
// Any other label under `traefik.` or `com.docker.lb.` is returned as a warning by name, so a
// deploy can say what it ignores; a label whose value is wrong is an error naming the label (and
// for a rule, the position).

import { createHash } from "node:crypto";
import type { ServiceRoute, StickyCookie } from "./routes.js";
import { parseRule, RuleError } from "./route-rule.js";

export interface LabelRoutes {
  routes: ServiceRoute[];
  /** Labels under the two prefixes that shoal does not act on, each with why. */
  warnings: string[];
  /** Labels whose values are wrong, each naming the label; their routes are left out. */
  errors: string[];
}

const TRAEFIK = "traefik.";
const INTERLOCK = "com.docker.lb.";

/** Traefik's default sticky cookie name for a service (`_` + 5 hex digits of a sha1). */
export function traefikCookieName(serviceName: string): string {
  const sum = createHash("sha1").update(`_TRAEFIK_BACKEND_${serviceName}`).digest("hex");
  return `_${sum}`.slice(0, 6);
}

/** A cookie name made of RFC 2616 token characters (others become `_`), as Traefik does. */
function sanitizeCookieName(name: string): string {
  return name.replace(/[^!#$%&'*+\-.^`|~0-9A-Za-z]/g, "_");
}

/** Traefik's `normalize`: every run of characters other than letters and digits becomes "-". */
function normalize(name: string): string {
  return name.replace(/[^a-zA-Z0-9]+/g, "-");
}

interface TraefikRouter {
  rule?: { label: string; value: string };
  priority?: { label: string; value: string };
  service?: string;
}
interface TraefikService {
  port?: number;
  sticky: boolean;
  cookie: {
    name?: string;
    secure: boolean;
    httpOnly: boolean;
    sameSite?: StickyCookie["sameSite"];
  };
}

function parseBool(label: string, value: string, errors: string[]): boolean | undefined {
  const v = value.trim().toLowerCase();
  if (v === "true") return true;
  if (v === "false") return false;
  errors.push(`label ${label}: "${value}" is not true or false`);
  return undefined;
}

function parsePort(label: string, value: string, errors: string[]): number | undefined {
  const v = value.trim();
  const n = Number(v);
  if (/^[0-9]+$/.test(v) && n >= 1 && n <= 65535) return n;
  errors.push(`label ${label}: "${value}" is not a port (1-65535)`);
  return undefined;
}

/** The routes `labels` claim for the service `service` (its name), with warnings and errors. */
export function routesFromLabels(service: string, labels: Record<string, string>): LabelRoutes {
  const out: LabelRoutes = { routes: [], warnings: [], errors: [] };
  const keys = Object.keys(labels).sort();
  traefik(service, labels, keys, out);
  interlock(labels, keys, out);
  return out;
}

function traefik(
  service: string,
  labels: Record<string, string>,
  keys: string[],
  out: LabelRoutes,
): void {
  const mine = keys.filter((k) => k.toLowerCase().startsWith(TRAEFIK));
  if (mine.length === 0) return;
  const enableKey = mine.find((k) => k.toLowerCase() === "traefik.enable");
  if (enableKey !== undefined) {
    const on = parseBool(enableKey, labels[enableKey]!, out.errors);
    if (on !== true) return;
  }
  const routers = new Map<string, TraefikRouter>();
  const services = new Map<string, TraefikService>();
  const svc = (name: string) => {
    let s = services.get(name);
    if (s === undefined) {
      s = { sticky: false, cookie: { secure: false, httpOnly: false } };
      services.set(name, s);
    }
    return s;
  };
  const router = (name: string) => {
    let r = routers.get(name);
    if (r === undefined) {
      r = {};
      routers.set(name, r);
    }
    return r;
  };

  for (const key of mine) {
    if (key === enableKey) continue;
    const value = labels[key]!;
    const parts = key.split(".");
    const lower = parts.map((p) => p.toLowerCase());
    const option = lower.slice(4).join(".");
    if (lower[1] === "http" && lower[2] === "routers" && parts.length >= 5) {
      const r = parts[3]!;
      if (option === "rule") router(r).rule = { label: key, value };
      else if (option === "priority") router(r).priority = { label: key, value };
      else if (option === "service") router(r).service = value.trim();
      else if (option === "entrypoints") {
        router(r);
        out.warnings.push(`${key}: ignored (the router serves on one entry point, --http-addr)`);
      } else out.warnings.push(`${key}: not supported`);
      continue;
    }
    if (lower[1] === "http" && lower[2] === "services" && parts.length >= 5) {
      const s = svc(parts[3]!);
      switch (option) {
        case "loadbalancer.server.port":
          s.port = parsePort(key, value, out.errors);
          break;
        case "loadbalancer.server.scheme":
          if (value.trim().toLowerCase() !== "http") {
            out.warnings.push(`${key}: only http is supported; "${value}" ignored`);
          }
          break;
        case "loadbalancer.sticky.cookie":
          s.sticky = parseBool(key, value, out.errors) === true;
          break;
        case "loadbalancer.sticky.cookie.name":
          s.sticky = true;
          s.cookie.name = sanitizeCookieName(value.trim());
          break;
        case "loadbalancer.sticky.cookie.secure":
          s.sticky = true;
          s.cookie.secure = parseBool(key, value, out.errors) === true;
          break;
        case "loadbalancer.sticky.cookie.httponly":
          s.sticky = true;
          s.cookie.httpOnly = parseBool(key, value, out.errors) === true;
          break;
        case "loadbalancer.sticky.cookie.samesite": {
          s.sticky = true;
          const v = value.trim().toLowerCase();
          if (v === "none" || v === "lax" || v === "strict") s.cookie.sameSite = v;
          else if (v !== "") out.errors.push(`label ${key}: "${value}" is not none, lax or strict`);
          break;
        }
        default:
          out.warnings.push(`${key}: not supported`);
      }
      continue;
    }
    out.warnings.push(`${key}: not supported`);
  }

  if (routers.size === 0 && services.size === 0) return;
  if (routers.size === 0) {
    if (services.size > 1) {
      out.errors.push(
        `labels define ${services.size} Traefik services and no router: add traefik.http.routers.<r>.rule and .service`,
      );
      return;
    }
    routers.set(normalize(service), {
      rule: { label: "", value: `Host(\`${normalize(service)}\`)` },
    });
  }
  if (services.size === 0) services.set(normalize(service), svc(normalize(service)));

  for (const [name, r] of [...routers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const prefix = `traefik.http.routers.${name}`;
    if (r.rule === undefined) {
      out.errors.push(`router ${name}: ${prefix}.rule is missing`);
      continue;
    }
    const ruleLabel = r.rule.label || `${prefix}.rule (default)`;
    try {
      parseRule(r.rule.value);
    } catch (err) {
      if (!(err instanceof RuleError)) throw err;
      out.errors.push(`label ${ruleLabel}: ${err.message}`);
      continue;
    }
    let priority = r.rule.value.length;
    if (r.priority !== undefined) {
      const v = r.priority.value.trim();
      if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(Number(v))) {
        out.errors.push(`label ${r.priority.label}: "${r.priority.value}" is not a whole number`);
        continue;
      }
      // Traefik: 0 means "not set", the rule's length.
      if (Number(v) > 0) priority = Number(v);
    }
    let sName = r.service;
    if (sName === undefined) {
      if (services.size > 1) {
        out.errors.push(
          `router ${name}: ${prefix}.service is required, the labels define ${services.size} services (${[...services.keys()].join(", ")})`,
        );
        continue;
      }
      sName = [...services.keys()][0]!;
    }
    const s = services.get(sName);
    if (s === undefined) {
      out.errors.push(`label ${prefix}.service: no service "${sName}" in this service's labels`);
      continue;
    }
    if (s.port === undefined) {
      out.errors.push(
        `router ${name}: traefik.http.services.${sName}.loadbalancer.server.port is required (a Swarm service's port cannot be detected)`,
      );
      continue;
    }
    const route: ServiceRoute = { router: name, rule: r.rule.value, priority, port: s.port };
    if (s.sticky) {
      route.sticky = {
        name: s.cookie.name || traefikCookieName(`${sName}@swarm`),
        secure: s.cookie.secure,
        httpOnly: s.cookie.httpOnly,
      };
      if (s.cookie.sameSite !== undefined) route.sticky.sameSite = s.cookie.sameSite;
    }
    out.routes.push(route);
  }
}

function interlock(labels: Record<string, string>, keys: string[], out: LabelRoutes): void {
  const mine = keys.filter((k) => k.startsWith(INTERLOCK));
  if (mine.length === 0) return;
  let hostsKey: string | undefined;
  let port: number | undefined;
  let cookie: string | undefined;
  for (const key of mine) {
    const option = key.slice(INTERLOCK.length);
    const value = labels[key]!;
    if (option === "hosts") hostsKey = key;
    else if (option === "port") port = parsePort(key, value, out.errors);
    else if (option === "sticky_session_cookie") cookie = value.trim();
    // WebSocket upgrades pass through on every path, so listing the endpoints changes nothing.
    else if (option === "websocket_endpoints") continue;
    else out.warnings.push(`${key}: not supported`);
  }
  if (hostsKey === undefined) {
    if (port !== undefined || cookie !== undefined) {
      out.errors.push(
        `label ${INTERLOCK}hosts is missing (the other ${INTERLOCK}* labels need it)`,
      );
    }
    return;
  }
  const hosts = labels[hostsKey]!.split(",")
    .map((h) => h.trim())
    .filter((h) => h !== "");
  if (hosts.length === 0) {
    out.errors.push(`label ${hostsKey}: no host names`);
    return;
  }
  const rule = hosts.map((h) => `Host(\`${h}\`)`).join(" || ");
  try {
    parseRule(rule);
  } catch (err) {
    if (!(err instanceof RuleError)) throw err;
    out.errors.push(`label ${hostsKey}: ${err.reason}`);
    return;
  }
  if (port === undefined) {
    if (!mine.includes(`${INTERLOCK}port`)) out.errors.push(`label ${INTERLOCK}port is missing`);
    return;
  }
  if (cookie !== undefined && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(cookie)) {
    out.errors.push(`label ${INTERLOCK}sticky_session_cookie: "${cookie}" is not a cookie name`);
    return;
  }
  const route: ServiceRoute = { router: "interlock", rule, priority: rule.length, port };
  if (cookie !== undefined) route.sticky = { name: cookie, secure: false, httpOnly: false };
  out.routes.push(route);
}

const bySpec = new WeakMap<object, ServiceRoute[]>();

/**
 * The routes a service spec's labels claim (label problems leave a route out; the CLI prints
 * them at deploy). Cached per spec object: the store hands out the same frozen spec until it
 * changes, so the dispatcher parses a service's labels once, not on every publish.
 */
export function specRoutes(spec: { name: string; labels: Record<string, string> }): ServiceRoute[] {
  let routes = bySpec.get(spec);
  if (routes === undefined) {
    routes = routesFromLabels(spec.name, spec.labels).routes;
    bySpec.set(spec, routes);
  }
  return routes;
}

/** The ports a service's tasks listen on for its routes, each once. */
export function routedPorts(spec: { name: string; labels: Record<string, string> }): number[] {
  return [...new Set(specRoutes(spec).map((r) => r.port))];
}

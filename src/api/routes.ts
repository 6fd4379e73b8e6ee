// The HTTP router's table (src/net/router/), as a daemon hands it over (and, later, as it travels
// on the bus): which host names and paths each service claims, with which rule and priority,
// whether its clients are pinned by a cookie, and the backends (serving tasks) it goes to.
//
//   routes: [{ service, router, rule, priority, sticky?, backends: [{ host, port, id? }] }]
//
// A route comes from a service's labels (src/api/route-labels.ts yields a ServiceRoute: the rule,
// priority, target port and sticky cookie); the daemon adds the service's tasks that serve
// traffic as backends. A route without backends answers 503. Rules are text in Traefik's syntax
// (src/api/route-rule.ts) so the table stays plain JSON. Like every bus message the table accepts
// properties it does not know.

import { Type, type Static } from "@sinclair/typebox";
import { oneOf } from "./types.js";

const port = (description: string) => Type.Integer({ minimum: 1, maximum: 65535, description });

export const StickyCookieSchema = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      pattern: "^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$",
      description: "The cookie's name (a token of RFC 6265).",
    }),
    secure: Type.Boolean({ description: "Set the cookie's Secure attribute." }),
    httpOnly: Type.Boolean({ description: "Set the cookie's HttpOnly attribute." }),
    sameSite: Type.Optional(
      oneOf(["none", "lax", "strict"], { description: "The cookie's SameSite attribute." }),
    ),
  },
  { title: "StickyCookie" },
);
export type StickyCookie = Static<typeof StickyCookieSchema>;

/** What a service's labels claim, before the daemon knows its tasks. */
export const ServiceRouteSchema = Type.Object(
  {
    router: Type.String({
      minLength: 1,
      description: "The router's name (Traefik's `<r>` in `traefik.http.routers.<r>`).",
    }),
    rule: Type.String({ minLength: 1, description: "The rule in Traefik's syntax." }),
    priority: Type.Integer({
      minimum: 0,
      description: "Higher is tried first; Traefik's default is the rule's length.",
    }),
    port: port("The port the service's tasks listen on."),
    sticky: Type.Optional(StickyCookieSchema),
  },
  { title: "ServiceRoute" },
);
export type ServiceRoute = Static<typeof ServiceRouteSchema>;

export const RouteBackendSchema = Type.Object(
  {
    host: Type.String({ minLength: 1, description: "The backend's address (IPv4, IPv6 or name)." }),
    port: port("The backend's port."),
    id: Type.Optional(Type.String({ description: "The task behind it (for logs)." })),
  },
  { title: "RouteBackend" },
);
export type RouteBackend = Static<typeof RouteBackendSchema>;

export const RouteSchema = Type.Object(
  {
    service: Type.String({ minLength: 1, description: "The service that claims the route." }),
    serviceId: Type.Optional(
      Type.String({ description: "Its id: the router counts requests per service by it." }),
    ),
    router: ServiceRouteSchema.properties.router,
    rule: ServiceRouteSchema.properties.rule,
    priority: ServiceRouteSchema.properties.priority,
    sticky: Type.Optional(StickyCookieSchema),
    backends: Type.Array(RouteBackendSchema, {
      description: "The service's tasks that serve traffic now; empty answers 503.",
    }),
  },
  { title: "Route" },
);
export type Route = Static<typeof RouteSchema>;

export const RouteTableSchema = Type.Object(
  {
    routes: Type.Array(RouteSchema, { description: "Every route; order does not matter." }),
  },
  { title: "RouteTable" },
);
export type RouteTable = Static<typeof RouteTableSchema>;

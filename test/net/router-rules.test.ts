// The router's rules and labels, as tables: Traefik's rule syntax (valid rules and their trees,
// invalid ones and the position and reason of the error), the matcher a rule compiles to, the
// route order, and a service's labels (Traefik's and interlock's) → routes, warnings and errors.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parseRule, RuleError, ruleHosts, type RuleNode } from "../../src/api/route-rule.js";
import { routesFromLabels, traefikCookieName } from "../../src/api/route-labels.js";
import { compileRule, compileTable, requestHost, requestPath } from "../../src/net/router/match.js";
import { cookieValue, clfTime, backendFailure } from "../../src/net/router/router.js";
import type { Route } from "../../src/api/routes.js";

const host = (...hosts: string[]): RuleNode => ({ kind: "host", hosts });
const prefix = (...prefixes: string[]): RuleNode => ({ kind: "pathPrefix", prefixes });

test("parseRule: valid rules", () => {
  const cases: Array<[string, RuleNode]> = [
    ["Host(`a.example.com`)", host("a.example.com")],
    ['Host("A.Example.COM")', host("a.example.com")],
    ["Host(`a`, `b`)", host("a", "b")],
    ["host(`a`)", host("a")],
    ["Host(`a.`)", host("a")],
    ["Host(`a`) || Host(`b`)", { kind: "or", left: host("a"), right: host("b") }],
    ["Host(`a`) && PathPrefix(`/p`)", { kind: "and", left: host("a"), right: prefix("/p") }],
    ["Path(`/x`)", { kind: "path", paths: ["/x"] }],
    [
      "Host(`a`) || Host(`b`) && PathPrefix(`/p`)",
      { kind: "or", left: host("a"), right: { kind: "and", left: host("b"), right: prefix("/p") } },
    ],
    [
      "(Host(`a`) || Host(`b`)) && PathPrefix(`/p`)",
      { kind: "and", left: { kind: "or", left: host("a"), right: host("b") }, right: prefix("/p") },
    ],
    [
      "Host(`a`) && !PathPrefix(`/admin`)",
      { kind: "and", left: host("a"), right: { kind: "not", expr: prefix("/admin") } },
    ],
    ["  Host( `a` )  ", host("a")],
  ];
  for (const [text, tree] of cases) assert.deepEqual(parseRule(text), tree, text);
});

test("parseRule: invalid rules name the position and the reason", () => {
  const cases: Array<[string, number, RegExp]> = [
    ["", 1, /empty/],
    ["Host(`a`", 9, /expected "," or "\)" after an argument of Host, found the end/],
    ["Host(a)", 6, /expected a quoted argument of Host/],
    ["Host`a`", 5, /expected "\(" after Host/],
    ["Host(`a) ", 6, /unterminated string/],
    ["Host(`a`) & Host(`b`)", 11, /expected "&&"/],
    ["Host(`a`) Host(`b`)", 11, /expected "&&", "\|\|" or the end of the rule, found "Host"/],
    ["HostRegexp(`.*`)", 1, /HostRegexp is not supported by shoal/],
    ["Hots(`a`)", 1, /Hots is not a known matcher/],
    ["PathPrefix(`p`)", 12, /"p" must start with "\/"/],
    ["Host(`a b`)", 6, /"a b" is not a valid host name/],
    ["(Host(`a`)", 11, /expected "\)"/],
    ["Host(`a`) ||", 13, /expected a matcher/],
    ["Host(`a`) # x", 11, /unexpected character "#"/],
  ];
  for (const [text, pos, why] of cases) {
    assert.throws(
      () => parseRule(text),
      (err: unknown) => {
        assert.ok(err instanceof RuleError, text);
        assert.equal(err.code, "ERR_ROUTE_RULE");
        assert.equal(err.position, pos, `${text}: ${err.message}`);
        assert.match(err.message, why, text);
        assert.match(err.message, new RegExp(`^at position ${pos}: `));
        return true;
      },
    );
  }
});

test("ruleHosts lists the claimed hosts, not those under !", () => {
  assert.deepEqual(ruleHosts(parseRule("Host(`a`, `b`) || (Host(`c`) && !Host(`d`))")), [
    "a",
    "b",
    "c",
  ]);
});

test("compiled rules match by host and path prefix", () => {
  const cases: Array<[string, string, string, boolean]> = [
    ["Host(`a`)", "a", "/", true],
    ["Host(`a`)", "b", "/", false],
    ["Host(`a`, `b`)", "b", "/x", true],
    ["Host(`a`) && PathPrefix(`/api`)", "a", "/api/v1", true],
    ["Host(`a`) && PathPrefix(`/api`)", "a", "/apis", true],
    ["Host(`a`) && PathPrefix(`/api`)", "a", "/", false],
    ["Host(`a`) && PathPrefix(`/api`)", "b", "/api", false],
    ["Path(`/x`)", "any", "/x", true],
    ["Path(`/x`)", "any", "/x/y", false],
    ["Host(`a`) && !PathPrefix(`/admin`)", "a", "/admin/x", false],
    ["Host(`a`) && !PathPrefix(`/admin`)", "a", "/home", true],
    ["(Host(`a`) || Host(`b`)) && PathPrefix(`/p`)", "b", "/p", true],
  ];
  for (const [rule, h, p, want] of cases) {
    assert.equal(compileRule(parseRule(rule))(h, p), want, `${rule} on ${h}${p}`);
  }
});

test("requestHost strips the port and ignores case; requestPath drops the query", () => {
  assert.equal(requestHost("Web.Example.COM:8080"), "web.example.com");
  assert.equal(requestHost("web."), "web");
  assert.equal(requestHost("[::1]:80"), "[::1]");
  assert.equal(requestHost(undefined), "");
  assert.equal(requestPath("/a/b?x=1"), "/a/b");
  assert.equal(requestPath("/"), "/");
});

test("compileTable orders routes by priority, then service and router; bad rules are left out", () => {
  const route = (service: string, rule: string, priority: number): Route => ({
    service,
    router: "r",
    rule,
    priority,
    backends: [],
  });
  const { routes, problems } = compileTable({
    routes: [
      route("low", "Host(`a`)", 1),
      route("bad", "Host(`a`", 100),
      route("high", "Host(`a`) && PathPrefix(`/x`)", 50),
      route("b-same", "Host(`b`)", 10),
      route("a-same", "Host(`b`)", 10),
    ],
  });
  assert.deepEqual(
    routes.map((r) => r.route.service),
    ["high", "a-same", "b-same", "low"],
  );
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /route bad\/r: rule at position 9: /);
});

test("cookieValue, clfTime and backendFailure", () => {
  assert.equal(cookieValue("a=1; _x=abc; b=2", "_x"), "abc");
  assert.equal(cookieValue("a=1;b=2", "b"), "2");
  assert.equal(cookieValue("ab=1", "b"), undefined);
  assert.equal(cookieValue(undefined, "b"), undefined);
  assert.equal(clfTime(new Date(Date.UTC(2000, 9, 10, 13, 55, 36))), "10/Oct/2000:13:55:36 +0000");
  const f = (code: string) => backendFailure(Object.assign(new Error("x"), { code }), "h:1", 2000);
  assert.deepEqual(f("ECONNREFUSED"), {
    status: 502,
    reason: "backend h:1 refused the connection",
  });
  assert.deepEqual(f("UND_ERR_SOCKET"), {
    status: 502,
    reason: "backend h:1 reset the connection",
  });
  assert.deepEqual(f("UND_ERR_HEADERS_TIMEOUT"), {
    status: 504,
    reason: "backend h:1 did not answer within 2 s",
  });
});

test("traefikCookieName gives Traefik's names (values from Traefik's own tests)", () => {
  assert.equal(traefikCookieName("backend"), "_76eb3");
  assert.equal(traefikCookieName("/my/BACKEND-v1.0~rc1"), "_5f7bc");
});

test("Traefik labels → routes", () => {
  const cases: Array<{ name: string; labels: Record<string, string>; want: unknown }> = [
    {
      name: "one router, one service",
      labels: {
        "traefik.enable": "true",
        "traefik.http.routers.web.rule": "Host(`web.example.com`)",
        "traefik.http.services.web.loadbalancer.server.port": "8000",
      },
      want: [{ router: "web", rule: "Host(`web.example.com`)", priority: 23, port: 8000 }],
    },
    {
      name: "priority label, camel-case option names, sticky with a name and flags",
      labels: {
        "traefik.http.routers.r.rule": "Host(`a`) && PathPrefix(`/api`)",
        "traefik.http.routers.r.priority": "42",
        "traefik.http.services.s.loadBalancer.server.port": "80",
        "traefik.http.services.s.loadBalancer.sticky.cookie": "true",
        "traefik.http.services.s.loadBalancer.sticky.cookie.name": "my cookie",
        "traefik.http.services.s.loadBalancer.sticky.cookie.secure": "true",
        "traefik.http.services.s.loadBalancer.sticky.cookie.httpOnly": "true",
      },
      want: [
        {
          router: "r",
          rule: "Host(`a`) && PathPrefix(`/api`)",
          priority: 42,
          port: 80,
          sticky: { name: "my_cookie", secure: true, httpOnly: true },
        },
      ],
    },
    {
      name: "sticky.cookie=true alone gets Traefik's default name",
      labels: {
        "traefik.http.routers.r.rule": "Host(`a`)",
        "traefik.http.services.s.loadbalancer.server.port": "80",
        "traefik.http.services.s.loadbalancer.sticky.cookie": "true",
      },
      want: [
        {
          router: "r",
          rule: "Host(`a`)",
          priority: 9,
          port: 80,
          sticky: { name: traefikCookieName("s@swarm"), secure: false, httpOnly: false },
        },
      ],
    },
    {
      name: "two routers, two services, linked by .service",
      labels: {
        "traefik.http.routers.a.rule": "Host(`a`)",
        "traefik.http.routers.a.service": "sa",
        "traefik.http.routers.b.rule": "Host(`b`)",
        "traefik.http.routers.b.service": "sb",
        "traefik.http.services.sa.loadbalancer.server.port": "1",
        "traefik.http.services.sb.loadbalancer.server.port": "2",
      },
      want: [
        { router: "a", rule: "Host(`a`)", priority: 9, port: 1 },
        { router: "b", rule: "Host(`b`)", priority: 9, port: 2 },
      ],
    },
    {
      name: "a service without a router gets Host(`<name>`)",
      labels: { "traefik.http.services.x.loadbalancer.server.port": "8080" },
      want: [{ router: "my-web", rule: "Host(`my-web`)", priority: 14, port: 8080 }],
    },
    {
      name: "traefik.enable=false claims nothing",
      labels: {
        "traefik.enable": "false",
        "traefik.http.routers.r.rule": "Host(`a`)",
        "traefik.http.services.s.loadbalancer.server.port": "80",
      },
      want: [],
    },
    { name: "no traefik labels", labels: { "com.example": "x" }, want: [] },
  ];
  for (const c of cases) {
    const got = routesFromLabels("my_web", c.labels);
    assert.deepEqual(got.errors, [], c.name);
    assert.deepEqual(got.routes, c.want, c.name);
  }
});

test("Traefik labels: errors name the label, warnings list the unsupported ones", () => {
  const cases: Array<{ labels: Record<string, string>; errors: RegExp[]; warnings?: string[] }> = [
    {
      labels: {
        "traefik.http.routers.r.rule": "Host(`a`) && Pathprefix(`x`)",
        "traefik.http.services.s.loadbalancer.server.port": "80",
      },
      errors: [
        /^label traefik\.http\.routers\.r\.rule: at position 25: Pathprefix: "x" must start/,
      ],
    },
    {
      labels: { "traefik.http.routers.r.rule": "Host(`a`)" },
      errors: [/router r: traefik\.http\.services\.svc\.loadbalancer\.server\.port is required/],
    },
    {
      labels: {
        "traefik.http.routers.r.rule": "Host(`a`)",
        "traefik.http.services.s.loadbalancer.server.port": "99999",
      },
      errors: [
        /label traefik\.http\.services\.s\.loadbalancer\.server\.port: "99999" is not a port/,
        /server\.port is required/,
      ],
    },
    {
      labels: {
        "traefik.http.routers.r.rule": "Host(`a`)",
        "traefik.http.routers.r.priority": "high",
        "traefik.http.services.s.loadbalancer.server.port": "80",
      },
      errors: [/label traefik\.http\.routers\.r\.priority: "high" is not a whole number/],
    },
    {
      labels: {
        "traefik.http.routers.r.rule": "Host(`a`)",
        "traefik.http.services.s1.loadbalancer.server.port": "80",
        "traefik.http.services.s2.loadbalancer.server.port": "81",
      },
      errors: [/router r: traefik\.http\.routers\.r\.service is required, the labels define 2/],
    },
    {
      labels: {
        "traefik.http.routers.r.rule": "Host(`a`)",
        "traefik.http.routers.r.service": "nope",
        "traefik.http.services.s.loadbalancer.server.port": "80",
      },
      errors: [/label traefik\.http\.routers\.r\.service: no service "nope"/],
    },
    {
      labels: { "traefik.enable": "yes" },
      errors: [/label traefik\.enable: "yes" is not true or false/],
    },
    {
      labels: { "traefik.http.routers.r.priority": "5" },
      errors: [/router r: traefik\.http\.routers\.r\.rule is missing/],
    },
    {
      labels: {
        "traefik.http.routers.r.rule": "Host(`a`)",
        "traefik.http.routers.r.entrypoints": "web",
        "traefik.http.routers.r.middlewares": "auth",
        "traefik.http.routers.r.tls": "true",
        "traefik.http.services.s.loadbalancer.server.port": "80",
        "traefik.http.services.s.loadbalancer.healthcheck.path": "/health",
        "traefik.swarm.network": "proxy",
        "traefik.http.middlewares.auth.basicauth.users": "x",
      },
      errors: [],
      warnings: [
        "traefik.http.middlewares.auth.basicauth.users: not supported",
        "traefik.http.routers.r.entrypoints: ignored (the router serves on one entry point, --http-addr)",
        "traefik.http.routers.r.middlewares: not supported",
        "traefik.http.routers.r.tls: not supported",
        "traefik.http.services.s.loadbalancer.healthcheck.path: not supported",
        "traefik.swarm.network: not supported",
      ],
    },
  ];
  for (const c of cases) {
    const got = routesFromLabels("svc", c.labels);
    assert.equal(got.errors.length, c.errors.length, JSON.stringify(got.errors));
    c.errors.forEach((re, i) => assert.match(got.errors[i]!, re));
    if (c.errors.length > 0 && !c.labels["traefik.http.routers.r.entrypoints"]) {
      assert.deepEqual(got.routes, []);
    }
    if (c.warnings) assert.deepEqual(got.warnings, c.warnings);
  }
});

test("interlock labels → routes, warnings and errors", () => {
  const ok = routesFromLabels("demo", {
    "com.docker.lb.hosts": "demo.local, Other.Local",
    "com.docker.lb.port": "8080",
    "com.docker.lb.sticky_session_cookie": "session",
    "com.docker.lb.websocket_endpoints": "/ws",
    "com.docker.lb.network": "demo",
    "com.docker.lb.ssl_cert": "x",
  });
  const rule = "Host(`demo.local`) || Host(`Other.Local`)";
  assert.deepEqual(ok.routes, [
    {
      router: "interlock",
      rule,
      priority: rule.length,
      port: 8080,
      sticky: { name: "session", secure: false, httpOnly: false },
    },
  ]);
  assert.deepEqual(ok.errors, []);
  assert.deepEqual(ok.warnings, [
    "com.docker.lb.network: not supported",
    "com.docker.lb.ssl_cert: not supported",
  ]);
  assert.equal(compileRule(parseRule(rule))("other.local", "/"), true);

  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ "com.docker.lb.hosts": "a" }, /label com\.docker\.lb\.port is missing/],
    [
      { "com.docker.lb.hosts": "a", "com.docker.lb.port": "x" },
      /com\.docker\.lb\.port: "x" is not a port/,
    ],
    [{ "com.docker.lb.port": "80" }, /label com\.docker\.lb\.hosts is missing/],
    [
      { "com.docker.lb.hosts": " , ", "com.docker.lb.port": "80" },
      /com\.docker\.lb\.hosts: no host names/,
    ],
    [
      { "com.docker.lb.hosts": "bad host", "com.docker.lb.port": "80" },
      /com\.docker\.lb\.hosts: Host: "bad host" is not a valid host name/,
    ],
  ];
  for (const [labels, re] of cases) {
    const got = routesFromLabels("demo", labels);
    assert.deepEqual(got.routes, []);
    assert.equal(got.errors.length, 1, JSON.stringify(got.errors));
    assert.match(got.errors[0]!, re);
  }
});

test("Traefik and interlock labels on one service give both routes", () => {
  const got = routesFromLabels("web", {
    "traefik.http.routers.r.rule": "Host(`a`)",
    "traefik.http.services.s.loadbalancer.server.port": "80",
    "com.docker.lb.hosts": "b",
    "com.docker.lb.port": "81",
  });
  assert.deepEqual(
    got.routes.map((r) => [r.router, r.port]),
    [
      ["r", 80],
      ["interlock", 81],
    ],
  );
});

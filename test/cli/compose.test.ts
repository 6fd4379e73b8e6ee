// Compose files as stacks, without a daemon: interpolation, `.env`, merging of several files,
// validation errors that name the file, line and key, Swarm's ignored and refused keys, and the
// conversion to service specs (names, the default network, aliases, ports, deploy, health).

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join, resolve } from "node:path";
import { interpolateString, parseEnvFile } from "../../src/cli/compose/interpolate.js";
import { loadFiles, loadSources, mergeDicts } from "../../src/cli/compose/load.js";
import {
  convertHealthcheck,
  convertPorts,
  convertStack,
  shellSplit,
} from "../../src/cli/compose/convert.js";
import { ComposeError } from "../../src/cli/errors.js";

// Fixtures stay in the sources (test/cli/fixtures/stack), next to the compiled dist/test/cli.
const HERE = fileURLToPath(new URL(".", import.meta.url));
const FIX = [
  resolve(HERE, "fixtures/stack"),
  resolve(HERE, "../../../test/cli/fixtures/stack"),
].find((d) => {
  try {
    readFileSync(join(d, "base.yml"));
    return true;
  } catch {
    return false;
  }
})!;

type Svcs = Record<
  string,
  { deploy: { replicas: unknown }; environment: unknown; command: string[] }
>;

const env = (vars: Record<string, string>) => (k: string) => vars[k];

test("interpolation: every form, $$, and Docker's errors", () => {
  const look = env({ A: "a", E: "" });
  const table: Array<[string, string]> = [
    ["$A", "a"],
    ["${A}", "a"],
    ["x${A}y$A", "xaya"],
    ["${B:-dflt}", "dflt"],
    ["${E:-dflt}", "dflt"],
    ["${E-dflt}", ""],
    ["${B-dflt}", "dflt"],
    ["${A:-dflt}", "a"],
    ["${A:?boom}", "a"],
    ["${E?boom}", ""],
    ["$$A", "$A"],
    ["cost: $$5", "cost: $5"],
    ["$B", ""],
    ["${A:+set}", "set"],
  ];
  for (const [input, want] of table) assert.equal(interpolateString(input, look, "p"), want, input);
  assert.throws(
    () => interpolateString("${B:?need B}", look, "p"),
    (e: unknown) =>
      e instanceof ComposeError && e.message === "required variable B is missing a value: need B",
  );
  assert.throws(() => interpolateString("${E:?x}", look, "p"), /required variable E/);
  assert.throws(
    () => interpolateString("a ${", look, "services.web.image"),
    /invalid interpolation format for services\.web\.image: "a \$\{"\. You may need to escape any \$ with another \$\./,
  );
  assert.throws(() => interpolateString("$-x", look, "p"), /invalid interpolation format/);
});

test("env files: comments, quotes, export, bare names from the environment", () => {
  const text = "# c\n\nA=1\nexport B=\"x y\"\nC='q'\nD\nZ\nE=v # note\n";
  assert.deepEqual(parseEnvFile(text, "f", env({ D: "from-env" })), {
    A: "1",
    B: "x y",
    C: "q",
    D: "from-env",
    E: "v",
  });
  assert.throws(() => parseEnvFile("=x\n", "f", env({})), /f:1: invalid variable name/);
});

test("merge: maps deep, environment lists as maps, ports as a set, others replaced", () => {
  const a = {
    services: {
      web: { command: ["a"], environment: ["X=1", "Y=2"], ports: ["1:1"], deploy: { replicas: 1 } },
    },
  };
  const b = {
    services: {
      web: {
        command: ["b"],
        environment: { Y: "3" },
        ports: ["1:1", "2:2"],
        deploy: { mode: "x" },
      },
    },
  };
  assert.deepEqual(mergeDicts(a, b), {
    services: {
      web: {
        command: ["b"],
        environment: { X: "1", Y: "3" },
        ports: ["1:1", "2:2"],
        deploy: { replicas: 1, mode: "x" },
      },
    },
  });
});

const load = (text: string, vars: Record<string, string> = {}) =>
  loadSources([{ file: "stack.yml", text }], env(vars));

test("validation errors name the file, line, column and the key's path", () => {
  const table: Array<[string, RegExp | string]> = [
    [
      "services:\n  web:\n    command: x\n    deploy:\n      replicas: many\n",
      "stack.yml:5:7: services.web.deploy.replicas: must be integer",
    ],
    [
      "services:\n  web:\n    command: x\n    helicopters: 2\n",
      "stack.yml:4:5: services.web.helicopters: Additional property helicopters is not allowed",
    ],
    [
      "services:\n  web:\n    command: x\n    mem_limit: 50M\n",
      /stack\.yml:4:5: services\.web\.mem_limit: Compose file contains unsupported options:\n\nmem_limit: Set resource limits using deploy\.resources/,
    ],
    [
      "services:\n  web:\n    extends: x\n",
      /extends: Support for `extends` is not implemented yet\./,
    ],
    ["services: [a]\n", "stack.yml:1:1: services: must be object"],
    [
      "services:\n  web:\n    command: x\n    deploy:\n      replicas: ${N}\n",
      "stack.yml:5:7: services.web.deploy.replicas: must be integer",
    ],
    ["services:\n  web: {command: x\n", /^stack\.yml:\d+:\d+: /],
    ["- a\n", "stack.yml: Top-level object must be a mapping"],
    [
      "services:\n  web:\n    image: ${X:?set X}\n",
      "stack.yml: required variable X is missing a value: set X",
    ],
  ];
  for (const [text, want] of table) {
    assert.throws(
      () => load(text),
      (e: unknown) => {
        assert.ok(e instanceof ComposeError, String(e));
        if (typeof want === "string") assert.equal(e.message, want);
        else assert.match(e.message, want);
        return true;
      },
      text,
    );
  }
  // A variable gives replicas as text; it is an integer once interpolated.
  const ok = load("services:\n  web:\n    command: x\n    deploy:\n      replicas: ${N}\n", {
    N: "3",
  });
  assert.deepEqual((ok["services"] as Svcs).web.deploy.replicas, 3);
});

const ctx = {
  workingDir: "/nowhere",
  lookup: env({}),
  readFile: (p: string) => readFileSync(p, "utf8"),
};

test("conversion: names, the default network, aliases, labels, process vs docker driver", () => {
  const config = load(
    "services:\n  api:\n    command: node server.js\n    entrypoint: [env]\n  db:\n    image: postgres:16\n    command: [postgres, -c, x=1]\n    networks: {back: {aliases: [database]}}\nnetworks:\n  back: {driver: overlay, labels: [team=a]}\n  outside: {external: true}\n",
  );
  const s = convertStack(config, "demo", ctx);
  assert.deepEqual(
    s.services.map((x) => [x.name, x.driver, x.image, x.command, x.networks]),
    [
      [
        "demo_api",
        "process",
        "",
        ["env", "node", "server.js"],
        [{ target: "demo_default", aliases: ["api"] }],
      ],
      [
        "demo_db",
        "docker",
        "postgres:16",
        ["postgres", "-c", "x=1"],
        [{ target: "demo_back", aliases: ["db", "database"] }],
      ],
    ],
  );
  assert.deepEqual(s.services[0]!.labels, { "com.docker.stack.namespace": "demo" });
  assert.equal(s.services[1]!.labels["com.docker.stack.image"], "postgres:16");
  // Only the networks used, each with the namespace label; unused `outside` is not listed.
  assert.deepEqual(
    s.networks.map((n) => [n.name, n.external, n.create.driver, n.create.labels]),
    [
      ["demo_default", false, "overlay", { "com.docker.stack.namespace": "demo" }],
      ["demo_back", false, "overlay", { team: "a", "com.docker.stack.namespace": "demo" }],
    ],
  );
  assert.deepEqual(s.warnings, []);

  const ext = convertStack(
    load(
      "services:\n  a:\n    command: x\n    networks: [outside, named]\nnetworks:\n  outside: {external: true}\n  named: {name: shared-net}\n",
    ),
    "st",
    ctx,
  );
  assert.deepEqual(
    ext.networks.map((n) => [n.name, n.external]),
    [
      ["outside", true],
      ["shared-net", false],
    ],
  );
  assert.throws(
    () => convertStack(load("services:\n  a:\n    command: x\n    networks: [nope]\n"), "st", ctx),
    /services\.a\.networks: service "a" refers to undefined network nope: invalid compose file/,
  );
  assert.throws(
    () => convertStack(load("services:\n  a:\n    environment: [A=1]\n"), "st", ctx),
    /services\.a: a service without an image needs a command or an entrypoint/,
  );
});

test("conversion: ignored keys are warned about by name", () => {
  const s = convertStack(
    load(
      "services:\n  a:\n    command: x\n    build: .\n    privileged: true\n    links: [b]\n    container_name: cname\n    hostname: h\n  b:\n    command: y\n    restart: always\n",
    ),
    "st",
    ctx,
  );
  assert.deepEqual(s.warnings, [
    "Ignoring unsupported options: build, links, privileged, restart\n",
    "Ignoring deprecated options:\n\ncontainer_name: Setting the container name is not supported.\n",
    "Ignoring options shoal does not support yet: services.a.hostname\n",
  ]);
});

test("conversion: deploy keys, environment, durations, healthcheck", () => {
  const s = convertStack(
    load(`services:
  w:
    command: [run]
    environment: {A: "1", FROM_ENV: null}
    working_dir: /srv
    stop_signal: SIGINT
    stop_grace_period: 1m30s
    healthcheck:
      test: curl -f http://localhost
      interval: 10s
      retries: 5
    deploy:
      mode: replicated
      replicas: 7
      endpoint_mode: dnsrr
      labels: {tier: web}
      resources:
        limits: {cpus: "0.1", memory: 50M}
        reservations: {cpus: "0.05", memory: 1gb}
      restart_policy: {condition: on-failure, delay: 2s, max_attempts: 3, window: 1m}
      update_config: {parallelism: 2, delay: 10s, order: start-first, failure_action: rollback, monitor: 3s, max_failure_ratio: 0.5}
      placement: {constraints: [node.role==worker]}
  g:
    command: [x]
    deploy: {mode: global}
    healthcheck: {disable: true}
`),
    "st",
    { ...ctx, lookup: env({ FROM_ENV: "e" }) },
  );
  const [g, w] = s.services;
  assert.deepEqual(g!.mode, { global: {} });
  assert.deepEqual(g!.healthcheck!.test, ["NONE"]);
  assert.deepEqual(w!.mode, { replicated: { replicas: 7 } });
  assert.deepEqual(w!.env, { A: "1", FROM_ENV: "e" });
  assert.equal(w!.workdir, "/srv");
  assert.equal(w!.stopSignal, "SIGINT");
  assert.equal(w!.stopGracePeriodMs, 90_000);
  assert.equal(w!.endpointMode, "dnsrr");
  assert.deepEqual(w!.labels, { tier: "web", "com.docker.stack.namespace": "st" });
  assert.deepEqual(w!.limits, { cpus: 0.1, memoryBytes: 50 * 1024 ** 2 });
  assert.deepEqual(w!.reservations, { cpus: 0.05, memoryBytes: 1024 ** 3 });
  assert.deepEqual(w!.restartPolicy, {
    condition: "on-failure",
    delayMs: 2000,
    maxAttempts: 3,
    windowMs: 60_000,
  });
  assert.deepEqual(w!.update, {
    parallelism: 2,
    delayMs: 10_000,
    order: "start-first",
    failureAction: "rollback",
    monitorMs: 3000,
    maxFailureRatio: 0.5,
  });
  assert.deepEqual(w!.constraints, ["node.role==worker"]);
  assert.deepEqual(w!.healthcheck, {
    test: ["CMD-SHELL", "curl -f http://localhost"],
    intervalMs: 10_000,
    timeoutMs: 30_000,
    retries: 5,
    startPeriodMs: 0,
    startIntervalMs: 5000,
  });
  assert.deepEqual(convertHealthcheck({ test: ["CMD", "true"] }, "h").test, ["CMD", "true"]);
  assert.throws(
    () => convertHealthcheck({ test: ["RUN", "x"] }, "h"),
    /h\.test: must start with CMD/,
  );
});

test("ports: short syntax (host ip, protocol, ranges) and long syntax", () => {
  assert.deepEqual(convertPorts(["8080:80", "127.0.0.1:53:53/udp", "9000-9001:7000-7001"], "p"), [
    { published: 8080, target: 80, protocol: "tcp", mode: "ingress" },
    { published: 53, target: 53, protocol: "udp", mode: "ingress" },
    { published: 9000, target: 7000, protocol: "tcp", mode: "ingress" },
    { published: 9001, target: 7001, protocol: "tcp", mode: "ingress" },
  ]);
  assert.deepEqual(convertPorts([{ target: 80, published: "8080", mode: "host" }], "p"), [
    { published: 8080, target: 80, protocol: "tcp", mode: "host" },
  ]);
  assert.throws(
    () => convertPorts(["80"], "services.a.ports"),
    /services\.a\.ports\.0: port "80": a published port is needed/,
  );
  assert.throws(() => convertPorts(["1-3:1-2"], "p"), /p\.0: port ranges/);
  assert.throws(() => convertPorts(["x:y"], "p"), /p\.0: invalid port "x:y"/);
});

test("shell words of a string command", () => {
  assert.deepEqual(shellSplit(`sh -c "echo 'a b'" x\\ y ''`, "p"), [
    "sh",
    "-c",
    "echo 'a b'",
    "x y",
    "",
  ]);
  assert.throws(() => shellSplit(`a "b`, "p"), /p: unterminated quote/);
});

test("files: -c base -c override, .env beside the first file, env_file relative to it", () => {
  const files = [join(FIX, "base.yml"), join(FIX, "override.yml")];
  const { config, workingDir } = loadFiles(files, {});
  assert.equal(workingDir, FIX);
  const web = (config["services"] as Svcs).web;
  assert.equal(web.deploy.replicas, 5, "from .env");
  assert.deepEqual(web.environment, { MODE: "override", KEEP: "1" });
  assert.equal(web.command[2], "require('http').createServer((q, r) => r.end('hi')).listen(8080)");
  assert.equal(loadFiles(files, { WEB_REPLICAS: "2" }).config["services"] !== undefined, true);
  assert.equal(
    (loadFiles(files, { WEB_REPLICAS: "2" }).config["services"] as Svcs).web.deploy.replicas,
    2,
    "the environment wins over .env",
  );
  const s = convertStack(config, "demo", {
    workingDir,
    lookup: env({}),
    readFile: (p) => readFileSync(p, "utf8"),
  });
  const [webSpec, worker] = s.services;
  assert.deepEqual(webSpec!.ports, [
    { published: 32794, target: 80, protocol: "tcp", mode: "ingress" },
    { published: 32795, target: 81, protocol: "udp", mode: "host" },
  ]);
  assert.deepEqual(worker!.env, { A: "1", B: "two words" });
  assert.deepEqual(worker!.command, ["sleep", "1000"]);
  assert.deepEqual(worker!.networks, [{ target: "demo_webnet", aliases: ["worker", "jobs"] }]);
  assert.throws(
    () => loadFiles([join(FIX, "missing.yml")], {}),
    /open .*missing\.yml: no such file or directory/,
  );
});

test("conversion: depends_on in both syntaxes, undefined services and cycles refused", () => {
  const s = convertStack(
    load(`services:
  web:
    command: [run]
    depends_on: [cache]
  api:
    command: [run]
    depends_on:
      db: {condition: service_healthy, restart: true}
      cache: {condition: service_started, required: false}
  db:
    command: [run]
  cache:
    command: [run]
`),
    "st",
    ctx,
  );
  const by = new Map(s.services.map((x) => [x.name, x]));
  assert.deepEqual(by.get("st_web")!.dependsOn, [
    { service: "st_cache", condition: "service_started", required: true },
  ]);
  assert.deepEqual(by.get("st_api")!.dependsOn, [
    { service: "st_db", condition: "service_healthy", required: true },
    { service: "st_cache", condition: "service_started", required: false },
  ]);
  assert.equal(by.get("st_db")!.dependsOn, undefined);
  assert.deepEqual(s.warnings, [
    "Ignoring options shoal does not support yet: services.api.depends_on.db.restart\n",
  ]);

  assert.throws(
    () => convertStack(load("services:\n  a:\n    command: x\n    depends_on: [b]\n"), "st", ctx),
    /services\.a\.depends_on: service "a" depends on undefined service "b": invalid compose project/,
  );
  assert.throws(
    () =>
      convertStack(
        load(
          "services:\n  a:\n    command: x\n    depends_on: [b]\n  b:\n    command: x\n    depends_on: [c]\n  c:\n    command: x\n    depends_on: [a]\n",
        ),
        "st",
        ctx,
      ),
    /dependency cycle detected: a -> b -> c -> a/,
  );
});

test("conversion: the external host network runs a service on the host's network", () => {
  const s = convertStack(
    load(`services:
  a:
    command: [run]
  b:
    command: [run]
    networks: [mesh]
networks:
  default:
    external: true
    name: host
  mesh: {}
`),
    "st",
    ctx,
  );
  const by = new Map(s.services.map((x) => [x.name, x]));
  assert.equal(by.get("st_a")!.networks, undefined);
  assert.equal(by.get("st_a")!.network, "host");
  assert.deepEqual(by.get("st_b")!.networks, [{ target: "st_mesh", aliases: ["b"] }]);
  assert.deepEqual(
    s.networks.map((n) => n.name),
    ["st_mesh"],
  );
  assert.throws(
    () =>
      convertStack(
        load(
          "services:\n  a:\n    command: x\n    networks: [h, m]\nnetworks:\n  h: {external: true, name: host}\n  m: {}\n",
        ),
        "st",
        ctx,
      ),
    /services\.a\.networks: the host network cannot be combined with other networks/,
  );
});

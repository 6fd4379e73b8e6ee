// A loaded compose file as what a stack deploys, by Swarm's rules: services `<stack>_<name>`, a
// default network `<stack>_default` (overlay) for services that name none, networks
// `<stack>_<name>` unless external or named, the label com.docker.stack.namespace on each, and
// each service also reachable on its networks by its short name. A service with an image runs
// on the docker driver; one without, its entrypoint + command on the process driver. Pure: the
// caller gives the file, the stack's name and a way to read env_files.

import { join, isAbsolute, resolve } from "node:path";
import { homedir } from "node:os";
import { parseGoDuration } from "../../lib/duration.js";
import {
  NAMESPACE_LABEL,
  defaultRollbackConfig,
  defaultServiceSpec,
  updateConfigOf,
} from "../../api/model.js";
import type { NetworkCreate, SecretCreate } from "../../api/http.js";
import type {
  AutoscalePolicy,
  HealthConfig,
  NetworkAttachmentConfig,
  PortConfig,
  RollbackConfig,
  Mount,
  SecretReference,
  ServiceSpec,
  UpdateConfig,
} from "../../api/types.js";
import { ComposeError } from "../errors.js";
import { percentValue } from "../args.js";
import { parseEnvFile, type Lookup } from "./interpolate.js";
import { DEPRECATED, UNSUPPORTED, toMap, type Dict } from "./load.js";

export { NAMESPACE_LABEL };

export interface StackNetwork {
  /** The network's name in the swarm. */
  name: string;
  external: boolean;
  /** What `network create` sends (not for external networks). */
  create: NetworkCreate;
}

/** A top-level secret or config of the file. */
export interface StackFile {
  /** Its name in the swarm: `name:`, the key (external) or `<stack>_<key>`. */
  name: string;
  external: boolean;
  /** What `secret create` / `config create` sends (not for external ones). */
  create?: SecretCreate;
}

export interface Stack {
  services: ServiceSpec[];
  /** The networks the services use, in the order they are first named. */
  networks: StackNetwork[];
  /** The file's top-level secrets and configs, by key order. */
  secrets: StackFile[];
  configs: StackFile[];
  /** Lines to print on stderr (ignored keys). */
  warnings: string[];
}

export interface ConvertContext {
  /** Where env_file paths are relative to. */
  workingDir: string;
  /** The environment (bare names in `environment:` take their value from it). */
  lookup: Lookup;
  readFile: (path: string) => string;
  /** Reads a secret's or config's `file:` as bytes (default: readFile's text). */
  readBytes?: (path: string) => Buffer;
}

// Keys shoal does not carry out yet, warned about like Swarm's ignored ones.
const NOT_YET = [
  "labels",
  "tmpfs",
  "ulimits",
  "init",
  "hostname",
  "dns",
  "extra_hosts",
  "read_only",
  "stdin_open",
  "tty",
  "isolation",
  "logging",
  "sysctls",
  "platform",
  "pull_policy",
  "develop",
  "profiles",
  "scale",
];

const err = (path: string, message: string) => new ComposeError(`${path}: ${message}`);

/** `a "b c" 'd'` → [a, b c, d], as compose splits a string command. */
export function shellSplit(s: string, path: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && (s[i + 1] === '"' || s[i + 1] === "\\"))
        cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw err(path, `unterminated quote in ${JSON.stringify(s)}`);
  if (inWord) out.push(cur);
  return out;
}

function words(v: unknown, path: string): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v === "string") return shellSplit(v, path);
  return (v as unknown[]).map(String);
}

function duration(v: unknown, path: string): number {
  if (typeof v === "number") return v / 1e6; // a number is nanoseconds, as in Go
  const ms = parseGoDuration(String(v));
  if (ms === undefined || ms < 0) throw err(path, `invalid duration ${JSON.stringify(v)}`);
  return ms;
}

/** "50M", "1gb", "512k", or a number of bytes. */
export function bytes(v: unknown, path: string): number {
  if (typeof v === "number") return v;
  const m = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)b?$/i.exec(String(v).trim());
  if (!m) throw err(path, `invalid size ${JSON.stringify(v)}`);
  const unit = m[2]!.toLowerCase();
  const mult = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[unit]!;
  return Math.round(Number(m[1]) * mult);
}

function cpus(v: unknown, path: string): number {
  const n = Number(v);
  if (v === "" || !Number.isFinite(n) || n < 0)
    throw err(path, `invalid cpus ${JSON.stringify(v)}`);
  return n;
}

function portNumber(v: unknown, path: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw err(path, `invalid port ${JSON.stringify(v)}`);
  return n;
}

/** `ports:` in the short syntax (`"8080:80"`, `"127.0.0.1:8080:80/udp"`, ranges) or the long one. */
export function convertPorts(list: unknown[], path: string): PortConfig[] {
  const out: PortConfig[] = [];
  list.forEach((item, i) => {
    const at = `${path}.${i}`;
    if (item !== null && typeof item === "object") {
      const o = item as Dict;
      if (o["published"] === undefined || o["published"] === "")
        throw err(at, "a published port is needed (shoal does not choose one)");
      out.push({
        target: portNumber(o["target"], `${at}.target`),
        published: portNumber(o["published"], `${at}.published`),
        protocol: ((o["protocol"] as string | undefined) ?? "tcp") as "tcp" | "udp",
        mode: ((o["mode"] as string | undefined) ?? "ingress") as "ingress" | "host",
      });
      if (!["tcp", "udp"].includes(out[out.length - 1]!.protocol))
        throw err(`${at}.protocol`, "must be tcp or udp");
      if (!["ingress", "host"].includes(out[out.length - 1]!.mode))
        throw err(`${at}.mode`, "must be ingress or host");
      return;
    }
    const s = String(item);
    const m =
      /^(?:(?:\[[^\]]*\]|[^:[\]]*):)??(?:(\d+)(?:-(\d+))?:)?(\d+)(?:-(\d+))?(?:\/(tcp|udp))?$/.exec(
        s,
      );
    if (!m)
      throw err(
        at,
        `invalid port ${JSON.stringify(s)}: expected [HOST:]PUBLISHED:TARGET[/PROTOCOL]`,
      );
    if (m[1] === undefined)
      throw err(
        at,
        `port ${JSON.stringify(s)}: a published port is needed (shoal does not choose one)`,
      );
    const pub0 = portNumber(m[1], at);
    const pub1 = m[2] !== undefined ? portNumber(m[2], at) : pub0;
    const tgt0 = portNumber(m[3], at);
    const tgt1 = m[4] !== undefined ? portNumber(m[4], at) : tgt0;
    if (pub1 - pub0 !== tgt1 - tgt0 || pub1 < pub0)
      throw err(at, `port ranges of ${JSON.stringify(s)} do not match`);
    for (let k = 0; k <= tgt1 - tgt0; k++) {
      out.push({
        published: pub0 + k,
        target: tgt0 + k,
        protocol: (m[5] as "tcp" | "udp") ?? "tcp",
        mode: "ingress",
      });
    }
  });
  return out;
}

/**
 * `update_config:` or `rollback_config:` over `base`: parallelism, delay, monitor,
 * max_failure_ratio, failure_action (one of `actions`) and order.
 */
function rolloutConfig<C extends UpdateConfig | RollbackConfig>(
  d: Dict,
  at: string,
  base: C,
  actions: readonly C["failureAction"][],
): C {
  const c = { ...base };
  if (d["parallelism"] !== undefined) c.parallelism = Number(d["parallelism"]);
  if (d["delay"] !== undefined) c.delayMs = duration(d["delay"], `${at}.delay`);
  if (d["monitor"] !== undefined) c.monitorMs = duration(d["monitor"], `${at}.monitor`);
  if (d["max_failure_ratio"] !== undefined) c.maxFailureRatio = Number(d["max_failure_ratio"]);
  const fa = d["failure_action"];
  if (fa !== undefined) {
    if (!(actions as readonly unknown[]).includes(fa))
      throw err(
        `${at}.failure_action`,
        `must be ${actions.slice(0, -1).join(", ")} or ${actions.at(-1)!}`,
      );
    c.failureAction = fa as C["failureAction"];
  }
  const order = d["order"];
  if (order !== undefined) {
    if (order !== "stop-first" && order !== "start-first")
      throw err(`${at}.order`, "must be stop-first or start-first");
    c.order = order;
  }
  return c;
}

/** `healthcheck:` as the spec's HealthConfig, with Docker's defaults. */
export function convertHealthcheck(h: Dict, path: string): HealthConfig {
  let test: string[];
  if (h["disable"] === true) test = ["NONE"];
  else if (typeof h["test"] === "string") test = ["CMD-SHELL", h["test"]];
  else if (Array.isArray(h["test"])) test = h["test"].map(String);
  else throw err(`${path}.test`, "a test is needed (or disable: true)");
  if (test[0] !== "NONE" && test[0] !== "CMD" && test[0] !== "CMD-SHELL")
    throw err(
      `${path}.test`,
      `must start with CMD, CMD-SHELL or NONE, not ${JSON.stringify(test[0])}`,
    );
  const d = (key: string, dflt: number) =>
    h[key] === undefined ? dflt : duration(h[key], `${path}.${key}`);
  return {
    test,
    intervalMs: d("interval", 30_000),
    timeoutMs: d("timeout", 30_000),
    retries: h["retries"] === undefined ? 3 : Number(h["retries"]),
    startPeriodMs: d("start_period", 0),
    startIntervalMs: d("start_interval", 5000),
  };
}

function environment(svc: Dict, path: string, ctx: ConvertContext): Record<string, string> {
  const env: Record<string, string> = {};
  const files = svc["env_file"];
  const list = files === undefined ? [] : Array.isArray(files) ? files : [files];
  list.forEach((f, i) => {
    const file = typeof f === "string" ? f : String((f as Dict)["path"]);
    const required = typeof f === "string" ? true : (f as Dict)["required"] !== false;
    const full = isAbsolute(file) ? file : join(ctx.workingDir, file);
    let text: string;
    try {
      text = ctx.readFile(full);
    } catch {
      if (!required) return;
      throw err(`${path}.env_file.${i}`, `env file ${full} not found`);
    }
    Object.assign(env, parseEnvFile(text, full, ctx.lookup));
  });
  for (const [k, v] of Object.entries(toMap(svc["environment"]))) {
    if (v === null || v === undefined) {
      const x = ctx.lookup(k);
      if (x !== undefined) env[k] = x;
    } else env[k] = String(v);
  }
  return env;
}

/** The networks a service names: `[a, b]` or `{a: {aliases: [...]}, b: null}`. */
function serviceNetworks(svc: Dict): Array<[string, string[]]> {
  const n = svc["networks"];
  if (n === undefined || n === null) return [];
  if (Array.isArray(n)) return n.map((x) => [String(x), []]);
  return Object.entries(n as Dict).map(([k, v]) => [
    k,
    ((v as Dict | null)?.["aliases"] as string[] | undefined)?.map(String) ?? [],
  ]);
}

/** The stack's networks by their key in the file: the swarm name and whether external. */
function stackNetworks(config: Dict, stack: string): Map<string, StackNetwork> {
  const out = new Map<string, StackNetwork>();
  const decl = { default: {}, ...((config["networks"] ?? {}) as Dict) } as Dict;
  for (const [key, raw] of Object.entries(decl)) {
    const n = (raw ?? {}) as Dict;
    const { name, external } = swarmName(key, n, stack);
    const path = `networks.${key}`;
    const driver = String(n["driver"] ?? "overlay");
    if (!external && driver !== "overlay" && driver !== "bridge")
      throw err(
        `${path}.driver`,
        `driver ${JSON.stringify(driver)} is not supported: overlay or bridge`,
      );
    const ipam = ((n["ipam"] as Dict | undefined)?.["config"] as Dict[] | undefined) ?? [];
    const subnet = ipam[0]?.["subnet"];
    const gateway = ipam[0]?.["gateway"];
    out.set(key, {
      name,
      external,
      create: {
        name,
        driver: driver as "overlay" | "bridge",
        ...(subnet !== undefined ? { subnet: String(subnet) } : {}),
        ...(gateway !== undefined ? { gateway: String(gateway) } : {}),
        attachable: n["attachable"] === true,
        internal: n["internal"] === true,
        labels: { ...(toMap(n["labels"]) as Record<string, string>), [NAMESPACE_LABEL]: stack },
      },
    });
  }
  return out;
}

/** Whether the swarm network name is the predefined host network, declared external. */
function declaredHost(declared: Map<string, StackNetwork>, name: string): boolean {
  return name === "host" && [...declared.values()].some((n) => n.external && n.name === name);
}

/**
 * A top-level network, volume, secret or config's name in the swarm, by Swarm's rule: its
 * `name:`, else an external one's own name (`external.name`, or the key), else `<stack>_<key>`.
 */
function swarmName(key: string, x: Dict, stack: string): { name: string; external: boolean } {
  const ext = x["external"];
  const external = ext === true || (ext !== null && typeof ext === "object");
  const extName = typeof ext === "object" && ext !== null ? (ext as Dict)["name"] : undefined;
  return { name: String(x["name"] ?? extName ?? (external ? key : `${stack}_${key}`)), external };
}

/** The file's top-level `secrets:` or `configs:` by key: the swarm name and the data to create. */
function stackFiles(
  config: Dict,
  stack: string,
  kind: "secret" | "config",
  ctx: ConvertContext,
): Map<string, StackFile> {
  const out = new Map<string, StackFile>();
  for (const [key, raw] of Object.entries((config[`${kind}s`] ?? {}) as Dict)) {
    const x = (raw ?? {}) as Dict;
    const path = `${kind}s.${key}`;
    const { name, external } = swarmName(key, x, stack);
    if (external) {
      out.set(key, { name, external });
      continue;
    }
    let data: Buffer;
    if (typeof x["file"] === "string") {
      const file = isAbsolute(x["file"]) ? x["file"] : join(ctx.workingDir, x["file"]);
      try {
        data = ctx.readBytes ? ctx.readBytes(file) : Buffer.from(ctx.readFile(file));
      } catch (e) {
        throw err(`${path}.file`, `cannot read ${file}: ${(e as Error).message}`);
      }
    } else if (typeof x["environment"] === "string") {
      const v = ctx.lookup(x["environment"]);
      if (v === undefined)
        throw err(`${path}.environment`, `environment variable ${x["environment"]} is not set`);
      data = Buffer.from(v);
    } else if (kind === "config" && typeof x["content"] === "string") {
      data = Buffer.from(x["content"]);
    } else {
      throw err(
        path,
        `a ${kind} needs file${kind === "config" ? ", content" : ""}, environment or external`,
      );
    }
    out.set(key, {
      name,
      external,
      create: {
        name,
        labels: { ...(toMap(x["labels"]) as Record<string, string>), [NAMESPACE_LABEL]: stack },
        data: data.toString("base64"),
      },
    });
  }
  return out;
}

/** A compose `mode:`: a string as Go reads it (`0440` octal), a number whose digits are all
 * octal as the YAML 1.1 octal Docker's loader reads (`0440` arrives here as 440). */
function fileMode(v: unknown, path: string): number {
  let m = NaN;
  if (typeof v === "number" && Number.isInteger(v) && v >= 0)
    m = /^[0-7]+$/.test(String(v)) ? parseInt(String(v), 8) : v;
  else if (typeof v === "string") {
    const t = v.trim();
    m = /^0[oO]?[0-7]+$/.test(t)
      ? parseInt(t.replace(/^0[oO]?/, "") || "0", 8)
      : /^[0-9]+$/.test(t)
        ? parseInt(t, 10)
        : NaN;
  }
  if (!Number.isInteger(m) || m > 0o777) throw err(path, "must be a file mode like 0440");
  return m;
}

/** A service's `secrets:`/`configs:`, short (`- name`) or long (`- source: name ...`) syntax. */
function serviceFiles(
  svc: Dict,
  kind: "secret" | "config",
  declared: ReadonlyMap<string, StackFile>,
  path: string,
  short: string,
): SecretReference[] | undefined {
  const list = svc[`${kind}s`];
  if (!Array.isArray(list) || list.length === 0) return undefined;
  return list.map((item: unknown, i) => {
    const at = `${path}.${kind}s[${i}]`;
    const long = typeof item === "object" && item !== null ? (item as Dict) : { source: item };
    const key = String(long["source"] ?? "");
    const x = declared.get(key);
    if (!x)
      throw err(at, `service "${short}" refers to undefined ${kind} ${key}: invalid compose file`);
    const target = long["target"] !== undefined ? String(long["target"]) : undefined;
    return {
      source: x.name,
      target: target ?? (kind === "secret" ? key : `/${key}`),
      uid: long["uid"] !== undefined ? String(long["uid"]) : "0",
      gid: long["gid"] !== undefined ? String(long["gid"]) : "0",
      mode: long["mode"] !== undefined ? fileMode(long["mode"], `${at}.mode`) : 0o444,
    };
  });
}

function sortedKeysPresent(keys: string[], svc: Dict): string[] {
  return keys.filter((k) => Object.hasOwn(svc, k));
}

/** The merged compose file as the stack's services and networks. */
export function convertStack(config: Dict, stack: string, ctx: ConvertContext): Stack {
  const warnings: string[] = [];
  const services = (config["services"] ?? {}) as Dict;
  const declared = stackNetworks(config, stack);
  const secrets = stackFiles(config, stack, "secret", ctx);
  const configs = stackFiles(config, stack, "config", ctx);
  const used: StackNetwork[] = [];
  const use = (n: StackNetwork) => {
    if (!used.includes(n)) used.push(n);
  };

  const unsupported = new Set<string>();
  const deprecated = new Set<string>();
  const notYet = new Set<string>();
  for (const [name, raw] of Object.entries(services)) {
    const svc = (raw ?? {}) as Dict;
    sortedKeysPresent(UNSUPPORTED, svc).forEach((k) => unsupported.add(k));
    Object.keys(DEPRECATED)
      .filter((k) => Object.hasOwn(svc, k))
      .forEach((k) => deprecated.add(k));
    sortedKeysPresent(NOT_YET, svc).forEach((k) => notYet.add(`services.${name}.${k}`));
    for (const [dep, cond] of Object.entries(dependsOnMap(svc["depends_on"])))
      if (Object.hasOwn(cond, "restart")) notYet.add(`services.${name}.depends_on.${dep}.restart`);
  }
  if (unsupported.size > 0)
    warnings.push(`Ignoring unsupported options: ${[...unsupported].sort().join(", ")}\n`);
  if (deprecated.size > 0)
    warnings.push(
      `Ignoring deprecated options:\n\n${[...deprecated]
        .sort()
        .map((k) => `${k}: ${DEPRECATED[k]!}`)
        .join("\n\n")}\n`,
    );
  if (notYet.size > 0)
    warnings.push(
      `Ignoring options shoal does not support yet: ${[...notYet].sort().join(", ")}\n`,
    );

  const specs: ServiceSpec[] = [];
  for (const [short, raw] of Object.entries(services).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  )) {
    const svc = (raw ?? {}) as Dict;
    const path = `services.${short}`;
    const spec = defaultServiceSpec(`${stack}_${short}`);
    const deploy = (svc["deploy"] ?? {}) as Dict;

    const image = svc["image"];
    const entrypoint = words(svc["entrypoint"], `${path}.entrypoint`);
    const command = words(svc["command"], `${path}.command`);
    if (typeof image === "string" && image !== "") {
      if (entrypoint.length > 0)
        throw err(
          `${path}.entrypoint`,
          "is not supported with an image (shoal's docker driver sets the command only)",
        );
      spec.driver = "docker";
      spec.image = image;
      spec.command = command;
    } else {
      spec.command = [...entrypoint, ...command];
      if (spec.command.length === 0)
        throw err(
          path,
          "a service without an image needs a command or an entrypoint (process driver)",
        );
    }
    spec.env = environment(svc, path, ctx);
    if (svc["working_dir"] !== undefined) spec.workdir = String(svc["working_dir"]);
    if (svc["stop_signal"] !== undefined) spec.stopSignal = String(svc["stop_signal"]);
    if (svc["stop_grace_period"] !== undefined)
      spec.stopGracePeriodMs = duration(svc["stop_grace_period"], `${path}.stop_grace_period`);
    if (svc["healthcheck"] !== undefined && svc["healthcheck"] !== null)
      spec.healthcheck = convertHealthcheck(svc["healthcheck"] as Dict, `${path}.healthcheck`);
    if (Array.isArray(svc["ports"])) spec.ports = convertPorts(svc["ports"], `${path}.ports`);
    if (svc["user"] !== undefined && svc["user"] !== null) spec.user = String(svc["user"]);
    if (Array.isArray(svc["volumes"])) {
      const mounts = convertVolumes(svc["volumes"], `${path}.volumes`, config, stack, ctx);
      if (mounts.length > 0) spec.mounts = mounts;
    }

    // deploy:
    const mode = String(deploy["mode"] ?? "replicated");
    if (mode === "global") {
      if (deploy["replicas"] !== undefined)
        throw err(`${path}.deploy.replicas`, "replicas can only be used with replicated mode");
      spec.mode = { global: {} };
    } else if (mode === "replicated") {
      spec.mode = {
        replicated: { replicas: deploy["replicas"] === undefined ? 1 : Number(deploy["replicas"]) },
      };
    } else
      throw err(
        `${path}.deploy.mode`,
        `mode ${JSON.stringify(mode)} is not supported: replicated or global`,
      );
    spec.labels = {
      ...(toMap(deploy["labels"]) as Record<string, string>),
      [NAMESPACE_LABEL]: stack,
    };
    if (spec.driver === "docker") spec.labels["com.docker.stack.image"] = spec.image;
    const res = (deploy["resources"] ?? {}) as Dict;
    for (const [key, target] of [
      ["limits", spec.limits],
      ["reservations", spec.reservations],
    ] as const) {
      const r = (res[key] ?? {}) as Dict;
      if (r["cpus"] !== undefined)
        target.cpus = cpus(r["cpus"], `${path}.deploy.resources.${key}.cpus`);
      if (r["memory"] !== undefined)
        target.memoryBytes = bytes(r["memory"], `${path}.deploy.resources.${key}.memory`);
    }
    const rp = deploy["restart_policy"] as Dict | undefined;
    if (rp) {
      const at = `${path}.deploy.restart_policy`;
      const condition = String(rp["condition"] ?? "any");
      if (condition !== "none" && condition !== "on-failure" && condition !== "any")
        throw err(
          `${at}.condition`,
          `must be none, on-failure or any, not ${JSON.stringify(condition)}`,
        );
      spec.restartPolicy = {
        condition,
        delayMs: rp["delay"] === undefined ? 5000 : duration(rp["delay"], `${at}.delay`),
        maxAttempts: rp["max_attempts"] === undefined ? 0 : Number(rp["max_attempts"]),
        windowMs: rp["window"] === undefined ? 0 : duration(rp["window"], `${at}.window`),
      };
    }
    const uc = deploy["update_config"] as Dict | undefined;
    if (uc) {
      const at = `${path}.deploy.update_config`;
      const actions = ["pause", "continue", "rollback"] as const;
      spec.update = rolloutConfig(uc, at, updateConfigOf(spec), actions);
    }
    const rc = deploy["rollback_config"] as Dict | undefined;
    if (rc) {
      const at = `${path}.deploy.rollback_config`;
      const actions = ["pause", "continue"] as const;
      spec.rollback = rolloutConfig(rc, at, defaultRollbackConfig(), actions);
    }
    const placement = (deploy["placement"] ?? {}) as Dict;
    spec.constraints = ((placement["constraints"] as unknown[] | undefined) ?? []).map(String);
    const prefs = (placement["preferences"] as Dict[] | undefined) ?? [];
    if (prefs.length > 0) {
      spec.preferences = prefs.map((p, i) => {
        if (p === null || typeof p !== "object" || typeof p["spread"] !== "string")
          throw err(`${path}.deploy.placement.preferences.${i}`, "must be {spread: LABEL}");
        return { spread: p["spread"] };
      });
    }
    const maxPerNode = placement["max_replicas_per_node"];
    if (maxPerNode !== undefined && Number(maxPerNode) > 0) {
      if (!("replicated" in spec.mode))
        throw err(
          `${path}.deploy.placement.max_replicas_per_node`,
          "can only be used with replicated mode",
        );
      spec.maxReplicasPerNode = Number(maxPerNode);
    }
    const em = deploy["endpoint_mode"];
    if (em !== undefined) {
      if (em !== "vip" && em !== "dnsrr")
        throw err(`${path}.deploy.endpoint_mode`, "must be vip or dnsrr");
      spec.endpointMode = em;
    }

    // networks: the default one unless the service names some; its short name is an alias.
    const named = serviceNetworks(svc);
    const attach: NetworkAttachmentConfig[] = [];
    for (const [key, aliases] of named.length > 0
      ? named
      : ([["default", []]] as Array<[string, string[]]>)) {
      const n = declared.get(key);
      if (!n)
        throw err(
          `${path}.networks`,
          `service "${short}" refers to undefined network ${key}: invalid compose file`,
        );
      if (!(n.external && n.name === "host")) use(n);
      attach.push({ target: n.name, aliases: [short, ...aliases.filter((a) => a !== short)] });
    }
    // Swarm's way to run a stack's service on the host's network: the predefined network
    // `host`, declared external. It is the service's only network, and the spec says none.
    const onHost = attach.filter((a) => declaredHost(declared, a.target));
    if (onHost.length > 0) {
      if (attach.length > 1)
        throw err(`${path}.networks`, "the host network cannot be combined with other networks");
      delete spec.networks;
    } else spec.networks = attach;
    const deps = convertDependsOn(svc["depends_on"], short, services, stack, path);
    if (deps.length > 0) spec.dependsOn = deps;
    if (svc[AUTOSCALE_KEY] !== undefined && svc[AUTOSCALE_KEY] !== null) {
      const hasReplicas = deploy["replicas"] !== undefined;
      spec.autoscale = convertAutoscale(svc[AUTOSCALE_KEY], `${path}.${AUTOSCALE_KEY}`);
      if (!("replicated" in spec.mode))
        throw err(`${path}.${AUTOSCALE_KEY}`, "can only be used with replicated mode");
      // Without deploy.replicas the service starts at its min.
      if (!hasReplicas) spec.mode = { replicated: { replicas: spec.autoscale.min } };
    }
    const secretRefs = serviceFiles(svc, "secret", secrets, path, short);
    if (secretRefs) spec.secrets = secretRefs;
    const configRefs = serviceFiles(svc, "config", configs, path, short);
    if (configRefs) spec.configs = configRefs;
    specs.push(spec);
  }
  checkDependencyCycles(services);
  return {
    services: specs,
    networks: used,
    secrets: [...secrets.values()],
    configs: [...configs.values()],
    warnings,
  };
}

/** shoal's compose extension for autoscaling (compose allows `x-` keys in a service). */
export const AUTOSCALE_KEY = "x-shoal-autoscale";

/**
 * `x-shoal-autoscale: {min, max, cpu, memory, rps, stabilization}` as a spec's policy: min 1
 * unless given, max required, at least one target; cpu and memory are percents (`70%` or 70),
 * rps a number per task, stabilization a duration. The manager checks the rest (min <= max...).
 */
export function convertAutoscale(v: unknown, path: string): AutoscalePolicy {
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw err(path, "must be a mapping (min, max, cpu, memory, rps, stabilization)");
  const x = v as Dict;
  const known = ["min", "max", "cpu", "memory", "rps", "stabilization"];
  for (const k of Object.keys(x)) {
    if (!known.includes(k)) throw err(`${path}.${k}`, `is not a known key (${known.join(", ")})`);
  }
  const count = (k: string): number | undefined => {
    if (x[k] === undefined) return undefined;
    const n = Number(x[k]);
    if (!Number.isInteger(n) || n < 1)
      throw err(`${path}.${k}`, `must be a whole number >= 1, not ${JSON.stringify(x[k])}`);
    return n;
  };
  const max = count("max");
  if (max === undefined) throw err(`${path}.max`, "is required");
  const a: AutoscalePolicy = { min: count("min") ?? 1, max };
  const pct = (k: "cpu" | "memory"): number | undefined => {
    if (x[k] === undefined) return undefined;
    const n = typeof x[k] === "number" || typeof x[k] === "string" ? percentValue(x[k]) : null;
    if (n === null || n <= 0)
      throw err(`${path}.${k}`, `must be a percent like 70%, not ${JSON.stringify(x[k])}`);
    return n;
  };
  const cpu = pct("cpu");
  if (cpu !== undefined) a.cpuPercent = cpu;
  const memory = pct("memory");
  if (memory !== undefined) a.memoryPercent = memory;
  if (x["rps"] !== undefined) {
    const n = Number(x["rps"]);
    if (typeof x["rps"] === "boolean" || !Number.isFinite(n) || n <= 0)
      throw err(
        `${path}.rps`,
        `must be a number of requests per second > 0, not ${JSON.stringify(x["rps"])}`,
      );
    a.rps = n;
  }
  if (a.cpuPercent === undefined && a.memoryPercent === undefined && a.rps === undefined)
    throw err(path, "needs a target: cpu, memory or rps");
  if (x["stabilization"] !== undefined)
    a.stabilizationMs = duration(x["stabilization"], `${path}.stabilization`);
  return a;
}

/** `depends_on` in either syntax as a map: a list of names, or names → their settings. */
function dependsOnMap(v: unknown): Record<string, Dict> {
  if (v === undefined || v === null) return {};
  if (Array.isArray(v)) return Object.fromEntries(v.map((n) => [String(n), {}]));
  return Object.fromEntries(Object.entries(v as Dict).map(([k, c]) => [k, (c ?? {}) as Dict]));
}

const CONDITIONS = ["service_started", "service_healthy", "service_completed_successfully"];

function convertDependsOn(
  v: unknown,
  short: string,
  services: Dict,
  stack: string,
  path: string,
): NonNullable<ServiceSpec["dependsOn"]> {
  return Object.entries(dependsOnMap(v)).map(([dep, c]) => {
    if (!Object.hasOwn(services, dep))
      throw err(
        `${path}.depends_on`,
        `service "${short}" depends on undefined service "${dep}": invalid compose project`,
      );
    const condition = String(c["condition"] ?? "service_started");
    if (!CONDITIONS.includes(condition))
      throw err(
        `${path}.depends_on.${dep}.condition`,
        `must be one of ${CONDITIONS.join(", ")}, not ${JSON.stringify(condition)}`,
      );
    return {
      service: `${stack}_${dep}`,
      condition: condition as NonNullable<ServiceSpec["dependsOn"]>[number]["condition"],
      required: c["required"] === undefined ? true : c["required"] !== false,
    };
  });
}

/** Refuses a file whose services wait for each other in a circle (nothing would ever start). */
function checkDependencyCycles(services: Dict): void {
  const edges = new Map(
    Object.entries(services).map(([name, svc]) => [
      name,
      Object.keys(dependsOnMap(((svc ?? {}) as Dict)["depends_on"])),
    ]),
  );
  const done = new Set<string>();
  const visit = (name: string, path: string[]): void => {
    if (done.has(name)) return;
    const at = path.indexOf(name);
    if (at >= 0)
      throw new ComposeError(
        `dependency cycle detected: ${[...path.slice(at), name].join(" -> ")}`,
      );
    for (const next of edges.get(name) ?? []) visit(next, [...path, name]);
    done.add(name);
  };
  for (const name of [...edges.keys()].sort()) visit(name, []);
}
/**
 * A service's `volumes:` as mounts, by `docker stack deploy`'s rules. Short syntax
 * `[SOURCE:]TARGET[:MODE]`: a source that starts with `.`, `/` or `~` is a bind (a relative one
 * taken from the compose file's directory), any other a named volume; no source, an anonymous
 * volume; MODE `ro` makes it read-only. Long syntax: type, source, target, read_only. A named
 * volume must be declared in the top-level `volumes:` and is `<stack>_<name>` there (its `name:`
 * if it has one, the name itself if it is external).
 */
export function convertVolumes(
  list: unknown[],
  path: string,
  config: Dict,
  stack: string,
  ctx: ConvertContext,
): Mount[] {
  const declared = (config["volumes"] ?? {}) as Dict;
  const hostPath = (p: string): string => {
    if (p === "~" || p.startsWith("~/")) return join(homedir(), p.slice(1));
    return resolve(ctx.workingDir, p);
  };
  return list.map((raw, i): Mount => {
    const at = `${path}[${i}]`;
    let m: Mount;
    if (typeof raw === "string") {
      const parts = raw.split(":");
      if (parts.length > 3 || parts.some((p) => p === ""))
        throw err(at, `invalid volume spec ${JSON.stringify(raw)}`);
      const [a, b, mode] = parts as [string, string | undefined, string | undefined];
      const source = b === undefined ? "" : a;
      const target = b === undefined ? a : b;
      const modes = (mode ?? "").split(",");
      const bind = /^[./~]/.test(source);
      m = {
        type: bind ? "bind" : "volume",
        source,
        target,
        readOnly: modes.includes("ro"),
      };
    } else {
      const v = (raw ?? {}) as Dict;
      const type = String(v["type"] ?? "volume");
      if (type !== "bind" && type !== "volume" && type !== "tmpfs")
        throw err(
          `${at}.type`,
          `mount type ${JSON.stringify(type)} is not supported: bind, volume or tmpfs`,
        );
      m = {
        type,
        source: v["source"] === undefined ? "" : String(v["source"]),
        target: String(v["target"] ?? ""),
        readOnly: v["read_only"] === true,
      };
    }
    if (!m.target.startsWith("/"))
      throw err(at, `invalid mount target, must be an absolute path: ${m.target}`);
    if (m.type === "bind") {
      if (m.source === "") throw err(at, "invalid bind source, source cannot be empty");
      m.source = hostPath(m.source);
    } else if (m.type === "tmpfs") {
      if (m.source !== "") throw err(at, "invalid tmpfs source, source must be empty");
    } else if (m.source !== "") {
      if (!Object.hasOwn(declared, m.source))
        throw err(at, `undefined volume ${JSON.stringify(m.source)}`);
      const vol = (declared[m.source] ?? {}) as Dict;
      const driver = vol["driver"];
      if (driver !== undefined && driver !== null && driver !== "local")
        throw err(
          `volumes.${m.source}.driver`,
          `volume driver ${JSON.stringify(driver)} is not supported (local volumes only)`,
        );
      m.source = swarmName(m.source, vol, stack).name;
    }
    return m;
  });
}

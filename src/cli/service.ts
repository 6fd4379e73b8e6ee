// `shoal service create|ls|ps|scale|update|rollback|rm|inspect|logs`: Docker's `docker service`
// words, flags and table columns, against the daemon's API. Loaded only by these commands.

import { prettyFigures, serviceFigures, type ServiceFigures } from "./stats.js";
import type { TaskStatsRow } from "../api/http.js";
import { resolve as resolvePath } from "node:path";
import { call, stream } from "./api-client.js";
import { routesFromLabels } from "../api/route-labels.js";
import {
  parseBytesFlag,
  parseCpusFlag,
  parseDurationFlag,
  parseIntFlag,
  parseKeyValues,
  percentValue,
  parseGoBool,
} from "./args.js";
import { UsageError } from "./errors.js";
import { applyFilters, labelMatches, parseFilters, type FilterKeys } from "./filter.js";
import { capitalize, formatBytes, formatGoDuration, humanDuration } from "./format.js";
import { rowFormatter, type ListFormat, type Row } from "./template.js";
import {
  autoscaleOf,
  defaultServiceSpec,
  isTerminal,
  networkOf,
  rollbackConfigOf,
  updateConfigOf,
} from "../api/model.js";
import type {
  Mount,
  NetworkAttachmentConfig,
  Node,
  PlacementPreference,
  PortConfig,
  Service,
  ServiceSpec,
  Task,
  SecretReference as FileReference,
} from "../api/types.js";

type ServiceSummary = Service & { running: number; desired: number };

/** The flags that shape a spec, on create and update (commander's camelCase names). */
export interface SpecOptions {
  replicas?: string;
  mode?: string;
  restartCondition?: string;
  restartDelay?: string;
  restartMaxAttempts?: string;
  restartWindow?: string;
  limitCpu?: string;
  limitMemory?: string;
  reserveCpu?: string;
  reserveMemory?: string;
  workdir?: string;
  stopGracePeriod?: string;
  stopSignal?: string;
  network?: string[];
  endpointMode?: string;
  driver?: string;
  image?: string;
  updateParallelism?: string;
  updateDelay?: string;
  updateOrder?: string;
  updateFailureAction?: string;
  updateMonitor?: string;
  updateMaxFailureRatio?: string;
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthRetries?: string;
  healthStartPeriod?: string;
  healthStartInterval?: string;
  /** false when `--no-healthcheck` is given (commander's negatable flag). */
  healthcheck?: boolean;
  replicasMaxPerNode?: string;
  rollbackParallelism?: string;
  rollbackDelay?: string;
  rollbackOrder?: string;
  rollbackFailureAction?: string;
  rollbackMonitor?: string;
  rollbackMaxFailureRatio?: string;
  /** `-u, --user name|uid[:group|gid]` ("" clears it on update). */
  user?: string;
  autoscaleMin?: string;
  autoscaleMax?: string;
  autoscaleCpu?: string;
  autoscaleMemory?: string;
  autoscaleRps?: string;
  autoscaleStabilization?: string;
  /** `--autoscale-off` (update): the service is no longer autoscaled. */
  autoscaleOff?: boolean;
  detach?: boolean;
  quiet?: boolean;
}

export interface CreateOptions extends SpecOptions {
  name?: string;
  env?: string[];
  publish?: string[];
  label?: string[];
  constraint?: string[];
  placementPref?: string[];
  mount?: string[];
  secret?: string[];
  config?: string[];
}

export interface UpdateOptions extends SpecOptions {
  envAdd?: string[];
  envRm?: string[];
  labelAdd?: string[];
  labelRm?: string[];
  publishAdd?: string[];
  publishRm?: string[];
  constraintAdd?: string[];
  constraintRm?: string[];
  placementPrefAdd?: string[];
  placementPrefRm?: string[];
  networkAdd?: string[];
  networkRm?: string[];
  mountAdd?: string[];
  mountRm?: string[];
  secretAdd?: string[];
  secretRm?: string[];
  configAdd?: string[];
  configRm?: string[];
  args?: string;
  command?: string;
  force?: boolean;
  rollback?: boolean;
}

export interface ListOptions {
  quiet?: boolean;
  format?: string;
  filter?: string[];
}

/** `-p 8080:80`, `-p 8080:80/udp`, `-p published=8080,target=80,mode=host`. */
export function parsePort(s: string): PortConfig {
  if (s.includes("=")) {
    const o = Object.fromEntries(s.split(",").map((kvp) => kvp.split("=", 2) as [string, string]));
    const p: PortConfig = {
      published: Number(o["published"]),
      target: Number(o["target"]),
      protocol: (o["protocol"] as "tcp" | "udp") ?? "tcp",
      mode: (o["mode"] as "ingress" | "host") ?? "ingress",
    };
    if (!Number.isInteger(p.published) || !Number.isInteger(p.target))
      throw new UsageError(`invalid publish "${s}"`);
    return p;
  }
  const m = /^(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(s);
  if (!m) throw new UsageError(`invalid publish "${s}": expected PUBLISHED:TARGET[/PROTOCOL]`);
  return {
    published: Number(m[1]),
    target: Number(m[2]),
    protocol: (m[3] as "tcp" | "udp") ?? "tcp",
    mode: "ingress",
  };
}

/**
 * `--network NAME[,alias=A...]` or the long syntax `name=NAME,alias=A` (also `target=`); the
 * name may be a network's name, id or id prefix (the manager resolves it).
 */
export function parseNetworkAttachment(v: string): NetworkAttachmentConfig {
  let target = "";
  const aliases: string[] = [];
  v.split(",").forEach((part, i) => {
    const eq = part.indexOf("=");
    if (eq < 0) {
      if (i !== 0 || part === "")
        throw new UsageError(`invalid network "${v}": expected NAME[,alias=ALIAS]`);
      target = part;
      return;
    }
    const key = part.slice(0, eq).trim().toLowerCase();
    const val = part.slice(eq + 1);
    if ((key === "name" || key === "target") && val !== "") target = val;
    else if (key === "alias" && val !== "") aliases.push(val);
    else
      throw new UsageError(`invalid network "${v}": unknown or empty field "${key}" (name, alias)`);
  });
  if (target === "") throw new UsageError(`invalid network "${v}": the network's name is missing`);
  return aliases.length > 0 ? { target, aliases } : { target };
}

/**
 * `--mount type=bind,source=/a,target=/b[,readonly]` as Docker parses it: `src=`, `dst=` and
 * `destination=` too, `ro`/`readonly` alone or `=BOOL`, the type volume unless given; a source
 * `.` or `./x` is taken from the current directory. Errors are Docker's, in pflag's frame.
 */
export function parseMount(v: string, flag = "--mount"): Mount {
  const fail = (why: string): never => {
    throw new UsageError(`invalid argument ${JSON.stringify(v)} for "${flag}" flag: ${why}`);
  };
  const m: Mount = { type: "volume", source: "", target: "", readOnly: false };
  for (const field of v.split(",")) {
    const eq = field.indexOf("=");
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    const val = eq < 0 ? "" : field.slice(eq + 1);
    if (eq < 0) {
      if (key === "readonly" || key === "ro") m.readOnly = true;
      else fail(`invalid field '${field}' must be a key=value pair`);
      continue;
    }
    switch (key) {
      case "type": {
        const t = val.toLowerCase();
        if (t !== "bind" && t !== "volume" && t !== "tmpfs") fail(`invalid mount type: ${val}`);
        m.type = t as Mount["type"];
        break;
      }
      case "source":
      case "src":
        m.source = val === "." || val.startsWith("./") ? resolvePath(val) : val;
        break;
      case "target":
      case "dst":
      case "destination":
        m.target = val;
        break;
      case "readonly":
      case "ro": {
        const b = parseGoBool(val);
        if (b === null) fail(`invalid value for ${key}: ${val}`);
        m.readOnly = b!;
        break;
      }
      default:
        fail(`unexpected key '${key}' in '${field}'`);
    }
  }
  if (m.target === "") fail("target is required");
  return m;
}

/** The spec with the flags applied (the flags every create and update share). */
export function applySpecOptions(
  spec: ServiceSpec,
  o: SpecOptions,
  creating: boolean,
): ServiceSpec {
  const s = structuredClone(spec);
  if (o.mode !== undefined) {
    if (!creating) throw new UsageError("--mode can only be set when the service is created");
    if (o.mode === "global") s.mode = { global: {} };
    else if (o.mode !== "replicated")
      throw new UsageError(`invalid mode "${o.mode}": replicated or global`);
  }
  if (o.replicas !== undefined) {
    if (!("replicated" in s.mode))
      throw new UsageError("replicas can only be used with replicated mode");
    s.mode = { replicated: { replicas: parseIntFlag("--replicas", o.replicas) } };
  }
  const rc = o.restartCondition;
  if (rc !== undefined) {
    if (rc !== "none" && rc !== "on-failure" && rc !== "any") {
      throw new UsageError(`invalid restart condition "${rc}": none, on-failure or any`);
    }
    s.restartPolicy.condition = rc;
  }
  if (o.restartDelay !== undefined)
    s.restartPolicy.delayMs = parseDurationFlag("--restart-delay", o.restartDelay);
  if (o.restartMaxAttempts !== undefined)
    s.restartPolicy.maxAttempts = parseIntFlag("--restart-max-attempts", o.restartMaxAttempts);
  if (o.restartWindow !== undefined)
    s.restartPolicy.windowMs = parseDurationFlag("--restart-window", o.restartWindow);
  if (o.limitCpu !== undefined) s.limits.cpus = parseCpusFlag("--limit-cpu", o.limitCpu);
  if (o.limitMemory !== undefined)
    s.limits.memoryBytes = parseBytesFlag("--limit-memory", o.limitMemory);
  if (o.reserveCpu !== undefined)
    s.reservations.cpus = parseCpusFlag("--reserve-cpu", o.reserveCpu);
  if (o.reserveMemory !== undefined)
    s.reservations.memoryBytes = parseBytesFlag("--reserve-memory", o.reserveMemory);
  if (o.workdir !== undefined) s.workdir = o.workdir;
  if (o.stopGracePeriod !== undefined)
    s.stopGracePeriodMs = parseDurationFlag("--stop-grace-period", o.stopGracePeriod);
  if (o.stopSignal !== undefined) s.stopSignal = o.stopSignal;
  if (o.image !== undefined) {
    s.image = o.image;
    s.driver = "docker";
  }
  if (o.driver !== undefined) {
    if (o.driver !== "process" && o.driver !== "docker") {
      throw new UsageError(`invalid driver "${o.driver}": process or docker`);
    }
    s.driver = o.driver;
  }
  // `--network host|bridge` is the task's network mode; any other name a network to join.
  const joins: NetworkAttachmentConfig[] = [];
  for (const v of o.network ?? []) {
    if (v === "host" || v === "bridge") s.network = v;
    else joins.push(parseNetworkAttachment(v));
  }
  if (joins.length > 0) s.networks = creating ? joins : [...(s.networks ?? []), ...joins];
  if (o.endpointMode !== undefined) {
    if (o.endpointMode !== "vip" && o.endpointMode !== "dnsrr") {
      throw new UsageError(`invalid endpoint mode "${o.endpointMode}": vip or dnsrr`);
    }
    s.endpointMode = o.endpointMode;
  }
  applyHealthOptions(s, o);
  if (o.user !== undefined) {
    if (o.user === "") delete s.user;
    else s.user = o.user;
  }
  s.update = updateConfigOf(s);
  if (o.updateParallelism !== undefined)
    s.update.parallelism = parseIntFlag("--update-parallelism", o.updateParallelism);
  if (o.updateDelay !== undefined)
    s.update.delayMs = parseDurationFlag("--update-delay", o.updateDelay);
  const uo = o.updateOrder;
  if (uo !== undefined) {
    if (uo !== "stop-first" && uo !== "start-first") {
      throw new UsageError(`invalid update order "${uo}": stop-first or start-first`);
    }
    s.update.order = uo;
  }
  const ufa = o.updateFailureAction;
  if (ufa !== undefined) {
    if (ufa !== "pause" && ufa !== "continue" && ufa !== "rollback") {
      throw new UsageError(`invalid update failure action "${ufa}": pause, continue or rollback`);
    }
    s.update.failureAction = ufa;
  }
  if (o.updateMonitor !== undefined)
    s.update.monitorMs = parseDurationFlag("--update-monitor", o.updateMonitor);
  const ur = o.updateMaxFailureRatio;
  if (ur !== undefined) {
    const r = Number(ur);
    if (ur.trim() === "" || !Number.isFinite(r) || r < 0 || r > 1) {
      throw new UsageError(`invalid argument "${ur}" for "--update-max-failure-ratio" flag`);
    }
    s.update.maxFailureRatio = r;
  }
  applyPlacementOptions(s, o);
  applyRollbackOptions(s, o);
  applyAutoscaleOptions(s, o, creating);
  return s;
}

/**
 * The `--autoscale-*` flags: only what is given changes (on update, the rest of the policy
 * stays); a new policy's min is 1 and its max is required; a target of 0 removes that target;
 * `--autoscale-off` removes the policy. The manager checks the result (min <= max, a target...).
 */
export function applyAutoscaleOptions(s: ServiceSpec, o: SpecOptions, creating: boolean): void {
  const given =
    o.autoscaleMin !== undefined ||
    o.autoscaleMax !== undefined ||
    o.autoscaleCpu !== undefined ||
    o.autoscaleMemory !== undefined ||
    o.autoscaleRps !== undefined ||
    o.autoscaleStabilization !== undefined;
  if (o.autoscaleOff) {
    if (creating) throw new UsageError("--autoscale-off can only be used with service update");
    if (given) throw new UsageError("--autoscale-off conflicts with --autoscale-* options");
    delete s.autoscale;
    return;
  }
  if (!given) return;
  if (!("replicated" in s.mode))
    throw new UsageError("autoscaling can only be used with replicated mode");
  const count = (flag: string, v: string): number => {
    const n = parseIntFlag(flag, v);
    if (n < 1) throw new UsageError(`invalid argument "${v}" for "${flag}" flag: must be >= 1`);
    return n;
  };
  const target = (flag: string, v: string, percent: boolean): number => {
    const n = percent ? percentValue(v) : /^\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : null;
    if (n === null)
      throw new UsageError(
        `invalid argument "${v}" for "${flag}" flag: expected ${percent ? "a percent like 70%" : "requests per second per task, like 100"}`,
      );
    return n;
  };
  const cur = s.autoscale;
  const max = o.autoscaleMax !== undefined ? count("--autoscale-max", o.autoscaleMax) : cur?.max;
  if (max === undefined) throw new UsageError("--autoscale-max is required to autoscale a service");
  const a: NonNullable<ServiceSpec["autoscale"]> = {
    ...cur,
    min: o.autoscaleMin !== undefined ? count("--autoscale-min", o.autoscaleMin) : (cur?.min ?? 1),
    max,
  };
  const targets = [
    ["--autoscale-cpu", o.autoscaleCpu, "cpuPercent", true],
    ["--autoscale-memory", o.autoscaleMemory, "memoryPercent", true],
    ["--autoscale-rps", o.autoscaleRps, "rps", false],
  ] as const;
  for (const [flag, v, key, percent] of targets) {
    if (v === undefined) continue;
    const n = target(flag, v, percent);
    if (n > 0) a[key] = n;
    else delete a[key];
  }
  if (a.cpuPercent === undefined && a.memoryPercent === undefined && a.rps === undefined)
    throw new UsageError(
      "autoscaling needs a target: --autoscale-cpu, --autoscale-memory or --autoscale-rps",
    );
  if (o.autoscaleStabilization !== undefined)
    a.stabilizationMs = parseDurationFlag("--autoscale-stabilization", o.autoscaleStabilization);
  s.autoscale = a;
  // A new autoscaled service starts at its min unless --replicas says otherwise.
  if (creating && o.replicas === undefined) s.mode = { replicated: { replicas: a.min } };
}

/** `--placement-pref spread=node.labels.zone`, with Docker's words for a bad one. */
export function parsePlacementPref(v: string): PlacementPreference {
  const at = v.indexOf("=");
  if (at < 0) {
    throw new UsageError(
      `invalid argument "${v}" for "--placement-pref" flag: placement preference must be of the format "<strategy>=<arg>"`,
    );
  }
  const strategy = v.slice(0, at);
  if (strategy !== "spread") {
    throw new UsageError(
      `invalid argument "${v}" for "--placement-pref" flag: unsupported placement preference ${strategy} (only spread is supported)`,
    );
  }
  return { spread: v.slice(at + 1) };
}

/** `--replicas-max-per-node N` (0: no limit), for replicated services only, as Docker. */
function applyPlacementOptions(s: ServiceSpec, o: SpecOptions): void {
  if (o.replicasMaxPerNode === undefined) return;
  const n = parseIntFlag("--replicas-max-per-node", o.replicasMaxPerNode);
  if (!("replicated" in s.mode))
    throw new UsageError("replicas-max-per-node can only be used with replicated mode");
  if (n > 0) s.maxReplicasPerNode = n;
  else delete s.maxReplicasPerNode;
}

/** The `--rollback-*` flags: the spec's rollback settings (Swarm's defaults for the rest). */
function applyRollbackOptions(s: ServiceSpec, o: SpecOptions): void {
  const r = rollbackConfigOf(s);
  if (o.rollbackParallelism !== undefined)
    r.parallelism = parseIntFlag("--rollback-parallelism", o.rollbackParallelism);
  if (o.rollbackDelay !== undefined)
    r.delayMs = parseDurationFlag("--rollback-delay", o.rollbackDelay);
  const ro = o.rollbackOrder;
  if (ro !== undefined) {
    if (ro !== "stop-first" && ro !== "start-first") {
      throw new UsageError(`invalid rollback order "${ro}": stop-first or start-first`);
    }
    r.order = ro;
  }
  const rfa = o.rollbackFailureAction;
  if (rfa !== undefined) {
    if (rfa !== "pause" && rfa !== "continue") {
      throw new UsageError(`invalid rollback failure action "${rfa}": pause or continue`);
    }
    r.failureAction = rfa;
  }
  if (o.rollbackMonitor !== undefined)
    r.monitorMs = parseDurationFlag("--rollback-monitor", o.rollbackMonitor);
  const rr = o.rollbackMaxFailureRatio;
  if (rr !== undefined) {
    const x = Number(rr);
    if (rr.trim() === "" || !Number.isFinite(x) || x < 0 || x > 1) {
      throw new UsageError(`invalid argument "${rr}" for "--rollback-max-failure-ratio" flag`);
    }
    r.maxFailureRatio = x;
  }
  s.rollback = r;
}

/**
 * The `--health-*` flags, as Docker applies them on create and update: only what is given
 * changes (a duration or count not given stays as it was, 0 on a new check: Docker's default);
 * `--health-cmd CMD` is a ["CMD-SHELL", CMD] test (an empty CMD clears the test);
 * `--no-healthcheck` is ["NONE"] and goes with no other health flag.
 */
function applyHealthOptions(s: ServiceSpec, o: SpecOptions): void {
  const given =
    o.healthCmd !== undefined ||
    o.healthInterval !== undefined ||
    o.healthTimeout !== undefined ||
    o.healthRetries !== undefined ||
    o.healthStartPeriod !== undefined ||
    o.healthStartInterval !== undefined;
  if (o.healthcheck === false) {
    if (given) throw new UsageError("--no-healthcheck conflicts with --health-* options");
    s.healthcheck = { ...noHealthcheck(), test: ["NONE"] };
    return;
  }
  if (!given) return;
  const h = { ...noHealthcheck(), ...(s.healthcheck ?? {}) };
  if (h.test[0] === "NONE") h.test = [];
  const positive = (flag: string, v: string | undefined, cur: number): number => {
    if (v === undefined) return cur;
    const ms = parseDurationFlag(flag, v);
    if (ms < 0)
      throw new UsageError(
        `invalid argument "${v}" for "${flag}" flag: duration cannot be negative`,
      );
    return ms;
  };
  h.intervalMs = positive("--health-interval", o.healthInterval, h.intervalMs);
  h.timeoutMs = positive("--health-timeout", o.healthTimeout, h.timeoutMs);
  h.startPeriodMs = positive("--health-start-period", o.healthStartPeriod, h.startPeriodMs);
  h.startIntervalMs = positive("--health-start-interval", o.healthStartInterval, h.startIntervalMs);
  if (o.healthRetries !== undefined) h.retries = parseIntFlag("--health-retries", o.healthRetries);
  if (o.healthCmd !== undefined) h.test = o.healthCmd === "" ? [] : ["CMD-SHELL", o.healthCmd];
  s.healthcheck = h;
}

/** A health config with no test and every setting 0 (Docker's defaults apply). */
function noHealthcheck(): NonNullable<ServiceSpec["healthcheck"]> {
  return {
    test: [],
    intervalMs: 0,
    timeoutMs: 0,
    retries: 0,
    startPeriodMs: 0,
    startIntervalMs: 0,
  };
}

/** The spec `service create` sends: defaults, the flags, and the command. */
export function createSpec(o: CreateOptions, command: string[], name: string): ServiceSpec {
  const spec = applySpecOptions({ ...defaultServiceSpec(name), command }, o, true);
  spec.env = { ...spec.env, ...parseKeyValues(o.env ?? [], "env") };
  spec.labels = { ...spec.labels, ...parseKeyValues(o.label ?? [], "label") };
  spec.ports = (o.publish ?? []).map(parsePort);
  spec.constraints = o.constraint ?? [];
  const prefs = (o.placementPref ?? []).map(parsePlacementPref);
  if (prefs.length > 0) spec.preferences = prefs;
  const mounts = (o.mount ?? []).map((m) => parseMount(m));
  if (mounts.length > 0) spec.mounts = mounts;
  if (o.secret?.length) spec.secrets = o.secret.map((v) => parseFileReference("secret", v));
  if (o.config?.length) spec.configs = o.config.map((v) => parseFileReference("config", v));
  return spec;
}

/**
 * `--secret NAME` or `--secret source=NAME,target=T,uid=U,gid=G,mode=0400` (and `--config`), as
 * Docker parses them: target defaults to the name (a config's to `/NAME`), uid and gid to "0",
 * mode to 0444; a mode is read as Go does with base 0 (`0400` octal, `256` decimal).
 */
export function parseFileReference(kind: "secret" | "config", v: string): FileReference {
  let source = "";
  let target = "";
  let uid = "0";
  let gid = "0";
  let mode = 0o444;
  if (!v.includes("=")) source = v;
  else {
    for (const field of v.split(",")) {
      const eq = field.indexOf("=");
      const key = eq < 0 ? field : field.slice(0, eq).trim().toLowerCase();
      const value = eq < 0 ? "" : field.slice(eq + 1).trim();
      if (eq < 0 || value === "")
        throw new UsageError(`invalid field '${field}' must be a key=value pair`);
      if (key === "source" || key === "src") source = value;
      else if (key === "target") target = value;
      else if (key === "uid") uid = value;
      else if (key === "gid") gid = value;
      else if (key === "mode") {
        const m = /^0[xX][0-9a-fA-F]+$/.test(value)
          ? parseInt(value.slice(2), 16)
          : /^0[oO]?[0-7]+$/.test(value)
            ? parseInt(value.replace(/^0[oO]?/, "") || "0", 8)
            : /^[0-9]+$/.test(value)
              ? parseInt(value, 10)
              : NaN;
        if (!Number.isInteger(m) || m > 0o777)
          throw new UsageError(`invalid mode '${value}' for ${kind} (e.g. 0400)`);
        mode = m;
      } else throw new UsageError(`invalid field in ${kind} request: ${key}`);
    }
  }
  if (source === "") throw new UsageError(`invalid ${kind} "${v}": source is required`);
  for (const [what, id] of [
    ["uid", uid],
    ["gid", gid],
  ] as const) {
    if (!/^[0-9]+$/.test(id)) throw new UsageError(`invalid ${what} '${id}' for ${kind}`);
  }
  if (target === "") target = kind === "secret" ? source : `/${source}`;
  return { source, target, uid, gid, mode };
}

/** The references after `--X-rm` (by name) and `--X-add` (an added one replaces any with its
 * source or target). */
export function updatedReferences(
  kind: "secret" | "config",
  cur: readonly FileReference[] | undefined,
  add: readonly string[] | undefined,
  rm: readonly string[] | undefined,
): FileReference[] | undefined {
  if (!add?.length && !rm?.length) return cur ? [...cur] : undefined;
  const added = (add ?? []).map((v) => parseFileReference(kind, v));
  const gone = new Set(rm ?? []);
  const kept = (cur ?? []).filter(
    (r) =>
      !gone.has(r.source) &&
      !(r.id !== undefined && gone.has(r.id)) &&
      !added.some((a) => a.source === r.source || a.target === r.target),
  );
  const out = [...kept, ...added];
  return out.length > 0 ? out : undefined;
}

/** The spec `service update` sends: the current one with the flags applied. */
export function updatedSpec(cur: ServiceSpec, o: UpdateOptions, command: string[]): ServiceSpec {
  let spec = applySpecOptions(cur, o, false);
  spec.env = { ...spec.env, ...parseKeyValues(o.envAdd ?? [], "env") };
  for (const k of o.envRm ?? []) delete spec.env[k.split("=")[0]!];
  spec.labels = { ...spec.labels, ...parseKeyValues(o.labelAdd ?? [], "label") };
  for (const k of o.labelRm ?? []) delete spec.labels[k];
  const rmPorts = o.publishRm ?? [];
  spec.ports = [
    ...spec.ports.filter((x) => !rmPorts.some((r) => Number(r.split(":")[0]) === x.published)),
    ...(o.publishAdd ?? []).map(parsePort),
  ];
  spec.constraints = [
    ...spec.constraints.filter((c) => !(o.constraintRm ?? []).includes(c)),
    ...(o.constraintAdd ?? []),
  ];
  if (o.placementPrefAdd?.length || o.placementPrefRm?.length) {
    // Docker's order: the removals, then the additions.
    const rm = new Set((o.placementPrefRm ?? []).map((v) => parsePlacementPref(v).spread));
    const prefs = [
      ...(spec.preferences ?? []).filter((p) => !rm.has(p.spread)),
      ...(o.placementPrefAdd ?? []).map(parsePlacementPref),
    ];
    if (prefs.length > 0) spec.preferences = prefs;
    else delete spec.preferences;
  }
  if (o.networkAdd?.length || o.networkRm?.length) {
    // --network-rm takes ids here (update() resolves names first).
    const rm = new Set(o.networkRm ?? []);
    const kept = (spec.networks ?? []).filter((n) => !rm.has(n.target));
    const networks = [...kept, ...(o.networkAdd ?? []).map(parseNetworkAttachment)];
    if (networks.length > 0) spec.networks = networks;
    else delete spec.networks;
  }
  if (o.mountAdd?.length || o.mountRm?.length) {
    // Docker's order: removed targets go, then an added mount replaces one on its target.
    const added = (o.mountAdd ?? []).map((m) => parseMount(m, "--mount-add"));
    const gone = new Set([...(o.mountRm ?? []), ...added.map((m) => m.target)]);
    const mounts = [...(spec.mounts ?? []).filter((m) => !gone.has(m.target)), ...added];
    if (mounts.length > 0) spec.mounts = mounts;
    else delete spec.mounts;
  }
  if (o.secretAdd?.length || o.secretRm?.length) {
    const secrets = updatedReferences("secret", spec.secrets, o.secretAdd, o.secretRm);
    if (secrets) spec.secrets = secrets;
    else delete spec.secrets;
  }
  if (o.configAdd?.length || o.configRm?.length) {
    const configs = updatedReferences("config", spec.configs, o.configAdd, o.configRm);
    if (configs) spec.configs = configs;
    else delete spec.configs;
  }
  if (o.command !== undefined)
    spec.command = [
      ...splitWords(o.command),
      ...(o.args !== undefined ? splitWords(o.args) : spec.command.slice(1)),
    ];
  else if (o.args !== undefined) spec.command = [spec.command[0]!, ...splitWords(o.args)];
  if (command.length > 0) spec.command = command;
  if (o.force)
    spec = { ...spec, labels: { ...spec.labels, "shoal.force-update": String(Date.now()) } };
  return spec;
}

function splitWords(s: string): string[] {
  return s.split(/\s+/).filter(Boolean);
}

// ---- create / update / scale / rollback ----------------------------------------------------------

/**
 * What the HTTP router will not do with a service's Traefik or interlock labels, one
 * `WARNING:` line each (written at deploy, so nothing is ignored silently).
 */
export function routeLabelWarnings(spec: { name: string; labels: Record<string, string> }): string {
  const { warnings, errors } = routesFromLabels(spec.name, spec.labels);
  return [
    ...errors.map((e) => `WARNING: service ${spec.name}: ${e}; its route is left out\n`),
    ...warnings.map((w) => `WARNING: service ${spec.name}: ${w}\n`),
  ].join("");
}

export async function create(command: string[], o: CreateOptions): Promise<number> {
  if (command.length === 0 && o.image === undefined)
    throw new UsageError(
      '"shoal service create" requires a command or an image: shoal service create [OPTIONS] [--image IMAGE] [--] [COMMAND] [ARG...]',
    );
  const name = o.name ?? `svc-${Math.random().toString(36).slice(2, 8)}`;
  const spec = createSpec(o, command, name);
  process.stderr.write(routeLabelWarnings(spec));
  const s = await call<Service>("POST", "/v1/services", { spec });
  process.stdout.write(`${s.id}\n`);
  if (!o.detach) return progress(s.id, !!o.quiet);
  return 0;
}

export async function update(ref: string, command: string[], o: UpdateOptions): Promise<number> {
  if (o.rollback) return rollback(ref, !!o.detach, !!o.quiet);
  const cur = await call<ServiceSummary>("GET", `/v1/services/${encodeURIComponent(ref)}`);
  if (o.networkRm?.length) {
    // Names or id prefixes to the ids the spec holds.
    const ids: string[] = [];
    for (const n of o.networkRm) {
      ids.push((await call<{ Id: string }>("GET", `/v1/networks/${encodeURIComponent(n)}`)).Id);
    }
    o = { ...o, networkRm: ids };
  }
  const spec = updatedSpec(cur.spec, o, command);
  process.stderr.write(routeLabelWarnings(spec));
  const s = await call<Service>("POST", `/v1/services/${encodeURIComponent(ref)}/update`, { spec });
  process.stdout.write(`${s.spec.name}\n`);
  if (!o.detach) return progress(s.id, !!o.quiet);
  return 0;
}

/** `service rollback` and `service update --rollback`: the previous spec, rolled out. */
export async function rollback(ref: string, detach: boolean, quiet: boolean): Promise<number> {
  const s = await call<Service>("POST", `/v1/services/${encodeURIComponent(ref)}/rollback`);
  process.stdout.write(`${s.spec.name}\n`);
  if (!detach) {
    const code = await progress(s.id, quiet);
    if (code === 0 && !quiet) process.stdout.write("rollback: rollback complete\n");
    return code;
  }
  return 0;
}

/** `SERVICE=REPLICAS` pairs, checked before anything is scaled. */
export function parseScaleArgs(args: string[]): Array<[string, number]> {
  return args.map((a) => {
    const m = /^([^=]+)=(.*)$/.exec(a);
    if (!m) throw new UsageError(`invalid scale specifier '${a}': expected SERVICE=REPLICAS`);
    if (!/^\d+$/.test(m[2]!))
      throw new UsageError(`invalid replicas value ${m[2]}: must be a non-negative integer`);
    return [m[1]!, Number(m[2])];
  });
}

export async function scale(args: string[], o: { detach?: boolean }): Promise<number> {
  const pairs = parseScaleArgs(args);
  let failed = false;
  const ids: string[] = [];
  for (const [name, n] of pairs) {
    try {
      const s = await call<Service>("POST", `/v1/services/${encodeURIComponent(name)}/scale`, {
        replicas: n,
      });
      process.stdout.write(`${name} scaled to ${n}\n`);
      ids.push(s.id);
    } catch (err) {
      failed = true;
      process.stderr.write(`${(err as Error).message}\n`);
    }
  }
  if (!o.detach) for (const id of ids) await progress(id, false);
  return failed ? 1 : 0;
}

/**
 * Remembers which task errors were printed, so each distinct error is printed once however many
 * times the tasks fail with it (a crash-looping task fails with the same error every restart).
 */
export class ErrorDigest {
  private readonly seen = new Set<string>();

  /** The lines to print for these failed tasks: errors not printed before. */
  lines(failed: Task[]): string[] {
    const out: string[] = [];
    for (const t of failed) {
      const err = t.status.err;
      if (!err || this.seen.has(err)) continue;
      this.seen.add(err);
      out.push(`${t.serviceName}.${t.slot > 0 ? t.slot : t.nodeId}: ${err}`);
    }
    return out;
  }
}

/** Prints Swarm-like progress until the service's tasks converge (running == desired). */
export async function progress(id: string, quiet: boolean): Promise<number> {
  const startedAt = Date.now();
  const deadline = startedAt + 120_000;
  const errors = new ErrorDigest();
  let last = "";
  let rollbackSeen = "";
  for (;;) {
    const s = await call<ServiceSummary>("GET", `/v1/services/${id}`);
    const tasks = await call<Task[]>("GET", `/v1/tasks?service=${id}`);
    const live = tasks.filter((t) => !isTerminal(t.status.state) && t.desiredState === "running");
    const running = live.filter(
      (t) => t.status.state === "running" && t.specVersion === s.version,
    ).length;
    const extra = tasks.filter(
      (t) => t.status.state === "running" && t.desiredState !== "running",
    ).length;
    const line = `overall progress: ${running} out of ${s.desired} tasks`;
    if (!quiet && line !== last) {
      process.stdout.write(line + "\n");
      last = line;
    }
    const st = s.updateStatus;
    if (st && st.version === s.version) {
      if (st.state === "paused" || st.state === "rollback_paused") {
        process.stderr.write(`service ${s.spec.name}: ${st.message}\n`);
        return 1;
      }
      if (st.state === "rollback_started" && st.message !== rollbackSeen) {
        rollbackSeen = st.message;
        if (!quiet) process.stdout.write(`rollback: ${st.message}\n`);
      }
    }
    if (running === s.desired && extra === 0) {
      if (!quiet) process.stdout.write(`verify: Service ${s.spec.name} converged\n`);
      return 0;
    }
    // Failures of this version since the wait began (2 s of slack for the daemon's clock).
    const failed = tasks.filter(
      (t) =>
        t.status.state === "failed" &&
        t.specVersion === s.version &&
        t.status.timestamp >= startedAt - 2000,
    );
    if (!quiet) for (const l of errors.lines(failed)) process.stdout.write(l + "\n");
    if (Date.now() > deadline) {
      process.stderr.write(`service ${s.spec.name} did not converge in 120s\n`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---- ls / ps -------------------------------------------------------------------------------------

function portsColumn(spec: ServiceSpec): string {
  return spec.ports
    .filter((p) => p.mode === "ingress")
    .map((p) => `*:${p.published}->${p.target}/${p.protocol}`)
    .join(", ");
}

function commandColumn(spec: ServiceSpec): string {
  const c = spec.driver === "docker" ? spec.image : spec.command.join(" ");
  return c.length > 40 ? c.slice(0, 39) + "…" : c;
}

/** `service ls` columns; the fields are Docker's (`--format '{{.Name}} {{.Replicas}}'`). */
export const SERVICE_LS_FORMAT: ListFormat = {
  defaultTable: "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}",
  headers: {
    ID: "ID",
    Name: "NAME",
    Mode: "MODE",
    Replicas: "REPLICAS",
    Image: "IMAGE/COMMAND",
    Ports: "PORTS",
  },
};

export const SERVICE_FILTERS: FilterKeys<ServiceSummary> = {
  id: (s, v) => s.id.startsWith(v),
  name: (s, v) => s.spec.name.startsWith(v),
  label: (s, v) => labelMatches(s.spec.labels, v),
  mode: (s, v) => {
    if (v !== "replicated" && v !== "global")
      throw new UsageError(`invalid filter 'mode=${v}': replicated or global`);
    return v in s.spec.mode;
  },
};

export function serviceRows(list: ServiceSummary[]): Row[] {
  return [...list]
    .sort((a, b) => a.spec.name.localeCompare(b.spec.name))
    .map((s) => ({
      ID: s.id.slice(0, 12),
      Name: s.spec.name,
      Mode: "replicated" in s.spec.mode ? "replicated" : "global",
      // Docker's words for a limit: "6/6 (max 1 per node)".
      Replicas:
        `${s.running}/${s.desired}` +
        (s.spec.maxReplicasPerNode ? ` (max ${s.spec.maxReplicasPerNode} per node)` : ""),
      Image: commandColumn(s.spec),
      Ports: portsColumn(s.spec),
    }));
}

/**
 * How to print rows as --quiet, --format or the default table say; a bad --format fails here,
 * before the daemon is asked anything.
 */
export function rowPrinter(o: ListOptions, list: ListFormat): (rows: Row[]) => void {
  if (o.quiet) {
    if (o.format !== undefined)
      process.stderr.write(
        "WARNING: Ignoring custom format, because both --format and --quiet are set.\n",
      );
    return (rows) => {
      for (const r of rows) process.stdout.write(`${String(r["ID"])}\n`);
    };
  }
  const format = rowFormatter(o.format, list);
  return (rows) => process.stdout.write(format(rows));
}

export async function ls(o: ListOptions): Promise<number> {
  const filters = parseFilters(o.filter ?? [], SERVICE_FILTERS, "service ls");
  const print = rowPrinter(o, SERVICE_LS_FORMAT);
  const list = await call<ServiceSummary[]>("GET", "/v1/services");
  print(serviceRows(applyFilters(list, filters, SERVICE_FILTERS)));
  return 0;
}

export const SERVICE_PS_FORMAT: ListFormat = {
  defaultTable:
    "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}",
  headers: {
    ID: "ID",
    Name: "NAME",
    Image: "IMAGE/COMMAND",
    Node: "NODE",
    DesiredState: "DESIRED STATE",
    CurrentState: "CURRENT STATE",
    Error: "ERROR",
    Ports: "PORTS",
  },
};

export interface TaskWithNode {
  task: Task;
  node: Node | undefined;
}

function taskName(t: Task): string {
  return t.slot > 0 ? `${t.serviceName}.${t.slot}` : `${t.serviceName}.${t.nodeId.slice(0, 25)}`;
}

/** What `desired-state=` means for shoal's desired states (Docker: running, shutdown, accepted). */
const DESIRED_STATES: Record<string, string[]> = {
  running: ["running"],
  shutdown: ["shutdown", "remove"],
  accepted: ["ready"],
};

export const TASK_FILTERS: FilterKeys<TaskWithNode> = {
  id: ({ task }, v) => task.id.startsWith(v),
  name: ({ task }, v) => taskName(task).startsWith(v),
  node: ({ task, node }, v) => task.nodeId.startsWith(v) || node?.hostname === v,
  "desired-state": ({ task }, v) => {
    const states = DESIRED_STATES[v];
    if (!states)
      throw new UsageError(
        `invalid filter 'desired-state=${v}': ${Object.keys(DESIRED_STATES).join(", ")}`,
      );
    return states.includes(task.desiredState);
  },
};

/** `service ps` rows: per slot (global: per node) the newest task, then its history as `\_`. */
export function taskRows(tasks: TaskWithNode[], o: { noTrunc?: boolean; now: number }): Row[] {
  const groups = new Map<string, TaskWithNode[]>();
  for (const x of tasks) {
    const t = x.task;
    const key = `${t.serviceId}/${t.slot > 0 ? `s${t.slot}` : `n${t.nodeId}`}`;
    groups.set(key, [...(groups.get(key) ?? []), x]);
  }
  const keys = [...groups.keys()].sort((a, b) => {
    const ga = groups.get(a)![0]!.task;
    const gb = groups.get(b)![0]!.task;
    return (
      ga.serviceName.localeCompare(gb.serviceName) ||
      ga.slot - gb.slot ||
      ga.nodeId.localeCompare(gb.nodeId)
    );
  });
  const rows: Row[] = [];
  for (const k of keys) {
    const list = groups.get(k)!.sort((a, b) => b.task.createdAt - a.task.createdAt);
    list.forEach(({ task: t, node }, i) => {
      const err = t.status.err;
      rows.push({
        ID: o.noTrunc ? t.id : t.id.slice(0, 12),
        Name: i === 0 ? taskName(t) : ` \\_ ${taskName(t)}`,
        Image: commandColumn(t.spec),
        Node: node?.hostname ?? "",
        DesiredState: capitalize(t.desiredState === "remove" ? "shutdown" : t.desiredState),
        CurrentState: `${capitalize(t.status.state)} ${humanDuration(o.now - t.status.timestamp).toLowerCase()} ago${healthSuffix(t)}`,
        Error: err ? `"${o.noTrunc || err.length <= 28 ? err : err.slice(0, 27) + "…"}"` : "",
        Ports: Object.entries(t.hostPorts)
          .map(([target, host]) => `*:${host}->${target}/tcp`)
          .join(","),
      });
    });
  }
  return rows;
}

/**
 * A live task's health as `docker ps` shows it in STATUS: " (health: starting)", " (healthy)",
 * " (unhealthy)"; nothing for a task without a check or one that has ended.
 */
function healthSuffix(t: Task): string {
  const h = t.status.health;
  if (!h || isTerminal(t.status.state)) return "";
  return h.status === "starting" ? " (health: starting)" : ` (${h.status})`;
}

export async function ps(refs: string[], o: ListOptions & { noTrunc?: boolean }): Promise<number> {
  const filters = parseFilters(o.filter ?? [], TASK_FILTERS, "service ps");
  const print = rowPrinter(o, SERVICE_PS_FORMAT);
  const nodes = new Map((await call<Node[]>("GET", "/v1/nodes")).map((n) => [n.id, n]));
  const all: TaskWithNode[] = [];
  for (const ref of refs) {
    const tasks = await call<Task[]>("GET", `/v1/tasks?service=${encodeURIComponent(ref)}`);
    all.push(...tasks.map((task) => ({ task, node: nodes.get(task.nodeId) })));
  }
  // -q prints the task ids in full, as shoal always did.
  const rows = taskRows(applyFilters(all, filters, TASK_FILTERS), {
    noTrunc: !!o.noTrunc || !!o.quiet,
    now: Date.now(),
  });
  print(rows);
  return 0;
}

// ---- inspect / rm / logs -----------------------------------------------------------------------

export async function inspect(refs: string[], o: { pretty?: boolean }): Promise<number> {
  const out: ServiceSummary[] = [];
  for (const ref of refs)
    out.push(await call<ServiceSummary>("GET", `/v1/services/${encodeURIComponent(ref)}`));
  // The service's current figures (shoal's own; Docker shows none): sums over its tasks.
  const figures = new Map<string, ServiceFigures>();
  for (const sv of out) {
    const rows = await call<TaskStatsRow[]>(
      "GET",
      `/v1/tasks/stats?service=${encodeURIComponent(sv.id)}`,
    );
    const f = serviceFigures(rows);
    if (f) figures.set(sv.id, f);
  }
  if (!o.pretty) {
    const withHealth = [];
    for (const sv of out) {
      const f = figures.get(sv.id);
      withHealth.push({ ...(await withTaskHealth(sv)), ...(f ? { currentStats: f } : {}) });
    }
    process.stdout.write(JSON.stringify(withHealth, null, 4) + "\n");
    return 0;
  }
  const names = new Map<string, string>();
  if (out.some((s) => s.spec.networks?.length)) {
    for (const n of await call<Array<{ Id: string; Name: string }>>("GET", "/v1/networks"))
      names.set(n.Id, n.Name);
  }
  for (const s of out) {
    const f = figures.get(s.id);
    const current = f ? `\n${prettyFigures(f)}` : "";
    process.stdout.write(prettyService(s, Date.now(), names) + current + "\n\n");
  }
  return 0;
}

/**
 * A service with a health check, as `service inspect` shows it: with `taskHealth`, each live
 * task's state and health (its last 5 check results), as Docker's container inspect shows
 * State.Health. A service without a check is shown as it is.
 */
async function withTaskHealth(sv: ServiceSummary): Promise<object> {
  const test = sv.spec.healthcheck?.test ?? [];
  if (test.length === 0 || test[0] === "NONE") return sv;
  const tasks = await call<Task[]>("GET", `/v1/tasks?service=${encodeURIComponent(sv.id)}`);
  return { ...sv, taskHealth: taskHealthOf(tasks) };
}

/** The live tasks' health, by slot (global: node), for `service inspect`. */
export function taskHealthOf(
  tasks: Task[],
): Array<{ id: string; name: string; state: string; health: Task["status"]["health"] | null }> {
  return tasks
    .filter((t) => !isTerminal(t.status.state) && t.desiredState === "running")
    .sort((a, b) => a.slot - b.slot || a.nodeId.localeCompare(b.nodeId))
    .map((t) => ({
      id: t.id,
      name: taskName(t),
      state: t.status.state,
      health: t.status.health ?? null,
    }));
}

export function prettyService(
  s: ServiceSummary,
  now: number,
  networkNames: ReadonlyMap<string, string> = new Map(),
): string {
  const sp = s.spec;
  const up = updateConfigOf(sp);
  const lines = [
    `ID:\t\t${s.id}`,
    `Name:\t\t${sp.name}`,
    ...(Object.keys(sp.labels).length
      ? ["Labels:", ...Object.entries(sp.labels).map(([k, v]) => ` ${k}=${v}`)]
      : []),
    "Service Mode:\t" + ("replicated" in sp.mode ? "Replicated" : "Global"),
    ...("replicated" in sp.mode ? [` Replicas:\t${sp.mode.replicated.replicas}`] : []),
    "Placement:",
    ...(sp.constraints.length ? [` Constraints:\t[${sp.constraints.join(" ")}]`] : []),
    ...(sp.preferences?.length
      ? [` Preferences:   [${sp.preferences.map((p) => `spread=${p.spread}`).join(" ")}]`]
      : []),
    ...(sp.maxReplicasPerNode ? [` Max Replicas Per Node:   ${sp.maxReplicasPerNode}`] : []),
    "UpdateConfig:",
    ` Parallelism:\t${up.parallelism}`,
    ...(up.delayMs ? [` Delay:\t\t${formatGoDuration(up.delayMs)}`] : []),
    ` On failure:\t${up.failureAction}`,
    ` Monitoring Period: ${formatGoDuration(up.monitorMs)}`,
    ` Max failure ratio: ${up.maxFailureRatio}`,
    ` Update order:      ${up.order}`,
    ...prettyRollbackConfig(sp),
    ...(s.updateStatus
      ? [
          "UpdateStatus:",
          ` State:\t\t${s.updateStatus.state}`,
          ` Started:\t${humanDuration(now - s.updateStatus.startedAt)} ago`,
          ...(s.updateStatus.completedAt
            ? [` Completed:\t${humanDuration(now - s.updateStatus.completedAt)} ago`]
            : []),
          ` Message:\t${s.updateStatus.message}`,
        ]
      : []),
    ...prettyAutoscale(s, now),
    ...(networkOf(sp) === "bridge" ? ["Networks:\tbridge"] : []),
    "ContainerSpec:",
    ...(sp.driver === "docker" ? [` Image:\t\t${sp.image}`] : []),
    ...(sp.command.length ? [` Command:\t${sp.command.join(" ")}`] : []),
    ...(Object.keys(sp.env).length
      ? [
          " Env:\t\t" +
            Object.entries(sp.env)
              .map(([k, v]) => `${k}=${v}`)
              .join(" "),
        ]
      : []),
    ...(sp.workdir ? [` Dir:\t\t${sp.workdir}`] : []),
    ...(sp.user ? [` User: ${sp.user}`] : []),
    ...prettyHealthcheck(sp),
    ...(sp.mounts?.length
      ? [
          "Mounts:",
          ...sp.mounts.map(
            (m) =>
              `  Target = ${m.target}\n   Source = ${m.source}\n   ReadOnly = ${m.readOnly}\n   Type = ${m.type}`,
          ),
        ]
      : []),
    // Docker's " Secrets:" / " Configs:" blocks: each reference's target and source.
    ...(sp.secrets?.length
      ? [" Secrets:", ...sp.secrets.map((r) => `  Target:\t${r.target}\n  Source:\t${r.source}`)]
      : []),
    ...(sp.configs?.length
      ? [" Configs:", ...sp.configs.map((r) => `  Target:\t${r.target}\n  Source:\t${r.source}`)]
      : []),
    ...(sp.limits.cpus || sp.limits.memoryBytes
      ? [
          "Resources:",
          " Limits:",
          ...(sp.limits.cpus ? [`  CPU:\t\t${sp.limits.cpus}`] : []),
          ...(sp.limits.memoryBytes ? [`  Memory:\t${formatBytes(sp.limits.memoryBytes)}`] : []),
        ]
      : []),
    // Docker's words: "Networks: a b " (each name after a space, one more at the end).
    ...(sp.networks?.length
      ? [
          `Networks:${sp.networks.map((n) => " " + (networkNames.get(n.target) ?? n.target)).join("")} `,
        ]
      : []),
    ...(sp.networks?.length || sp.endpointMode
      ? [`Endpoint Mode:\t${sp.endpointMode ?? "vip"}`]
      : []),
    ...(sp.ports.length
      ? [
          "Ports:",
          ...sp.ports.map(
            (pt) =>
              ` PublishedPort = ${pt.published}\n  Protocol = ${pt.protocol}\n  TargetPort = ${pt.target}\n  PublishMode = ${pt.mode}`,
          ),
        ]
      : []),
  ];
  return lines.join("\n");
}

/** The `Autoscale:` block of `service inspect --pretty`: the policy and the last decision. */
export function prettyAutoscale(s: ServiceSummary, now: number): string[] {
  const a = autoscaleOf(s.spec);
  if (!a) return [];
  const st = s.autoscaleStatus;
  return [
    "Autoscale:",
    ` Min:\t\t${a.min}`,
    ` Max:\t\t${a.max}`,
    ...(a.cpuPercent !== undefined ? [` CPU:\t\t${a.cpuPercent}%`] : []),
    ...(a.memoryPercent !== undefined ? [` Memory:\t${a.memoryPercent}%`] : []),
    ...(a.rps !== undefined ? [` RPS:\t\t${a.rps}`] : []),
    ` Stabilization:\t${formatGoDuration(a.stabilizationMs)}`,
    ` Evaluation:\t${formatGoDuration(a.evaluationMs)}`,
    ...(st
      ? [
          ` Last Decision:\t${humanDuration(now - st.lastDecisionAt)} ago: ${st.current} -> ${st.desired}`,
          ` Reason:\t${st.reason}`,
          ...(st.lastScaleAt !== undefined
            ? [` Last Scale:\t${humanDuration(now - st.lastScaleAt)} ago`]
            : []),
        ]
      : []),
  ];
}

/** Docker's `RollbackConfig:` block of `service inspect --pretty` (delay and monitor when set). */
function prettyRollbackConfig(sp: ServiceSpec): string[] {
  const r = rollbackConfigOf(sp);
  return [
    "RollbackConfig:",
    ` Parallelism:\t${r.parallelism}`,
    ...(r.delayMs ? [` Delay:\t\t${formatGoDuration(r.delayMs)}`] : []),
    ` On failure:\t${r.failureAction}`,
    ...(r.monitorMs ? [` Monitoring Period: ${formatGoDuration(r.monitorMs)}`] : []),
    ` Max failure ratio: ${r.maxFailureRatio}`,
    ` Rollback order:    ${r.order}`,
  ];
}

/** Docker's ` Healthcheck:` block of `service inspect --pretty` (under ContainerSpec). */
function prettyHealthcheck(sp: ServiceSpec): string[] {
  const h = sp.healthcheck;
  if (!h) return [];
  return [
    " Healthcheck:",
    `  Interval = ${formatGoDuration(h.intervalMs)}`,
    `  Retries = ${h.retries}`,
    `  StartPeriod =\t${formatGoDuration(h.startPeriodMs)}`,
    `  Timeout =\t${formatGoDuration(h.timeoutMs)}`,
    ...(h.test.length ? ["  Tests:", ...h.test.map((x) => `\t Test = ${x}`)] : []),
  ];
}

export async function rm(refs: string[]): Promise<number> {
  let failed = false;
  for (const ref of refs) {
    try {
      await call("DELETE", `/v1/services/${encodeURIComponent(ref)}`);
      process.stdout.write(ref + "\n");
    } catch (err) {
      failed = true;
      process.stderr.write(`${(err as Error).message}\n`);
    }
  }
  return failed ? 1 : 0;
}

export async function logs(ref: string, o: { follow?: boolean; tail?: string }): Promise<number> {
  const q = new URLSearchParams();
  if (o.tail !== undefined && o.tail !== "all")
    q.set("tail", String(parseIntFlag("--tail", o.tail)));
  if (o.follow) q.set("follow", "1");
  await stream(`/v1/services/${encodeURIComponent(ref)}/logs?${q}`, (chunk) =>
    process.stdout.write(chunk),
  );
  return 0;
}

// `shoal service create|ls|ps|scale|update|rm|inspect|logs` — Docker's `docker service` words,
// flags and table columns, against the daemon's API.

import { call, stream } from "./api-client.js";
import { parseArgs, flag, flagAll, has, UsageError, type FlagSpec, type Parsed } from "./args.js";
import {
  table,
  humanDuration,
  capitalize,
  parseDurationFlag,
  parseBytesFlag,
  parseIntFlag,
  formatBytes,
  formatGoDuration,
} from "./format.js";
import { defaultServiceSpec, isTerminal, updateConfigOf, networkOf } from "../api/model.js";
import type { Service, ServiceSpec, Task, Node, PortConfig } from "../api/types.js";

type ServiceSummary = Service & { running: number; desired: number };

const SPEC_FLAGS: FlagSpec[] = [
  { name: "env", short: "e", value: true, repeat: true },
  { name: "publish", short: "p", value: true, repeat: true },
  { name: "replicas", value: true },
  { name: "mode", value: true },
  { name: "restart-condition", value: true },
  { name: "restart-delay", value: true },
  { name: "restart-max-attempts", value: true },
  { name: "restart-window", value: true },
  { name: "limit-cpu", value: true },
  { name: "limit-memory", value: true },
  { name: "reserve-cpu", value: true },
  { name: "reserve-memory", value: true },
  { name: "label", short: "l", value: true, repeat: true },
  { name: "workdir", short: "w", value: true },
  { name: "stop-grace-period", value: true },
  { name: "stop-signal", value: true },
  { name: "constraint", value: true, repeat: true },
  { name: "network", value: true },
  { name: "driver", value: true },
  { name: "image", value: true },
  { name: "update-parallelism", value: true },
  { name: "update-delay", value: true },
  { name: "update-order", value: true },
  { name: "update-failure-action", value: true },
  { name: "update-monitor", value: true },
  { name: "update-max-failure-ratio", value: true },
  { name: "detach", short: "d" },
  { name: "quiet", short: "q" },
];

function kv(list: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const eq = item.indexOf("=");
    if (eq <= 0) {
      if (what === "env" && process.env[item] !== undefined) {
        out[item] = process.env[item]!;
        continue;
      }
      throw new UsageError(`invalid ${what} "${item}": expected KEY=VALUE`);
    }
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
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

function applySpecFlags(spec: ServiceSpec, p: Parsed, creating: boolean): ServiceSpec {
  const s = structuredClone(spec);
  if (flag(p, "mode") !== undefined) {
    const mode = flag(p, "mode")!;
    if (!creating) throw new UsageError("--mode can only be set when the service is created");
    if (mode === "global") s.mode = { global: {} };
    else if (mode !== "replicated")
      throw new UsageError(`invalid mode "${mode}": replicated or global`);
  }
  const replicas = flag(p, "replicas");
  if (replicas !== undefined) {
    if (!("replicated" in s.mode))
      throw new UsageError("replicas can only be used with replicated mode");
    s.mode = { replicated: { replicas: parseIntFlag("--replicas", replicas) } };
  }
  if (creating) {
    s.env = { ...s.env, ...kv(flagAll(p, "env"), "env") };
    s.labels = { ...s.labels, ...kv(flagAll(p, "label"), "label") };
    s.ports = flagAll(p, "publish").map(parsePort);
    s.constraints = flagAll(p, "constraint");
  }
  const rc = flag(p, "restart-condition");
  if (rc !== undefined) {
    if (rc !== "none" && rc !== "on-failure" && rc !== "any") {
      throw new UsageError(`invalid restart condition "${rc}": none, on-failure or any`);
    }
    s.restartPolicy.condition = rc;
  }
  const rd = flag(p, "restart-delay");
  if (rd !== undefined) s.restartPolicy.delayMs = parseDurationFlag("--restart-delay", rd);
  const rm = flag(p, "restart-max-attempts");
  if (rm !== undefined) s.restartPolicy.maxAttempts = parseIntFlag("--restart-max-attempts", rm);
  const rw = flag(p, "restart-window");
  if (rw !== undefined) s.restartPolicy.windowMs = parseDurationFlag("--restart-window", rw);
  const lc = flag(p, "limit-cpu");
  if (lc !== undefined) s.limits.cpus = cpus("--limit-cpu", lc);
  const lm = flag(p, "limit-memory");
  if (lm !== undefined) s.limits.memoryBytes = parseBytesFlag("--limit-memory", lm);
  const rcpu = flag(p, "reserve-cpu");
  if (rcpu !== undefined) s.reservations.cpus = cpus("--reserve-cpu", rcpu);
  const rmem = flag(p, "reserve-memory");
  if (rmem !== undefined) s.reservations.memoryBytes = parseBytesFlag("--reserve-memory", rmem);
  const wd = flag(p, "workdir");
  if (wd !== undefined) s.workdir = wd;
  const sg = flag(p, "stop-grace-period");
  if (sg !== undefined) s.stopGracePeriodMs = parseDurationFlag("--stop-grace-period", sg);
  const ss = flag(p, "stop-signal");
  if (ss !== undefined) s.stopSignal = ss;
  const image = flag(p, "image");
  if (image !== undefined) {
    s.image = image;
    s.driver = "docker";
  }
  const driver = flag(p, "driver");
  if (driver !== undefined) {
    if (driver !== "process" && driver !== "docker") {
      throw new UsageError(`invalid driver "${driver}": process or docker`);
    }
    s.driver = driver;
  }
  const net = flag(p, "network");
  if (net !== undefined) {
    if (net !== "host" && net !== "bridge") {
      throw new UsageError(`invalid network "${net}": host or bridge`);
    }
    s.network = net;
  }
  s.update = updateConfigOf(s);
  const up = flag(p, "update-parallelism");
  if (up !== undefined) s.update.parallelism = parseIntFlag("--update-parallelism", up);
  const ud = flag(p, "update-delay");
  if (ud !== undefined) s.update.delayMs = parseDurationFlag("--update-delay", ud);
  const uo = flag(p, "update-order");
  if (uo !== undefined) {
    if (uo !== "stop-first" && uo !== "start-first") {
      throw new UsageError(`invalid update order "${uo}": stop-first or start-first`);
    }
    s.update.order = uo;
  }
  const ufa = flag(p, "update-failure-action");
  if (ufa !== undefined) {
    if (ufa !== "pause" && ufa !== "continue" && ufa !== "rollback") {
      throw new UsageError(`invalid update failure action "${ufa}": pause, continue or rollback`);
    }
    s.update.failureAction = ufa;
  }
  const um = flag(p, "update-monitor");
  if (um !== undefined) s.update.monitorMs = parseDurationFlag("--update-monitor", um);
  const ur = flag(p, "update-max-failure-ratio");
  if (ur !== undefined) {
    const r = Number(ur);
    if (ur.trim() === "" || !Number.isFinite(r) || r < 0 || r > 1) {
      throw new UsageError(`invalid argument "${ur}" for "--update-max-failure-ratio" flag`);
    }
    s.update.maxFailureRatio = r;
  }
  return s;
}

function cpus(f: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`invalid argument "${v}" for "${f}" flag`);
  return n;
}

// ---- create / update / scale ------------------------------------------------------------------

async function create(argv: string[]): Promise<number> {
  const p = parseArgs(argv, [...SPEC_FLAGS, { name: "name", value: true }], { positionals: 1 });
  const command = [...p.args, ...p.rest];
  if (command.length === 0 && flag(p, "image") === undefined)
    throw new UsageError(
      '"shoal service create" requires a command or an image: shoal service create [OPTIONS] [--image IMAGE] [--] [COMMAND] [ARG...]',
    );
  const name = flag(p, "name") ?? `svc-${Math.random().toString(36).slice(2, 8)}`;
  const spec = applySpecFlags({ ...defaultServiceSpec(name), command }, p, true);
  const s = await call<Service>("POST", "/v1/services", { spec });
  process.stdout.write(`${s.id}\n`);
  if (!has(p, "detach")) return progress(s.id, has(p, "quiet"));
  return 0;
}

async function update(argv: string[]): Promise<number> {
  const p = parseArgs(argv, [
    ...SPEC_FLAGS.filter((f) => !["env", "publish", "label", "constraint"].includes(f.name)),
    { name: "env-add", value: true, repeat: true },
    { name: "env-rm", value: true, repeat: true },
    { name: "label-add", value: true, repeat: true },
    { name: "label-rm", value: true, repeat: true },
    { name: "publish-add", value: true, repeat: true },
    { name: "publish-rm", value: true, repeat: true },
    { name: "constraint-add", value: true, repeat: true },
    { name: "constraint-rm", value: true, repeat: true },
    { name: "args", value: true },
    { name: "command", value: true },
    { name: "force" },
    { name: "rollback" },
  ]);
  const ref = p.args[0];
  if (!ref || p.args.length > 1)
    throw new UsageError('"shoal service update" requires exactly 1 argument: SERVICE');
  if (has(p, "rollback")) return rollbackTo(ref, has(p, "detach"), has(p, "quiet"));
  const cur = await call<ServiceSummary>("GET", `/v1/services/${encodeURIComponent(ref)}`);
  let spec = applySpecFlags(cur.spec, p, false);
  spec.env = { ...spec.env, ...kv(flagAll(p, "env-add"), "env") };
  for (const k of flagAll(p, "env-rm")) delete spec.env[k.split("=")[0]!];
  spec.labels = { ...spec.labels, ...kv(flagAll(p, "label-add"), "label") };
  for (const k of flagAll(p, "label-rm")) delete spec.labels[k];
  spec.ports = [
    ...spec.ports.filter(
      (x) => !flagAll(p, "publish-rm").some((r) => Number(r.split(":")[0]) === x.published),
    ),
    ...flagAll(p, "publish-add").map(parsePort),
  ];
  spec.constraints = [
    ...spec.constraints.filter((c) => !flagAll(p, "constraint-rm").includes(c)),
    ...flagAll(p, "constraint-add"),
  ];
  const cmd = flag(p, "command");
  const args = flag(p, "args");
  if (cmd !== undefined)
    spec.command = [
      ...splitWords(cmd),
      ...(args !== undefined ? splitWords(args) : spec.command.slice(1)),
    ];
  else if (args !== undefined) spec.command = [spec.command[0]!, ...splitWords(args)];
  if (p.rest.length > 0) spec.command = p.rest;
  if (has(p, "force"))
    spec = { ...spec, labels: { ...spec.labels, "shoal.force-update": String(Date.now()) } };
  const s = await call<Service>("POST", `/v1/services/${encodeURIComponent(ref)}/update`, { spec });
  process.stdout.write(`${s.spec.name}\n`);
  if (!has(p, "detach")) return progress(s.id, has(p, "quiet"));
  return 0;
}

/** `service rollback` and `service update --rollback`: the previous spec, rolled out. */
async function rollbackTo(ref: string, detach: boolean, quiet: boolean): Promise<number> {
  const s = await call<Service>("POST", `/v1/services/${encodeURIComponent(ref)}/rollback`);
  process.stdout.write(`${s.spec.name}\n`);
  if (!detach) {
    const code = await progress(s.id, quiet);
    if (code === 0 && !quiet) process.stdout.write("rollback: rollback complete\n");
    return code;
  }
  return 0;
}

async function rollbackCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, [
    { name: "detach", short: "d" },
    { name: "quiet", short: "q" },
  ]);
  if (p.args.length !== 1)
    throw new UsageError('"shoal service rollback" requires exactly 1 argument: SERVICE');
  return rollbackTo(p.args[0]!, has(p, "detach"), has(p, "quiet"));
}

function splitWords(s: string): string[] {
  return s.split(/\s+/).filter(Boolean);
}

async function scale(argv: string[]): Promise<number> {
  const p = parseArgs(argv, [{ name: "detach", short: "d" }]);
  if (p.args.length === 0)
    throw new UsageError('"shoal service scale" requires at least 1 argument: SERVICE=REPLICAS...');
  const pairs = p.args.map((a) => {
    const m = /^([^=]+)=(.*)$/.exec(a);
    if (!m) throw new UsageError(`invalid scale specifier '${a}': expected SERVICE=REPLICAS`);
    if (!/^\d+$/.test(m[2]!))
      throw new UsageError(`invalid replicas value ${m[2]}: must be a non-negative integer`);
    return [m[1]!, Number(m[2])] as const;
  });
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
  if (!has(p, "detach")) for (const id of ids) await progress(id, false);
  return failed ? 1 : 0;
}

/** Prints Swarm-like progress until the service's tasks converge (running == desired). */
async function progress(id: string, quiet: boolean): Promise<number> {
  const deadline = Date.now() + 120_000;
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
    const failing = tasks.find(
      (t) =>
        t.status.state === "failed" &&
        t.specVersion === s.version &&
        Date.now() - t.status.timestamp < 2000,
    );
    if (!quiet && failing && failing.status.err) {
      process.stdout.write(`${failing.serviceName}.${failing.slot}: ${failing.status.err}\n`);
    }
    if (Date.now() > deadline) {
      process.stderr.write(`service ${s.spec.name} did not converge in 120s\n`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---- ls / ps / inspect / rm / logs ------------------------------------------------------------

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

async function ls(argv: string[]): Promise<number> {
  const p = parseArgs(argv, [{ name: "quiet", short: "q" }]);
  const list = await call<ServiceSummary[]>("GET", "/v1/services");
  list.sort((a, b) => a.spec.name.localeCompare(b.spec.name));
  if (has(p, "quiet")) {
    for (const s of list) process.stdout.write(s.id.slice(0, 12) + "\n");
    return 0;
  }
  const rows = list.map((s) => [
    s.id.slice(0, 12),
    s.spec.name,
    "replicated" in s.spec.mode ? "replicated" : "global",
    `${s.running}/${s.desired}`,
    commandColumn(s.spec),
    portsColumn(s.spec),
  ]);
  process.stdout.write(table(["ID", "NAME", "MODE", "REPLICAS", "IMAGE/COMMAND", "PORTS"], rows));
  return 0;
}

async function ps(argv: string[]): Promise<number> {
  const p = parseArgs(argv, [{ name: "quiet", short: "q" }, { name: "no-trunc" }]);
  if (p.args.length === 0)
    throw new UsageError('"shoal service ps" requires at least 1 argument: SERVICE...');
  const nodes = new Map((await call<Node[]>("GET", "/v1/nodes")).map((n) => [n.id, n]));
  const rows: string[][] = [];
  const noTrunc = has(p, "no-trunc");
  for (const ref of p.args) {
    const tasks = await call<Task[]>("GET", `/v1/tasks?service=${encodeURIComponent(ref)}`);
    // Group by slot (global: by node); newest first, earlier tasks as `\_` history.
    const groups = new Map<string, Task[]>();
    for (const t of tasks) {
      const key = t.slot > 0 ? `s${t.slot}` : `n${t.nodeId}`;
      groups.set(key, [...(groups.get(key) ?? []), t]);
    }
    const keys = [...groups.keys()].sort((a, b) => {
      const ga = groups.get(a)![0]!;
      const gb = groups.get(b)![0]!;
      return ga.slot - gb.slot || ga.nodeId.localeCompare(gb.nodeId);
    });
    for (const k of keys) {
      const list = groups.get(k)!.sort((a, b) => b.createdAt - a.createdAt);
      list.forEach((t, i) => {
        if (has(p, "quiet")) {
          rows.push([t.id]);
          return;
        }
        const name =
          t.slot > 0 ? `${t.serviceName}.${t.slot}` : `${t.serviceName}.${t.nodeId.slice(0, 25)}`;
        const err = t.status.err
          ? `"${noTrunc || t.status.err.length <= 28 ? t.status.err : t.status.err.slice(0, 27) + "…"}"`
          : "";
        rows.push([
          noTrunc ? t.id : t.id.slice(0, 12),
          i === 0 ? name : ` \\_ ${name}`,
          commandColumn(t.spec),
          nodes.get(t.nodeId)?.hostname ?? "",
          capitalize(t.desiredState === "remove" ? "shutdown" : t.desiredState),
          `${capitalize(t.status.state)} ${humanDuration(Date.now() - t.status.timestamp).toLowerCase()} ago`,
          err,
          Object.entries(t.hostPorts)
            .map(([target, host]) => `*:${host}->${target}/tcp`)
            .join(","),
        ]);
      });
    }
  }
  if (has(p, "quiet")) {
    for (const r of rows) process.stdout.write(r[0] + "\n");
    return 0;
  }
  process.stdout.write(
    table(
      ["ID", "NAME", "IMAGE/COMMAND", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"],
      rows,
    ),
  );
  return 0;
}

async function inspect(argv: string[]): Promise<number> {
  const p = parseArgs(argv, [{ name: "pretty" }]);
  if (p.args.length === 0)
    throw new UsageError('"shoal service inspect" requires at least 1 argument: SERVICE...');
  const out: ServiceSummary[] = [];
  for (const ref of p.args)
    out.push(await call<ServiceSummary>("GET", `/v1/services/${encodeURIComponent(ref)}`));
  if (!has(p, "pretty")) {
    process.stdout.write(JSON.stringify(out, null, 4) + "\n");
    return 0;
  }
  for (const s of out) {
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
      ...(sp.constraints.length
        ? ["Placement:", ` Constraints:\t[${sp.constraints.join(" ")}]`]
        : ["Placement:"]),
      "UpdateConfig:",
      ` Parallelism:\t${up.parallelism}`,
      ...(up.delayMs ? [` Delay:\t\t${formatGoDuration(up.delayMs)}`] : []),
      ` On failure:\t${up.failureAction}`,
      ` Monitoring Period: ${formatGoDuration(up.monitorMs)}`,
      ` Max failure ratio: ${up.maxFailureRatio}`,
      ` Update order:      ${up.order}`,
      ...(s.updateStatus
        ? [
            "UpdateStatus:",
            ` State:\t\t${s.updateStatus.state}`,
            ` Started:\t${humanDuration(Date.now() - s.updateStatus.startedAt)} ago`,
            ...(s.updateStatus.completedAt
              ? [` Completed:\t${humanDuration(Date.now() - s.updateStatus.completedAt)} ago`]
              : []),
            ` Message:\t${s.updateStatus.message}`,
          ]
        : []),
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
      ...(sp.limits.cpus || sp.limits.memoryBytes
        ? [
            "Resources:",
            " Limits:",
            ...(sp.limits.cpus ? [`  CPU:\t\t${sp.limits.cpus}`] : []),
            ...(sp.limits.memoryBytes ? [`  Memory:\t${formatBytes(sp.limits.memoryBytes)}`] : []),
          ]
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
    process.stdout.write(lines.join("\n") + "\n\n");
  }
  return 0;
}

async function rm(argv: string[]): Promise<number> {
  const p = parseArgs(argv, []);
  if (p.args.length === 0)
    throw new UsageError('"shoal service rm" requires at least 1 argument: SERVICE...');
  let failed = false;
  for (const ref of p.args) {
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

async function logs(argv: string[]): Promise<number> {
  const p = parseArgs(argv, [
    { name: "follow", short: "f" },
    { name: "tail", short: "n", value: true },
  ]);
  if (p.args.length !== 1)
    throw new UsageError('"shoal service logs" requires exactly 1 argument: SERVICE');
  const tail = flag(p, "tail");
  const q = new URLSearchParams();
  if (tail !== undefined && tail !== "all") q.set("tail", String(parseIntFlag("--tail", tail)));
  if (has(p, "follow")) q.set("follow", "1");
  await stream(`/v1/services/${encodeURIComponent(p.args[0]!)}/logs?${q}`, (chunk) =>
    process.stdout.write(chunk),
  );
  return 0;
}

export const SERVICE_HELP = `Usage: shoal service COMMAND

Manage services

Commands:
  create      Create a new service: shoal service create [OPTIONS] [--] COMMAND [ARG...]
  inspect     Display detailed information on one or more services
  logs        Fetch the logs of a service
  ls          List services
  ps          List the tasks of one or more services
  rm          Remove one or more services
  rollback    Revert changes to a service's configuration
  scale       Scale one or multiple replicated services
  update      Update a service

Create/update options:
  --name NAME, --replicas N, --mode replicated|global, -e/--env K=V, -p/--publish PUBLISHED:TARGET,
  --restart-condition none|on-failure|any, --restart-delay D, --restart-max-attempts N, --restart-window D,
  --limit-cpu X, --limit-memory M, --reserve-cpu X, --reserve-memory M, -l/--label K=V, -w/--workdir DIR,
  --stop-grace-period D, --stop-signal SIG, --constraint EXPR, --update-parallelism N (0: all at once),
  --update-delay D, --update-order stop-first|start-first, --update-failure-action pause|continue|rollback,
  --update-monitor D, --update-max-failure-ratio R, --network host|bridge, --driver process|docker,
  --image IMAGE (the docker driver; the image must be on the nodes), -d/--detach, -q/--quiet
  (update only: --rollback)
`;

export async function serviceCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "create":
      return create(rest);
    case "ls":
    case "list":
      return ls(rest);
    case "ps":
      return ps(rest);
    case "scale":
      return scale(rest);
    case "update":
      return update(rest);
    case "rollback":
      return rollbackCommand(rest);
    case "rm":
    case "remove":
      return rm(rest);
    case "inspect":
      return inspect(rest);
    case "logs":
      return logs(rest);
    case undefined:
    case "--help":
    case "-h":
      process.stdout.write(SERVICE_HELP);
      return sub === undefined ? 1 : 0;
    default:
      throw new UsageError(`unknown command "shoal service ${sub}"\n\n${SERVICE_HELP}`);
  }
}

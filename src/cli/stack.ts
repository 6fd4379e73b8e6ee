// `shoal stack deploy|ls|services|ps|rm|config`: Docker's `docker stack`, done as Docker does it
// — by the client, on the service, network, secret and config API. A stack is the objects of
// those kinds that carry the label com.docker.stack.namespace=<stack>.

import { readFileSync } from "node:fs";
import { stringify } from "yaml";
import { call } from "./api-client.js";
import { ApiError } from "./api-client.js";
import { CliError } from "./errors.js";
import { applyFilters, parseFilters } from "./filter.js";
import { loadFiles } from "./compose/load.js";
import { convertStack, NAMESPACE_LABEL, type StackFile } from "./compose/convert.js";
import {
  SERVICE_FILTERS,
  SERVICE_LS_FORMAT,
  SERVICE_PS_FORMAT,
  TASK_FILTERS,
  progress,
  rowPrinter,
  routeLabelWarnings,
  serviceRows,
  taskRows,
  type ListOptions,
  type TaskWithNode,
} from "./service.js";
import { sortedJson, type ListFormat } from "./template.js";
import type { NetworkInspect, ServiceSummary } from "../api/http.js";
import type { Node, SecretInfo, SecretReference, ServiceSpec, Task } from "../api/types.js";

export interface DeployOptions {
  composeFile?: string[];
  prune?: boolean;
  detach?: boolean;
}

const STACK_LS_FORMAT: ListFormat = {
  defaultTable: "table {{.Name}}\t{{.Services}}",
  headers: { Name: "NAME", Services: "SERVICES" },
};

const inStack = (labels: Record<string, string> | null | undefined, stack: string) =>
  (labels ?? {})[NAMESPACE_LABEL] === stack;

/** The spec with network names as the ids the manager stores (to compare with a stored spec). */
function withNetworkIds(spec: ServiceSpec, ids: ReadonlyMap<string, string>): ServiceSpec {
  if (!spec.networks) return spec;
  return {
    ...spec,
    networks: spec.networks.map((n) => ({ ...n, target: ids.get(n.target) ?? n.target })),
  };
}

/** The spec with its secret and config references carrying the ids the manager stores. */
export function withFileIds(
  spec: ServiceSpec,
  secretIds: ReadonlyMap<string, string>,
  configIds: ReadonlyMap<string, string>,
): ServiceSpec {
  const out = { ...spec };
  const ids = (refs: SecretReference[], m: ReadonlyMap<string, string>) =>
    refs.map((r) => {
      const id = m.get(r.source);
      return id === undefined ? r : { ...r, id };
    });
  if (spec.secrets) out.secrets = ids(spec.secrets, secretIds);
  if (spec.configs) out.configs = ids(spec.configs, configIds);
  return out;
}

/** Creates the stack's secrets or configs that do not exist yet (a redeploy keeps the existing
 * ones: their data cannot change); external ones must exist. Returns name → id. */
async function ensureFiles(
  kind: "secret" | "config",
  list: StackFile[],
): Promise<Map<string, string>> {
  if (list.length === 0) return new Map();
  const existing = await call<SecretInfo[]>("GET", `/v1/${kind}s`);
  const ids = new Map(existing.map((x) => [x.name, x.id]));
  for (const x of list) {
    if (ids.has(x.name)) continue;
    if (x.external || !x.create)
      throw new CliError(
        "ERR_NOT_FOUND",
        `${kind} "${x.name}" is declared as external, but could not be found`,
      );
    process.stdout.write(`Creating ${kind} ${x.name}\n`);
    const made = await call<{ id: string }>("POST", `/v1/${kind}s`, x.create);
    ids.set(x.name, made.id);
  }
  return ids;
}

/** Whether deploying `next` over `cur` changes anything (both with network ids). */
export function specChanged(cur: ServiceSpec, next: ServiceSpec): boolean {
  return sortedJson(cur) !== sortedJson(next);
}

/**
 * An autoscaled service keeps the count it has (within the file's min and max) on a redeploy:
 * the file's count is where it starts, not where a redeploy sends it back to.
 */
export function withAutoscaledReplicas(cur: ServiceSpec, next: ServiceSpec): ServiceSpec {
  const a = next.autoscale;
  if (!a || !("replicated" in cur.mode) || !("replicated" in next.mode)) return next;
  const replicas = Math.min(a.max, Math.max(a.min, cur.mode.replicated.replicas));
  return { ...next, mode: { replicated: { replicas } } };
}

/** One call of a deploy: what it says, and the call (resolves the service's id). */
interface Step {
  line: string;
  run: () => Promise<string>;
}

/**
 * Runs the steps at once (their lines first, in order); resolves their ids in order once all
 * are done, or rejects with the error of the first that failed (in order) once all settled.
 */
async function inParallel(steps: Step[]): Promise<string[]> {
  for (const s of steps) process.stdout.write(s.line);
  const results = await Promise.allSettled(steps.map((s) => s.run()));
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<string>).value);
}

export async function deploy(stack: string, o: DeployOptions): Promise<number> {
  const files = o.composeFile ?? [];
  if (files.length === 0)
    throw new CliError("ERR_USAGE", "Please specify a Compose file (with --compose-file).");
  const { config, workingDir } = loadFiles(files, process.env);
  const converted = convertStack(config, stack, {
    workingDir,
    lookup: (k) => process.env[k],
    readFile: (p) => readFileSync(p, "utf8"),
    readBytes: (p) => readFileSync(p),
  });
  for (const w of converted.warnings) process.stderr.write(w + "\n");

  // Networks first: external ones must exist, the stack's own are created when missing. (The
  // services are listed meanwhile.)
  const [existing, services] = await Promise.all([
    call<NetworkInspect[]>("GET", "/v1/networks"),
    call<ServiceSummary[]>("GET", "/v1/services"),
  ]);
  const ids = new Map(existing.map((n) => [n.Name, n.Id]));
  for (const n of converted.networks) {
    if (!n.external) continue;
    if (!ids.has(n.name))
      throw new CliError(
        "ERR_NOT_FOUND",
        `network "${n.name}" is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed`,
      );
  }
  for (const n of converted.networks) {
    if (n.external || ids.has(n.name)) continue;
    process.stdout.write(`Creating network ${n.name}\n`);
    const made = await call<{ id: string }>("POST", "/v1/networks", n.create);
    ids.set(n.name, made.id);
  }

  const secretIds = await ensureFiles("secret", converted.secrets);
  const configIds = await ensureFiles("config", converted.configs);

  const byName = new Map(services.map((s) => [s.spec.name, s]));
  // The calls go out together (each its own store write on the manager), in file order; a
  // service created with depends_on goes after them, one at a time as before, so that an
  // optional dependency of the file exists when the manager first looks (depends.ts).
  const now: Step[] = [];
  const after: Step[] = [];
  for (const file of converted.services) {
    process.stderr.write(routeLabelWarnings(file));
    const cur = byName.get(file.name);
    const spec = cur ? withAutoscaledReplicas(cur.spec, file) : file;
    if (!cur) {
      (spec.dependsOn?.length ? after : now).push({
        line: `Creating service ${spec.name}\n`,
        run: async () => (await call<{ id: string }>("POST", "/v1/services", { spec })).id,
      });
    } else if (
      specChanged(cur.spec, withFileIds(withNetworkIds(spec, ids), secretIds, configIds))
    ) {
      now.push({
        line: `Updating service ${spec.name} (id: ${cur.id})\n`,
        run: async () => {
          await call("POST", `/v1/services/${encodeURIComponent(cur.id)}/update`, { spec });
          return cur.id;
        },
      });
    }
  }
  const touched = await inParallel(now);
  for (const step of after) {
    process.stdout.write(step.line);
    touched.push(await step.run());
  }
  if (o.prune) {
    const keep = new Set(converted.services.map((s) => s.name));
    for (const s of services) {
      if (!inStack(s.spec.labels, stack) || keep.has(s.spec.name)) continue;
      process.stdout.write(`Removing service ${s.spec.name}\n`);
      await call("DELETE", `/v1/services/${encodeURIComponent(s.id)}`);
    }
  }
  if (o.detach === false) {
    let code = 0;
    for (const id of touched) code = Math.max(code, await progress(id, false));
    return code;
  }
  return 0;
}

export async function ls(o: { format?: string }): Promise<number> {
  const print = rowPrinter({ format: o.format }, STACK_LS_FORMAT);
  const counts = new Map<string, number>();
  for (const s of await call<ServiceSummary[]>("GET", "/v1/services")) {
    const ns = s.spec.labels[NAMESPACE_LABEL];
    if (ns !== undefined) counts.set(ns, (counts.get(ns) ?? 0) + 1);
  }
  print(
    [...counts.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([Name, n]) => ({ Name, Services: String(n) })),
  );
  return 0;
}

async function stackServices(stack: string): Promise<ServiceSummary[]> {
  const all = await call<ServiceSummary[]>("GET", "/v1/services");
  return all.filter((s) => inStack(s.spec.labels, stack));
}

function nothingFound(stack: string): number {
  process.stderr.write(`Nothing found in stack: ${stack}\n`);
  return 0;
}

export async function services(stack: string, o: ListOptions): Promise<number> {
  const filters = parseFilters(o.filter ?? [], SERVICE_FILTERS, "stack services");
  const print = rowPrinter(o, SERVICE_LS_FORMAT);
  const list = await stackServices(stack);
  if (list.length === 0) return nothingFound(stack);
  print(serviceRows(applyFilters(list, filters, SERVICE_FILTERS)));
  return 0;
}

export async function ps(stack: string, o: ListOptions & { noTrunc?: boolean }): Promise<number> {
  const filters = parseFilters(o.filter ?? [], TASK_FILTERS, "stack ps");
  const print = rowPrinter(o, SERVICE_PS_FORMAT);
  const list = await stackServices(stack);
  if (list.length === 0) return nothingFound(stack);
  const nodes = new Map((await call<Node[]>("GET", "/v1/nodes")).map((n) => [n.id, n]));
  const all: TaskWithNode[] = [];
  for (const s of list) {
    const tasks = await call<Task[]>("GET", `/v1/tasks?service=${encodeURIComponent(s.id)}`);
    all.push(...tasks.map((task) => ({ task, node: nodes.get(task.nodeId) })));
  }
  print(
    taskRows(applyFilters(all, filters, TASK_FILTERS), {
      noTrunc: !!o.noTrunc || !!o.quiet,
      now: Date.now(),
    }),
  );
  return 0;
}

/** Removes a network, waiting (up to `timeoutMs`) while the stack's tasks on it stop. */
async function removeNetwork(id: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await call("DELETE", `/v1/networks/${encodeURIComponent(id)}`);
      return;
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 409 || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export async function rm(stacks: string[]): Promise<number> {
  let failed = false;
  for (const stack of stacks) {
    const list = await stackServices(stack);
    const nets = (await call<NetworkInspect[]>("GET", "/v1/networks")).filter((n) =>
      inStack(n.Labels, stack),
    );
    const files: Array<["secret" | "config", SecretInfo]> = [];
    for (const kind of ["secret", "config"] as const) {
      for (const x of await call<SecretInfo[]>("GET", `/v1/${kind}s`))
        if (inStack(x.labels, stack)) files.push([kind, x]);
    }
    if (list.length === 0 && nets.length === 0 && files.length === 0) {
      nothingFound(stack);
      continue;
    }
    for (const s of [...list].sort((a, b) => a.spec.name.localeCompare(b.spec.name))) {
      process.stdout.write(`Removing service ${s.spec.name}\n`);
      try {
        await call("DELETE", `/v1/services/${encodeURIComponent(s.id)}`);
      } catch (err) {
        if (!(err instanceof CliError)) throw err;
        process.stderr.write(`Failed to remove service ${s.id}: ${err.message}\n`);
        failed = true;
      }
    }
    // The services are gone from the store at once, so nothing uses these any more.
    for (const [kind, x] of files.sort(
      ([ka, a], [kb, b]) => ka.localeCompare(kb) || a.name.localeCompare(b.name),
    )) {
      process.stdout.write(`Removing ${kind} ${x.name}\n`);
      try {
        await call("DELETE", `/v1/${kind}s/${encodeURIComponent(x.id)}`);
      } catch (err) {
        if (!(err instanceof CliError)) throw err;
        process.stderr.write(`Failed to remove ${kind} ${x.id}: ${err.message}\n`);
        failed = true;
      }
    }
    for (const n of [...nets].sort((a, b) => a.Name.localeCompare(b.Name))) {
      process.stdout.write(`Removing network ${n.Name}\n`);
      try {
        // The services' tasks stop within their grace period; the network is free after.
        await removeNetwork(n.Id, 60_000);
      } catch (err) {
        if (!(err instanceof CliError)) throw err;
        process.stderr.write(`Failed to remove network ${n.Id}: ${err.message}\n`);
        failed = true;
      }
    }
  }
  return failed ? 1 : 0;
}

/** `stack config`: the merged, interpolated file as YAML. */
export function config(o: { composeFile?: string[] }): number {
  const files = o.composeFile ?? [];
  if (files.length === 0)
    throw new CliError("ERR_USAGE", "Please specify a Compose file (with --compose-file).");
  process.stdout.write(stringify(loadFiles(files, process.env).config));
  return 0;
}

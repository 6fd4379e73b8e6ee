// `npm run bench -- managers`: issue 14's failover figures, shoal beside Docker Swarm on the
// network-namespace test bed (interfaces prefixed "mgb"). Each run makes a fresh cluster of 5
// machines — 3 managers and 2 workers — runs a service of 10 replicas of `sleep 100000` (tasks on
// every machine, the leader's included), then pulls the plug on the leader's machine (cut off the
// network, then every process in its namespace killed) and measures, from the kill:
//
//   (a) until a surviving manager names another leader (shoal: `/v1/info` leaderId, what
//       `node ls` shows as Leader; Docker: `/nodes` ManagerStatus.Leader, what `docker node ls`
//       shows), polled on the survivors;
//   (b) until the first of the dead machine's tasks runs again elsewhere (a running task that did
//       not run before the kill, on a survivor), and until all of them do.
//
// shoal's managers (test/helpers/managers.ts) keep their state in etcd: by default one etcd member
// on each manager's machine (so the leader's machine takes a member with it), `--etcd one` runs a
// single etcd outside the machines as the cluster test does. Docker's 3 managers and 2 workers
// are real engines (bench/swarm-docker.ts), one per machine, with Swarm's defaults. The median of
// `--repeat` runs (at least 3) of each; the table's ratio is shoal's to Docker's.
//
// The other half of the benchmark, the etcd store's write throughput against the embedded
// store, is the `store` suite (bench/store.ts): `npm run bench -- managers store`.

import { loadavg } from "node:os";
import { netnsAvailable } from "../test/cluster/netns.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { apiAt, killTaskProcesses } from "../test/helpers/daemon.js";
import { etcdPath, ETCD_MISSING } from "../test/helpers/etcd.js";
import { leaderOf, startManagers } from "../test/helpers/managers.js";
import { checkFor } from "../test/helpers/servers.js";
import type { Node, Task } from "../src/api/types.js";
import { SHOAL_VERSION } from "../src/lib/version.js";
import { DEFAULT_LEADER_TTL_SECONDS } from "../src/store/leader.js";
import type { Row, Suite, SuiteContext, SuiteResult } from "./report.js";
import { SKIP_DOCKER, dockerManagerFailover } from "./swarm-docker.js";

/** The test bed's interface prefix, for shoal's beds and Docker's (SHOAL_BENCH_PREFIX: another, when
 * another bed of the same prefix may be running). */
const PREFIX = process.env["SHOAL_BENCH_PREFIX"] ?? "mgb";
const REPLICAS = 10;
const SERVICE = "web";

interface Run {
  leaderMs: number;
  downMs: number;
  firstMs: number;
  allMs: number;
  spread: string;
}

async function running(dir: string): Promise<Task[]> {
  const ts = await apiAt<Task[]>(dir, `/v1/tasks?service=${SERVICE}`);
  return ts.filter((t) => t.status.state === "running" && t.desiredState === "running");
}

function median(ms: number[]): number {
  const s = [...ms].sort((a, b) => a - b);
  const m = s.length >> 1;
  return (s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2) / 1000;
}

/** One shoal run on a fresh cluster. */
async function shoalOnce(ctx: SuiteContext, k: number, etcd: "one" | "per-manager"): Promise<Run> {
  const m = await startManagers({ prefix: PREFIX, etcd });
  try {
    const { swarm, leaderId } = m;
    const dirs = swarm.dirs;
    ctx.log(`managers: shoal run ${k}: 3 managers (etcd ${etcd}) + 2 workers ready`);
    const r = await swarm.cli(
      "service",
      "create",
      "--name",
      SERVICE,
      "--replicas",
      String(REPLICAS),
      "--restart-delay",
      "0s",
      "--",
      "sleep",
      "100000",
    );
    if (r.code !== 0) throw new Error(`service create: ${r.stderr}${r.stdout}`);
    const tasks = await checkFor(
      60_000,
      async () => {
        const ts = await running(dirs[0]!);
        if (ts.length === REPLICAS) return ts;
        throw new Error(`${ts.length} of ${REPLICAS} tasks running`);
      },
      100,
    );
    const nodes = await apiAt<Array<{ id: string; addr: string }>>(dirs[0]!, "/v1/nodes");
    const order = swarm.bed.hosts.map((h) => nodes.find((n) => n.addr === h.addr)?.id);
    const perNode = order.map((id) => tasks.filter((t) => t.nodeId === id).length);
    const spread = perNode.join("/");
    if (!tasks.some((t) => t.nodeId === leaderId)) {
      throw new Error(`no task on the leader's machine (spread ${spread})`);
    }
    const before = new Set(tasks.map((t) => t.id));
    const survivors = [dirs[1]!, dirs[2]!];

    // Pulled plug: off the network first, so no FIN or RST of the dying processes reaches anyone.
    const t0 = performance.now();
    await swarm.manager.cut();
    await swarm.manager.kill();
    killTaskProcesses(dirs[0]!);
    // Every survivor is asked; the first to see a step times it.
    let leaderMs: number | null = null;
    let downMs: number | null = null;
    let firstMs: number | null = null;
    let last = "";
    const see = async (dir: string): Promise<boolean> => {
      const id = await leaderOf(dir).catch(() => undefined);
      if (leaderMs === null && id !== undefined && id !== leaderId) {
        leaderMs = performance.now() - t0;
      }
      const ns = await apiAt<Node[]>(dir, "/v1/nodes");
      if (downMs === null && ns.find((n) => n.id === leaderId)?.status === "down") {
        downMs = performance.now() - t0;
      }
      const ts = await running(dir);
      const moved = ts.filter((t) => !before.has(t.id) && t.nodeId !== leaderId);
      if (firstMs === null && moved.length > 0) firstMs = performance.now() - t0;
      last +=
        `${dir === survivors[0] ? "manager 2" : "manager 3"}: leader ${id ?? "none"}, ` +
        `dead node ${ns.find((n) => n.id === leaderId)?.status ?? "?"}, ` +
        `${ts.length} running, ${moved.length} moved; `;
      return ts.length === REPLICAS && ts.every((t) => t.nodeId !== leaderId);
    };
    let allMs: number;
    try {
      allMs = await checkFor(
        120_000,
        async () => {
          last = "";
          const done = await Promise.all(survivors.map((d) => see(d).catch(() => false)));
          if (leaderMs !== null && done.includes(true)) return performance.now() - t0;
          throw new Error(last);
        },
        50,
      );
    } catch (err) {
      const logs = survivors
        .map((d, i) => {
          const lines = readFileSync(join(d, "daemon.log"), "utf8").trimEnd().split("\n");
          return `manager ${i + 2}'s daemon.log:\n${lines.slice(-15).join("\n")}`;
        })
        .join("\n");
      ctx.log(`managers: shoal run ${k}: timed out; the survivors' last lines:\n${logs}`);
      throw new Error(
        `run ${k}: not all tasks moved within 120 s (${(err as Error).message.trim()})`,
        { cause: err },
      );
    }
    const run: Run = {
      leaderMs: leaderMs!,
      downMs: downMs ?? allMs,
      firstMs: firstMs ?? allMs,
      allMs,
      spread,
    };
    ctx.log(
      `managers: shoal run ${k}: spread ${spread}; new leader after ${(run.leaderMs / 1000).toFixed(2)} s, ` +
        `dead node down after ${(run.downMs / 1000).toFixed(2)} s, first task elsewhere after ${(run.firstMs / 1000).toFixed(2)} s, all after ${(allMs / 1000).toFixed(2)} s`,
    );
    return run;
  } finally {
    await m.cleanup();
  }
}

const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const runs = Math.max(3, ctx.repeat);
  const etcdOpt = ctx.options["etcd"] ?? "per-manager";
  if (etcdOpt !== "one" && etcdOpt !== "per-manager") {
    throw new Error(`--etcd must be "one" or "per-manager", not "${String(etcdOpt)}"`);
  }
  const etcd = etcdOpt;
  const notes: string[] = [`load average at the start: ${load()} (the machine is shared)`];
  const params: Record<string, unknown> = {
    managers: 3,
    workers: 2,
    replicas: REPLICAS,
    runs,
    etcd,
  };
  const values = {
    leader: {} as Row["values"],
    down: {} as Row["values"],
    first: {} as Row["values"],
    all: {} as Row["values"],
  };

  if (ctx.options["skip-docker"] === true) {
    for (const v of Object.values(values)) v["docker"] = "not run: --skip-docker";
  } else {
    const d = await dockerManagerFailover(ctx, runs, REPLICAS, PREFIX);
    values.leader["docker"] = d.leader;
    values.down["docker"] = d.down;
    values.first["docker"] = d.first;
    values.all["docker"] = d.all;
    notes.push(...d.notes);
    params["docker"] = d.params;
  }

  const why = !netnsAvailable()
    ? "not run: needs network namespaces (root, iproute2)"
    : etcdPath() === null
      ? `not run: ${ETCD_MISSING}`
      : null;
  if (why !== null) {
    for (const v of Object.values(values)) v["shoal"] = why;
  } else {
    // A failed run is noted and the next one made: a run that never recovers is a finding.
    const results: Run[] = [];
    let failure: string | null = null;
    for (let k = 1; k <= runs; k++) {
      try {
        results.push(await shoalOnce(ctx, k, etcd));
      } catch (err) {
        failure = err instanceof Error ? err.message : String(err);
        ctx.log(`managers: shoal failed: ${failure}`);
        notes.push(`shoal failed: ${failure.split("\n").join(" | ")}`);
      }
    }
    if (results.length === 0) {
      const text = `failed: ${(failure ?? "no run").split("\n")[0]!.slice(0, 60)}`;
      for (const v of Object.values(values)) v["shoal"] = text;
    } else {
      values.leader["shoal"] = median(results.map((r) => r.leaderMs));
      values.down["shoal"] = median(results.map((r) => r.downMs));
      values.first["shoal"] = median(results.map((r) => r.firstMs));
      values.all["shoal"] = median(results.map((r) => r.allMs));
      const secs = (f: (r: Run) => number) =>
        results.map((r) => (f(r) / 1000).toFixed(2)).join(", ");
      notes.push(
        `shoal runs (s): new leader ${secs((r) => r.leaderMs)}; dead node down ` +
          `${secs((r) => r.downMs)}; first task elsewhere ` +
          `${secs((r) => r.firstMs)}; all ${secs((r) => r.allMs)}; spread before the kill ` +
          `(leader first): ${results.map((r) => r.spread).join(", ")}` +
          (results.length < runs ? `; medians over ${results.length} of ${runs} runs` : ""),
      );
      params["shoal"] = {
        leaderMs: results.map((r) => Math.round(r.leaderMs)),
        downMs: results.map((r) => Math.round(r.downMs)),
        firstMs: results.map((r) => Math.round(r.firstMs)),
        allMs: results.map((r) => Math.round(r.allMs)),
      };
    }
  }
  notes.push(
    `shoal ${SHOAL_VERSION}: state in etcd (${etcdVersionNote(etcd)}), leader elected with an etcd ` +
      `lease (TTL ${DEFAULT_LEADER_TTL_SECONDS} s); heartbeat 1 s, a node down after 3 s of silence (counted from the election ` +
      "at the latest); the leader found with /v1/info on the surviving managers, polled every 50 ms",
  );
  notes.push(
    `service: ${REPLICAS} replicas of \`sleep 100000\`, --restart-delay 0s (Swarm's default is 5 s), ` +
      "created on the leader; the leader's machine is cut off the network, then every process of it " +
      "killed; a fresh cluster for each run; goal (issue 14): a new leader in < 5 s (Swarm ≈ 10 s)",
  );
  notes.push(
    "the etcd store's write throughput against the embedded store: the store suite " +
      "(`npm run bench -- store`)",
  );
  notes.push(`load average at the end: ${load()}`);
  const row = (id: keyof typeof values, label: string): Row => ({
    id,
    label,
    unit: "s",
    better: "lower",
    values: values[id],
  });
  return {
    suite: "managers",
    title: `manager failover: 3 managers + 2 workers on network namespaces, leader's machine killed, median of ${runs}`,
    columns: [
      { id: "docker", label: "Docker Swarm" },
      { id: "shoal", label: "shoal" },
    ],
    rows: [
      row("leader", "leader killed → a survivor names a new leader"),
      row("down", "leader killed → its machine marked down"),
      row("first", "leader killed → first of its tasks running elsewhere"),
      row("all", `leader killed → all of its tasks running elsewhere`),
    ],
    notes,
    params,
  };
}

function etcdVersionNote(etcd: "one" | "per-manager"): string {
  const where =
    etcd === "per-manager"
      ? "one member on each manager's machine, the leader's dies with it"
      : "one member outside the machines, on the bed's bridge";
  return `${where}; etcd defaults: heartbeat 100 ms, election timeout 1 s`;
}

export const managersSuite: Suite = {
  name: "managers",
  description:
    "3 managers + 2 workers on network namespaces: leader's machine killed → new leader, → its tasks running elsewhere (median), vs Docker Swarm",
  options: {
    ...SKIP_DOCKER,
    etcd: {
      type: "string",
      description:
        'managers: where etcd runs, "per-manager" (default: one member per manager machine) or "one"',
    },
  },
  run,
};

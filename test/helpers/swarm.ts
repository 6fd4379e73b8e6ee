// A shoal swarm on the network-namespace test bed: a manager daemon on the first host, workers
// joined with the real `shoal join` on the others, each with its own data dir; the API of the
// manager through its socket; and a cleanup that kills every host and removes everything.

import type { TestContext } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestBed, type Host, type TestBed } from "../cluster/netns.js";
import { SHOAL_BIN, checkFor } from "./servers.js";
import { apiAt, killTaskProcesses, runCli, type CliResult } from "./daemon.js";
export { apiAt };
import type { Task } from "../../src/api/types.js";

export interface Swarm {
  bed: TestBed;
  manager: Host;
  /** The hosts after the manager (joined or not, see `joinWorker`). */
  workers: Host[];
  dirs: string[];
  token: string;
  /** Runs `shoal ARGS` against the manager. */
  cli(...args: string[]): Promise<CliResult>;
  /** Runs `shoal ARGS` against the manager, which must succeed; its stdout. */
  ok(...args: string[]): Promise<string>;
  /** `service create --name NAME --replicas N -- sleep 100000` on the manager, which must succeed. */
  sleepService(name: string, replicas: number): Promise<string>;
  api<T>(path: string): Promise<T>;
  /** Joins worker i (0-based, of `workers`) with the worker token (and `extra` flags). */
  joinWorker(i: number, extra?: string[]): Promise<void>;
  /** Joins host i (0-based, of `workers`) as a manager, with the manager token (several
   * managers need the manager on an etcd store: see `managerArgs`). */
  joinManager(i: number): Promise<void>;
  /** Starts worker i's daemon again on its data dir, as a user restarts one: `shoal daemon
   * --data-dir D` and nothing else (it rejoins with its saved settings). */
  restartWorker(i: number): void;
  /** Running tasks of a service whose desired state is running. */
  running(service: string): Promise<Task[]>;
  /** What the first manager's daemon printed (the joined daemons log to `daemon.log` in their
   * data dirs). */
  managerLog(): string;
  cleanup(): Promise<void>;
}

/** A bed of `hosts` machines with the manager up; `joined` workers joined already. `prefix`
 * names the bed's interfaces; `managerArgs` adds flags to the manager daemon's (it may start
 * something on the bed first, e.g. an etcd on its bridge address). */
export async function startSwarm(
  hosts: number,
  joined = hosts - 1,
  opts: {
    prefix?: string;
    managerArgs?: (manager: Host, bed: TestBed) => string[] | Promise<string[]>;
    /** Environment of the manager daemon (added to the test's). */
    managerEnv?: Record<string, string>;
  } = {},
): Promise<Swarm> {
  const bed = await createTestBed(hosts, opts.prefix !== undefined ? { prefix: opts.prefix } : {});
  const dirs = bed.hosts.map(() => mkdtempSync(join(tmpdir(), "shoal-node-")));
  const [manager, ...workers] = bed.hosts as [Host, ...Host[]];
  const cleanup = async () => {
    for (const h of bed.hosts) await h.kill().catch(() => {});
    // Tasks in namespaces of their own (bridge, overlay) are not the host's processes.
    for (const d of dirs) killTaskProcesses(d);
    await bed.cleanup();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  try {
    const extra = (await opts.managerArgs?.(manager, bed)) ?? [];
    let out = "";
    const p = manager.spawn(
      process.execPath,
      [
        SHOAL_BIN,
        "daemon",
        "--data-dir",
        dirs[0]!,
        "--listen-addr",
        `${manager.addr}:2377`,
        "--advertise-addr",
        `${manager.addr}:2377`,
        "--nats-port",
        "4222",
        "--publish-addr",
        manager.addr,
        "--consul-addr",
        "",
        "--consul-dns-addr",
        "",
        ...extra,
      ],
      opts.managerEnv ? { env: opts.managerEnv } : {},
    );
    p.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    await checkFor(20_000, () => /ready/.test(out), 50);
    const token = (await runCli(dirs[0]!, ["swarm", "join-token", "-q", "worker"])).stdout.trim();
    const s: Swarm = {
      bed,
      manager,
      workers,
      dirs,
      token,
      cli: (...args) => runCli(dirs[0]!, args),
      async ok(...args) {
        const r = await runCli(dirs[0]!, args);
        if (r.code !== 0)
          throw new Error(`shoal ${args.join(" ")}: exit ${r.code}\n${r.stdout}${r.stderr}`);
        return r.stdout;
      },
      sleepService: (name, replicas) =>
        s.ok(
          "service",
          "create",
          "--name",
          name,
          "--replicas",
          String(replicas),
          "--",
          "sleep",
          "100000",
        ),
      api: (path) => apiAt(dirs[0]!, path),
      async joinWorker(i, extra = []) {
        const h = workers[i]!;
        const r = await h.exec(
          process.execPath,
          [
            SHOAL_BIN,
            "join",
            "--token",
            token,
            "--data-dir",
            dirs[i + 1]!,
            "--advertise-addr",
            h.addr,
            "--publish-addr",
            h.addr,
            ...extra,
            `${manager.addr}:2377`,
          ],
          { timeoutMs: 30_000 },
        );
        if (r.code !== 0) throw new Error(`join of ${h.name} failed: ${r.stderr}${r.stdout}`);
      },
      async joinManager(i) {
        const h = workers[i]!;
        const t = await runCli(dirs[0]!, ["swarm", "join-token", "-q", "manager"]);
        if (t.code !== 0) throw new Error(`no manager token: ${t.stderr}${t.stdout}`);
        const r = await h.exec(
          process.execPath,
          [
            SHOAL_BIN,
            "join",
            "--token",
            t.stdout.trim(),
            "--data-dir",
            dirs[i + 1]!,
            "--listen-addr",
            `${h.addr}:2377`,
            "--advertise-addr",
            `${h.addr}:2377`,
            "--publish-addr",
            h.addr,
            "--consul-addr",
            "",
            "--consul-dns-addr",
            "",
            `${manager.addr}:2377`,
          ],
          { timeoutMs: 60_000 },
        );
        if (r.code !== 0 || !/This node joined a swarm as a manager\./.test(r.stdout))
          throw new Error(`join of ${h.name} as a manager: exit ${r.code}\n${r.stderr}${r.stdout}`);
      },
      restartWorker(i) {
        const h = workers[i]!;
        h.spawn(process.execPath, [SHOAL_BIN, "daemon", "--data-dir", dirs[i + 1]!]);
      },
      async running(service) {
        const ts = await apiAt<Task[]>(dirs[0]!, `/v1/tasks?service=${service}`);
        return ts.filter((t) => t.status.state === "running" && t.desiredState === "running");
      },
      managerLog: () => out,
      cleanup,
    };
    for (let i = 0; i < joined; i++) await s.joinWorker(i);
    return s;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * A swarm for a test on the network-namespace bed: the test is skipped (undefined returned) when
 * there is no such bed; every host's tasks and the bed go when the test ends, even on failure.
 */
export async function netnsSwarm(
  t: TestContext,
  hosts: number,
  joined = hosts - 1,
  opts: Parameters<typeof startSwarm>[2] = {},
): Promise<Swarm | undefined> {
  let swarm: Swarm;
  try {
    swarm = await startSwarm(hosts, joined, opts);
  } catch (err) {
    t.skip(`no test bed: ${(err as Error).message}`);
    return undefined;
  }
  t.after(async () => {
    for (const d of swarm.dirs) killTaskProcesses(d);
    await swarm.cleanup();
  });
  if (swarm.bed.mode !== "netns") {
    t.skip("needs network namespaces");
    return undefined;
  }
  return swarm;
}

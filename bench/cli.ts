// `npm run bench -- cli`: how fast the command-line client starts and answers, shoal's next to
// Docker's, in the same run: `shoal version` / `docker version` and `shoal service ls` /
// `docker service ls`, each against a running daemon with one service of one running replica.
//
// - shoal: bin/shoal.js of this checkout, run as `node bin/shoal.js ...` with SHOAL_DATA_DIR
//   pointing at a `shoal daemon` started here (bench/shoal-daemon.ts).
// - docker: a Docker engine started here (bench/swarm-docker.ts: its own namespace, data root and
//   socket) made a single-node swarm, reached with DOCKER_HOST=unix://<its socket>; the client
//   is the installed docker CLI whose version matches the engine (--docker-cli to choose).
//
// Each command runs --cli-runs times (default 20) after two warm-up runs, the four commands taking
// turns, so a change of the machine's load hits all of them alike. Wall time is taken from the
// spawn until the process exited; peak RSS is GNU time's %M (the kernel's maxrss of the command,
// from wait4). Both include running the command under /usr/bin/time, the same for every command;
// a note gives that floor (`true` under the same harness). Every run must exit 0 and print what the
// command prints when it worked, or its column says "failed".

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cpuSnapshot, otherLoad } from "./procfs.js";
import { track } from "./procs.js";
import type { Row, Suite, SuiteContext, SuiteResult } from "./report.js";
import { SHOAL_BIN, serviceSpec, startShoalDaemon, type ShoalDaemon } from "./shoal-daemon.js";
import {
  IMAGE,
  SKIP_DOCKER,
  dockerClientVersion,
  dockerUnavailable,
  engineClient,
  startSwarmNode,
  type DockerBed,
  type DockerEngine,
} from "./swarm-docker.js";

const TIME = "/usr/bin/time";
const SERVICE = "bench";
const WARMUP = 2;
/** Other processes' share of the CPUs above which the values are marked. */
const BUSY = 0.1;

interface Command {
  /** The row group ("version", "service ls") and the column ("docker", "shoal"). */
  row: string;
  column: "docker" | "shoal";
  argv: string[];
  env: Record<string, string>;
  /** What the output must contain when the command worked. */
  expect: RegExp;
}

interface Sample {
  wallMs: number;
  rssBytes: number | null;
  stdout: string;
}

class CommandFailed extends Error {
  override name = "CommandFailed";
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Runs the command once (under GNU time when rssFile is given): wall time and peak RSS. */
function runOnce(cmd: Command, rssFile: string | null): Promise<Sample> {
  const argv = rssFile ? [TIME, "-f", "%M", "-o", rssFile, "--", ...cmd.argv] : cmd.argv;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = track(
      spawn(argv[0]!, argv.slice(1), { env: cmd.env, stdio: ["ignore", "pipe", "pipe"] }),
    );
    let wallMs = 0;
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("exit", () => (wallMs = performance.now() - t0));
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const what = `\`${cmd.argv.join(" ")}\``;
      if (code !== 0) {
        const tail = stderr.trim().split("\n").slice(-3).join(" | ");
        reject(new CommandFailed(`${what} exited ${signal ?? code}: ${tail}`));
        return;
      }
      if (!cmd.expect.test(stdout)) {
        reject(new CommandFailed(`${what} printed no ${cmd.expect}: ${stdout.slice(0, 200)}`));
        return;
      }
      let rssBytes: number | null = null;
      if (rssFile) {
        const last = readFileSync(rssFile, "utf8").trim().split("\n").pop() ?? "";
        if (/^\d+$/.test(last)) rssBytes = Number(last) * 1024;
      }
      resolve({ wallMs, rssBytes, stdout });
    });
  });
}

/** Nearest-rank percentile (p in 0..1) of the values. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
}

async function until(fn: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/** A minimal environment, the same for both clients apart from where their daemon is. */
function baseEnv(): Record<string, string> {
  return {
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
    HOME: process.env["HOME"] ?? "/root",
    LANG: "C.UTF-8",
  };
}

// ---------------------------------------------------------------------------------------------
// The two daemons and the commands against them.

/** shoal's commands, against a daemon running one service of one `sleep` task. */
async function shoalCommands(d: ShoalDaemon, notes: string[]): Promise<Command[]> {
  const { id } = await d.api<{ id: string }>("POST", "/v1/services", {
    spec: serviceSpec({ name: SERVICE }),
  });
  const ok = await until(async () => {
    const tasks = await d.api<Array<{ status: { state: string } }>>(
      "GET",
      `/v1/tasks?service=${id}`,
    );
    return tasks.some((t) => t.status.state === "running");
  }, 60_000);
  if (!ok) notes.push("shoal: the service's task did not reach running");
  notes.push(
    `shoal: ${process.execPath} ${SHOAL_BIN} (node ${process.version}), SHOAL_DATA_DIR=<the daemon's data dir>; ` +
      `the daemon runs one service of one \`sleep 100000\` task (process driver)`,
  );
  const env = { ...baseEnv(), SHOAL_DATA_DIR: d.dataDir };
  const shoal = [process.execPath, SHOAL_BIN];
  return [
    { row: "version", column: "shoal", argv: [...shoal, "version"], env, expect: /shoal version/ },
    {
      row: "service ls",
      column: "shoal",
      argv: [...shoal, "service", "ls"],
      env,
      expect: new RegExp(SERVICE),
    },
  ];
}

/** The docker CLI to measure: --docker-cli, else the installed one matching the engine. */
function chooseClient(ctx: SuiteContext, engineVersion: string): { path: string; version: string } {
  const wanted = ctx.options["docker-cli"];
  if (typeof wanted === "string") return { path: wanted, version: dockerClientVersion(wanted)! };
  return engineClient(engineVersion);
}

/** Docker's commands, against a single-node swarm running one service of one `sleep` task. */
async function dockerCommands(
  ctx: SuiteContext,
  engine: DockerEngine,
  configDir: string,
  notes: string[],
  params: Record<string, unknown>,
): Promise<Command[]> {
  const v = engine.versions;
  params["docker"] = v;
  const client = chooseClient(ctx, v["dockerd"] ?? "");
  params["dockerCli"] = client;
  await engine.docker([
    "service",
    "create",
    "-d",
    "--name",
    SERVICE,
    "--replicas",
    "1",
    "--init",
    "--network",
    "host",
    "--no-resolve-image",
    IMAGE,
    "sleep",
    "100000",
  ]);
  const filters = encodeURIComponent(JSON.stringify({ service: [SERVICE] }));
  const ok = await until(async () => {
    const tasks = await engine.api<Array<{ Status: { State: string } }>>(
      `/tasks?filters=${filters}`,
    );
    return tasks.some((t) => t.Status.State === "running");
  }, 60_000);
  if (!ok) notes.push("docker: the service's task did not reach running");
  notes.push(
    `docker: CLI ${client.path} ${client.version}` +
      (client.version === v["dockerd"] ? "" : " (not the engine's version)") +
      `, engine dockerd ${v["dockerd"] ?? "?"} (API ${v["api"] ?? "?"}) in its own network namespace ` +
      `(bench/swarm-docker.ts), a single-node swarm running one service of one \`sleep 100000\` ` +
      `container; DOCKER_HOST=unix://<its socket>, an empty DOCKER_CONFIG`,
  );
  mkdirSync(configDir, { recursive: true });
  const env = { ...baseEnv(), DOCKER_HOST: `unix://${engine.sock}`, DOCKER_CONFIG: configDir };
  return [
    { row: "version", column: "docker", argv: [client.path, "version"], env, expect: /Server:/ },
    {
      row: "service ls",
      column: "docker",
      argv: [client.path, "service", "ls"],
      env,
      expect: new RegExp(SERVICE),
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Measuring and reporting.

interface Measured {
  samples: Map<Command, Sample[]>;
  failed: Map<Command, string>;
  /** Other processes' share of the CPUs while the commands ran. */
  load: number;
}

/** WARMUP + runs rounds; in each, every command runs once, in turn. */
async function measure(
  ctx: SuiteContext,
  commands: Command[],
  runs: number,
  rssFile: string | null,
): Promise<Measured> {
  const samples = new Map<Command, Sample[]>(commands.map((c) => [c, []]));
  const failed = new Map<Command, string>();
  ctx.log(`cli: ${commands.length} commands, ${WARMUP} warm-up + ${runs} runs each, taking turns`);
  const before = cpuSnapshot();
  for (let i = 0; i < WARMUP + runs; i++) {
    for (const c of commands) {
      if (failed.has(c)) continue;
      try {
        const s = await runOnce(c, rssFile);
        if (i >= WARMUP) samples.get(c)!.push(s);
      } catch (err) {
        failed.set(c, errorText(err));
        ctx.log(`cli: ${errorText(err)}`);
      }
    }
  }
  return { samples, failed, load: otherLoad(before, cpuSnapshot()) };
}

function tableRows(commands: Command[], m: Measured, runs: number, dockerMissing: string | null) {
  const find = (row: string, column: string) =>
    commands.find((x) => x.row === row && x.column === column);
  const versionOf = (column: string, re: RegExp): string => {
    const c = find("version", column);
    const out = c ? m.samples.get(c)?.[0]?.stdout : undefined;
    return out === undefined ? "—" : (re.exec(out)?.[1] ?? "?");
  };
  const rows: Row[] = [
    {
      id: "client-version",
      label: "client version",
      unit: "text",
      better: null,
      values: {
        docker: versionOf("docker", /Version:\s+(\S+)/),
        shoal: versionOf("shoal", /shoal version (\S+)/),
      },
    },
  ];
  const marks: Record<string, string> = {};
  if (m.load > BUSY) for (const c of commands) marks[c.column] = "*";
  for (const row of ["version", "service ls"]) {
    const stat = (pick: (s: Sample[]) => number | null) => {
      const values: Record<string, number | string> = {};
      for (const column of ["docker", "shoal"] as const) {
        const c = find(row, column);
        if (!c) values[column] = column === "docker" && dockerMissing !== null ? "not run" : "—";
        else if (m.failed.has(c)) values[column] = "failed";
        else values[column] = pick(m.samples.get(c)!) ?? "not measured";
      }
      return values;
    };
    const wall = (p: number) => (s: Sample[]) =>
      percentile(
        s.map((x) => x.wallMs),
        p,
      );
    const rss = (s: Sample[]) =>
      s.some((x) => x.rssBytes === null)
        ? null
        : percentile(
            s.map((x) => x.rssBytes!),
            0.5,
          );
    const cmd = `\`${row}\``;
    rows.push(
      {
        id: `${row}-wall-median`,
        label: `${cmd}: wall time, median of ${runs}`,
        unit: "ms",
        better: "lower",
        values: stat(wall(0.5)),
        marks,
      },
      {
        id: `${row}-wall-p90`,
        label: `${cmd}: wall time, p90`,
        unit: "ms",
        better: "lower",
        values: stat(wall(0.9)),
        marks,
      },
      {
        id: `${row}-rss`,
        label: `${cmd}: peak RSS, median`,
        unit: "bytes",
        better: "lower",
        values: stat(rss),
      },
    );
  }
  return rows;
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const runs = ctx.options["cli-runs"] === undefined ? 20 : Number(ctx.options["cli-runs"]);
  if (!(Number.isInteger(runs) && runs >= 1 && runs <= 1000)) {
    throw new Error("--cli-runs must be an integer from 1 to 1000");
  }
  const wanted = ctx.options["docker-cli"];
  const notes: string[] = [];
  const params: Record<string, unknown> = { runs, warmup: WARMUP };
  const tmp = mkdtempSync(join(tmpdir(), "shoal-bench-cli-"));
  const rssFile = existsSync(TIME) ? join(tmp, "rss") : null;
  if (!rssFile) notes.push(`${TIME} (GNU time) is not installed: peak RSS not measured`);

  let daemon: ShoalDaemon | null = null;
  let bed: DockerBed | null = null;
  try {
    daemon = await startShoalDaemon();
    const commands = await shoalCommands(daemon, notes);

    /** Why the docker column is empty, or null when it is measured. */
    let dockerMissing = ctx.options["skip-docker"] === true ? "--skip-docker" : dockerUnavailable();
    if (dockerMissing === null && typeof wanted === "string" && !dockerClientVersion(wanted)) {
      dockerMissing = `--docker-cli ${wanted}: \`${wanted} --version\` fails`;
    }
    if (dockerMissing === null) {
      try {
        bed = await startSwarmNode(ctx);
        commands.unshift(
          ...(await dockerCommands(ctx, bed.engines[0]!, join(tmp, "docker"), notes, params)),
        );
      } catch (err) {
        dockerMissing = errorText(err).split("\n").join(" | ");
      }
    }
    if (dockerMissing !== null) {
      notes.push(`docker column missing: ${dockerMissing}`);
      ctx.log(`cli: docker column missing: ${dockerMissing}`);
    }

    // The floor: spawning a process that does nothing, through the same harness.
    const floorCmd: Command = {
      row: "",
      column: "shoal",
      argv: ["true"],
      env: baseEnv(),
      expect: /^/,
    };
    const floor: number[] = [];
    for (let i = 0; i < 5; i++) floor.push((await runOnce(floorCmd, rssFile)).wallMs);
    // Node's own start (no module of ours), the least any Node CLI can take here.
    const nodeFloor: number[] = [];
    const nodeCmd: Command = { ...floorCmd, argv: [process.execPath, "-e", "0"] };
    for (let i = 0; i < 9; i++) nodeFloor.push((await runOnce(nodeCmd, rssFile)).wallMs);

    const m = await measure(ctx, commands, runs, rssFile);
    const rows = tableRows(commands, m, runs, dockerMissing);
    const share = `${(m.load * 100).toFixed(0)} %`;
    notes.push(
      m.load > BUSY
        ? `* other processes used ${share} of the CPUs during the runs: the wall times are provisional`
        : `other processes used ${share} of the CPUs during the runs`,
    );
    for (const why of m.failed.values()) notes.push(`failed: ${why}`);
    notes.push(
      `floor: \`true\` through the same harness (spawned by the bench${rssFile ? `, under ${TIME}` : ""}) ` +
        `takes ${percentile(floor, 0.5).toFixed(1)} ms (median of 5); every wall time above includes it`,
    );
    notes.push(
      `node floor: \`node -e 0\` (node ${process.version}, no shoal module) takes ` +
        `${percentile(nodeFloor, 0.5).toFixed(1)} ms (median of 9): what any Node.js CLI pays before its first line`,
    );
    params["nodeFloorMs"] = percentile(nodeFloor, 0.5);
    params["otherLoad"] = m.load;
    params["floorMs"] = percentile(floor, 0.5);
    params["samples"] = [...m.samples].map(([c, s]) => ({
      command: `${c.column} ${c.row}`,
      wallMs: s.map((x) => Math.round(x.wallMs * 10) / 10),
      rssKiB: s.map((x) => (x.rssBytes === null ? null : x.rssBytes / 1024)),
    }));
    return {
      suite: "cli",
      title: "CLI start against a running daemon (ratio < 1 means shoal is faster / smaller)",
      columns: [
        { id: "docker", label: "docker" },
        { id: "shoal", label: "shoal" },
      ],
      rows,
      notes,
      params,
    };
  } finally {
    await daemon?.stop();
    await bed?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

export const cliSuite: Suite = {
  name: "cli",
  description:
    "CLI start: `version` and `service ls` against a running daemon, wall time and peak RSS (vs the docker CLI)",
  options: {
    "cli-runs": { type: "string", description: "cli: runs per command (default 20)" },
    "docker-cli": {
      type: "string",
      description:
        "cli: the docker client to measure (default: the installed one matching the engine)",
    },
    ...SKIP_DOCKER,
  },
  run,
};

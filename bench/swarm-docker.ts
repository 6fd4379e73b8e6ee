// The Docker Swarm column of the `swarm` bench suite: the same node-loss scenario as shoal's, with
// real Docker engines. On the network-namespace test bed (test/cluster/netns.ts) each host runs
// its own dockerd (which starts its own containerd), a manager and two workers form a swarm with
// Swarm's defaults (dispatcher heartbeat period 5 s), a service runs 6 replicas of `sleep 100000`
// (host network, so every container process lives in its host's namespace), one worker host is
// killed outright (every process in its namespace) and the time until 6 tasks run again on the
// survivors is measured. A fresh bed and swarm for every run.
//
// Three engines on one kernel must not collide. Each dockerd runs under `ip netns exec` (its own
// network and mount namespace) behind a small shell prelude that, inside that private mount
// namespace only, mounts a tmpfs on /run (exec root, pid file, containerd's shim sockets in
// /run/containerd/s, /run/docker/plugins) and on /etc/docker (the engine's key.json), and mounts
// the cgroup hierarchies again (`ip netns exec` mounts a fresh /sys without them). The data root
// and the API socket live in a directory of ours on the real file system; the API socket is how
// the bench (in the root namespace) talks to each engine. No bridge, no iptables, no NAT. The
// containers' cgroups go under a parent of ours, so cleanup can find (and kill) any container
// process that escaped its namespace and remove the cgroups that a killed engine left behind.
//
// No registry is reachable: the image is a one-binary rootfs (a static busybox) made into a
// tarball here and `docker import`ed as bb:local on every engine; the service is created with
// --no-resolve-image, and the engines run with DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 (else every
// task start first tries to pull bb:local and waits ~20 s for that to fail).
//
// The same engines serve the other suites that compare with Docker: startDockerBed() starts n of
// them on a fresh bed (bb:local imported on each), startSwarmNode() one engine made a single-node
// swarm (the orchestrator and cli suites). Every engine is stopped, and everything it left
// removed, by the bed's stop(), by the exit hooks, or by the next run's sweep.

import { execFile, execFileSync, type ChildProcess } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  rmdirSync,
  symlinkSync,
} from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { createTestBed, netnsAvailable, type Host, type TestBed } from "../test/cluster/netns.js";
import type { SuiteContext, SuiteOption } from "./report.js";

/** What the Docker column shows: a median in seconds, or why there is none. */
export interface DockerNodeLoss {
  /** Median seconds, or a short text ("not run: ...", "failed: ..."). */
  value: number | string;
  /** Each run in ms (successful runs only). */
  runsMs: number[];
  /** Lines for the table's notes. */
  notes: string[];
  /** Versions and configuration, for the JSON params. */
  params: Record<string, unknown>;
}

/** `--skip-docker`: the option of every suite that starts Docker engines. */
export const SKIP_DOCKER: Record<string, SuiteOption> = {
  "skip-docker": {
    type: "boolean",
    description:
      "swarm, managers, orchestrator, cli, stack: leave out the Docker columns (they need root, dockerd, containerd, runc, busybox-static)",
  },
};

/** The image every engine has: a static busybox (sh, sleep), imported, no registry involved. */
export const IMAGE = "bb:local";
const SERVICE = "s";
const REPLICAS = 6;
const PREFIX = "shoal-dk-";
const BASE = join(tmpdir(), `${PREFIX}${process.pid}`);
/** The containers' cgroup parent (cgroupfs driver: /sys/fs/cgroup/<controller>/<parent>/<id>). */
const CGROUP_PARENT = `${PREFIX}${process.pid}`;
const CGROUP_ROOT = "/sys/fs/cgroup";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs: number,
  what: string,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s: ${what}`);
    await sleep(everyMs);
  }
}

/** Full path of a program on PATH (plus the sbin directories), or null. */
function which(name: string): string | null {
  const dirs = [...(process.env["PATH"] ?? "").split(delimiter), "/usr/sbin", "/sbin"];
  for (const d of dirs) {
    if (d !== "" && existsSync(join(d, name))) return join(d, name);
  }
  return null;
}

/** True when the file is a 64-bit ELF executable without a program interpreter (static). */
function isStaticElf(path: string): boolean {
  try {
    const b = readFileSync(path);
    if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2) return false;
    const phoff = Number(b.readBigUInt64LE(0x20));
    const phentsize = b.readUInt16LE(0x36);
    const phnum = b.readUInt16LE(0x38);
    for (let i = 0; i < phnum; i++) {
      if (b.readUInt32LE(phoff + i * phentsize) === 3) return false; // PT_INTERP
    }
    return true;
  } catch {
    return false;
  }
}

interface Tools {
  dockerd: string;
  docker: string;
  busybox: string;
}

/** The programs the Docker runs need, or the reason they cannot run. */
function findTools(): Tools | string {
  if (!netnsAvailable()) return "network namespaces unavailable (needs root and iproute2)";
  const dockerd = which("dockerd");
  if (!dockerd) return "dockerd not installed (apt-get install docker.io)";
  const docker = which("docker");
  if (!docker) return "docker CLI not installed";
  if (!which("containerd") || !which("runc")) return "containerd/runc not installed";
  const busybox = ["/bin/busybox", "/usr/bin/busybox"].find((p) => isStaticElf(p));
  if (!busybox) return "no static busybox for the image (apt-get install busybox-static)";
  if (!which("tar")) return "tar not installed";
  return { dockerd, docker, busybox };
}

// ---------------------------------------------------------------------------------------------
// The engine API over its unix socket (polling is much cheaper than spawning the CLI).

function api<T>(sock: string, path: string, method = "GET", body?: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> =
      body === undefined ? {} : { "Content-Type": "application/json" };
    const req = request({ socketPath: sock, path, method, headers, timeout: 5000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => {
        if ((res.statusCode ?? 500) >= 300) {
          reject(new Error(`${method} ${path}: ${res.statusCode} ${text.trim()}`));
          return;
        }
        try {
          resolve((text === "" ? null : JSON.parse(text)) as T);
        } catch {
          resolve(text as T);
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timeout`)));
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

interface ApiTask {
  ID: string;
  NodeID?: string;
  DesiredState: string;
  Status: { State: string };
}

interface ApiNode {
  ID: string;
  Status: { State: string; Addr?: string };
  ManagerStatus?: { Leader?: boolean; Reachability?: string };
}

interface ApiVersion {
  Version: string;
  ApiVersion: string;
  Components?: Array<{ Name: string; Version: string }>;
}

// ---------------------------------------------------------------------------------------------
// One engine per host.

/** Shell that rebuilds, in the private mount namespace of `ip netns exec`, what dockerd needs. */
function prelude(): string {
  const lines = [
    "set -e",
    "mount -t tmpfs -o mode=755 shoal-run /run",
    "if [ -d /etc/docker ]; then mount -t tmpfs -o mode=755 shoal-etc /etc/docker; fi",
  ];
  // The cgroup mounts of the root namespace, in order (`ip netns exec` remounted /sys without them).
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const mnt = left.split(" ")[4] ?? "";
    const [fstype, , superOpts = ""] = right.split(" ");
    if (mnt !== CGROUP_ROOT && !mnt.startsWith(`${CGROUP_ROOT}/`)) continue;
    const opts = superOpts
      .split(",")
      .filter((o) => o !== "rw" && o !== "ro")
      .join(",");
    const mkdir = mnt === CGROUP_ROOT ? "" : `mkdir -p '${mnt}'; `;
    if (fstype === "tmpfs") lines.push(`${mkdir}mount -t tmpfs -o mode=755 cgroup '${mnt}'`);
    else if (fstype === "cgroup2") lines.push(`${mkdir}mount -t cgroup2 cgroup2 '${mnt}'`);
    else if (fstype === "cgroup")
      lines.push(`${mkdir}mount -t cgroup -o '${opts}' cgroup '${mnt}'`);
  }
  // Symlinks such as cpu -> cpu,cpuacct in a v1 layout.
  try {
    for (const e of readdirSync(CGROUP_ROOT, { withFileTypes: true })) {
      if (e.isSymbolicLink()) {
        const to = readlinkSync(join(CGROUP_ROOT, e.name));
        lines.push(`ln -sfn '${to}' '${CGROUP_ROOT}/${e.name}'`);
      }
    }
  } catch {
    // no cgroup file system: dockerd will say so
  }
  lines.push('exec "$@"');
  return lines.join("\n");
}

interface Engine {
  host: Host;
  sock: string;
  log: string;
  dataRoot: string;
  child: ChildProcess;
}

function startEngine(tools: Tools, host: Host, dir: string): Engine {
  const dataRoot = join(dir, "data");
  mkdirSync(dataRoot, { recursive: true });
  const sock = join(dir, "docker.sock");
  const log = join(dir, "dockerd.log");
  const args = [
    "--data-root",
    dataRoot,
    "--exec-root",
    "/run/dk", // the private tmpfs /run
    "--pidfile",
    "/run/dk.pid",
    "-H",
    `unix://${sock}`,
    "--bridge=none",
    "--iptables=false",
    "--ip6tables=false",
    "--ip-forward=false",
    "--ip-masq=false",
    "--cgroup-parent",
    `/${CGROUP_PARENT}`,
    "--log-level",
    "info",
  ];
  const fd = openSync(log, "a");
  try {
    const child = host.spawn("sh", ["-c", prelude(), "sh", tools.dockerd, ...args], {
      stdio: ["ignore", fd, fd],
      env: {
        PATH: `${process.env["PATH"] ?? ""}:/usr/sbin:/sbin`,
        // Without a registry, every task start would first try (and fail, after ~20 s of
        // timeouts) to pull bb:local; with this the engine uses the local image, as Docker's
        // own integration tests do.
        DOCKER_SERVICE_PREFER_OFFLINE_IMAGE: "1",
      },
    });
    return { host, sock, log, dataRoot, child };
  } finally {
    closeSync(fd);
  }
}

function tail(file: string, n = 8): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-n).join("\n");
  } catch {
    return "";
  }
}

async function engineUp(e: Engine): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (e.child.exitCode !== null || e.child.signalCode !== null) {
      throw new Error(`dockerd on ${e.host.name} exited:\n${tail(e.log)}`);
    }
    const pong = await api<string>(e.sock, "/_ping").catch(() => null);
    if (pong === "OK") return;
    if (Date.now() > deadline)
      throw new Error(`dockerd on ${e.host.name} did not answer:\n${tail(e.log)}`);
    await sleep(50);
  }
}

function cli(
  tools: Tools,
  e: Engine,
  apiVersion: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      tools.docker,
      args,
      {
        timeout: timeoutMs,
        env: {
          ...process.env,
          DOCKER_HOST: `unix://${e.sock}`,
          DOCKER_API_VERSION: apiVersion,
          DOCKER_CONFIG: join(BASE, "cli"),
        },
      },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`docker ${args.join(" ")}: ${stderr.trim() || err.message}`));
        else resolve(stdout.trim());
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Cleanup beyond the bed's: container processes that left their namespace (there should be
// none), the cgroups a killed engine leaves behind, our directory.

/** Kills every process in our cgroup parent (any hierarchy) and removes those cgroups. */
async function cleanCgroups(parent: string): Promise<number> {
  let escaped = 0;
  let hierarchies: string[] = [];
  try {
    hierarchies = readdirSync(CGROUP_ROOT, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join(CGROUP_ROOT, e.name));
  } catch {
    return 0;
  }
  if (existsSync(join(CGROUP_ROOT, "cgroup.procs"))) hierarchies.push(CGROUP_ROOT); // pure v2
  const deadline = Date.now() + 5000;
  for (const h of hierarchies) {
    const top = join(h, parent);
    if (!existsSync(top)) continue;
    const dirs: string[] = [];
    const walk = (d: string) => {
      dirs.push(d);
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
      }
    };
    walk(top);
    for (const d of dirs.reverse()) {
      for (;;) {
        let pids: number[] = [];
        try {
          pids = readFileSync(join(d, "cgroup.procs"), "utf8")
            .split("\n")
            .filter((l) => l !== "")
            .map(Number);
        } catch {
          // not a cgroup with procs (or gone)
        }
        for (const pid of pids) {
          escaped++;
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // gone already
          }
        }
        try {
          rmdirSync(d);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT") break;
          if (Date.now() > deadline) throw new Error(`cannot remove cgroup ${d}: ${String(err)}`);
          await sleep(20);
        }
      }
    }
  }
  return escaped;
}

/** rm -rf, retried while the mounts of a dying mount namespace still pin it. */
async function removeDir(dir: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      rmSync(dir, { recursive: true, force: true });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Leftovers of earlier bench processes that died without cleaning up. */
async function sweepStale(): Promise<void> {
  const stale = (name: string) => {
    const m = new RegExp(`^${PREFIX}(\\d+)$`).exec(name);
    return m !== null && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]));
  };
  const parents = new Set<string>();
  try {
    for (const h of readdirSync(CGROUP_ROOT)) {
      try {
        for (const e of readdirSync(join(CGROUP_ROOT, h))) if (stale(e)) parents.add(e);
      } catch {
        // not a directory
      }
    }
  } catch {
    // no cgroups
  }
  for (const p of parents) await cleanCgroups(p).catch(() => undefined);
  for (const e of readdirSync(tmpdir())) if (stale(e)) await removeDir(join(tmpdir(), e));
}

let exitHooked = false;

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  // The bed's own exit handler (installed earlier) kills the namespaces' processes first.
  process.on("exit", () => {
    try {
      rmSync(BASE, { recursive: true, force: true });
    } catch {
      // mounts may still pin it; sweepStale() of a later run removes it
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Beds of engines, for every suite that compares with Docker. One bed at a time per process (the
// engines of all beds share one cgroup parent, which stop() empties).

/** One of our Docker engines, reached over its API socket from the root namespace. */
export interface DockerEngine {
  /** The test-bed host (network namespace) it runs in. */
  host: Host;
  /** Its API socket, on the real file system: DOCKER_HOST=unix://<sock>. */
  sock: string;
  /** Versions as the engine reports them (dockerd, api, containerd, runc) and the setup CLI's. */
  versions: Record<string, string>;
  /** One call of the Engine API, JSON in and out. */
  api<T>(path: string, method?: string, body?: unknown): Promise<T>;
  /** The docker CLI against this engine, for setup (`import`, `swarm ...`); resolves stdout. */
  docker(args: string[], timeoutMs?: number): Promise<string>;
}

export interface DockerBed {
  engines: DockerEngine[];
  /** Kills the engines and their containers, removes the bed and its files. Never throws. */
  stop(): Promise<void>;
}

/** Why no Docker engine can be started here, or null when one can. */
export function dockerUnavailable(): string | null {
  const tools = findTools();
  return typeof tools === "string" ? tools : null;
}

let swept = false;
let bedCount = 0;

/**
 * Starts n engines, one per host of a fresh test bed, each with the image IMAGE imported. On
 * failure everything started is stopped again and the error (with the engine's log) is thrown.
 */
export async function startDockerBed(
  ctx: SuiteContext,
  n: number,
  opts: { prefix?: string } = {},
): Promise<DockerBed> {
  const tools = findTools();
  if (typeof tools === "string") throw new Error(tools);
  if (!swept) {
    swept = true;
    await sweepStale();
  }
  hookExit();
  const runDir = join(BASE, `b${++bedCount}`);
  let bed: TestBed | null = null;
  const stop = async (): Promise<void> => {
    const b = bed;
    bed = null;
    if (b)
      await b.cleanup().catch((err: unknown) => ctx.log(`docker: bed cleanup: ${String(err)}`));
    const escaped = await cleanCgroups(CGROUP_PARENT).catch((err: unknown) => {
      ctx.log(`docker: cgroup cleanup: ${String(err)}`);
      return 0;
    });
    if (escaped > 0) ctx.log(`docker: killed ${escaped} container process(es) outside the bed`);
    await removeDir(runDir).catch((err: unknown) =>
      ctx.log(`docker: rm ${runDir}: ${String(err)}`),
    );
  };
  try {
    mkdirSync(runDir, { recursive: true });
    const image = makeImage(tools.busybox, runDir);
    bed = await createTestBed(n, opts.prefix !== undefined ? { prefix: opts.prefix } : {});
    const started = bed.hosts.map((h) => startEngine(tools, h, join(runDir, h.name)));
    await Promise.all(started.map((e) => engineUp(e)));
    const ver = await api<ApiVersion>(started[0]!.sock, "/version");
    const apiVersion = ver.ApiVersion;
    const versions: Record<string, string> = { dockerd: ver.Version, api: apiVersion };
    for (const c of ver.Components ?? []) {
      if (c.Name === "containerd" || c.Name === "runc") versions[c.Name] = c.Version;
    }
    const engines = started.map((e): DockerEngine => ({
      host: e.host,
      sock: e.sock,
      versions,
      api: (path, method, body) => api(e.sock, path, method, body),
      docker: (args, timeoutMs) => cli(tools, e, apiVersion, args, timeoutMs),
    }));
    versions["cli"] = await engines[0]!.docker(["version", "-f", "{{.Client.Version}}"]);
    await Promise.all(engines.map((e) => e.docker(["import", image, IMAGE])));
    return { engines, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * One engine made a single-node swarm with `docker swarm init --advertise-addr 127.0.0.1` (the
 * loopback of its own namespace, so its ports 2377 and 7946 collide with nothing).
 */
export async function startSwarmNode(ctx: SuiteContext): Promise<DockerBed> {
  const bed = await startDockerBed(ctx, 1);
  try {
    await bed.engines[0]!.docker(["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    return bed;
  } catch (err) {
    await bed.stop();
    throw err;
  }
}

/** Every docker CLI installed (each `docker` on PATH, /usr/bin/docker) with its version. */
export function dockerClients(): Array<{ path: string; version: string }> {
  const seen = new Set<string>();
  const out: Array<{ path: string; version: string }> = [];
  const dirs = [...(process.env["PATH"] ?? "").split(delimiter), "/usr/bin"];
  for (const d of dirs) {
    const path = join(d, "docker");
    if (d === "" || !existsSync(path)) continue;
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      continue;
    }
    if (seen.has(real)) continue;
    seen.add(real);
    const version = dockerClientVersion(path);
    if (version !== null) out.push({ path, version });
  }
  return out;
}

/** The installed docker CLI whose version is the engine's, else the first one installed. */
export function engineClient(engineVersion: string): { path: string; version: string } {
  const clients = dockerClients();
  const client = clients.find((c) => c.version === engineVersion) ?? clients[0];
  if (!client) throw new Error("no docker CLI installed");
  return client;
}

/** The version a docker CLI reports (`docker --version`), or null when it does not run. */
export function dockerClientVersion(path: string): string | null {
  try {
    const text = execFileSync(path, ["--version"], { encoding: "utf8", timeout: 10_000 });
    return /version ([^,\s]+)/.exec(text)?.[1] ?? "?";
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// The node-loss scenario.

interface Run {
  ms: number;
  downMs: number | null;
  spread: string;
  versions: Record<string, string>;
}

/**
 * Makes the bed's engines one swarm with Swarm's defaults: the first runs `swarm init`, the next
 * `managers - 1` join with the manager token, the rest with the worker token, each advertising
 * its host's address. Resolves the node ids (in the engines' order) once the first engine sees
 * every node ready and every manager reachable.
 */
async function formSwarm(engines: DockerEngine[], managers: number): Promise<string[]> {
  const first = engines[0]!;
  await first.docker(["swarm", "init", "--advertise-addr", first.host.addr]);
  const tokens = {
    manager: await first.docker(["swarm", "join-token", "-q", "manager"]),
    worker: await first.docker(["swarm", "join-token", "-q", "worker"]),
  };
  for (const [i, e] of engines.entries()) {
    if (i === 0) continue;
    const token = i < managers ? tokens.manager : tokens.worker;
    await e.docker([
      "swarm",
      "join",
      "--advertise-addr",
      e.host.addr,
      "--token",
      token,
      `${first.host.addr}:2377`,
    ]);
  }
  const nodeIds = await Promise.all(
    engines.map(async (e) => {
      const info = await e.api<{ Swarm: { NodeID: string } }>("/info");
      return info.Swarm.NodeID;
    }),
  );
  await until(
    async () => {
      const nodes = await first.api<ApiNode[]>("/nodes");
      return (
        nodes.length === engines.length &&
        nodes.every((n) => n.Status.State === "ready") &&
        nodes.filter((n) => n.ManagerStatus?.Reachability === "reachable").length === managers
      );
    },
    60_000,
    `${engines.length} nodes ready, ${managers} managers reachable`,
  );
  return nodeIds;
}

/** `docker service create` of `replicas` x `sleep 100000` (host network, restart delay 0 s). */
async function createSleepService(mgr: DockerEngine, replicas: number): Promise<void> {
  await mgr.docker([
    "service",
    "create",
    "-d",
    "--name",
    SERVICE,
    "--replicas",
    String(replicas),
    "--restart-delay",
    "0s",
    "--network",
    "host",
    "--no-resolve-image",
    IMAGE,
    "sleep",
    "100000",
  ]);
}

/** The service's tasks desired and actually running, as the manager `e` reports them. */
async function runningTasks(e: DockerEngine): Promise<ApiTask[]> {
  const filters = encodeURIComponent(
    JSON.stringify({ service: [SERVICE], "desired-state": ["running"] }),
  );
  return (await e.api<ApiTask[]>(`/tasks?filters=${filters}`)).filter(
    (t) => t.DesiredState === "running" && t.Status.State === "running",
  );
}

/** Waits for `replicas` running tasks; they, and how many each node runs ("2/2/2"). */
async function allRunning(
  mgr: DockerEngine,
  replicas: number,
  nodeIds: string[],
): Promise<{ tasks: ApiTask[]; perNode: number[]; spread: string }> {
  const tasks = await until(
    async () => {
      const r = await runningTasks(mgr);
      return r.length === replicas ? r : null;
    },
    60_000,
    `${replicas} tasks running`,
  );
  const perNode = nodeIds.map((id) => tasks.filter((t) => t.NodeID === id).length);
  return { tasks, perNode, spread: perNode.join("/") };
}

/** Throws unless the victim's `expected` tasks are `sleep` processes in its namespace (else
 * killing the namespace would miss them). */
function checkInNamespace(victim: DockerEngine, expected: number): void {
  const inNs = sleepsIn(victim.host.ns);
  if (inNs !== expected) {
    throw new Error(`${expected} tasks on the victim but ${inNs} sleep processes in its namespace`);
  }
}

async function nodeLossOnce(ctx: SuiteContext, k: number): Promise<Run> {
  const bed = await startDockerBed(ctx, 3);
  try {
    const [mgr, , w2] = bed.engines as [DockerEngine, DockerEngine, DockerEngine];
    const versions = mgr.versions;
    const nodeIds = await formSwarm(bed.engines, 1);
    const victimId = nodeIds[2]!;
    ctx.log(`docker: run ${k}: swarm of 3 engines ready (${versions["dockerd"]})`);

    await createSleepService(mgr, REPLICAS);
    const { perNode, spread } = await allRunning(mgr, REPLICAS, nodeIds);
    if (perNode[2] === 0) throw new Error(`no task on the worker to kill (spread ${spread})`);
    checkInNamespace(w2, perNode[2]!);
    const running = () => runningTasks(mgr);

    const t0 = performance.now();
    await w2.host.kill();
    let downMs: number | null = null;
    await until(
      async () => {
        if (downMs === null) {
          const nodes = await mgr.api<ApiNode[]>("/nodes");
          if (nodes.find((n) => n.ID === victimId)?.Status.State === "down") {
            downMs = performance.now() - t0;
          }
        }
        const r = await running();
        return r.length === REPLICAS && r.every((t) => t.NodeID !== victimId);
      },
      180_000,
      `${REPLICAS} tasks running on the survivors`,
    );
    const ms = performance.now() - t0;
    const down = downMs === null ? "?" : ((downMs as number) / 1000).toFixed(2);
    ctx.log(
      `docker: run ${k}: spread ${spread}; node down after ${down} s; 6/6 elsewhere in ${(ms / 1000).toFixed(2)} s`,
    );
    return { ms, downMs, spread, versions };
  } finally {
    await bed.stop();
  }
}

/** How many `sleep` processes live in the network namespace ns. */
function sleepsIn(ns: string): number {
  const out = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" });
  let n = 0;
  for (const pid of out.split("\n").filter((l) => l !== "")) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "sleep") n++;
    } catch {
      // exited meanwhile
    }
  }
  return n;
}

/** A tarball (in dir) of a rootfs holding only a static busybox, with sh and sleep links to it. */
function makeImage(busybox: string, dir: string): string {
  const root = join(dir, "rootfs");
  mkdirSync(join(root, "bin"), { recursive: true });
  execFileSync("cp", [busybox, join(root, "bin", "busybox")]);
  for (const applet of ["sh", "sleep"]) symlinkSync("busybox", join(root, "bin", applet));
  const tar = join(dir, "bb.tar");
  execFileSync("tar", ["-C", root, "-cf", tar, "."]);
  return tar;
}

/** Runs the Docker Swarm node-loss scenario `runs` times; never throws. */
export async function dockerNodeLoss(ctx: SuiteContext, runs: number): Promise<DockerNodeLoss> {
  const why = dockerUnavailable();
  if (why !== null) {
    ctx.log(`docker: not run: ${why}`);
    return { value: `not run: ${why}`, runsMs: [], notes: [], params: {} };
  }
  const results: Run[] = [];
  let failure: string | null = null;
  try {
    for (let k = 1; k <= runs; k++) results.push(await nodeLossOnce(ctx, k));
  } catch (err) {
    failure = err instanceof Error ? err.message : String(err);
    ctx.log(`docker: failed: ${failure}`);
  } finally {
    await removeDir(BASE).catch(() => undefined);
  }
  const v = results[0]?.versions ?? {};
  const notes: string[] = [];
  const params: Record<string, unknown> = { docker: v };
  if (failure !== null) {
    notes.push(`Docker Swarm failed: ${failure.split("\n").join(" | ")}`);
  }
  if (results.length === 0) {
    return {
      value: `failed: ${(failure ?? "no run").split("\n")[0]!.slice(0, 60)}`,
      runsMs: [],
      notes,
      params,
    };
  }
  const times = results.map((r) => r.ms).sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]! / 1000;
  notes.push(
    `Docker Swarm runs (s): ${results.map((r) => (r.ms / 1000).toFixed(2)).join(", ")}; ` +
      `node seen down after (s): ${results.map((r) => (r.downMs === null ? "?" : (r.downMs / 1000).toFixed(2))).join(", ")}; ` +
      `spread before the kill: ${results.map((r) => r.spread).join(", ")}`,
  );
  notes.push(
    `Docker Swarm: dockerd ${v["dockerd"] ?? "?"} (API ${v["api"] ?? "?"}), containerd ${v["containerd"] ?? "?"}, ` +
      `runc ${v["runc"] ?? "?"}, CLI ${v["cli"] ?? "?"}; one dockerd (with its own containerd) per network namespace, ` +
      `--bridge=none --iptables=false, cgroupfs, DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 (no registry: no pull attempt per task); ` +
      `swarm defaults (dispatcher heartbeat period 5 s, a node is down 3 periods (15 s) after its last heartbeat); ` +
      `service: ${REPLICAS} replicas of \`sleep 100000\` from a busybox image imported on each engine, ` +
      `--network host, --restart-delay 0s (as shoal's; Swarm's default is 5 s); a fresh swarm for each run`,
  );
  if (failure !== null) notes.push(`Docker Swarm median is over ${results.length} of ${runs} runs`);
  params["runsMs"] = results.map((r) => Math.round(r.ms));
  params["downMs"] = results.map((r) => (r.downMs === null ? null : Math.round(r.downMs)));
  return { value: median, runsMs: results.map((r) => r.ms), notes, params };
}

// ---------------------------------------------------------------------------------------------
// The manager-failover scenario (the `managers` suite): 3 managers and 2 workers, a service with
// tasks on every node, the leader's host killed outright (cut off the network, then every process
// in its namespace killed); timed until a surviving manager names
// another leader, and until the first of the dead host's tasks runs again elsewhere.

/** What the Docker column of the managers suite shows. */
export interface DockerFailover {
  /** Median seconds to a new leader / to the first rescheduled task / to all of them, or why
   * there is none ("not run: ...", "failed: ..."). */
  leader: number | string;
  down: number | string;
  first: number | string;
  all: number | string;
  notes: string[];
  params: Record<string, unknown>;
}

interface FailoverRun {
  leaderMs: number;
  downMs: number;
  firstMs: number;
  allMs: number;
  spread: string;
  versions: Record<string, string>;
  defaults: string;
}

/** Swarm's failover-related settings as `docker info` (/info) reports them. */
interface ApiInfo {
  Swarm: {
    NodeID: string;
    Cluster?: {
      Spec?: {
        Raft?: { ElectionTick?: number; HeartbeatTick?: number };
        Dispatcher?: { HeartbeatPeriod?: number };
      };
    };
  };
}

async function managerFailoverOnce(
  ctx: SuiteContext,
  k: number,
  replicas: number,
  prefix: string | undefined,
): Promise<FailoverRun> {
  const bed = await startDockerBed(ctx, 5, prefix !== undefined ? { prefix } : {});
  try {
    const engines = bed.engines;
    const [leader, survivor] = engines as [DockerEngine, DockerEngine];
    const versions = leader.versions;
    const nodeIds = await formSwarm(engines, 3);
    const victimId = nodeIds[0]!;
    const nodes = await leader.api<ApiNode[]>("/nodes");
    if (nodes.find((n) => n.ManagerStatus?.Leader === true)?.ID !== victimId) {
      throw new Error("the first manager does not lead");
    }
    const spec = (await leader.api<ApiInfo>("/info")).Swarm.Cluster?.Spec;
    const period = spec?.Dispatcher?.HeartbeatPeriod;
    const defaults =
      `election tick ${spec?.Raft?.ElectionTick ?? "?"}, heartbeat tick ${spec?.Raft?.HeartbeatTick ?? "?"} ` +
      `(1 tick = 1 s), dispatcher heartbeat period ${period === undefined ? "?" : `${period / 1e9} s`}`;
    ctx.log(`docker: run ${k}: swarm of 3 managers + 2 workers ready (${versions["dockerd"]})`);

    await createSleepService(leader, replicas);
    const { tasks, perNode, spread } = await allRunning(leader, replicas, nodeIds);
    if (perNode[0] === 0) throw new Error(`no task on the leader's host (spread ${spread})`);
    checkInNamespace(leader, perNode[0]!);
    const before = new Set(tasks.map((t) => t.ID));

    // Pulled plug: off the network first, so no FIN or RST of the dying processes reaches anyone.
    const t0 = performance.now();
    await leader.host.cut();
    await leader.host.kill();
    let leaderMs: number | null = null;
    let downMs: number | null = null;
    let firstMs: number | null = null;
    const allMs = await until(
      async () => {
        if (leaderMs === null || downMs === null) {
          const ns = await survivor.api<ApiNode[]>("/nodes").catch(() => []);
          const lead = ns.find((n) => n.ManagerStatus?.Leader === true);
          if (leaderMs === null && lead !== undefined && lead.ID !== victimId) {
            leaderMs = performance.now() - t0;
          }
          if (downMs === null && ns.find((n) => n.ID === victimId)?.Status.State === "down") {
            downMs = performance.now() - t0;
          }
        }
        const r = await runningTasks(survivor);
        const moved = r.filter((t) => !before.has(t.ID) && t.NodeID !== victimId);
        if (firstMs === null && moved.length > 0) firstMs = performance.now() - t0;
        const done =
          leaderMs !== null && r.length === replicas && r.every((t) => t.NodeID !== victimId);
        return done ? performance.now() - t0 : null;
      },
      180_000,
      `a new leader and ${replicas} tasks running on the survivors`,
      100,
    );
    // Every rescheduled task ran before all did; the first one was seen by then.
    const run: FailoverRun = {
      leaderMs: leaderMs!,
      downMs: downMs ?? allMs,
      firstMs: firstMs ?? allMs,
      allMs,
      spread,
      versions,
      defaults,
    };
    ctx.log(
      `docker: run ${k}: spread ${spread}; new leader after ${(run.leaderMs / 1000).toFixed(2)} s, ` +
        `its node down after ${(run.downMs / 1000).toFixed(2)} s, first task elsewhere after ${(run.firstMs / 1000).toFixed(2)} s, all after ${(allMs / 1000).toFixed(2)} s`,
    );
    return run;
  } finally {
    await bed.stop();
  }
}

function medianSeconds(ms: number[]): number {
  const s = [...ms].sort((a, b) => a - b);
  const m = s.length >> 1;
  return (s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2) / 1000;
}

/**
 * Runs the Docker Swarm manager-failover scenario `runs` times on beds named with `prefix`;
 * never throws (a failure is the column's text and a note).
 */
export async function dockerManagerFailover(
  ctx: SuiteContext,
  runs: number,
  replicas: number,
  prefix?: string,
): Promise<DockerFailover> {
  const why = dockerUnavailable();
  if (why !== null) {
    ctx.log(`docker: not run: ${why}`);
    const value = `not run: ${why}`;
    return { leader: value, down: value, first: value, all: value, notes: [], params: {} };
  }
  const results: FailoverRun[] = [];
  let failure: string | null = null;
  // A failed run is noted (the last failure) and the next one made.
  for (let k = 1; k <= runs; k++) {
    try {
      results.push(await managerFailoverOnce(ctx, k, replicas, prefix));
    } catch (err) {
      failure = `run ${k}: ${err instanceof Error ? err.message : String(err)}`;
      ctx.log(`docker: failed: ${failure}`);
    }
  }
  await removeDir(BASE).catch(() => undefined);
  const v = results[0]?.versions ?? {};
  const notes: string[] = [];
  const params: Record<string, unknown> = { docker: v };
  if (failure !== null) notes.push(`Docker Swarm failed: ${failure.split("\n").join(" | ")}`);
  if (results.length === 0) {
    const value = `failed: ${(failure ?? "no run").split("\n")[0]!.slice(0, 60)}`;
    return { leader: value, down: value, first: value, all: value, notes, params };
  }
  const secs = (f: (r: FailoverRun) => number) =>
    results.map((r) => (f(r) / 1000).toFixed(2)).join(", ");
  notes.push(
    `Docker Swarm runs (s): new leader ${secs((r) => r.leaderMs)}; its node down ` +
      `${secs((r) => r.downMs)}; first task elsewhere ` +
      `${secs((r) => r.firstMs)}; all ${secs((r) => r.allMs)}; spread before the kill ` +
      `(leader first): ${results.map((r) => r.spread).join(", ")}`,
  );
  notes.push(
    `Docker Swarm: dockerd ${v["dockerd"] ?? "?"} (API ${v["api"] ?? "?"}), containerd ${v["containerd"] ?? "?"}, ` +
      `runc ${v["runc"] ?? "?"}, CLI ${v["cli"] ?? "?"}; one dockerd per network namespace as in the swarm suite; ` +
      `swarm defaults as \`docker info\` reports them: ${results[0]!.defaults}; the leader found with ` +
      `/nodes (ManagerStatus.Leader) on a surviving manager, polled every 100 ms; a fresh swarm for each run`,
  );
  if (failure !== null)
    notes.push(`Docker Swarm medians are over ${results.length} of ${runs} runs`);
  params["leaderMs"] = results.map((r) => Math.round(r.leaderMs));
  params["downMs"] = results.map((r) => Math.round(r.downMs));
  params["firstMs"] = results.map((r) => Math.round(r.firstMs));
  params["allMs"] = results.map((r) => Math.round(r.allMs));
  return {
    leader: medianSeconds(results.map((r) => r.leaderMs)),
    down: medianSeconds(results.map((r) => r.downMs)),
    first: medianSeconds(results.map((r) => r.firstMs)),
    all: medianSeconds(results.map((r) => r.allMs)),
    notes,
    params,
  };
}

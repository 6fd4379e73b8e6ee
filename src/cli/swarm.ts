// `shoal init|join|leave|daemon|up|info`, `shoal swarm join-token|update`: starting, joining and
// stopping the daemon on this machine. `init` and `join` check what they can before they start
// anything (flags, swarm membership, the manager's reachability, the join itself), start the
// daemon detached, and if it does not come up, stop it by its pid and remove what they wrote.

import { spawn, type ChildProcess } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { hostname } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { call, callAt, localTarget, apiTarget, NoDaemonError } from "./api-client.js";
import { parseBoolFlag, parseDurationFlag } from "./args.js";
import { CliError, StartError, UsageError } from "./errors.js";
import {
  chooseAdvertise,
  daemonArgv,
  givenRunOptions,
  parseDaemonFlags,
  runOptions,
  DEFAULT_JOIN_PORT,
  storeTlsArgv,
  type DaemonFlags,
} from "./daemon-options.js";
import { joinHostPort, parseHostPort, AddressError } from "../lib/addr.js";
import type { JoinResponse } from "../api/http.js";
import { parseToken, TOKEN_FORMAT } from "../api/token.js";

export const ALREADY_IN_SWARM =
  'This node is already part of a swarm. Use "shoal leave" to leave this swarm and join another one.';

const SHOAL_BIN = fileURLToPath(new URL("../../../bin/shoal.js", import.meta.url));
/** How long a started daemon has to answer on its socket. */
const START_TIMEOUT_MS = 15_000;
/** ...and a joining manager's, which first starts its etcd member and lets it catch up. */
const MANAGED_START_TIMEOUT_MS = 45_000;
/** How long `join` tries again while the manager answers 503 (no leader, state moving). */
const JOIN_RETRY_MS = 60_000;
/** How long a connection to the manager (join port, message server) may take. */
const CONNECT_TIMEOUT_MS = 5_000;

/** What /v1/info says (a worker's daemon answers only the first three). */
interface Info {
  nodeId: string;
  pid: number;
  role?: string;
  advertiseAddr?: string;
}

/** The daemon answering on a data dir's socket, if one does. */
async function runningDaemon(dataDir: string): Promise<Info | null> {
  try {
    return await callAt<Info>(localTarget(dataDir), "GET", "/v1/info");
  } catch (err) {
    if (err instanceof NoDaemonError) return null;
    throw err;
  }
}

/**
 * Refuses to make this node a manager or a worker when it is one already: a daemon answers on
 * its socket, or it joined a swarm (join.json); `join` also refuses a node that was a manager.
 */
async function refuseIfInSwarm(dataDir: string, joining: boolean): Promise<void> {
  const member =
    existsSync(join(dataDir, "join.json")) ||
    (joining && existsSync(join(dataDir, "node-id"))) ||
    (await runningDaemon(dataDir)) !== null;
  if (member) throw new CliError("ERR_IN_SWARM", ALREADY_IN_SWARM);
}

// ---- starting a detached daemon ------------------------------------------------------------------

function logTail(logFile: string): string {
  if (!existsSync(logFile)) return "";
  const lines = readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-10);
  return lines.length && lines[0] ? `; last log lines:\n${lines.join("\n")}` : "";
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** Stops a daemon that did not come up: SIGTERM, then SIGKILL, by its pid. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (exited(child) || child.pid === undefined) return;
  try {
    process.kill(child.pid, "SIGTERM");
  } catch {
    return;
  }
  if (await waitExit(child, 5000)) return;
  try {
    process.kill(child.pid, "SIGKILL");
  } catch {
    return;
  }
  await waitExit(child, 2000);
}

async function waitForDaemon(
  dataDir: string,
  child: ChildProcess,
  logFile: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await runningDaemon(dataDir)) !== null) return;
    if (exited(child)) {
      throw new StartError(`the shoal daemon exited during startup${logTail(logFile)}`);
    }
    if (Date.now() > deadline) {
      throw new StartError(
        `the shoal daemon did not answer within ${timeoutMs / 1000}s${logTail(logFile)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Runs `shoal daemon ARGV` detached, with its log in the data dir, once `prepare` wrote what it
 * needs. If the daemon does not answer, it is stopped and every file this start added to the
 * data dir is removed (the data dir too, if it did not exist before).
 */
async function startDetached(
  dataDir: string,
  argv: string[],
  prepare?: () => void | Promise<void>,
  timeoutMs = START_TIMEOUT_MS,
): Promise<void> {
  const created = !existsSync(dataDir);
  mkdirSync(dataDir, { recursive: true });
  const before = new Set(readdirSync(dataDir));
  const logFile = join(dataDir, "daemon.log");
  let child: ChildProcess | undefined;
  try {
    await prepare?.();
    const out = openSync(logFile, "a");
    try {
      child = spawn(process.execPath, [SHOAL_BIN, "daemon", ...argv], {
        detached: true,
        stdio: ["ignore", out, out],
        env: { ...process.env, SHOAL_DATA_DIR: dataDir },
      });
    } finally {
      closeSync(out);
    }
    await waitForDaemon(dataDir, child, logFile, timeoutMs);
    child.unref();
  } catch (err) {
    if (child) await stopChild(child);
    if (created) rmSync(dataDir, { recursive: true, force: true });
    else {
      for (const entry of readdirSync(dataDir)) {
        if (!before.has(entry)) rmSync(join(dataDir, entry), { recursive: true, force: true });
      }
    }
    throw err;
  }
}

// ---- init / daemon / up --------------------------------------------------------------------------

/** `shoal init`: starts the daemon detached as a manager and prints the join command. */
export async function init(f: DaemonFlags): Promise<number> {
  const p = parseDaemonFlags(f, { natsPort: 4222 });
  await refuseIfInSwarm(p.dataDir, false);
  const adv = chooseAdvertise(p, "error");
  const o = runOptions(p, adv);
  await startDetached(o.dataDir, daemonArgv(o));
  const local = localTarget(o.dataDir);
  const info = await callAt<Info>(local, "GET", "/v1/info");
  const { token } = await callAt<{ token: string }>(local, "GET", "/v1/swarm/join-token/worker");
  process.stdout.write(
    `Swarm initialized: current node (${info.nodeId}) is now a manager.\n\n` +
      `To add a worker to this swarm, run the following command:\n\n` +
      `    shoal join --token ${token} ${info.advertiseAddr}\n\n` +
      `To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n`,
  );
  return 0;
}

/**
 * `shoal daemon` / `shoal up`: the daemon in the foreground (the only commands that load it).
 * `up` is the one-machine quick start: message server on 4222, monitoring on 8222, a banner. What
 * the flags leave out comes from the daemon's saved settings (src/daemon/run.ts); without an
 * address to advertise it takes the machine's, or 127.0.0.1 with a warning.
 */
export async function daemon(f: DaemonFlags, up: boolean): Promise<number> {
  const p = parseDaemonFlags(f, up ? { natsPort: 4222, monitorPort: 8222 } : { natsPort: 4222 });
  const running = await runningDaemon(p.dataDir);
  if (running) {
    throw new CliError(
      "ERR_RUNNING",
      `a shoal daemon is already running on ${p.dataDir} (pid ${running.pid})`,
    );
  }
  const { runDaemon } = await import("../daemon/run.js");
  return runDaemon(givenRunOptions(f, p, up), up);
}

// ---- join ----------------------------------------------------------------------------------------

/** The CA digest in a join token (`SHOAL-1-<CA digest>-<secret>`). */
export function tokenDigest(token: string): string {
  const t = parseToken(token);
  if (!t) throw new UsageError(`invalid join token: expected ${TOKEN_FORMAT}`);
  return t.digest;
}

/** `HOST[:PORT]` of a manager (IPv6 in brackets with a port); the port defaults to 2377. */
export function parseManagerAddr(text: string): { host: string; port: number } {
  try {
    const { host, port } = parseHostPort(text);
    if (host && port !== 0) return { host, port: port ?? DEFAULT_JOIN_PORT };
  } catch (err) {
    if (!(err instanceof AddressError)) throw err;
  }
  throw new UsageError(`invalid manager address "${text}": expected HOST:PORT`);
}

/** Connects to host:port and back; the local address this machine used to reach it. */
function probe(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, timeout: CONNECT_TIMEOUT_MS });
    s.once("connect", () => {
      const local = (s.localAddress ?? "127.0.0.1").replace(/^::ffff:/, "");
      s.destroy();
      resolve(local);
    });
    s.once("timeout", () => {
      s.destroy();
      reject(new Error(`no answer within ${CONNECT_TIMEOUT_MS / 1000}s`));
    });
    s.once("error", reject);
  });
}

/** Fails unless one of the message servers the manager named answers from this machine. */
async function checkBusReachable(managerAddr: string, urls: string[]): Promise<void> {
  const failures: string[] = [];
  for (const url of urls) {
    try {
      const { host, port } = parseHostPort(url);
      await probe(host, port ?? 4222);
      return;
    } catch (err) {
      failures.push(`${url}: ${(err as Error).message}`);
    }
  }
  throw new StartError(
    `the manager at ${managerAddr} accepted the join, but its message server cannot be reached from this machine (${failures.join("; ") || "it named none"}); start the manager with --advertise-addr set to an address this machine reaches`,
  );
}

export interface JoinFlags extends DaemonFlags {
  token?: string;
}

/** `shoal join --token TOKEN HOST:PORT`: joins as a worker and starts the daemon detached. */
export async function joinSwarm(managerArg: string, f: JoinFlags): Promise<number> {
  if (!f.token)
    throw new UsageError(
      '"shoal join" requires a token and exactly 1 argument: shoal join --token TOKEN HOST:PORT',
    );
  const token = f.token.trim();
  tokenDigest(token);
  const m = parseManagerAddr(managerArg);
  const managerAddr = joinHostPort(m.host, m.port);
  const p = parseDaemonFlags(f, { natsPort: 4222 });
  await refuseIfInSwarm(p.dataDir, true);
  let local: string;
  try {
    local = await probe(m.host, m.port);
  } catch (err) {
    throw new StartError(`cannot reach the manager at ${managerAddr}: ${(err as Error).message}`);
  }
  const advertise = p.advertise?.host ?? local;
  const { joinManager, writeNodeCerts, CaMismatchError } =
    await import("../daemon/worker-daemon.js");
  // A manager on managed etcd runs a member of its own: the manager refuses the join at once
  // when this machine has no etcd, before it adds a member that could never start.
  const { findEtcd } = await import("../daemon/etcd-member.js");
  let answer: JoinResponse;
  let keyPem: string;
  const { joinFollowingLeader } = await import("../daemon/join-retry.js");
  let target: string;
  try {
    ({
      answer: { answer, keyPem },
      target,
    } = await joinFollowingLeader(
      managerAddr,
      (to) =>
        joinManager(to, {
          token,
          hostname: hostname(),
          addr: advertise,
          etcd: findEtcd() !== null,
        }),
      { retryMs: JOIN_RETRY_MS, intervalMs: 1000 },
    ));
  } catch (err) {
    const from = err instanceof CaMismatchError ? "Error" : "Error response from daemon";
    process.stderr.write(`${from}: ${(err as Error).message}\n`);
    return 1;
  }
  await checkBusReachable(target, answer.natsUrls);
  if (answer.role === "manager") {
    // A manager: a manager daemon of its own on the swarm's etcd store, as the node the join
    // made (its id), with the certificate the join issued until it issues its own.
    // With managed etcd members (answer.etcd) it starts its own member, which the manager
    // added already; otherwise it opens the external etcd the swarm runs on.
    const managed = answer.etcd;
    const store = managed ? [] : (answer.store ?? []);
    const adv = { host: advertise, port: p.advertise?.port ?? p.listen.port };
    const o = { ...runOptions(p, adv), store };
    await startDetached(
      p.dataDir,
      daemonArgv(o),
      async () => {
        writeFileSync(join(p.dataDir, "node-id"), answer.nodeId);
        await writeNodeCerts(p.dataDir, { caPem: answer.caCert, certPem: answer.cert, keyPem });
        if (managed) {
          const { ETCD_JOIN_FILE, patchSettings } = await import("../daemon/state.js");
          writeFileSync(join(p.dataDir, ETCD_JOIN_FILE), JSON.stringify(managed), { mode: 0o600 });
          patchSettings(p.dataDir, { managedEtcd: true });
        }
      },
      managed ? MANAGED_START_TIMEOUT_MS : START_TIMEOUT_MS,
    );
    process.stdout.write(`This node joined a swarm as a manager.\n`);
    return 0;
  }
  const argv = [
    "--data-dir",
    p.dataDir,
    "--advertise-addr",
    advertise,
    "--publish-addr",
    p.publishHost,
    ...(p.debug ? ["--debug"] : []),
    ...(p.cpus !== undefined ? ["--cpus", String(p.cpus)] : []),
    ...(p.memoryBytes !== undefined ? ["--memory", String(p.memoryBytes)] : []),
    ...(p.fenceMarginMs !== undefined
      ? ["--fencing-margin", p.fenceMarginMs < 0 ? "off" : `${p.fenceMarginMs}ms`]
      : []),
    ...(p.httpAddr !== undefined ? ["--http-addr", p.httpAddr] : []),
    ...(p.httpAccessLog ? ["--http-access-log"] : []),
    // Not used by a worker: kept in daemon.json for a promotion on an external etcd with TLS.
    ...storeTlsArgv(p.storeTls),
  ];
  await startDetached(p.dataDir, argv, async () => {
    // It holds the node's secret: readable by its owner only.
    writeFileSync(join(p.dataDir, "join.json"), JSON.stringify({ token, managerAddr, answer }), {
      mode: 0o600,
    });
    await writeNodeCerts(p.dataDir, { caPem: answer.caCert, certPem: answer.cert, keyPem });
  });
  process.stdout.write(`This node joined a swarm as a ${answer.role}.\n`);
  return 0;
}

// ---- leave / info / swarm ------------------------------------------------------------------------

export async function leave(o: { force?: boolean }): Promise<number> {
  const target = apiTarget();
  const info = await callAt<Info>(target, "GET", "/v1/info");
  await callAt(target, "POST", `/v1/swarm/leave${o.force ? "?force=1" : ""}`);
  // On this machine, wait for the daemon to be gone.
  const deadline = Date.now() + 30_000;
  while ("socketPath" in target && Date.now() < deadline) {
    try {
      process.kill(info.pid, 0);
    } catch {
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stdout.write("Node left the swarm.\n");
  return 0;
}

export async function joinToken(
  role: string,
  o: { quiet?: boolean; rotate?: boolean },
): Promise<number> {
  if (role !== "worker" && role !== "manager")
    throw new UsageError('"shoal swarm join-token" requires exactly 1 argument: worker or manager');
  const { token } = await call<{ token: string }>(
    "GET",
    `/v1/swarm/join-token/${role}${o.rotate ? "?rotate=1" : ""}`,
  );
  if (o.quiet) {
    process.stdout.write(token + "\n");
    return 0;
  }
  if (o.rotate) process.stdout.write(`Successfully rotated ${role} join token.\n\n`);
  // The manager's advertised join address, its port included (not always 2377).
  const info = await call<Info>("GET", "/v1/info");
  process.stdout.write(
    `To add a ${role} to this swarm, run the following command:\n\n    shoal join --token ${token} ${info.advertiseAddr}\n\n`,
  );
  return 0;
}

/** `shoal dashboard token`: the dashboard's login token. */
export async function dashboardToken(o: { rotate?: boolean }): Promise<number> {
  const { token } = await call<{ token: string }>(
    "GET",
    `/v1/dashboard/token${o.rotate ? "?rotate=1" : ""}`,
  );
  process.stdout.write(token + "\n");
  return 0;
}

export async function swarmUpdate(o: {
  heartbeatPeriod?: string;
  certExpiry?: string;
  natsAnonymous?: string | boolean;
}): Promise<number> {
  if (
    o.heartbeatPeriod === undefined &&
    o.certExpiry === undefined &&
    o.natsAnonymous === undefined
  )
    throw new UsageError(
      '"shoal swarm update" needs an option: --heartbeat-period D, --cert-expiry D or --nats-anonymous[=false]',
    );
  await call("POST", "/v1/swarm/update", {
    ...(o.natsAnonymous !== undefined
      ? { natsAnonymous: parseBoolFlag("--nats-anonymous", o.natsAnonymous) }
      : {}),
    ...(o.heartbeatPeriod !== undefined
      ? { heartbeatMs: parseDurationFlag("--heartbeat-period", o.heartbeatPeriod) }
      : {}),
    ...(o.certExpiry !== undefined
      ? { certExpiryMs: parseDurationFlag("--cert-expiry", o.certExpiry) }
      : {}),
  });
  process.stdout.write("Swarm updated.\n");
  return 0;
}

export async function info(): Promise<number> {
  const i = await call<Record<string, unknown>>("GET", "/v1/info");
  const manager = i["role"] !== "worker";
  const lines = [
    `Server Version: ${i["version"]}`,
    `Swarm: active`,
    ` NodeID: ${i["nodeId"]}`,
    ` Is Manager: ${manager}`,
    ...(manager
      ? [
          ` Managers: ${i["managers"]}`,
          ` Nodes: ${i["nodes"]}`,
          `Services: ${i["services"]}`,
          `Tasks: ${i["tasks"]} (running: ${i["running"]})`,
          `NATS URL: ${i["natsUrl"]}`,
        ]
      : []),
    `Data Dir: ${i["dataDir"]}`,
    `Daemon PID: ${i["pid"]}`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
  return 0;
}

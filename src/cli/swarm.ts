// `shoal init|daemon|up|leave|info`, `shoal swarm join-token`, `shoal node ls`: starting and
// stopping the daemon on this machine and looking at the cluster.

import { spawn } from "node:child_process";
import { openSync, existsSync, readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { hostname } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { call } from "./api-client.js";
import { parseArgs, flag, has, UsageError } from "./args.js";
import { table, capitalize, parseDurationFlag } from "./format.js";
import { defaultDataDir } from "../api/paths.js";
import { requestJoin } from "../daemon/worker-daemon.js";
import { parseToken } from "../manager/ids.js";
import type { DaemonRunOptions } from "../daemon/run.js";
import type { Node } from "../api/types.js";

const DAEMON_FLAGS = [
  { name: "data-dir", value: true },
  { name: "listen-addr", value: true },
  { name: "advertise-addr", value: true },
  { name: "nats-port", value: true },
  { name: "api-addr", value: true },
  { name: "publish-addr", value: true },
  { name: "debug", short: "D" },
];

/** The daemon flags given (the daemon fills in the rest from its saved settings or defaults). */
function daemonOptionsFrom(argv: string[]): DaemonRunOptions {
  const p = parseArgs(argv, DAEMON_FLAGS);
  if (p.args.length > 0) throw new UsageError(`unexpected argument "${p.args[0]}"`);
  const natsPortText = flag(p, "nats-port");
  if (natsPortText !== undefined && !/^-?\d+$/.test(natsPortText))
    throw new UsageError(`invalid --nats-port "${natsPortText}"`);
  return {
    dataDir: flag(p, "data-dir") ?? defaultDataDir(),
    listenAddr: flag(p, "listen-addr"),
    advertiseAddr: flag(p, "advertise-addr"),
    natsPort: natsPortText === undefined ? undefined : Number(natsPortText),
    apiTcp: flag(p, "api-addr"),
    publishHost: flag(p, "publish-addr"),
    debug: has(p, "debug"),
  };
}

/** `shoal daemon` / `shoal up`: the daemon in the foreground (loaded only for these commands). */
async function daemonCommand(argv: string[], banner = false): Promise<number> {
  const { runDaemon } = await import("../daemon/run.js");
  return runDaemon(daemonOptionsFrom(argv), banner);
}

async function waitForDaemon(dataDir: string, pid: number, logFile: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  process.env["SHOAL_DATA_DIR"] = dataDir;
  for (;;) {
    try {
      await call("GET", "/v1/info");
      return;
    } catch {
      // not up yet
    }
    try {
      process.kill(pid, 0);
    } catch {
      const tail = existsSync(logFile)
        ? readFileSync(logFile, "utf8").split("\n").slice(-10).join("\n")
        : "";
      throw new Error(`the shoal daemon exited during startup; last log lines:\n${tail}`);
    }
    if (Date.now() > deadline)
      throw new Error(`the shoal daemon did not answer within 15s; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `shoal init`: starts the daemon detached (pid and log in the data dir) and prints join commands. */
async function init(argv: string[]): Promise<number> {
  const o = daemonOptionsFrom(argv);
  mkdirSync(o.dataDir, { recursive: true });
  process.env["SHOAL_DATA_DIR"] = o.dataDir;
  try {
    await call("GET", "/v1/info");
    throw new UsageError(
      'This node is already part of a swarm. Use "shoal leave" to leave this swarm and join another one.',
    );
  } catch (err) {
    if (err instanceof UsageError) throw err;
  }
  const logFile = join(o.dataDir, "daemon.log");
  const out = openSync(logFile, "a");
  const bin = fileURLToPath(new URL("../../../bin/shoal.js", import.meta.url));
  const child = spawn(process.execPath, [bin, "daemon", ...argv], {
    detached: true,
    stdio: ["ignore", out, out],
    env: { ...process.env, SHOAL_DATA_DIR: o.dataDir },
  });
  child.unref();
  await waitForDaemon(o.dataDir, child.pid!, logFile);
  const info = await call<{ nodeId: string; advertiseAddr: string }>("GET", "/v1/info");
  const { token } = await call<{ token: string }>("GET", "/v1/swarm/join-token/worker");
  process.stdout.write(
    `Swarm initialized: current node (${info.nodeId}) is now a manager.\n\n` +
      `To add a worker to this swarm, run the following command:\n\n` +
      `    shoal join --token ${token} ${info.advertiseAddr}\n\n` +
      `To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n`,
  );
  return 0;
}

/** The local address this machine uses to reach addr (the default advertise address). */
function localAddressTowards(addr: string): Promise<string> {
  const host = addr.slice(0, addr.lastIndexOf(":"));
  const port = Number(addr.split(":").pop()) || 2377;
  return new Promise((resolve, reject) => {
    const s = createConnection({ host, port }, () => {
      const a = s.localAddress ?? "127.0.0.1";
      s.destroy();
      resolve(a.replace(/^::ffff:/, ""));
    });
    s.once("error", (err) =>
      reject(new Error(`cannot reach the manager at ${addr}: ${err.message}`)),
    );
  });
}

/** `shoal join --token TOKEN MANAGER_ADDR`: joins as a worker and starts the daemon detached. */
async function joinCommand(argv: string[]): Promise<number> {
  const p = parseArgs(argv, [...DAEMON_FLAGS, { name: "token", value: true }]);
  const token = flag(p, "token");
  const addrArg = p.args[0];
  if (!token || !addrArg || p.args.length > 1) {
    throw new UsageError(
      '"shoal join" requires a token and exactly 1 argument: shoal join --token TOKEN HOST:PORT',
    );
  }
  const managerAddr = addrArg.includes(":") ? addrArg : `${addrArg}:2377`;
  const parsed = parseToken(token);
  if (!parsed) throw new UsageError("invalid join token: expected SHOAL-1-<fingerprint>-<secret>");
  const o = daemonOptionsFrom(
    argv.filter(
      (a, i) =>
        a !== addrArg && a !== "--token" && argv[i - 1] !== "--token" && !a.startsWith("--token="),
    ),
  );
  process.env["SHOAL_DATA_DIR"] = o.dataDir;
  if (existsSync(join(o.dataDir, "join.json")) || existsSync(join(o.dataDir, "node-id"))) {
    throw new UsageError(
      'This node is already part of a swarm. Use "shoal leave" to leave this swarm and join another one.',
    );
  }
  const advertise = flag(p, "advertise-addr") ?? (await localAddressTowards(managerAddr));
  let answer;
  try {
    answer = await requestJoin(managerAddr, {
      token,
      hostname: hostname(),
      addr: hostOf(advertise),
    });
  } catch (err) {
    process.stderr.write(`Error response from daemon: ${(err as Error).message}\n`);
    return 1;
  }
  if (answer.fingerprint !== parsed.fingerprint) {
    process.stderr.write(
      `Error: the manager at ${managerAddr} belongs to another cluster (fingerprint mismatch)\n`,
    );
    return 1;
  }
  mkdirSync(o.dataDir, { recursive: true });
  writeFileSync(join(o.dataDir, "join.json"), JSON.stringify({ token, managerAddr, answer }));
  const logFile = join(o.dataDir, "daemon.log");
  const out = openSync(logFile, "a");
  const bin = fileURLToPath(new URL("../../../bin/shoal.js", import.meta.url));
  const child = spawn(
    process.execPath,
    [
      bin,
      "daemon",
      "--data-dir",
      o.dataDir,
      "--advertise-addr",
      hostOf(advertise),
      ...(o.publishHost !== undefined ? ["--publish-addr", o.publishHost] : []),
    ],
    {
      detached: true,
      stdio: ["ignore", out, out],
      env: { ...process.env, SHOAL_DATA_DIR: o.dataDir },
    },
  );
  child.unref();
  await waitForDaemon(o.dataDir, child.pid!, logFile);
  process.stdout.write(`This node joined a swarm as a ${answer.role}.\n`);
  return 0;
}

function hostOf(addr: string): string {
  const i = addr.lastIndexOf(":");
  return i > 0 && /^\d+$/.test(addr.slice(i + 1)) ? addr.slice(0, i) : addr;
}

async function leave(argv: string[]): Promise<number> {
  const p = parseArgs(argv, [{ name: "force", short: "f" }]);
  const info = await call<{ pid: number }>("GET", "/v1/info");
  await call("POST", `/v1/swarm/leave${has(p, "force") ? "?force=1" : ""}`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      process.kill(info.pid, 0);
    } catch {
      break;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stdout.write("Node left the swarm.\n");
  return 0;
}

async function joinToken(argv: string[]): Promise<number> {
  const p = parseArgs(argv, [{ name: "quiet", short: "q" }, { name: "rotate" }]);
  const role = p.args[0];
  if (role !== "worker" && role !== "manager")
    throw new UsageError('"shoal swarm join-token" requires exactly 1 argument: worker or manager');
  const { token } = await call<{ token: string }>(
    "GET",
    `/v1/swarm/join-token/${role}${has(p, "rotate") ? "?rotate=1" : ""}`,
  );
  if (has(p, "quiet")) {
    process.stdout.write(token + "\n");
    return 0;
  }
  if (has(p, "rotate")) process.stdout.write(`Successfully rotated ${role} join token.\n\n`);
  const nodes = await call<Node[]>("GET", "/v1/nodes");
  const self = nodes.find((n) => n.role === "manager");
  process.stdout.write(
    `To add a ${role} to this swarm, run the following command:\n\n    shoal join --token ${token} ${self?.addr ?? "127.0.0.1"}:2377\n\n`,
  );
  return 0;
}

async function nodeLs(): Promise<number> {
  const info = await call<{ nodeId: string }>("GET", "/v1/info");
  const nodes = await call<Node[]>("GET", "/v1/nodes");
  const rows = nodes.map((n) => [
    n.id + (n.id === info.nodeId ? " *" : ""),
    n.hostname,
    capitalize(n.status),
    capitalize(n.availability),
    n.role === "manager" ? (n.id === info.nodeId ? "Leader" : "Reachable") : "",
    n.engineVersion,
  ]);
  process.stdout.write(
    table(["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"], rows),
  );
  return 0;
}

async function nodeCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case "ls":
    case "list":
      return nodeLs();
    case "inspect": {
      const p = parseArgs(rest, [{ name: "pretty" }]);
      if (p.args.length === 0)
        throw new UsageError('"shoal node inspect" requires at least 1 argument: NODE...');
      const nodes: Node[] = [];
      for (const ref of p.args)
        nodes.push(
          await call<Node>(
            "GET",
            `/v1/nodes/${encodeURIComponent(ref === "self" ? (await call<{ nodeId: string }>("GET", "/v1/info")).nodeId : ref)}`,
          ),
        );
      if (!has(p, "pretty")) {
        process.stdout.write(JSON.stringify(nodes, null, 4) + "\n");
        return 0;
      }
      for (const n of nodes) {
        process.stdout.write(
          [
            `ID:\t\t\t${n.id}`,
            ...(Object.keys(n.labels).length
              ? ["Labels:", ...Object.entries(n.labels).map(([k, v]) => ` - ${k}=${v}`)]
              : []),
            `Hostname:\t\t${n.hostname}`,
            `Status:`,
            ` State:\t\t\t${capitalize(n.status)}`,
            ` Availability:\t\t${capitalize(n.availability)}`,
            ` Address:\t\t${n.addr}`,
            ...(n.role === "manager"
              ? [
                  "Manager Status:",
                  ` Address:\t\t${n.addr}:2377`,
                  ` Raft Status:\t\tReachable`,
                  ` Leader:\t\tYes`,
                ]
              : []),
            ...(n.drivers ? ["Plugins:", ` Task drivers:\t\t${n.drivers.join(", ")}`] : []),
            `Engine Version:\t\t${n.engineVersion}`,
          ].join("\n") + "\n\n",
        );
      }
      return 0;
    }
    case "update": {
      const p = parseArgs(rest, [
        { name: "availability", value: true },
        { name: "label-add", value: true, repeat: true },
        { name: "label-rm", value: true, repeat: true },
        { name: "role", value: true },
      ]);
      if (p.args.length !== 1)
        throw new UsageError('"shoal node update" requires exactly 1 argument: NODE');
      const labelAdd: Record<string, string> = {};
      for (const l of p.flags.get("label-add") ?? []) {
        const eq = l.indexOf("=");
        labelAdd[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? "" : l.slice(eq + 1);
      }
      await call("POST", `/v1/nodes/${encodeURIComponent(p.args[0]!)}/update`, {
        availability: flag(p, "availability"),
        labelAdd,
        labelRm: p.flags.get("label-rm") ?? [],
        role: flag(p, "role"),
      });
      process.stdout.write(p.args[0] + "\n");
      return 0;
    }
    case "rm":
    case "remove": {
      const p = parseArgs(rest, [{ name: "force", short: "f" }]);
      if (p.args.length === 0)
        throw new UsageError('"shoal node rm" requires at least 1 argument: NODE...');
      for (const ref of p.args) {
        await call(
          "DELETE",
          `/v1/nodes/${encodeURIComponent(ref)}${has(p, "force") ? "?force=1" : ""}`,
        );
        process.stdout.write(ref + "\n");
      }
      return 0;
    }
    case "promote":
    case "demote":
      throw new UsageError(
        `"shoal node ${sub}" is not supported yet: shoal runs one manager (HA managers come with the etcd store)`,
      );
    default:
      throw new UsageError(
        `unknown command "shoal node ${sub ?? ""}": ls, inspect, update, rm, promote, demote`,
      );
  }
}

async function infoCommand(): Promise<number> {
  const info = await call<Record<string, unknown>>("GET", "/v1/info");
  const lines = [
    `Server Version: ${info["version"]}`,
    `Swarm: active`,
    ` NodeID: ${info["nodeId"]}`,
    ` Is Manager: true`,
    ` Managers: ${info["managers"]}`,
    ` Nodes: ${info["nodes"]}`,
    `Services: ${info["services"]}`,
    `Tasks: ${info["tasks"]} (running: ${info["running"]})`,
    `NATS URL: ${info["natsUrl"]}`,
    `Data Dir: ${info["dataDir"]}`,
    `Daemon PID: ${info["pid"]}`,
  ];
  process.stdout.write(lines.join("\n") + "\n");
  return 0;
}

export async function swarmCommand(cmd: string, argv: string[]): Promise<number> {
  switch (cmd) {
    case "init":
      return init(argv);
    case "daemon":
      return daemonCommand(argv);
    case "up":
      return daemonCommand(argv, true);
    case "leave":
      return leave(argv);
    case "info":
      return infoCommand();
    case "join":
      return joinCommand(argv);
    case "swarm": {
      const [sub, ...rest] = argv;
      if (sub === "join-token") return joinToken(rest);
      if (sub === "update") {
        const p = parseArgs(rest, [{ name: "heartbeat-period", value: true }]);
        const hb = flag(p, "heartbeat-period");
        if (hb === undefined)
          throw new UsageError('"shoal swarm update" needs an option: --heartbeat-period D');
        await call("POST", "/v1/swarm/update", {
          heartbeatMs: parseDurationFlag("--heartbeat-period", hb),
        });
        process.stdout.write("Swarm updated.\n");
        return 0;
      }
      if (sub === "init") return init(rest);
      if (sub === "leave") return leave(rest);
      throw new UsageError(
        `unknown command "shoal swarm ${sub ?? ""}": init, join-token, update, leave`,
      );
    }
    case "node":
      return nodeCommand(argv);
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

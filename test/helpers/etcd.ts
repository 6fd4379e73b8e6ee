// Test helpers for the etcd store and the leader election: `startEtcd()` runs a real etcd (the
// Debian etcd-server package) of 1 or 3 members on ports it picks, with a temporary data dir,
// and stops it by pid (and removes the dir) when the test or suite ends, pass or fail. With
// `hosts` (test bed machines) it runs one member on each host instead, inside the host's
// network namespace on its address (ports 2379/2380, free in a namespace of its own), so that
// killing or cutting off a host hits its member too; `member.start()` brings one back on its
// data dir after its host was killed.
//
// Without the etcd binary the suites skip (`etcdSkip`), except in CI (CI set in the
// environment), where they run and fail saying what to install (.ci/run installs it).

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./cluster.js";
import { findEtcd } from "../../src/daemon/etcd-member.js";
import { joinHostPort } from "../../src/lib/addr.js";

/** Finds the etcd binary, or null when it is not installed (as the managed members do). */
export const etcdPath = findEtcd;

export const ETCD_MISSING = "etcd is not installed (apt-get install etcd-server, or set ETCD)";
const CI = !["", "0", "false"].includes(process.env["CI"] ?? "");

/** The `skip` option of an etcd suite: a reason when etcd is missing outside CI, else false. */
export function etcdSkip(): string | false {
  return etcdPath() === null && !CI ? ETCD_MISSING : false;
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  /** The running (or last) process of the member. */
  proc: ChildProcess;
  output(): string;
  /** Starts the member again on its data dir (after it died, e.g. with its host). */
  start(): void;
  /** Stops the member (SIGTERM, SIGKILL after 5 s); resolves when it has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** The members' client URLs. */
  endpoints: string[];
  /** Stops every member and removes the data dirs. */
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  /** 1 (default) or 3. */
  members?: number;
  /** Extra flags for every member (e.g. ["--max-txn-ops", "1000"]). */
  args?: string[];
  /** The address the members listen on (default 127.0.0.1; e.g. a test bed's bridge address,
   * which the bed's namespaces reach). */
  host?: string;
  /** One member on each of these test bed hosts (overrides `members` and `host`). */
  hosts?: EtcdHost[];
}

/** Where a member may run: a test bed host (its address, and a spawn inside its namespace). */
export interface EtcdHost {
  addr: string;
  spawn(cmd: string, args: string[]): ChildProcess;
}

/** The client port of the members on test bed hosts (each in a namespace of its own). */
export const HOST_CLIENT_PORT = 2379;
const HOST_PEER_PORT = 2380;

/** Starts an etcd of `members` members on `host` (127.0.0.1) and waits until it serves. */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const bin = etcdPath();
  if (bin === null) {
    throw new Error(
      `${ETCD_MISSING}; CI (set in the environment) runs the etcd suites, so install it on this ` +
        "machine: apt-get install -y etcd-server (as .ci/run does)",
    );
  }
  const onHosts = opts.hosts;
  const n = onHosts?.length ?? opts.members ?? 1;
  const root = mkdtempSync(join(tmpdir(), "shoal-etcd-"));
  const members: EtcdMember[] = [];
  const cluster: EtcdCluster = {
    members,
    endpoints: [],
    async stop() {
      await Promise.all(members.map((m) => m.stop()));
      rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    const ports: Array<[number, number]> = [];
    for (let i = 0; i < n; i++)
      ports.push(
        onHosts ? [HOST_CLIENT_PORT, HOST_PEER_PORT] : [await freePort(), await freePort()],
      );
    const hostOf = (i: number) => onHosts?.[i]?.addr ?? opts.host ?? "127.0.0.1";
    const initial = ports
      .map(([, peer], i) => `m${i}=http://${joinHostPort(hostOf(i), peer)}`)
      .join(",");
    for (let i = 0; i < n; i++) {
      const [client, peer] = ports[i]!;
      const on = onHosts?.[i];
      members.push(
        spawnMember(
          bin,
          {
            name: `m${i}`,
            clientUrl: `http://${joinHostPort(hostOf(i), client)}`,
            peerUrl: `http://${joinHostPort(hostOf(i), peer)}`,
            dataDir: join(root, `m${i}`),
            initial,
            args: opts.args ?? [],
          },
          on ? (cmd, args) => on.spawn(cmd, args) : undefined,
        ),
      );
    }
    cluster.endpoints = members.map((m) => m.clientUrl);
    await Promise.all(members.map((m) => waitHealthy(m)));
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

function spawnMember(
  bin: string,
  m: {
    name: string;
    clientUrl: string;
    peerUrl: string;
    dataDir: string;
    initial: string;
    args: string[];
  },
  spawner: (cmd: string, args: string[]) => ChildProcess = (cmd, args) =>
    spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] }),
): EtcdMember {
  const args = [
    "--name",
    m.name,
    "--data-dir",
    m.dataDir,
    "--listen-client-urls",
    m.clientUrl,
    "--advertise-client-urls",
    m.clientUrl,
    "--listen-peer-urls",
    m.peerUrl,
    "--initial-advertise-peer-urls",
    m.peerUrl,
    "--initial-cluster",
    m.initial,
    "--initial-cluster-state",
    "new",
    "--initial-cluster-token",
    `shoal-test-${process.pid}`,
    ...m.args,
  ];
  let out = "";
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  let exited: Promise<void> = Promise.resolve();
  const launch = (): ChildProcess => {
    const proc = spawner(bin, args);
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    return proc;
  };
  const member: EtcdMember = {
    name: m.name,
    clientUrl: m.clientUrl,
    peerUrl: m.peerUrl,
    dataDir: m.dataDir,
    proc: launch(),
    output: () => out,
    start() {
      const p = member.proc;
      if (p.exitCode === null && p.signalCode === null) return; // still running
      member.proc = launch();
    },
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      const proc = member.proc;
      if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) {
        try {
          process.kill(proc.pid, signal);
        } catch {
          return; // gone already (its host was killed)
        }
        const t = setTimeout(() => proc.pid !== undefined && proc.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(t);
      }
    },
  };
  return member;
}

/** Waits until the member answers /health with true (or fails saying what it printed). */
export async function waitHealthy(m: EtcdMember, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (m.proc.exitCode !== null) {
      throw new Error(`etcd member ${m.name} exited (${m.proc.exitCode}):\n${m.output()}`);
    }
    try {
      const res = await fetch(`${m.clientUrl}/health`);
      const body = (await res.json()) as { health?: string };
      if (body.health === "true") return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      throw new Error(`etcd member ${m.name} not healthy in ${ms} ms:\n${m.output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

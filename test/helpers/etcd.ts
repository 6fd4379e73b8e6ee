// Test helpers for the etcd store and the leader election: `startEtcd()` runs a real etcd (the
// Debian etcd-server package) of 1 or 3 members on ports it picks, with a temporary data dir,
// and stops it by pid (and removes the dir) when the test or suite ends, pass or fail.
//
// Without the etcd binary the suites skip (`etcdSkip`), except in CI (CI set in the
// environment), where they run and fail saying what to install (.ci/run installs it).

import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import { get as httpsGet } from "node:https";
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
  /** Starts the member again on its data dir (after it died, e.g. with its machine). */
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
  /** One member on each of these machines (e.g. a test bed's hosts, in their network
   * namespaces), on its address and etcd's own ports 2379/2380; `members` and `host` are then
   * ignored. A member dies with its machine (Host.kill()). */
  hosts?: Array<{
    addr: string;
    spawn(cmd: string, args: string[], opts?: Pick<SpawnOptions, "stdio">): ChildProcess;
  }>;
  /** Serve clients over TLS with these files (paths); `clientCertAuth`: require a client
   * certificate from `ca` (etcd's --client-cert-auth). The health check presents `cert`. */
  tls?: { ca: string; cert: string; key: string; clientCertAuth?: boolean };
}

/** Starts an etcd of `members` members on `host` (127.0.0.1) and waits until it serves. */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const bin = etcdPath();
  if (bin === null) {
    throw new Error(
      `${ETCD_MISSING}; CI (set in the environment) runs the etcd suites, so install it on this ` +
        "machine: apt-get install -y etcd-server (as .ci/run does)",
    );
  }
  const hosts = opts.hosts;
  const n = hosts?.length ?? opts.members ?? 1;
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
    // [address, client port, peer port] of each member.
    const places: Array<[string, number, number]> = [];
    for (let i = 0; i < n; i++) {
      places.push(
        hosts
          ? [hosts[i]!.addr, 2379, 2380]
          : [opts.host ?? "127.0.0.1", await freePort(), await freePort()],
      );
    }
    const initial = places
      .map(([host, , peer], i) => `m${i}=http://${joinHostPort(host, peer)}`)
      .join(",");
    const tls = opts.tls;
    const tlsArgs = tls
      ? [
          "--cert-file",
          tls.cert,
          "--key-file",
          tls.key,
          "--trusted-ca-file",
          tls.ca,
          ...(tls.clientCertAuth ? ["--client-cert-auth"] : []),
        ]
      : [];
    for (let i = 0; i < n; i++) {
      const [host, client, peer] = places[i]!;
      members.push(
        spawnMember(
          bin,
          {
            name: `m${i}`,
            clientUrl: `${tls ? "https" : "http"}://${joinHostPort(host, client)}`,
            peerUrl: `http://${joinHostPort(host, peer)}`,
            dataDir: join(root, `m${i}`),
            initial,
            args: [...tlsArgs, ...(opts.args ?? [])],
          },
          hosts?.[i]?.spawn.bind(hosts[i]) ?? spawn,
        ),
      );
    }
    cluster.endpoints = members.map((m) => m.clientUrl);
    await Promise.all(members.map((m) => waitHealthy(m, 20_000, tls)));
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
  run: (cmd: string, args: string[], opts: Pick<SpawnOptions, "stdio">) => ChildProcess,
): EtcdMember {
  const launch = () => {
    const proc = run(
      bin,
      [
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
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    proc.stdout!.on("data", keep);
    proc.stderr!.on("data", keep);
    exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    return proc;
  };
  let out = "";
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  let exited: Promise<void> = Promise.resolve();
  const member: EtcdMember = {
    name: m.name,
    clientUrl: m.clientUrl,
    peerUrl: m.peerUrl,
    dataDir: m.dataDir,
    proc: launch(),
    output: () => out,
    start() {
      // Again on its data (etcd ignores the initial-cluster flags then), e.g. after its
      // machine was killed and brought back.
      const p = member.proc;
      if (p.exitCode === null && p.signalCode === null) return;
      member.proc = launch();
    },
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      const proc = member.proc;
      if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) {
        try {
          process.kill(proc.pid, signal);
        } catch {
          return; // gone already (its machine was killed)
        }
        const t = setTimeout(() => proc.pid !== undefined && proc.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(t);
      }
    },
  };
  return member;
}

/** GET /health: over TLS with the test's CA and certificate when the member serves TLS. */
function health(url: string, tls: StartEtcdOptions["tls"]): Promise<{ health?: string }> {
  if (!tls) return fetch(`${url}/health`).then((r) => r.json() as Promise<{ health?: string }>);
  return new Promise((resolve, reject) => {
    const req = httpsGet(
      `${url}/health`,
      {
        ca: readFileSync(tls.ca),
        cert: readFileSync(tls.cert),
        key: readFileSync(tls.key),
        servername: "etcd", // not the IP address (RFC 6066); the name is not checked
        checkServerIdentity: () => undefined,
      },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => {
          try {
            resolve(JSON.parse(body) as { health?: string });
          } catch (err) {
            reject(err as Error);
          }
        });
      },
    );
    req.on("error", reject);
  });
}

/** Waits until the member answers /health with true (or fails saying what it printed). */
export async function waitHealthy(
  m: EtcdMember,
  ms = 20_000,
  tls?: StartEtcdOptions["tls"],
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (m.proc.exitCode !== null) {
      throw new Error(`etcd member ${m.name} exited (${m.proc.exitCode}):\n${m.output()}`);
    }
    try {
      const body = await health(m.clientUrl, tls);
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

/**
 * A TCP proxy to `target` (an etcd member) that can go silent, as a cut link does: `cut` stops
 * forwarding in both directions without closing anything (new connections are accepted and never
 * answered), `heal` brings the link back. `stall` goes silent on the connections open now only
 * (new ones are forwarded): a stream that hangs while the member can be reached.
 */
export async function silentProxy(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  let cut = false;
  const stalled = new WeakSet<Socket>();
  const server: Server = createServer((down) => {
    sockets.add(down);
    down.on("close", () => sockets.delete(down));
    down.on("error", () => {});
    if (cut) return; // accepted, and never answered
    const up = connect(target.port, target.host);
    sockets.add(up);
    up.on("close", () => sockets.delete(up));
    up.on("error", () => down.destroy());
    down.on("error", () => up.destroy());
    // Forward unless cut: then bytes are read and dropped, nothing closes.
    down.on("data", (d: Buffer) => void (cut || stalled.has(down) || up.write(d)));
    up.on("data", (d: Buffer) => void (cut || stalled.has(down) || down.write(d)));
    down.on("close", () => up.destroy());
    up.on("close", () => down.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut: () => void (cut = true),
    stall: () => {
      for (const s of sockets) stalled.add(s);
    },
    // The link back: connections that lost bytes while it was cut (or were never forwarded)
    // are reset, as their peers' stacks would; new ones go through.
    heal: () => {
      cut = false;
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

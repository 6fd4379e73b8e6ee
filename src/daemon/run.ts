// The daemon in the foreground (`shoal daemon`, `shoal up`): a worker's if this node joined a
// swarm as one (its join.json), a manager's otherwise; runs until SIGINT or SIGTERM.
//
// The settings a daemon started with are kept in the data dir (daemon.json), so a restart with
// no flags (`shoal daemon --data-dir D`, a service manager's restart) comes back as the same
// node on the same addresses; flags given at the restart win.

import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ServerLogger } from "../nats/log.js";
import { formatHost, isWildcard, joinHostPort, parseHostPort } from "../lib/addr.js";
import { systemAddress } from "../lib/netif.js";
import type { Logger } from "../lib/log.js";
import { Daemon } from "./manager-daemon.js";
import type { StoreTlsFiles } from "./store-tls.js";
import { WorkerDaemon } from "./worker-daemon.js";
import { SETTINGS_FILE, readSettings } from "./state.js";

/** The daemon's settings as flags give them; what is left out comes from daemon.json or a default. */
export interface DaemonRunOptions {
  dataDir: string;
  listenAddr?: string;
  advertiseAddr?: string;
  natsPort?: number;
  /** HTTP monitoring port of the embedded message server (0 = off). */
  monitorPort?: number;
  apiTcp?: string;
  /** Mutual TLS on a loopback TCP API too (`--api-tls`). */
  apiTls?: boolean;
  publishHost?: string;
  /** Overrides of the CPUs and memory the node reports (`--cpus`, `--memory`). */
  cpus?: number;
  memoryBytes?: number;
  /** How long past the node-down grace a node that lost the managers keeps its tasks, ms; -1:
   * it never stops them (`--fencing-margin`). */
  fenceMarginMs?: number;
  /** Node certificates' lifetime, ms, in a cluster this daemon creates (`--cert-expiry`). */
  certExpiryMs?: number;
  /** The default address pool of a cluster this daemon creates (`shoal init`). */
  addrPool?: { pool: string; maskLength: number };
  /** The Consul-compatible API and its DNS interface, host:port ("" = off). */
  consulAddr?: string;
  consulDnsAddr?: string;
  /** Go on without them when their addresses are taken (`shoal up`'s defaults); not saved. */
  consulBestEffort?: boolean;
  /** The HTTP router's host:port ("" = off); a taken port is a warning. */
  httpAddr?: string;
  /** An access log line per routed request, on standard output. */
  httpAccessLog?: boolean;
  /** The node's /metrics (and on managers Prometheus' discovery), host:port ("" = off). */
  metricsAddr?: string;
  /** The web dashboard, host:port ("" = off; a taken port is a warning). */
  dashboardAddr?: string;
  /** etcd client URLs of the cluster store (several managers); [] or absent: embedded. */
  store?: string[];
  /** The state lives in etcd members the managers run themselves (set when a second manager
   * joined, saved in daemon.json; never a flag). */
  managedEtcd?: boolean;
  /** Client TLS to an external etcd (`--store-cacert`, `--store-cert`, `--store-key`: paths). */
  storeTls?: StoreTlsFiles;
  debug?: boolean;
}

type Optional =
  | "cpus"
  | "memoryBytes"
  | "fenceMarginMs"
  | "certExpiryMs"
  | "addrPool"
  | "consulBestEffort"
  | "store"
  | "managedEtcd"
  | "storeTls";
export type ResolvedDaemonOptions = Required<Omit<DaemonRunOptions, Optional>> &
  Pick<DaemonRunOptions, Optional>;

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * The settings to run with: flags, else the saved settings, else defaults. Without an advertise
 * address, the listen address when it names one, else the machine's address (as Swarm picks
 * it), else loopback with a warning (a one-machine swarm still works).
 */
export function resolveDaemonOptions(given: DaemonRunOptions, log: Logger): ResolvedDaemonOptions {
  const file = join(given.dataDir, SETTINGS_FILE);
  const saved = readSettings(given.dataDir) as Partial<DaemonRunOptions>;
  const o = {
    listenAddr: "0.0.0.0:2377",
    advertiseAddr: "",
    natsPort: 4222,
    monitorPort: 0,
    apiTcp: "",
    apiTls: false,
    publishHost: "0.0.0.0",
    consulAddr: ":8500",
    consulDnsAddr: ":8600",
    httpAddr: ":80",
    httpAccessLog: false,
    metricsAddr: ":9323",
    dashboardAddr: "127.0.0.1:8080",
    debug: false,
    ...defined(saved),
    ...defined(given),
  } as ResolvedDaemonOptions;
  const listen = parseHostPort(o.listenAddr);
  let host = o.advertiseAddr ? parseHostPort(o.advertiseAddr).host : listen.host;
  if (isWildcard(host)) {
    try {
      host = systemAddress();
    } catch (err) {
      log.warn(`${(err as Error).message}; advertising 127.0.0.1 (this machine only)`);
      host = "127.0.0.1";
    }
  }
  // Without a port, the join port: the listen port, or (port 0) the one the daemon gets.
  const port = o.advertiseAddr ? (parseHostPort(o.advertiseAddr).port ?? listen.port) : listen.port;
  o.advertiseAddr = port === 0 ? formatHost(host) : joinHostPort(host, port ?? 2377);
  const { debug: _debug, consulBestEffort: _best, ...keep } = o;
  writeFileSync(file, JSON.stringify(keep, null, 2) + "\n", { mode: 0o600 });
  return o;
}

export async function runDaemon(given: DaemonRunOptions, banner = false): Promise<number> {
  mkdirSync(given.dataDir, { recursive: true });
  const log = new ServerLogger({ debug: given.debug ?? false });
  const o = resolveDaemonOptions(given, log);
  let stop: () => Promise<void>;
  const worker = async (): Promise<WorkerDaemon> => {
    const w = new WorkerDaemon({
      dataDir: o.dataDir,
      token: "",
      managerAddr: "",
      advertiseAddr: parseHostPort(o.advertiseAddr).host,
      publishHost: o.publishHost,
      cpus: o.cpus,
      memoryBytes: o.memoryBytes,
      fenceMarginMs: o.fenceMarginMs,
      httpAddr: o.httpAddr,
      httpAccessLog: o.httpAccessLog,
      metricsAddr: o.metricsAddr,
      log,
    });
    await w.start();
    return w;
  };
  let current: Daemon | WorkerDaemon;
  if (existsSync(join(o.dataDir, "join.json"))) {
    // This node joined a swarm as a worker.
    const w = await worker();
    stop = () => w.stop(false);
    current = w;
  } else {
    const d = new Daemon({ ...o, log });
    await d.start();
    // (A manager demoted while it was down comes back as a worker at once: no banner.)
    if (banner && !d.restartWith) printBanner(d, o);
    stop = () => d.stop(false);
    current = d;
  }
  // A manager that moved its state to etcd (a second manager joined, or a worker was promoted)
  // stopped its components and comes back here on the new store, in this process: its tasks
  // keep running. A demoted manager comes back as a worker, a promoted worker as a manager, the
  // same way.
  const done = (async () => {
    for (;;) {
      await current.done;
      let next: Partial<DaemonRunOptions> | null;
      if (current instanceof WorkerDaemon) {
        next = current.becameManager;
        if (!next) return;
        log.info("this node is a manager now: starting its manager's components");
      } else {
        const r = current.restartWith;
        if (!r) return;
        if (r.worker) {
          log.info("this node is a worker now: starting its worker daemon");
          const w = await worker();
          [stop, current] = [() => w.stop(false), w];
          continue;
        }
        log.info("restarting the manager's components on the managed etcd store");
        next = r;
      }
      const d = new Daemon({ ...o, ...next, log });
      await d.start();
      [stop, current] = [() => d.stop(false), d];
    }
  })();
  process.once("SIGINT", () => void stop());
  process.once("SIGTERM", () => void stop());
  await done;
  // Everything is closed; a timer or socket a library keeps must not hold a stopped daemon
  // alive until a second signal.
  process.exit(0);
}

function printBanner(d: Daemon, o: ResolvedDaemonOptions): void {
  const monitor = o.monitorPort > 0 ? `http://127.0.0.1:${d.nats.opts.httpPort}` : "off";
  const http = d.consul?.httpPort;
  const dns = d.consul?.dnsPort;
  const metrics =
    d.metrics?.port !== undefined ? `http://127.0.0.1:${d.metrics.port}/metrics` : "off";
  const consul =
    (http !== undefined ? `http://127.0.0.1:${http}` : "off") +
    (dns !== undefined ? `, DNS 127.0.0.1:${dns}` : "");
  process.stdout.write(
    `shoal is up: a one-node swarm (manager + worker) in the foreground.\n` +
      `  node:        ${d.nodeId}\n` +
      `  API:         unix://${join(o.dataDir, "shoal.sock")} (shoal CLI: SHOAL_DATA_DIR=${o.dataDir})\n` +
      `  NATS:        ${d.localNatsUrl()}\n` +
      `  monitoring:  ${monitor}\n` +
      `  consul:      ${consul}\n` +
      `  metrics:     ${metrics}\n` +
      `  dashboard:   ${d.dashboardUrl ?? "off"}\n` +
      `  joins:       ${o.advertiseAddr}\n` +
      `  data:        ${o.dataDir}\n` +
      `Try: shoal service create --name hello --replicas 2 -- node -e "setInterval(()=>console.log('hi'),1000)"\n` +
      `Ctrl-C stops the daemon (tasks keep running and are adopted at the next start).\n`,
  );
}

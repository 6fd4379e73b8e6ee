// The daemon in the foreground (`shoal daemon`, `shoal up`): a worker's if this node joined a
// swarm as one (its join.json), a manager's otherwise; runs until SIGINT or SIGTERM.

import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { ServerLogger } from "../nats/log.js";
import { parseHostPort } from "../lib/addr.js";
import { Daemon } from "./manager-daemon.js";
import { WorkerDaemon } from "./worker-daemon.js";

/** The daemon's settings, as the CLI parsed them from its flags. */
export interface DaemonRunOptions {
  dataDir: string;
  listenAddr: string;
  advertiseAddr: string;
  natsPort: number;
  apiTcp: string;
  publishHost: string;
  debug: boolean;
  /** CPUs the node reports instead of the machine's (--cpus). */
  cpus?: number;
  /** Memory the node reports instead of the machine's, bytes (--memory). */
  memoryBytes?: number;
  /** HTTP monitoring port of the embedded message server (-1 random); absent: none. */
  monitorPort?: number;
}

export async function runDaemon(o: DaemonRunOptions, banner = false): Promise<number> {
  mkdirSync(o.dataDir, { recursive: true });
  const log = new ServerLogger({ debug: o.debug });
  if (existsSync(join(o.dataDir, "join.json"))) {
    // This node joined a swarm as a worker.
    const w = new WorkerDaemon({
      dataDir: o.dataDir,
      token: "",
      managerAddr: "",
      advertiseAddr: parseHostPort(o.advertiseAddr).host,
      publishHost: o.publishHost,
      log,
    });
    await w.start();
    process.once("SIGINT", () => void w.stop(false));
    process.once("SIGTERM", () => void w.stop(false));
    await w.done;
    return 0;
  }
  const d = new Daemon({ ...o, log });
  await d.start();
  if (banner) {
    process.stdout.write(
      `shoal is up.\n` +
        `  node:        ${d.nodeId}\n` +
        `  API:         unix://${join(o.dataDir, "shoal.sock")} (shoal CLI: SHOAL_DATA_DIR=${o.dataDir})\n` +
        `  NATS:        ${d.localNatsUrl()}\n` +
        `  data:        ${o.dataDir}\n` +
        `Try: shoal service create --name hello --replicas 2 -- node -e "setInterval(()=>console.log('hi'),1000)"\n` +
        `Ctrl-C stops the daemon (tasks keep running and are adopted at the next start).\n`,
    );
  }
  const stop = () => void d.stop(false);
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  await d.done;
  return 0;
}

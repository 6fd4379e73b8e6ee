// The `shoal` command: dispatches to its subcommands.

import { natsServerCommand } from "./nats-server.js";
import { serviceCommand } from "./service.js";
import { swarmCommand } from "./swarm.js";
import { UsageError } from "./args.js";
import { SHOAL_VERSION } from "../nats/server.js";

const HELP = `Usage: shoal COMMAND [ARGS...]

A NATS-compatible message-server cluster and a Swarm-style orchestrator.

Commands:
  nats-server   Run a NATS message server (nats-server's flags; see shoal nats-server --help)
  up            Run the shoal daemon in the foreground and print what runs where (quick start)
  init          Start the shoal daemon on this machine as a manager (detached)
  daemon        Run the shoal daemon in the foreground
  leave         Stop the daemon on this machine (--force for a manager)
  service       Manage services (create, ls, ps, scale, update, rm, inspect, logs)
  node          Manage nodes (ls)
  swarm         Manage the swarm (join-token)
  info          Display system-wide information
  version       Show the shoal version

Daemon options (init, daemon, up):
  --data-dir DIR         State, logs and the API socket (default $SHOAL_DATA_DIR or ~/.shoal)
  --listen-addr ADDR     Listen address for joins (default 0.0.0.0:2377)
  --advertise-addr ADDR  Address other nodes use to reach this one
  --nats-port PORT       Client port of the embedded message server (default 4222, -1 random)
  --api-addr HOST:PORT   Also serve the API on TCP
  --publish-addr HOST    Bind address of published ports (default 0.0.0.0)

Environment:
  SHOAL_DATA_DIR   the daemon's data directory (the CLI finds the API socket there)
  SHOAL_HOST       the daemon's API: unix:///path/to/shoal.sock or tcp://host:port
`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case undefined:
      case "-h":
      case "--help":
      case "help":
        process.stdout.write(HELP);
        return cmd === undefined ? 1 : 0;
      case "-v":
      case "--version":
      case "version":
        process.stdout.write(`shoal version ${SHOAL_VERSION}\n`);
        return 0;
      case "nats-server":
        return await natsServerCommand(rest);
      case "service":
        return await serviceCommand(rest);
      case "init":
      case "daemon":
      case "up":
      case "leave":
      case "join":
      case "swarm":
      case "node":
      case "info":
        return await swarmCommand(cmd, rest);
      default:
        process.stderr.write(`shoal: unknown command "${cmd}"\n\n${HELP}`);
        return 1;
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    process.stderr.write(`Error: ${(err as Error).message}\n`);
    return 1;
  }
}

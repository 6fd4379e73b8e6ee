// The `shoal` command: dispatches to its subcommands.

import { natsServerCommand } from "./nats-server.js";
import { SHOAL_VERSION } from "../nats/server.js";

const HELP = `Usage: shoal COMMAND [ARGS...]

A NATS-compatible message-server cluster and a Swarm-style orchestrator.

Commands:
  nats-server   Run a NATS message server (nats-server's flags; see shoal nats-server --help)
  version       Show the shoal version

Options:
  -h, --help      Show this help
  -v, --version   Show the shoal version
`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
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
      return natsServerCommand(rest);
    default:
      process.stderr.write(`shoal: unknown command "${cmd}"\n\n${HELP}`);
      return 1;
  }
}

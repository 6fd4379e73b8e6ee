// Where a node keeps its state: the data dir (SHOAL_DATA_DIR or ~/.shoal) and, in it, the API
// socket the CLI talks to. Shared by the daemon, which creates them, and the CLI, which finds them.

import { join } from "node:path";

export function defaultDataDir(): string {
  return process.env["SHOAL_DATA_DIR"] || join(process.env["HOME"] || "/root", ".shoal");
}

export function socketPath(dataDir: string): string {
  return join(dataDir, "shoal.sock");
}

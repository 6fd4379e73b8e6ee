// Where a node keeps its state: the data dir (SHOAL_DATA_DIR or ~/.shoal) and, in it, the API
// socket the CLI talks to; and where the API may listen on TCP. Shared by the daemon, which
// creates them, and the CLI, which finds them.

import { join } from "node:path";
import { isLoopback, parseHostPort } from "../lib/addr.js";

export function defaultDataDir(): string {
  return process.env["SHOAL_DATA_DIR"] || join(process.env["HOME"] || "/root", ".shoal");
}

export function socketPath(dataDir: string): string {
  return join(dataDir, "shoal.sock");
}

/**
 * Why the API may not listen on TCP `addr` (`--api-addr`), or null when it may. The API has no
 * authentication yet (mutual TLS comes with HA managers), and anyone who reaches it runs commands
 * as the daemon's user: until then it listens only on loopback addresses. An address without a
 * host means 127.0.0.1.
 */
export function apiTcpRefusal(addr: string): string | null {
  const { host } = parseHostPort(addr);
  if (host === "" || isLoopback(host)) return null;
  return `refusing to serve the API on ${addr}: it has no authentication yet (mutual TLS is still to come) and anyone who reaches it can run commands on every node; use a loopback address (127.0.0.1:PORT or [::1]:PORT) or the unix socket`;
}

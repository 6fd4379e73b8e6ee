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
 * Whether the API on TCP `addr` (`--api-addr`) needs mutual TLS: anyone who reaches the API runs
 * commands as the daemon's user on every node, so off loopback a client must present a manager's
 * certificate from the swarm's CA (`forced`: on loopback too, `--api-tls`). An address without a
 * host means 127.0.0.1.
 */
export function apiTcpNeedsTls(addr: string, forced = false): boolean {
  const { host } = parseHostPort(addr);
  return forced || !(host === "" || isLoopback(host));
}

/** Where the CLI finds its client certificate for a TCP API with mutual TLS: SHOAL_CERT_PATH
 * with Docker's names (ca.pem, cert.pem, key.pem), else this machine's node certificate under
 * the data dir (swarmkit's names; a manager's works). */
export function clientCertPaths(env: NodeJS.ProcessEnv = process.env) {
  const dir = env["SHOAL_CERT_PATH"];
  if (dir)
    return { ca: join(dir, "ca.pem"), cert: join(dir, "cert.pem"), key: join(dir, "key.pem") };
  return certPaths(env["SHOAL_DATA_DIR"] || defaultDataDir());
}

/** A node's certificate files under its data dir (swarmkit's names). */
export function certPaths(dataDir: string) {
  const dir = join(dataDir, "certificates");
  return {
    dir,
    ca: join(dir, "swarm-root-ca.crt"),
    cert: join(dir, "swarm-node.crt"),
    key: join(dir, "swarm-node.key"),
  };
}

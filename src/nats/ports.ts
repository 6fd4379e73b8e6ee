// The ports file (nats-server's `ports_file_dir` / `--ports_file_dir`): once every listener is
// bound, `nats-server_<pid>.ports` is written there with the URLs of each listener, so a test
// harness that started the server on random ports (-1) can find them. The file is removed at
// shutdown. Its name is nats-server's whatever the program is called, since harnesses look for it.

import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { rmSync, writeFileSync } from "node:fs";
import { isWildcard, joinHostPort } from "../lib/addr.js";

/** The listeners' URLs, as nats-server's Ports struct (empty lists are left out). */
export interface Ports {
  nats?: string[];
  monitoring?: string[];
  cluster?: string[];
  websocket?: string[];
}

/**
 * `proto://host:port` for a listener: one URL, or, for a wildcard host (0.0.0.0, ::), one per
 * address of every interface (loopback included), as nats-server's formatURL lists them.
 */
export function listenerUrls(proto: string, host: string, port: number): string[] {
  if (!isWildcard(host)) return [`${proto}://${joinHostPort(host, port)}`];
  const urls: string[] = [];
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) urls.push(`${proto}://${joinHostPort(a.address, port)}`);
  }
  return urls;
}

export function portsFilePath(dir: string, pid = process.pid): string {
  return join(dir, `nats-server_${pid}.ports`);
}

/** Writes the ports file; returns its path. */
export function writePortsFile(dir: string, ports: Ports, pid = process.pid): string {
  const out: Ports = {};
  for (const key of ["nats", "monitoring", "cluster", "websocket"] as const) {
    const list = ports[key];
    if (list && list.length > 0) out[key] = list;
  }
  const file = portsFilePath(dir, pid);
  writeFileSync(file, JSON.stringify(out));
  return file;
}

export function removePortsFile(file: string): void {
  rmSync(file, { force: true });
}

// The Consul-compatible catalog of a manager daemon: the HTTP API (src/manager/consul/server.ts)
// on --consul-addr and the DNS interface on --consul-dns-addr (the embedded DNS server,
// src/net/dns.ts, answering from the table src/manager/consul/dns.ts computes, rebuilt once per
// turn of the event loop after the store changes). "" turns either off. An address that cannot
// be bound fails the start naming it, unless `bestEffort` (`shoal up` on its default
// addresses), which logs a warning and goes on without.

import { ConsulServer } from "../manager/consul/server.js";
import { ConsulIndexes } from "../manager/consul/blocking.js";
import { CONSUL_DOMAINS, consulDnsTable } from "../manager/consul/dns.js";
import { DnsServer } from "../net/dns.js";
import { changesState, type Store } from "../store/store.js";
import type { Logger } from "../lib/log.js";
import { joinHostPort, parseHostPort } from "../lib/addr.js";

export interface ConsulOptions {
  /** host:port of the HTTP API; "" = off. An empty host is every address. */
  addr: string;
  /** host:port of the DNS interface (UDP and TCP); "" = off. */
  dnsAddr: string;
  bestEffort: boolean;
  nodeId: string;
  advertiseHost: () => string;
  log: Logger;
}

export interface RunningConsul {
  /** The bound HTTP port and DNS port (undefined: off). */
  httpPort: number | undefined;
  dnsPort: number | undefined;
  close(): Promise<void>;
}

function hostPort(text: string, def: number): { host: string; port: number } {
  const hp = parseHostPort(text);
  return { host: hp.host || "0.0.0.0", port: hp.port ?? def };
}

export async function startConsul(store: Store, o: ConsulOptions): Promise<RunningConsul> {
  const log = o.log;
  let server: ConsulServer | undefined;
  let dns: DnsServer | undefined;
  let unwatch: (() => void) | undefined;
  let ownIndexes: ConsulIndexes | undefined;
  const running: RunningConsul = {
    httpPort: undefined,
    dnsPort: undefined,
    async close() {
      unwatch?.();
      ownIndexes?.close();
      await server?.close();
      await dns?.close();
    },
  };
  const failed = async (err: unknown) => {
    if (!o.bestEffort) {
      await running.close();
      throw err;
    }
    log.warn(`${(err as Error).message.replace(/^consul: /, "")}; going on without it`);
  };
  if (o.addr !== "") {
    const { host, port } = hostPort(o.addr, 8500);
    const s = new ConsulServer(store, {
      nodeId: o.nodeId,
      advertiseHost: o.advertiseHost,
      log,
    });
    try {
      running.httpPort = await s.listen(host, port);
      server = s;
      log.info(`Consul API listening on http://${joinHostPort(host, running.httpPort)}`);
    } catch (err) {
      await s.close();
      await failed(err);
    }
  }
  if (o.dnsAddr !== "") {
    const { host, port } = hostPort(o.dnsAddr, 8600);
    const d = new DnsServer({ host, port, domains: CONSUL_DOMAINS, upstreams: [], log });
    try {
      const p = await d.listen();
      dns = d;
      running.dnsPort = p.udp;
      log.info(`Consul DNS listening on ${joinHostPort(host, p.udp)} (udp, tcp)`);
    } catch (err) {
      await failed(err);
    }
    if (dns) {
      const ix = server?.indexes ?? (ownIndexes = new ConsulIndexes(store));
      const apply = () => dns!.setRecords(consulDnsTable(ix.current()));
      apply();
      let scheduled = false;
      unwatch = store.watch((events) => {
        if (scheduled || !changesState(events)) return;
        scheduled = true;
        setImmediate(() => {
          scheduled = false;
          try {
            apply();
          } catch (err) {
            log.warn(`consul dns: ${(err as Error).message}`);
          }
        });
      });
    }
  }
  return running;
}

// The Consul DNS answers (pure): the table the embedded DNS server (src/net/dns.ts) answers
// `<service>.service.consul` from, as Consul's DNS interface does — A records of the service's
// healthy instances (every check passing, the node's included), and SRV records (for
// `<service>.service.consul` and `_<service>._tcp.service.consul`) whose targets are
// `<hex address>.addr.dc1.consul` names, answered too. Every asking address sees it (the
// table's `*` client). Only IPv4 addresses are answered.

import type { DnsService, DnsTable } from "../../api/dns.js";
import { DNS_NAME_PATTERN, IPV4_PATTERN } from "../../api/dns.js";
import { DATACENTER, healthService, type Catalog } from "./catalog.js";

/** The domains the server owns: names under them it does not know are NXDOMAIN. */
export const CONSUL_DOMAINS = ["service.consul", `service.${DATACENTER}.consul`, "consul"];
/** The one network of the table. */
const NET = "consul";

const ipv4 = new RegExp(IPV4_PATTERN);
const dnsName = new RegExp(DNS_NAME_PATTERN);

/** `10.0.1.5` → `0a000105`, Consul's name of an address. */
export function addrLabel(addr: string): string {
  return addr
    .split(".")
    .map((p) => Number(p).toString(16).padStart(2, "0"))
    .join("");
}

export function consulDnsTable(c: Catalog): DnsTable {
  const zero = { service: () => 0, nodes: () => 0 };
  const services: Record<string, DnsService> = {};
  const tasks: Record<string, string> = {};
  const names = [...new Set(c.instances.map((i) => i.service))];
  for (const name of names) {
    if (!dnsName.test(name) || name.includes(".")) continue;
    const healthy = healthService(c, name, { passing: true }, zero).filter((e) =>
      ipv4.test(e.Service.Address),
    );
    const addrs = [...new Set(healthy.map((e) => e.Service.Address))];
    const srv = healthy.map((e) => {
      const target = `${addrLabel(e.Service.Address)}.addr.${DATACENTER}.consul`;
      tasks[`${addrLabel(e.Service.Address)}.addr.${DATACENTER}`] = e.Service.Address;
      return { target, addr: e.Service.Address, port: e.Service.Port };
    });
    services[name] = {
      endpointMode: "dnsrr",
      taskAddrs: addrs,
      aliases: [`_${name}._tcp`],
      srv,
    };
  }
  return { networks: { [NET]: { services, tasks } }, clients: { "*": [NET] } };
}

// The table a node's embedded DNS server answers from (src/net/dns.ts), as the manager sends it
// over the bus: what every network knows by name, and which networks each asking address (a
// task's address on a network) is on. A task sees the names of its own networks only.
//
//   networks: { <network>: { services: { <service>: DnsService }, tasks: { <name>: <addr> } } }
//   clients:  { <task address>: [<network>, ...] }   (first network that knows a name answers)
//             { "*": [<network>, ...] }              (any other address: the Consul DNS table)
//
// Names are matched without regard to case; the table may spell them as it likes. Like every bus
// message it accepts properties it does not know.

import { Type, type Static } from "@sinclair/typebox";
import { oneOf } from "./types.js";

/** A dotted IPv4 address (each part 0-255). */
export const IPV4_PATTERN =
  "^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$";
/** A DNS name as the table writes it: labels of letters, digits, `-` and `_`, dot-separated. */
export const DNS_NAME_PATTERN =
  "^[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\\.[A-Za-z0-9_][A-Za-z0-9_-]{0,62})*$";

const ipv4 = (description: string) => Type.String({ pattern: IPV4_PATTERN, description });
const dnsName = (description: string) =>
  Type.String({ pattern: DNS_NAME_PATTERN, maxLength: 253, description });

export const DnsEndpointModeSchema = oneOf(["vip", "dnsrr"], {
  description: "vip: the service's name answers its virtual IP; dnsrr: every task's address.",
});

export const DnsServiceSchema = Type.Object(
  {
    vip: Type.Optional(ipv4("The service's virtual IP on this network (vip mode).")),
    endpointMode: DnsEndpointModeSchema,
    taskAddrs: Type.Array(ipv4("A running task's address on this network."), {
      description: "The addresses of the service's running tasks on this network.",
    }),
    aliases: Type.Array(dnsName("Another name of the service on this network."), {
      description: "The service's network-scoped aliases (`--network name=N,alias=A`).",
    }),
    srv: Type.Optional(
      Type.Array(
        Type.Object({
          target: dnsName("The SRV record's target name (answered with `addr` too)."),
          addr: ipv4("The target's address (the A record in the additional section)."),
          port: Type.Integer({ minimum: 0, maximum: 65535 }),
        }),
        { description: "SRV records of the service's name (the Consul DNS table)." },
      ),
    ),
  },
  { title: "DnsService" },
);
export type DnsService = Static<typeof DnsServiceSchema>;

export const DnsNetworkSchema = Type.Object(
  {
    services: Type.Record(Type.String(), DnsServiceSchema, {
      description: "The services on this network, by name.",
    }),
    tasks: Type.Record(Type.String(), ipv4("The task's address on this network."), {
      description: "Each running task by its name `<service>.<slot>.<task-id>`.",
    }),
  },
  { title: "DnsNetwork" },
);
export type DnsNetwork = Static<typeof DnsNetworkSchema>;

export const DnsTableSchema = Type.Object(
  {
    networks: Type.Record(Type.String(), DnsNetworkSchema, {
      description: "Every network with tasks on this node, by name.",
    }),
    clients: Type.Record(Type.String(), Type.Array(Type.String()), {
      description:
        'Each task address that may ask, and the networks it sees (the networks the task is on); "*": what any other address sees.',
    }),
  },
  { title: "DnsTable" },
);
export type DnsTable = Static<typeof DnsTableSchema>;

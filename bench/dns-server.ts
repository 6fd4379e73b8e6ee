// A child process of the dns bench: shoal's embedded DNS server on 127.0.0.1:<port> (argv[2]),
// with a small table in which 127.0.0.1 is a task on network "bench" (`web` in vip mode, `db` in
// dnsrr mode with three tasks). Prints "ready <port>" once it listens; runs until killed.

import { DnsServer } from "../src/net/dns.js";

const port = Number(process.argv[2] ?? "0");
const dns = new DnsServer({ host: "127.0.0.1", port, upstreams: [] });
dns.setRecords({
  networks: {
    bench: {
      services: {
        web: { vip: "10.0.0.2", endpointMode: "vip", taskAddrs: ["10.0.0.3"], aliases: [] },
        db: {
          endpointMode: "dnsrr",
          taskAddrs: ["10.0.0.5", "10.0.0.6", "10.0.0.7"],
          aliases: [],
        },
      },
      tasks: {},
    },
  },
  clients: { "127.0.0.1": ["bench"] },
});
const { udp } = await dns.listen();
process.stdout.write(`ready ${udp}\n`);

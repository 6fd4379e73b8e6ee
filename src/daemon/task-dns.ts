// The DNS servers of a node's tasks: one embedded server (src/net/dns.ts) on each of the node's
// addresses on its networks, port 53 (where a task's resolv.conf points), all answering from
// the table the managers last sent.

import { DnsServer } from "../net/dns.js";
import type { DnsTable } from "../api/dns.js";
import type { TaskDns } from "../node/runtime.js";
import type { Logger } from "../lib/log.js";

export class NodeTaskDns implements TaskDns {
  private readonly servers = new Map<string, DnsServer>();
  private table: DnsTable = { networks: {}, clients: {} };

  constructor(
    private readonly log: Logger,
    private readonly port = 53,
  ) {}

  setTable(table: DnsTable): void {
    this.table = table;
    for (const s of this.servers.values()) this.apply(s);
  }

  async listenOn(addrs: string[]): Promise<void> {
    const want = new Set(addrs);
    for (const [addr, s] of this.servers) {
      if (want.has(addr)) continue;
      this.servers.delete(addr);
      await s.close();
    }
    for (const addr of want) {
      if (this.servers.has(addr)) continue;
      const s = new DnsServer({ host: addr, port: this.port, log: this.log });
      this.apply(s);
      try {
        await s.listen();
        this.servers.set(addr, s);
      } catch (err) {
        this.log.warn(`the DNS server for tasks on ${addr}: ${(err as Error).message}`);
      }
    }
  }

  async close(): Promise<void> {
    for (const s of this.servers.values()) await s.close();
    this.servers.clear();
  }

  private apply(s: DnsServer): void {
    try {
      s.setRecords(this.table);
    } catch (err) {
      this.log.warn(`the DNS table was refused: ${(err as Error).message}`);
    }
  }
}

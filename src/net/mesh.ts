// The routing mesh: every published port listens on this node and forwards each new TCP
// connection to the next running task of the service (round robin), wherever it runs. The
// backends come from the manager's view of running tasks; `sync()` opens and closes listeners
// as services publish or drop ports.

import { createServer, createConnection, type Server, type Socket } from "node:net";
import type { Logger } from "../lib/log.js";

export interface Backend {
  host: string;
  port: number;
}

/** What this component logs through (the one Logger interface, src/lib/log.ts). */
export type MeshLogger = Pick<Logger, "info" | "warn" | "debug">;

interface Listener {
  server: Server;
  next: number;
}

/**
 * Bytes from `from` to `to` as they come, reading paused while `to` is full; `to` ends when
 * `from` does. What `pipe` does, without its per-chunk bookkeeping.
 */
function relay(from: Socket, to: Socket): void {
  from.on("data", (d: Buffer) => {
    if (!to.write(d)) from.pause();
  });
  to.on("drain", () => from.resume());
  from.on("end", () => to.end());
}

export class RoutingMesh {
  private readonly listeners = new Map<number, Listener>();
  private backends = new Map<number, Backend[]>();

  constructor(
    private readonly log: MeshLogger,
    private readonly host = "0.0.0.0",
  ) {}

  /** Sets the backends of every published port; opens/closes listeners to match. */
  async sync(backends: Map<number, Backend[]>): Promise<void> {
    this.backends = backends;
    for (const [port, l] of this.listeners) {
      if (!backends.has(port)) {
        this.listeners.delete(port);
        l.server.close();
        this.log.info(`routing mesh: closed published port ${port}`);
      }
    }
    for (const port of backends.keys()) {
      if (this.listeners.has(port)) continue;
      const l: Listener = {
        server: createServer({ noDelay: true }, (s) => this.forward(port, l, s)),
        next: 0,
      };
      this.listeners.set(port, l);
      try {
        await new Promise<void>((resolve, reject) => {
          l.server.once("error", reject);
          l.server.listen({ host: this.host, port }, () => {
            l.server.off("error", reject);
            resolve();
          });
        });
        this.log.info(`routing mesh: listening on published port ${port}`);
      } catch (err) {
        this.listeners.delete(port);
        this.log.warn(`routing mesh: cannot listen on port ${port}: ${(err as Error).message}`);
      }
    }
  }

  private forward(port: number, l: Listener, client: Socket): void {
    const list = this.backends.get(port) ?? [];
    if (list.length === 0) {
      client.destroy();
      return;
    }
    const b = list[l.next++ % list.length]!;
    const upstream = createConnection({ host: b.host, port: b.port, noDelay: true });
    client.on("error", () => upstream.destroy());
    upstream.on("error", (err) => {
      this.log.debug(`routing mesh: ${port} -> ${b.host}:${b.port}: ${err.message}`);
      client.destroy();
    });
    relay(client, upstream);
    relay(upstream, client);
  }

  async close(): Promise<void> {
    const all = [...this.listeners.values()];
    this.listeners.clear();
    await Promise.all(all.map((l) => new Promise<void>((r) => l.server.close(() => r()))));
  }
}
